//! `actions/checkout`, natively and offline for the run's repository. The job's workspace
//! already is a repository of its own at the run's commit (see
//! [`crate::workspace::git`]): without `ref:` the working tree snapshot (uncommitted edits
//! included, as act does) is kept and only the history is adjusted to `fetch-depth`
//! (default 1; 0 = all) and `fetch-tags`. With `ref:`, `path:` or `repository:` a
//! repository is written at the target from the run's repository or, for another
//! repository, from `file://`/`https://` (the transport of remote actions; `token:` used
//! as its credential) and its tree checked out (`clean` removes untracked files). The
//! user's repository is only read.

use async_trait::async_trait;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

use super::{ActionEnv, ActionResult, BuiltinAction, BuiltinError, input, input_bool};
use gantry_git::repo::{self as git, GitDir, GitDirSpec, Tags};
use gantry_git::transport::GitCredentials;

pub struct Checkout;

/// Where the commits come from.
enum Source {
    /// The run's repository (a local path).
    Local(PathBuf),
    /// Another repository: its URL and the token to offer.
    Remote { url: String, token: Option<String> },
}

/// The checkout a step asked for.
struct Request {
    source: Source,
    git_ref: Option<String>,
    /// The run's commit and ref (for the run's repository without `ref:`).
    sha_hint: String,
    run_ref: String,
    depth: u32,
    fetch_tags: bool,
    clean: bool,
    target: PathBuf,
    /// The target is the workspace holding the run's snapshot: keep its files.
    keep_tree: bool,
    /// Where fetched repositories are kept.
    cache: PathBuf,
    offline: bool,
}

#[async_trait]
impl BuiltinAction for Checkout {
    fn name(&self) -> &'static str {
        "actions/checkout"
    }

    async fn run(
        &self,
        inputs: &IndexMap<String, String>,
        env: &ActionEnv<'_>,
    ) -> Result<ActionResult, BuiltinError> {
        let mut res = ActionResult::default();
        let other = input(inputs, "repository").filter(|r| {
            env.github.repository.is_empty() || !r.eq_ignore_ascii_case(&env.github.repository)
        });
        let path = input(inputs, "path").unwrap_or("");
        // GitHub refuses a path outside GITHUB_WORKSPACE; a symlink on the way out counts.
        let place = super::files::place(env, "path", path)?;
        if place.base != env.workspace {
            return Err(format!("input 'path': '{path}' is outside the workspace; refused").into());
        }
        place
            .root()?
            .create_dir_all(&place.rel)
            .map_err(|e| super::files::input_error("path", e))?;
        let target = place.host_path();
        let depth = match input(inputs, "fetch-depth") {
            None => 1,
            Some(d) => d.trim().parse::<u32>().map_err(|_| {
                format!("input 'fetch-depth': '{d}' is not a number (0 fetches all history)")
            })?,
        };
        let git_ref = input(inputs, "ref").map(str::to_string);
        let source = match other {
            None => Source::Local(env.repo_root.clone()),
            Some(r) => Source::Remote {
                url: remote_url(r, &env.github.server_url),
                token: input(inputs, "token").map(str::to_string).or_else(|| {
                    GitCredentials::from_sources(|k| env.env.get(k).cloned(), &IndexMap::new())
                        .any_host
                }),
            },
        };
        if let Source::Remote { token: Some(t), .. } = &source {
            res.masks.push(t.clone());
        }
        let keep_tree = matches!(source, Source::Local(_))
            && git_ref.is_none()
            && path.is_empty()
            && git::is_snapshot(&target);
        let req = Request {
            source,
            git_ref,
            sha_hint: env.github.sha.clone(),
            run_ref: env.github.git_ref.clone(),
            depth,
            fetch_tags: input_bool(inputs, "fetch-tags", false),
            clean: input_bool(inputs, "clean", true),
            target: target.clone(),
            keep_tree,
            cache: env.run_dir.join("checkout"),
            offline: env.offline,
        };
        if keep_tree && depth == 1 && !req.fetch_tags && !req.run_ref.starts_with("refs/tags/") {
            res.log(format!(
                "The workspace already is a repository of its own at {} (depth 1) holding the \
                 working tree snapshot; nothing to check out.",
                env.github.sha
            ));
            res.output("ref", env.github.git_ref.clone());
            res.output("commit", env.github.sha.clone());
            return Ok(res);
        }
        let (dir, desc) = tokio::task::spawn_blocking(move || checkout(&req))
            .await
            .map_err(|e| e.to_string())??;
        res.log(format!(
            "Checked out {desc} at {} into {}",
            git::describe(&dir),
            target.display()
        ));
        res.output("ref", desc);
        res.output("commit", dir.commit.clone());
        Ok(res)
    }
}

/// `owner/name` → `<server>/owner/name`; URLs and paths as given.
fn remote_url(repo: &str, server_url: &str) -> String {
    if repo.contains("://") || repo.starts_with('/') {
        return repo.to_string();
    }
    let server = if server_url.is_empty() {
        "https://github.com"
    } else {
        server_url.trim_end_matches('/')
    };
    format!("{server}/{repo}")
}

/// Writes the requested repository at the target; returns it and the ref's description.
fn checkout(req: &Request) -> Result<(GitDir, String), String> {
    let e = |e: git2::Error| e.message().to_string();
    let (source, origin_url, push_url, fetched) = match &req.source {
        Source::Local(root) => {
            let repo = git2::Repository::discover(root).map_err(|err| {
                format!("no git repository at {}: {}", root.display(), err.message())
            })?;
            let (o, p) = git::origin_of(&repo, root);
            (repo, o, p, false)
        }
        Source::Remote { url, token } => {
            if req.offline {
                return Err(format!(
                    "--offline: cannot fetch {} for actions/checkout",
                    gantry_git::transport::redact_url(url)
                ));
            }
            let dir = req.cache.join(gantry_beneath::sanitize(
                &gantry_git::transport::redact_url(url),
            ));
            std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
            let repo = match git2::Repository::open_bare(&dir) {
                Ok(r) => r,
                Err(_) => git2::Repository::init_bare(&dir).map_err(e)?,
            };
            let creds = GitCredentials {
                any_host: token.clone(),
                github: None,
            };
            gantry_git::fetch_into(&repo, url, &creds, req.git_ref.as_deref().unwrap_or(""))
                .map_err(|e| e.to_string())?;
            (repo, url.clone(), None, true)
        }
    };
    let (commit, desc, branch) = resolve(&source, req, fetched)?;
    let tags = if req.depth == 0 || req.fetch_tags {
        Tags::Reachable
    } else if let Some(t) = desc.strip_prefix("refs/tags/") {
        Tags::One(t.to_string())
    } else if let Some(t) =
        (source.find_reference(&format!("refs/tags/{desc}")).is_ok()).then_some(&desc)
    {
        Tags::One(t.clone())
    } else {
        Tags::None
    };
    let spec = GitDirSpec {
        commit,
        depth: req.depth,
        tags,
        branch,
        origin_url,
        push_url,
        snapshot: req.keep_tree,
    };
    let dir = GitDir::build(&source, &spec)
        .map_err(|e| format!("cannot build the git directory: {e}"))?;
    dir.write(&req.target).map_err(|err| err.to_string())?;
    if !req.keep_tree {
        check_out_tree(&req.target, commit, req.clean)?;
    }
    Ok((dir, desc))
}

/// The commit to check out, how to describe it and the local branch to create.
fn resolve(
    repo: &git2::Repository,
    req: &Request,
    fetched: bool,
) -> Result<(git2::Oid, String, Option<String>), String> {
    let peel = |name: &str| -> Option<git2::Oid> {
        repo.find_reference(name)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    };
    let branch_of = |r: &str| r.strip_prefix("refs/heads/").map(str::to_string);
    if let Some(r) = &req.git_ref {
        let short = r.strip_prefix("refs/heads/").unwrap_or(r);
        if let Some(o) = peel(&format!("refs/heads/{short}")) {
            return Ok((o, r.clone(), Some(short.to_string())));
        }
        if !fetched && let Some(o) = peel(&format!("refs/remotes/origin/{short}")) {
            return Ok((o, r.clone(), Some(short.to_string())));
        }
        let tag = r.strip_prefix("refs/tags/").unwrap_or(r);
        if let Some(o) = peel(&format!("refs/tags/{tag}")) {
            return Ok((o, format!("refs/tags/{tag}"), None));
        }
        if let Some(o) = peel(r) {
            return Ok((o, r.clone(), branch_of(r)));
        }
        return repo
            .revparse_single(r)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .map(|c| (c.id(), r.clone(), None))
            .ok_or_else(|| format!("ref '{r}' not found in the repository"));
    }
    if !fetched {
        if let Ok(o) = git2::Oid::from_str(&req.sha_hint)
            && repo.find_commit(o).is_ok()
        {
            return Ok((o, req.run_ref.clone(), branch_of(&req.run_ref)));
        }
        let head = repo.head().map_err(|e| e.message().to_string())?;
        let c = head.peel_to_commit().map_err(|e| e.message().to_string())?;
        return Ok((
            c.id(),
            "HEAD".into(),
            head.shorthand().ok().map(str::to_string),
        ));
    }
    // Another repository without `ref:`: its default branch (main, master, else the first).
    let mut names: Vec<String> = repo
        .references_glob("refs/heads/*")
        .map_err(|e| e.message().to_string())?
        .flatten()
        .filter_map(|r| r.shorthand().ok().map(str::to_string))
        .collect();
    names.sort();
    let pick = ["main", "master"]
        .into_iter()
        .map(str::to_string)
        .find(|n| names.contains(n))
        .or_else(|| names.first().cloned())
        .ok_or("the repository has no branches; give ref:")?;
    let o = peel(&format!("refs/heads/{pick}")).ok_or("branch vanished")?;
    Ok((o, format!("refs/heads/{pick}"), Some(pick)))
}

/// Checks `commit`'s tree out into `target` (whose `.git` holds it), overwriting files;
/// `clean` also removes untracked and ignored files.
fn check_out_tree(target: &Path, commit: git2::Oid, clean: bool) -> Result<(), String> {
    let e = |e: git2::Error| e.message().to_string();
    let repo = git2::Repository::open(target).map_err(e)?;
    let commit = repo.find_commit(commit).map_err(e)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    if clean {
        co.remove_untracked(true).remove_ignored(true);
    }
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(e)?;
    Ok(())
}
