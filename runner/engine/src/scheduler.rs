//! The scheduler: starts each job the moment all of its `needs` have finished (not layer
//! by layer), expands matrices at that moment (they may use `needs.*.outputs`), runs legs
//! under `--jobs`, `max-parallel` and concurrency groups, cancels sibling legs on fail-fast,
//! and aggregates leg results for dependents (§6.1, §6.2, §6.5). A reusable-workflow caller
//! (`jobs.<id>.uses`) runs the called workflow's jobs as a nested graph ([`crate::reusable`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use gantry_expr::{Object, Value};
use indexmap::IndexMap;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::concurrency::Groups;
use crate::events::{RunEvent, Status, Text};
use crate::expr_scope::{Ctx, StatusMode};
use crate::github_contexts::{self as context, StrategyFacts};
use crate::job::{
    JobInstance, JobOutcome, eval_bool, eval_number, run_job, runner_log, secrets_value,
};
use crate::matrix;
use crate::reusable::{self, CallLeg};
use crate::run::{JobRecord, RunShared, Scope};

struct Node {
    /// Index of the node's scope in the graph.
    si: usize,
    scope: Arc<Scope>,
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

/// State shared by every graph of a run (top level and called workflows).
pub(crate) struct Sched {
    /// `--jobs N`: job instances running at once (callers of reusable workflows take none).
    pub global: Arc<Semaphore>,
    pub groups: Arc<Groups>,
    used_keys: std::sync::Mutex<HashSet<String>>,
}

impl Sched {
    fn new(max_jobs: usize, shared: Option<&crate::run::SharedLimits>) -> Self {
        Sched {
            global: shared.map_or_else(
                || Arc::new(Semaphore::new(max_jobs.max(1))),
                |s| s.job_slots.clone(),
            ),
            groups: shared.map_or_else(Default::default, |s| s.groups.clone()),
            used_keys: Default::default(),
        }
    }

    /// A job key unique in the run, also after [`crate::workspace::sanitize`] (keys name
    /// job directories): `base`, else `base-2`, `base-3`...
    pub fn unique_key(&self, base: &str) -> Text {
        let mut used = self.used_keys.lock().unwrap();
        if used.insert(crate::workspace::sanitize(base)) {
            return Text::from(base);
        }
        for i in 2.. {
            let k = format!("{base}-{i}");
            if used.insert(crate::workspace::sanitize(&k)) {
                return Text::from(k);
            }
        }
        unreachable!()
    }
}

/// The end of one graph: a top-level run or the jobs of one called workflow.
pub(crate) struct GraphOutcome {
    pub records: Vec<JobRecord>,
    /// Per job id: the result as `needs` sees it, and the outputs.
    pub jobs: IndexMap<String, (Status, IndexMap<String, String>)>,
}

struct Done {
    node: usize,
    records: Vec<JobRecord>,
    outcome: JobOutcome,
}

/// Runs every selected job of every workflow; returns one record per job instance.
pub async fn run_all(shared: Arc<RunShared>) -> Vec<JobRecord> {
    let sched = Arc::new(Sched::new(shared.cfg.max_jobs, shared.cfg.shared.as_ref()));
    let scopes = (0..shared.cfg.workflows.len())
        .map(|i| Arc::new(Scope::top(&shared.cfg, i, shared.inputs[i].clone())))
        .collect();
    let cancel = shared.cancel.clone();
    let records = run_graph(shared.clone(), sched, scopes, true, cancel)
        .await
        .records;
    remove_run_leftovers(&shared).await;
    records
}

/// The end of a run: every job removed what it created by id, but an abandoned start (a
/// job cancelled while its services were starting) cleans up in the background and a
/// create in flight may land after it. Remove whatever still carries this run's key
/// before the run counts as finished; after a cancellation look twice, since the daemon
/// may still be completing such a create.
async fn remove_run_leftovers(shared: &RunShared) {
    let Some(Ok(docker)) = shared.docker.get() else {
        return;
    };
    let passes = if shared.cancel.is_cancelled() { 2 } else { 1 };
    for pass in 0..passes {
        if pass > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Err(e) = docker.cleanup_run().await {
            tracing::warn!("removing the run's docker resources: {e}");
        }
    }
}

/// Runs the jobs of `scopes` as one dependency graph. `select` applies `-j` (top level
/// only); `cancel` cancels every job of the graph.
pub(crate) fn run_graph(
    shared: Arc<RunShared>,
    sched: Arc<Sched>,
    scopes: Vec<Arc<Scope>>,
    select: bool,
    cancel: CancellationToken,
) -> BoxFuture<'static, GraphOutcome> {
    Box::pin(async move {
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<(usize, String), usize> = HashMap::new();
        for (si, scope) in scopes.iter().enumerate() {
            for id in scope.workflow.jobs.keys() {
                index.insert((si, id.clone()), nodes.len());
                nodes.push(Node {
                    si,
                    scope: scope.clone(),
                    job_id: id.clone(),
                    needs: vec![],
                    dependents: vec![],
                    waiting: 0,
                    result: None,
                    outputs: IndexMap::new(),
                    legs_total: 0,
                    legs_done: 0,
                    leg_results: vec![],
                    cancel: cancel.child_token(),
                    fail_fast: true,
                });
            }
        }
        for node in nodes.iter_mut() {
            let job = &node.scope.workflow.jobs[&node.job_id];
            node.needs = job
                .needs
                .iter()
                .filter_map(|need| index.get(&(node.si, need.value.clone())).copied())
                .collect();
        }
        // -j: the selected jobs and everything they need.
        let only = &shared.cfg.only_jobs;
        let selected: HashSet<usize> = if !select || only.is_empty() {
            (0..nodes.len()).collect()
        } else {
            let mut sel = HashSet::new();
            let mut stack: Vec<usize> = (0..nodes.len())
                .filter(|&n| only.iter().any(|j| j == &nodes[n].job_id))
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

        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut g = Graph {
            shared: &shared,
            sched: &sched,
            done_tx,
            records: Vec::new(),
        };
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
                if g.dispatch(&mut nodes, n) {
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
            g.records.extend(done.records);
            if nodes[n].legs_done == nodes[n].legs_total {
                nodes[n].result = Some(aggregate(&nodes[n].leg_results));
                remaining -= 1;
                for d in nodes[n].dependents.clone() {
                    nodes[d].waiting -= 1;
                    if nodes[d].waiting == 0 {
                        ready.push(d);
                    }
                }
            }
        }
        let jobs = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| selected.contains(i))
            .map(|(_, n)| {
                (
                    n.job_id.clone(),
                    (n.result.unwrap_or(Status::Skipped), n.outputs.clone()),
                )
            })
            .collect();
        GraphOutcome {
            records: g.records,
            jobs,
        }
    })
}

/// The result dependents see for a set of (result, continue-on-error) pairs: any failure
/// not covered by continue-on-error, else any cancellation, else success (§6.2).
pub(crate) fn aggregate(legs: &[(Status, bool)]) -> Status {
    if legs.iter().any(|(s, c)| *s == Status::Failure && !c) {
        Status::Failure
    } else if legs.iter().any(|(s, _)| *s == Status::Cancelled) {
        Status::Cancelled
    } else {
        Status::Success
    }
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

/// Emits `JobQueued` (unless `queued` was already sent) and `JobFinished` for a job that
/// ends without running, logs `msg` (masked) and returns its record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_record(
    shared: &RunShared,
    scope: &Scope,
    key: &Text,
    job_id: &str,
    name: &str,
    needs: &[String],
    queued: bool,
    result: Status,
    outputs: IndexMap<String, String>,
    reused: bool,
    msg: Option<String>,
) -> JobRecord {
    let workflow = shared.cfg.workflows[scope.top].rel_path.clone();
    let job_id = format!("{}{job_id}", scope.id_prefix);
    if !queued {
        shared.bus.emit(RunEvent::JobQueued {
            job: key.clone(),
            job_id: job_id.clone(),
            name: name.to_string(),
            workflow: workflow.clone(),
            needs: needs.to_vec(),
        });
    }
    if let Some(m) = msg {
        runner_log(
            shared,
            key,
            None,
            shared.secret_masker.mask(&m).into_owned(),
        );
    }
    shared.bus.emit(RunEvent::JobFinished {
        job: key.clone(),
        name: name.to_string(),
        result,
        duration_ms: 0,
        outputs: outputs.clone(),
        reused,
        continue_on_error: false,
    });
    JobRecord {
        key: key.to_string(),
        job_id,
        workflow,
        name: name.to_string(),
        result,
        continue_on_error: false,
        outputs,
        duration_ms: 0,
    }
}

struct Graph<'a> {
    shared: &'a Arc<RunShared>,
    sched: &'a Arc<Sched>,
    done_tx: mpsc::UnboundedSender<Done>,
    records: Vec<JobRecord>,
}

impl Graph<'_> {
    /// Starts node `n`. Returns true when it completed immediately (skipped, reused, invalid).
    fn dispatch(&mut self, nodes: &mut [Node], n: usize) -> bool {
        let shared = self.shared;
        let scope = nodes[n].scope.clone();
        let entry = &shared.cfg.workflows[scope.top];
        let job_id = nodes[n].job_id.clone();
        let job = &scope.workflow.jobs[&job_id];
        let base_name = job.display_name().to_string();
        let needs_ids: Vec<String> = nodes[n]
            .needs
            .iter()
            .map(|&m| format!("{}{}", scope.id_prefix, nodes[m].job_id))
            .collect();
        let shown = |name: &str| format!("{}{name}", scope.name_prefix);

        let finish_now = |g: &mut Self,
                          nodes: &mut [Node],
                          result: Status,
                          outputs: IndexMap<String, String>,
                          reused: bool,
                          msg: Option<String>| {
            let key = g.sched.unique_key(&format!("{}{job_id}", scope.key_prefix));
            let rec = finish_record(
                shared,
                &scope,
                &key,
                &job_id,
                &shown(&base_name),
                &needs_ids,
                false,
                result,
                outputs.clone(),
                reused,
                msg,
            );
            g.records.push(rec);
            nodes[n].result = Some(result);
            nodes[n].outputs = outputs;
        };

        // Reused from an earlier run (a caller is never reused as a whole: its callee's
        // jobs are, one by one).
        if job.uses.is_none()
            && let Some(r) = shared.cfg.reuse.get(&(
                entry.rel_path.clone(),
                format!("{}{job_id}", scope.id_prefix),
            ))
        {
            finish_now(self, nodes, r.result, r.outputs.clone(), true, None);
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
        ctx.set("github", context::github_value(&f));
        ctx.set("inputs", scope.inputs.clone());
        ctx.set("vars", context::string_map_value(shared.cfg.vars.iter()));
        let needs = needs_value(nodes, n);
        ctx.set("needs", needs.clone());
        let run_cancelled = shared.cancel.is_cancelled();
        ctx.status = StatusMode::Job {
            ancestors: ancestors(nodes, n),
            direct: nodes[n]
                .needs
                .iter()
                .map(|&m| nodes[m].job_id.clone())
                .collect(),
            cancelled: run_cancelled,
        };
        match ctx.eval_if(job.if_cond.as_ref().map(|c| c.value.as_str())) {
            Ok(true) => {}
            Ok(false) => {
                let st = if run_cancelled {
                    Status::Cancelled
                } else {
                    Status::Skipped
                };
                finish_now(self, nodes, st, IndexMap::new(), false, None);
                return true;
            }
            Err(e) => {
                finish_now(
                    self,
                    nodes,
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
        let mut legs: Vec<(Option<serde_json::Map<String, serde_json::Value>>, String)> =
            Vec::new();
        let mut fail_fast = true;
        let mut max_parallel = None;
        if let Some(s) = &job.strategy {
            if let Some(m) = &s.matrix {
                match expand_matrix(shared, &m.value, &ctx, &base_name) {
                    Ok(l) => legs = l,
                    Err(e) => {
                        finish_now(
                            self,
                            nodes,
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
                finish_now(self, nodes, Status::Skipped, IndexMap::new(), false, None);
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
                format!("{}{job_id}-{}", scope.key_prefix, idx + 1)
            } else {
                format!("{}{job_id}", scope.key_prefix)
            };
            let key = self.sched.unique_key(&base_key);
            let name = shown(&name);
            let strategy = StrategyFacts {
                fail_fast,
                job_index: idx,
                job_total: total,
                max_parallel: max_parallel.unwrap_or(total),
            };
            let mut leg_ctx = ctx.clone();
            leg_ctx.set("strategy", strategy.value());
            leg_ctx.set(
                "matrix",
                values
                    .as_ref()
                    .map(|m| Value::from_json(&serde_json::Value::Object(m.clone())))
                    .unwrap_or(Value::Null),
            );
            // Concurrency group (within this run): evaluated with the leg's matrix.
            let group = job.concurrency.as_ref().and_then(|c| {
                let mut c2 = leg_ctx.clone();
                c2.set("secrets", secrets_value(&IndexMap::new()));
                let g = c2.eval_string(&c.value.group.value).ok()?;
                let cip = eval_bool(&c.value.cancel_in_progress, &c2).unwrap_or(false);
                (!g.is_empty()).then_some((g, cip))
            });
            let work = if job.uses.is_some() {
                LegWork::Call(CallLeg {
                    scope: scope.clone(),
                    job_id: job_id.clone(),
                    key: key.clone(),
                    name: name.clone(),
                    ctx: leg_ctx,
                    needs: needs_ids.clone(),
                })
            } else {
                shared.bus.emit(RunEvent::JobQueued {
                    job: key.clone(),
                    job_id: format!("{}{job_id}", scope.id_prefix),
                    name: name.clone(),
                    workflow: entry.rel_path.clone(),
                    needs: needs_ids.clone(),
                });
                LegWork::Job(JobInstance {
                    key: key.clone(),
                    scope: scope.clone(),
                    job_id: job_id.clone(),
                    name: name.clone(),
                    matrix: values,
                    strategy,
                    needs: needs.clone(),
                })
            };
            let leg = Leg {
                node: n,
                key,
                name,
                needs: needs_ids.clone(),
                group,
                work,
            };
            // Boxed first: a job's future is large (every step's state is inline), and
            // `spawn` moves it twice more; a box moves as a pointer.
            tokio::spawn(Box::pin(run_leg(
                shared.clone(),
                self.sched.clone(),
                leg,
                leg_sem.clone(),
                nodes[n].cancel.clone(),
                self.done_tx.clone(),
            )));
        }
        false
    }
}

/// Expands a matrix at dispatch time, applies `--matrix` filters and names the legs.
#[allow(clippy::type_complexity)]
fn expand_matrix(
    shared: &RunShared,
    m: &gantry_workflow::Node,
    ctx: &Ctx,
    base_name: &str,
) -> Result<Vec<(Option<serde_json::Map<String, serde_json::Value>>, String)>, String> {
    let j = matrix::eval_node(m, ctx)?;
    // A matrix given as one expression may evaluate to a JSON string.
    let j = match j {
        serde_json::Value::String(t) => serde_json::from_str(&t).map_err(|e| e.to_string())?,
        other => other,
    };
    let ls = gantry_plan::matrix::expand(&j)?;
    let filters: Vec<gantry_plan::matrix::MatrixFilter> = shared
        .cfg
        .matrix_filters
        .iter()
        .map(|(key, value)| gantry_plan::matrix::MatrixFilter {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let mut legs = Vec::new();
    for l in gantry_plan::matrix::filter_legs(ls, &filters) {
        let values: serde_json::Map<String, serde_json::Value> =
            l.values.clone().into_iter().collect();
        let name = if base_name.contains("${{") {
            // A name with expressions is evaluated per leg, without the matrix values
            // appended.
            let mut c2 = ctx.clone();
            c2.set(
                "matrix",
                Value::from_json(&serde_json::Value::Object(values.clone())),
            );
            c2.eval_string(base_name)
                .unwrap_or_else(|_| base_name.to_string())
        } else {
            l.display_name(base_name)
        };
        legs.push((Some(values), name));
    }
    Ok(legs)
}

enum LegWork {
    Job(JobInstance),
    Call(CallLeg),
}

struct Leg {
    node: usize,
    key: Text,
    name: String,
    needs: Vec<String>,
    /// Concurrency group and `cancel-in-progress`.
    group: Option<(String, bool)>,
    work: LegWork,
}

/// Runs one leg: waits for `max-parallel`, the concurrency group and (for a normal job) a
/// `--jobs` slot, then runs the job or the called workflow and reports to the graph.
async fn run_leg(
    shared: Arc<RunShared>,
    sched: Arc<Sched>,
    leg: Leg,
    leg_sem: Arc<Semaphore>,
    node_cancel: CancellationToken,
    tx: mpsc::UnboundedSender<Done>,
) {
    let _leg = leg_sem.acquire_owned().await;
    // The leg's own token: fail-fast cancels the node's, a concurrency group this one.
    let cancel = node_cancel.child_token();
    let _slot = match &leg.group {
        Some((g, cip)) => {
            let notify = |key: &Text, line: String| runner_log(&shared, key, None, line);
            sched
                .groups
                .enter(&notify, g, *cip, &leg.key, &cancel)
                .await
        }
        None => None,
    };
    let (records, outcome) = match leg.work {
        LegWork::Call(call) => {
            if cancel.is_cancelled() {
                let scope = call.scope.clone();
                let rec = finish_record(
                    &shared,
                    &scope,
                    &leg.key,
                    &call.job_id,
                    &leg.name,
                    &leg.needs,
                    false,
                    Status::Cancelled,
                    IndexMap::new(),
                    false,
                    None,
                );
                (vec![rec], cancelled_outcome())
            } else {
                reusable::run_call(shared.clone(), sched.clone(), call, cancel).await
            }
        }
        LegWork::Job(inst) => {
            let _permit = sched.global.clone().acquire_owned().await;
            let outcome = if cancel.is_cancelled() {
                shared.bus.emit(RunEvent::JobFinished {
                    job: inst.key.clone(),
                    name: inst.name.clone(),
                    result: Status::Cancelled,
                    duration_ms: 0,
                    outputs: IndexMap::new(),
                    reused: false,
                    continue_on_error: false,
                });
                cancelled_outcome()
            } else {
                // A panic in a job must not take the run down: report it as a failure. Caught
                // here rather than through a task of its own (one spawn and wake-up less per job).
                let job =
                    std::panic::AssertUnwindSafe(run_job(shared.clone(), inst.clone(), cancel));
                match job.catch_unwind().await {
                    Ok(o) => o,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a job panicked".into());
                        runner_log(
                            &shared,
                            &inst.key,
                            None,
                            format!("Error: internal error: {what}"),
                        );
                        shared.bus.emit(RunEvent::JobFinished {
                            job: inst.key.clone(),
                            name: inst.name.clone(),
                            result: Status::Failure,
                            duration_ms: 0,
                            outputs: IndexMap::new(),
                            reused: false,
                            continue_on_error: false,
                        });
                        JobOutcome {
                            result: Status::Failure,
                            ..cancelled_outcome()
                        }
                    }
                }
            };
            let record = JobRecord {
                key: inst.key.to_string(),
                job_id: format!("{}{}", inst.scope.id_prefix, inst.job_id),
                workflow: shared.cfg.workflows[inst.scope.top].rel_path.clone(),
                name: inst.name.clone(),
                result: outcome.result,
                continue_on_error: outcome.continue_on_error,
                outputs: outcome.outputs.clone(),
                duration_ms: crate::events::millis(outcome.duration),
            };
            (vec![record], outcome)
        }
    };
    let _ = tx.send(Done {
        node: leg.node,
        records,
        outcome,
    });
}

pub(crate) fn cancelled_outcome() -> JobOutcome {
    JobOutcome {
        result: Status::Cancelled,
        continue_on_error: false,
        outputs: IndexMap::new(),
        duration: Duration::ZERO,
    }
}
