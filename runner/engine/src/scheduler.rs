//! The scheduler: starts each job the moment all of its `needs` have finished (not layer
//! by layer), expands matrices at that moment (they may use `needs.*.outputs`), runs legs
//! under `--jobs`, `max-parallel` and concurrency groups, cancels sibling legs on fail-fast,
//! and aggregates leg results for dependents (§6.1, §6.2, §6.5).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gantry_expr::{Object, Value};
use indexmap::IndexMap;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::context::{self, StrategyFacts};
use crate::evalctx::{Ctx, StatusMode};
use crate::events::{RunEvent, Status, Text};
use crate::job::{
    JobInstance, JobOutcome, eval_bool, eval_number, run_job, runner_log, secrets_value,
};
use crate::matrix;
use crate::run::{JobRecord, RunShared};

struct Node {
    wi: usize,
    job_id: String,
    needs: Vec<usize>,
    dependents: Vec<usize>,
    waiting: usize,
    /// Result as dependents see it (`needs.<id>.result`).
    result: Option<Status>,
    outputs: IndexMap<String, String>,
    legs_total: usize,
    legs_done: usize,
    leg_results: Vec<(Status, bool)>,
    cancel: CancellationToken,
    fail_fast: bool,
}

/// Concurrency groups of the run (lower-cased name → lock).
type Groups = Arc<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>>;

struct Done {
    node: usize,
    record: JobRecord,
    outcome: JobOutcome,
}

/// Runs every selected job of every workflow; returns one record per job instance.
pub async fn run_all(shared: Arc<RunShared>) -> Vec<JobRecord> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<(usize, String), usize> = HashMap::new();
    for (wi, w) in shared.cfg.workflows.iter().enumerate() {
        for id in w.workflow.jobs.keys() {
            index.insert((wi, id.clone()), nodes.len());
            nodes.push(Node {
                wi,
                job_id: id.clone(),
                needs: vec![],
                dependents: vec![],
                waiting: 0,
                result: None,
                outputs: IndexMap::new(),
                legs_total: 0,
                legs_done: 0,
                leg_results: vec![],
                cancel: shared.cancel.child_token(),
                fail_fast: true,
            });
        }
    }
    for node in nodes.iter_mut() {
        let job = &shared.cfg.workflows[node.wi].workflow.jobs[&node.job_id];
        for need in &job.needs {
            if let Some(&m) = index.get(&(node.wi, need.value.clone())) {
                node.needs.push(m);
            }
        }
    }
    // -j: the selected jobs and everything they need.
    let selected: HashSet<usize> = if shared.cfg.only_jobs.is_empty() {
        (0..nodes.len()).collect()
    } else {
        let mut sel = HashSet::new();
        let mut stack: Vec<usize> = (0..nodes.len())
            .filter(|&n| shared.cfg.only_jobs.iter().any(|j| j == &nodes[n].job_id))
            .collect();
        while let Some(n) = stack.pop() {
            if sel.insert(n) {
                stack.extend(nodes[n].needs.iter().copied());
            }
        }
        sel
    };
    for n in 0..nodes.len() {
        if !selected.contains(&n) {
            continue;
        }
        nodes[n].needs.retain(|m| selected.contains(m));
        nodes[n].waiting = nodes[n].needs.len();
        for m in nodes[n].needs.clone() {
            nodes[m].dependents.push(n);
        }
    }

    let global = Arc::new(Semaphore::new(shared.cfg.max_jobs.max(1)));
    let groups: Groups = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut records: Vec<JobRecord> = Vec::new();
    let mut used_keys: HashSet<String> = HashSet::new();
    let mut remaining = selected.len();
    let mut ready: Vec<usize> = {
        let mut r: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|&n| nodes[n].waiting == 0)
            .collect();
        r.sort();
        r.reverse();
        r
    };

    loop {
        // Dispatch everything ready; nodes that complete at once make others ready.
        while let Some(n) = ready.pop() {
            let immediate = dispatch(
                &shared,
                &mut nodes,
                n,
                &global,
                &groups,
                &done_tx,
                &mut used_keys,
                &mut records,
            );
            if immediate {
                remaining -= 1;
                for d in nodes[n].dependents.clone() {
                    nodes[d].waiting -= 1;
                    if nodes[d].waiting == 0 {
                        ready.push(d);
                    }
                }
            }
        }
        if remaining == 0 {
            break;
        }
        let Some(done) = done_rx.recv().await else {
            break;
        };
        let n = done.node;
        let coe = done.outcome.continue_on_error;
        let res = done.outcome.result;
        nodes[n].legs_done += 1;
        nodes[n].leg_results.push((res, coe));
        for (k, v) in &done.outcome.outputs {
            nodes[n].outputs.insert(k.clone(), v.clone());
        }
        if res == Status::Failure && !coe && nodes[n].fail_fast {
            nodes[n].cancel.cancel();
        }
        records.push(done.record);
        if nodes[n].legs_done == nodes[n].legs_total {
            let legs = &nodes[n].leg_results;
            let result = if legs.iter().any(|(s, c)| *s == Status::Failure && !c) {
                Status::Failure
            } else if legs.iter().any(|(s, _)| *s == Status::Cancelled) {
                Status::Cancelled
            } else {
                Status::Success
            };
            nodes[n].result = Some(result);
            remaining -= 1;
            for d in nodes[n].dependents.clone() {
                nodes[d].waiting -= 1;
                if nodes[d].waiting == 0 {
                    ready.push(d);
                }
            }
        }
    }
    records
}

fn unique_key(used: &mut HashSet<String>, base: &str) -> String {
    if used.insert(base.to_string()) {
        return base.to_string();
    }
    for i in 2.. {
        let k = format!("{base}-{i}");
        if used.insert(k.clone()) {
            return k;
        }
    }
    unreachable!()
}

fn ancestors(nodes: &[Node], n: usize) -> Vec<(String, Status)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack = nodes[n].needs.clone();
    while let Some(m) = stack.pop() {
        if seen.insert(m) {
            out.push((
                nodes[m].job_id.clone(),
                nodes[m].result.unwrap_or(Status::Skipped),
            ));
            stack.extend(nodes[m].needs.iter().copied());
        }
    }
    out
}

fn needs_value(nodes: &[Node], n: usize) -> Value {
    let mut o = Object::new();
    for &m in &nodes[n].needs {
        let mut e = Object::new();
        e.insert(
            "result",
            Value::string(nodes[m].result.unwrap_or(Status::Skipped).as_str()),
        );
        let mut outs = Object::new();
        for (k, v) in &nodes[m].outputs {
            outs.insert(k.clone(), Value::string(v));
        }
        e.insert("outputs", Value::object(outs));
        o.insert(nodes[m].job_id.clone(), Value::object(e));
    }
    Value::object(o)
}

/// Starts node `n`. Returns true when it completed immediately (skipped, reused, invalid).
#[allow(clippy::too_many_arguments)]
fn dispatch(
    shared: &Arc<RunShared>,
    nodes: &mut [Node],
    n: usize,
    global: &Arc<Semaphore>,
    groups: &Groups,
    done_tx: &mpsc::UnboundedSender<Done>,
    used_keys: &mut HashSet<String>,
    records: &mut Vec<JobRecord>,
) -> bool {
    let wi = nodes[n].wi;
    let entry = &shared.cfg.workflows[wi];
    let job_id = nodes[n].job_id.clone();
    let job = &entry.workflow.jobs[&job_id];
    let base_name = job.display_name().to_string();
    let needs_ids: Vec<String> = nodes[n]
        .needs
        .iter()
        .map(|&m| nodes[m].job_id.clone())
        .collect();

    let finish_now = |nodes: &mut [Node],
                      used: &mut HashSet<String>,
                      records: &mut Vec<JobRecord>,
                      result: Status,
                      seen: Status,
                      outputs: IndexMap<String, String>,
                      reused: bool,
                      msg: Option<String>| {
        let key = Text::from(unique_key(used, &job_id));
        shared.bus.emit(RunEvent::JobQueued {
            job: key.clone(),
            job_id: job_id.clone(),
            name: base_name.clone(),
            workflow: entry.rel_path.clone(),
            needs: needs_ids.clone(),
        });
        if let Some(m) = msg {
            runner_log(
                shared,
                &key,
                None,
                shared.secret_masker.mask(&m).into_owned(),
            );
        }
        shared.bus.emit(RunEvent::JobFinished {
            job: key.clone(),
            name: base_name.clone(),
            result,
            duration_ms: 0,
            outputs: outputs.clone(),
            reused,
        });
        records.push(JobRecord {
            key: key.to_string(),
            job_id: job_id.clone(),
            workflow: entry.rel_path.clone(),
            name: base_name.clone(),
            result,
            continue_on_error: false,
            outputs: outputs.clone(),
            duration_ms: 0,
        });
        nodes[n].result = Some(seen);
        nodes[n].outputs = outputs;
    };

    // Reused from an earlier run.
    if let Some(r) = shared
        .cfg
        .reuse
        .get(&(entry.rel_path.clone(), job_id.clone()))
    {
        finish_now(
            nodes,
            used_keys,
            records,
            r.result,
            r.result,
            r.outputs.clone(),
            true,
            None,
        );
        return true;
    }

    // Job-level context: github, inputs, vars, needs (§4.2).
    let mut ctx = Ctx::new();
    let f = context::JobFacts {
        run: &shared.facts,
        workflow_name: entry.workflow.display_name(),
        workflow_path: &entry.rel_path,
        job_id: &job_id,
        workspace: "",
        temp: "",
        tool_cache: "",
        event_path: "",
        os: context::host_os(),
        arch: context::host_arch(),
        runner_name: "gantry",
    };
    ctx.set("github", Value::from_json(&context::github_json(&f)));
    ctx.set("inputs", shared.inputs[wi].clone());
    ctx.set("vars", context::string_map_value(shared.cfg.vars.iter()));
    let needs = needs_value(nodes, n);
    ctx.set("needs", needs.clone());
    let run_cancelled = shared.cancel.is_cancelled();
    ctx.status = StatusMode::Job {
        ancestors: ancestors(nodes, n),
        direct: needs_ids.clone(),
        cancelled: run_cancelled,
    };
    if job.uses.is_some() {
        finish_now(
            nodes,
            used_keys,
            records,
            Status::Failure,
            Status::Failure,
            IndexMap::new(),
            false,
            Some(format!(
                "Error: job '{job_id}': reusable workflows (jobs.<id>.uses) are not supported yet"
            )),
        );
        return true;
    }
    match ctx.eval_if(job.if_cond.as_ref().map(|c| c.value.as_str())) {
        Ok(true) => {}
        Ok(false) => {
            let st = if run_cancelled {
                Status::Cancelled
            } else {
                Status::Skipped
            };
            finish_now(
                nodes,
                used_keys,
                records,
                st,
                st,
                IndexMap::new(),
                false,
                None,
            );
            return true;
        }
        Err(e) => {
            finish_now(
                nodes,
                used_keys,
                records,
                Status::Failure,
                Status::Failure,
                IndexMap::new(),
                false,
                Some(format!("Error: job '{job_id}': if: {e}")),
            );
            return true;
        }
    }
    ctx.status = StatusMode::None;

    // Strategy.
    let mut legs: Vec<(Option<serde_json::Map<String, serde_json::Value>>, String)> = Vec::new();
    let mut fail_fast = true;
    let mut max_parallel = None;
    if let Some(s) = &job.strategy {
        if let Some(m) = &s.matrix {
            let expanded = matrix::eval_node(&m.value, &ctx).and_then(|j| {
                // A matrix given as one expression may evaluate to a JSON string.
                let j = match j {
                    serde_json::Value::String(t) => {
                        serde_json::from_str(&t).map_err(|e| e.to_string())?
                    }
                    other => other,
                };
                gantry_plan::matrix::expand(&j)
            });
            match expanded {
                Ok(ls) => {
                    let filters: Vec<gantry_plan::matrix::MatrixFilter> = shared
                        .cfg
                        .matrix_filters
                        .iter()
                        .map(|(key, value)| gantry_plan::matrix::MatrixFilter {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect();
                    for l in gantry_plan::matrix::filter_legs(ls, &filters) {
                        let values: serde_json::Map<String, serde_json::Value> =
                            l.values.clone().into_iter().collect();
                        let name = if base_name.contains("${{") {
                            // A name with expressions is evaluated per leg, without the
                            // matrix values appended.
                            let mut c2 = ctx.clone();
                            c2.set(
                                "matrix",
                                Value::from_json(&serde_json::Value::Object(values.clone())),
                            );
                            c2.eval_string(&base_name)
                                .unwrap_or_else(|_| base_name.clone())
                        } else {
                            l.display_name(&base_name)
                        };
                        legs.push((Some(values), name));
                    }
                }
                Err(e) => {
                    finish_now(
                        nodes,
                        used_keys,
                        records,
                        Status::Failure,
                        Status::Failure,
                        IndexMap::new(),
                        false,
                        Some(format!("Error: job '{job_id}': strategy.matrix: {e}")),
                    );
                    return true;
                }
            }
        }
        match eval_bool(&s.fail_fast, &ctx) {
            Ok(b) => fail_fast = s.fail_fast.is_none() || b,
            Err(e) => tracing::warn!("fail-fast: {e}"),
        }
        if let Ok(Some(m)) = eval_number(&s.max_parallel, &ctx)
            && m >= 1.0
        {
            max_parallel = Some(m as usize);
        }
    }
    if legs.is_empty() {
        if job.strategy.as_ref().is_some_and(|s| s.matrix.is_some()) {
            // Every leg filtered out by --matrix.
            finish_now(
                nodes,
                used_keys,
                records,
                Status::Skipped,
                Status::Skipped,
                IndexMap::new(),
                false,
                None,
            );
            return true;
        }
        let name = if base_name.contains("${{") {
            ctx.eval_string(&base_name)
                .unwrap_or_else(|_| base_name.clone())
        } else {
            base_name.clone()
        };
        legs.push((None, name));
    }
    let total = legs.len();
    nodes[n].legs_total = total;
    nodes[n].fail_fast = fail_fast;
    let leg_sem = Arc::new(Semaphore::new(max_parallel.unwrap_or(total).max(1)));
    for (idx, (values, name)) in legs.into_iter().enumerate() {
        let base_key = if total > 1 {
            format!("{job_id}-{}", idx + 1)
        } else {
            job_id.clone()
        };
        let key = Text::from(unique_key(used_keys, &base_key));
        shared.bus.emit(RunEvent::JobQueued {
            job: key.clone(),
            job_id: job_id.clone(),
            name: name.clone(),
            workflow: entry.rel_path.clone(),
            needs: needs_ids.clone(),
        });
        let inst = JobInstance {
            key: key.clone(),
            wf_index: wi,
            job_id: job_id.clone(),
            name: name.clone(),
            matrix: values,
            strategy: StrategyFacts {
                fail_fast,
                job_index: idx,
                job_total: total,
                max_parallel: max_parallel.unwrap_or(total),
            },
            needs: needs.clone(),
        };
        // Concurrency group (within this run): evaluated with the leg's matrix.
        let group = job.concurrency.as_ref().and_then(|c| {
            let mut c2 = ctx.clone();
            c2.set("strategy", inst.strategy.value());
            if let Some(m) = &inst.matrix {
                c2.set(
                    "matrix",
                    Value::from_json(&serde_json::Value::Object(m.clone())),
                );
            }
            c2.set("secrets", secrets_value(&IndexMap::new()));
            c2.eval_string(&c.value.group.value)
                .ok()
                .map(|g| g.to_lowercase())
        });
        let group_lock = group.map(|g| {
            groups
                .lock()
                .expect("groups")
                .entry(g)
                .or_insert_with(|| Arc::new(Mutex::new(())))
                .clone()
        });
        let shared = shared.clone();
        let global = global.clone();
        let leg_sem = leg_sem.clone();
        let cancel = nodes[n].cancel.clone();
        let tx = done_tx.clone();
        let wf_path = entry.rel_path.clone();
        tokio::spawn(async move {
            let _leg = leg_sem.acquire_owned().await;
            let _grp = match &group_lock {
                Some(l) => Some(l.lock().await),
                None => None,
            };
            let _permit = global.acquire_owned().await;
            let outcome = if cancel.is_cancelled() {
                shared.bus.emit(RunEvent::JobFinished {
                    job: inst.key.clone(),
                    name: inst.name.clone(),
                    result: Status::Cancelled,
                    duration_ms: 0,
                    outputs: IndexMap::new(),
                    reused: false,
                });
                JobOutcome {
                    result: Status::Cancelled,
                    continue_on_error: false,
                    outputs: IndexMap::new(),
                    duration: Duration::ZERO,
                }
            } else {
                // A panic in a job must not take the run down: report it as a failure.
                let s2 = shared.clone();
                let i2 = inst.clone();
                match tokio::spawn(run_job(s2, i2, cancel)).await {
                    Ok(o) => o,
                    Err(e) => {
                        runner_log(
                            &shared,
                            &inst.key,
                            None,
                            format!("Error: internal error: {e}"),
                        );
                        shared.bus.emit(RunEvent::JobFinished {
                            job: inst.key.clone(),
                            name: inst.name.clone(),
                            result: Status::Failure,
                            duration_ms: 0,
                            outputs: IndexMap::new(),
                            reused: false,
                        });
                        JobOutcome {
                            result: Status::Failure,
                            continue_on_error: false,
                            outputs: IndexMap::new(),
                            duration: Duration::ZERO,
                        }
                    }
                }
            };
            let record = JobRecord {
                key: inst.key.to_string(),
                job_id: inst.job_id.clone(),
                workflow: wf_path,
                name: inst.name.clone(),
                result: outcome.result,
                continue_on_error: outcome.continue_on_error,
                outputs: outcome.outputs.clone(),
                duration_ms: crate::events::millis(outcome.duration),
            };
            let _ = tx.send(Done {
                node: n,
                record,
                outcome,
            });
        });
    }
    false
}
