//! The engine's view of masking: a per-job set of registered values applied to complete
//! lines. The step runner splits output into lines before masking, so values split across
//! write boundaries are caught; multi-line secrets are registered line by line.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use base64::Engine as _;

/// Registered values and a matcher built from them (rebuilt when a value is added).
#[derive(Clone, Default)]
pub struct Masker {
    values: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} values)", self.values.len())
    }
}

fn variants(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let v = value.trim();
    if v.is_empty() {
        return out;
    }
    out.push(v.to_string());
    for line in v.split(['\n', '\r']) {
        let l = line.trim();
        if !l.is_empty() {
            out.push(l.to_string());
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, shift) in [0usize, 1, 2].iter().enumerate() {
        // base64 of the value at three alignments (the value embedded mid-stream).
        let mut bytes = vec![0u8; *shift];
        bytes.extend_from_slice(v.as_bytes());
        let enc = b64.encode(&bytes);
        let skip = if i == 0 {
            0
        } else {
            (shift * 4).div_ceil(3) + 1
        };
        let enc = enc.trim_end_matches('=');
        if enc.len() > skip + 1 {
            // drop the characters influenced by the padding bytes and the last char
            let body = &enc[skip..enc.len().saturating_sub(if i == 0 { 0 } else { 1 })];
            if body.len() >= 4 {
                out.push(body.to_string());
            }
        }
    }
    let json = serde_json::to_string(v).unwrap_or_default();
    if json.len() > 2 {
        out.push(json[1..json.len() - 1].to_string());
    }
    out.push(v.replace('\'', "''"));
    out.retain(|s| !s.is_empty());
    out
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret (and its lines and encodings). Values shorter than one
    /// character after trimming are ignored.
    pub fn add(&mut self, value: &str) {
        let mut changed = false;
        for v in variants(value) {
            if !self.values.contains(&v) {
                self.values.push(v);
                changed = true;
            }
        }
        if changed {
            // Longest first so that a longer value wins over its own prefix.
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
            self.matcher = AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&self.values)
                .ok()
                .map(Arc::new);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Replaces every registered value in `text` by `***`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            None => Cow::Borrowed(text),
            Some(m) => {
                if m.find(text).is_none() {
                    return Cow::Borrowed(text);
                }
                let reps = vec!["***"; self.values.len()];
                Cow::Owned(m.replace_all(text, &reps))
            }
        }
    }

    /// Whether masking would change `text`.
    pub fn would_mask(&self, text: &str) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.find(text).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_lines_and_base64() {
        let mut m = Masker::new();
        m.add("s3cr.t*(x)\nsecond line");
        assert_eq!(m.mask("a s3cr.t*(x) b"), "a *** b");
        assert_eq!(m.mask("second line!"), "***!");
        let b = base64::engine::general_purpose::STANDARD.encode("s3cr.t*(x)\nsecond line");
        assert!(!m.mask(&b).contains(&b[..8]));
        assert_eq!(m.mask("nothing"), "nothing");
    }
}
