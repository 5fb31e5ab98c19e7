//! Line-wise masking of output streams: [`MaskedLines`] for the step runner and
//! [`MaskingWriter`] for any `io::Write`.

use std::io::{self, Write};
use std::sync::Arc;

use super::{Hits, MAX_LINE, MaskSet, Masker};

/// Keeps a cached snapshot in step with the masker.
#[derive(Debug)]
struct Cached {
    masker: Arc<Masker>,
    set: Arc<MaskSet>,
    version: u64,
}

impl Cached {
    fn new(masker: Arc<Masker>) -> Cached {
        let version = masker.version();
        let set = masker.snapshot();
        Cached {
            masker,
            set,
            version,
        }
    }

    /// Takes the newest snapshot; true when it changed.
    fn refresh(&mut self) -> bool {
        let v = self.masker.version();
        if v == self.version {
            return false;
        }
        self.version = v;
        self.set = self.masker.snapshot();
        true
    }
}

/// Where to cut an overlong partial line: as late as possible while leaving every byte that
/// could begin a secret continuing past the end, and never inside a match.
fn safe_cut(set: &MaskSet, buf: &[u8], ranges: &mut Vec<(usize, usize)>) -> usize {
    ranges.clear();
    set.ranges(buf, ranges);
    let mut cut = buf.len().saturating_sub(set.max_len().saturating_sub(1));
    for &(s, e) in ranges.iter() {
        if s < cut && e > cut {
            cut = s;
        }
    }
    ranges.retain(|&(_, e)| e <= cut);
    cut
}

/// How a [`Segment`] relates to the lines of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A whole line (the usual case). Parse it for workflow commands.
    Line,
    /// A piece of a line longer than [`MAX_LINE`]; more of the line follows.
    Partial,
    /// The last piece of a line that was emitted in pieces.
    End,
}

/// One line (or piece of an overlong line), without its `\n` and a `\r` before it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Unmasked bytes: for command parsing only, never for output.
    pub raw: &'a [u8],
    /// Masked bytes to log.
    pub masked: &'a [u8],
    pub kind: SegmentKind,
}

/// Splits an output stream (arbitrary chunks) into masked lines.
///
/// The snapshot is refreshed before each line, so a value registered by the callback (an
/// `::add-mask::` line) applies from the next line on, even within the same chunk.
#[derive(Debug)]
pub struct MaskedLines {
    cached: Cached,
    pending: Vec<u8>,
    in_pieces: bool,
    scratch: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    max_line: usize,
}

impl MaskedLines {
    pub fn new(masker: Arc<Masker>) -> MaskedLines {
        Self::with_max_line(masker, MAX_LINE)
    }

    /// With a custom partial-line bound (tests).
    pub fn with_max_line(masker: Arc<Masker>, max_line: usize) -> MaskedLines {
        MaskedLines {
            cached: Cached::new(masker),
            pending: Vec::new(),
            in_pieces: false,
            scratch: Vec::new(),
            ranges: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Emits one line; `dirty`: it may hold a match (`None`: not known, check).
    fn emit_line(&mut self, line: &[u8], dirty: Option<bool>, f: &mut dyn FnMut(Segment<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let kind = if std::mem::take(&mut self.in_pieces) {
            SegmentKind::End
        } else {
            SegmentKind::Line
        };
        self.ranges.clear();
        if dirty != Some(false) {
            self.cached.set.ranges(line, &mut self.ranges);
        }
        if self.ranges.is_empty() {
            f(Segment {
                raw: line,
                masked: line,
                kind,
            });
            return;
        }
        self.scratch.clear();
        MaskSet::apply(line, &self.ranges, &mut self.scratch);
        f(Segment {
            raw: line,
            masked: &self.scratch,
            kind,
        });
    }

    /// Emits the complete lines of `region` (which ends with `\n`), detecting candidates
    /// over the whole region at once.
    fn emit_region(&mut self, region: &[u8], f: &mut dyn FnMut(Segment<'_>)) {
        self.cached.refresh();
        let mut set = self.cached.set.clone();
        let mut hits = Hits::new(&set);
        let mut ls = 0;
        for nl in memchr::memchr_iter(b'\n', region) {
            if self.cached.refresh() {
                set = self.cached.set.clone();
                hits = Hits::new(&set);
            }
            let dirty = hits.next_from(&set, region, ls).is_some_and(|p| p < nl);
            self.emit_line(&region[ls..nl], Some(dirty), f);
            ls = nl + 1;
        }
    }

    /// Feeds a chunk; calls `f` for every line completed by it.
    pub fn push(&mut self, chunk: &[u8], f: &mut dyn FnMut(Segment<'_>)) {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&rest[..i]);
                    self.cached.refresh();
                    self.emit_line(&line, None, f);
                    line.clear();
                    self.pending = line;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    self.bound(f);
                    return;
                }
            }
        }
        if let Some(last) = memchr::memrchr(b'\n', rest) {
            self.emit_region(&rest[..=last], f);
            rest = &rest[last + 1..];
        }
        self.pending.extend_from_slice(rest);
        self.bound(f);
    }

    /// Emits pieces of an overlong pending line.
    fn bound(&mut self, f: &mut dyn FnMut(Segment<'_>)) {
        while self.pending.len() > self.max_line {
            self.cached.refresh();
            let cut = safe_cut(&self.cached.set, &self.pending, &mut self.ranges);
            if cut == 0 {
                return;
            }
            self.scratch.clear();
            MaskSet::apply(&self.pending[..cut], &self.ranges, &mut self.scratch);
            f(Segment {
                raw: &self.pending[..cut],
                masked: &self.scratch,
                kind: SegmentKind::Partial,
            });
            self.in_pieces = true;
            self.pending.drain(..cut);
        }
    }

    /// Ends the stream: emits a final line without a trailing newline, if any.
    pub fn finish(&mut self, f: &mut dyn FnMut(Segment<'_>)) {
        if !self.pending.is_empty() || self.in_pieces {
            let line = std::mem::take(&mut self.pending);
            self.cached.refresh();
            self.emit_line(&line, None, f);
        }
    }
}

/// Masks a byte stream into a writer, keeping line structure and bytes (including `\r`)
/// except for masked ranges. Call [`MaskingWriter::finish`] at the end of the stream.
#[derive(Debug)]
pub struct MaskingWriter<W: Write> {
    cached: Cached,
    inner: W,
    pending: Vec<u8>,
    out: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    max_line: usize,
}

impl<W: Write> MaskingWriter<W> {
    pub fn new(masker: Arc<Masker>, inner: W) -> MaskingWriter<W> {
        Self::with_max_line(masker, inner, MAX_LINE)
    }

    pub fn with_max_line(masker: Arc<Masker>, inner: W, max_line: usize) -> MaskingWriter<W> {
        MaskingWriter {
            cached: Cached::new(masker),
            inner,
            pending: Vec::new(),
            out: Vec::new(),
            ranges: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Writes complete lines (a region ending with `\n`, or the final partial line).
    fn write_region(&mut self, region: &[u8]) -> io::Result<()> {
        self.ranges.clear();
        self.cached.set.ranges(region, &mut self.ranges);
        if self.ranges.is_empty() {
            return self.inner.write_all(region);
        }
        self.out.clear();
        MaskSet::apply(region, &self.ranges, &mut self.out);
        self.inner.write_all(&self.out)
    }

    fn bound(&mut self) -> io::Result<()> {
        while self.pending.len() > self.max_line {
            let cut = safe_cut(&self.cached.set, &self.pending, &mut self.ranges);
            if cut == 0 {
                return Ok(());
            }
            self.out.clear();
            MaskSet::apply(&self.pending[..cut], &self.ranges, &mut self.out);
            self.inner.write_all(&self.out)?;
            self.pending.drain(..cut);
        }
        Ok(())
    }

    /// Flushes the final partial line and the inner writer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.cached.refresh();
        let pending = std::mem::take(&mut self.pending);
        self.write_region(&pending)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, chunk: &[u8]) -> io::Result<usize> {
        self.cached.refresh();
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&rest[..=i]);
                    let r = self.write_region(&line);
                    line.clear();
                    self.pending = line;
                    r?;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    self.bound()?;
                    return Ok(chunk.len());
                }
            }
        }
        match memchr::memrchr(b'\n', rest) {
            Some(i) => {
                self.write_region(&rest[..=i])?;
                self.pending.extend_from_slice(&rest[i + 1..]);
            }
            None => self.pending.extend_from_slice(rest),
        }
        self.bound()?;
        Ok(chunk.len())
    }

    /// Flushes the inner writer; a partial line stays buffered until more data or `finish`.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
