//! `gantry serve` webhooks end to end: the real binary, a real bare repository, deliveries
//! signed as GitHub, Gitea, Forgejo and GitLab sign them, the result read with octocrab.

#[path = "serve_support.rs"]
mod serve_support;

use serve_support::*;

const ZERO: &str = "0000000000000000000000000000000000000000";

async fn run_count(s: &Server, repo: &str) -> u64 {
    let (owner, name) = repo.split_once('/').unwrap();
    let page = s
        .octocrab(READER_TOKEN)
        .workflows(owner, name)
        .list_all_runs()
        .send()
        .await
        .expect("list runs");
    page.total_count.unwrap_or(0)
}

/// Waits until the accepted delivery with id `guid` has been processed and returns its
/// record (refused deliveries with the same id are other records).
async fn processed(s: &Server, guid: &str) -> serde_json::Value {
    wait_for("delivery processed", || async {
        deliveries(&s.base).await.into_iter().find(|d| {
            d["delivery_id"] == guid && d["status_code"] == 202 && d["result"] != "accepted"
        })
    })
    .await
}

fn push_body(repo: &str, before: &str, after: &str, msg: &str) -> Vec<u8> {
    serde_json::to_vec(&github_push(repo, "refs/heads/main", before, after, msg)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_queues_a_run_visible_through_the_api() {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));
    let id = guid();
    let (st, body) = deliver(
        &s.base,
        "github",
        "push",
        &id,
        &push_body("acme/shop", ZERO, &sha, "first"),
        Some(SECRET),
    )
    .await;
    assert_eq!(st, 202, "{body}");
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "queued", "{d}");

    let octo = s.octocrab(READER_TOKEN);
    let runs = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, Some(1));
    let run = &runs.items[0];
    assert_eq!(run.event, "push");
    assert_eq!(run.head_sha, sha);
    assert_eq!(run.head_branch, "main");
    assert_eq!(run.status, "queued");
    assert_eq!(run.name, "CI");
    assert_eq!(run.run_number, 1);
    assert_eq!(run.head_commit.message, "first");
    assert_eq!(run.repository.full_name.as_deref(), Some("acme/shop"));
    assert_eq!(d["run_ids"][0].as_u64(), Some(run.id.0));

    // The jobs come from the plan: the matrix expanded into legs, in DAG order.
    let jobs = octo
        .workflows("acme", "shop")
        .list_jobs(run.id)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = jobs.items.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build", "test (a)", "test (b)", "deploy"]);
    assert_eq!(jobs.items[0].labels, ["ubuntu-latest"]);
    assert_eq!(jobs.items[1].labels, ["self-hosted"]);

    // The raw JSON carries GitHub's field names, for clients other than octocrab.
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/acme/shop/actions/runs/{}",
            s.base, run.id
        ))
        .header("Authorization", format!("token {READER_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "display_title",
        "run_attempt",
        "actor",
        "jobs_url",
        "path",
        "workflow_id",
    ] {
        assert!(raw.get(key).is_some(), "run JSON lacks {key}: {raw}");
    }
    assert_eq!(raw["actor"]["login"], "dev");
    assert_eq!(raw["path"], ".github/workflows/ci.yml");
    assert!(
        !s.output().contains(SECRET),
        "the webhook secret was printed"
    );
    assert!(
        !s.output().contains(APP_SECRET),
        "a repository secret was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_start_nothing_and_are_recorded() {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));
    let body = push_body("acme/shop", ZERO, &sha, "first");

    let unsigned = guid();
    let (st, _) = deliver(&s.base, "github", "push", &unsigned, &body, None).await;
    assert_eq!(st, 401, "unsigned");

    let forged = guid();
    let (st, _) = deliver(
        &s.base,
        "github",
        "push",
        &forged,
        &body,
        Some("not-the-secret"),
    )
    .await;
    assert_eq!(st, 401, "forged");

    // Signed correctly, then one byte changed: the signature covers the exact bytes.
    let tampered = guid();
    let sig = hmac_hex(SECRET, &body);
    let mut changed = body.clone();
    let at = changed.iter().position(|&b| b == b'f').unwrap();
    changed[at] = b'g';
    let resp = reqwest::Client::new()
        .post(format!("{}/hooks/github", s.base))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", &tampered)
        .header("X-Hub-Signature-256", format!("sha256={sig}"))
        .body(changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "tampered");

    let unknown = guid();
    let other = push_body("evil/elsewhere", ZERO, &sha, "first");
    let (st, _) = deliver(&s.base, "github", "push", &unknown, &other, Some(SECRET)).await;
    assert_eq!(st, 404, "unknown repository");

    let oversized = guid();
    let mut big = body.clone();
    big.extend(std::iter::repeat_n(b' ', 25 * 1024 * 1024));
    // 413 before the body is read; the client may instead fail writing the rest of the
    // body (broken pipe). Either way the refusal must be recorded (checked below).
    match try_deliver(&s.base, "github", "push", &oversized, &big, Some(SECRET)).await {
        Ok((st, _)) => assert_eq!(st, 413, "oversized"),
        Err(e) => assert!(
            e.is_request() && !e.is_connect() && !e.is_timeout(),
            "oversized: {e:?}"
        ),
    }

    // The forged delivery used the same id as the genuine one below: a refused delivery
    // must not claim the id.
    let (st, _) = deliver(&s.base, "github", "push", &forged, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "genuine delivery after a forged one with its id");
    let d = processed(&s, &forged).await;
    assert_eq!(d["result"], "queued", "{d}");

    // Replayed: the same delivery id again starts nothing new.
    let (st, text) = deliver(&s.base, "github", "push", &forged, &body, Some(SECRET)).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("received before"), "{text}");

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        run_count(&s, "acme/shop").await,
        1,
        "only the genuine delivery queued a run"
    );

    let log = deliveries(&s.base).await;
    let result_of = |id: &str, result: &str| {
        log.iter()
            .any(|d| d["delivery_id"] == id && d["result"] == result)
    };
    assert!(result_of(&unsigned, "unsigned"), "{log:?}");
    assert!(result_of(&forged, "forged"), "{log:?}");
    assert!(result_of(&tampered, "forged"), "{log:?}");
    assert!(result_of(&unknown, "unknown_repository"), "{log:?}");
    assert!(result_of(&oversized, "oversized"), "{log:?}");
    assert!(result_of(&forged, "duplicate"), "{log:?}");
    let unknown_rec = log.iter().find(|d| d["delivery_id"] == unknown).unwrap();
    assert_eq!(unknown_rec["repo"], "evil/elsewhere");
    assert_eq!(unknown_rec["status_code"], 404);

    let metrics = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gantry_webhook_deliveries_total{result=\"forged\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("gantry_queue_depth 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_ci_tags_and_branch_filters() {
    let bare = BareRepo::new();
    let first = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));

    let skipped = bare.commit("main", &[("README.md", "hi")], "docs only [skip ci]");
    let id = guid();
    deliver(
        &s.base,
        "github",
        "push",
        &id,
        &push_body("acme/shop", &first, &skipped, "docs only [skip ci]"),
        Some(SECRET),
    )
    .await;
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "skipped", "{d}");
    assert!(d["reason"].as_str().unwrap().contains("[skip ci]"), "{d}");

    // A branch the workflow does not list.
    let side = bare.commit("side", &[("x", "1")], "side work");
    let id = guid();
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/side",
        ZERO,
        &side,
        "side work",
    ))
    .unwrap();
    deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "no_match", "{d}");

    // A tag matching `tags: ['v*']`.
    bare.tag("v1.0", &skipped);
    let id = guid();
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/tags/v1.0",
        ZERO,
        &skipped,
        "docs only [skip ci]",
    ))
    .unwrap();
    deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    let d = processed(&s, &id).await;
    // The tagged commit's message has [skip ci]: GitHub skips tag pushes for it too.
    assert_eq!(d["result"], "skipped", "{d}");
    let tagged = bare.commit("main", &[("y", "2")], "release");
    bare.tag("v2.0", &tagged);
    let id = guid();
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/tags/v2.0",
        ZERO,
        &tagged,
        "release",
    ))
    .unwrap();
    deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "queued", "{d}");
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.items[0].head_branch, "v2.0");

    // pull_request: `opened` is a default type, `labeled` is not.
    let feature = bare.commit("feature", &[("f", "1")], "feature");
    bare.repo
        .reference(
            "refs/pull/7/head",
            git2::Oid::from_str(&feature).unwrap(),
            true,
            "pr",
        )
        .unwrap();
    let id = guid();
    let body = serde_json::to_vec(&github_pull_request(
        "acme/shop",
        "opened",
        7,
        "feature",
        &feature,
        "main",
    ))
    .unwrap();
    deliver(&s.base, "github", "pull_request", &id, &body, Some(SECRET)).await;
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "queued", "{d}");
    let id = guid();
    let body = serde_json::to_vec(&github_pull_request(
        "acme/shop",
        "labeled",
        7,
        "feature",
        &feature,
        "main",
    ))
    .unwrap();
    deliver(&s.base, "github", "pull_request", &id, &body, Some(SECRET)).await;
    let d = processed(&s, &id).await;
    assert_eq!(d["result"], "no_match", "{d}");
    let pr_runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_all_runs()
        .event("pull_request")
        .send()
        .await
        .unwrap();
    assert_eq!(pr_runs.total_count, Some(1));
    assert_eq!(pr_runs.items[0].head_sha, feature);
    assert_eq!(pr_runs.items[0].head_branch, "feature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_forgejo_and_gitlab_deliveries() {
    let bare = BareRepo::new();
    // Gitea and Forgejo read their own directory first; GitHub's is ignored then.
    let gitea_wf = CI_WORKFLOW.replace("name: CI", "name: Gitea CI");
    let sha = bare.commit(
        "main",
        &[
            (".github/workflows/ci.yml", CI_WORKFLOW),
            (".gitea/workflows/ci.yml", &gitea_wf),
        ],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));

    // Gitea's push payload: GitHub-like, with `compare_url`, signed with a bare hex HMAC.
    let gitea = serde_json::json!({
        "ref": "refs/heads/main", "before": ZERO, "after": sha, "compare_url": "",
        "commits": [{ "id": sha, "message": "first\n", "added": [".gitea/workflows/ci.yml"], "removed": [], "modified": [] }],
        "head_commit": { "id": sha, "message": "first\n" },
        "repository": { "id": 9, "name": "tea", "full_name": "acme/tea", "clone_url": bare.url() },
        "pusher": { "login": "gitea-user", "username": "gitea-user" },
        "sender": { "login": "gitea-user", "username": "gitea-user" }
    });
    let id = guid();
    let body = serde_json::to_vec(&gitea).unwrap();
    let (st, text) = deliver(&s.base, "gitea", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    assert_eq!(processed(&s, &id).await["result"], "queued");
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "tea")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.items[0].name, "Gitea CI");

    // Forgejo: its own signature header.
    let mut forgejo = gitea.clone();
    forgejo["repository"]["full_name"] = "acme/forge".into();
    let id = guid();
    let body = serde_json::to_vec(&forgejo).unwrap();
    let (st, _) = deliver(&s.base, "forgejo", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202);
    assert_eq!(processed(&s, &id).await["result"], "queued");
    // A Gitea-signed delivery is not a Forgejo one: acme/forge is configured for forgejo.
    let id = guid();
    let (st, _) = deliver(&s.base, "gitea", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 404);

    // GitLab: the plaintext token, `Push Hook`, `project.path_with_namespace`.
    let gitlab = serde_json::json!({
        "object_kind": "push", "event_name": "push", "before": ZERO, "after": sha,
        "ref": "refs/heads/main", "checkout_sha": sha, "user_username": "labber",
        "project": { "id": 15, "path_with_namespace": "acme/lab", "default_branch": "main",
                     "git_http_url": bare.url() },
        "commits": [{ "id": sha, "message": "first", "timestamp": "2026-12-02T07:00:00+00:00",
                      "added": [".github/workflows/ci.yml"], "modified": [], "removed": [] }],
        "total_commits_count": 1
    });
    let body = serde_json::to_vec(&gitlab).unwrap();
    let id = guid();
    let (st, _) = deliver(
        &s.base,
        "gitlab",
        "Push Hook",
        &id,
        &body,
        Some("wrong-token"),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _) = deliver(&s.base, "gitlab", "Push Hook", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202);
    assert_eq!(processed(&s, &id).await["result"], "queued");
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "lab")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, Some(1));
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/acme/lab/actions/runs/{}",
            s.base, runs.items[0].id
        ))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["actor"]["login"], "labber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_serves_the_same_flow() {
    let Some(pg) = postgres() else { return };
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), Some(&pg.url)));
    let id = guid();
    let body = push_body("acme/shop", ZERO, &sha, "first");
    let (st, _) = deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 202);
    assert_eq!(processed(&s, &id).await["result"], "queued");
    let (st, _) = deliver(&s.base, "github", "push", &id, &body, Some(SECRET)).await;
    assert_eq!(st, 200, "replay refused on PostgreSQL too");
    let (st, _) = deliver(&s.base, "github", "push", &guid(), &body, Some("forged")).await;
    assert_eq!(st, 401);
    assert_eq!(run_count(&s, "acme/shop").await, 1);
    let octo = s.octocrab(READER_TOKEN);
    let runs = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    let jobs = octo
        .workflows("acme", "shop")
        .list_jobs(runs.items[0].id)
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.items.len(), 4);
    // Nothing about the run lives in SQLite: the data directory holds no database.
    assert!(!s.dir.path().join("data/gantry.db").exists());
    assert!(
        !s.output().contains("ci-pass"),
        "the database password was printed"
    );
}
