//! The gate's own reading of a request: every recorded decision is checked against the
//! environment's current rules (who reviews, how many distinct approvers, self-review),
//! so a request file that says `"state": "approved"`, lists extra reviewers or repeats a
//! reviewer in another case admits nothing by itself.

use super::{ApprovalState, Decision, PendingApproval};
use crate::config::EnvironmentConfig;

/// What the recorded decisions amount to under the current rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `Pending`, `Approved` or `Rejected`.
    pub state: ApprovalState,
    /// Decisions that count, in order (each reviewer once).
    pub counted: Vec<Decision>,
    /// Decisions that do not count: index into the request's decisions, and why.
    pub ignored: Vec<(usize, String)>,
}

impl Verdict {
    pub fn approvals(&self) -> usize {
        self.counted.iter().filter(|d| d.approved).count()
    }

    /// The counted rejection, if any.
    pub fn rejection(&self) -> Option<&Decision> {
        self.counted.iter().find(|d| !d.approved)
    }

    /// Why the decision at `index` does not count (`None`: it counts).
    pub fn ignored_reason(&self, index: usize) -> Option<&str> {
        self.ignored
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, why)| why.as_str())
    }
}

/// Judges `req`'s decisions by `env`'s rules for a run by `actor` (the run's own actor,
/// not the one written in the file).
pub fn verdict(req: &PendingApproval, env: &EnvironmentConfig, actor: &str) -> Verdict {
    let mut counted: Vec<Decision> = Vec::new();
    let mut ignored = Vec::new();
    for (i, d) in req.decisions.iter().enumerate() {
        let Some(reviewer) = env.reviewers.iter().find(|r| r.eq_ignore_ascii_case(&d.by)) else {
            ignored.push((
                i,
                format!("{} is not a reviewer of environment `{}`", d.by, env.name),
            ));
            continue;
        };
        if env.prevent_self_review && reviewer.eq_ignore_ascii_case(actor) {
            ignored.push((
                i,
                format!("{} triggered the run and may not review it", d.by),
            ));
            continue;
        }
        if counted.iter().any(|c| c.by.eq_ignore_ascii_case(reviewer)) {
            ignored.push((i, format!("{reviewer} has already decided")));
            continue;
        }
        counted.push(Decision {
            by: reviewer.clone(),
            ..d.clone()
        });
    }
    let approvals = counted.iter().filter(|d| d.approved).count();
    let state = if counted.iter().any(|d| !d.approved) {
        ApprovalState::Rejected
    } else if approvals >= env.required_approvals.max(1) as usize {
        ApprovalState::Approved
    } else {
        ApprovalState::Pending
    };
    Verdict {
        state,
        counted,
        ignored,
    }
}

/// Makes the file say what the gate enforces: the current rules and actor, the waiter,
/// and no decided state that the decisions do not support (so a forged "approved" cannot
/// block real reviewers with "no longer pending"). Returns whether anything changed.
pub fn reassert(file: &mut PendingApproval, gate: &PendingApproval, verdict: &Verdict) -> bool {
    let mut changed = false;
    if file.reviewers != gate.reviewers
        || file.required_approvals != gate.required_approvals
        || file.prevent_self_review != gate.prevent_self_review
        || file.actor != gate.actor
    {
        file.reviewers = gate.reviewers.clone();
        file.required_approvals = gate.required_approvals;
        file.prevent_self_review = gate.prevent_self_review;
        file.actor = gate.actor.clone();
        changed = true;
    }
    let claims_decided = matches!(
        file.state,
        ApprovalState::Approved | ApprovalState::Rejected
    );
    if claims_decided && verdict.state == ApprovalState::Pending {
        file.state = ApprovalState::Pending;
        changed = true;
    }
    let waiter_differs = match (&file.waiter, &gate.waiter) {
        (Some(f), Some(g)) => (f.pid, f.start_ticks) != (g.pid, g.start_ticks),
        (f, g) => f.is_some() != g.is_some(),
    };
    if waiter_differs {
        file.waiter = gate.waiter.clone();
        changed = true;
    } else if let (Some(w), Some(g)) = (&mut file.waiter, &gate.waiter)
        && w.heartbeat_due()
    {
        w.heartbeat = chrono::Utc::now().max(g.heartbeat);
        changed = true;
    }
    changed
}
