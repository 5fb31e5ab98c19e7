//! YAML loading: the only module that touches YAML. Drives the `granit-parser` event parser
//! (re-exported by `serde-saphyr`) and builds a positioned tree with YAML 1.2 core-schema
//! scalars. Duplicate keys are reported by the schema reader (case-insensitively, as
//! GitHub does); merge keys and unknown tags are errors here.

use crate::model::{Node, Span, Spanned};
use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span as YSpan};
use std::collections::HashMap;

/// A YAML node after core-schema resolution, with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YNode {
    pub kind: YKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum YKind {
    Null,
    Bool(bool),
    Number(f64),
    /// A string; `plain` is false for quoted and block scalars.
    Str(String, bool),
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>),
}

impl YNode {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            YKind::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The scalar as text, the way GitHub converts a literal to a string
    /// (`null` → empty, numbers in JavaScript's shortest form).
    pub fn scalar_string(&self) -> Option<String> {
        match &self.kind {
            YKind::Null => Some(String::new()),
            YKind::Bool(b) => Some(b.to_string()),
            YKind::Number(n) => Some(number_to_string(*n)),
            YKind::Str(s, _) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn is_scalar(&self) -> bool {
        !matches!(self.kind, YKind::Seq(_) | YKind::Map(_))
    }

    pub fn to_node(&self) -> Spanned<Node> {
        let n = match &self.kind {
            YKind::Null => Node::Null,
            YKind::Bool(b) => Node::Bool(*b),
            YKind::Number(n) => Node::Number(*n),
            YKind::Str(s, _) => Node::String(s.clone()),
            YKind::Seq(items) => Node::Seq(items.iter().map(|i| i.to_node()).collect()),
            YKind::Map(entries) => Node::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Spanned::new(k.scalar_string().unwrap_or_default(), k.span),
                            v.to_node(),
                        )
                    })
                    .collect(),
            ),
        };
        Spanned::new(n, self.span)
    }
}

/// JavaScript's `Number.prototype.toString` for the common cases.
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if n == n.trunc() && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// A loader error: message and position.
#[derive(Debug, Clone)]
pub(crate) struct LoadError {
    pub span: Span,
    pub message: String,
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
pub(crate) fn resolve_plain(s: &str) -> YKind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return YKind::Null,
        "true" | "True" | "TRUE" => return YKind::Bool(true),
        "false" | "False" | "FALSE" => return YKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return YKind::Number(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return YKind::Number(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return YKind::Number(f64::NAN),
        _ => {}
    }
    let b = s.as_bytes();
    if let Some(hex) = s.strip_prefix("0x") {
        if !hex.is_empty()
            && hex.bytes().all(|c| c.is_ascii_hexdigit())
            && let Ok(v) = u64::from_str_radix(hex, 16)
        {
            return YKind::Number(v as f64);
        }
        return YKind::Str(s.to_string(), true);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if !oct.is_empty()
            && oct.bytes().all(|c| (b'0'..=b'7').contains(&c))
            && let Ok(v) = u64::from_str_radix(oct, 8)
        {
            return YKind::Number(v as f64);
        }
        return YKind::Str(s.to_string(), true);
    }
    if is_core_number(b)
        && let Ok(v) = s.parse::<f64>()
    {
        return YKind::Number(v);
    }
    YKind::Str(s.to_string(), true)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_number(b: &[u8]) -> bool {
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - fs;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let es = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == es {
            return false;
        }
    }
    i == b.len()
}

/// The position of a block scalar's `|` / `>` indicator (GitHub reports block scalars
/// there), given the byte offset where its content starts; and whether it keeps (`+`)
/// trailing line breaks.
fn block_header(text: &str, content: usize, content_line: u32) -> Option<(Span, bool)> {
    let before = text.get(..content)?;
    let ind = before.rfind(['|', '>'])?;
    let line_start = before[..ind].rfind('\n').map_or(0, |p| p + 1);
    let line = content_line
        .saturating_sub(before[ind..].matches('\n').count() as u32)
        .max(1);
    let col = before[line_start..ind].chars().count() as u32 + 1;
    let header_end = before[ind..].find('\n').map_or(before.len(), |p| ind + p);
    let keep = before[ind..header_end]
        .split('#')
        .next()
        .unwrap_or("")
        .contains('+');
    Some((
        Span {
            offset: ind,
            len: content.saturating_sub(ind),
            line,
            col,
        },
        keep,
    ))
}

/// Maximum number of nodes, counting alias expansions (guards against "billion laughs").
const MAX_NODES: usize = 2_000_000;

/// The error for a tree past `limit` nodes: aliases are blamed only when the file has some.
fn too_many_nodes(limit: usize, aliases: usize) -> String {
    if aliases > 0 {
        format!(
            "too many YAML nodes: more than {limit} after expanding {aliases} alias(es) (the limit guards against alias bombs)"
        )
    } else {
        format!("too many YAML nodes: the file has more than {limit} (the limit of one file)")
    }
}

struct Builder<'a> {
    text: &'a str,
    anchors: HashMap<usize, YNode>,
    errors: Vec<LoadError>,
    nodes: usize,
    max_nodes: usize,
    /// Aliases expanded so far.
    aliases: usize,
    /// Stack of open collections: (node, pending key for maps, anchor id).
    stack: Vec<Frame>,
    root: Option<YNode>,
}

struct Frame {
    node: YNode,
    key: Option<YNode>,
    anchor: usize,
}

pub(crate) fn to_span(text: &str, s: &YSpan) -> Span {
    let start = marker_offset(text, &s.start);
    let end = marker_offset(text, &s.end).max(start);
    Span {
        offset: start,
        len: end - start,
        line: s.start.line() as u32,
        col: s.start.col() as u32 + 1,
    }
}

fn marker_offset(text: &str, m: &Marker) -> usize {
    match m.byte_offset() {
        Some(b) => b.min(text.len()),
        None => text
            .char_indices()
            .nth(m.index())
            .map(|(i, _)| i)
            .unwrap_or(text.len()),
    }
}

impl<'a> Builder<'a> {
    fn push_value(&mut self, node: YNode) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(frame) => match &mut frame.node.kind {
                YKind::Seq(items) => items.push(node),
                YKind::Map(entries) => match frame.key.take() {
                    None => frame.key = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                _ => {}
            },
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                node: YNode {
                    kind: YKind::Map(_),
                    ..
                },
                key: None,
                ..
            })
        )
    }

    /// Counts `n` more nodes; past the limit records the error and says stop.
    fn count(&mut self, n: usize, span: Span) -> bool {
        self.nodes += n;
        if self.nodes <= self.max_nodes {
            return true;
        }
        let message = too_many_nodes(self.max_nodes, self.aliases);
        self.error(span, message);
        false
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(LoadError {
            span,
            message: message.into(),
        });
    }
}

fn node_count(n: &YNode) -> usize {
    match &n.kind {
        YKind::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        YKind::Map(e) => {
            1 + e
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// Parses YAML text into a positioned tree. `Ok(None)` for an empty document. A syntax
/// error gives one error at the parser's position; other problems (merge keys, tags) are
/// collected and returned with the tree.
pub(crate) fn parse_yaml(text: &str) -> (Option<YNode>, Vec<LoadError>) {
    parse_yaml_limited(text, MAX_NODES)
}

fn parse_yaml_limited(text: &str, max_nodes: usize) -> (Option<YNode>, Vec<LoadError>) {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        text,
        anchors: HashMap::new(),
        errors: Vec::new(),
        nodes: 0,
        max_nodes,
        aliases: 0,
        stack: Vec::new(),
        root: None,
    };
    let mut docs = 0;
    while let Some(ev) = parser.next_event() {
        let (ev, yspan) = match ev {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                let offset = marker_offset(text, m);
                let span = Span {
                    offset,
                    len: 0,
                    line: m.line().max(1) as u32,
                    col: m.col() as u32 + 1,
                };
                b.errors.push(LoadError {
                    span,
                    message: format!("YAML syntax error: {}", e.info()),
                });
                return (None, b.errors);
            }
        };
        let span = to_span(b.text, &yspan);
        let is_map = matches!(ev, Event::MappingStart(..));
        match ev {
            Event::DocumentStart(..) => {
                docs += 1;
                if docs > 1 {
                    // GitHub's reader expects the stream to end after one document.
                    b.error(
                        span,
                        "a second YAML document starts here: a workflow file holds exactly one document",
                    );
                    break;
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                if !b.count(1, span) {
                    return (None, b.errors);
                }
                let plain = style == ScalarStyle::Plain;
                let mut span = span;
                let mut value = value;
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    let end = span.offset + span.len;
                    if let Some((s, keep)) = block_header(b.text, span.offset, span.line) {
                        span = s;
                        span.len = end.saturating_sub(span.offset);
                        // Clip chomping: no final line break when the text ends without one.
                        if !keep
                            && !b.text.ends_with('\n')
                            && end >= b.text.trim_end().len()
                            && value.ends_with('\n')
                        {
                            let mut v = value.to_string();
                            v.pop();
                            value = v.into();
                        }
                    }
                }
                let mut kind = if plain {
                    resolve_plain(&value)
                } else {
                    YKind::Str(value.to_string(), false)
                };
                if let Some(tag) = tag {
                    match tag.core_suffix() {
                        Some("str") => kind = YKind::Str(value.to_string(), false),
                        Some(t @ ("null" | "bool" | "int" | "float")) => {
                            let k = resolve_plain(&value);
                            let fits = matches!(
                                (t, &k),
                                ("null", YKind::Null)
                                    | ("bool", YKind::Bool(_))
                                    | ("int", YKind::Number(_))
                                    | ("float", YKind::Number(_))
                            );
                            if !plain {
                                b.error(span, format!("The scalar style '{style:?}' on line {} and column {} is not valid with the tag 'tag:yaml.org,2002:{t}'", span.line, span.col));
                            } else if !fits {
                                b.error(span, format!("The value '{value}' on line {} and column {} is invalid for the type 'tag:yaml.org,2002:{t}'", span.line, span.col));
                            }
                            kind = k;
                        }
                        _ => b.error(span, format!("unsupported YAML tag '{}'", tag.original())),
                    }
                }
                if plain && &*value == "<<" && b.is_key_position() {
                    b.error(span, "merge keys ('<<') are not supported");
                }
                let node = YNode { kind, span };
                if anchor != 0 {
                    b.anchors.insert(anchor, node.clone());
                }
                b.push_value(node);
            }
            Event::SequenceStart(_, anchor, tag) | Event::MappingStart(_, anchor, tag) => {
                if !b.count(1, span) {
                    return (None, b.errors);
                }
                if let Some(tag) = tag {
                    let ok = matches!(
                        (tag.core_suffix(), is_map),
                        (Some("map"), true) | (Some("seq"), false)
                    );
                    if !ok {
                        b.error(span, format!("unsupported YAML tag '{}'", tag.original()));
                    }
                }
                let kind = if is_map {
                    YKind::Map(Vec::new())
                } else {
                    YKind::Seq(Vec::new())
                };
                b.stack.push(Frame {
                    node: YNode { kind, span },
                    key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(mut frame) = b.stack.pop() {
                    // A collection ends at its end marker.
                    let end = span.offset + span.len;
                    if end > frame.node.span.offset {
                        frame.node.span.len = end - frame.node.span.offset;
                    }
                    if let (Some(k), YKind::Map(entries)) = (frame.key.take(), &mut frame.node.kind)
                    {
                        let null_span = Span { len: 0, ..k.span };
                        entries.push((
                            k,
                            YNode {
                                kind: YKind::Null,
                                span: null_span,
                            },
                        ));
                    }
                    if frame.anchor != 0 {
                        b.anchors.insert(frame.anchor, frame.node.clone());
                    }
                    b.push_value(frame.node);
                }
            }
            Event::Alias(id) => match b.anchors.get(&id).cloned() {
                Some(mut n) => {
                    b.aliases += 1;
                    if !b.count(node_count(&n), span) {
                        return (None, b.errors);
                    }
                    if n.is_scalar() {
                        n.span = span;
                    }
                    b.push_value(n);
                }
                None => {
                    b.error(span, "unknown YAML alias");
                    b.push_value(YNode {
                        kind: YKind::Null,
                        span,
                    });
                }
            },
            Event::StreamEnd => break,
            _ => {}
        }
    }
    (b.root, b.errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        assert_eq!(resolve_plain("on"), YKind::Str("on".into(), true));
        assert_eq!(resolve_plain("yes"), YKind::Str("yes".into(), true));
        assert_eq!(resolve_plain("True"), YKind::Bool(true));
        assert_eq!(resolve_plain("~"), YKind::Null);
        assert_eq!(resolve_plain("0x1F"), YKind::Number(31.0));
        assert_eq!(resolve_plain("0o17"), YKind::Number(15.0));
        assert_eq!(resolve_plain("1.5e3"), YKind::Number(1500.0));
        assert_eq!(resolve_plain("1_000"), YKind::Str("1_000".into(), true));
        assert_eq!(resolve_plain("3.10"), YKind::Number(3.1));
        assert!(matches!(resolve_plain(".nan"), YKind::Number(n) if n.is_nan()));
    }

    #[test]
    fn tree_and_positions() {
        let (root, errs) =
            parse_yaml("on: push\njobs:\n  a:\n    x: \"true\"\n    y: &v [1, 2]\n    z: *v\n");
        assert!(errs.is_empty(), "{errs:?}");
        let root = root.unwrap();
        let YKind::Map(e) = &root.kind else { panic!() };
        assert_eq!(e[0].0.as_str(), Some("on"));
        assert_eq!((e[1].0.span.line, e[1].0.span.col), (2, 1));
        let YKind::Map(jobs) = &e[1].1.kind else {
            panic!()
        };
        let YKind::Map(a) = &jobs[0].1.kind else {
            panic!()
        };
        assert_eq!(a[0].1.kind, YKind::Str("true".into(), false));
        assert_eq!((a[0].1.span.line, a[0].1.span.col), (4, 8));
        assert_eq!(a[1].1.kind, a[2].1.kind);
    }

    #[test]
    fn syntax_error_position() {
        let (root, errs) = parse_yaml("a: [1, 2\nb: 3\n");
        assert!(root.is_none());
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn merge_key_is_error() {
        let (_, errs) = parse_yaml("a: &x {b: 1}\nc:\n  <<: *x\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].span.line, 3);
    }

    #[test]
    fn second_document_is_an_error_where_it_starts() {
        let (_, errs) = parse_yaml("on: push\njobs: {}\n---\non: pull_request\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].span.line, errs[0].span.col), (3, 1), "{errs:?}");
        assert!(errs[0].message.contains("second YAML document"), "{errs:?}");
        // A single document with an explicit start marker is fine.
        let (root, errs) = parse_yaml("---\non: push\n...\n");
        assert!(root.is_some() && errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn node_limit_blames_aliases_only_when_there_are_some() {
        let (root, errs) = parse_yaml_limited("a: [1, 2, 3, 4, 5, 6]\n", 5);
        assert!(root.is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("more than 5"), "{errs:?}");
        assert!(!errs[0].message.contains("alias"), "{errs:?}");
        let (_, errs) = parse_yaml_limited("a: &x [1, 2]\nb: *x\n", 6);
        assert!(errs[0].message.contains("1 alias"), "{errs:?}");
        assert!(errs[0].message.contains("more than 6"), "{errs:?}");
    }
}
