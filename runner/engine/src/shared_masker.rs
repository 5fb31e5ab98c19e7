//! The engine's handle on masking ([`crate::masker`]): a per-job set of registered values
//! (the run's secrets, environment secrets released by a gate, `::add-mask::` values)
//! applied to complete lines. The step runner splits output into lines before masking, so
//! values split across write boundaries are caught; multi-line secrets are registered line
//! by line by the masker.

use std::borrow::Cow;
use std::sync::Arc;

use crate::masker::{self, MaskSet};

/// Cheap to clone; clones share the registered values (one job's masker).
#[derive(Clone, Default)]
pub struct Masker {
    inner: Arc<masker::Masker>,
    snap: Arc<MaskSet>,
    /// The inner version `snap` was taken at (or before).
    snap_version: u64,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} patterns)", self.snap.len())
    }
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A masker holding these secrets (values trimmed, each line too).
    pub fn with_secrets<'a>(values: impl IntoIterator<Item = &'a String>) -> Self {
        let inner = masker::Masker::new();
        inner.add_secrets(values.into_iter().map(|s| s.as_str()));
        let snap_version = inner.version();
        let snap = inner.snapshot();
        Masker {
            inner: Arc::new(inner),
            snap,
            snap_version,
        }
    }

    /// Registers a secret value (trimmed; each line too).
    pub fn add_secret(&mut self, value: &str) {
        self.inner.add_secret(value);
        self.snap = self.inner.snapshot();
    }

    /// Registers an `::add-mask::` value.
    pub fn add(&mut self, value: &str) {
        self.inner.add_mask(value);
        self.snap = self.inner.snapshot();
    }

    /// Picks up values registered through another clone.
    pub fn refresh(&mut self) {
        self.snap = self.inner.snapshot();
    }

    /// [`Masker::refresh`] when another clone registered something since: one atomic
    /// load otherwise, so a stream can call it per line. Steps that run at once
    /// (background steps, `parallel:` members) see each other's `::add-mask::` values.
    pub fn refresh_if_changed(&mut self) {
        if self.inner.version() != self.snap_version {
            self.snap_version = self.inner.version();
            self.snap = self.inner.snapshot();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.snap.is_empty()
    }

    /// Replaces every registered value (as of this clone's last registration or
    /// [`Masker::refresh`]) in `text` by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.snap.mask_str(text)
    }

    /// Whether masking would change `text`.
    pub fn would_mask(&self, text: &str) -> bool {
        self.inner.contains_secret(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_lines_and_base64() {
        let mut m = Masker::with_secrets([&"s3cr.t*(x)\nsecond line".to_string()]);
        assert_eq!(m.mask("a s3cr.t*(x) b"), "a *** b");
        assert_eq!(m.mask("second line!"), "***!");
        m.add("hunter2");
        assert_eq!(m.mask("pw hunter2"), "pw ***");
        assert!(m.would_mask("hunter2"));
        assert_eq!(m.mask("nothing"), "nothing");
    }

    #[test]
    fn a_clone_sees_values_another_clone_registers_once_it_refreshes() {
        let mut a = Masker::with_secrets([&"s3cret".to_string()]);
        let mut b = a.clone();
        a.add("from-a");
        assert_eq!(
            b.mask("from-a"),
            "from-a",
            "a snapshot holds until refreshed"
        );
        b.refresh_if_changed();
        assert_eq!(b.mask("from-a s3cret"), "*** ***");
        b.refresh_if_changed();
        assert_eq!(b.mask("from-a"), "***");
    }
}
