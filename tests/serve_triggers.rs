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

// Pull requests from Gitea, Forgejo and GitLab, executed on the host: the job's
// environment says what the server made of each forge's payload.

const PR_WF: &str = r#"name: PR
on: pull_request
jobs:
  show:
    runs-on: self-hosted
    steps:
      - run: echo "event=$GITHUB_EVENT_NAME ref=$GITHUB_REF head=$GITHUB_HEAD_REF base=$GITHUB_BASE_REF sha=$GITHUB_SHA file=$(cat f)"
"#;

/// Runs of `repo` (`owner/name`) through the API, newest first.
async fn runs_of(s: &Server, repo: &str) -> Vec<octocrab::models::workflows::Run> {
    let (owner, name) = repo.split_once('/').unwrap();
    s.octocrab(READER_TOKEN)
        .workflows(owner, name)
        .list_all_runs()
        .per_page(100)
        .send()
        .await
        .expect("list runs")
        .items
}

/// The completed run of `sha` in `repo` and its only job's log.
async fn ran(s: &Server, repo: &str, sha: &str) -> (octocrab::models::workflows::Run, String) {
    let run = wait_for(&format!("a completed run of {sha} in {repo}"), || async {
        runs_of(s, repo)
            .await
            .into_iter()
            .find(|r| r.head_sha == sha && r.status == "completed")
    })
    .await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let (owner, name) = repo.split_once('/').unwrap();
    let jobs = s
        .octocrab(READER_TOKEN)
        .workflows(owner, name)
        .list_jobs(run.id)
        .send()
        .await
        .expect("list jobs")
        .items;
    assert_eq!(jobs.len(), 1);
    let log = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/{repo}/actions/jobs/{}/logs",
            s.base, jobs[0].id
        ))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (run, log)
}

fn point(bare: &BareRepo, name: &str, sha: &str) {
    bare.repo
        .reference(name, git2::Oid::from_str(sha).unwrap(), true, "head")
        .unwrap();
}

/// Gitea's `pull_request` payload (`action`, `number`, `pull_request{head, base}`; the
/// new-commits action is `synchronized`).
fn gitea_pr(
    repo: &str,
    action: &str,
    number: u64,
    head: &str,
    sha: &str,
    base_sha: &str,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": action, "number": number,
        "pull_request": {
            "id": 40 + number, "number": number, "title": "Feature", "state": "open",
            "user": { "login": "tea-dev", "username": "tea-dev" },
            "head": { "label": head, "ref": head, "sha": sha, "repo_id": 9,
                      "repo": { "full_name": repo } },
            "base": { "label": "main", "ref": "main", "sha": base_sha, "repo_id": 9,
                      "repo": { "full_name": repo } },
            "merge_base": base_sha, "merged": false
        },
        "repository": { "id": 9, "name": repo.split('/').nth(1), "full_name": repo },
        "sender": { "login": "tea-dev", "username": "tea-dev" },
        "commit_id": ""
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_and_forgejo_pull_requests_run_with_github_refs() {
    let bare = BareRepo::new();
    let main = bare.commit(
        "main",
        &[(".gitea/workflows/pr.yml", PR_WF), ("f", "main")],
        "gitea workflows only",
    );
    let head1 = bare.commit("feature", &[("f", "head1")], "feature 1");
    point(&bare, "refs/pull/3/head", &head1);
    // acme/forge has only .forgejo/workflows.
    let fj = BareRepo::new();
    let fj_main = fj.commit(
        "main",
        &[(".forgejo/workflows/pr.yml", PR_WF), ("f", "m")],
        "fj",
    );
    let fj_head = fj.commit("topic", &[("f", "fj-head")], "topic");
    point(&fj, "refs/pull/8/head", &fj_head);
    let config = config_yaml(&bare.url(), None).replace(
        &format!("  - name: acme/forge\n    url: {}", bare.url()),
        &format!("  - name: acme/forge\n    url: {}", fj.url()),
    );
    assert!(config.contains(&fj.url()));
    let s = Server::start_with(&config, &[]);

    let id = guid();
    let body = gitea_pr("acme/tea", "opened", 3, "feature", &head1, &main);
    let (st, text) = deliver(&s.base, "gitea", "pull_request", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    assert_eq!(processed(&s, &id).await["result"], "queued");
    let (run, log) = ran(&s, "acme/tea", &head1).await;
    assert_eq!(run.event, "pull_request");
    assert_eq!(run.head_branch, "feature");
    assert!(
        log.contains(&format!(
            "event=pull_request ref=refs/pull/3/merge head=feature base=main sha={head1} file=head1"
        )),
        "{log}"
    );

    // New commits on the pull request: Gitea says `synchronized`.
    let head2 = bare.commit("feature", &[("f", "head2")], "feature 2");
    point(&bare, "refs/pull/3/head", &head2);
    let id = guid();
    let body = gitea_pr("acme/tea", "synchronized", 3, "feature", &head2, &main);
    deliver(&s.base, "gitea", "pull_request", &id, &body, Some(SECRET)).await;
    assert_eq!(processed(&s, &id).await["result"], "queued");
    let (_, log) = ran(&s, "acme/tea", &head2).await;
    assert!(log.contains(&format!("sha={head2} file=head2")), "{log}");
    // A label starts nothing (not a default type).
    let id = guid();
    let body = gitea_pr("acme/tea", "label_updated", 3, "feature", &head2, &main);
    deliver(&s.base, "gitea", "pull_request", &id, &body, Some(SECRET)).await;
    assert_eq!(processed(&s, &id).await["result"], "no_match");

    // Forgejo, with its own signature header and only .forgejo/workflows in the commit.
    let id = guid();
    let body = gitea_pr("acme/forge", "opened", 8, "topic", &fj_head, &fj_main);
    let (st, text) = deliver(&s.base, "forgejo", "pull_request", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "queued", "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains(".forgejo/workflows/pr.yml"),
        "{d}"
    );
    let (_, log) = ran(&s, "acme/forge", &fj_head).await;
    assert!(
        log.contains(&format!(
            "event=pull_request ref=refs/pull/8/merge head=topic base=main sha={fj_head} file=fj-head"
        )),
        "{log}"
    );
    assert_eq!(runs_of(&s, "acme/tea").await.len(), 2);
}

/// GitLab's `Merge Request Hook` (`object_kind: merge_request`, `object_attributes`).
fn gitlab_mr(action: &str, iid: u64, source: &str, sha: &str, oldrev: Option<&str>) -> Vec<u8> {
    let mut attrs = serde_json::json!({
        "id": 900 + iid, "iid": iid, "title": "Lab feature", "state": "opened",
        "action": action, "source_branch": source, "target_branch": "main",
        "source_project_id": 15, "target_project_id": 15,
        "last_commit": { "id": sha, "message": "lab change", "title": "lab change",
                         "timestamp": "2026-12-04T07:00:00+00:00",
                         "author": { "name": "Lab Dev", "email": "lab@example.test" } },
        "url": format!("https://gitlab.example.test/acme/lab/-/merge_requests/{iid}")
    });
    if let Some(old) = oldrev {
        attrs["oldrev"] = old.into();
    }
    serde_json::to_vec(&serde_json::json!({
        "object_kind": "merge_request", "event_type": "merge_request",
        "user": { "id": 7, "name": "Lab Dev", "username": "labber", "email": "[REDACTED]" },
        "project": { "id": 15, "name": "lab", "path_with_namespace": "acme/lab",
                     "default_branch": "main", "git_http_url": "https://gitlab.example.test/acme/lab.git" },
        "object_attributes": attrs,
        "labels": [], "changes": {},
        "repository": { "name": "lab", "url": "https://gitlab.example.test/acme/lab.git" }
    }))
    .unwrap()
}

/// A GitLab delivery with both of GitLab's ids: `Idempotency-Key` (the same on every
/// retry of a delivery) and `X-Gitlab-Event-UUID` (new for each request).
async fn gitlab_deliver(s: &Server, key: Option<&str>, uuid: &str, body: &[u8]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/hooks/gitlab", s.base))
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitLab/17.5.0")
        .header("X-Gitlab-Event", "Merge Request Hook")
        .header("X-Gitlab-Event-UUID", uuid)
        .header(
            "X-Gitlab-Webhook-UUID",
            "7c2a9e1e-0000-4000-8000-000000000001",
        )
        .header("X-Gitlab-Instance", "https://gitlab.example.test")
        .header("X-Gitlab-Token", SECRET)
        .body(body.to_vec());
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_merge_requests_run_and_a_retry_starts_nothing() {
    let bare = BareRepo::new();
    bare.commit(
        "main",
        &[(".github/workflows/pr.yml", PR_WF), ("f", "main")],
        "wf",
    );
    let head1 = bare.commit("lab-feature", &[("f", "mr1")], "mr 1");
    point(&bare, "refs/merge-requests/4/head", &head1);
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);

    let key = guid();
    let body = gitlab_mr("open", 4, "lab-feature", &head1, None);
    let (st, text) = gitlab_deliver(&s, Some(&key), &guid(), &body).await;
    assert_eq!(st, 202, "{text}");
    assert_eq!(processed(&s, &key).await["result"], "queued");
    let (run, log) = ran(&s, "acme/lab", &head1).await;
    assert_eq!(run.event, "pull_request");
    assert_eq!(run.head_branch, "lab-feature");
    assert!(
        log.contains(&format!(
            "event=pull_request ref=refs/pull/4/merge head=lab-feature base=main sha={head1} file=mr1"
        )),
        "{log}"
    );

    // GitLab retries a delivery (automatically, or "Resend request") with the same
    // Idempotency-Key and a new X-Gitlab-Event-UUID: nothing new starts.
    let (st, text) = gitlab_deliver(&s, Some(&key), &guid(), &body).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("received before"), "{text}");

    // New commits: `update` with `oldrev` is `synchronize`.
    let head2 = bare.commit("lab-feature", &[("f", "mr2")], "mr 2");
    point(&bare, "refs/merge-requests/4/head", &head2);
    let key2 = guid();
    let body = gitlab_mr("update", 4, "lab-feature", &head2, Some(&head1));
    let (st, _) = gitlab_deliver(&s, Some(&key2), &guid(), &body).await;
    assert_eq!(st, 202);
    assert_eq!(processed(&s, &key2).await["result"], "queued");
    let (_, log) = ran(&s, "acme/lab", &head2).await;
    assert!(log.contains(&format!("sha={head2} file=mr2")), "{log}");

    // `update` without `oldrev` (a title edited) is `edited`: not a default type.
    // Without an Idempotency-Key (GitLab before 17.4) the event UUID is the id.
    let uuid = guid();
    let body = gitlab_mr("update", 4, "lab-feature", &head2, None);
    let (st, _) = gitlab_deliver(&s, None, &uuid, &body).await;
    assert_eq!(st, 202);
    assert_eq!(processed(&s, &uuid).await["result"], "no_match");

    let runs = runs_of(&s, "acme/lab").await;
    assert_eq!(runs.len(), 2, "the retry started nothing");
    let lab: Vec<_> = deliveries(&s.base)
        .await
        .into_iter()
        .filter(|d| d["forge"] == "gitlab")
        .collect();
    assert_eq!(lab.iter().filter(|d| d["result"] == "duplicate").count(), 1);
}
