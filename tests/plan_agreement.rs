//! The plan is what runs: for every workflow of the conformance corpus
//! (`../shared/conformance/workflows/files`) and of `workflows/`, and for each event it
//! declares, `gantry list`, `gantry graph`, `gantry run --dry-run` and the scheduler's own
//! job order (a plan-only run: the scheduler queues and starts every job, no step runs)
//! must agree on the jobs and on the order their `needs` impose. Any disagreement fails
//! the test, naming the workflow, the event and what differed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gantry_engine::events::{EventBus, RunEvent};
use gantry_engine::run::{RunConfig, WorkflowEntry, execute};
use gantry_tests::{gantry, git_repo_with, shared_dir, workspace_root};
use gantry_workflow::{InputType, Severity, Workflow};
use tokio_util::sync::CancellationToken;

/// Job id → its direct needs.
type Jobs = BTreeMap<String, BTreeSet<String>>;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

/// `gantry list`: the rows of the table, cut at the header's column starts.
fn from_list(stdout: &str) -> Jobs {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    let col = |name: &str| header.find(name).expect("list header column");
    let (id_at, name_at, needs_at, runs_at) =
        (col("Job ID"), col("Job name"), col("Needs"), col("Runs"));
    let mut jobs = Jobs::new();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let cut = |a: usize, b: usize| -> String {
            line.chars()
                .skip(a)
                .take(b - a)
                .collect::<String>()
                .trim()
                .to_string()
        };
        let needs = cut(needs_at, runs_at);
        let needs = if needs == "-" {
            BTreeSet::new()
        } else {
            needs.split(',').map(str::to_string).collect()
        };
        jobs.insert(cut(id_at, name_at), needs);
    }
    jobs
}

/// `gantry graph` (text): `    label <- a, b` lines; a label starts with the job id.
fn from_graph(stdout: &str) -> Jobs {
    let mut jobs = Jobs::new();
    for line in stdout.lines().filter(|l| l.starts_with("    ")) {
        let (label, needs) = match line.trim().split_once(" <- ") {
            Some((l, n)) => (l, n.split(", ").map(str::to_string).collect()),
            None => (line.trim(), BTreeSet::new()),
        };
        let id = label
            .split([':', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        jobs.insert(id, needs);
    }
    jobs
}

/// `gantry run --dry-run`: `  job ID: runs-on [...], needs [a, b]...` lines.
fn from_dry_run(stdout: &str) -> Jobs {
    let mut jobs = Jobs::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("  job ") else {
            continue;
        };
        let (id, rest) = rest.split_once(": runs-on [").unwrap_or((rest, ""));
        let needs = rest
            .split_once(", needs [")
            .and_then(|(_, n)| n.split_once(']'))
            .map(|(n, _)| n.split(", ").map(str::to_string).collect())
            .unwrap_or_default();
        jobs.insert(id.to_string(), needs);
    }
    jobs
}

/// Values for the required inputs of `event` without defaults, so that a dispatch runs.
fn inputs_for(wf: &Workflow, event: &str) -> Vec<(String, String)> {
    let Some(t) = wf.on.events.get(event) else {
        return vec![];
    };
    t.inputs
        .iter()
        .filter(|(_, d)| d.required && d.default.is_none())
        .map(|(k, d)| {
            let v = match d.input_type {
                InputType::Boolean => "true".to_string(),
                InputType::Number => "1".to_string(),
                InputType::Choice => d.options.first().cloned().unwrap_or_default(),
                InputType::String | InputType::Environment => "x".to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The scheduler's order in a plan-only run: the jobs it queued with their needs, and
/// every need that did not finish before its dependent started.
async fn from_scheduler(
    root: &Path,
    rel: &str,
    wf: &Workflow,
    event: &str,
    inputs: &[(String, String)],
) -> Result<(Jobs, Vec<String>), String> {
    let mut cfg = RunConfig::new(
        root.to_path_buf(),
        vec![WorkflowEntry {
            workflow: wf.clone(),
            rel_path: rel.to_string(),
        }],
    );
    cfg.event_name = event.to_string();
    cfg.plan_only = true;
    cfg.all_host = true;
    cfg.inputs = inputs.iter().cloned().collect();
    let bus = EventBus::new();
    let mut sub = bus.subscribe_batched();
    execute(cfg, bus.clone(), CancellationToken::new()).await?;
    bus.close();
    let mut jobs = Jobs::new();
    let mut id_of: HashMap<String, String> = HashMap::new();
    // Per job id: legs still to finish; set once every leg finished.
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut violations = Vec::new();
    let mut events = Vec::new();
    while let Some(e) = sub.blocking_recv() {
        events.push(e);
    }
    for e in &events {
        if let RunEvent::JobQueued {
            job, job_id, needs, ..
        } = e.as_ref()
        {
            id_of.insert(job.to_string(), job_id.clone());
            *open.entry(job_id.clone()).or_default() += 1;
            jobs.entry(job_id.clone())
                .or_default()
                .extend(needs.iter().cloned());
        }
    }
    for e in &events {
        match e.as_ref() {
            RunEvent::JobStarted { job, .. } => {
                let id = &id_of[job.as_str()];
                for n in &jobs[id] {
                    if !done.contains(n) {
                        violations.push(format!("{id} started before its need {n} finished"));
                    }
                }
            }
            RunEvent::JobFinished { job, .. } => {
                let id = &id_of[job.as_str()];
                let left = open.get_mut(id).expect("finished a queued job");
                *left -= 1;
                if *left == 0 {
                    done.insert(id.clone());
                }
            }
            _ => {}
        }
    }
    Ok((jobs, violations))
}

fn differ(what: &str, a: &Jobs, b: &Jobs) -> Option<String> {
    (a != b).then(|| format!("{what}:\n      list      {a:?}\n      {what:<9} {b:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_graph_dry_run_and_scheduler_agree() {
    let mut files = Vec::new();
    if let Some(shared) = shared_dir("the plan agreement test over the conformance workflows") {
        yaml_files(&shared.join("conformance/workflows/files"), &mut files);
    }
    yaml_files(&workspace_root().join("workflows"), &mut files);
    let (mut covered, mut events_checked, mut unplannable) = (0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let loaded = gantry_workflow::parse_workflow("w.yml", &text);
        let errors = loaded
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error);
        let Some(wf) = loaded.value.filter(|_| !errors) else {
            unplannable += 1;
            continue;
        };
        let rel = ".github/workflows/w.yml";
        let repo = git_repo_with(&[(rel, text.as_str())]);
        let list = gantry(repo.path(), &["list", "-W", rel]);
        let graph = gantry(repo.path(), &["graph", "-W", rel]);
        if list.status.code() != Some(0) {
            // The plan refuses it (a cycle the parser let through, a bad strategy):
            // graph must refuse it too.
            if graph.status.code() == Some(0) {
                failures.push(format!(
                    "{}: list refused it, graph did not",
                    file.display()
                ));
            }
            unplannable += 1;
            continue;
        }
        covered += 1;
        let listed = from_list(&String::from_utf8_lossy(&list.stdout));
        let mut problems = Vec::new();
        problems.extend(differ(
            "graph",
            &listed,
            &from_graph(&String::from_utf8_lossy(&graph.stdout)),
        ));
        for event in wf.on.events.keys() {
            let inputs = inputs_for(&wf, event);
            let mut args: Vec<String> = vec![
                "run".into(),
                event.clone(),
                "-W".into(),
                rel.into(),
                "--dry-run".into(),
                "--host".into(),
            ];
            for (k, v) in &inputs {
                args.push("--input".into());
                args.push(format!("{k}={v}"));
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let dry = gantry(repo.path(), &argv);
            let out = String::from_utf8_lossy(&dry.stdout);
            if dry.status.code() != Some(0) {
                problems.push(format!(
                    "run {event} --dry-run exited {:?}: {}",
                    dry.status.code(),
                    String::from_utf8_lossy(&dry.stderr).trim()
                ));
                continue;
            }
            if !out.contains("  job ") && !listed.is_empty() {
                // Not triggered by this event (branch or type filters): nothing runs.
                continue;
            }
            events_checked += 1;
            problems.extend(differ(
                &format!("dry-run {event}"),
                &listed,
                &from_dry_run(&out),
            ));
            match from_scheduler(repo.path(), rel, &wf, event, &inputs).await {
                Ok((order, violations)) => {
                    problems.extend(differ(&format!("scheduler {event}"), &listed, &order));
                    problems.extend(
                        violations
                            .into_iter()
                            .map(|v| format!("scheduler {event}: {v}")),
                    );
                }
                Err(e) => problems.push(format!("scheduler {event}: {e}")),
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n    {}",
                file.display(),
                problems.join("\n    ")
            ));
        }
    }
    println!(
        "plan agreement: {covered} workflows planned ({events_checked} workflow×event runs \
         compared), {unplannable} refused by the parser or the plan, {} disagree",
        failures.len()
    );
    assert!(covered > 0, "no workflow was compared");
    assert!(
        failures.is_empty(),
        "{} workflows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
