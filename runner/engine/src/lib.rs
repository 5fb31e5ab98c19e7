//! Gantry's execution engine: scheduler, step runner, backends, run events, reporters.

pub mod backend;
pub mod gate;
