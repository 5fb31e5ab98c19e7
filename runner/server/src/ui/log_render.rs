//! Log text to HTML, line by line: everything escaped, ANSI SGR colours and bold turned
//! into classes (other escape sequences dropped), `::group::`/`::endgroup::` marked so the
//! page can fold them, each line numbered with a link to itself.

use maud::{Markup, html};

/// What a line does to the group structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Plain,
    GroupStart(String),
    GroupEnd,
}

pub fn kind(line: &str) -> LineKind {
    let t = strip_ansi(line);
    let t = t.trim_end_matches('\r');
    if let Some(name) = t.strip_prefix("::group::") {
        LineKind::GroupStart(name.to_string())
    } else if t.starts_with("::endgroup::") {
        LineKind::GroupEnd
    } else {
        LineKind::Plain
    }
}

fn strip_ansi(s: &str) -> String {
    segments(s).into_iter().map(|(_, t)| t).collect()
}

/// Splits on ANSI escapes: (classes in effect, text).
fn segments(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut fg, mut bold) = (None::<u8>, false);
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    let classes = |fg: Option<u8>, bold: bool| {
        let mut c = String::new();
        if let Some(n) = fg {
            c.push_str(&format!("a{n}"));
        }
        if bold {
            c.push_str(if c.is_empty() { "ab" } else { " ab" });
        }
        c
    };
    while let Some(ch) = chars.next() {
        if ch != '\x1b' {
            text.push(ch);
            continue;
        }
        if chars.peek() != Some(&'[') {
            continue;
        }
        chars.next();
        let mut params = String::new();
        let mut fin = None;
        for c in chars.by_ref() {
            if c.is_ascii_digit() || c == ';' {
                params.push(c);
            } else {
                fin = Some(c);
                break;
            }
        }
        if fin != Some('m') {
            continue;
        }
        if !text.is_empty() {
            out.push((classes(fg, bold), std::mem::take(&mut text)));
        }
        for p in params.split(';') {
            match p.parse::<u8>().unwrap_or(0) {
                0 => (fg, bold) = (None, false),
                1 => bold = true,
                22 => bold = false,
                n @ (30..=37 | 90..=97) => fg = Some(n),
                39 => fg = None,
                _ => {}
            }
        }
    }
    if !text.is_empty() {
        out.push((classes(fg, bold), text));
    }
    out
}

/// One numbered line (`n` counts from 1 over the whole log).
pub fn line(n: u64, text: &str) -> Markup {
    let text = text.trim_end_matches('\r');
    let k = kind(text);
    html! {
        span.ln id={"L" (n)} data-group=[match &k { LineKind::GroupStart(_) => Some("start"), LineKind::GroupEnd => Some("end"), LineKind::Plain => None }] {
            a.n href={"#L" (n)} aria-label={"line " (n)} { (n) }
            span.t {
                @match &k {
                    LineKind::GroupStart(name) => { span.gname { (name) } }
                    LineKind::GroupEnd => {}
                    LineKind::Plain => {
                        @for (cls, t) in segments(text) {
                            @if cls.is_empty() { (t) } @else { span class=(cls) { (t) } }
                        }
                    }
                }
            }
            "\n"
        }
    }
}

/// Lines starting at number `first`, with groups folded into `<details>` (a group left
/// open at the end of the window is closed there; the script continues it live).
pub fn lines(first: u64, text: &str) -> (Markup, u64) {
    let mut html_out = String::new();
    let mut depth = 0usize;
    let mut n = first;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return (html! {}, first);
    }
    for l in body.split('\n') {
        match kind(l) {
            LineKind::GroupStart(_) => {
                html_out.push_str("<details class=\"grp\" open><summary>");
                html_out.push_str(&line(n, l).into_string());
                html_out.push_str("</summary>");
                depth += 1;
            }
            LineKind::GroupEnd if depth > 0 => {
                html_out.push_str(&line(n, l).into_string());
                html_out.push_str("</details>");
                depth -= 1;
            }
            _ => html_out.push_str(&line(n, l).into_string()),
        }
        n += 1;
    }
    for _ in 0..depth {
        html_out.push_str("</details>");
    }
    (maud::PreEscaped(html_out), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_colours() {
        let h = line(3, "\x1b[31;1m<b>err</b>\x1b[0m ok").into_string();
        assert!(h.contains("id=\"L3\""), "{h}");
        assert!(
            h.contains("<span class=\"a31 ab\">&lt;b&gt;err&lt;/b&gt;</span> ok"),
            "{h}"
        );
        assert!(!h.contains("<b>"));
    }

    #[test]
    fn groups_fold() {
        let (h, next) = lines(1, "::group::Build\nmake\n::endgroup::\ndone\n");
        let h = h.into_string();
        assert_eq!(next, 5);
        assert!(
            h.starts_with("<details class=\"grp\" open><summary>"),
            "{h}"
        );
        assert!(h.contains("<span class=\"gname\">Build</span>"));
        assert_eq!(h.matches("</details>").count(), 1);
        let (h, _) = lines(1, "::group::open\nx\n");
        assert_eq!(h.into_string().matches("</details>").count(), 1);
    }
}
