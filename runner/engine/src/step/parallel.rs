//! `parallel:` step groups (GHA-SEMANTICS §1.4 preview keys): every member runs at once,
//! as a background step would, and the group ends when all of them have ended (an implied
//! `wait-all`). Each member is a step of its own in events and logs (numbered after the
//! workflow's steps, like pre and post stages); the group's own entry says which members
//! it ran. Members see the job as it was when the group started (`success()`, `steps`,
//! `env`); a failing member does not stop its siblings, it fails the group and so the job,
//! unless the member has `continue-on-error`. After the group, later steps see every
//! member's outputs, `GITHUB_ENV` and `GITHUB_PATH` writes (merged in member order).

use std::time::Instant;

use futures_util::StreamExt;
use gantry_workflow::Step;
use indexmap::IndexMap;

use super::{JobState, StepRunner};
use crate::events::{RunEvent, Status, millis};
use crate::expr_scope::Ctx;

impl StepRunner<'_> {
    pub(super) async fn run_parallel(
        &self,
        i: usize,
        group: &Step,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) {
        let started = Instant::now();
        let i = state.nest.unwrap_or(i);
        let n = group.parallel.len();
        let name = match &group.name {
            Some(nm) => state
                .masker
                .mask(
                    &ctx.eval_string(&nm.value)
                        .unwrap_or_else(|_| nm.value.clone()),
                )
                .into_owned(),
            None => format!("Parallel ({n} steps)"),
        };
        self.emit_started(state, i, &name);
        // Event indices of the members, after the workflow's steps.
        let first = self.job.steps.len() + state.extra_steps;
        state.extra_steps += n;
        let base_path = state.path_prepend.len();
        let base_post = state.post.len();
        let mut forks: Vec<(Ctx, JobState)> = (0..n)
            .map(|k| {
                let mut s = state.clone();
                s.post = state.post.fork(k);
                s.member = Some((i, k));
                (ctx.clone(), s)
            })
            .collect();
        let members: Vec<String> = group
            .parallel
            .iter()
            .enumerate()
            .map(|(k, m)| {
                format!(
                    "#{} '{}'",
                    first + k + 1,
                    self.display_name(m, ctx, &state.masker)
                )
            })
            .collect();
        self.log(
            i,
            &state.masker,
            &format!("Running {n} steps in parallel: {}", members.join(", ")),
        );
        // Files renamed ahead for "the next step" would go to whichever member asks first.
        self.leftovers.set_ahead(false);
        // At most GitHub's 10 at once, counted with the job's background steps (the job's
        // slots); the rest start, in order, as members end. (Collected first: a lazy `map`
        // in the stream is not `Send` for every lifetime.)
        let free = self.slots.available_permits();
        if free < n.min(super::background::MAX_RUNNING) {
            self.log(
                i,
                &state.masker,
                &format!(
                    "{} background steps are running ({} steps at most run at once): members \
                     start as those end.",
                    super::background::MAX_RUNNING - free,
                    super::background::MAX_RUNNING
                ),
            );
        }
        let runs: Vec<_> = forks
            .iter_mut()
            .zip(&group.parallel)
            .enumerate()
            .map(|(k, ((c, s), m))| async move {
                let _slot = self.slots.acquire().await;
                self.run_step_boxed(first + k, m, c, s).await
            })
            .collect();
        futures_util::stream::iter(runs)
            .buffer_unordered(super::background::MAX_RUNNING)
            .collect::<Vec<()>>()
            .await;

        // The worst member conclusion; all skipped makes a skipped group.
        let mut outcome = Status::Skipped;
        for (_, s) in forks {
            outcome = match (outcome, s.last_conclusion) {
                (Status::Failure, _) | (_, Status::Failure) => Status::Failure,
                (Status::Cancelled, _) | (_, Status::Cancelled) => Status::Cancelled,
                (Status::Success, _) | (_, Status::Success) => Status::Success,
                _ => Status::Skipped,
            };
            for (k, v) in s.env_ctx {
                if state.env_ctx.get(&k) != Some(&v) {
                    state.env_ctx.insert(k, v);
                }
            }
            state
                .path_prepend
                .extend(s.path_prepend.into_iter().skip(base_path));
            for (k, v) in s.steps.iter() {
                if state.steps.get(k).is_none() {
                    state.steps.insert(k.to_string(), v.clone());
                }
            }
            state.post.absorb(base_post, s.post);
            state.resolve_failed.extend(s.resolve_failed);
            if state.container_node.is_none() {
                state.container_node = s.container_node;
            }
        }
        // The members' failures already set the job's status; the group reports the worst.
        if outcome == Status::Failure && state.status == Status::Success {
            state.status = Status::Failure;
        }
        if outcome == Status::Cancelled && state.status == Status::Success {
            state.status = Status::Cancelled;
        }
        let id = group.id.as_ref().map(|s| s.value.clone());
        self.record(id.as_deref(), outcome, outcome, IndexMap::new(), state);
        self.emit_step(
            state,
            RunEvent::StepFinished {
                job: self.key.clone(),
                step: i,
                name,
                outcome,
                conclusion: outcome,
                duration_ms: millis(started.elapsed()),
            },
        );
    }
}
