//! The job's own git directory. A job's workspace is a repository of its own, as after
//! GitHub's `actions/checkout`: `HEAD` at the run's commit (on its branch when the run is on
//! one), `origin` and its tracking ref, a shallow history of `fetch-depth` commits (1 by
//! default), tags only when asked, and an index of the commit's tree. The objects are
//! copied into one pack (read from the user's repository, never written there), so the
//! directory works the same on the host and inside a container, where the user's
//! repository is not mounted. The user's `.git` is never referenced: `git` in a job finds
//! this directory first and `git tag`, `git config --local` or a commit stay in it.
//!
//! The directory is built once per run (and by `actions/checkout` for other refs, depths
//! or repositories) as a list of files, then written into each job's workspace (a recycled
//! job tree's is reset to it in place: `job::dirs::git`).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a job's git directory could not be built: reading the source repository's objects
/// or writing the pack and index.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}", .0.message())]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Config key marking a git directory Gantry wrote from the run's snapshot.
pub const MARK_KEY: &str = "gantry.workspace";

/// Which tags go into the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    None,
    /// Every tag of the source that points into the included history (`fetch-tags`,
    /// `fetch-depth: 0`).
    Reachable,
    /// One tag (`refs/tags/<name>`), the ref being checked out.
    One(String),
}

/// What to put in a git directory.
#[derive(Debug, Clone)]
pub struct GitDirSpec {
    pub commit: git2::Oid,
    /// Commits of history to include from `commit` (0: all).
    pub depth: u32,
    pub tags: Tags,
    /// The local branch `HEAD` points to (`main`); `None`: a detached `HEAD`.
    pub branch: Option<String>,
    /// `remote.origin.url`.
    pub origin_url: String,
    /// `remote.origin.pushurl`, when pushing there must not go to `origin_url`.
    pub push_url: Option<String>,
    /// Whether the working tree is the run's snapshot (uncommitted edits present).
    pub snapshot: bool,
}

/// A git directory as files (paths relative to `.git`).
#[derive(Clone, Default)]
pub struct GitDir {
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The commit `HEAD` resolves to (empty in a repository without commits).
    pub commit: String,
    /// Commits in the history it holds.
    pub commits: usize,
}

impl fmt::Debug for GitDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitDir")
            .field("commit", &self.commit)
            .field("commits", &self.commits)
            .field("files", &self.files.len())
            .finish()
    }
}

/// The directories of every git directory Gantry writes (relative to `.git`).
pub const DIRS: [&str; 5] = [
    "refs/heads",
    "refs/tags",
    "refs/remotes",
    "objects/info",
    "objects/pack",
];

fn config_text(spec_origin: &str, push: Option<&str>, snapshot: bool) -> String {
    let mut s = String::from(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\
         \tlogallrefupdates = true\n",
    );
    s.push_str(&format!(
        "[remote \"origin\"]\n\turl = {}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        quote(spec_origin)
    ));
    if let Some(p) = push {
        s.push_str(&format!("\tpushurl = {}\n", quote(p)));
    }
    s.push_str(&format!(
        "[gantry]\n\tworkspace = {}\n",
        if snapshot { "snapshot" } else { "checkout" }
    ));
    s
}

/// A config value in double quotes (backslashes and quotes escaped).
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

impl GitDir {
    /// A repository without commits (the user's has none yet).
    pub fn empty(origin_url: &str, push_url: Option<&str>) -> GitDir {
        GitDir {
            files: vec![
                ("HEAD".into(), b"ref: refs/heads/main\n".to_vec()),
                (
                    "config".into(),
                    config_text(origin_url, push_url, true).into_bytes(),
                ),
            ],
            commit: String::new(),
            commits: 0,
        }
    }

    /// Builds the directory from `source`'s objects (read only).
    pub fn build(source: &git2::Repository, spec: &GitDirSpec) -> Result<GitDir, RepoError> {
        // Breadth first from the commit: a commit at distance `depth - 1` with parents is
        // a shallow boundary, as in `git fetch --depth`.
        let mut included: Vec<git2::Oid> = Vec::new();
        let mut seen: HashSet<git2::Oid> = HashSet::new();
        let mut shallow: Vec<git2::Oid> = Vec::new();
        let mut queue: VecDeque<(git2::Oid, u32)> = VecDeque::new();
        queue.push_back((spec.commit, 0));
        seen.insert(spec.commit);
        while let Some((oid, d)) = queue.pop_front() {
            let commit = source.find_commit(oid)?;
            included.push(oid);
            if spec.depth > 0 && d + 1 >= spec.depth {
                if commit.parent_count() > 0 {
                    shallow.push(oid);
                }
                continue;
            }
            for p in commit.parent_ids() {
                if seen.insert(p) {
                    queue.push_back((p, d + 1));
                }
            }
        }
        let mut pb = source.packbuilder()?;
        // The delta search is most of the cost (1.4 s for 2,000 files / 20 MB on one
        // thread): spread it over the cores.
        pb.set_threads(std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        for c in &included {
            pb.insert_commit(*c)?;
        }
        // refs: name → (target, peeled commit when the target is an annotated tag)
        let mut refs: Vec<(String, git2::Oid, Option<git2::Oid>)> = Vec::new();
        let in_history: HashSet<git2::Oid> = included.iter().copied().collect();
        let mut add_tag = |name: &str, pb: &mut git2::PackBuilder<'_>| -> Result<(), RepoError> {
            let Ok(r) = source.find_reference(name) else {
                return Ok(());
            };
            let Some(target) = r.target() else {
                return Ok(());
            };
            let Ok(commit) = r.peel_to_commit() else {
                return Ok(());
            };
            if !in_history.contains(&commit.id()) {
                return Ok(());
            }
            let peeled = (target != commit.id()).then_some(commit.id());
            if peeled.is_some() {
                pb.insert_object(target, None)?;
            }
            refs.push((name.to_string(), target, peeled));
            Ok(())
        };
        match &spec.tags {
            Tags::None => {}
            Tags::One(name) => add_tag(&format!("refs/tags/{name}"), &mut pb)?,
            Tags::Reachable => {
                let names: Vec<String> = source
                    .references_glob("refs/tags/*")?
                    .flatten()
                    .filter_map(|r| r.name().ok().map(str::to_string))
                    .collect();
                for n in names {
                    add_tag(&n, &mut pb)?;
                }
            }
        }
        if let Some(b) = &spec.branch {
            refs.push((format!("refs/heads/{b}"), spec.commit, None));
            refs.push((format!("refs/remotes/origin/{b}"), spec.commit, None));
        }
        refs.sort_by(|a, b| a.0.cmp(&b.0));
        refs.dedup_by(|a, b| a.0 == b.0);

        let tmp = tempfile::tempdir()?;
        pb.write(tmp.path(), 0o644)?;
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for entry in std::fs::read_dir(tmp.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pack") || name.ends_with(".idx") {
                let bytes = std::fs::read(entry.path())?;
                files.push((Path::new("objects/pack").join(name), bytes));
            }
        }
        // The index of the commit's tree: `git ls-files` lists what GitHub's would, and
        // `git status` shows the snapshot's uncommitted edits as changes.
        let index_path = tmp.path().join("index");
        {
            let tree = source.find_commit(spec.commit).and_then(|c| c.tree())?;
            let mut index = git2::Index::open(&index_path)?;
            index.read_tree(&tree)?;
            index.write()?;
        }
        files.push(("index".into(), std::fs::read(&index_path)?));
        let head = match &spec.branch {
            Some(b) => format!("ref: refs/heads/{b}\n"),
            None => format!("{}\n", spec.commit),
        };
        files.push(("HEAD".into(), head.into_bytes()));
        files.push((
            "config".into(),
            config_text(&spec.origin_url, spec.push_url.as_deref(), spec.snapshot).into_bytes(),
        ));
        let mut packed = String::from("# pack-refs with: peeled fully-peeled sorted \n");
        for (name, oid, peeled) in &refs {
            packed.push_str(&format!("{oid} {name}\n"));
            if let Some(p) = peeled {
                packed.push_str(&format!("^{p}\n"));
            }
        }
        files.push(("packed-refs".into(), packed.into_bytes()));
        if !shallow.is_empty() {
            shallow.sort();
            let text: String = shallow.iter().map(|o| format!("{o}\n")).collect();
            files.push(("shallow".into(), text.into_bytes()));
        }
        Ok(GitDir {
            files,
            commit: spec.commit.to_string(),
            commits: included.len(),
        })
    }

    /// Writes the directory as `<workspace>/.git`, replacing what was there.
    pub fn write(&self, workspace: &Path) -> io::Result<()> {
        let git = workspace.join(".git");
        match std::fs::symlink_metadata(&git) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&git)?,
            Ok(_) => std::fs::remove_file(&git)?,
            Err(_) => {}
        }
        for d in DIRS {
            std::fs::create_dir_all(git.join(d))?;
        }
        for (rel, bytes) in &self.files {
            std::fs::write(git.join(rel), bytes)?;
        }
        Ok(())
    }
}

/// Whether `<workspace>/.git` is a directory Gantry wrote from the run's snapshot (so the
/// working tree holds the user's uncommitted edits).
pub fn is_snapshot(workspace: &Path) -> bool {
    std::fs::read_to_string(workspace.join(".git/config"))
        .is_ok_and(|c| c.contains("[gantry]\n\tworkspace = snapshot"))
}

/// `origin` for a job's copy of the local repository at `root`: the repository's own
/// `origin` when it has one (as GitHub's checkout names the forge), else `root` itself,
/// with pushes refused so that a job never writes into the user's repository.
pub fn origin_of(repo: &git2::Repository, root: &Path) -> (String, Option<String>) {
    if let Ok(r) = repo.find_remote("origin")
        && let Ok(u) = r.url()
        && !u.is_empty()
    {
        return (u.to_string(), None);
    }
    (
        format!("file://{}", root.display()),
        Some("gantry-refuses-pushes-into-the-local-repository".to_string()),
    )
}

/// The git directory of the run's snapshot: the repository at `root`'s `HEAD`, depth 1,
/// on `HEAD`'s branch. `None` when `root` is not the work tree of a repository.
pub fn for_snapshot(root: &Path) -> Option<Result<GitDir, RepoError>> {
    let repo = git2::Repository::open(root).ok()?;
    if repo.workdir()?.canonicalize().ok()? != root {
        return None;
    }
    let (origin_url, push_url) = origin_of(&repo, root);
    let head = match repo.head() {
        Ok(h) => h,
        Err(_) => return Some(Ok(GitDir::empty(&origin_url, push_url.as_deref()))),
    };
    let commit = head.peel_to_commit().ok()?.id();
    let branch = head
        .is_branch()
        .then(|| head.shorthand().ok().map(str::to_string))
        .flatten();
    let spec = GitDirSpec {
        commit,
        depth: 1,
        tags: Tags::None,
        branch,
        origin_url,
        push_url,
        snapshot: true,
    };
    Some(GitDir::build(&repo, &spec))
}

/// `_home/.gitconfig` of a container job: the workspace belongs to the host's user while
/// the job may run as another, which git refuses without `safe.directory` (GitHub's
/// checkout adds it for the same reason).
pub const HOME_GITCONFIG: &str = "[safe]\n\tdirectory = *\n";

/// `<commit> (<n> commits of history)`, for logs.
pub fn describe(dir: &GitDir) -> String {
    format!(
        "{} ({} commit{} of history)",
        dir.commit,
        dir.commits,
        if dir.commits == 1 { "" } else { "s" }
    )
}
