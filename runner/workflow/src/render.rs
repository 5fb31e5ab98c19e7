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
}
