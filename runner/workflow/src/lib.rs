//! Workflow and action files: load YAML (with positions) into a typed model, validate it,
//! and report every problem as a positioned diagnostic.

pub mod diagnostic;
pub mod model;
pub mod pattern;

pub use diagnostic::{Diagnostic, Loaded, Severity};
pub use model::*;
