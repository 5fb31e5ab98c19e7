//! Waiting for approvals. The request file under `.gantry/approvals/` is where reviewers'
//! decisions arrive, not a verdict: each poll judges the decisions by the environment's
//! current rules ([`verdict`]) and puts the rules, the waiter and its heartbeat back into
//! the file ([`reassert`]), so hand edits neither admit a job nor block real reviewers.

use chrono::Utc;
use gantry_engine::gate::DeploymentRequest;
use tokio_util::sync::CancellationToken;

use super::Delivery;
use crate::approval::{
    ApprovalState, DecideError, PendingApproval, PromptAnswer, Verdict, Waiter, reassert, verdict,
};
use crate::config::EnvironmentConfig;
use crate::history::{DeploymentRecord, status};
use crate::subscribers::notice;
use gantry_engine::events::RunEvent;

impl Delivery {
    /// Waits for approvals; `Ok` with the verdict (its counted decisions) once approved.
    pub(super) async fn wait_for_approval(
        &self,
        req: &DeploymentRequest,
        env: &EnvironmentConfig,
        waiting: &DeploymentRecord,
        cancel: &CancellationToken,
    ) -> Result<Verdict, (&'static str, String)> {
        let pending = PendingApproval {
            run_id: req.run_id.clone(),
            environment: req.environment.clone(),
            job: req.job_name.clone(),
            workflow: req.workflow.clone(),
            actor: req.actor.clone(),
            git_ref: req.git_ref.clone(),
            sha: req.sha.clone(),
            reviewers: env.reviewers.clone(),
            required_approvals: env.required_approvals,
            prevent_self_review: env.prevent_self_review,
            since: Utc::now(),
            state: ApprovalState::Pending,
            decisions: Vec::new(),
            waiter: Some(Waiter::current()),
        };
        let io = |e: DecideError| (status::FAILED, format!("approval state: {e}"));
        self.store.create(&pending).map_err(io)?;
        let command = pending.approve_command();
        self.sink.emit(RunEvent::ApprovalPending {
            environment: req.environment.clone(),
            job: req.job_name.clone(),
            reviewers: env.reviewers.clone(),
            required_approvals: env.required_approvals,
            command,
        });
        // Then the waiting record: the history has it while the gate waits, and the Slack
        // subscriber sends `approval_requested` for it (with the event above).
        self.record(req, waiting, Some(notice::APPROVAL_REQUESTED), None)
            .await;
        let deadline = tokio::time::Instant::now() + env.approval_timeout;
        let mut prompt = self.ask(&pending, None);
        let mut seen = 0usize;
        loop {
            let mut judged = None;
            let current = self
                .store
                .update(&req.run_id, &req.environment, |file| {
                    let v = verdict(file, env, &req.actor);
                    let changed = reassert(file, &pending, &v);
                    judged = Some(v);
                    changed
                })
                .map_err(io)?;
            let judged = judged.expect("update ran the closure");
            for (i, d) in current.decisions.iter().enumerate().skip(seen) {
                let why = judged.ignored_reason(i);
                self.sink.emit(RunEvent::ApprovalDecided {
                    environment: req.environment.clone(),
                    by: d.by.clone(),
                    approved: d.approved,
                    comment: d.comment.clone(),
                    accepted: why.is_none(),
                    message: why.map(|w| format!("not counted: {w}")).unwrap_or_default(),
                });
            }
            seen = current.decisions.len();
            match (current.state, judged.state) {
                (ApprovalState::TimedOut | ApprovalState::Cancelled, _)
                | (ApprovalState::Abandoned, _) => {
                    return Err((status::CANCELLED, format!("approval {:?}", current.state)));
                }
                (_, ApprovalState::Approved) => return Ok(judged),
                (_, ApprovalState::Rejected) => {
                    let (by, why) = judged
                        .rejection()
                        .cloned()
                        .map(|d| (d.by, d.comment.unwrap_or_else(|| "no reason given".into())))
                        .unwrap_or_default();
                    return Err((
                        status::REJECTED,
                        format!(
                            "deployment to `{}` rejected by {by}: {why}",
                            req.environment
                        ),
                    ));
                }
                _ => {}
            }
            enum Wake {
                Cancelled,
                TimedOut,
                Tick,
                Answer(Option<PromptAnswer>),
            }
            let wake = tokio::select! {
                _ = cancel.cancelled() => Wake::Cancelled,
                _ = tokio::time::sleep_until(deadline) => Wake::TimedOut,
                _ = tokio::time::sleep(self.poll_interval) => Wake::Tick,
                answer = async { prompt.as_mut().expect("guarded").await }, if prompt.is_some() => Wake::Answer(answer),
            };
            match wake {
                Wake::Tick => {}
                Wake::Cancelled => {
                    let _ =
                        self.store
                            .close(&req.run_id, &req.environment, ApprovalState::Cancelled);
                    return Err((
                        status::CANCELLED,
                        format!(
                            "deployment to `{}` cancelled while waiting for approval",
                            req.environment
                        ),
                    ));
                }
                Wake::TimedOut => {
                    let now = self
                        .store
                        .close(&req.run_id, &req.environment, ApprovalState::TimedOut)
                        .map_err(io)?;
                    if now.state == ApprovalState::TimedOut {
                        return Err((
                            status::TIMED_OUT,
                            format!(
                                "deployment to `{}` was not approved within {} ({} of {} approvals)",
                                req.environment,
                                crate::config::format_duration(env.approval_timeout),
                                verdict(&now, env, &req.actor).approvals(),
                                env.required_approvals
                            ),
                        ));
                    }
                }
                Wake::Answer(answer) => {
                    prompt = None;
                    let Some(a) = answer else { continue };
                    match self.store.decide(
                        &req.run_id,
                        &req.environment,
                        &a.by,
                        a.approved,
                        a.comment.clone(),
                    ) {
                        Ok(now) => {
                            if now.state == ApprovalState::Pending {
                                prompt = self.ask(
                                    &now,
                                    Some(format!(
                                        "{} of {} approvals so far",
                                        verdict(&now, env, &req.actor).approvals(),
                                        now.required_approvals
                                    )),
                                );
                            }
                        }
                        Err(e) => {
                            self.sink.emit(RunEvent::ApprovalDecided {
                                environment: req.environment.clone(),
                                by: a.by.clone(),
                                approved: a.approved,
                                comment: a.comment.clone(),
                                accepted: false,
                                message: e.to_string(),
                            });
                            if let Ok(now) = self.store.get(&req.run_id, &req.environment)
                                && now.state == ApprovalState::Pending
                            {
                                prompt = self.ask(&now, Some(format!("refused: {e}")));
                            }
                        }
                    }
                }
            }
        }
    }
}
