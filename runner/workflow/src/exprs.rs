//! Expression checks on top of `gantry_expr`: allowed contexts and functions per key
//! (spec §4.2), `if:` conditions, and template-injection warnings.

use crate::schema::ctx;
use gantry_expr::{ParseOptions, Template};

/// Parse options recognising exactly the contexts in `bits` (cached per thread).
pub(crate) fn options(bits: u32) -> &'static ParseOptions {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    thread_local! {
        static LOCAL: std::cell::RefCell<HashMap<u32, &'static ParseOptions>> = Default::default();
    }
    static SHARED: OnceLock<Mutex<HashMap<u32, &'static ParseOptions>>> = OnceLock::new();
    LOCAL.with(|l| {
        *l.borrow_mut().entry(bits).or_insert_with(|| {
            // At most one leaked `ParseOptions` per distinct context set (a handful).
            let mut shared = SHARED
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *shared
                .entry(bits)
                .or_insert_with(|| Box::leak(Box::new(build_options(bits))))
        })
    })
}

fn build_options(bits: u32) -> ParseOptions {
    let names: Vec<&str> = ctx::NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    let mut o = ParseOptions::with_contexts(&names);
    o.status_function_args = bits & ctx::F_STATUS_ARGS != 0;
    o
}

/// Checks the functions an expression calls against `bits`.
fn check_functions<'a>(mut funcs: impl Iterator<Item = &'a str>, bits: u32) -> Result<(), String> {
    funcs.try_for_each(|f| {
        let needed = match f {
            "success" => ctx::F_SUCCESS,
            "failure" => ctx::F_FAILURE,
            "cancelled" => ctx::F_CANCELLED,
            "always" => ctx::F_ALWAYS,
            "hashfiles" => ctx::F_HASHFILES,
            _ => 0,
        };
        if needed != 0 && bits & needed == 0 {
            Err(format!("Unrecognized function: '{}'", display_fn(f)))
        } else {
            Ok(())
        }
    })
}

fn display_fn(f: &str) -> &str {
    match f {
        "hashfiles" => "hashFiles",
        other => other,
    }
}

/// Result of checking one scalar: the literal it collapses to, or the error message.
type Checked = Result<Option<String>, String>;

/// Strings longer than this are not memoized (long `run:` scripts rarely repeat).
const MEMO_MAX_LEN: usize = 512;
/// The memo is emptied when it holds this many strings (bounded memory in a server).
const MEMO_MAX_ENTRIES: usize = 16_384;

/// Memoizes checks per (allowed contexts, text) on this thread. Large workflows repeat
/// the same expressions (`${{ matrix.os }}`, `${{ secrets.TOKEN }}`, `if: success()`)
/// hundreds of times; the outcome depends only on the text and the context bits.
fn memoized(kind: u8, s: &str, bits: u32, check: impl FnOnce() -> Checked) -> Checked {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Memo = HashMap<Box<str>, Vec<(u8, u32, Checked)>>;
    thread_local! {
        static MEMO: RefCell<Memo> = RefCell::new(HashMap::new());
    }
    if s.len() > MEMO_MAX_LEN {
        return check();
    }
    let hit = MEMO.with(|m| {
        m.borrow().get(s).and_then(|v| {
            v.iter()
                .find(|(k, b, _)| *k == kind && *b == bits)
                .map(|(_, _, r)| r.clone())
        })
    });
    if let Some(r) = hit {
        return r;
    }
    let r = check();
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MEMO_MAX_ENTRIES {
            m.clear();
        }
        match m.get_mut(s) {
            Some(v) => v.push((kind, bits, r.clone())),
            None => {
                m.insert(s.into(), vec![(kind, bits, r.clone())]);
            }
        }
    });
    r
}

/// Checks a scalar containing `${{`. `Ok(Some(text))` when it collapses to a literal.
pub(crate) fn check_template(s: &str, bits: u32) -> Result<Option<String>, String> {
    // Text around or between expressions (`run:` scripts, `name: Job ${{ matrix.os }}`) is
    // mostly unique while the expressions in it repeat: check those one by one through the
    // memo. Long scalars take the whole path for the converted-length limit.
    if s.len() * 3 + 10 <= gantry_expr::MAX_LENGTH
        && let Some(exprs) = multi_part_exprs(s)
    {
        return check_parts(&exprs, bits);
    }
    memoized(0, s, bits, || check_template_uncached(s, bits))
}

/// The expressions of a template with several parts, split as `Template::parse_with`
/// splits it (a `}}` inside a quoted string does not close); `None` for a single part or
/// a scalar that does not split cleanly (unclosed or empty `${{ }}`).
fn multi_part_exprs(s: &str) -> Option<Vec<&str>> {
    let b = s.as_bytes();
    let mut exprs = Vec::new();
    let mut literal = false;
    let mut i = 0;
    while let Some(p) = s[i..].find("${{") {
        let start = i + p;
        literal |= start > i;
        let mut in_str = false;
        let mut j = start + 3;
        let end = loop {
            match b.get(j)? {
                b'\'' => in_str = !in_str,
                b'}' if !in_str && b[j - 1] == b'}' => break j,
                _ => {}
            }
            j += 1;
        };
        let raw = s[start + 3..end - 1].trim();
        if raw.is_empty() {
            return None;
        }
        exprs.push(raw);
        i = end + 1;
    }
    literal |= i < b.len();
    (!exprs.is_empty() && (literal || exprs.len() > 1)).then_some(exprs)
}

/// A multi-part template's outcome from its expressions: the first parse error, else the
/// first function not allowed here (the order `Template::parse_with` and
/// `check_template_uncached` report them in). Several parts never collapse to a literal.
fn check_parts(exprs: &[&str], bits: u32) -> Checked {
    let mut function_error = None;
    for raw in exprs {
        match memoized(2, raw, bits, || check_part(raw, bits)) {
            Err(parse_error) => return Err(parse_error),
            Ok(Some(e)) => {
                function_error.get_or_insert(e);
            }
            Ok(None) => {}
        }
    }
    function_error.map_or(Ok(None), Err)
}

/// One expression of a multi-part template: `Err` is its parse error (as the template
/// reports it); `Ok(Some(message))` an unrecognized function, which only counts when no
/// later part fails to parse.
fn check_part(raw: &str, bits: u32) -> Checked {
    let e = gantry_expr::parse_with(raw, options(bits)).map_err(|e| e.located_message(raw))?;
    Ok(check_functions(e.called_functions(), bits).err())
}

fn check_template_uncached(s: &str, bits: u32) -> Checked {
    let t = Template::parse_with(s, options(bits)).map_err(|e| e.message)?;
    check_functions(t.called_functions(), bits)?;
    // The converted `format(...)` is at most 3× the scalar plus 10 chars (literal text at
    // most doubles when escaped; each `${{ e }}` of 5+ chars becomes `{n}, e`): build it
    // only when it could exceed the limit.
    if s.len() * 3 + 10 > gantry_expr::MAX_LENGTH
        && t.converted_expr()
            .is_some_and(|c| c.chars().count() > gantry_expr::MAX_LENGTH)
    {
        return Err(format!(
            "Exceeded max expression length {}",
            gantry_expr::MAX_LENGTH
        ));
    }
    Ok(match t {
        Template::Literal(l) => Some(l),
        _ => None,
    })
}

/// Checks an `if:` condition (plain text is an expression; `${{ }}` optional).
pub(crate) fn check_if(s: &str, bits: u32) -> Result<(), String> {
    memoized(1, s, bits, || check_if_uncached(s, bits).map(|()| None)).map(|_| ())
}

fn check_if_uncached(s: &str, bits: u32) -> Result<(), String> {
    let opts = options(bits);
    let t = Template::parse_with(s, opts).map_err(|e| e.message)?;
    match t {
        Template::Literal(cond) => {
            let e = gantry_expr::parse_with(&cond, opts).map_err(|e| e.message)?;
            check_functions(e.called_functions(), bits)
        }
        other => check_functions(other.called_functions(), bits),
    }
}

/// Untrusted event fields that must not be interpolated into scripts (spec: template
/// injection). Patterns use `*` for one path segment.
const UNTRUSTED: &[&str] = &[
    "github.event.issue.title",
    "github.event.issue.body",
    "github.event.pull_request.title",
    "github.event.pull_request.body",
    "github.event.comment.body",
    "github.event.review.body",
    "github.event.review_comment.body",
    "github.event.discussion.title",
    "github.event.discussion.body",
    "github.event.pages.*.page_name",
    "github.event.commits.*.message",
    "github.event.commits.*.author.email",
    "github.event.commits.*.author.name",
    "github.event.head_commit.message",
    "github.event.head_commit.author.email",
    "github.event.head_commit.author.name",
    "github.event.head_commit.committer.email",
    "github.event.head_commit.committer.name",
    "github.event.pull_request.head.ref",
    "github.event.pull_request.head.label",
    "github.event.pull_request.head.repo.default_branch",
    "github.event.workflow_run.head_branch",
    "github.event.workflow_run.head_commit.message",
    "github.event.workflow_run.head_commit.author.email",
    "github.event.workflow_run.head_commit.author.name",
    "github.head_ref",
];

/// Untrusted inputs interpolated into `text` (the paths found, normalised).
pub(crate) fn untrusted_inputs(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let end = after.find("}}").unwrap_or(after.len());
        let inner = &after[..end];
        // Every untrusted path starts with `github`; most expressions in scripts
        // (`matrix.os`, `runner.os`) cannot name one: skip extracting their paths.
        let paths = if contains_ignore_ascii_case(inner, "github") {
            property_paths(inner)
        } else {
            Vec::new()
        };
        for path in paths {
            if path.starts_with("github.")
                && UNTRUSTED.iter().any(|p| path_matches(p, &path))
                && !found.contains(&path)
            {
                found.push(path);
            }
        }
        rest = &after[end.min(after.len())..];
    }
    found
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Extracts dotted property paths (`github.event.x[0].y` → `github.event.x.*.y`, lowercase).
fn property_paths(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut path = String::new();
            let mut seg_start = i;
            loop {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-')
                {
                    i += 1;
                }
                path.push_str(&expr[seg_start..i].to_ascii_lowercase());
                if i < b.len() && b[i] == b'.' {
                    path.push('.');
                    i += 1;
                    if i < b.len() && b[i] == b'*' {
                        path.push('*');
                        i += 1;
                        seg_start = i;
                        if i < b.len() && b[i] == b'.' {
                            continue;
                        }
                        break;
                    }
                    seg_start = i;
                } else if i < b.len() && b[i] == b'[' {
                    let close = expr[i..].find(']').map_or(b.len(), |p| i + p);
                    let inner = expr[i + 1..close.min(b.len())].trim();
                    if inner.starts_with('\'') && inner.ends_with('\'') && inner.len() >= 2 {
                        path.push('.');
                        path.push_str(&inner[1..inner.len() - 1].to_ascii_lowercase());
                    } else {
                        path.push_str(".*");
                    }
                    i = (close + 1).min(b.len());
                    if i < b.len() && b[i] == b'.' {
                        path.push('.');
                        i += 1;
                    }
                    seg_start = i;
                    if i >= b.len() || !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
                        break;
                    }
                } else {
                    break;
                }
            }
            out.push(path.trim_end_matches('.').to_string());
            continue;
        }
        i += 1;
    }
    out
}

fn path_matches(pattern: &str, path: &str) -> bool {
    // A pattern matches the path or a prefix of it (`github.event.issue.title.x`).
    let mut q = path.split('.');
    pattern
        .split('.')
        .all(|a| q.next().is_some_and(|b| a == "*" || b == "*" || a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_untrusted() {
        assert_eq!(
            untrusted_inputs("echo ${{ github.event.issue.title }}"),
            vec!["github.event.issue.title"]
        );
        assert_eq!(
            untrusted_inputs("echo ${{ github.event.commits[0].message }}"),
            vec!["github.event.commits.*.message"]
        );
        assert_eq!(
            untrusted_inputs("echo ${{ github.head_ref }}"),
            vec!["github.head_ref"]
        );
        assert!(
            untrusted_inputs("echo ${{ github.sha }} ${{ github.event.issue.number }}").is_empty()
        );
        assert!(untrusted_inputs("echo ${{ 'github.head_ref' }}").is_empty());
        assert_eq!(
            untrusted_inputs("${{ matrix.os }} ${{ GitHub.Head_Ref }}"),
            vec!["github.head_ref"]
        );
    }

    #[test]
    fn multi_part_templates_split_like_the_template_parser() {
        assert_eq!(multi_part_exprs("a ${{ x }} b"), Some(vec!["x"]));
        assert_eq!(multi_part_exprs("${{ x }}${{ y }}"), Some(vec!["x", "y"]));
        assert_eq!(multi_part_exprs("${{ 'a}}b' }}c"), Some(vec!["'a}}b'"]));
        assert_eq!(multi_part_exprs("${{ x }}"), None);
        assert_eq!(multi_part_exprs("a ${{ x"), None);
        assert_eq!(multi_part_exprs("a ${{ }}"), None);
    }

    #[test]
    fn multi_part_outcome_equals_whole_template() {
        let bits = ctx::GIVNSM;
        for s in [
            "echo ${{ matrix.os }} and ${{ github.sha }}",
            "x ${{ secrets.a }} ${{ matrix.os }}",
            "x ${{ success() }} ${{ 1 + }}",
            "x ${{ always() }} ${{ failure() }}",
            "x ${{ fromJSON(matrix.x) }} y",
            "x ${{ 'lit' }} y",
        ] {
            assert_eq!(
                check_template(s, bits),
                check_template_uncached(s, bits),
                "{s}"
            );
        }
    }

    #[test]
    fn contexts_and_functions() {
        assert!(check_template("${{ matrix.os }}", ctx::GIVNSM).is_ok());
        assert!(check_template("${{ secrets.x }}", ctx::GIVNSM).is_err());
        assert!(check_if("success() && matrix.x", ctx::JOB_IF).is_err());
        assert!(check_if("always()", ctx::JOB_IF).is_ok());
        assert!(check_if("hashFiles('x') != ''", ctx::STEP_IF).is_ok());
        assert!(check_if("hashFiles('x') != ''", ctx::JOB_IF).is_err());
        assert_eq!(
            check_template("${{ 'a' }}", ctx::GIV).unwrap(),
            Some("a".into())
        );
    }
}
