//! Built-in actions against real files, git repositories, the local toolchains, a recording
//! HTTP server and (when a daemon answers) Docker.

// The git fixture helpers of the engine's action tests.
#[path = "../../engine/tests/actions_common.rs"]
mod actions_common;

use std::path::{Path, PathBuf};

use gantry_builtins::{self as builtin, ActionEnv, GithubFacts, artifact, metadata};
use gantry_workflow::action_inputs::resolve_inputs;
use indexmap::IndexMap;

fn env_for(root: &Path) -> ActionEnv<'static> {
    let ws = root.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut env: IndexMap<String, String> = std::env::vars().collect();
    env.shift_remove("SLACK_WEBHOOK_URL");
    ActionEnv {
        workspace: ws,
        repo_root: root.join("repo"),
        run_dir: root.join("run"),
        cache_dir: root.join("cache"),
        job: None,
        sharing: gantry_backend::Sharing::RUNNER,
        github: GithubFacts {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            git_ref: "refs/heads/main".into(),
            ref_name: "main".into(),
            repository: "acme/app".into(),
            event_name: "push".into(),
            run_id: "7".into(),
            job: "build".into(),
            workflow: "CI".into(),
            server_url: "https://github.com".into(),
            ..Default::default()
        },
        env,
        job_status: "success".into(),
        offline: true,
    }
}

/// Inputs with the built-in's action.yml defaults applied (as the step runner does).
fn inputs(name: &str, with: &[(&str, &str)]) -> IndexMap<String, String> {
    let action = builtin::metadata(name).expect("embedded action.yml parses");
    let with: IndexMap<String, String> = with
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    resolve_inputs(Some(&action), &with, |d| {
        Ok(d.replace("${{ github.repository }}", "acme/app"))
    })
    .unwrap()
    .values
}

async fn run_typed(
    name: &str,
    with: &[(&str, &str)],
    env: &ActionEnv<'_>,
) -> Result<builtin::ActionResult, builtin::BuiltinError> {
    builtin::get(name)
        .unwrap()
        .run(&inputs(name, with), env)
        .await
}

/// [`run_typed`] with the error as the step's log shows it.
async fn run(
    name: &str,
    with: &[(&str, &str)],
    env: &ActionEnv<'_>,
) -> Result<builtin::ActionResult, String> {
    run_typed(name, with, env).await.map_err(|e| e.to_string())
}

#[test]
fn every_builtin_has_metadata_and_an_implementation() {
    for n in builtin::NAMES {
        assert!(builtin::metadata(n).is_some(), "{n}: action.yml");
        assert_eq!(builtin::get(n).unwrap().name(), *n);
        let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../actions")
            .join(n)
            .join("README.md");
        assert!(readme.is_file(), "{}", readme.display());
    }
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

fn git_commit(repo: &git2::Repository, files: &[(&str, &str)], msg: &str) -> String {
    let wd = repo.workdir().unwrap().to_path_buf();
    let mut idx = repo.index().unwrap();
    for (p, c) in files {
        write(&wd.join(p), c);
        idx.add_path(Path::new(p)).unwrap();
    }
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("T", "t@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn checkout_at_a_sha_with_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let mut env = env_for(tmp.path());
    let repo = git2::Repository::init(&env.repo_root).unwrap();
    let first = git_commit(&repo, &[("a.txt", "one"), ("dir/b.txt", "b")], "first");
    let second = git_commit(&repo, &[("a.txt", "two")], "second");
    repo.tag_lightweight(
        "v1",
        &repo
            .find_object(git2::Oid::from_str(&first).unwrap(), None)
            .unwrap(),
        false,
    )
    .unwrap();
    // Default: the run's sha.
    env.github.sha = second.clone();
    let r = run("actions/checkout", &[("path", "co")], &env)
        .await
        .unwrap();
    assert_eq!(r.outputs["commit"], second);
    assert_eq!(
        std::fs::read_to_string(env.workspace.join("co/a.txt")).unwrap(),
        "two"
    );
    // At a sha, untracked files cleaned.
    write(&env.workspace.join("co/junk.txt"), "junk");
    let r = run(
        "actions/checkout",
        &[("path", "co"), ("ref", &first), ("fetch-depth", "0")],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs["commit"], first);
    assert_eq!(
        std::fs::read_to_string(env.workspace.join("co/a.txt")).unwrap(),
        "one"
    );
    assert!(!env.workspace.join("co/junk.txt").exists());
    // A tag, clean: false keeps untracked files.
    write(&env.workspace.join("co/keep.txt"), "k");
    let r = run(
        "actions/checkout",
        &[("path", "co"), ("ref", "main"), ("clean", "false")],
        &env,
    )
    .await;
    let r = match r {
        Ok(r) => r,
        Err(_) => run(
            "actions/checkout",
            &[("path", "co"), ("ref", "master"), ("clean", "false")],
            &env,
        )
        .await
        .unwrap(),
    };
    assert_eq!(r.outputs["commit"], second);
    assert!(env.workspace.join("co/keep.txt").exists());
    assert_eq!(
        run("actions/checkout", &[("path", "t"), ("ref", "v1")], &env)
            .await
            .unwrap()
            .outputs["commit"],
        first
    );
    // Errors.
    let e = run("actions/checkout", &[("ref", "nope"), ("path", "x")], &env)
        .await
        .unwrap_err();
    assert!(e.contains("'nope' not found"), "{e}");
    let e = run("actions/checkout", &[("repository", "other/repo")], &env)
        .await
        .unwrap_err();
    // Another repository is fetched over the network; this test's run is offline.
    assert!(
        e.contains("cannot fetch https://github.com/other/repo"),
        "{e}"
    );
    assert!(
        run("actions/checkout", &[("path", "../outside")], &env)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn artifacts_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env_for(tmp.path());
    let ws = &env.workspace;
    write(&ws.join("dist/app.bin"), "bin");
    write(&ws.join("dist/sub/lib.so"), "lib");
    write(&ws.join("dist/sub/skip.log"), "log");
    write(&ws.join("dist/.hidden"), "h");
    write(&ws.join("report.txt"), "r");
    let r = run(
        "actions/upload-artifact",
        &[("name", "build"), ("path", "dist/\n!dist/**/*.log")],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs["artifact-id"], "1");
    let r2 = run(
        "actions/upload-artifact",
        &[
            ("name", "report"),
            ("path", "*.txt"),
            ("retention-days", "3"),
        ],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r2.outputs["artifact-id"], "2");
    // Same name again: refused unless overwrite.
    let e = run(
        "actions/upload-artifact",
        &[("name", "build"), ("path", "dist")],
        &env,
    )
    .await
    .unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    run(
        "actions/upload-artifact",
        &[
            ("name", "build"),
            ("path", "dist/\n!dist/**/*.log"),
            ("overwrite", "true"),
        ],
        &env,
    )
    .await
    .unwrap();
    // No files.
    let e = run(
        "actions/upload-artifact",
        &[
            ("name", "x"),
            ("path", "nothing/*"),
            ("if-no-files-found", "error"),
        ],
        &env,
    )
    .await
    .unwrap_err();
    assert!(e.contains("No files were found"), "{e}");
    let w = run(
        "actions/upload-artifact",
        &[("name", "x"), ("path", "nothing/*")],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(w.warnings.len(), 1);
    // Listing.
    let list = artifact::list_artifacts(&env.run_dir);
    let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"build") && names.contains(&"report") && names.len() == 2,
        "{names:?}"
    );
    let build = list.iter().find(|a| a.name == "build").unwrap();
    assert_eq!(build.files, 2, "{build:?}");
    assert_eq!(
        list.iter()
            .find(|a| a.name == "report")
            .unwrap()
            .retention_days,
        Some(3)
    );
    // Download by name: paths relative to the search root (dist/).
    run(
        "actions/download-artifact",
        &[("name", "build"), ("path", "out")],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.join("out/app.bin")).unwrap(),
        "bin"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("out/sub/lib.so")).unwrap(),
        "lib"
    );
    assert!(!ws.join("out/sub/skip.log").exists());
    assert!(!ws.join("out/.hidden").exists());
    // Download all: one directory per artifact.
    let r = run("actions/download-artifact", &[("path", "all")], &env)
        .await
        .unwrap();
    assert!(r.outputs["download-path"].ends_with("all"));
    assert!(ws.join("all/report/report.txt").is_file());
    assert!(ws.join("all/build/app.bin").is_file());
    let e = run("actions/download-artifact", &[("name", "missing")], &env)
        .await
        .unwrap_err();
    assert!(e.contains("Unable to find"), "{e}");
}

#[tokio::test]
async fn cache_keys_and_restore_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env_for(tmp.path());
    let ws = &env.workspace;
    write(&ws.join("deps/a.txt"), "A1");
    // actions/cache: miss, post saves.
    let with = [
        ("path", "deps"),
        ("key", "deps-linux-abc"),
        ("restore-keys", "deps-linux-\ndeps-"),
    ];
    let r = run("actions/cache", &with, &env).await.unwrap();
    assert_eq!(r.outputs["cache-hit"], "false");
    assert!(r.post);
    let b = builtin::get("actions/cache").unwrap();
    assert_eq!(b.post_if(), "success()");
    let p = b
        .post(&inputs("actions/cache", &with), &env, &r.state)
        .await
        .unwrap();
    assert!(
        p.logs.iter().any(|l| l.contains("Cache saved")),
        "{:?}",
        p.logs
    );
    // Exact hit restores and skips the save.
    std::fs::remove_dir_all(ws.join("deps")).unwrap();
    let r = run("actions/cache", &with, &env).await.unwrap();
    assert_eq!(r.outputs["cache-hit"], "true");
    assert_eq!(
        std::fs::read_to_string(ws.join("deps/a.txt")).unwrap(),
        "A1"
    );
    let p = b
        .post(&inputs("actions/cache", &with), &env, &r.state)
        .await
        .unwrap();
    assert!(p.logs.iter().any(|l| l.contains("not saving")));
    // A newer entry under another key; restore-keys prefix picks the newest.
    write(&ws.join("deps/a.txt"), "A2");
    run(
        "actions/cache/save",
        &[("path", "deps"), ("key", "deps-linux-def")],
        &env,
    )
    .await
    .unwrap();
    std::fs::remove_dir_all(ws.join("deps")).unwrap();
    let r = run(
        "actions/cache/restore",
        &[
            ("path", "deps"),
            ("key", "deps-linux-zzz"),
            ("restore-keys", "deps-linux-"),
        ],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs["cache-hit"], "false");
    assert_eq!(r.outputs["cache-matched-key"], "deps-linux-def");
    assert_eq!(
        std::fs::read_to_string(ws.join("deps/a.txt")).unwrap(),
        "A2"
    );
    // Different paths: a different version, no match.
    let r = run(
        "actions/cache/restore",
        &[("path", "other"), ("key", "deps-linux-def")],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs["cache-hit"], "false");
    let e = run(
        "actions/cache/restore",
        &[
            ("path", "deps"),
            ("key", "nope"),
            ("fail-on-cache-miss", "true"),
        ],
        &env,
    )
    .await
    .unwrap_err();
    assert!(e.contains("fail-on-cache-miss"));
    // Concurrent saves of one key: exactly one wins, no temp dirs left.
    write(&ws.join("c/x"), "x");
    let mut hs = Vec::new();
    for _ in 0..4 {
        let root = tmp.path().to_path_buf();
        hs.push(std::thread::spawn(move || {
            let env = env_for(&root);
            builtin::cache::save(&env.cache_dir, "conc", &["c".to_string()], &env).unwrap()
        }));
    }
    let wins: usize = hs.into_iter().map(|h| h.join().unwrap() as usize).sum();
    assert_eq!(wins, 1);
    let left: Vec<_> = std::fs::read_dir(&env.cache_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn metadata_tag_rules() {
    let mut g = GithubFacts {
        sha: "8f3c2a1b9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a".into(),
        git_ref: "refs/heads/develop".into(),
        repository: "acme/app".into(),
        event_name: "push".into(),
        server_url: "https://github.com".into(),
        ..Default::default()
    };
    let lines = |s: &str| {
        s.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    // The seeds' rules.
    let seed = lines("type=ref,event=branch\ntype=ref,event=pr\ntype=sha,prefix={{branch}}-");
    let (m, _) = metadata::compute(&g, &["ghcr.io/acme/app".into()], &seed, &[], &[]).unwrap();
    assert_eq!(
        m.tags,
        [
            "ghcr.io/acme/app:develop",
            "ghcr.io/acme/app:develop-8f3c2a1"
        ]
    );
    assert_eq!(m.version, "develop");
    assert!(
        m.labels
            .iter()
            .any(|(k, v)| k == "org.opencontainers.image.revision" && v == &g.sha)
    );
    assert!(
        m.labels
            .iter()
            .any(|(k, v)| k == "org.opencontainers.image.source"
                && v == "https://github.com/acme/app")
    );
    // Semver tag push with latest=auto.
    g.git_ref = "refs/tags/v1.2.3".into();
    let rules = lines(
        "type=semver,pattern={{version}}\ntype=semver,pattern={{major}}.{{minor}}\ntype=semver,pattern={{major}}\ntype=sha",
    );
    let (m, _) = metadata::compute(&g, &["app".into()], &rules, &[], &[]).unwrap();
    assert_eq!(
        m.tags,
        [
            "app:1.2.3",
            "app:1.2",
            "app:1",
            "app:sha-8f3c2a1",
            "app:latest"
        ]
    );
    // Prerelease: only {{version}}, no latest.
    g.git_ref = "refs/tags/v2.0.0-rc.1".into();
    let (m, _) = metadata::compute(&g, &["app".into()], &rules, &[], &[]).unwrap();
    assert_eq!(m.tags, ["app:2.0.0-rc.1", "app:sha-8f3c2a1"]);
    // Pull request, raw, flavor, branch with a slash, latest=false.
    g.git_ref = "refs/pull/42/merge".into();
    g.event_name = "pull_request".into();
    let (m, _) = metadata::compute(
        &g,
        &["a".into(), "b".into()],
        &lines("type=ref,event=pr\ntype=raw,value=custom\ntype=ref,event=branch"),
        &lines("latest=false\nsuffix=-x"),
        &[],
    )
    .unwrap();
    assert_eq!(
        m.tags,
        ["a:pr-42-x", "a:custom-x", "b:pr-42-x", "b:custom-x"]
    );
    g.git_ref = "refs/heads/feature/new-ui".into();
    g.event_name = "push".into();
    let (m, _) = metadata::compute(&g, &[], &lines("type=ref,event=branch\ntype=raw,value=latest,enable={{is_default_branch}}\ntype=edge,branch=main"), &[], &lines("extra=1")).unwrap();
    assert_eq!(m.tags, ["feature-new-ui"]);
    assert!(m.labels.contains(&("extra".into(), "1".into())));
    g.git_ref = "refs/heads/main".into();
    let (m, _) = metadata::compute(&g, &[], &lines("type=ref,event=branch\ntype=raw,value=latest,enable={{is_default_branch}}\ntype=edge,branch=main"), &[], &[]).unwrap();
    assert_eq!(m.tags, ["edge", "main", "latest"]);
    // Default rules on a tag push: the tag and latest.
    g.git_ref = "refs/tags/release-1".into();
    let (m, _) = metadata::compute(&g, &["img".into()], &[], &[], &[]).unwrap();
    assert_eq!(m.tags, ["img:release-1", "img:latest"]);
    assert!(metadata::compute(&g, &[], &lines("type=bogus"), &[], &[]).is_err());
}

#[tokio::test]
async fn metadata_outputs_through_the_action() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env_for(tmp.path());
    let r = run(
        "docker/metadata-action",
        &[
            ("images", "localhost:5000/app"),
            ("tags", "type=ref,event=branch\ntype=sha"),
        ],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(
        r.outputs["tags"],
        "localhost:5000/app:main\nlocalhost:5000/app:sha-0123456"
    );
    assert!(r.outputs["labels"].contains("org.opencontainers.image.version=main"));
    let j: serde_json::Value = serde_json::from_str(&r.outputs["json"]).unwrap();
    assert_eq!(j["tags"][0], "localhost:5000/app:main");
}

#[tokio::test]
async fn setup_python_finds_python3() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env_for(tmp.path());
    let r = run("actions/setup-python", &[("python-version", "3.x")], &env)
        .await
        .unwrap();
    assert!(
        r.outputs["python-version"].starts_with("3."),
        "{:?}",
        r.outputs
    );
    assert_eq!(r.path.len(), 1);
    let exact = r.outputs["python-version"].clone();
    let minor: String = exact.split('.').take(2).collect::<Vec<_>>().join(".");
    let r = run("actions/setup-python", &[("python-version", &minor)], &env)
        .await
        .unwrap();
    assert_eq!(r.outputs["python-version"], exact);
    let e = run("actions/setup-python", &[("python-version", "2.6")], &env)
        .await
        .unwrap_err();
    assert!(
        e.contains("no python matching version '2.6'") && e.contains("found"),
        "{e}"
    );
    let r = run("actions/setup-node", &[("node-version", "lts/*")], &env)
        .await
        .unwrap();
    assert!(r.outputs["node-version"].starts_with('v'));
    let e = run("actions/setup-node", &[("node-version", "99")], &env)
        .await
        .unwrap_err();
    assert!(e.contains("node"), "{e}");
    // A host without the toolchain (PATH emptied) fails clearly.
    let mut env2 = env_for(tmp.path());
    env2.env
        .insert("PATH".into(), tmp.path().display().to_string());
    let e = run_typed("actions/setup-go", &[("go-version", "1.22")], &env2)
        .await
        .unwrap_err();
    // Refused because the run is offline (the fallback to the real action needs the
    // network), and the message names what was looked for and where.
    assert!(matches!(e, builtin::BuiltinError::Offline(_)), "{e:?}");
    let e = e.to_string();
    // The message names what was looked for and where, and why the real action was not run.
    assert!(
        e.contains("no go matching version '1.22'") && e.contains("tried") && e.contains("offline"),
        "{e}"
    );
}

/// A one-request-at-a-time HTTP server recording bodies.
async fn recorder() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/SECRET", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        let _ = tx.send(text[i + 4..i + 4 + len].to_string());
                        break;
                    }
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn slack_actions_post_to_the_webhook() {
    let tmp = tempfile::tempdir().unwrap();
    let mut env = env_for(tmp.path());
    let (url, mut rx) = recorder().await;
    let e = run("8398a7/action-slack", &[("status", "success")], &env)
        .await
        .unwrap_err();
    assert!(e.contains("SLACK_WEBHOOK_URL"));
    env.env.insert("SLACK_WEBHOOK_URL".into(), url.clone());
    let r = run(
        "8398a7/action-slack",
        &[
            ("status", "failure"),
            ("fields", "repo,commit,ref"),
            ("mention", "here"),
            ("if_mention", "failure"),
        ],
        &env,
    )
    .await
    .unwrap();
    assert!(r.masks.contains(&url));
    let body: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert!(body["text"].as_str().unwrap().starts_with("<!here> Failed"));
    let fields = body["attachments"][0]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[2]["value"], "refs/heads/main");
    run(
        "slackapi/slack-github-action",
        &[("payload", r#"{"text":"deployed"}"#)],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(rx.recv().await.unwrap(), r#"{"text":"deployed"}"#);
    env.env.shift_remove("SLACK_WEBHOOK_URL");
    let r = run(
        "slackapi/slack-github-action",
        &[
            ("webhook", &url),
            ("slack-message", "hi"),
            ("channel-id", "C1"),
        ],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(r.outputs["ok"], "true");
    let body: serde_json::Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"text": "hi", "channel": "C1"}));
    let e = run(
        "slackapi/slack-github-action",
        &[("webhook", &url), ("payload", "text: yaml")],
        &env,
    )
    .await
    .unwrap_err();
    assert!(e.contains("JSON"));
}

/// CI (`GANTRY_REQUIRE_DOCKER=1`): a missing daemon or image fails instead of skipping.
fn docker_required() -> bool {
    std::env::var("GANTRY_REQUIRE_DOCKER").as_deref() == Ok("1")
}

fn docker_available() -> bool {
    let ok = std::process::Command::new("docker")
        .args(["info"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            !docker_required(),
            "GANTRY_REQUIRE_DOCKER=1 but no Docker daemon answers"
        );
        eprintln!(
            "SKIPPED: no Docker daemon answers (set GANTRY_REQUIRE_DOCKER=1 to fail instead)"
        );
    }
    ok
}

#[tokio::test]
async fn build_push_builds_with_the_daemon() {
    if !docker_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let env = env_for(tmp.path());
    write(
        &env.workspace.join("Dockerfile"),
        "FROM gantry/busybox:latest\nARG GREETING=none\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n",
    );
    write(&env.workspace.join("hello.txt"), "hello");
    let tag = format!("gantry-test/build-push:{}", uuid_like());
    let r = run(
        "docker/build-push-action",
        &[
            ("context", "."),
            ("tags", &tag),
            ("build-args", "GREETING=hi"),
            ("labels", "x.y=z"),
        ],
        &env,
    )
    .await;
    let r = match r {
        Ok(r) => r,
        Err(e) if e.contains("gantry/busybox") => {
            assert!(
                !docker_required(),
                "GANTRY_REQUIRE_DOCKER=1 but gantry/busybox:latest is missing (docker/build-images.sh busybox): {e}"
            );
            eprintln!(
                "SKIPPED: gantry/busybox:latest missing (docker/build-images.sh busybox): {e}"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(r.outputs["imageid"].starts_with("sha256:"));
    let out = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"greeting\"}} {{index .Config.Labels \"x.y\"}}",
            &tag,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi z");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .output();
    let e = run(
        "docker/build-push-action",
        &[
            ("context", "."),
            ("file", "Nope.Dockerfile"),
            ("tags", &tag),
        ],
        &env,
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("docker build failed") || e.contains("Nope"),
        "{e}"
    );
}

fn uuid_like() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
