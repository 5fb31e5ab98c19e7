//! The run page's reports and the deployments page in real headless Chromium, against the
//! real `gantry serve` executing a job on the host backend: the job's `::error file=…::`
//! annotation is visible, its `$GITHUB_STEP_SUMMARY` (with a `<script>`, an `onerror`
//! attribute and a `javascript:` link) renders inert, its uploaded artifact downloads from
//! the page with the right bytes. The deployments page shows the health-check verdict, the
//! measurements and the rollback: those events are fed through the server's own event
//! recorder (`store_exec::record_events`) into the server's SQLite file, as the delivery
//! gate emits them. Screenshots go to `docs/ui/`.

#[path = "serve_support.rs"]
mod serve_support;
#[path = "ui_support.rs"]
mod ui_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use gantry_engine::events::{EventBus, RunEvent};
use gantry_engine::masker::Masker;
use gantry_server::Store;
use gantry_server::state::App;
use serve_support::*;
use ui_support::wait_for;
use ui_support::*;

const WORKFLOW: &str = r#"name: CI
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: Build and report
        run: |
          mkdir -p dist
          echo "hello artifact" > dist/app.txt
          echo "::error file=src/app.rs,line=12,col=5,title=Build failed::mismatched types"
          echo "::notice::cache was cold"
          cat >> "$GITHUB_STEP_SUMMARY" <<'MD'
          ## Test results

          | suite | passed | failed |
          |---|--:|--:|
          | unit | 41 | 0 |

          ```sh
          cargo test --workspace
          ```

          <script>window.__pwned = 1; alert(1)</script>

          <img src="x" onerror="window.__pwned = 2; alert(2)">

          [details](javascript:window.__pwned=3) and [docs](https://example.test/docs)
          MD
      - uses: actions/upload-artifact@v4
        with:
          name: dist
          path: dist/
"#;

fn config(repo_url: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
url: http://ci.example.test
data: ./data
users:
  - {{ login: alice, token: "${{ALICE_TOKEN}}", role: admin }}
  - {{ login: bob, token: "${{BOB_TOKEN}}", role: write }}
repositories:
  - name: acme/shop
    url: {repo_url}
    forge: github
    webhook_secret: "${{HOOK_SECRET}}"
    environments:
      production:
        reviewers: [alice]
        required_approvals: 1
labels:
  ubuntu-latest: host
"#
    )
}

async fn completed_run(store: &Store) -> gantry_server::store_runs::RunRecord {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, runs) = store
            .list_runs("acme/shop", &Default::default(), 1, 10)
            .await
            .unwrap();
        if let Some(r) = runs.into_iter().find(|r| r.status == "completed") {
            return r;
        }
        assert!(Instant::now() < deadline, "the run did not complete");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_summary_artifact_and_deployments_in_chromium() {
    let Some((_driver, c)) = browser().await else {
        return;
    };
    let bare = BareRepo::new();
    let old = bare.commit("main", &[("README", "v1")], "First version");
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", WORKFLOW)], "Add CI");
    let cfg_text = config(&bare.url());
    let s = Server::start_with(&cfg_text, &[]);
    let db = format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/gantry.db").display()
    );
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        &old,
        &sha,
        "Add CI",
    ))
    .unwrap();
    let (st, _) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert!(st < 300, "webhook answered {st}");
    let store = Store::open(&db).await.expect("the server's SQLite file");
    let run = completed_run(&store).await;
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", s.output());
    let base = &s.base;
    sign_in(&c, base, ADMIN_TOKEN).await;

    // Annotations: level, job, file:line:col, title, message.
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    let ann = wait_for(&c, "#annotations li.lvl-failure", "the error annotation").await;
    let text = ann.text().await.unwrap();
    for want in [
        "build",
        "src/app.rs:12:5",
        "Build failed",
        "mismatched types",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let notice = wait_for(&c, "#annotations li.lvl-notice", "the notice").await;
    assert!(notice.text().await.unwrap().contains("cache was cold"));

    // The summary: table and code block rendered, the hostile parts inert.
    wait_for(&c, "#summaries .markdown table td", "the summary's table").await;
    let summary = c
        .find(Locator::Css("#summaries .markdown"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.contains("Test results") && summary.contains("cargo test --workspace"));
    assert!(
        summary.contains("<script>"),
        "raw HTML shown as text: {summary}"
    );
    let inert = c
        .execute(
            "return [window.__pwned === undefined,
                     document.querySelector('#summaries script, #summaries img, [onerror]') === null,
                     [...document.querySelectorAll('#summaries a')]
                        .every(a => !a.href.toLowerCase().startsWith('javascript:')),
                     document.querySelectorAll('#summaries a[href=\"https://example.test/docs\"]').length,
                     document.querySelectorAll('#summaries pre code').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inert, serde_json::json!([true, true, true, 1, 1]));
    // Clicking the neutralised link runs nothing either (an alert would fail every
    // WebDriver call that follows).
    c.find(Locator::LinkText("details"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "no script ran", "window.__pwned === undefined").await;
    c.goto(&format!("{base}/acme/shop/actions/runs/{}", run.id))
        .await
        .unwrap();
    wait_for(&c, "#summaries table", "the run page again").await;
    shot(&c, "run-reports").await;

    // The artifact downloads from its link with the session: a zip naming the file (its
    // entries are deflated; serve_artifacts unzips one and checks the bytes).
    let link = wait_for(&c, "#artifacts a.artifact", "the artifact link").await;
    assert_eq!(link.text().await.unwrap(), "dist");
    let got = c
        .execute_async(
            r#"const done = arguments[0];
               fetch(document.querySelector('#artifacts a.artifact').href, { credentials: 'same-origin' })
                 .then(r => r.arrayBuffer().then(b => {
                    const u = new Uint8Array(b);
                    done([r.status, r.headers.get('content-type'),
                          String.fromCharCode(...u.slice(0, 4)),
                          new TextDecoder().decode(u).includes('app.txt')]);
                 }), e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        serde_json::json!([200, "application/zip", "PK\u{3}\u{4}", true])
    );

    // A deployment of this run that failed its health check and was rolled back, the
    // events going through the server's recorder into the server's database.
    let job = store.run_jobs(run.id, run.run_attempt).await.unwrap()[0].clone();
    let dep = store
        .record_deployment(
            "acme/shop",
            "production",
            run.id,
            job.id,
            &sha,
            "refs/heads/main",
            "bob",
            "in_progress",
        )
        .await
        .unwrap();
    store
        .record_approval(run.id, job.id, "production", "alice", "approved", "ship it")
        .await
        .unwrap();
    let cfg_path = s.dir.path().join("gantry-server.yml");
    let vars = env_vars();
    let lookup = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let mut cfg = gantry_server::config::load(&cfg_path, &lookup).unwrap();
    cfg.data = s.dir.path().join("data");
    let app = App::new(cfg, store.clone());
    let bus = EventBus::new();
    let recorder = tokio::spawn(gantry_server::store_exec::record_events(
        app,
        "acme/shop".into(),
        run.id,
        run.run_attempt,
        Arc::new(Masker::new()),
        bus.subscribe(),
    ));
    let probe = "http://127.0.0.1:8080/healthz";
    let measure = |index: u32, phase: &str, status: Option<u16>, message: Option<&str>| {
        RunEvent::HealthMeasurement {
            environment: "production".into(),
            probe: probe.into(),
            index,
            phase: phase.into(),
            status,
            value: None,
            latency_ms: 3 + u64::from(index),
            message: message.map(Into::into),
            time: "2026-12-02T10:00:0".to_string() + &index.to_string() + "Z",
        }
    };
    bus.emit(measure(0, "successful", Some(200), None));
    bus.emit(measure(1, "failed", Some(503), None));
    bus.emit(measure(2, "error", None, Some("connection refused")));
    bus.emit(RunEvent::DeploymentFailed {
        environment: "production".into(),
        sha: sha.clone(),
        message: "2 of 3 health measurements failed".into(),
    });
    bus.emit(RunEvent::RolledBack {
        environment: "production".into(),
        failed_sha: sha.clone(),
        to_sha: Some(old.clone()),
        healthy: Some(true),
        message: "rolled back to the last healthy version".into(),
    });
    bus.close();
    recorder.await.unwrap();
    store.set_deployment_state(dep, "failure").await.unwrap();

    c.goto(&format!("{base}/acme/shop/deployments"))
        .await
        .unwrap();
    let row = wait_for(&c, "tr.deployment", "the deployment row").await;
    let text = row.text().await.unwrap();
    for want in [
        &sha[..7],
        "approved by alice",
        "unhealthy: 2 of 3 health measurements failed",
        &format!("rolled back to {}", &old[..7]),
        "healthy after rollback",
        "1 of 3 measurements passed",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    c.find(Locator::Css("details.measurements summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("details.measurements tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let last = rows[2].text().await.unwrap();
    assert!(
        last.contains("error") && last.contains("connection refused"),
        "{last}"
    );
    shot(&c, "deployments").await;
}
