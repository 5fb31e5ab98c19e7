//! Secret masking (GHA-SEMANTICS §5.5).
//!
//! A [`Masker`] holds the registered values (secrets, `::add-mask::` values, runner tokens)
//! and every encoded form of them (base64 and its two shifted variants, JSON, URI, XML,
//! command-line and expression escapes, trimmed double quotes, PowerShell `&` sections).
//! Every registration rebuilds one Aho-Corasick automaton over all forms into an immutable
//! [`MaskSet`] snapshot; readers take the snapshot (an `Arc` clone) and never block each
//! other. Each match is replaced by `***`; overlapping and adjacent matches are merged, so
//! the union of all matched ranges is hidden.
//!
//! Output is masked line by line: [`MaskedLines`] splits a byte stream into lines for the
//! step runner and [`MaskingWriter`] masks a stream into any `io::Write`. A line longer than
//! [`MAX_LINE`] is emitted in pieces, each cut placed so that no secret can straddle it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, Input, MatchKind, Span, packed};
use base64::Engine as _;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Longest partial line kept before a piece of it is emitted.
pub const MAX_LINE: usize = 64 * 1024;

/// Shortest truncated (unpadded, mid-stream) base64 form registered.
const MIN_B64_FRAGMENT: usize = 6;

/// Most patterns per detection automaton: small sets get the SIMD (Teddy) prefilter.
const DETECT_GROUP: usize = 64;

/// Registered forms past the last full rebuild that get their own small layer (so that
/// many `add-mask` calls do not each rebuild everything).
const RECENT_LIMIT: usize = 256;

/// An immutable set of values to mask.
///
/// Two steps per layer: `detect` finds candidate positions fast (leftmost-first searchers
/// over a minimal set of forms, every form containing one of them, in groups small enough
/// for the SIMD prefilter); `ac` (all forms, overlapping) then runs on the few lines with a
/// hit to find every range to hide.
#[derive(Debug, Default)]
pub struct MaskSet {
    layers: Vec<Arc<Layer>>,
    max_len: usize,
    patterns: usize,
}

#[derive(Debug, Default)]
struct Layer {
    ac: Option<AhoCorasick>,
    detect: Vec<Detector>,
}

/// Merges sorted-by-start ranges that overlap or touch.
fn merge_ranges(ranges: &mut Vec<(usize, usize)>) {
    ranges.sort_unstable();
    let mut w = 0;
    for i in 0..ranges.len() {
        if w > 0 && ranges[i].0 <= ranges[w - 1].1 {
            ranges[w - 1].1 = ranges[w - 1].1.max(ranges[i].1);
        } else {
            ranges[w] = ranges[i];
            w += 1;
        }
    }
    ranges.truncate(w);
}

/// Longest detection string: the tail of a form (tails differ even when many secrets share
/// a prefix like `ghp_`, which keeps the SIMD fingerprint selective).
const DETECT_WINDOW: usize = 12;

/// A fast leftmost-first finder for a group of detection strings.
#[derive(Debug)]
enum Detector {
    Packed(packed::Searcher),
    Ac(AhoCorasick),
}

impl Detector {
    fn build(group: &[&[u8]]) -> Option<Detector> {
        if let Some(s) = packed::Config::new().builder().extend(group).build() {
            return Some(Detector::Packed(s));
        }
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(group)
            .ok()
            .map(Detector::Ac)
    }

    fn find(&self, text: &[u8], from: usize) -> Option<usize> {
        match self {
            Detector::Packed(s) => s.find_in(text, Span::from(from..text.len())),
            Detector::Ac(ac) => ac.find(Input::new(text).span(from..text.len())),
        }
        .map(|m| m.start())
    }
}

/// Forms such that every given form contains at least one of them (applied to the forms of
/// one value, so the quadratic cost stays small).
fn detection_forms(patterns: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = patterns.iter().map(String::as_str).collect();
    sorted.sort_by_key(|p| p.len());
    let mut chosen: Vec<&str> = Vec::new();
    for p in sorted {
        if !chosen
            .iter()
            .any(|c| memchr::memmem::find(p.as_bytes(), c.as_bytes()).is_some())
        {
            chosen.push(p);
        }
    }
    chosen
}

/// Cached leftmost detection hits, one per automaton, for one text.
struct Hits {
    /// Per group: `None` not computed; `Some(None)` no hit at or after the last query;
    /// `Some(Some(p))` the leftmost hit at or after the last query.
    next: Vec<Option<Option<usize>>>,
}

impl Hits {
    fn new(set: &MaskSet) -> Hits {
        Hits {
            next: vec![None; set.layers.iter().map(|l| l.detect.len()).sum()],
        }
    }

    /// Start of the leftmost hit at or after `from` (always the same `set` and `text`).
    fn next_from(&mut self, set: &MaskSet, text: &[u8], from: usize) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (g, ac) in set.layers.iter().flat_map(|l| &l.detect).enumerate() {
            let hit = match self.next[g] {
                Some(None) => None,
                Some(Some(p)) if p >= from => Some(p),
                _ => {
                    let r = if from >= text.len() {
                        None
                    } else {
                        ac.find(text, from)
                    };
                    self.next[g] = Some(r);
                    r
                }
            };
            if let Some(h) = hit {
                best = Some(best.map_or(h, |b: usize| b.min(h)));
            }
        }
        best
    }
}

impl Layer {
    fn build(patterns: &[String], windows: &[Vec<u8>]) -> Layer {
        if patterns.is_empty() {
            return Layer::default();
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .ok();
        let windows: Vec<&[u8]> = windows.iter().map(Vec::as_slice).collect();
        let detect = windows
            .chunks(DETECT_GROUP)
            .filter_map(Detector::build)
            .collect();
        Layer { ac, detect }
    }
}

impl MaskSet {
    /// Number of registered forms (values and their encodings).
    pub fn len(&self) -> usize {
        self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Length in bytes of the longest registered form.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether `text` contains a registered form (possibly across a line break).
    pub fn is_match(&self, text: &[u8]) -> bool {
        self.layers
            .iter()
            .flat_map(|l| &l.detect)
            .any(|d| d.find(text, 0).is_some())
    }

    /// Appends the ranges to hide in the line `text[ls..le]` (no `\n` inside), merged.
    fn line_ranges(&self, text: &[u8], ls: usize, le: usize, out: &mut Vec<(usize, usize)>) {
        let first = out.len();
        for ac in self.layers.iter().filter_map(|l| l.ac.as_ref()) {
            for o in ac.find_overlapping_iter(&text[ls..le]) {
                out.push((ls + o.start(), ls + o.end()));
            }
        }
        if out.len() - first > 1 {
            let mut tail = out.split_off(first);
            merge_ranges(&mut tail);
            out.extend(tail);
        }
    }

    /// Appends to `out` the merged ranges of `text` to hide. Text is masked line by line:
    /// matches spanning a `\n` are ignored (multi-line values are registered per line).
    pub fn ranges(&self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        if self.is_empty() {
            return;
        }
        let mut hits = Hits::new(self);
        let mut pos = 0;
        while let Some(p) = hits.next_from(self, text, pos) {
            let ls = memchr::memrchr(b'\n', &text[pos..p]).map_or(pos, |i| pos + i + 1);
            let le = memchr::memchr(b'\n', &text[p..]).map_or(text.len(), |i| p + i);
            self.line_ranges(text, ls, le, out);
            pos = le + 1;
            if pos >= text.len() {
                break;
            }
        }
    }

    /// Writes `text` with `ranges` (merged, sorted) replaced by `***`.
    fn apply(text: &[u8], ranges: &[(usize, usize)], out: &mut Vec<u8>) {
        let mut at = 0;
        for &(s, e) in ranges {
            out.extend_from_slice(&text[at..s]);
            out.extend_from_slice(MASK.as_bytes());
            at = e;
        }
        out.extend_from_slice(&text[at..]);
    }

    /// Masks bytes; borrows when nothing matches.
    pub fn mask_bytes<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let mut ranges = Vec::new();
        self.ranges(text, &mut ranges);
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        Self::apply(text, &ranges, &mut out);
        Cow::Owned(out)
    }

    /// Masks text; borrows when nothing matches. Every form is valid UTF-8, so matches fall
    /// on character boundaries and the result stays valid.
    pub fn mask_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(v) => Cow::Owned(
                String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }
}

/// Registered secret values; cheap to share (`Arc<Masker>`), safe to use from many tasks.
#[derive(Debug, Default)]
pub struct Masker {
    state: RwLock<State>,
    version: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    seen: HashSet<String>,
    patterns: Vec<String>,
    seen_windows: HashSet<Vec<u8>>,
    windows: Vec<Vec<u8>>,
    /// Forms and windows covered by `base`; the rest form the recent layer.
    base_patterns: usize,
    base_windows: usize,
    base: Arc<Layer>,
    max_len: usize,
    set: Arc<MaskSet>,
}

impl Masker {
    pub fn new() -> Masker {
        Masker::default()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<MaskSet> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .clone()
    }

    /// Bumped on every change; lets streaming maskers refresh their snapshot cheaply.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Registers secrets (`secrets.*` values, runner tokens): each value trimmed, and each
    /// of its lines trimmed. Empty values are ignored.
    pub fn add_secret(&self, value: &str) {
        self.add_secrets([value]);
    }

    /// [`Masker::add_secret`] for many values with one rebuild.
    pub fn add_secrets<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let mut forms = Vec::new();
        for v in values {
            let v = v.trim();
            forms.push(value_forms(v));
            if v.contains(['\r', '\n']) {
                for line in v.split(['\r', '\n']) {
                    forms.push(value_forms(line.trim()));
                }
            }
        }
        self.register(forms);
    }

    /// Registers an `::add-mask::` value as given, and each of its lines. Empty or
    /// whitespace-only values (and lines) are ignored; returns false when nothing was added
    /// because the value is blank (the caller warns).
    pub fn add_mask(&self, value: &str) -> bool {
        if value.trim().is_empty() {
            return false;
        }
        let mut forms = vec![value_forms(value)];
        if value.contains(['\r', '\n']) {
            for line in value.split(['\r', '\n']) {
                if !line.trim().is_empty() {
                    forms.push(value_forms(line));
                }
            }
        }
        self.register(forms);
        true
    }

    /// Adds the forms of each value (one `Vec` per value) and rebuilds the snapshot.
    fn register(&self, values: Vec<Vec<String>>) {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let mut changed = false;
        for forms in values {
            for w in detection_forms(&forms) {
                let w = w.as_bytes()[w.len().saturating_sub(DETECT_WINDOW)..].to_vec();
                if st.seen_windows.insert(w.clone()) {
                    st.windows.push(w);
                }
            }
            for f in forms {
                if st.seen.insert(f.clone()) {
                    st.patterns.push(f);
                    changed = true;
                }
            }
        }
        if changed {
            st.max_len = st.patterns.iter().map(String::len).max().unwrap_or(0);
            if st.patterns.len() - st.base_patterns > RECENT_LIMIT || st.base_patterns == 0 {
                st.base = Arc::new(Layer::build(&st.patterns, &st.windows));
                st.base_patterns = st.patterns.len();
                st.base_windows = st.windows.len();
            }
            let mut layers = vec![st.base.clone()];
            if st.patterns.len() > st.base_patterns {
                layers.push(Arc::new(Layer::build(
                    &st.patterns[st.base_patterns..],
                    &st.windows[st.base_windows..],
                )));
            }
            st.set = Arc::new(MaskSet {
                layers,
                max_len: st.max_len,
                patterns: st.patterns.len(),
            });
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Masks one line (or any text; matches spanning `\n` are left to the per-line forms).
    pub fn mask_line<'a>(&self, line: &'a str) -> Cow<'a, str> {
        self.snapshot().mask_str(line)
    }

    /// Masks bytes.
    pub fn mask_bytes<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        self.snapshot().mask_bytes(text)
    }

    /// Masks multi-line text line by line (step summaries, expression traces).
    pub fn mask_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.mask_line(text)
    }

    /// Whether `text` contains a registered value (job outputs holding one are dropped).
    pub fn contains_secret(&self, text: &str) -> bool {
        let set = self.snapshot();
        let mut r = Vec::new();
        set.ranges(text.as_bytes(), &mut r);
        !r.is_empty()
    }
}

/// `value` and its encoded forms, deduplicated (empty for an empty value).
fn value_forms(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    push_value(value, &mut out);
    out.retain(|f| !f.is_empty());
    out.sort_unstable();
    out.dedup();
    out
}

/// Adds `value` and its encoded forms (`actions/runner` `ValueEncoders`).
fn push_value(value: &str, out: &mut Vec<String>) {
    if value.is_empty() {
        return;
    }
    out.push(value.to_string());
    let bytes = value.as_bytes();
    let b64 = &base64::engine::general_purpose::STANDARD;
    for shift in 0..3 {
        if shift > 0 && bytes.len() <= shift {
            break;
        }
        let part = &bytes[shift..];
        let full = b64.encode(part);
        // Characters fully determined by the value when it sits mid-stream.
        let determined = part.len() * 8 / 6;
        if determined >= MIN_B64_FRAGMENT && determined < full.len() {
            out.push(full[..determined].to_string());
        }
        out.push(full);
    }
    out.push(value.replace('"', "\\\""));
    out.push(value.replace('\'', "''"));
    out.push(json_escape(value));
    out.push(uri_escape(value));
    out.push(xml_escape(value));
    if value.len() > 8 && value.starts_with('"') && value.ends_with('"') {
        out.push(value[1..value.len() - 1].to_string());
    }
    if let Some(i) = value.find('&') {
        let (pre, post) = match value.find("&&") {
            Some(j) => (&value[..j], &value[j + 2..]),
            None => (&value[..i], &value[i + 1..]),
        };
        for section in [pre, post] {
            if section.chars().count() >= 6 {
                out.push(section.to_string());
            }
        }
    }
}

/// Newtonsoft `JsonConvert.ToString` without the surrounding quotes.
fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                o.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => o.push(c),
        }
    }
    o
}

/// .NET `Uri.EscapeDataString`.
fn uri_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// .NET `SecurityElement.Escape`.
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '&' => o.push_str("&amp;"),
            c => o.push(c),
        }
    }
    o
}

mod lines;
pub use lines::{MaskedLines, MaskingWriter, Segment, SegmentKind};
