//! The branch/tag/path filter lists (GHA-SEMANTICS §2.4).

use gantry_workflow::Spanned;
use gantry_workflow::pattern::{Pattern, PatternError};

/// GitHub considers at most this many changed files for `paths` filters [D].
pub const MAX_CHANGED_FILES: usize = 300;

/// Compiles a filter list as written.
pub fn compile(patterns: &[Spanned<String>]) -> Result<Vec<Pattern>, PatternError> {
    patterns
        .iter()
        .map(|p| Pattern::compile(&p.value))
        .collect()
}

/// Compiles plain strings (tests, CLI).
pub fn compile_strs(patterns: &[&str]) -> Result<Vec<Pattern>, PatternError> {
    patterns.iter().map(|p| Pattern::compile(p)).collect()
}

/// The last pattern matching `item` decides: a positive one includes it, a negative one
/// excludes it. `None` when no pattern matches.
pub fn last_match<'p>(patterns: &'p [Pattern], item: &str) -> Option<&'p Pattern> {
    patterns.iter().rev().find(|p| p.is_match(item))
}

/// True when the last matching pattern is positive.
pub fn is_included(patterns: &[Pattern], item: &str) -> bool {
    last_match(patterns, item).is_some_and(|p| !p.negative)
}

/// `branches` / `tags` / `paths`: passes when there are no patterns, or when at least one
/// item is included (for paths, one included changed file is enough).
pub fn include_list(patterns: &[Pattern], items: &[&str]) -> bool {
    patterns.is_empty() || items.iter().any(|i| is_included(patterns, i))
}

/// `branches-ignore` / `tags-ignore` / `paths-ignore`: passes (the workflow runs) unless
/// EVERY item is ignored; one item that is not ignored is enough to run. An item is ignored
/// when the last pattern matching it is positive (a later `!pattern` un-ignores it).
pub fn ignore_list(patterns: &[Pattern], items: &[&str]) -> bool {
    patterns.is_empty() || items.iter().any(|i| !is_included(patterns, i))
}

/// The first item that decides an include list (for explanations).
pub fn first_included<'a>(patterns: &[Pattern], items: &[&'a str]) -> Option<&'a str> {
    items.iter().copied().find(|i| is_included(patterns, i))
}

/// The first item that is not ignored (for explanations).
pub fn first_not_ignored<'a>(patterns: &[Pattern], items: &[&'a str]) -> Option<&'a str> {
    items.iter().copied().find(|i| !is_included(patterns, i))
}

/// `[a, b]` as a filter list is shown in explanations.
pub fn show(patterns: &[Spanned<String>]) -> String {
    let v: Vec<&str> = patterns.iter().map(|p| p.value.as_str()).collect();
    format!("[{}]", v.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(p: &[&str], items: &[&str]) -> bool {
        include_list(&compile_strs(p).unwrap(), items)
    }
    fn ign(p: &[&str], items: &[&str]) -> bool {
        ignore_list(&compile_strs(p).unwrap(), items)
    }

    #[test]
    fn include_last_match_wins() {
        assert!(inc(&[], &["anything"]));
        assert!(inc(&["*.md", "!README.md"], &["hello.md"]));
        assert!(!inc(&["*.md", "!README.md"], &["README.md"]));
        assert!(inc(&["*.md", "!README.md", "README*"], &["README.md"]));
        assert!(!inc(&["*.md", "!README.md"], &["docs/hello.md"]));
        // one included file among many is enough
        assert!(inc(&["path/a", "path/b"], &["meta", "path/b", "other"]));
        assert!(!inc(&["*"], &["path/with/slash"]));
        // no items: fails
        assert!(!inc(&["**"], &[]));
        // docs: releases/**-alpha but not releases/**-beta ordering
        let p = ["releases/**", "!releases/**-alpha"];
        assert!(inc(&p, &["releases/10"]));
        assert!(!inc(&p, &["releases/10-alpha"]));
    }

    #[test]
    fn ignore_needs_every_item_ignored() {
        assert!(ign(&[], &["x"]));
        assert!(!ign(&["docs/**"], &["docs/a.md", "docs/b/c.md"]));
        assert!(ign(&["docs/**"], &["docs/a.md", "src/main.rs"]));
        assert!(!ign(
            &["path/a", "path/b", "path/c"],
            &["path/c", "path/b", "path/a"]
        ));
        assert!(ign(&["path/a", "path/b", "path/c"], &["path/c", "path/d"]));
        // a later negative pattern un-ignores
        assert!(ign(
            &["docs/**", "!docs/important.md"],
            &["docs/important.md"]
        ));
        assert!(!ign(&["docs/**", "!docs/important.md"], &["docs/other.md"]));
    }
}
