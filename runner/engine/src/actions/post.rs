//! Post stages (GHA-SEMANTICS §6.8 step 5, §8.3): registered the first time an action's pre
//! or main stage runs, run at job end in reverse order of registration, each under its
//! `post-if` (default `always()`, evaluated as written, not wrapped in `success() && …`).

use std::path::PathBuf;

use indexmap::IndexMap;

use super::builtin::{self, ActionEnv, ActionResult};

/// What a post stage runs.
#[derive(Debug, Clone)]
pub enum PostKind {
    /// A built-in's [`builtin::BuiltinAction::post`] with the state its main stage saved.
    Builtin {
        name: String,
        inputs: IndexMap<String, String>,
        state: IndexMap<String, String>,
    },
    /// `node <action_dir>/<script>` with the action's `INPUT_*` and `STATE_*` env.
    Node {
        action_dir: PathBuf,
        script: String,
        env: IndexMap<String, String>,
    },
    /// A Docker action's `post-entrypoint`, in the image used by its main stage.
    Docker {
        image: String,
        entrypoint: String,
        args: Vec<String>,
        env: IndexMap<String, String>,
    },
}

#[derive(Debug, Clone)]
pub struct PostEntry {
    /// Index of the step that registered it.
    pub step: usize,
    /// `Post <step name>`.
    pub display_name: String,
    /// The `post-if` expression, evaluated as written against `job.status`.
    pub condition: String,
    pub kind: PostKind,
}

/// Post stages of a job.
#[derive(Debug, Default, Clone)]
pub struct PostStack {
    entries: Vec<PostEntry>,
}

impl PostStack {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, e: PostEntry) {
        self.entries.push(e);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, last registered first (the order to run them in).
    pub fn drain_in_run_order(&mut self) -> Vec<PostEntry> {
        let mut v = std::mem::take(&mut self.entries);
        v.reverse();
        v
    }

    /// Registers the post stage of a built-in when its main stage asked for one.
    pub fn register_builtin(
        &mut self,
        step: usize,
        step_name: &str,
        name: &str,
        inputs: &IndexMap<String, String>,
        result: &ActionResult,
    ) {
        if !result.post {
            return;
        }
        let Some(b) = builtin::get(name) else { return };
        self.push(PostEntry {
            step,
            display_name: format!("Post {step_name}"),
            condition: b.post_if().to_string(),
            kind: PostKind::Builtin {
                name: name.to_string(),
                inputs: inputs.clone(),
                state: result.state.clone(),
            },
        });
    }
}

/// Runs a built-in post stage (the caller has evaluated `condition`).
pub async fn run_builtin_post(
    name: &str,
    inputs: &IndexMap<String, String>,
    state: &IndexMap<String, String>,
    env: &ActionEnv<'_>,
) -> Result<ActionResult, String> {
    let b = builtin::get(name).ok_or_else(|| format!("unknown built-in {name}"))?;
    b.post(inputs, env, state).await
}
