//! What a server run reports besides its log, end to end: a job on the host backend of the
//! real `gantry serve` prints `::error file=…::` and `::warning::`, writes
//! `$GITHUB_STEP_SUMMARY` and runs `actions/upload-artifact`; the API lists the artifact
//! (read with octocrab's models), serves its zip (content checked file by file), answers
//! the check run's annotations in GitHub's shape, masked, and refuses other repositories
//! with 404. The report tables are also exercised on SQLite and PostgreSQL.

#[path = "serve_support.rs"]
mod serve_support;

use gantry_server::Store;
use gantry_server::store_reports::{HealthRecord, NewAnnotation, OutcomeRecord};
use serve_support::*;

const WORKFLOW: &str = r###"name: CI
on: push
jobs:
  build:
    runs-on: [self-hosted]
    steps:
      - name: Make things
        run: |
          mkdir -p out/sub
          echo "hello artifact" > out/a.txt
          printf 'bin\001\002' > out/sub/b.bin
          echo "::error file=src/lib.rs,line=3,col=7,title=Type error::expected u32, got ${{ secrets.APP_SECRET }}"
          echo "::warning::careful now"
          echo "## Build report" >> "$GITHUB_STEP_SUMMARY"
          echo "" >> "$GITHUB_STEP_SUMMARY"
          echo "| crate | tests |" >> "$GITHUB_STEP_SUMMARY"
          echo "|---|---|" >> "$GITHUB_STEP_SUMMARY"
          echo "| core | 12 |" >> "$GITHUB_STEP_SUMMARY"
      - uses: actions/upload-artifact@v4
        with:
          name: out
          path: out/
"###;

/// The entries of a zip (name → bytes), in archive order, read with the zip crate (its
/// central directory must agree with the entries for it to read them at all).
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_annotations_summary_and_artifact_through_the_api() {
    let bare = BareRepo::new();
    let sha = bare.commit("main", &[(".github/workflows/ci.yml", WORKFLOW)], "Add CI");
    let s = Server::start_with(&config_yaml(&bare.url(), None), &[]);
    let body = serde_json::to_vec(&github_push(
        "acme/shop",
        "refs/heads/main",
        &"0".repeat(40),
        &sha,
        "Add CI",
    ))
    .unwrap();
    let (st, text) = deliver(&s.base, "github", "push", &guid(), &body, Some(SECRET)).await;
    assert_eq!(st, 202, "{text}");
    let run = run_of(&s, &sha).await;
    let octo = s.octocrab(READER_TOKEN);
    let done = wait_for("the run to complete", || async {
        let r = octo.workflows("acme", "shop").get(run.id).await.ok()?;
        (r.status == "completed").then_some(r)
    })
    .await;
    assert_eq!(
        done.conclusion.as_deref(),
        Some("success"),
        "{}",
        s.output()
    );

    // The artifact, listed with octocrab's own models (GitHub's JSON shape).
    let page = octo
        .actions()
        .list_workflow_run_artifacts("acme", "shop", run.id)
        .send()
        .await
        .expect("list artifacts")
        .value
        .expect("a page");
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    let art = &page.items[0];
    assert_eq!(art.name, "out");
    assert_eq!(art.size_in_bytes, "hello artifact\n".len() + 5);
    assert!(!art.expired);
    assert_eq!(
        art.workflow_run.as_ref().map(|w| w.head_sha.as_str()),
        Some(sha.as_str())
    );
    let http = reqwest::Client::new();
    let api = format!("{}/api/v3/repos/acme/shop", s.base);
    let one: serde_json::Value = http
        .get(format!("{api}/actions/artifacts/{}", art.id))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "out");
    assert_eq!(
        one["archive_download_url"],
        format!(
            "http://ci.example.test/api/v3/repos/acme/shop/actions/artifacts/{}/zip",
            art.id
        )
    );

    // The zip: every file, its path relative to the uploaded directory, its bytes.
    let resp = http
        .get(format!("{api}/actions/artifacts/{}/zip", art.id))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = resp.bytes().await.unwrap();
    let mut files = unzip(&zip);
    files.sort();
    assert_eq!(
        files,
        vec![
            ("a.txt".to_string(), b"hello artifact\n".to_vec()),
            ("sub/b.bin".to_string(), b"bin\x01\x02".to_vec()),
        ]
    );
    // An independent reader checks the CRCs and the central directory, where there is one.
    let path = s.dir.path().join("check.zip");
    std::fs::write(&path, &zip).unwrap();
    match std::process::Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(&path)
        .output()
    {
        Ok(o) => assert!(o.status.success(), "python3 zipfile -t: {o:?}"),
        Err(e) => eprintln!("SKIP python3 zipfile check: {e}"),
    }

    // Another repository's path, an unknown repository, no token: refused.
    for url in [
        format!(
            "{}/api/v3/repos/acme/tea/actions/artifacts/{}",
            s.base, art.id
        ),
        format!(
            "{}/api/v3/repos/acme/tea/actions/artifacts/{}/zip",
            s.base, art.id
        ),
        format!(
            "{}/api/v3/repos/acme/nope/actions/artifacts/{}/zip",
            s.base, art.id
        ),
        format!("{api}/actions/artifacts/999999/zip"),
    ] {
        let st = http
            .get(&url)
            .bearer_auth(READER_TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, 404, "{url}");
    }
    let st = http
        .get(format!("{api}/actions/artifacts/{}/zip", art.id))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, 401);

    // The check run's (job's) annotations, GitHub's shape, the secret masked.
    let jobs = octo
        .workflows("acme", "shop")
        .list_jobs(run.id)
        .send()
        .await
        .unwrap()
        .items;
    let job = jobs.iter().find(|j| j.name == "build").expect("build job");
    let ann: Vec<serde_json::Value> = http
        .get(format!("{api}/check-runs/{}/annotations", job.id))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ann.len(), 2, "{ann:?}");
    assert_eq!(ann[0]["annotation_level"], "failure");
    assert_eq!(ann[0]["path"], "src/lib.rs");
    assert_eq!(ann[0]["start_line"], 3);
    assert_eq!(ann[0]["start_column"], 7);
    assert_eq!(ann[0]["title"], "Type error");
    let msg = ann[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("expected u32, got ") && msg.contains("***"),
        "{msg}"
    );
    assert_eq!(ann[1]["annotation_level"], "warning");
    assert_eq!(ann[1]["path"], ".github");
    assert_eq!(ann[1]["message"], "careful now");

    // The run page (the API's header works there too) shows both and links the zip.
    let page = run_page(&s, run.id.0).await;
    assert!(
        page.contains("src/lib.rs:3:7") && page.contains("careful now"),
        "{page}"
    );
    assert!(
        page.contains("<th>crate</th>") && page.contains("Build report"),
        "{page}"
    );
    let link = format!("/acme/shop/actions/runs/{}/artifacts/{}", run.id, art.id);
    assert!(page.contains(&link), "{page}");
    let via_ui = http
        .get(format!("{}{link}", s.base))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(via_ui, zip);
    assert!(!page.contains(APP_SECRET) && !s.output().contains(APP_SECRET));
}

async fn exercise(store: &Store) {
    let a = NewAnnotation {
        level: "failure".into(),
        message: "boom".into(),
        title: None,
        path: Some("a.rs".into()),
        start_line: Some(9),
        start_column: None,
    };
    let id = store.record_annotation(7, 70, &a).await.unwrap();
    let b = NewAnnotation {
        level: "notice".into(),
        message: "fyi".into(),
        ..Default::default()
    };
    store.record_annotation(7, 71, &b).await.unwrap();
    let all = store.run_annotations(7).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].id, all[0].start_line, all[0].start_column),
        (id, Some(9), None)
    );
    assert_eq!(all[1].path, None);
    assert_eq!(store.job_annotations(71).await.unwrap()[0].message, "fyi");

    store.set_step_summary(7, 70, 2, "# one").await.unwrap();
    store.set_step_summary(7, 70, 2, "# two").await.unwrap();
    store.set_step_summary(7, 70, 1, "# first").await.unwrap();
    let sums = store.run_summaries(7).await.unwrap();
    let got: Vec<(i64, &str)> = sums.iter().map(|s| (s.step, s.markdown.as_str())).collect();
    assert_eq!(got, vec![(1, "# first"), (2, "# two")]);

    for (i, phase) in ["failed", "successful"].iter().enumerate() {
        let h = HealthRecord {
            run_id: 7,
            environment: "production".into(),
            probe: "http://127.0.0.1:1/health".into(),
            seq: i as i64,
            phase: phase.to_string(),
            status_code: (i == 1).then_some(200),
            value: None,
            latency_ms: 12,
            message: (i == 0).then(|| "connection refused".into()),
            measured_at: "2026-12-02T10:00:00Z".into(),
        };
        store.record_health(&h).await.unwrap();
    }
    let hs = store.health(7, "production").await.unwrap();
    assert_eq!(hs.len(), 2);
    assert_eq!((hs[0].status_code, hs[1].status_code), (None, Some(200)));
    assert!(store.health(7, "staging").await.unwrap().is_empty());

    let o = OutcomeRecord {
        run_id: 7,
        environment: "production".into(),
        kind: "rolled_back".into(),
        sha: "b".repeat(40),
        to_sha: Some("a".repeat(40)),
        healthy: Some(true),
        url: None,
        message: "health failed".into(),
        created_at: "2026-12-02T10:01:00Z".into(),
    };
    store.record_outcome(&o).await.unwrap();
    let os = store.outcomes(7, "production").await.unwrap();
    assert_eq!(os, vec![o]);
}

#[tokio::test]
async fn report_tables_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
    exercise(&Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn report_tables_on_postgres() {
    let Some(pg) = serve_support::postgres() else {
        eprintln!("SKIP report_tables_on_postgres: no Docker or no gantry/postgres:15");
        return;
    };
    exercise(&Store::open(&pg.url).await.unwrap()).await;
}
