//! How the web UI reads and is used, in real headless Chromium against the real
//! `gantry serve` (runs queued, a log written through the store): keyboard use (the skip
//! link first, `/` to search the log), no sideways scrolling at phone width, dark mode from
//! `prefers-color-scheme`, and the pages with JavaScript off (server-rendered content,
//! plain forms). Screenshots: `docs/ui/run-dark.png`, `docs/ui/job-log-nojs.png`.
//!
//! Without chromedriver the test skips loudly; with `GANTRY_REQUIRE_BROWSER=1` (CI) it
//! fails instead.

#[path = "serve_support.rs"]
mod serve_support;
#[path = "ui_support.rs"]
mod ui_support;

use fantoccini::{Client, key::Key};
use gantry_engine::masker::Masker;
use serve_support::*;
use ui_support::*;

/// A value of the page (JS expression).
async fn js(c: &Client, expr: &str) -> serde_json::Value {
    c.execute(&format!("return {expr};"), vec![]).await.unwrap()
}

/// The relative luminance (0 black … 1 white) of the body's computed background.
async fn body_luminance(c: &Client) -> f64 {
    let bg = js(c, "getComputedStyle(document.body).backgroundColor").await;
    let bg = bg.as_str().unwrap_or_default().to_string();
    let nums: Vec<f64> = bg
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|n| n.trim().parse::<f64>().unwrap_or(0.0) / 255.0)
        .collect();
    assert_eq!(nums.len(), 3, "background {bg}");
    0.2126 * nums[0] + 0.7152 * nums[1] + 0.0722 * nums[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_phone_dark_and_no_javascript() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let QueuedCi {
        server: s,
        store,
        run,
        first_job: job,
        bare: _bare,
    } = queued_ci().await;
    store
        .append_log(
            job,
            "compiling gantry\nwarning: unused import\nfinished\n",
            &Masker::new(),
        )
        .await
        .unwrap();
    store
        .set_job_status(job, "completed", Some("success"))
        .await
        .unwrap();
    let base = s.base.clone();
    let run_url = format!("{base}/acme/shop/actions/runs/{}", run.id);
    let job_url = format!("{run_url}/job/{job}");

    // Keyboard: the first Tab reaches the skip link; `/` focuses the log search.
    sign_in(&c, &base, WRITER_TOKEN).await;
    c.goto(&job_url).await.unwrap();
    until(&c, "the log", "document.getElementById('L3')").await;
    c.active_element()
        .await
        .unwrap()
        .send_keys(&char::from(Key::Tab).to_string())
        .await
        .unwrap();
    assert_eq!(
        js(&c, "document.activeElement.className").await,
        "skip",
        "the first Tab stop is the skip link"
    );
    c.execute("document.activeElement.blur();", vec![])
        .await
        .unwrap();
    c.active_element()
        .await
        .unwrap()
        .send_keys("/")
        .await
        .unwrap();
    assert_eq!(js(&c, "document.activeElement.id").await, "logsearch");
    c.active_element()
        .await
        .unwrap()
        .send_keys("warning")
        .await
        .unwrap();
    until(
        &c,
        "the search from the keyboard",
        "document.querySelectorAll('#log .ln.hit').length === 1",
    )
    .await;
    assert!(
        body_luminance(&c).await > 0.8,
        "light by default (no dark preference)"
    );

    // Phone width: nothing scrolls sideways.
    c.set_window_size(390, 844).await.unwrap();
    for url in [
        format!("{base}/acme/shop/actions"),
        run_url.clone(),
        job_url.clone(),
    ] {
        c.goto(&url).await.unwrap();
        let wide = js(
            &c,
            "[document.documentElement.scrollWidth, window.innerWidth]",
        )
        .await;
        let (scroll, inner) = (wide[0].as_f64().unwrap(), wide[1].as_f64().unwrap());
        assert!(
            scroll <= inner + 1.0,
            "{url}: {scroll}px wide in a {inner}px window"
        );
    }
    drop(c);
    drop(_driver);

    // Dark mode from the system's preference.
    let (_dark_driver, dark) = browser_with(&["--force-dark-mode"], serde_json::json!({}))
        .await
        .expect("the browser started before");
    assert_eq!(
        js(&dark, "matchMedia('(prefers-color-scheme: dark)').matches").await,
        true
    );
    sign_in(&dark, &base, WRITER_TOKEN).await;
    dark.goto(&run_url).await.unwrap();
    assert!(body_luminance(&dark).await < 0.2, "a dark page");
    shot(&dark, "run-dark").await;
    drop(dark);

    // JavaScript off: the content is in the pages themselves, forms are plain posts.
    let (_nojs_driver, nojs) = browser_with(
        &[],
        serde_json::json!({ "profile.managed_default_content_settings.javascript": 2 }),
    )
    .await
    .expect("the browser started before");
    // (JavaScript really is off in this browser.)
    nojs.goto("data:text/html,<p id=x>static</p><script>x.textContent='ran'</script>")
        .await
        .unwrap();
    let probe = nojs.source().await.unwrap();
    assert!(
        probe.contains("static") && !probe.contains(">ran<"),
        "{probe}"
    );
    nojs.goto(&format!("{base}/login")).await.unwrap();
    use fantoccini::Locator;
    nojs.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(WRITER_TOKEN)
        .await
        .unwrap();
    click_then(
        &nojs,
        "form button[type=submit]",
        "header .who",
        "signed in without JS",
    )
    .await;
    nojs.goto(&job_url).await.unwrap();
    let page = nojs.source().await.unwrap();
    for want in ["compiling gantry", "warning: unused import", "id=\"L3\""] {
        assert!(page.contains(want), "no-JS job page lacks {want:?}");
    }
    nojs.goto(&run_url).await.unwrap();
    let page = nojs.source().await.unwrap();
    assert!(
        page.contains("<svg class=\"graph\"") && page.contains("Cancel run"),
        "no-JS run page: graph and buttons are HTML"
    );
    // A plain form post works without the script: cancel the run.
    nojs.find(Locator::XPath(
        "//button[@type='submit' and normalize-space()='Cancel run']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let page = nojs.source().await.unwrap();
    assert!(
        page.contains("data-status=\"cancelled\""),
        "the form posted and the page came back: {page}"
    );
    nojs.goto(&job_url).await.unwrap();
    shot(&nojs, "job-log-nojs").await;
}
