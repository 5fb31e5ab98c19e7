//! One leg of a job: waiting for its slots, running the job (or the called workflow, or
//! nothing in a plan-only run) and reporting to the graph.

use std::sync::Arc;

use gantry_expr::Value;
use indexmap::IndexMap;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Done, Sched, finish_record};
use crate::events::{RunEvent, Status, Text};
use crate::expr_scope::Ctx;
use crate::github_contexts::StrategyFacts;
use crate::job::{JobInstance, JobOutcome, eval_bool, runner_log, secrets_value};
use crate::reusable::{self, CallLeg};
use crate::run::{JobRecord, RunShared, Scope};

pub(super) enum LegWork {
    Job(JobInstance),
    Call(CallLeg),
}

pub(super) struct Leg {
    pub node: usize,
    pub key: Text,
    pub name: String,
    pub needs: Vec<String>,
    /// Concurrency group and `cancel-in-progress`.
    pub group: Option<(String, bool)>,
    /// `strategy.fail-fast`: a failure of this leg cancels its siblings.
    pub fail_fast: bool,
    pub work: LegWork,
}

/// What every leg of one node shares when the node is dispatched.
pub(super) struct NodeLaunch<'a> {
    pub node: usize,
    pub scope: &'a Arc<Scope>,
    pub job_id: &'a str,
    /// The job-level context (`github`, `inputs`, `vars`, `needs`).
    pub ctx: &'a Ctx,
    pub needs: &'a Value,
    pub needs_ids: &'a [String],
    pub fail_fast: bool,
    pub max_parallel: usize,
    pub total: usize,
}

impl super::Graph<'_> {
    /// Leg `idx` of a node: its unique key, `strategy` and `matrix`, its concurrency group
    /// (evaluated with the leg's matrix), and the work: a reusable-workflow call, or a job
    /// (announced as queued now).
    pub(super) fn leg(
        &mut self,
        l: &NodeLaunch<'_>,
        idx: usize,
        values: Option<serde_json::Map<String, serde_json::Value>>,
        name: String,
    ) -> Leg {
        let shared = self.shared;
        let scope = l.scope;
        let job_id = l.job_id;
        let job = &scope.workflow.jobs[job_id];
        let base_key = if l.total > 1 {
            format!("{}{job_id}-{}", scope.key_prefix, idx + 1)
        } else {
            format!("{}{job_id}", scope.key_prefix)
        };
        let key = self.sched.unique_key(&base_key);
        let strategy = StrategyFacts {
            fail_fast: l.fail_fast,
            job_index: idx,
            job_total: l.total,
            max_parallel: l.max_parallel,
        };
        let mut leg_ctx = l.ctx.clone();
        leg_ctx.set("strategy", strategy.value());
        leg_ctx.set(
            "matrix",
            values
                .as_ref()
                .map(|m| Value::from_json(&serde_json::Value::Object(m.clone())))
                .unwrap_or(Value::Null),
        );
        let group = job.concurrency.as_ref().and_then(|c| {
            let mut c2 = leg_ctx.clone();
            c2.set("secrets", secrets_value(&IndexMap::new()));
            let g = c2.eval_string(&c.value.group.value).ok()?;
            let cip = eval_bool(&c.value.cancel_in_progress, &c2).unwrap_or(false);
            (!g.is_empty()).then_some((g, cip))
        });
        let needs_ids = l.needs_ids.to_vec();
        let work = if job.uses.is_some() {
            LegWork::Call(CallLeg {
                scope: scope.clone(),
                job_id: job_id.to_string(),
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
                workflow: shared.cfg.workflows[scope.top].rel_path.clone(),
                needs: needs_ids.clone(),
            });
            LegWork::Job(JobInstance {
                key: key.clone(),
                scope: scope.clone(),
                job_id: job_id.to_string(),
                name: name.clone(),
                matrix: values,
                strategy,
                needs: l.needs.clone(),
            })
        };
        Leg {
            node: l.node,
            key,
            name,
            needs: needs_ids,
            group,
            fail_fast: l.fail_fast,
            work,
        }
    }
}

/// Runs one leg: waits for `max-parallel`, the concurrency group and (for a normal job) a
/// `--jobs` slot, then runs the job or the called workflow and reports to the graph.
pub(super) async fn run_leg(
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
        LegWork::Call(call) if shared.cfg.plan_only => {
            shared.bus.emit(RunEvent::JobQueued {
                job: leg.key.clone(),
                job_id: format!("{}{}", call.scope.id_prefix, call.job_id),
                name: leg.name.clone(),
                workflow: shared.cfg.workflows[call.scope.top].rel_path.clone(),
                needs: leg.needs.clone(),
            });
            let rec = plan_only_job(&shared, &leg.key, &leg.name);
            let rec = JobRecord {
                job_id: format!("{}{}", call.scope.id_prefix, call.job_id),
                workflow: shared.cfg.workflows[call.scope.top].rel_path.clone(),
                ..rec
            };
            (vec![rec], success_outcome())
        }
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
            let outcome = if shared.cfg.plan_only && !cancel.is_cancelled() {
                plan_only_job(&shared, &inst.key, &inst.name);
                success_outcome()
            } else if cancel.is_cancelled() {
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
                super::admission::run_job(&shared, &sched.executor, &inst, cancel).await
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
    // Fail-fast before this leg's slots are released: a queued sibling that gets the slot
    // next must already see the cancellation and never start its steps.
    if leg.fail_fast && outcome.result == Status::Failure && !outcome.continue_on_error {
        node_cancel.cancel();
    }
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
        duration: std::time::Duration::ZERO,
    }
}

fn success_outcome() -> JobOutcome {
    JobOutcome {
        result: Status::Success,
        ..cancelled_outcome()
    }
}

/// A plan-only run (`RunConfig::plan_only`): the job starts and succeeds at once, no step
/// runs. Its events show the order the scheduler starts jobs in.
fn plan_only_job(shared: &RunShared, key: &Text, name: &str) -> JobRecord {
    shared.bus.emit(RunEvent::JobStarted {
        job: key.clone(),
        name: name.to_string(),
        backend: "plan".into(),
    });
    shared.bus.emit(RunEvent::JobFinished {
        job: key.clone(),
        name: name.to_string(),
        result: Status::Success,
        duration_ms: 0,
        outputs: IndexMap::new(),
        reused: false,
        continue_on_error: false,
    });
    JobRecord {
        key: key.to_string(),
        job_id: String::new(),
        workflow: String::new(),
        name: name.to_string(),
        result: Status::Success,
        continue_on_error: false,
        outputs: IndexMap::new(),
        duration_ms: 0,
    }
}
