//! The scheduler: executes the [`gantry_plan::Plan`] of each workflow. A job starts the
//! moment all of its `needs` have finished (not layer by layer); the plan gives the `-j`
//! closure, the needs, the ancestors and the legs of matrices known up front; deferred
//! nodes (matrices that read `needs`, or any strategy with expressions) are expanded with
//! [`gantry_plan::strategy::expand_job`] when the job becomes ready. Legs run under
//! `--jobs`, `max-parallel` and concurrency groups, sibling legs are cancelled on
//! fail-fast, and leg results are aggregated for dependents (§6.1, §6.2, §6.5). A
//! reusable-workflow caller (`jobs.<id>.uses`) runs the called workflow's jobs as a nested
//! graph ([`crate::reusable`]).

mod admission;
mod leg;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use gantry_expr::{Object, Value};
use gantry_plan::{MatrixFilter, NodeKind, Plan, PlanOptions};
use indexmap::IndexMap;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::concurrency::Groups;
use crate::events::{RunEvent, Status, Text};
use crate::expr_scope::{Ctx, StatusMode};
use crate::github_contexts as context;
use crate::job::{JobOutcome, runner_log};
use crate::run::{JobRecord, RunShared, Scope};

use leg::{NodeLaunch, run_leg};

struct Node {
    scope: Arc<Scope>,
    job_id: String,
    /// The plan of the node's workflow.
    plan: Arc<Plan>,
    needs: Vec<usize>,
    /// Every node transitively needed (the plan's ancestors, §3.9).
    ancestors: Vec<usize>,
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
    /// Runs admitted jobs (the local executor unless the configuration wraps it).
    pub executor: Arc<dyn crate::executor::JobExecutor>,
    used_keys: std::sync::Mutex<HashSet<String>>,
}

impl Sched {
    fn new(run: &Arc<RunShared>) -> Self {
        let (max_jobs, shared) = (run.cfg.max_jobs, run.cfg.shared.as_ref());
        Sched {
            executor: crate::executor::for_run(run),
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
    let sched = Arc::new(Sched::new(&shared));
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

/// The end of a run: each backend the run used removes what its jobs could not (see
/// [`crate::backend::Backend::finish_run`]).
async fn remove_run_leftovers(shared: &RunShared) {
    let cancelled = shared.cancel.is_cancelled();
    for backend in shared.backends.connected() {
        backend.finish_run(cancelled).await;
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
        let (mut nodes, mut g_records) = plan_nodes(&shared, &sched, &scopes, select, &cancel);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut g = Graph {
            shared: &shared,
            sched: &sched,
            done_tx,
            records: std::mem::take(&mut g_records),
        };
        let mut remaining = nodes.len();
        let mut ready: Vec<usize> = (0..nodes.len())
            .rev()
            .filter(|&n| nodes[n].waiting == 0)
            .collect();

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
            .map(|n| {
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

/// The `--matrix` filters of the run.
fn matrix_filters(shared: &RunShared) -> Vec<MatrixFilter> {
    shared
        .cfg
        .matrix_filters
        .iter()
        .map(|(key, value)| MatrixFilter {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// The plan of each scope's workflow (`-j` applied at top level), as the graph's nodes:
/// one per planned job, wired by the plan's needs and ancestors. A workflow that cannot be
/// planned (unknown needs, a cycle: the session refuses those before a run, a called
/// workflow can still have them) fails each of its jobs with the plan's error.
fn plan_nodes(
    shared: &Arc<RunShared>,
    sched: &Sched,
    scopes: &[Arc<Scope>],
    select: bool,
    cancel: &CancellationToken,
) -> (Vec<Node>, Vec<JobRecord>) {
    let only = &shared.cfg.only_jobs;
    let mut nodes: Vec<Node> = Vec::new();
    let mut records = Vec::new();
    for scope in scopes {
        let wf = &scope.workflow;
        let only_jobs: Vec<String> = if select {
            only.iter()
                .filter(|j| wf.jobs.contains_key(*j))
                .cloned()
                .collect()
        } else {
            vec![]
        };
        if select && !only.is_empty() && only_jobs.is_empty() {
            continue;
        }
        let opts = PlanOptions {
            only_jobs,
            matrix_filters: matrix_filters(shared),
            ctx: None,
        };
        let plan = match gantry_plan::plan(wf, &opts) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                for (id, job) in &wf.jobs {
                    let key = sched.unique_key(&format!("{}{id}", scope.key_prefix));
                    records.push(finish_record(
                        shared,
                        scope,
                        &key,
                        id,
                        &format!("{}{}", scope.name_prefix, job.display_name()),
                        &[],
                        false,
                        Status::Failure,
                        IndexMap::new(),
                        false,
                        Some(format!("Error: {e}")),
                    ));
                }
                continue;
            }
        };
        let base = nodes.len();
        let index: HashMap<&str, usize> = plan
            .jobs
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), base + i))
            .collect();
        for (id, jp) in &plan.jobs {
            nodes.push(Node {
                scope: scope.clone(),
                job_id: id.clone(),
                plan: plan.clone(),
                needs: jp.needs.iter().map(|n| index[n.as_str()]).collect(),
                ancestors: jp.ancestors.iter().map(|n| index[n.as_str()]).collect(),
                dependents: vec![],
                waiting: jp.needs.len(),
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
    for n in 0..nodes.len() {
        for m in nodes[n].needs.clone() {
            nodes[m].dependents.push(n);
        }
    }
    (nodes, records)
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
    nodes[n]
        .ancestors
        .iter()
        .map(|&m| {
            (
                nodes[m].job_id.clone(),
                nodes[m].result.unwrap_or(Status::Skipped),
            )
        })
        .collect()
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

        let needs = needs_value(nodes, n);
        let mut ctx = job_level_context(shared, &scope, &job_id, needs.clone());
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

        // Strategy: the plan's legs, or (a deferred node) expanded now.
        let Some(strategy) = self.legs(nodes, n, &ctx, &base_name) else {
            // Every leg filtered out by --matrix.
            finish_now(self, nodes, Status::Skipped, IndexMap::new(), false, None);
            return true;
        };
        let (legs, fail_fast, max_parallel) = match strategy {
            Ok(s) => s,
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
        };
        let total = legs.len();
        nodes[n].legs_total = total;
        nodes[n].fail_fast = fail_fast;
        let leg_sem = Arc::new(Semaphore::new(max_parallel.unwrap_or(total).max(1)));
        let launch = NodeLaunch {
            node: n,
            scope: &scope,
            job_id: &job_id,
            ctx: &ctx,
            needs: &needs,
            needs_ids: &needs_ids,
            fail_fast,
            max_parallel: max_parallel.unwrap_or(total),
            total,
        };
        for (idx, (values, name)) in legs.into_iter().enumerate() {
            let leg = self.leg(&launch, idx, values, shown(&name));
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

/// A job's context before its legs (GHA-SEMANTICS §4.2): `github` without paths, the
/// scope's `inputs`, the run's `vars` and `needs`.
fn job_level_context(shared: &RunShared, scope: &Scope, job_id: &str, needs: Value) -> Ctx {
    let entry = &shared.cfg.workflows[scope.top];
    let mut ctx = Ctx::new();
    let f = context::JobFacts {
        run: &shared.facts,
        workflow_name: entry.workflow.display_name(),
        workflow_path: &entry.rel_path,
        job_id,
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
    ctx.set("needs", needs);
    ctx
}

/// The legs of a node (matrix values, display name), its fail-fast and max-parallel.
type Strategy = (
    Vec<(Option<serde_json::Map<String, serde_json::Value>>, String)>,
    bool,
    Option<usize>,
);

impl Graph<'_> {
    /// The legs of node `n` from its plan; a deferred node's strategy is evaluated with the
    /// job's context now. `None` when `--matrix` left no leg.
    fn legs(
        &self,
        nodes: &[Node],
        n: usize,
        ctx: &Ctx,
        base_name: &str,
    ) -> Option<Result<Strategy, String>> {
        let plan = &nodes[n].plan;
        let jp = &plan.jobs[&nodes[n].job_id];
        let job = &nodes[n].scope.workflow.jobs[&nodes[n].job_id];
        // A name with expressions is evaluated per leg, without the matrix values appended.
        let named = |values: Option<&serde_json::Map<String, serde_json::Value>>, plain: String| {
            if !base_name.contains("${{") {
                return plain;
            }
            let mut c2 = ctx.clone();
            if let Some(v) = values {
                c2.set(
                    "matrix",
                    Value::from_json(&serde_json::Value::Object(v.clone())),
                );
            }
            c2.eval_string(base_name)
                .unwrap_or_else(|_| base_name.to_string())
        };
        let legs_of = |legs: Vec<(IndexMap<String, serde_json::Value>, String)>| {
            legs.into_iter()
                .map(|(values, plain)| {
                    let values: serde_json::Map<_, _> = values.into_iter().collect();
                    let name = named(Some(&values), plain);
                    (Some(values), name)
                })
                .collect::<Vec<_>>()
        };
        let first = plan.node(jp.nodes[0]);
        let (legs, fail_fast, max_parallel) = match &first.kind {
            NodeKind::NoLegs => return None,
            NodeKind::Job => (
                vec![(None, named(None, base_name.to_string()))],
                jp.fail_fast,
                jp.max_parallel,
            ),
            NodeKind::Leg { .. } => {
                let legs = jp
                    .nodes
                    .iter()
                    .map(|&i| {
                        let node = plan.node(i);
                        let values = match &node.kind {
                            NodeKind::Leg { matrix, .. } => matrix.clone(),
                            _ => IndexMap::new(),
                        };
                        (values, node.name.clone())
                    })
                    .collect();
                (legs_of(legs), jp.fail_fast, jp.max_parallel)
            }
            NodeKind::Deferred => {
                let filters = matrix_filters(self.shared);
                let exp = match gantry_plan::expand_job(job, ctx, &filters) {
                    Ok(e) => e,
                    Err(e) => return Some(Err(e.to_string())),
                };
                let legs = match exp.legs {
                    None => vec![(None, named(None, base_name.to_string()))],
                    Some(l) if l.is_empty() => return None,
                    Some(l) => legs_of(
                        l.into_iter()
                            .map(|leg| {
                                let plain = gantry_plan::strategy::leg_display_name(job, &leg);
                                (leg.values, plain)
                            })
                            .collect(),
                    ),
                };
                (legs, exp.fail_fast, exp.max_parallel)
            }
        };
        Some(Ok((legs, fail_fast, max_parallel)))
    }
}
