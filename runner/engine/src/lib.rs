//! Gantry's execution engine: scheduler, step runner, backends, run events, reporters.

pub mod actions;
/// Where steps run (its own crate; re-exported so `gantry_engine::backend` paths stay).
pub use gantry_backend as backend;
pub mod commands;
pub mod concurrency;
pub mod envfile;
pub mod events;
pub mod executor;
pub mod expr_scope;
pub mod gate;
pub mod github_contexts;
pub mod job;
pub mod masker;
pub mod preflight;
pub mod reporter;
pub mod reusable;
pub mod run;
pub mod scheduler;
pub mod shared_masker;
pub mod shell;
pub mod step;
pub mod store;
pub mod workspace;
