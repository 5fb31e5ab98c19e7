//! Background steps (`background: true`) and the `wait`, `wait-all` and `cancel` steps
//! that take them back (GitHub's workflow syntax; preview keys, GHA-SEMANTICS §1.5).
//!
//! A background step starts and the job goes on to its next step at once. It runs on a
//! copy of the job's state taken when it started, so its outputs, `GITHUB_ENV` and
//! `GITHUB_PATH` writes, and its `steps.<id>` entry reach later steps only once a `wait`
//! or `wait-all` that includes it has ended. Its failure fails that wait step (and so the
//! job, unless the wait step or the background step has `continue-on-error`). `cancel`
//! stops one (as a cancellation stops a step: SIGINT, SIGTERM, SIGKILL) and takes it back
//! without failing the job. An implicit `wait-all` runs before the post stages. At most
//! [`MAX_RUNNING`] steps run at once, background steps and `parallel:` members together
//! (one count, `StepRunner::slots`); more wait in order for a free slot.
//!
//! The steps are futures polled by the job's own task while the foreground step runs (no
//! task per step), so they borrow the job's runner like any step does.

use std::collections::VecDeque;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use gantry_workflow::{Step, StepControl};
use indexmap::IndexMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{JobState, StepRunner};
use crate::events::Status;
use crate::expr_scope::Ctx;

/// GitHub's limit on steps running at once in a job (background steps and `parallel:`
/// members together).
pub const MAX_RUNNING: usize = 10;

/// A job's slots for steps that run beside others: [`MAX_RUNNING`] of them.
pub fn step_slots() -> std::sync::Arc<Semaphore> {
    std::sync::Arc::new(Semaphore::new(MAX_RUNNING))
}

/// What the fork of a background step started from, to take back only what it changed.
struct Base {
    env: IndexMap<String, String>,
    path_len: usize,
    post_len: usize,
}

/// A background step that has ended, waiting for a `wait` to take it back.
struct Ended {
    index: usize,
    name: String,
    base: Base,
    state: JobState,
}

/// A background step not started yet (all [`MAX_RUNNING`] slots were taken).
struct Queued<'r> {
    index: usize,
    step: &'r Step,
    ctx: Ctx,
    state: JobState,
    base: Base,
}

/// The background steps of one job.
#[derive(Default)]
pub struct BackgroundSteps<'r> {
    running: FuturesUnordered<BoxFuture<'r, Ended>>,
    queued: VecDeque<Queued<'r>>,
    ended: Vec<Ended>,
    /// Step index, lower-case id and stop token of every background step started or queued
    /// and not yet taken back.
    live: Vec<(usize, Option<String>, CancellationToken)>,
    /// Forks get post-stage instance keys of their own (see `PostStack::fork`).
    forks: usize,
}

impl<'r> BackgroundSteps<'r> {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Polls the background steps while `work` (the foreground step) runs.
    async fn drive_while<F: std::future::Future>(
        &mut self,
        runner: &'r StepRunner<'_>,
        work: F,
    ) -> F::Output {
        tokio::pin!(work);
        loop {
            self.start_queued(runner);
            if self.running.is_empty() && self.queued.is_empty() {
                return work.await;
            }
            // A queued step also starts when a `parallel:` member of the foreground step
            // frees a slot.
            let queued = !self.queued.is_empty();
            let free_slot = runner.slots.clone().acquire_owned();
            tokio::select! {
                biased;
                out = &mut work => return out,
                Some(done) = self.running.next(), if !self.running.is_empty() => {
                    self.ended.push(done)
                }
                Ok(slot) = free_slot, if queued => {
                    if let Some(q) = self.queued.pop_front() {
                        self.launch(runner, q, slot);
                    }
                }
            }
        }
    }

    /// Runs background steps until each of `indices` has ended.
    async fn until_ended(&mut self, runner: &'r StepRunner<'_>, indices: &[usize]) {
        loop {
            self.start_queued(runner);
            let pending = indices.iter().any(|i| {
                self.live.iter().any(|(k, _, _)| k == i)
                    && !self.ended.iter().any(|e| e.index == *i)
            });
            if !pending {
                return;
            }
            match self.running.next().await {
                Some(done) => self.ended.push(done),
                // Nothing runs, so nothing can end (a queued step starts as soon as a slot
                // is free, above).
                None => return,
            }
        }
    }

    fn start_queued(&mut self, runner: &'r StepRunner<'_>) {
        while !self.queued.is_empty() {
            let Ok(slot) = runner.slots.clone().try_acquire_owned() else {
                return;
            };
            if let Some(q) = self.queued.pop_front() {
                self.launch(runner, q, slot);
            }
        }
    }

    /// Starts `q`; it holds `slot` until it ends.
    fn launch(&mut self, runner: &'r StepRunner<'_>, q: Queued<'r>, slot: OwnedSemaphorePermit) {
        let Queued {
            index,
            step,
            mut ctx,
            mut state,
            base,
        } = q;
        let name = runner.display_name(step, &ctx, &state.masker);
        self.running.push(Box::pin(async move {
            runner.run_step(index, step, &mut ctx, &mut state).await;
            drop(slot);
            Ended {
                index,
                name,
                base,
                state,
            }
        }));
    }

    /// Takes back the ended background steps at `indices` (in step order) into `state`;
    /// returns the ones that failed (their conclusion, so `continue-on-error` on the
    /// background step holds), by display name.
    fn take_back(&mut self, indices: &[usize], state: &mut JobState) -> Vec<(usize, String)> {
        let mut taken: Vec<Ended> = Vec::new();
        let mut k = 0;
        while k < self.ended.len() {
            if indices.contains(&self.ended[k].index) {
                taken.push(self.ended.remove(k));
            } else {
                k += 1;
            }
        }
        taken.sort_by_key(|e| e.index);
        self.live.retain(|(i, _, _)| !indices.contains(i));
        let mut failed = Vec::new();
        for e in taken {
            if e.state.last_conclusion == Status::Failure {
                failed.push((e.index, e.name.clone()));
            }
            merge(state, e.base, e.state);
        }
        failed
    }

    /// Everything still running or queued ended, then taken back (the implicit `wait-all`
    /// before post stages); returns the failed ones as [`Self::take_back`] does.
    pub async fn wait_all(
        &mut self,
        runner: &'r StepRunner<'_>,
        state: &mut JobState,
    ) -> Vec<(usize, String)> {
        let all: Vec<usize> = self.live.iter().map(|(i, _, _)| *i).collect();
        self.until_ended(runner, &all).await;
        self.take_back(&all, state)
    }
}

/// The changes a background step made to its copy of the job's state, applied to the job.
fn merge(state: &mut JobState, base: Base, fork: JobState) {
    for (k, v) in fork.env_ctx {
        if base.env.get(&k) != Some(&v) {
            state.env_ctx.insert(k, v);
        }
    }
    state
        .path_prepend
        .extend(fork.path_prepend.into_iter().skip(base.path_len));
    for (k, v) in fork.steps.iter() {
        if state.steps.get(k).is_none() {
            state.steps.insert(k.to_string(), v.clone());
        }
    }
    state.post.absorb(base.post_len, fork.post);
    state.resolve_failed.extend(fork.resolve_failed);
    if state.container_node.is_none() {
        state.container_node = fork.container_node;
    }
}

/// The name a `wait`, `wait-all` or `cancel` step shows when it has none.
pub(super) fn control_display_name(c: &StepControl) -> String {
    match c {
        StepControl::Wait(ids) => format!(
            "Wait for {}",
            ids.iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepControl::WaitAll => "Wait for all background steps".into(),
        StepControl::Cancel(id) => format!("Cancel {}", id.value),
    }
}

impl<'a> StepRunner<'a> {
    /// Runs workflow step `i` of the job: in the background, as a `wait`/`wait-all`/
    /// `cancel` step, or in the foreground while the background steps go on.
    pub async fn run_job_step<'r>(
        &'r self,
        i: usize,
        step: &'a Step,
        ctx: &mut Ctx,
        state: &mut JobState,
        bg: &mut BackgroundSteps<'r>,
    ) where
        'a: 'r,
    {
        if self.stop_now.is_cancelled() {
            return;
        }
        if step.background && step.control.is_none() && step.parallel.is_empty() {
            self.start_background(i, step, ctx, state, bg);
            return;
        }
        match &step.control {
            None => {
                bg.drive_while(self, self.run_step(i, step, ctx, state))
                    .await
            }
            Some(c) => self.run_control(i, step, c, ctx, state, bg).await,
        }
    }

    fn start_background<'r>(
        &'r self,
        i: usize,
        step: &'a Step,
        ctx: &Ctx,
        state: &JobState,
        bg: &mut BackgroundSteps<'r>,
    ) where
        'a: 'r,
    {
        bg.forks += 1;
        let stop = CancellationToken::new();
        let mut fork = state.clone();
        // Far from the instance keys `parallel:` members use (0, 1, …).
        fork.post = state.post.fork(1000 + bg.forks);
        fork.stop_step = Some(stop.clone());
        let base = Base {
            env: state.env_ctx.clone(),
            path_len: state.path_prepend.len(),
            post_len: state.post.len(),
        };
        let id = step.id.as_ref().map(|s| s.value.to_ascii_lowercase());
        bg.live.push((i, id, stop));
        bg.queued.push_back(Queued {
            index: i,
            step,
            ctx: ctx.clone(),
            state: fork,
            base,
        });
        bg.start_queued(self);
        if !bg.queued.is_empty() {
            self.log(
                i,
                &state.masker,
                &format!(
                    "{MAX_RUNNING} steps are running at once (background steps and parallel \
                     members): this one starts when one ends."
                ),
            );
        }
    }

    async fn run_control<'r>(
        &'r self,
        i: usize,
        step: &Step,
        control: &StepControl,
        ctx: &mut Ctx,
        state: &mut JobState,
        bg: &mut BackgroundSteps<'r>,
    ) {
        let started = Instant::now();
        let name = self.display_name(step, ctx, &state.masker);
        let id = step.id.as_ref().map(|s| s.value.clone());
        self.emit_started(state, i, &name);
        let coe = crate::job::eval_bool(&step.continue_on_error, ctx).unwrap_or(false);
        // The background steps this one names (validation made sure they are earlier
        // background steps; one already taken back is not waited for again).
        let named = |ids: &[&str]| -> Vec<usize> {
            bg.live
                .iter()
                .filter(|(_, id, _)| id.as_deref().is_some_and(|x| ids.contains(&x)))
                .map(|(i, _, _)| *i)
                .collect()
        };
        let outcome = match control {
            StepControl::Wait(ids) => {
                let ids: Vec<String> = ids.iter().map(|s| s.value.to_ascii_lowercase()).collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let targets = named(&ids);
                bg.until_ended(self, &targets).await;
                let failed = bg.take_back(&targets, state);
                self.report_failed(i, &failed, state)
            }
            StepControl::WaitAll => {
                let failed = bg.wait_all(self, state).await;
                self.report_failed(i, &failed, state)
            }
            StepControl::Cancel(target) => {
                let t = target.value.to_ascii_lowercase();
                let targets = named(&[t.as_str()]);
                for (k, _, stop) in &bg.live {
                    if targets.contains(k) {
                        stop.cancel();
                    }
                }
                // A queued one never starts (and shows as skipped).
                let before = bg.queued.len();
                bg.queued.retain(|q| !targets.contains(&q.index));
                if bg.queued.len() != before {
                    bg.live.retain(|(k, _, _)| !targets.contains(k));
                    self.log(i, &state.masker, "The background step had not started yet.");
                }
                bg.until_ended(self, &targets).await;
                bg.take_back(&targets, state);
                Status::Success
            }
        };
        self.finish(i, &name, id, outcome, coe, IndexMap::new(), started, state);
    }

    /// Logs which background steps failed; the wait step's outcome.
    fn report_failed(&self, i: usize, failed: &[(usize, String)], state: &JobState) -> Status {
        for (k, name) in failed {
            self.log(
                i,
                &state.masker,
                &format!("Error: background step #{} '{name}' failed.", k + 1),
            );
        }
        if failed.is_empty() {
            Status::Success
        } else {
            Status::Failure
        }
    }
}
