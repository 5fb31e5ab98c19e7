//! `runs-on` as act users expect: `ubuntu-*` labels (also ones Gantry has never heard of,
//! such as `ubuntu-slim`) run in Gantry's Debian image, `--host` runs them here; labels no
//! platform provides (`windows-*`, `macos-*`, `self-hosted`, anything unknown) are skipped
//! with a message naming `-P`, and never run on the host; `-P label=host`, act's
//! `-P label=-self-hosted` and `-P label=image` map them.

use gantry_tests::*;

fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn result(ev: &[serde_json::Value], job: &str) -> String {
    ev.iter()
        .find(|e| e["type"] == "job_finished" && e["job"] == job)
        .and_then(|e| e["result"].as_str())
        .unwrap_or_else(|| panic!("no job_finished for {job}: {ev:?}"))
        .to_string()
}

fn logs(ev: &[serde_json::Value], job: &str) -> String {
    ev.iter()
        .filter(|e| e["type"] == "log" && e["job"] == job)
        .filter_map(|e| e["line"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

const FOREIGN: &str = r#"on: push
jobs:
  win:
    runs-on: windows-latest
    steps:
      - run: echo RAN-WIN
  mac:
    runs-on: macos-latest
    steps:
      - run: echo RAN-MAC
  unknown:
    runs-on: [gpu-box, x64]
    steps:
      - run: echo RAN-UNKNOWN
  selfhosted:
    runs-on: self-hosted
    steps:
      - run: echo RAN-SELF-HOSTED
"#;

#[test]
fn labels_without_a_platform_are_skipped_naming_p() {
    let repo = git_repo_with(&[(".github/workflows/ci.yml", FOREIGN)]);
    // --host too: it must not turn a Windows or macOS job into a Linux one.
    for extra in [&[][..], &["--host"][..]] {
        let mut args = vec!["run", "--json"];
        args.extend_from_slice(extra);
        let out = gantry(repo.path(), &args);
        let t = text(&out);
        let ev = events(&out);
        for (job, label) in [("win", "windows-latest"), ("mac", "macos-latest")] {
            assert_eq!(result(&ev, job), "skipped", "{extra:?} {job}:\n{t}");
            let l = logs(&ev, job);
            assert!(
                l.contains(&format!("-P {label}=")),
                "{job}: no -P hint:\n{l}"
            );
            assert!(l.contains("Linux jobs only"), "{job}: {l}");
        }
        assert!(!t.contains("RAN-WIN") && !t.contains("RAN-MAC"), "{t}");
        if extra.is_empty() {
            for (job, label) in [("unknown", "gpu-box"), ("selfhosted", "self-hosted")] {
                assert_eq!(result(&ev, job), "skipped", "{job}:\n{t}");
                let l = logs(&ev, job);
                assert!(l.contains(&format!("-P {label}=IMAGE")), "{job}: {l}");
            }
            assert!(
                !t.contains("RAN-UNKNOWN") && !t.contains("RAN-SELF-HOSTED"),
                "{t}"
            );
        } else {
            // An explicit --host runs what is not a foreign OS here.
            assert_eq!(result(&ev, "selfhosted"), "success", "{t}");
            assert!(t.contains("RAN-SELF-HOSTED"), "{t}");
        }
        assert_eq!(
            out.status.code(),
            Some(0),
            "skipped jobs fail nothing:\n{t}"
        );
    }
    // `-q` holds log lines back; the reason is still printed (a warning annotation).
    let out = gantry(repo.path(), &["run", "-q"]);
    let t = text(&out);
    for label in ["windows-latest", "macos-latest", "gpu-box"] {
        assert!(t.contains(&format!("-P {label}=")), "-q hides why:\n{t}");
    }
    assert!(t.contains("warning: job skipped"), "{t}");
}

#[test]
fn p_maps_labels_as_act_spells_it() {
    let repo = git_repo_with(&[(".github/workflows/ci.yml", FOREIGN)]);
    let out = gantry(
        repo.path(),
        &[
            "run",
            "--json",
            "-P",
            "windows-latest=host",
            "-P",
            "self-hosted=-self-hosted",
            "-P",
            "GPU-BOX=host",
        ],
    );
    let t = text(&out);
    let ev = events(&out);
    assert_eq!(result(&ev, "win"), "success", "{t}");
    assert_eq!(result(&ev, "selfhosted"), "success", "{t}");
    assert_eq!(result(&ev, "unknown"), "success", "{t}");
    assert_eq!(result(&ev, "mac"), "skipped", "{t}");
    assert!(t.contains("RAN-WIN") && t.contains("RAN-SELF-HOSTED") && t.contains("RAN-UNKNOWN"));
    assert!(!t.contains("RAN-MAC"), "{t}");
}

const UBUNTU: &str = r#"on: push
jobs:
  slim:
    runs-on: ubuntu-slim
    steps:
      - run: echo "WS=$GITHUB_WORKSPACE"; grep -q bookworm /etc/os-release && echo IN-DEBIAN-IMAGE
  future:
    runs-on: ubuntu-26.04
    steps:
      - run: echo "WS=$GITHUB_WORKSPACE"; grep -q bookworm /etc/os-release && echo IN-DEBIAN-IMAGE
"#;

#[test]
fn every_ubuntu_label_runs_in_the_debian_image_unless_host() {
    if !docker_ready(&["gantry/debian:bookworm"]) {
        return;
    }
    let repo = git_repo_with(&[(".github/workflows/ci.yml", UBUNTU)]);
    let out = gantry(repo.path(), &["run", "--json"]);
    let t = text(&out);
    let ev = events(&out);
    for job in ["slim", "future"] {
        assert_eq!(result(&ev, job), "success", "{job}:\n{t}");
        let l = logs(&ev, job);
        assert!(
            l.contains("WS=/__w/"),
            "{job} did not run in a container:\n{l}"
        );
        assert!(l.contains("IN-DEBIAN-IMAGE"), "{job}: {l}");
    }
    let out = gantry(repo.path(), &["run", "--json", "--host"]);
    let ev = events(&out);
    for job in ["slim", "future"] {
        let l = logs(&ev, job);
        assert!(
            l.contains("WS=/") && !l.contains("WS=/__w/"),
            "{job} not on the host:\n{l}"
        );
    }
}
