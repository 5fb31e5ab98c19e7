//! One run, from "this event happened in this repository at this commit" to "the run is
//! recorded and reported". The CLI (`gantry run`, `gantry rerun`, the rollback redeploy)
//! and the server's run launcher call the same API:
//!
//! 1. Build a [`RunRequest`]: plain data (the repository directory, event, workflow
//!    sources, secrets, vars, env, inputs, execution options), no command-line types.
//! 2. [`Session::prepare`] loads the workflows (their diagnostics are errors), keeps those
//!    the event triggers (GitHub's rules, in `gantry-plan`) and checks `-j` job ids.
//! 3. [`PreparedRun::execute`] allocates the run in a [`RunStore`], attaches the store and
//!    the caller's [`RunSubscriber`]s to the run's event stream, wires delivery (gates,
//!    health checks, rollback, Slack), runs the engine and returns the [`RunResult`].
//!
//! A caller without a terminal and with its own state (the server) gives:
//! - its own workspace: [`RunRequest::root`] is any directory holding the checkout;
//! - its own store: any [`RunStore`] (the local `.gantry/runs/<id>/` layout is
//!   [`LocalRunStore`]); a store is a pure event subscriber plus the request's record;
//! - its own gates: [`GateSource::Given`] with an `Arc<dyn DeliveryGates>`, so protection
//!   rules come from the caller's configuration instead of the repository's
//!   `.gantry/config.yml` ([`GateSource::RepoConfig`], what `gantry run` uses);
//! - no terminal: the session prints nothing; the not-triggered reasons are in
//!   [`PreparedRun::not_triggered`], and delivery prints to stderr only with
//!   `RepoConfig { print_events: true }`.

mod error;
mod execute;
mod prepare;
mod redeploy;
mod request;
mod store;

pub use error::SessionError;
pub use execute::{Pending, RunResult, RunSubscriber};
pub use prepare::{PreparedRun, Session, rel_to, yaml_files_in};
pub use request::{
    GateSource, GatesWithEvents, RunOptions, RunRequest, WorkflowFiles, WorkflowSource,
};
pub use store::{LocalRunStore, RunRecord, RunSlot, RunStart, RunStore, StoreError};
