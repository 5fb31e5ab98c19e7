//! What a delivery starts, decided on the real `gantry serve` (`--no-executor`: runs are
//! queued, not executed) from a real bare repository: `paths` / `paths-ignore` filters
//! from the pushed range's real diff in the mirror (several commits, a new branch, a
//! branch created at an existing commit), never from the payload's file lists; and the
//! pull request events of Gitea, Forgejo and GitLab in their own payload shapes.

#[path = "serve_support.rs"]
mod serve_support;

use serve_support::*;

const PATHS_WF: &str = r#"name: src-only
on:
  push:
    paths: ['src/**']
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo build
"#;

const IGNORE_WF: &str = r#"name: not-docs
on:
  push:
    paths-ignore: ['docs/**']
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo build
"#;

/// The accepted delivery `id`'s record once processed.
async fn processed(s: &Server, id: &str) -> serde_json::Value {
    wait_for("delivery processed", || async {
        deliveries(&s.base).await.into_iter().find(|d| {
            d["delivery_id"] == id && d["status_code"] == 202 && d["result"] != "accepted"
        })
    })
    .await
}

/// A signed GitHub push of `git_ref` whose payload lists `listed` as the changed files of
/// every commit: the server must not believe the lists (GitHub leaves them out of
/// `github.event`, and they are capped), so tests make them lie. The delivery's record
/// once processed.
async fn push_listing(
    s: &Server,
    git_ref: &str,
    before: &str,
    after: &str,
    listed: &[&str],
) -> serde_json::Value {
    let mut body = github_push("acme/shop", git_ref, before, after, "change");
    body["commits"][0]["added"] = serde_json::json!([]);
    body["commits"][0]["modified"] = serde_json::json!(listed);
    let body = serde_json::to_vec(&body).unwrap();
    let id = guid();
    let (st, text) = deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    processed(s, &id).await
}

/// The names of the workflows of acme/shop's runs of `sha`, sorted.
async fn workflows_run_for(s: &Server, sha: &str) -> Vec<String> {
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_all_runs()
        .per_page(100)
        .send()
        .await
        .expect("list runs");
    let mut names: Vec<String> = runs
        .items
        .into_iter()
        .filter(|r| r.head_sha == sha)
        .map(|r| r.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_filters_see_the_whole_pushed_range() {
    let bare = BareRepo::new();
    let c0 = bare.commit(
        "main",
        &[
            (".github/workflows/paths.yml", PATHS_WF),
            (".github/workflows/ignore.yml", IGNORE_WF),
            ("README.md", "hello\n"),
        ],
        "workflows",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));

    // The repository's first push: every file of the commit is new (no src/), and the
    // workflow files and README are not under docs/.
    let d = push_listing(&s, "refs/heads/main", ZERO, &c0, &["src/lie.rs"]).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(workflows_run_for(&s, &c0).await, ["not-docs"]);

    // Two commits, both under docs/: neither workflow runs, whatever the payload lists.
    bare.commit("main", &[("docs/a.md", "a")], "docs a");
    let c2 = bare.commit("main", &[("docs/b.md", "b")], "docs b");
    let d = push_listing(&s, "refs/heads/main", &c0, &c2, &["src/lie.rs"]).await;
    assert_eq!(d["result"], "no_match", "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("no changed file matches paths"), "{reason}");
    assert!(reason.contains("every changed file is ignored"), "{reason}");
    assert!(workflows_run_for(&s, &c2).await.is_empty());

    // Three commits; only the middle one touches src/. The head commit (and the payload)
    // name docs only: the range's diff is what counts.
    bare.commit("main", &[("docs/c.md", "c")], "docs c");
    bare.commit("main", &[("src/main.rs", "fn main() {}")], "code");
    let c5 = bare.commit("main", &[("docs/d.md", "d")], "docs d");
    let d = push_listing(&s, "refs/heads/main", &c2, &c5, &["docs/d.md"]).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(workflows_run_for(&s, &c5).await, ["not-docs", "src-only"]);

    // A file outside docs/ and src/: paths-ignore runs, paths does not.
    let c6 = bare.commit("main", &[("docs/e.md", "e"), ("Makefile", "all:")], "mk");
    let d = push_listing(&s, "refs/heads/main", &c5, &c6, &["src/lie.rs"]).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(workflows_run_for(&s, &c6).await, ["not-docs"]);
}

/// A new branch (`before` is forty zeros): GitHub diffs against the parent of the deepest
/// commit the push brought in, not against the empty tree and not the head commit alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_filters_on_a_new_branch_diff_from_where_it_left_the_others() {
    let bare = BareRepo::new();
    let base = bare.commit(
        "main",
        &[
            (".github/workflows/paths.yml", PATHS_WF),
            (".github/workflows/ignore.yml", IGNORE_WF),
            ("src/main.rs", "fn main() {}"),
        ],
        "workflows and code",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));
    let d = push_listing(&s, "refs/heads/main", ZERO, &base, &[]).await;
    assert_eq!(d["result"], "queued", "{d}");

    // Two new commits on `feature`: src/ in the first, docs/ in the second (the head).
    bare.commit("feature", &[("src/x.rs", "x")], "code on feature");
    let f2 = bare.commit("feature", &[("docs/f.md", "f")], "docs on feature");
    let d = push_listing(&s, "refs/heads/feature", ZERO, &f2, &["docs/f.md"]).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert_eq!(workflows_run_for(&s, &f2).await, ["not-docs", "src-only"]);

    // One new commit under docs/ on `notes`: main's src/main.rs is not the push's.
    let g1 = bare.commit("notes", &[("docs/g.md", "g")], "docs on notes");
    let d = push_listing(&s, "refs/heads/notes", ZERO, &g1, &["src/lie.rs"]).await;
    assert_eq!(d["result"], "no_match", "{d}");

    // A branch created at a commit main already has: no commit pushed, no file changed,
    // so a workflow with path filters does not run.
    let oid = git2::Oid::from_str(&base).unwrap();
    bare.repo
        .reference("refs/heads/same", oid, false, "branch at main")
        .unwrap();
    let d = push_listing(&s, "refs/heads/same", ZERO, &base, &["src/lie.rs"]).await;
    assert_eq!(d["result"], "no_match", "{d}");
    assert!(
        d["reason"].as_str().unwrap().contains("no changed files"),
        "{d}"
    );
}
