//! The web UI against a `gantry serve` that runs its jobs (the executor on, host jobs), in
//! real headless Chromium: a running job's log lines appear on its page as the step prints
//! them; a read-only user gets no Approve button and is refused; the reviewer approves from
//! the run page, the decision shows at once on a second open page, and the deploy job runs.
//!
//! Without chromedriver the test skips loudly; with `GANTRY_REQUIRE_BROWSER=1` (CI) it
//! fails instead.

#[path = "serve_support.rs"]
mod serve_support;
#[path = "ui_support.rs"]
mod ui_support;

use fantoccini::Locator;
use serde_json::json;
use serve_support::*;
use ui_support::*;

/// `build` prints a line, waits for the test's release file, prints another; `deploy`
/// needs production's reviewer (bob).
fn workflow(release: &std::path::Path) -> String {
    format!(
        r#"name: Live
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - name: Ticks
        run: |
          echo "tick-one"
          while [ ! -e '{release}' ]; do sleep 0.1; done
          echo "tick-two"
  deploy:
    needs: build
    runs-on: self-hosted
    environment: production
    steps:
      - run: echo "deployed-$GITHUB_SHA"
"#,
        release = release.display()
    )
}

/// The text of the page's log view (JS expression).
const LOG_TEXT: &str = "(document.getElementById('log') || {textContent: ''}).textContent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_log_and_approval_with_jobs_running() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("release");
    let bare = BareRepo::new();
    let sha = bare.commit(
        "main",
        &[(".github/workflows/live.yml", &workflow(&release))],
        "Add live",
    );
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let mut body = github_push("acme/shop", "refs/heads/main", ZERO, &sha, "Add live");
    body["sender"]["login"] = json!("alice");
    let body = serde_json::to_vec(&body).unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    let run = run_of(&s, &sha).await;
    let base = s.base.clone();
    let build = serve_support::wait_for("the build job to start", || async {
        jobs(&s, run.id.into_inner()).await.into_iter().find(|j| {
            j.name == "build" && j.status == octocrab::models::workflows::Status::InProgress
        })
    })
    .await;

    // The job's page while its step runs: the first line is there, and the second one
    // arrives on the same page (no reload: the marker set on the window survives).
    sign_in(&c, &base, WRITER_TOKEN).await;
    c.goto(&format!(
        "{base}/acme/shop/actions/runs/{}/job/{}",
        run.id, build.id
    ))
    .await
    .unwrap();
    until(
        &c,
        "the step's first line",
        &format!("{LOG_TEXT}.includes('tick-one')"),
    )
    .await;
    // Held a while, so the job's recorded duration can be checked against it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let early = c
        .execute(
            &format!("window.__same_page = 1; return {LOG_TEXT};"),
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !early.as_str().unwrap_or_default().contains("tick-two"),
        "the step has not printed its second line yet: {early}"
    );
    std::fs::write(&release, "").unwrap();
    until(
        &c,
        "the second line, streamed",
        &format!("{LOG_TEXT}.includes('tick-two')"),
    )
    .await;
    let same = c
        .execute("return window.__same_page;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(1), "the line came without a reload");
    shot(&c, "job-log-live").await;

    // The deploy job waits for bob.
    let id = run.id.into_inner();
    run_until(&s, id, 120, "the run to wait for review", |r| {
        r.status == "waiting"
    })
    .await;
    let run_url = format!("{base}/acme/shop/actions/runs/{id}");
    let review = format!("{run_url}/review");

    // carol may read, not decide: no Approve button, and her post is refused.
    let http = reqwest::Client::new();
    let page = http
        .get(&run_url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("production"), "carol sees the wait: {page}");
    assert!(
        !page.contains("id=\"approve\""),
        "carol must not see Approve"
    );
    let refused = http
        .post(&review)
        .bearer_auth(READER_TOKEN)
        .form(&[("environment", "production"), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a read-only user's decision");

    // Two pages on the run; bob approves on the first.
    let first = c.window().await.unwrap();
    let second = c.new_window(false).await.unwrap().handle;
    c.switch_to_window(second.clone()).await.unwrap();
    c.goto(&run_url).await.unwrap();
    ui_support::wait_for(&c, "#banner section", "the second page's banner").await;
    c.execute("window.__same_page = 2;", vec![]).await.unwrap();
    c.switch_to_window(first).await.unwrap();
    c.goto(&run_url).await.unwrap();
    let comment = ui_support::wait_for(&c, "#banner textarea", "bob's review form").await;
    comment.send_keys("go ahead").await.unwrap();
    c.find(Locator::Css("#approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The second page loses its banner and shows deploy done, without a reload.
    c.switch_to_window(second).await.unwrap();
    until(
        &c,
        "the decision on the other page",
        "!document.querySelector('#banner section')",
    )
    .await;
    let deploy = jobs(&s, id)
        .await
        .into_iter()
        .find(|j| j.name == "deploy")
        .expect("the deploy job");
    until(
        &c,
        "deploy to show success on the other page",
        &format!(
            "(document.querySelector('svg.graph a[data-job=\"{}\"]') || {{dataset: {{}}}}).dataset.status === 'success'",
            deploy.id
        ),
    )
    .await;
    let same = c
        .execute("return window.__same_page;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(2), "the other page was updated in place");

    // The deploy job really ran, after bob's approval.
    let done = completed(&s, id).await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );
    let deploy = jobs(&s, id)
        .await
        .into_iter()
        .find(|j| j.name == "deploy")
        .unwrap();
    let build = jobs(&s, id)
        .await
        .into_iter()
        .find(|j| j.name == "build")
        .unwrap();
    let held = build.completed_at.expect("build completed") - build.started_at;
    assert!(
        held.num_milliseconds() >= 1400,
        "the build job was held 1.5 s, recorded {held:?}"
    );
    let log = job_log(&s, &deploy).await;
    assert!(log.contains(&format!("deployed-{sha}")), "{log}");
    let octo = s.octocrab(READER_TOKEN);
    let approvals: serde_json::Value = octo
        .get(
            format!("/repos/acme/shop/actions/runs/{id}/approvals"),
            None::<&()>,
        )
        .await
        .expect("the run's approvals");
    let a = approvals.as_array().expect("a list");
    assert_eq!(a.len(), 1, "{approvals}");
    assert_eq!(a[0]["user"]["login"], "bob", "{approvals}");
    assert_eq!(a[0]["state"], "approved", "{approvals}");
    assert_eq!(a[0]["comment"], "go ahead", "{approvals}");
}
