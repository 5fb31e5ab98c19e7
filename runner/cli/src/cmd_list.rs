//! `gantry list [EVENT] [-W PATH]... [-e EVENT_FILE]`: the workflows, their jobs by stage
//! (topological layer) with needs, and, for EVENT, which workflows would run and why not.
//! Exit 0, or 1 when a workflow file has errors or its jobs cannot be planned.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gantry_plan::{Event, NodeKind, Plan, PlanOptions, matches, plan};
use gantry_workflow::{Severity, Workflow, load_workflow, render};

/// A loaded workflow file, or the rendered diagnostics that stopped it.
pub(crate) struct LoadedFile {
    pub path: PathBuf,
    pub workflow: Option<Workflow>,
    /// Rendered diagnostics (errors and warnings), empty when clean.
    pub report: String,
}

/// The workflow files named by `paths` (default `.github/workflows`): a directory gives
/// every `*.yml` / `*.yaml` directly in it, sorted; a file is taken as is.
pub(crate) fn workflow_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let default = [PathBuf::from(".github/workflows")];
    let list: &[PathBuf] = if paths.is_empty() { &default } else { paths };
    let mut files = Vec::new();
    for p in list {
        if p.is_dir() {
            let here = gantry_session::yaml_files_in(p)
                .with_context(|| format!("reading {}", p.display()))?;
            files.extend(here);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            bail!("no workflow file or directory at {}", p.display());
        }
    }
    Ok(files)
}

/// Loads every workflow file of `paths`.
/// Each workflow that loaded, with its plan. Diagnostics and plan errors are appended to
/// `err` and make `code` 1 (shared by `gantry list` and `gantry graph`).
pub(crate) fn planned<'a>(
    files: &'a [LoadedFile],
    err: &mut String,
    code: &mut i32,
) -> Vec<(&'a LoadedFile, &'a Workflow, Plan)> {
    let mut out = Vec::new();
    for f in files {
        err.push_str(&f.report);
        let Some(wf) = &f.workflow else {
            *code = 1;
            continue;
        };
        match plan(wf, &PlanOptions::default()) {
            Ok(p) => out.push((f, wf, p)),
            Err(e) => {
                let _ = writeln!(err, "{}: {e}", f.path.display());
                *code = 1;
            }
        }
    }
    out
}

pub(crate) fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<LoadedFile>> {
    let mut out = Vec::new();
    for path in workflow_files(paths)? {
        let loaded = load_workflow(&path);
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let has_errors = loaded
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error);
        let report = if loaded.diagnostics.is_empty() {
            String::new()
        } else {
            render(&loaded.diagnostics, &source)
        };
        out.push(LoadedFile {
            path,
            workflow: if has_errors { None } else { loaded.value },
            report,
        });
    }
    Ok(out)
}

/// The ref checked out in the current directory's git repository (`.git/HEAD`), if any.
fn current_ref() -> Option<String> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let head = dir.join(".git/HEAD");
        if let Ok(text) = std::fs::read_to_string(&head) {
            return text
                .trim()
                .strip_prefix("ref: ")
                .map(|r| r.trim().to_string());
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Builds the event to match: from the payload file, else a bare event (push: the ref
/// checked out in the current repository).
pub(crate) fn make_event(name: &str, event_file: Option<&Path>) -> anyhow::Result<Event> {
    match event_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading event file {}", f.display()))?;
            let payload: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("event file {} is not JSON", f.display()))?;
            let mut ev = Event::from_payload(name, payload);
            if ev.ref_.is_none() && name == "push" {
                ev.ref_ = current_ref();
            }
            Ok(ev)
        }
        None => Ok(match (name, current_ref()) {
            ("push", Some(r)) => Event::push(&r, None),
            _ => Event::named(name),
        }),
    }
}

fn events_of(wf: &Workflow) -> String {
    wf.on
        .events
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What a command prints and its exit code.
pub(crate) struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    pub(crate) fn emit(self) -> anyhow::Result<i32> {
        std::io::stderr().lock().write_all(self.stderr.as_bytes())?;
        std::io::stdout().lock().write_all(self.stdout.as_bytes())?;
        Ok(self.code)
    }
}

/// Runs `gantry list`.
pub fn run(
    workflow_paths: &[PathBuf],
    event: Option<&str>,
    event_file: Option<&Path>,
) -> anyhow::Result<i32> {
    list(workflow_paths, event, event_file)?.emit()
}

pub(crate) fn list(
    workflow_paths: &[PathBuf],
    event: Option<&str>,
    event_file: Option<&Path>,
) -> anyhow::Result<Output> {
    let files = load_all(workflow_paths)?;
    let mut out = String::new();
    let mut err = String::new();
    let mut code = 0;
    let mut rows: Vec<Vec<String>> = vec![
        [
            "Stage",
            "Job ID",
            "Job name",
            "Needs",
            "Runs",
            "Workflow name",
            "Workflow file",
            "Events",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for (f, wf, p) in planned(&files, &mut err, &mut code) {
        for (stage, ids) in p.layers.iter().enumerate() {
            for id in ids {
                let jp = &p.jobs[id];
                let first = p.node(jp.nodes[0]);
                let runs = match &first.kind {
                    NodeKind::Job => "1".to_string(),
                    NodeKind::Leg { total, .. } => format!("{total} legs"),
                    NodeKind::Deferred => "matrix at run time".to_string(),
                    NodeKind::NoLegs => "0".to_string(),
                };
                rows.push(vec![
                    stage.to_string(),
                    id.clone(),
                    wf.jobs[id].display_name().to_string(),
                    if jp.needs.is_empty() {
                        "-".into()
                    } else {
                        jp.needs.join(",")
                    },
                    runs,
                    wf.display_name().to_string(),
                    f.path.display().to_string(),
                    events_of(wf),
                ]);
            }
        }
    }
    out.push_str(&table(&rows));

    // An event file without an event name is a push, as in `gantry run`.
    let event = event.or(event_file.map(|_| "push"));
    if let Some(name) = event {
        let ev = make_event(name, event_file)?;
        let target = match (&ev.ref_, &ev.base_ref) {
            (Some(r), _) => format!(" on {r}"),
            (None, Some(b)) => format!(" into {b}"),
            _ => String::new(),
        };
        writeln!(out, "\nEvent '{name}'{target}:")?;
        let mut any = false;
        for f in &files {
            let Some(wf) = &f.workflow else {
                writeln!(out, "  ! {}: not loaded (errors above)", f.path.display())?;
                continue;
            };
            let m = matches(wf, &ev);
            any |= m.matched;
            writeln!(
                out,
                "  {} {} ({}): {}",
                if m.matched { "run " } else { "skip" },
                f.path.display(),
                wf.display_name(),
                m.reason
            )?;
        }
        if !any {
            writeln!(out, "  no workflow runs for '{name}'")?;
        }
    }
    Ok(Output {
        stdout: out,
        stderr: err,
        code,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CI: &str = r#"name: CI
on:
  push:
    branches: [main]
    paths-ignore: ['docs/**']
  pull_request:
jobs:
  build:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        os: [ubuntu, windows]
        node: [18, 20]
    steps: [{run: echo}]
  lint:
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  deploy:
    name: Deploy "prod"
    needs: [build, lint]
    runs-on: ubuntu-latest
    steps: [{run: echo}]
"#;

    pub(crate) const RELEASE: &str = "name: Release\non:\n  push:\n    tags: ['v*']\njobs:\n  publish:\n    runs-on: x\n    steps: [{run: echo}]\n";

    pub(crate) fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join(".github/workflows");
        std::fs::create_dir_all(&w).unwrap();
        std::fs::write(w.join("ci.yml"), CI).unwrap();
        std::fs::write(w.join("release.yaml"), RELEASE).unwrap();
        std::fs::write(w.join("notes.txt"), "not a workflow").unwrap();
        d
    }

    #[test]
    fn lists_jobs_by_stage_and_explains_events() {
        let d = repo();
        let dir = d.path().join(".github/workflows");
        let o = list(std::slice::from_ref(&dir), None, None).unwrap();
        assert_eq!(o.code, 0, "{}", o.stderr);
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert!(lines[0].starts_with("Stage  Job ID"), "{}", o.stdout);
        assert_eq!(lines.len(), 5, "{}", o.stdout);
        assert!(lines[1].starts_with("0      build") && lines[1].contains("4 legs"));
        assert!(lines[3].starts_with("1      deploy") && lines[3].contains("build,lint"));
        assert!(lines[4].contains("publish") && lines[4].contains("release.yaml"));

        let ev = d.path().join("ev.json");
        std::fs::write(&ev, r#"{"ref": "refs/tags/v1.0"}"#).unwrap();
        let o = list(std::slice::from_ref(&dir), None, Some(&ev)).unwrap();
        assert!(
            o.stdout.contains("Event 'push' on refs/tags/v1.0:"),
            "{}",
            o.stdout
        );
        assert!(o.stdout.contains("skip ") && o.stdout.contains("only branch filters"));
        assert!(o.stdout.contains("run  ") && o.stdout.contains("push of tag 'v1.0'"));

        std::fs::write(
            &ev,
            r#"{"ref": "refs/heads/main", "commits": [{"added": ["docs/a.md"], "removed": [], "modified": []}]}"#,
        )
        .unwrap();
        let o = list(&[dir.join("ci.yml")], Some("push"), Some(&ev)).unwrap();
        assert!(
            o.stdout
                .contains("every changed file is ignored by paths-ignore [docs/**]"),
            "{}",
            o.stdout
        );
        assert!(o.stdout.contains("no workflow runs for 'push'"));
    }

    #[test]
    fn errors_give_exit_1_and_missing_paths_fail() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("bad.yml");
        std::fs::write(
            &bad,
            "on: push\njobs:\n  a:\n    needs: nope\n    runs-on: x\n    steps: [{run: echo}]\n",
        )
        .unwrap();
        let o = list(std::slice::from_ref(&bad), None, None).unwrap();
        assert_eq!(o.code, 1);
        assert!(o.stderr.contains("nope"), "{}", o.stderr);
        assert!(list(&[d.path().join("missing")], None, None).is_err());
    }
}
