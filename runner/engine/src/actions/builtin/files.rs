//! File helpers shared by the artifact and cache built-ins: multi-line path globs with `!`
//! excludes (GitHub's pattern syntax), directory walks and copies.

use std::path::{Component, Path, PathBuf};

use gantry_workflow::pattern::Pattern;

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '+'])
}

/// Files matched by `lines` (globs relative to `ws` or absolute; a plain directory means
/// everything under it; `!pattern` excludes), and the least common ancestor of the search
/// roots (artifact paths are stored relative to it, as `actions/upload-artifact` does).
#[derive(Debug, Default)]
pub struct Collected {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
}

fn split_base(ws: &Path, pat: &str) -> (PathBuf, Option<String>) {
    let full = if Path::new(pat).is_absolute() {
        PathBuf::from(pat)
    } else {
        ws.join(pat)
    };
    let full = normalize(&full);
    let s = full.to_string_lossy().to_string();
    if !has_glob(&s) {
        return (full, None);
    }
    let mut base = PathBuf::from("/");
    let mut rest = Vec::new();
    let mut in_glob = false;
    for seg in s.split('/').filter(|x| !x.is_empty()) {
        if in_glob || has_glob(seg) {
            in_glob = true;
            rest.push(seg);
        } else {
            base.push(seg);
        }
    }
    (base, Some(rest.join("/")))
}

/// Lexical normalization (`.` dropped, `..` pops).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Every regular file under `dir` (recursively; symlinks to files included).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn collect(ws: &Path, lines: &[String]) -> Result<Collected, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut excludes: Vec<(PathBuf, Option<Pattern>)> = Vec::new();
    for line in lines {
        if let Some(ex) = line.strip_prefix('!') {
            let (base, rest) = split_base(ws, ex.trim());
            let pat = match rest {
                Some(r) => Some(Pattern::compile(&r).map_err(|e| format!("path '{line}': {e}"))?),
                None => None,
            };
            excludes.push((base, pat));
            continue;
        }
        let (base, rest) = split_base(ws, line);
        match rest {
            None => {
                if base.is_dir() {
                    files.extend(walk(&base));
                    roots.push(base);
                } else if base.is_file() {
                    roots.push(base.parent().map(Path::to_path_buf).unwrap_or_default());
                    files.push(base);
                }
            }
            Some(r) => {
                let pat = Pattern::compile(&r).map_err(|e| format!("path '{line}': {e}"))?;
                let mut any = false;
                for f in walk(&base) {
                    let rel = f
                        .strip_prefix(&base)
                        .unwrap_or(&f)
                        .to_string_lossy()
                        .to_string();
                    if pat.is_match(&rel) {
                        files.push(f);
                        any = true;
                    }
                }
                // Directories matched by the glob contribute their contents (`dist/*`).
                if !any || r.ends_with('*') {
                    for d in walk_dirs(&base) {
                        let rel = d
                            .strip_prefix(&base)
                            .unwrap_or(&d)
                            .to_string_lossy()
                            .to_string();
                        if pat.is_match(&rel) {
                            files.extend(walk(&d));
                        }
                    }
                }
                roots.push(base);
            }
        }
    }
    files.retain(|f| {
        !excludes.iter().any(|(base, pat)| match pat {
            None => f.starts_with(base),
            Some(p) => f
                .strip_prefix(base)
                .map(|rel| p.is_match(&rel.to_string_lossy()))
                .unwrap_or(false),
        })
    });
    files.sort();
    files.dedup();
    let root = common_ancestor(&roots);
    Ok(Collected { root, files })
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(e.path());
                stack.push(e.path());
            }
        }
    }
    out
}

fn common_ancestor(paths: &[PathBuf]) -> PathBuf {
    let Some(first) = paths.first() else {
        return PathBuf::new();
    };
    let mut acc = first.clone();
    for p in &paths[1..] {
        while !p.starts_with(&acc) {
            if !acc.pop() {
                break;
            }
        }
    }
    acc
}

/// Copies `src` to `dst`, creating parent directories.
pub fn copy_file(src: &Path, dst: &Path) -> std::io::Result<()> {
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::copy(src, dst).map(|_| ())
}

/// Copies every file under `src` into `dst` (merging).
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for f in walk(src) {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        copy_file(&f, &dst.join(rel))?;
        n += 1;
    }
    Ok(n)
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}
