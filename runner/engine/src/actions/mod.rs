//! Actions (GHA-SEMANTICS §8, §7.5): `uses:` references and their resolution (local,
//! built-in, cache, git sources), the built-in actions Gantry implements natively, and the
//! pieces the step runner needs to run composite, JavaScript and Docker actions.
//!
//! The step runner calls, per `uses:` step:
//! 1. [`ActionResolver::resolve`] (once per step at "Set up job"; warm cache: no git);
//! 2. by [`ResolvedKind`]: a built-in through [`builtin::get`] + [`inputs::resolve_inputs`]
//!    with [`builtin::metadata`]; an action directory through [`load_action`] and
//!    [`node`], [`docker_action`] or [`composite::run_composite`] (with its [`StepHost`]);
//! 3. registers post stages on a [`PostStack`] and runs them at job end in reverse order.

/// The built-in actions (their own crate; re-exported so `actions::builtin` paths stay).
pub use gantry_builtins as builtin;
pub mod composite;
pub mod docker_action;
pub use gantry_workflow::action_inputs as inputs;
pub mod node;
pub mod post;
pub mod reference;
pub mod resolve;
pub use gantry_git::transport;
pub mod workflow_call;

pub use builtin::{ActionEnv, ActionResult, BuiltinAction, GithubFacts};
pub use composite::{CompositeOutcome, CompositeScope, StepHost, StepsResult};
pub use inputs::{ResolvedInputs, input_env_name, resolve_inputs};
pub use post::{ActionInstance, PostEntry, PostKind, PostStack};
pub use reference::{ReferenceError, RemoteRef, UsesRef, parse_uses};
pub use resolve::{
    ActionResolver, Origin, ResolveError, ResolvedAction, ResolvedKind, ResolverConfig,
    cached_commit_dir, default_cache_root,
};
pub use transport::GitCredentials;

use std::path::Path;

/// Loads the metadata of an action directory (`action.yml`, then `action.yaml`); a
/// directory with only a `Dockerfile` is a legacy Docker action with no inputs.
pub fn load_action(dir: &Path) -> Result<gantry_workflow::Action, String> {
    if !dir.join("action.yml").is_file()
        && !dir.join("action.yaml").is_file()
        && dir.join("Dockerfile").is_file()
    {
        return Ok(gantry_workflow::Action {
            path: dir.join("Dockerfile").display().to_string(),
            name: None,
            description: None,
            author: None,
            inputs: Default::default(),
            outputs: Default::default(),
            runs: gantry_workflow::ActionRuns::Docker {
                image: "Dockerfile".into(),
                env: Default::default(),
                entrypoint: None,
                args: Vec::new(),
                pre_entrypoint: None,
                pre_if: None,
                post_entrypoint: None,
                post_if: None,
            },
        });
    }
    let loaded = gantry_workflow::load_action_dir(dir);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == gantry_workflow::Severity::Error)
        .map(|d| format!("{}:{}:{}: {}", d.file, d.span.line, d.span.col, d.message))
        .collect();
    match loaded.value {
        Some(a) if errors.is_empty() => Ok(a),
        _ => Err(if errors.is_empty() {
            format!("cannot load the action in {}", dir.display())
        } else {
            errors.join("\n")
        }),
    }
}
