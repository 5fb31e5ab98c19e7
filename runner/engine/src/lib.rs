//! Gantry's execution engine: scheduler, step runner, backends, run events, reporters.

pub mod actions;
pub mod backend;
pub mod commands;
pub mod concurrency;
pub mod context;
pub mod envfile;
pub mod evalctx;
pub mod events;
pub mod gate;
pub mod job;
pub mod mask;
pub mod masking;
pub mod reporter;
pub mod reusable;
pub mod run;
pub mod scheduler;
pub mod shell;
pub mod step;
pub mod store;
pub mod workspace;
