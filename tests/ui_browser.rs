//! The web UI of `gantry serve` in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini), against the real binary.
//! Job, step, log and deployment data are written by this test process through the
//! gantry-server store API into the same SQLite file the server uses, as a run executor in
//! another process would: the pages must see them through their poll, not an in-process
//! announcement. Screenshots of every page go to `docs/ui/*.png` (shown in `docs/ui.md`).
//!
//! Without chromedriver the tests skip loudly; with `GANTRY_REQUIRE_BROWSER=1` (CI) they
//! fail instead.

#[path = "serve_support.rs"]
mod serve_support;
#[path = "ui_support.rs"]
mod ui_support;

use std::time::{Duration, Instant};

use fantoccini::Locator;
use gantry_server::Store;
use gantry_server::store_runs::{RunFilter, StepRecord};
use serve_support::*;
use ui_support::*;

/// dev pushes (the webhook's sender) and is also a reviewer, so self-review applies.
const DEV_TOKEN: &str = READER_TOKEN;

const WORKFLOW: &str = r#"name: CI
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo build
  test:
    needs: build
    runs-on: ubuntu-latest
    strategy:
      matrix:
        os: [a, b]
    steps:
      - run: echo test
  deploy:
    needs: test
    runs-on: ubuntu-latest
    environment: production
    steps:
      - run: echo deploy
"#;

fn config(repo_url: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
url: http://ci.example.test
data: ./data
users:
  - {{ login: alice, token: "${{ALICE_TOKEN}}", role: admin }}
  - {{ login: bob, token: "${{BOB_TOKEN}}", role: write }}
  - {{ login: dev, token: "${{CAROL_TOKEN}}", role: write }}
repositories:
  - name: acme/shop
    url: {repo_url}
    forge: github
    webhook_secret: "${{HOOK_SECRET}}"
    environments:
      production:
        reviewers: [alice, dev]
        required_approvals: 1
        prevent_self_review: true
        wait_timer: 0s
labels:
  ubuntu-latest: host
"#
    )
}

async fn queued_run(store: &Store) -> gantry_server::store_runs::RunRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, runs) = store
            .list_runs("acme/shop", &RunFilter::default(), 1, 10)
            .await
            .unwrap();
        if let Some(r) = runs.into_iter().next() {
            return r;
        }
        assert!(Instant::now() < deadline, "the webhook queued no run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The time `secs` seconds ago, as the store writes times.
fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn step(n: i64, name: &str, status: &str, conclusion: Option<&str>) -> StepRecord {
    StepRecord {
        number: n,
        name: name.into(),
        status: status.into(),
        conclusion: conclusion.map(Into::into),
        // Shortly before now, so the pages (and screenshots) show real durations.
        started_at: Some(ago(8 - 2 * n)),
        completed_at: conclusion.map(|_| ago(7 - 2 * n)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_in_chromium() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let bare = BareRepo::new();
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", WORKFLOW)], "Add CI");
    let s = Server::start(&config(&bare.url()));
    let db = format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/gantry.db").display()
    );
    let store = Store::open(&db).await.expect("the server's SQLite file");
    let zero = "0".repeat(40);
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        &zero,
        &sha,
        "Add CI",
    ))
    .unwrap();
    let (st, _) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert!(st < 300, "webhook answered {st}");
    let run = queued_run(&store).await;
    let base = &s.base;

    // Sign-in page, then the repositories as alice.
    c.goto(&format!("{base}/login")).await.unwrap();
    shot(&c, "sign-in").await;
    sign_in(&c, base, ADMIN_TOKEN).await;
    let src = c.source().await.unwrap();
    assert!(src.contains("acme/shop"), "repositories page: {src}");
    shot(&c, "repositories").await;

    // The runs list shows the webhook-queued run, and a second push appears live.
    c.goto(&format!("{base}/acme/shop/actions")).await.unwrap();
    let row = c
        .find(Locator::Css("table.runs tbody tr.run"))
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(
        text.contains("Add CI") && text.contains("push") && text.contains(&sha[..7]),
        "{text}"
    );
    let sha2 = bare.commit("main", &[("README", "hi")], "Second change");
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        &sha,
        &sha2,
        "Second change",
    ))
    .unwrap();
    deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    until(
        &c,
        "the second run to appear live",
        "document.querySelectorAll('table.runs tr.run').length === 2",
    )
    .await;
    shot(&c, "runs").await;

    // Job states written by "another process" (this one), then the graph.
    let jobs = store.run_jobs(run.id, run.run_attempt).await.unwrap();
    let by_key = |k: &str| {
        jobs.iter()
            .filter(|j| j.key == k)
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };
    let (build, legs, deploy) = (by_key("build"), by_key("test"), by_key("deploy"));
    assert_eq!(
        (build.len(), legs.len(), deploy.len()),
        (1, 2, 1),
        "{jobs:?}"
    );
    store
        .set_job_status(build[0], "in_progress", None)
        .await
        .unwrap();
    store
        .set_step(
            build[0],
            &step(1, "Set up job", "completed", Some("success")),
        )
        .await
        .unwrap();
    store
        .set_step(
            build[0],
            &step(2, "Run echo build", "completed", Some("success")),
        )
        .await
        .unwrap();
    store
        .set_job_status(build[0], "completed", Some("success"))
        .await
        .unwrap();
    store
        .set_job_status(legs[0], "in_progress", None)
        .await
        .unwrap();
    store
        .set_step(legs[0], &step(1, "Run echo test", "in_progress", None))
        .await
        .unwrap();
    store
        .set_job_status(legs[1], "completed", Some("failure"))
        .await
        .unwrap();
    store
        .set_job_status(deploy[0], "waiting", None)
        .await
        .unwrap();
    store
        .set_run_status(run.id, "in_progress", None)
        .await
        .unwrap();
    // What the server's gate records when the deploy job reaches it.
    store
        .request_review(run.id, deploy[0], "production")
        .await
        .unwrap();
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    let status_of = |id: i64| {
        format!("document.querySelector('svg.graph a[data-job=\"{id}\"]').dataset.status")
    };
    for (id, want) in [
        (build[0], "success"),
        (legs[0], "in_progress"),
        (legs[1], "failure"),
        (deploy[0], "waiting"),
    ] {
        let got = c
            .execute(&format!("return {};", status_of(id)), vec![])
            .await
            .unwrap();
        assert_eq!(got, want, "job {id} in the graph");
    }
    let groups = c.find_all(Locator::Css("svg.graph g.job")).await.unwrap();
    assert_eq!(
        groups.len(),
        3,
        "matrix legs grouped: build, test (2), deploy"
    );
    let edges = c
        .find_all(Locator::Css("svg.graph path.edge"))
        .await
        .unwrap();
    assert_eq!(edges.len(), 2, "needs edges build→test→deploy");
    // alice may approve (a reviewer who did not trigger the run).
    assert!(
        c.find(Locator::Css("#approve")).await.is_ok(),
        "alice sees Approve"
    );
    shot(&c, "run").await;

    // The live log: lines appended to the store show up on the open job page.
    store
        .append_log(
            legs[0],
            "::group::Set up\nrunner ready\n::endgroup::\n",
            &gantry_engine::masker::Masker::new(),
        )
        .await
        .unwrap();
    c.goto(&format!(
        "{base}/acme/shop/actions/runs/{}/job/{}",
        run.id, legs[0]
    ))
    .await
    .unwrap();
    until(
        &c,
        "the stored log",
        "document.querySelector('#log details.grp .gname')",
    )
    .await;
    for i in 1..=3 {
        store
            .append_log(
                legs[0],
                &format!("\x1b[32mstep {i} ok\x1b[0m <b>not bold</b>\n"),
                &gantry_engine::masker::Masker::new(),
            )
            .await
            .unwrap();
    }
    until(&c, "streamed lines", "document.getElementById('L6') && document.getElementById('L6').textContent.includes('step 3 ok')").await;
    let html = c
        .execute("return document.getElementById('L4').innerHTML;", vec![])
        .await
        .unwrap();
    let html = html.as_str().unwrap();
    assert!(
        html.contains("class=\"a32\"") && html.contains("&lt;b&gt;"),
        "ANSI colour, escaped text: {html}"
    );
    assert!(
        c.find(Locator::Css("#L4 a[href='#L4']")).await.is_ok(),
        "line numbers are links"
    );
    // Search hides the other lines.
    c.find(Locator::Css("#logsearch"))
        .await
        .unwrap()
        .send_keys("step 2")
        .await
        .unwrap();
    until(
        &c,
        "search",
        "document.querySelectorAll('#log .ln.hit').length === 1",
    )
    .await;
    c.find(Locator::Css("#logsearch"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.execute(
        "document.getElementById('logsearch').dispatchEvent(new Event('input'));",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "job-log").await;

    // A group the page's first window leaves open takes the lines streamed into it (the
    // deploy job: still running, so its page streams).
    let m = gantry_engine::masker::Masker::new();
    store
        .append_log(deploy[0], "::group::Still open\nfirst inside\n", &m)
        .await
        .unwrap();
    c.goto(&format!(
        "{base}/acme/shop/actions/runs/{}/job/{}",
        run.id, deploy[0]
    ))
    .await
    .unwrap();
    until(
        &c,
        "the open group",
        "document.querySelector('#log details.grp')",
    )
    .await;
    store
        .append_log(
            deploy[0],
            "streamed inside\n::endgroup::\nafter the group\n",
            &m,
        )
        .await
        .unwrap();
    until(&c, "the streamed lines", "document.getElementById('L5')").await;
    let placed = c
        .execute(
            "const g = document.querySelector('#log details.grp'); \
             return [g.contains(document.getElementById('L3')), g.contains(document.getElementById('L4')), \
                     g.contains(document.getElementById('L5'))];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        placed,
        serde_json::json!([true, true, false]),
        "streamed lines inside the open group, the line after its end outside"
    );

    // A cross-site form post (another origin, no CSRF token) is refused and records nothing.
    let review = format!("{base}/acme/shop/actions/runs/{}/review", run.id);
    c.goto(&attacker_page(review.clone())).await.unwrap();
    until(
        &c,
        "the refusal",
        "document.body.innerText.includes('refused')",
    )
    .await;
    let page = c.source().await.unwrap();
    assert!(page.contains("posted from another site"), "{page}");
    // The same post from our own page but without the token is refused too.
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    let st = post_from_page(
        &c,
        &review,
        &[("environment", "production"), ("decision", "approve")],
        false,
    )
    .await;
    assert_eq!(st, 403, "a post without the CSRF token");
    assert!(
        store.approvals(run.id).await.unwrap().is_empty(),
        "nothing recorded by refused posts"
    );

    // dev triggered the run: no Approve button, and a forged POST (with a valid token) is refused.
    sign_out(&c).await;
    sign_in(&c, base, DEV_TOKEN).await;
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Css("#approve")).await.is_err(),
        "the actor must not see Approve"
    );
    let banner = c
        .find(Locator::Css("#banner"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        banner.contains("production") && banner.contains("1 of 1 approvals still needed"),
        "{banner}"
    );
    assert!(
        banner.contains("dev triggered the run and may not review it"),
        "{banner}"
    );
    let st = post_from_page(
        &c,
        &review,
        &[("environment", "production"), ("decision", "approve")],
        true,
    )
    .await;
    assert_eq!(st, 403, "self-review through a forged post");
    let api = reqwest::Client::new()
        .post(&review)
        .header("Authorization", format!("Bearer {DEV_TOKEN}"))
        .form(&[("environment", "production"), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.status(),
        403,
        "self-review with the API's Authorization header"
    );
    assert!(store.approvals(run.id).await.unwrap().is_empty());

    // alice approves from the page: recorded, and the banner goes.
    sign_out(&c).await;
    sign_in(&c, base, ADMIN_TOKEN).await;
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    shot(&c, "approval").await;
    c.find(Locator::Css("#banner textarea"))
        .await
        .unwrap()
        .send_keys("ship it")
        .await
        .unwrap();
    c.find(Locator::Css("#approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the banner to go",
        "!document.querySelector('#banner section')",
    )
    .await;
    let a = store.approvals(run.id).await.unwrap();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (
            a[0].reviewer.as_str(),
            a[0].state.as_str(),
            a[0].comment.as_str()
        ),
        ("alice", "approved", "ship it")
    );
    assert_eq!(a[0].job_id, deploy[0]);

    // Deployments page.
    let d = store
        .record_deployment(
            "acme/shop",
            "production",
            run.id,
            deploy[0],
            &sha,
            "refs/heads/main",
            "dev",
            "success",
        )
        .await
        .unwrap();
    assert!(d > 0);
    c.goto(&format!("{base}/acme/shop/deployments"))
        .await
        .unwrap();
    let t = c
        .find(Locator::Css("section.env"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("production") && t.contains(&sha[..7]) && t.contains("approved by alice"),
        "{t}"
    );
    // docs/ui/deployments.png is ui_reports' (health verdicts, a rollback).

    // Phone width.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/acme/shop/actions")).await.unwrap();
    shot(&c, "runs-phone").await;

    // No token ever shows up in what the server printed.
    let log = s.output();
    for t in [ADMIN_TOKEN, WRITER_TOKEN, DEV_TOKEN] {
        assert!(!log.contains(t), "a token in the server's output");
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_cookies_and_roles_without_a_browser() {
    let bare = BareRepo::new();
    bare.commit("main", &[(".github/workflows/ci.yml", WORKFLOW)], "Add CI");
    let s = Server::start(&config(&bare.url()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Not signed in: to the sign-in page. A wrong Authorization header: 401.
    let r = http
        .get(format!("{}/acme/shop/actions", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Facme%2Fshop%2Factions"
    );
    let r = http
        .get(format!("{}/acme/shop/actions", s.base))
        .header("Authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Unknown repository: 404 for everyone.
    let r = http
        .get(format!("{}/acme/nope/actions", s.base))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Sign-in: the login cookie's CSRF token must come back with the form.
    let r = http.get(format!("{}/login", s.base)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let csrf = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let r = http
        .post(format!("{}/login", s.base))
        .form(&[("token", ADMIN_TOKEN), ("_csrf", "wrong"), ("next", "/")])
        .header("Cookie", format!("gantry_login_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "sign-in without the right CSRF token");
    let r = http
        .post(format!("{}/login", s.base))
        .form(&[
            ("token", ADMIN_TOKEN),
            ("_csrf", &csrf),
            ("next", "//evil.example"),
        ])
        .header("Cookie", format!("gantry_login_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/", "no redirect off-site");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("gantry_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && !session.contains("Secure")
    );
    let sid = session.split(';').next().unwrap().to_string();
    // The store holds only the session id's hash.
    let store = Store::open(&format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/gantry.db").display()
    ))
    .await
    .unwrap();
    drop(store);
    let db = std::fs::read(s.dir.path().join("data/gantry.db")).unwrap_or_default();
    let raw = sid.split_once('=').unwrap().1;
    assert!(
        !db.windows(raw.len()).any(|w| w == raw.as_bytes()),
        "the session id in the database"
    );
    let r = http
        .get(format!("{}/acme/shop/actions", s.base))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("All workflow runs") && page.contains("alice"));
    // A form action on a run that does not exist, with the API's header (no CSRF needed).
    let r = http
        .post(format!("{}/acme/shop/actions/runs/1/cancel", s.base))
        .header("Authorization", format!("Bearer {DEV_TOKEN}"))
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "run 1 does not exist");
    // Assets are embedded.
    let css = http
        .get(format!("{}/-/ui.css", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.text().await.unwrap().contains("prefers-color-scheme"));
}

/// By hand, not a timed test: `cargo test -p gantry-tests --test ui_browser -- --ignored
/// --nocapture bench`. A run of 1,000 jobs and a job log of 100 MB: bytes of each page and
/// Chromium's first contentful paint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_big_run_and_big_log() {
    use gantry_server::store_runs::{NewJob, NewRun};
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let bare = BareRepo::new();
    bare.commit("main", &[(".github/workflows/ci.yml", WORKFLOW)], "Add CI");
    let s = Server::start(&config(&bare.url()));
    let db = format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/gantry.db").display()
    );
    let store = Store::open(&db).await.unwrap();
    let jobs = (0..1000)
        .map(|i| NewJob {
            key: format!("j{}", i / 10),
            name: format!("j{} ({})", i / 10, i % 10),
            needs: if i >= 10 {
                vec![format!("j{}", i / 10 - 1)]
            } else {
                vec![]
            },
            labels: vec!["ubuntu-latest".into()],
            environment: None,
        })
        .collect();
    let run = store
        .create_run(&NewRun {
            repo: "acme/shop".into(),
            workflow_path: ".github/workflows/ci.yml".into(),
            workflow_name: "CI".into(),
            display_title: "Big".into(),
            event: "push".into(),
            head_branch: "main".into(),
            head_sha: "a".repeat(40),
            git_ref: "refs/heads/main".into(),
            actor: "dev".into(),
            head_commit: serde_json::json!({}),
            payload: serde_json::json!({}),
            delivery_id: None,
            jobs,
        })
        .await
        .unwrap();
    let job = store.run_jobs(run, 1).await.unwrap()[0].id;
    let line = "\x1b[32mok\x1b[0m a log line of some eighty characters, padded out to look like output....\n";
    let chunk: String = line.repeat(64 * 1024 / line.len());
    let masker = gantry_engine::masker::Masker::new();
    for _ in 0..(100 * 1024 * 1024 / chunk.len()) {
        store.append_log(job, &chunk, &masker).await.unwrap();
    }
    sign_in(&c, &s.base, ADMIN_TOKEN).await;
    let http = reqwest::Client::new();
    for (what, path) in [
        (
            "run page, 1,000 jobs",
            format!("/acme/shop/actions/runs/{run}"),
        ),
        (
            "job page, 100 MB log",
            format!("/acme/shop/actions/runs/{run}/job/{job}"),
        ),
    ] {
        let t = Instant::now();
        let body = http
            .get(format!("{}{path}", s.base))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let served = t.elapsed();
        c.goto(&format!("{}{path}", s.base)).await.unwrap();
        let fcp = c
            .execute(
                "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : -1;",
                vec![],
            )
            .await
            .unwrap();
        let sent = c
            .execute(
                "return performance.getEntriesByType('navigation')[0].transferSize + \
                 performance.getEntriesByType('resource').reduce((a, r) => a + r.transferSize, 0);",
                vec![],
            )
            .await
            .unwrap();
        println!(
            "bench {what}: HTML {} bytes, served in {served:?}; Chromium first contentful paint {fcp} ms, {sent} bytes transferred",
            body.len()
        );
    }
}
