//! The web UI's buttons and lists in real headless Chromium against the real
//! `gantry serve` (runs queued, none executed): the runs list's filters and pages, Cancel,
//! Re-run all jobs and Re-run failed jobs on a run's page, Reject with a comment, and a
//! read-only user who gets no buttons and whose posts are refused.
//!
//! Without chromedriver the test skips loudly; with `GANTRY_REQUIRE_BROWSER=1` (CI) it
//! fails instead.

#[path = "serve_support.rs"]
mod serve_support;
#[path = "ui_support.rs"]
mod ui_support;

use fantoccini::Locator;
use serve_support::*;
use ui_support::*;

/// `workflow_dispatch` of ci.yml as alice (so bob, production's reviewer, may review).
async fn dispatch(s: &Server) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v3/repos/acme/shop/actions/workflows/ci.yml/dispatches",
            s.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "ref": "main" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

/// The run as the API shows it: status, conclusion and attempt.
async fn api_run(s: &Server, id: i64) -> (String, Option<String>, i64) {
    let r: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/repos/acme/shop/actions/runs/{id}",
            s.base
        ))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        r["status"].as_str().unwrap().to_string(),
        r["conclusion"].as_str().map(str::to_string),
        r["run_attempt"].as_i64().unwrap(),
    )
}

/// Clicks the submit button whose text is `label`.
async fn press(c: &fantoccini::Client, label: &str) {
    c.find(Locator::XPath(&format!(
        "//button[@type='submit' and normalize-space()='{label}']"
    )))
    .await
    .unwrap_or_else(|e| panic!("no '{label}' button: {e}"))
    .click()
    .await
    .unwrap();
}

fn rows(n: usize) -> String {
    format!("document.querySelectorAll('table.runs tr.run').length === {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_filters_and_pages_in_chromium() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let bare = BareRepo::new();
    bare.commit(
        "main",
        &[(".github/workflows/ci.yml", CI_WORKFLOW)],
        "first",
    );
    let s = Server::start(&config_yaml(&bare.url(), None));
    let store = s.store().await;
    for _ in 0..26 {
        dispatch(&s).await;
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v3/repos/acme/shop/dispatches", s.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "event_type": "deploy-now" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let base = s.base.clone();
    sign_in(&c, &base, WRITER_TOKEN).await;

    // 27 runs: 25 on the first page, 2 on the second.
    c.goto(&format!("{base}/acme/shop/actions")).await.unwrap();
    until(&c, "the first page", &rows(25)).await;
    assert!(c.source().await.unwrap().contains("Page 1 of 2"));
    c.find(Locator::Css("a[rel=next]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "the second page", &rows(2)).await;
    c.find(Locator::Css("a[rel=prev]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "back on the first page", &rows(25)).await;

    // The event filter, through the form.
    c.find(Locator::Css("form.filters input[name=event]"))
        .await
        .unwrap()
        .send_keys("repository_dispatch")
        .await
        .unwrap();
    press(&c, "Filter").await;
    until(&c, "one repository_dispatch run", &rows(1)).await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("event=repository_dispatch")
    );

    // The newest workflow_dispatch run: Cancel, then Re-run all jobs, then Re-run failed.
    let (_, runs) = store
        .list_runs("acme/shop", &Default::default(), 1, 30)
        .await
        .unwrap();
    let run = runs
        .iter()
        .find(|r| r.event == "workflow_dispatch")
        .expect("a dispatched run")
        .id;
    let page = format!("{base}/acme/shop/actions/runs/{run}");
    c.goto(&page).await.unwrap();
    press(&c, "Cancel run").await;
    until(
        &c,
        "the run cancelled",
        "document.querySelector('.status[data-status=cancelled]')",
    )
    .await;
    assert_eq!(
        api_run(&s, run).await,
        ("completed".into(), Some("cancelled".into()), 1)
    );
    press(&c, "Re-run all jobs").await;
    until(
        &c,
        "the run queued again",
        "document.querySelector('.status[data-status=queued]')",
    )
    .await;
    assert_eq!(api_run(&s, run).await, ("queued".into(), None, 2));
    // Attempt 2: build succeeded, test failed, the run is over.
    let jobs = store.run_jobs(run, 2).await.unwrap();
    for j in &jobs {
        let conclusion = if j.key == "build" {
            "success"
        } else {
            "failure"
        };
        store
            .set_job_status(j.id, "completed", Some(conclusion))
            .await
            .unwrap();
    }
    store
        .set_run_status(run, "completed", Some("failure"))
        .await
        .unwrap();
    c.refresh().await.unwrap();
    press(&c, "Re-run failed jobs").await;
    until(
        &c,
        "the failed jobs queued",
        "document.querySelector('.status[data-status=queued]')",
    )
    .await;
    assert_eq!(api_run(&s, run).await.2, 3, "a third attempt");
    let third = store.run_jobs(run, 3).await.unwrap();
    assert!(
        !third
            .iter()
            .any(|j| j.key == "build" && j.status == "queued"),
        "the job that succeeded is not run again: {third:?}"
    );
    assert!(
        third.iter().any(|j| j.key == "test") && third.iter().any(|j| j.key == "deploy"),
        "the failed jobs and what needs them: {third:?}"
    );
    assert!(
        third
            .iter()
            .filter(|j| j.key != "build")
            .all(|j| j.status == "queued"),
        "{third:?}"
    );

    // The status filter now finds the cancelled-then-re-run run no longer cancelled.
    c.goto(&format!("{base}/acme/shop/actions?status=cancelled"))
        .await
        .unwrap();
    until(&c, "no cancelled run", &rows(0)).await;
    c.goto(&format!(
        "{base}/acme/shop/actions?status=queued&event=workflow_dispatch"
    ))
    .await
    .unwrap();
    until(&c, "26 queued dispatches on two pages", &rows(25)).await;

    // Reject with a comment: another run's deploy job waits on production.
    let other = runs
        .iter()
        .filter(|r| r.event == "workflow_dispatch")
        .nth(1)
        .unwrap()
        .id;
    let deploy = store
        .run_jobs(other, 1)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.key == "deploy")
        .unwrap()
        .id;
    store.set_job_status(deploy, "waiting", None).await.unwrap();
    store
        .request_review(other, deploy, "production")
        .await
        .unwrap();
    c.goto(&format!("{base}/acme/shop/actions/runs/{other}"))
        .await
        .unwrap();
    ui_support::wait_for(&c, "#banner textarea", "bob's review form")
        .await
        .send_keys("not on a Friday")
        .await
        .unwrap();
    c.find(Locator::Css("#reject"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Recorded at once; the job's failure is the gate's to write (no executor runs here).
    until(
        &c,
        "the decision recorded",
        "document.body.innerText.includes('bob has already decided')",
    )
    .await;
    let a = store.approvals(other).await.unwrap();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (
            a[0].reviewer.as_str(),
            a[0].state.as_str(),
            a[0].comment.as_str()
        ),
        ("bob", "rejected", "not on a Friday")
    );

    // carol reads: no buttons, and her posts are refused.
    let http = reqwest::Client::new();
    let text = http
        .get(&page)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("data-status"), "carol sees the run");
    for label in ["Cancel run", "Re-run all jobs", "Re-run failed jobs"] {
        assert!(!text.contains(label), "carol must not see {label}");
    }
    for action in ["cancel", "rerun", "rerun-failed"] {
        let r = http
            .post(format!("{page}/{action}"))
            .bearer_auth(READER_TOKEN)
            .form(&[("x", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "carol's {action}");
    }
    assert_eq!(api_run(&s, run).await.2, 3, "nothing changed by carol");
}
