//! GitHub's Actions REST API on `gantry serve`, driven with octocrab (and raw requests where
//! the status code or a header is the point): tokens and roles, dispatches, cancel, re-run,
//! paging with `Link` headers, filters, GitHub's error shapes.

#[path = "serve_support.rs"]
mod serve_support;

use serve_support::*;

async fn raw(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new().request(method, format!("{}/api/v3{path}", s.base));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn setup() -> (BareRepo, Server, String) {
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));
    (bare, s, sha)
}

async fn dispatch(s: &Server, token: &str, body: &str) -> (u16, String) {
    let (st, _, text) = raw(
        s,
        reqwest::Method::POST,
        "/repos/acme/shop/actions/workflows/ci.yml/dispatches",
        Some(token),
        Some(body),
    )
    .await;
    (st, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let (_bare, s, _) = setup();
    use reqwest::Method as M;
    // No token, a wrong token.
    let (st, _, body) = raw(&s, M::GET, "/repos/acme/shop/actions/runs", None, None).await;
    assert_eq!(st, 401);
    assert!(body.contains("Requires authentication"), "{body}");
    let (st, _, body) = raw(
        &s,
        M::GET,
        "/repos/acme/shop/actions/runs",
        Some("nope"),
        None,
    )
    .await;
    assert_eq!(st, 401);
    assert!(body.contains("Bad credentials"), "{body}");
    // `token X` works as well as `Bearer X`.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v3/repos/acme/shop/actions/runs", s.base))
        .header("Authorization", format!("token {READER_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A repository that is not served: 404 for every role, as GitHub hides private ones.
    for t in [READER_TOKEN, ADMIN_TOKEN] {
        let (st, _, _) = raw(&s, M::GET, "/repos/acme/secret/actions/runs", Some(t), None).await;
        assert_eq!(st, 404);
    }
    // read may not dispatch, cancel or re-run; nor read the delivery log.
    let (st, body) = dispatch(&s, READER_TOKEN, r#"{"ref":"main"}"#).await;
    assert_eq!(st, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["message"].as_str().unwrap().contains("write"), "{body}");
    assert!(v["documentation_url"].is_string(), "{body}");
    let (st, _, _) = raw(
        &s,
        M::POST,
        "/repos/acme/shop/actions/runs/1/cancel",
        Some(READER_TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, _, _) = raw(&s, M::GET, "/gantry/deliveries", Some(WRITER_TOKEN), None).await;
    assert_eq!(st, 403);
    // octocrab sees the same refusals as errors with GitHub's message.
    let err = s
        .octocrab(READER_TOKEN)
        .actions()
        .create_workflow_dispatch("acme", "shop", "ci.yml", "main")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("write access"), "{err:?}");
    // /healthz and /metrics need no token.
    assert_eq!(
        reqwest::get(format!("{}/healthz", s.base))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let m = reqwest::get(format!("{}/metrics", s.base)).await.unwrap();
    assert_eq!(m.status().as_u16(), 200);
    assert!(
        m.text()
            .await
            .unwrap()
            .contains("# TYPE gantry_queue_depth gauge")
    );
    for t in [ADMIN_TOKEN, WRITER_TOKEN, READER_TOKEN] {
        assert!(!s.output().contains(t), "a token was printed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_bodies_are_checked_with_githubs_errors() {
    let (_bare, s, _) = setup();
    let cases = [
        (r#"{"inputs":{}}"#, 422, "\"ref\" wasn't supplied"),
        (r#"{"ref":5}"#, 422, "not a string"),
        (r#"{"ref":"main","inputs":[1]}"#, 422, "not an object"),
        (
            r#"{"ref":"main","inputs":{"level":"extreme"}}"#,
            422,
            "level",
        ),
        (r#"{"ref":"main","inputs":{"colour":"red"}}"#, 422, "colour"),
        (r#"{"ref":"no-such-branch"}"#, 422, "No ref found"),
        ("{not json", 400, "Problems parsing JSON"),
    ];
    for (body, status, needle) in cases {
        let (st, text) = dispatch(&s, WRITER_TOKEN, body).await;
        assert_eq!(st, status, "{body}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {text}"
        );
    }
    let (st, text) = dispatch(&s, WRITER_TOKEN, r#"{"inputs":{}}"#).await;
    assert_eq!(st, 422);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["errors"][0]["code"], "missing_field", "{text}");
    // Unknown workflow file: 404.
    let (st, _, _) = raw(
        &s,
        reqwest::Method::POST,
        "/repos/acme/shop/actions/workflows/nope.yml/dispatches",
        Some(WRITER_TOKEN),
        Some(r#"{"ref":"main"}"#),
    )
    .await;
    assert_eq!(st, 404);
    // repository_dispatch without event_type.
    let (st, _, text) = raw(
        &s,
        reqwest::Method::POST,
        "/repos/acme/shop/dispatches",
        Some(WRITER_TOKEN),
        Some(r#"{"client_payload":{}}"#),
    )
    .await;
    assert_eq!(st, 422, "{text}");
    // Nothing was queued by any of these.
    let runs = s
        .octocrab(READER_TOKEN)
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_cancel_rerun_paging_and_filters() {
    let (bare, s, sha) = setup();
    let octo = s.octocrab(WRITER_TOKEN);
    // workflow_dispatch through octocrab: 204, a run with the dispatcher as actor.
    octo.actions()
        .create_workflow_dispatch("acme", "shop", "ci.yml", "main")
        .inputs(serde_json::json!({ "level": "high" }))
        .send()
        .await
        .expect("dispatch");
    // repository_dispatch of a type the workflow listens to, and of one it does not.
    let (st, _, _) = raw(
        &s,
        reqwest::Method::POST,
        "/repos/acme/shop/dispatches",
        Some(WRITER_TOKEN),
        Some(r#"{"event_type":"deploy-now","client_payload":{"v":1}}"#),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _, _) = raw(
        &s,
        reqwest::Method::POST,
        "/repos/acme/shop/dispatches",
        Some(WRITER_TOKEN),
        Some(r#"{"event_type":"other"}"#),
    )
    .await;
    assert_eq!(st, 204);
    let dev = bare.commit("dev", &[("d", "1")], "on dev");
    let (st, text) = dispatch(&s, WRITER_TOKEN, r#"{"ref":"dev"}"#).await;
    assert_eq!(st, 204, "{text}");

    let runs = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, Some(3));
    let events: Vec<&str> = runs.items.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "workflow_dispatch",
            "repository_dispatch",
            "workflow_dispatch"
        ]
    );
    assert_eq!(runs.items[0].head_sha, dev);
    assert_eq!(runs.items[0].head_branch, "dev");
    assert_eq!(
        runs.items[1].head_branch, "main",
        "repository_dispatch runs on the default branch"
    );
    assert_eq!(runs.items[2].head_sha, sha);
    let numbers: Vec<i64> = runs.items.iter().map(|r| r.run_number).collect();
    assert_eq!(numbers, [3, 2, 1], "run numbers count up per workflow");
    // The dispatcher (bob's token) is the actor, as on GitHub.
    let (_, _, listed) = raw(
        &s,
        reqwest::Method::GET,
        "/repos/acme/shop/actions/runs",
        Some(READER_TOKEN),
        None,
    )
    .await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    for r in listed["workflow_runs"].as_array().unwrap() {
        assert_eq!(r["actor"]["login"], "bob", "run {} actor", r["id"]);
    }

    // Filters.
    let only = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .event("repository_dispatch")
        .send()
        .await
        .unwrap();
    assert_eq!(only.total_count, Some(1));
    let on_dev = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .branch("dev")
        .send()
        .await
        .unwrap();
    assert_eq!(on_dev.total_count, Some(1));
    let by_file = octo
        .workflows("acme", "shop")
        .list_runs("ci.yml")
        .send()
        .await
        .unwrap();
    assert_eq!(by_file.total_count, Some(3));

    // Paging: per_page=2 gives two pages, linked the way GitHub links them.
    let page1 = octo
        .workflows("acme", "shop")
        .list_all_runs()
        .per_page(2u8)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 2);
    assert!(page1.next.is_some(), "no next link");
    let page2: octocrab::Page<octocrab::models::workflows::Run> =
        octo.get_page(&page1.next).await.unwrap().expect("page 2");
    assert_eq!(page2.items.len(), 1);
    assert!(page2.next.is_none());
    assert_ne!(page2.items[0].id, page1.items[0].id);
    let (_, headers, _) = raw(
        &s,
        reqwest::Method::GET,
        "/repos/acme/shop/actions/runs?per_page=1&page=2&event=workflow_dispatch",
        Some(READER_TOKEN),
        None,
    )
    .await;
    let link = headers.get("link").unwrap().to_str().unwrap();
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"first\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert!(
        link.contains("event=workflow_dispatch"),
        "filters kept in links: {link}"
    );

    // Cancel a queued run: completed/cancelled, its jobs too; a second cancel is 409.
    let id = runs.items[0].id;
    octo.actions()
        .cancel_workflow_run("acme", "shop", id)
        .await
        .expect("cancel");
    let run = octo.workflows("acme", "shop").get(id).await.unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
    let jobs = octo
        .workflows("acme", "shop")
        .list_jobs(id)
        .send()
        .await
        .unwrap();
    assert!(
        jobs.items
            .iter()
            .all(|j| j.conclusion == Some(octocrab::models::workflows::Conclusion::Cancelled))
    );
    let (st, _, _) = raw(
        &s,
        reqwest::Method::POST,
        &format!("/repos/acme/shop/actions/runs/{id}/cancel"),
        Some(WRITER_TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 409);
    // The status filter: by status and by conclusion, as GitHub's `status` parameter.
    for (status, want) in [
        ("queued", 2),
        ("completed", 1),
        ("cancelled", 1),
        ("success", 0),
    ] {
        let got = octo
            .workflows("acme", "shop")
            .list_all_runs()
            .status(status)
            .send()
            .await
            .unwrap();
        assert_eq!(got.total_count, Some(want), "status={status}");
    }

    // Re-run: a new attempt, queued again with fresh jobs; the old attempt's jobs remain.
    octo.workflows("acme", "shop")
        .rerun_run(id)
        .await
        .expect("rerun");
    let run = octo.workflows("acme", "shop").get(id).await.unwrap();
    assert_eq!(run.status, "queued");
    let raw_run: serde_json::Value = serde_json::from_str(
        &raw(
            &s,
            reqwest::Method::GET,
            &format!("/repos/acme/shop/actions/runs/{id}"),
            Some(READER_TOKEN),
            None,
        )
        .await
        .2,
    )
    .unwrap();
    assert_eq!(raw_run["run_attempt"], 2);
    let latest = octo
        .workflows("acme", "shop")
        .list_jobs(id)
        .send()
        .await
        .unwrap();
    assert_eq!(latest.items.len(), 4);
    assert!(latest.items.iter().all(|j| j.run_attempt == 2));
    let (_, _, all) = raw(
        &s,
        reqwest::Method::GET,
        &format!("/repos/acme/shop/actions/runs/{id}/jobs?filter=all"),
        Some(READER_TOKEN),
        None,
    )
    .await;
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["total_count"], 8);
    // A run that has not completed cannot be re-run.
    let (st, _, _) = raw(
        &s,
        reqwest::Method::POST,
        &format!("/repos/acme/shop/actions/runs/{id}/rerun"),
        Some(WRITER_TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 403);

    // A job and its (still empty) log; another repository's job id is 404.
    let job = &latest.items[0];
    let got = octo
        .workflows("acme", "shop")
        .get_job(job.id)
        .await
        .unwrap();
    assert_eq!(got.name, job.name);
    let (st, headers, text) = raw(
        &s,
        reqwest::Method::GET,
        &format!("/repos/acme/shop/actions/jobs/{}/logs", job.id),
        Some(READER_TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(text, "");
    let (st, _, _) = raw(
        &s,
        reqwest::Method::GET,
        &format!("/repos/acme/tea/actions/jobs/{}", job.id),
        Some(READER_TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 404);
}

/// Every `html_url` the API answers with leads to a page of the server (runs, jobs,
/// repositories, users, workflows, environments), for a reader with a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_urls_lead_to_pages() {
    let (_bare, s, _sha) = setup();
    let octo = s.octocrab(WRITER_TOKEN);
    octo.actions()
        .create_workflow_dispatch("acme", "shop", "ci.yml", "main")
        .send()
        .await
        .expect("dispatch");
    let get = |path: &str| {
        let path = path.to_string();
        let s = &s;
        async move {
            let (st, _, text) = raw(s, reqwest::Method::GET, &path, Some(READER_TOKEN), None).await;
            assert_eq!(st, 200, "{path}: {text}");
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        }
    };
    let runs = get("/repos/acme/shop/actions/runs").await;
    let run = &runs["workflow_runs"][0];
    let id = run["id"].as_u64().unwrap();
    let jobs = get(&format!("/repos/acme/shop/actions/runs/{id}/jobs")).await;
    let workflows = get("/repos/acme/shop/actions/workflows").await;
    let envs = get("/repos/acme/shop/environments").await;
    let mut urls: Vec<(&str, String, String)> = vec![
        (
            "run",
            run["html_url"].as_str().unwrap().into(),
            format!("runs/{id}"),
        ),
        (
            "job",
            jobs["jobs"][0]["html_url"].as_str().unwrap().into(),
            "Raw log".into(),
        ),
        (
            "repository",
            run["repository"]["html_url"].as_str().unwrap().into(),
            "All workflow runs".into(),
        ),
        (
            "actor",
            run["actor"]["html_url"].as_str().unwrap().into(),
            "acme/shop".into(),
        ),
        (
            "owner",
            run["repository"]["owner"]["html_url"]
                .as_str()
                .unwrap()
                .into(),
            "acme/shop".into(),
        ),
        (
            "workflow",
            workflows["workflows"][0]["html_url"]
                .as_str()
                .unwrap()
                .into(),
            "All workflow runs".into(),
        ),
    ];
    let prod = envs["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "production")
        .expect("production");
    urls.push((
        "environment",
        prod["html_url"].as_str().unwrap().into(),
        "id=\"env-production\"".into(),
    ));
    let http = reqwest::Client::new();
    for (what, url, want) in urls {
        // The config's external URL is not where the test's server listens.
        let local = url.replacen("http://ci.example.test", &s.base, 1);
        assert_ne!(local, url, "{what}: {url} is not under the external URL");
        let page = http
            .get(&local)
            .bearer_auth(READER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{what}: {url}");
        let text = page.text().await.unwrap();
        assert!(
            text.contains(&want),
            "{what}: {url} shows no {want:?}:\n{text}"
        );
    }
}
