//! Planning: which workflows an event triggers (GitHub filter patterns, activity types,
//! inputs), matrix expansion, and the job DAG the engine executes.
//! See `shared/spec/GHA-SEMANTICS.md` §2 (triggers) and §6.1–6.5 (jobs, matrix, strategy).

pub mod dag;
pub mod filters;
pub mod inputs;
pub mod matrix;
pub mod plan;
pub mod strategy;
pub mod trigger;

pub use dag::JobGraph;
pub use inputs::{InputError, WorkflowInputs, given_inputs, resolve_inputs, workflow_inputs};
pub use matrix::{Leg, MatrixError, MatrixFilter, expand as expand_matrix, filter_legs};
pub use plan::{JobPlan, NodeKind, Plan, PlanNode, PlanOptions, ReadyTracker, plan};
pub use strategy::{JobExpansion, StrategyError, expand_job};
pub use trigger::{Event, Match, matches};

pub use petgraph::graph::NodeIndex;

/// Why a plan could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("job '{job}' needs '{need}', which does not exist")]
    UnknownNeed { job: String, need: String },
    #[error("the jobs' needs form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("no job '{0}' in the workflow")]
    UnknownJob(String),
    #[error("job '{job}': {message}")]
    Strategy { job: String, message: String },
}
