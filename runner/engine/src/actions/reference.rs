//! Parsing of `uses:` references (GHA-SEMANTICS §8.1).

use std::fmt;

/// A parsed `uses:` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsesRef {
    /// `./path/to/dir` (or `.\path`): an action in the workspace.
    Local { path: String },
    /// `owner/repo[/sub/path]@ref`.
    Remote(RemoteRef),
    /// `docker://image[:tag]`.
    Docker { image: String },
    /// `./.github/workflows/f.yml`: a reusable workflow in the workspace (job-level `uses`).
    /// `$/.github/workflows/f.yml` parses to this too (path `./…`): both name the calling
    /// workflow's own repository at the running commit.
    LocalWorkflow { path: String },
    /// `$/path/to/dir`: an action in the workflow's own repository at the running commit,
    /// whether or not it was checked out (`path` is kept as `./path/to/dir`).
    SelfAction { path: String },
    /// `owner/repo/.github/workflows/f.yml@ref` (job-level `uses`).
    RemoteWorkflow(RemoteRef),
}

/// `owner/repo[/path]@ref`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteRef {
    pub owner: String,
    pub repo: String,
    /// Path inside the repository ('' for the root), `/`-separated.
    pub path: String,
    pub git_ref: String,
}

impl RemoteRef {
    /// `owner/repo` or `owner/repo/path` (without the ref), as written (case kept).
    pub fn name(&self) -> String {
        if self.path.is_empty() {
            format!("{}/{}", self.owner, self.repo)
        } else {
            format!("{}/{}/{}", self.owner, self.repo, self.path)
        }
    }

    /// Whether the ref looks like a commit sha (7 to 40 hex digits).
    pub fn ref_is_sha(&self) -> bool {
        is_hex_sha(&self.git_ref)
    }
}

pub(crate) use gantry_git::{is_full_sha, is_hex_sha};

impl fmt::Display for UsesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsesRef::Local { path } | UsesRef::LocalWorkflow { path } => write!(f, "{path}"),
            UsesRef::SelfAction { path } => {
                write!(f, "$/{}", path.trim_start_matches("./"))
            }
            UsesRef::Remote(r) | UsesRef::RemoteWorkflow(r) => {
                write!(f, "{}@{}", r.name(), r.git_ref)
            }
            UsesRef::Docker { image } => write!(f, "docker://{image}"),
        }
    }
}

/// Why a `uses:` value is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid action reference '{uses}': {reason}")]
pub struct ReferenceError {
    pub uses: String,
    pub reason: String,
}

fn err(uses: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        uses: uses.to_string(),
        reason: reason.into(),
    }
}

fn is_workflow_path(path: &str) -> bool {
    let p = path.trim_start_matches("./");
    let lower = p.to_ascii_lowercase();
    lower.starts_with(".github/workflows/") && (lower.ends_with(".yml") || lower.ends_with(".yaml"))
}

/// Parses a `uses:` value.
pub fn parse_uses(uses: &str) -> Result<UsesRef, ReferenceError> {
    let u = uses.trim();
    if u.is_empty() {
        return Err(err(uses, "the value is empty"));
    }
    if let Some(image) = u.strip_prefix("docker://") {
        let image = image.trim();
        if image.is_empty() || image.contains(char::is_whitespace) {
            return Err(err(uses, "expected docker://image[:tag]"));
        }
        return Ok(UsesRef::Docker {
            image: image.to_string(),
        });
    }
    if let Some(rest) = u.strip_prefix("$/") {
        return parse_self(uses, rest);
    }
    if u.starts_with("./") || u.starts_with(".\\") || u == "." {
        let path = u.replace('\\', "/");
        if path.split('/').any(|s| s == "..") {
            return Err(err(
                uses,
                "'..' is not allowed in a local action path (it must stay inside the repository)",
            ));
        }
        if path.contains('@') && is_workflow_path(path.split('@').next().unwrap_or("")) {
            return Err(err(uses, "a local reusable workflow takes no @ref"));
        }
        if is_workflow_path(&path) {
            return Ok(UsesRef::LocalWorkflow { path });
        }
        return Ok(UsesRef::Local { path });
    }
    if u.starts_with('/') {
        return Err(err(
            uses,
            "absolute paths are not allowed; use ./path relative to the workspace",
        ));
    }
    let parts: Vec<&str> = u.split('@').collect();
    if parts.len() != 2 {
        return Err(err(
            uses,
            if parts.len() == 1 {
                "expected owner/repo@ref, ./local/path or docker://image (the @ref is required)"
            } else {
                "more than one '@'"
            },
        ));
    }
    let (name, git_ref) = (parts[0], parts[1]);
    if git_ref.is_empty() {
        return Err(err(uses, "the ref after '@' is empty"));
    }
    if git_ref.contains(char::is_whitespace) {
        return Err(err(uses, "the ref contains whitespace"));
    }
    let segs: Vec<&str> = name.split(['/', '\\']).collect();
    if segs.len() < 2 {
        return Err(err(uses, "expected owner/repo before '@'"));
    }
    if segs.iter().any(|s| s.is_empty()) {
        return Err(err(uses, "empty path segment"));
    }
    if segs.contains(&"..") {
        return Err(err(uses, "'..' is not allowed in an action path"));
    }
    let ok_name = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !ok_name(segs[0]) || !ok_name(segs[1]) {
        return Err(err(
            uses,
            "owner and repository may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    let r = RemoteRef {
        owner: segs[0].to_string(),
        repo: segs[1].to_string(),
        path: segs[2..].join("/"),
        git_ref: git_ref.to_string(),
    };
    if is_workflow_path(&r.path) {
        Ok(UsesRef::RemoteWorkflow(r))
    } else {
        Ok(UsesRef::Remote(r))
    }
}

/// `$/path` (GHA-SEMANTICS §8.1): the workflow's own repository at the running commit,
/// with no `@ref`.
fn parse_self(uses: &str, rest: &str) -> Result<UsesRef, ReferenceError> {
    let rest = rest.replace('\\', "/");
    if rest.contains('@') {
        return Err(err(
            uses,
            "a $/ reference takes no @ref (it is the workflow's own repository at the running commit)",
        ));
    }
    if rest.split('/').any(|s| s == "..") {
        return Err(err(
            uses,
            "'..' is not allowed in a $/ path (it must stay inside the repository)",
        ));
    }
    if rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(err(uses, "expected $/path/inside/the/repository"));
    }
    let path = format!("./{}", rest.trim_end_matches('/'));
    if is_workflow_path(&path) {
        Ok(UsesRef::LocalWorkflow { path })
    } else {
        Ok(UsesRef::SelfAction { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(matches!(
            parse_uses("./a/b").unwrap(),
            UsesRef::Local { .. }
        ));
        assert!(matches!(
            parse_uses("./.github/workflows/x.yml").unwrap(),
            UsesRef::LocalWorkflow { .. }
        ));
        assert!(matches!(
            parse_uses("docker://alpine:3").unwrap(),
            UsesRef::Docker { .. }
        ));
        let UsesRef::Remote(r) = parse_uses("o/r/sub\\dir@v1").unwrap() else {
            panic!()
        };
        assert_eq!(r.path, "sub/dir");
        assert!(matches!(
            parse_uses("o/r/.github/workflows/f.yaml@main").unwrap(),
            UsesRef::RemoteWorkflow(_)
        ));
        assert!(parse_uses("o/r").is_err());
        assert!(parse_uses("o/r@a@b").is_err());
        assert!(parse_uses("o@v1").is_err());
        assert!(parse_uses("o//x@v1").is_err());
        assert!(parse_uses("docker://").is_err());
    }

    #[test]
    fn self_repository_forms() {
        assert_eq!(
            parse_uses("$/.github/workflows/plan.yml").unwrap(),
            UsesRef::LocalWorkflow {
                path: "./.github/workflows/plan.yml".into()
            }
        );
        let a = parse_uses("$/.github/actions/x").unwrap();
        assert_eq!(
            a,
            UsesRef::SelfAction {
                path: "./.github/actions/x".into()
            }
        );
        assert_eq!(a.to_string(), "$/.github/actions/x");
        assert_eq!(
            parse_uses("$/").unwrap(),
            UsesRef::SelfAction { path: "./".into() }
        );
        for bad in [
            "$/.github/actions/x@v1",
            "$/../other",
            "$/a/../../b",
            "$//abs",
        ] {
            assert!(parse_uses(bad).is_err(), "{bad}");
        }
    }
}
