//! File helpers shared by the artifact and cache built-ins: multi-line path globs with `!`
//! excludes (GitHub's pattern syntax), directory walks and copies.
//!
//! Every path a job names goes through [`place`] and every file is then opened with
//! [`gantry_beneath::Root`]: relative paths stay beneath the workspace (`..` escapes are
//! refused, naming the input), symlinks that lead out of the workspace are refused rather
//! than followed, and writes never go through a symlink. Absolute and `~` paths are allowed
//! only for host jobs (which run as the user anyway); a container job's built-ins reach its
//! workspace only, since they run on the host against the bind-mounted directory.

use std::path::{Component, Path, PathBuf};

use gantry_beneath::{BeneathError, Kind, Root};
use gantry_workflow::pattern::Pattern;

use super::ActionEnv;

const WORKSPACE: &str = "the workspace";

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '+'])
}

/// A path a job named: a directory Gantry trusts (the workspace, or for a host job the
/// absolute directory the user named) and a clean path beneath it.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub base: PathBuf,
    pub rel: PathBuf,
    label: &'static str,
}

impl Place {
    /// The host path (for messages and for relative paths between places).
    pub fn host_path(&self) -> PathBuf {
        if self.rel.as_os_str().is_empty() {
            self.base.clone()
        } else {
            self.base.join(&self.rel)
        }
    }

    pub fn root(&self) -> Result<Root, String> {
        Root::open(&self.base, self.label).map_err(|e| e.to_string())
    }

    pub fn join(&self, rel: &Path) -> Place {
        Place {
            base: self.base.clone(),
            rel: self.rel.join(rel),
            label: self.label,
        }
    }
}

/// Names the input in a refusal ("input 'path': '../..' leads outside the workspace").
pub fn input_error(input: &str, e: BeneathError) -> String {
    format!("input '{input}': {e}")
}

/// Resolves `raw` (the literal, glob-free part of a path input) for the job.
pub fn place(env: &ActionEnv<'_>, input: &str, raw: &str) -> Result<Place, String> {
    let outside = |why: &str| format!("input '{input}': '{raw}' {why}");
    let expanded = match raw.strip_prefix("~/").or((raw == "~").then_some("")) {
        Some(_) if !env.sharing.runner_files => {
            return Err(outside(
                "is outside the workspace; a container job's built-ins reach only its workspace",
            ));
        }
        Some(rest) => Path::new(&super::home_dir(env)).join(rest),
        None => PathBuf::from(raw),
    };
    let workspace_place = |rel: &Path| -> Result<Place, String> {
        let rel = gantry_beneath::clean_relative(rel)
            .ok_or_else(|| outside("leads outside the workspace; refused"))?;
        Ok(Place {
            base: env.workspace.clone(),
            rel,
            label: WORKSPACE,
        })
    };
    if !expanded.is_absolute() {
        return workspace_place(&expanded);
    }
    let abs = lexical(&expanded);
    if let Ok(rel) = abs.strip_prefix(lexical(&env.workspace)) {
        return workspace_place(rel);
    }
    if !env.sharing.runner_files {
        // The job names container paths; only the workspace mount maps to the host here.
        if let Some(job) = env.job
            && let Ok(rel) = abs.strip_prefix(&job.paths().workspace)
        {
            return workspace_place(rel);
        }
        return Err(outside(
            "is outside the workspace; a container job's built-ins reach only its workspace",
        ));
    }
    // A host job naming an absolute directory: confined beneath that directory.
    if abs.is_dir() {
        return Ok(Place {
            base: abs,
            rel: PathBuf::new(),
            label: "the named directory",
        });
    }
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(outside("is not a usable path"));
    };
    Ok(Place {
        base: parent.to_path_buf(),
        rel: PathBuf::from(name),
        label: "the named directory",
    })
}

/// Reads a file a job named in `input` (a version file, a payload file), beneath the
/// workspace like every other job path.
pub fn read_input_file(env: &ActionEnv<'_>, input: &str, raw: &str) -> Result<String, String> {
    let p = place(env, input, raw)?;
    let bytes = p.root()?.read(&p.rel).map_err(|e| input_error(input, e))?;
    String::from_utf8(bytes).map_err(|_| format!("input '{input}': '{raw}' is not UTF-8 text"))
}

/// Lexical normalization of an absolute path (`.` dropped, `..` pops).
fn lexical(p: &Path) -> PathBuf {
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

/// Lexical normalization (`.` dropped, `..` pops), for paths Gantry itself chose.
pub fn normalize(p: &Path) -> PathBuf {
    lexical(p)
}

/// Files matched by `lines` (globs relative to the workspace; a plain directory means
/// everything under it; `!pattern` excludes), and the least common ancestor of the search
/// roots (artifact paths are stored relative to it, as `actions/upload-artifact` does).
#[derive(Debug, Default)]
pub struct Collected {
    pub root: PathBuf,
    pub files: Vec<Found>,
}

/// One matched file.
#[derive(Debug, Clone)]
pub struct Found {
    pub place: Place,
    pub len: u64,
}

impl Found {
    pub fn host_path(&self) -> PathBuf {
        self.place.host_path()
    }
}

/// Splits a path line into its literal directory part and the glob rest.
fn split_glob(line: &str) -> (String, Option<String>) {
    if !has_glob(line) {
        return (line.to_string(), None);
    }
    let absolute = line.starts_with('/');
    let mut base = Vec::new();
    let mut rest = Vec::new();
    for seg in line.split('/').filter(|x| !x.is_empty()) {
        if !rest.is_empty() || has_glob(seg) {
            rest.push(seg);
        } else {
            base.push(seg);
        }
    }
    let base = base.join("/");
    let base = if absolute { format!("/{base}") } else { base };
    (base, Some(rest.join("/")))
}

/// The regular files under `dir` (a place that is a directory). A symlink is taken as the
/// file it names when that stays beneath the root; one that leads outside is refused; a
/// link to a directory is not entered.
fn files_under(
    input: &str,
    root: &Root,
    dir: &Place,
) -> Result<Vec<(Place, PathBuf, u64)>, String> {
    let entries = match root.walk(&dir.rel) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(input_error(input, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let len = match e.kind {
            Kind::File { len, .. } => len,
            Kind::Symlink => match root.kind(&e.rel, true) {
                Ok(Kind::File { len, .. }) => len,
                Ok(_) => continue,
                Err(err) if err.is_not_found() => continue,
                Err(err) => return Err(input_error(input, err)),
            },
            _ => continue,
        };
        let below = e.rel.strip_prefix(&dir.rel).unwrap_or(&e.rel).to_path_buf();
        out.push((
            Place {
                base: dir.base.clone(),
                rel: e.rel,
                label: dir.label,
            },
            below,
            len,
        ));
    }
    Ok(out)
}

fn dirs_under(root: &Root, dir: &Place) -> Vec<Place> {
    root.walk(&dir.rel)
        .map(|all| {
            all.into_iter()
                .filter(|e| e.kind == Kind::Dir)
                .map(|e| Place {
                    base: dir.base.clone(),
                    rel: e.rel,
                    label: dir.label,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves the path lines of `input` (see [`Collected`]).
pub fn collect(env: &ActionEnv<'_>, input: &str, lines: &[String]) -> Result<Collected, String> {
    let mut files: Vec<Found> = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut excludes: Vec<(PathBuf, Option<Pattern>)> = Vec::new();
    let found = |p: Place, len| Found { place: p, len };
    for line in lines {
        if let Some(ex) = line.strip_prefix('!') {
            let (base, rest) = split_glob(ex.trim());
            let pat = match rest {
                Some(r) => Some(Pattern::compile(&r).map_err(|e| format!("path '{line}': {e}"))?),
                None => None,
            };
            excludes.push((place(env, input, &base)?.host_path(), pat));
            continue;
        }
        let (base, rest) = split_glob(line);
        let base = place(env, input, &base)?;
        let root = base.root()?;
        match rest {
            None => match root.kind(&base.rel, true) {
                Ok(Kind::Dir) => {
                    for (p, _, len) in files_under(input, &root, &base)? {
                        files.push(found(p, len));
                    }
                    roots.push(base.host_path());
                }
                Ok(Kind::File { len, .. }) => {
                    let host = base.host_path();
                    roots.push(host.parent().map(Path::to_path_buf).unwrap_or_default());
                    files.push(found(base, len));
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(input_error(input, e)),
            },
            Some(r) => {
                let pat = Pattern::compile(&r).map_err(|e| format!("path '{line}': {e}"))?;
                let mut any = false;
                for (p, below, len) in files_under(input, &root, &base)? {
                    if pat.is_match(&below.to_string_lossy()) {
                        files.push(found(p, len));
                        any = true;
                    }
                }
                // Directories matched by the glob contribute their contents (`dist/*`).
                if !any || r.ends_with('*') {
                    for d in dirs_under(&root, &base) {
                        let below = d.rel.strip_prefix(&base.rel).unwrap_or(&d.rel);
                        if pat.is_match(&below.to_string_lossy()) {
                            for (p, _, len) in files_under(input, &root, &d)? {
                                files.push(found(p, len));
                            }
                        }
                    }
                }
                roots.push(base.host_path());
            }
        }
    }
    files.retain(|f| {
        let host = f.host_path();
        !excludes.iter().any(|(base, pat)| match pat {
            None => host.starts_with(base),
            Some(p) => host
                .strip_prefix(base)
                .map(|rel| p.is_match(&rel.to_string_lossy()))
                .unwrap_or(false),
        })
    });
    files.sort_by_key(|f| f.host_path());
    files.dedup_by_key(|f| f.host_path());
    let root = common_ancestor(&roots);
    Ok(Collected { root, files })
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

/// Copies a job file (read beneath its root) into Gantry's own store at `dst`.
pub fn copy_out(src: &Place, dst: &Path) -> Result<(), String> {
    let root = src.root()?;
    let mut from = root.open_file(&src.rel).map_err(|e| e.to_string())?;
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut to = std::fs::File::create(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    std::io::copy(&mut from, &mut to)
        .map(drop)
        .map_err(|e| format!("{}: {e}", src.host_path().display()))
}

/// Copies every file of a store directory `src` (Gantry's own) into `dst` beneath its
/// root (merging), never writing through a symlink. A store file `src` itself is copied to
/// `dst`. Returns the number of files.
pub fn copy_in(input: &str, src: &Path, dst: &Place) -> Result<usize, String> {
    if dst.label != WORKSPACE {
        // A host job's own absolute directory: create it as the user would.
        std::fs::create_dir_all(&dst.base).map_err(|e| format!("{}: {e}", dst.base.display()))?;
    }
    let root = dst.root()?;
    if src.is_file() {
        root.copy_in(src, &dst.rel)
            .map_err(|e| input_error(input, e))?;
        return Ok(1);
    }
    let mut n = 0;
    for f in walk(src) {
        let rel = f.strip_prefix(src).unwrap_or(&f);
        root.copy_in(&f, &dst.join(rel).rel)
            .map_err(|e| input_error(input, e))?;
        n += 1;
    }
    Ok(n)
}

/// Every regular file under `dir` (recursively). A symlink counts as the file it names
/// only while it stays beneath `dir`; links leading out and links to directories are
/// skipped (build contexts and staged actions must not pull in host files).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(root) = Root::open(dir, "the directory") else {
        return Vec::new();
    };
    let Ok(entries) = root.walk(Path::new("")) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter(|e| match e.kind {
            Kind::File { .. } => true,
            Kind::Symlink => matches!(root.kind(&e.rel, true), Ok(Kind::File { .. })),
            _ => false,
        })
        .map(|e| dir.join(e.rel))
        .collect()
}

/// Copies `src` to `dst`, creating parent directories.
pub fn copy_file(src: &Path, dst: &Path) -> std::io::Result<()> {
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::copy(src, dst).map(|_| ())
}

/// Copies every file under `src` into `dst` (merging; see [`walk`] for links).
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
