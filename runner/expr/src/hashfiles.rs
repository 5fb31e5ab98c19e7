//! `hashFiles()` (spec §3.8): `@actions/glob` patterns relative to the workspace, files in
//! depth-first byte-sorted order, `sha256` over each file's raw `sha256` digest.

use crate::{ErrorKind, ExprError};
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};

fn err(msg: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Evaluation, msg)
}

struct Pattern {
    negate: bool,
    segs: Vec<String>,
}

/// Computes `hashFiles(patterns…)` for `workspace`: lowercase hex, or `""` if no file matched.
pub fn hash_files(workspace: &Path, patterns: &[String]) -> Result<String, ExprError> {
    let mut args = patterns;
    let mut follow = false;
    if let Some(first) = args.first() {
        if first == "--follow-symbolic-links" {
            follow = true;
            args = &args[1..];
        } else if first.starts_with("--") {
            return Err(err(format!("Invalid glob option {first}")));
        }
    }
    let ws = normalize(workspace);
    let mut pats = Vec::new();
    for line in args.join("\n").lines() {
        let mut line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut negate = false;
        while let Some(rest) = line.strip_prefix('!') {
            negate = !negate;
            line = rest;
        }
        if line.is_empty() {
            continue;
        }
        let p = if Path::new(line).is_absolute() {
            PathBuf::from(line)
        } else {
            ws.join(line)
        };
        pats.push(Pattern {
            negate,
            segs: segments(&normalize(&p)),
        });
    }
    // Search roots: the literal prefix of each include pattern, outermost first.
    let mut roots: Vec<Vec<String>> = Vec::new();
    for p in pats.iter().filter(|p| !p.negate) {
        let lit: Vec<String> = p
            .segs
            .iter()
            .take_while(|s| !has_magic(s))
            .cloned()
            .collect();
        if !roots.contains(&lit) {
            roots.push(lit);
        }
    }
    // Like @actions/glob `getSearchPaths`: pattern order, dropping a search path that has
    // another search path as an ancestor.
    let mut kept: Vec<Vec<String>> = Vec::new();
    for r in &roots {
        if !roots.iter().any(|o| o.len() < r.len() && r.starts_with(o)) {
            kept.push(r.clone());
        }
    }
    let mut outer = Sha256::new();
    let mut count = 0usize;
    let prefix = ws.clone();
    for root in kept {
        let root_path: PathBuf = std::iter::once("/".to_string())
            .chain(root.iter().cloned())
            .collect();
        let mut stack = vec![(root_path, root)];
        while let Some((path, segs)) = stack.pop() {
            let meta = if follow {
                std::fs::metadata(&path)
            } else {
                std::fs::symlink_metadata(&path)
            };
            let Ok(meta) = meta else { continue };
            if meta.is_dir() {
                if !pats
                    .iter()
                    .any(|p| !p.negate && seg_match(&p.segs, &segs, true))
                {
                    continue;
                }
                let Ok(rd) = std::fs::read_dir(&path) else {
                    continue;
                };
                let mut names: Vec<std::ffi::OsString> =
                    rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
                names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
                for n in names.into_iter().rev() {
                    let mut s = segs.clone();
                    s.push(n.to_string_lossy().into_owned());
                    stack.push((path.join(&n), s));
                }
                continue;
            }
            let mut matched = false;
            for p in &pats {
                if seg_match(&p.segs, &segs, false) {
                    matched = !p.negate;
                }
            }
            if !matched || !path.starts_with(&prefix) || path == prefix {
                continue;
            }
            // hashFiles follows a symlink to a file; directories are skipped.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                _ => continue,
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| err(format!("hashFiles: {}: {e}", path.display())))?;
            outer.update(Sha256::digest(&bytes));
            count += 1;
        }
    }
    Ok(if count == 0 {
        String::new()
    } else {
        hex::encode(outer.finalize())
    })
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn segments(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches path segments against pattern segments. A path that continues past a full match
/// is a descendant (implicit descendants). With `partial`, also true when the path could
/// still lead to a match (used to prune directories).
fn seg_match(pat: &[String], path: &[String], partial: bool) -> bool {
    match pat.first() {
        None => true,
        Some(p) if p == "**" => (0..=path.len()).any(|k| seg_match(&pat[1..], &path[k..], partial)),
        Some(p) => match path.first() {
            None => partial,
            Some(s) => {
                glob_seg(p.as_bytes(), s.as_bytes()) && seg_match(&pat[1..], &path[1..], partial)
            }
        },
    }
}

/// One path segment: `*`, `?`, `[…]` (with `!`/`^` negation); dot files match.
fn glob_seg(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|k| glob_seg(&p[1..], &s[k..])),
        Some(b'?') => !s.is_empty() && glob_seg(&p[1..], &s[1..]),
        Some(b'[') => {
            if let Some(close) = p.iter().skip(2).position(|&c| c == b']').map(|x| x + 2) {
                let Some(&c) = s.first() else { return false };
                let mut set = &p[1..close];
                let neg = matches!(set.first(), Some(b'!' | b'^'));
                if neg {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && glob_seg(&p[close + 1..], &s[1..])
            } else {
                s.first() == Some(&b'[') && glob_seg(&p[1..], &s[1..])
            }
        }
        Some(&c) => s.first() == Some(&c) && glob_seg(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_seg(b"*.json", b"package.json"));
        assert!(glob_seg(b"[ab]?", b"bz"));
        assert!(!glob_seg(b"[!ab]?", b"bz"));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(seg_match(
            &s(&["a", "**", "*.rs"]),
            &s(&["a", "b", "c.rs"]),
            false
        ));
        assert!(seg_match(&s(&["a", "b"]), &s(&["a", "b", "c.rs"]), false));
        assert!(!seg_match(&s(&["a", "x"]), &s(&["a", "b"]), true));
    }
}
