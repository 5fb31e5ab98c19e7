//! Human-readable diagnostics: `file:line:col: severity: message` and a source snippet
//! with a caret under the position (miette's graphical handler, without colours).

use crate::diagnostic::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

/// Renders diagnostics of one file whose text is `source`.
pub fn render(diags: &[Diagnostic], source: &str) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_context_lines(1)
        .with_width(120);
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
        let offset = d.span.offset.min(source.len());
        let len = if d.span.len == 0 || offset + d.span.len > source.len() {
            0
        } else {
            // One line at most: the caret marks the start of the value.
            let line_end = source[offset..]
                .find('\n')
                .map_or(source.len(), |p| offset + p);
            d.span.len.min(line_end - offset)
        };
        let clipped = clip_long_lines(source, offset, len);
        let (source, offset, len) = match &clipped {
            Some(c) => (c.text.as_str(), c.offset, c.len),
            None => (source, offset, len),
        };
        let label = LabeledSpan::new(Some(short_label(d)), offset, len);
        let md = MietteDiagnostic::new(d.message.clone())
            .with_severity(match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            })
            .with_label(label);
        let report = miette::Report::new(md)
            .with_source_code(NamedSource::new(d.file.clone(), source.to_string()));
        let mut snippet = String::new();
        if handler.render_report(&mut snippet, report.as_ref()).is_ok() {
            // Drop the handler's own header line (we printed `file:line:col:` above).
            let body: Vec<&str> = snippet.lines().skip(1).collect();
            for l in body {
                out.push_str(l.trim_end());
                out.push('\n');
            }
        }
    }
    out
}

/// Lines longer than this are shown as a window around the position (miette's
/// renderer panics on columns past 65,535, and a minified line is unreadable anyway).
const MAX_SNIPPET_LINE: usize = 240;
/// Characters shown either side of the position in a clipped line.
const CLIP_CONTEXT: usize = 60;

/// The text miette renders when the marked line or a neighbour is too long.
struct Clipped {
    text: String,
    offset: usize,
    len: usize,
}

/// Rebuilds the few lines the snippet shows (the marked one and one either side), each
/// clipped to a window around the marked column, with the other lines left empty so the
/// line numbers stay right. `None` when every shown line is short.
fn clip_long_lines(source: &str, offset: usize, len: usize) -> Option<Clipped> {
    let line_start = source[..offset].rfind('\n').map_or(0, |p| p + 1);
    let target = source[..line_start].matches('\n').count();
    let lines: Vec<&str> = source.split('\n').collect();
    let shown = target.saturating_sub(1)..=(target + 1).min(lines.len() - 1);
    if shown.clone().all(|i| lines[i].len() <= MAX_SNIPPET_LINE) {
        return None;
    }
    let col = source[line_start..offset].chars().count();
    let first_col = col.saturating_sub(CLIP_CONTEXT);
    let mut text = String::new();
    let (mut new_offset, mut new_len) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        if !shown.contains(&i) {
            continue;
        }
        let window = char_window(line, first_col, 2 * CLIP_CONTEXT);
        if first_col > 0 && !window.is_empty() {
            text.push('…');
        }
        if i == target {
            new_offset = text.len() + (offset - line_start - byte_of_char(line, first_col));
            new_len = len.min(window.len() - (new_offset - text.len()));
        }
        text.push_str(window);
        if window.len() < line.len() - byte_of_char(line, first_col).min(line.len()) {
            text.push('…');
        }
    }
    Some(Clipped {
        text,
        offset: new_offset,
        len: new_len,
    })
}

/// The byte offset of character `n` of `line` (its length when shorter).
fn byte_of_char(line: &str, n: usize) -> usize {
    line.char_indices().nth(n).map_or(line.len(), |(b, _)| b)
}

/// At most `count` characters of `line` from character `from`.
fn char_window(line: &str, from: usize, count: usize) -> &str {
    let start = byte_of_char(line, from);
    let rest = &line[start..];
    &rest[..byte_of_char(rest, count)]
}

fn short_label(d: &Diagnostic) -> String {
    match d.severity {
        Severity::Error => "here".to_string(),
        Severity::Warning => "here".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Span;

    #[test]
    fn renders_header_and_caret() {
        let src = "on: push\njobs:\n  b:\n    runs-on: x\n";
        let d = Diagnostic {
            file: "w.yml".into(),
            span: Span {
                offset: 13,
                len: 1,
                line: 3,
                col: 3,
            },
            severity: Severity::Error,
            message: "bad".into(),
        };
        let out = render(&[d], src);
        assert!(out.starts_with("w.yml:3:3: error: bad\n"), "{out}");
        assert!(out.contains("b:"), "{out}");
        assert!(out.contains('^') || out.contains('┬'), "{out}");
    }

    #[test]
    fn error_past_column_65535_gets_a_clipped_snippet() {
        let pad = "x".repeat(70_000);
        let src = format!("{{on: push, jobs: {{a: {{runs-on: {pad}, bad-key: 1}}}}}}\n");
        let offset = src.find("bad-key").unwrap();
        let d = Diagnostic {
            file: "w.yml".into(),
            span: Span {
                offset,
                len: 7,
                line: 1,
                col: offset as u32 + 1,
            },
            severity: Severity::Error,
            message: "bad".into(),
        };
        let out = render(&[d], &src);
        assert!(
            out.starts_with(&format!("w.yml:1:{}: error: bad\n", offset + 1)),
            "{out}"
        );
        assert!(out.contains("bad-key"), "{out}");
        assert!(
            out.len() < 2_000,
            "the snippet is clipped: {} bytes",
            out.len()
        );
    }
}
