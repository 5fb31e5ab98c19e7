//! `actions/checkout`: checks the run's repository out with git2 from the local repository
//! (no network): `ref`, `path`, `clean`; `fetch-depth` is accepted (the clone is local and
//! complete).

use async_trait::async_trait;
use indexmap::IndexMap;

use super::{ActionEnv, ActionResult, BuiltinAction, input, input_bool};

pub struct Checkout;

#[async_trait]
impl BuiltinAction for Checkout {
    fn name(&self) -> &'static str {
        "actions/checkout"
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, String> {
        let mut res = ActionResult::default();
        if let Some(repo) = input(inputs, "repository")
            && !env.github.repository.is_empty()
            && !repo.eq_ignore_ascii_case(&env.github.repository)
        {
            return Err(format!(
                "actions/checkout (built-in) checks out only the run's repository ({}), not '{repo}'; \
                 use --no-builtin actions/checkout to run the real action",
                env.github.repository
            ));
        }
        let path = input(inputs, "path").unwrap_or("");
        // GitHub refuses a path outside GITHUB_WORKSPACE; a symlink on the way out counts.
        let place = super::files::place(env, "path", path)?;
        if place.base != env.workspace {
            return Err(format!(
                "input 'path': '{path}' is outside the workspace; refused"
            ));
        }
        place
            .root()?
            .create_dir_all(&place.rel)
            .map_err(|e| super::files::input_error("path", e))?;
        let target = place.host_path();
        let git_ref = input(inputs, "ref").map(str::to_string);
        // The workspace already holds the run's snapshot of the working tree: keep it.
        if git_ref.is_none()
            && path.is_empty()
            && !target.join(".git").exists()
            && non_empty(&target)
        {
            res.log("The workspace already holds the repository (working tree snapshot); nothing to check out.");
            res.output("ref", env.github.git_ref.clone());
            res.output("commit", env.github.sha.clone());
            return Ok(res);
        }
        if let Some(d) = input(inputs, "fetch-depth") {
            res.log(format!("fetch-depth {d}: the local clone is complete"));
        }
        let clean = input_bool(inputs, "clean", true);
        let src = env.repo_root.clone();
        let sha_hint = env.github.sha.clone();
        let target2 = target.clone();
        let (sha, desc) = tokio::task::spawn_blocking(move || {
            checkout(&src, &target2, git_ref.as_deref(), &sha_hint, clean)
        })
        .await
        .map_err(|e| e.to_string())??;
        res.log(format!(
            "Checked out {desc} ({sha}) into {}",
            target.display()
        ));
        res.output("ref", desc);
        res.output("commit", sha);
        Ok(res)
    }
}

fn non_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

/// Clones or updates `target` from `src` and checks out `git_ref` (default: `sha_hint` when
/// the repository has it, else `src`'s HEAD). Returns the commit and a description.
pub fn checkout(
    src: &std::path::Path,
    target: &std::path::Path,
    git_ref: Option<&str>,
    sha_hint: &str,
    clean: bool,
) -> Result<(String, String), String> {
    let e = |e: git2::Error| e.message().to_string();
    let source = git2::Repository::discover(src)
        .map_err(|err| format!("no git repository at {}: {}", src.display(), err.message()))?;
    let src_path = source.path().to_path_buf();
    std::fs::create_dir_all(target).map_err(|err| err.to_string())?;
    let repo = match git2::Repository::open(target) {
        Ok(r) if r.workdir().map(|w| same(w, target)).unwrap_or(false) => r,
        _ => git2::Repository::init(target).map_err(e)?,
    };
    let url = src_path.to_string_lossy().to_string();
    if repo.find_remote("origin").is_ok() {
        repo.remote_set_url("origin", &url).map_err(e)?;
    } else {
        repo.remote("origin", &url).map_err(e)?;
    }
    {
        let mut remote = repo.find_remote("origin").map_err(e)?;
        remote
            .fetch(
                &[
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                None,
                None,
            )
            .map_err(e)?;
    }
    let find = |name: &str| -> Option<git2::Oid> {
        for full in [
            format!("refs/remotes/origin/{name}"),
            format!("refs/tags/{name}"),
            name.replace("refs/heads/", "refs/remotes/origin/"),
            name.to_string(),
        ] {
            if let Ok(r) = repo.find_reference(&full)
                && let Ok(c) = r.peel_to_commit()
            {
                return Some(c.id());
            }
        }
        repo.revparse_single(name)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .map(|c| c.id())
    };
    let (oid, desc) = match git_ref {
        Some(r) => (
            find(r).ok_or_else(|| format!("ref '{r}' not found in {}", src.display()))?,
            r.to_string(),
        ),
        None => {
            let hint = (!sha_hint.is_empty()).then(|| find(sha_hint)).flatten();
            match hint {
                Some(o) => (o, sha_hint.to_string()),
                None => {
                    let head = source.head().map_err(e)?.peel_to_commit().map_err(e)?.id();
                    if repo.find_commit(head).is_err() {
                        let mut remote = repo.find_remote("origin").map_err(e)?;
                        remote.fetch(&[head.to_string()], None, None).map_err(e)?;
                    }
                    (head, "HEAD".to_string())
                }
            }
        }
    };
    let commit = repo.find_commit(oid).map_err(e)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    if clean {
        co.remove_untracked(true).remove_ignored(true);
    }
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(e)?;
    repo.set_head_detached(oid).map_err(e)?;
    Ok((oid.to_string(), desc))
}

fn same(a: &std::path::Path, b: &std::path::Path) -> bool {
    let ca = std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf());
    let cb = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}
