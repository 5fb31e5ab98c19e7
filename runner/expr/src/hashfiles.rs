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
    let ws_segs = segments(&ws);
    // Files are read beneath the workspace only: a symlink leading out of it is skipped
    // like a file outside GITHUB_WORKSPACE (a job must not learn a host file's digest).
    let Ok(beneath) = gantry_beneath::Root::open(&ws, "the workspace") else {
        return Ok(String::new());
    };
    for root in kept {
        // A search root above the workspace is searched from the workspace.
        let start = if ws_segs.starts_with(&root) {
            ws_segs.clone()
        } else if root.starts_with(&ws_segs) {
            root
        } else {
            continue;
        };
        let rel: PathBuf = start[ws_segs.len()..].iter().collect();
        let mut stack = vec![(rel, start)];
        while let Some((rel, segs)) = stack.pop() {
            let Ok(kind) = beneath.kind(&rel, follow) else {
                continue;
            };
            if kind == gantry_beneath::Kind::Dir {
                if !pats
                    .iter()
                    .any(|p| !p.negate && seg_match(&p.segs, &segs, true))
                {
                    continue;
                }
                let Ok(names) = beneath.read_dir(&rel) else {
                    continue;
                };
                for (n, _) in names.into_iter().rev() {
                    let mut s = segs.clone();
                    s.push(n.to_string_lossy().into_owned());
                    stack.push((rel.join(&n), s));
                }
                continue;
            }
            let mut matched = false;
            for p in &pats {
                if seg_match(&p.segs, &segs, false) {
                    matched = !p.negate;
                }
            }
            if !matched || rel.as_os_str().is_empty() {
                continue;
            }
            // hashFiles follows a symlink to a file (beneath the workspace); directories
            // are skipped.
            match beneath.kind(&rel, true) {
                Ok(gantry_beneath::Kind::File { .. }) => {}
                _ => continue,
            }
            let bytes = match beneath.read(&rel) {
                Ok(b) => b,
                Err(e) if e.is_escape() => continue,
                Err(e) => return Err(err(format!("hashFiles: {}: {e}", ws.join(&rel).display()))),
            };
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

    #[test]
    fn links_leading_out_of_the_workspace_are_not_hashed() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("dir")).unwrap();
        std::fs::write(tmp.path().join("host.txt"), "host secret").unwrap();
        std::fs::write(ws.join("dir/a.lock"), "a").unwrap();
        let only_a = hash_files(&ws, &["**/*.lock".into()]).unwrap();
        assert!(!only_a.is_empty());
        std::os::unix::fs::symlink(tmp.path().join("host.txt"), ws.join("dir/b.lock")).unwrap();
        std::os::unix::fs::symlink("../../host.txt", ws.join("dir/c.lock")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), ws.join("up")).unwrap();
        for args in [
            vec!["**/*.lock".to_string()],
            vec![
                "--follow-symbolic-links".to_string(),
                "**/*.lock".to_string(),
            ],
        ] {
            assert_eq!(hash_files(&ws, &args).unwrap(), only_a, "{args:?}");
        }
        assert_eq!(hash_files(&ws, &["up/host.txt".into()]).unwrap(), "");
        assert_eq!(hash_files(&ws, &["../host.txt".into()]).unwrap(), "");
        // A link that stays inside is followed, as before.
        std::os::unix::fs::symlink("a.lock", ws.join("dir/d.lock")).unwrap();
        assert_ne!(hash_files(&ws, &["**/*.lock".into()]).unwrap(), only_a);
    }
}
