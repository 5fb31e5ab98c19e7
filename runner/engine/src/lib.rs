//! Gantry's execution engine: scheduler, step runner, backends, run events, reporters.

pub mod backend;
pub mod commands;
pub mod envfile;
pub mod gate;
pub mod mask;
pub mod shell;
