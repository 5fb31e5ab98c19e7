//! `$GITHUB_STEP_SUMMARY` Markdown as HTML that cannot run anything: GitHub-flavoured
//! tables, task lists, strikethrough and code blocks render; raw HTML in the Markdown is
//! shown as text (escaped), and a link or image whose URL has a scheme other than http,
//! https or mailto (`javascript:`, `data:`, `vbscript:` …) loses its URL.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

/// The Markdown as safe HTML.
pub fn render(markdown: &str) -> String {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(markdown, opts).map(|ev| match ev {
        // Raw HTML becomes text: `push_html` escapes text.
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// The URL when it is relative or http(s)/mailto, else `#`. Browsers ignore ASCII
/// whitespace and control characters inside a scheme (`java\tscript:`), so those are
/// dropped before the scheme is read.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect();
    let scheme_end = squeezed.find(':');
    let before_path = squeezed.find(['/', '?', '#']).unwrap_or(usize::MAX);
    match scheme_end {
        Some(i) if i < before_path => {
            let scheme = squeezed[..i].to_ascii_lowercase();
            if matches!(scheme.as_str(), "http" | "https" | "mailto") {
                url
            } else {
                CowStr::Borrowed("#")
            }
        }
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn raw_html_is_escaped_and_script_urls_are_dropped() {
        let html = render(
            "# Report\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
             [click](javascript:alert(3)) [tab](java\tscript:alert(4)) \
             [ok](https://example.test/a) [rel](../b)\n\n![i](data:text/html;base64,AAAA)\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img src=\"x\""), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            !html.to_ascii_lowercase().contains("href=\"javascript"),
            "{html}"
        );
        assert!(!html.contains("src=\"data:"), "{html}");
        assert!(html.contains("href=\"https://example.test/a\""), "{html}");
        assert!(html.contains("href=\"../b\""), "{html}");
    }

    #[test]
    fn tables_and_code_blocks_render_as_github_does() {
        let html = render("| a | b |\n|---|--:|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<th>a</th>"), "{html}");
        assert!(
            html.contains("<td style=\"text-align: right\">2</td>"),
            "{html}"
        );
        assert!(
            html.contains("<pre><code class=\"language-rust\">fn main() {}"),
            "{html}"
        );
    }
}
