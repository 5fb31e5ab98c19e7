//! Post stages (GHA-SEMANTICS §6.8 step 5, §8.3): registered the first time an action's pre
//! or main stage runs, run at job end in reverse order of registration, each under its
//! `post-if` (default `always()`, evaluated as written, not wrapped in `success() && …`).

use std::path::PathBuf;

use indexmap::IndexMap;

use super::builtin::{self, ActionEnv, ActionResult};

/// One instance of a JavaScript or Docker action in a job (a workflow step, or a step
/// inside a composite): what its later stages need.
#[derive(Debug, Clone)]
pub struct ActionInstance {
    /// Key of the instance's `GITHUB_STATE` in the [`PostStack`].
    pub instance: usize,
    /// `uses:` as written.
    pub uses: String,
    /// `GITHUB_ACTION_REPOSITORY` and `GITHUB_ACTION_REF` (empty for local actions).
    pub repository: String,
    pub git_ref: String,
    /// The action directory on the host and in the job's view.
    pub dir_host: PathBuf,
    pub dir_view: String,
    /// `GITHUB_ACTION`.
    pub action_name: String,
    /// The step's own environment (`env:` of the step and enclosing composites), kept for
    /// the post stage.
    pub step_env: IndexMap<String, String>,
    /// Inputs after defaults (`INPUT_*`).
    pub inputs: IndexMap<String, String>,
}

/// What a post stage runs.
#[derive(Debug, Clone)]
pub enum PostKind {
    /// A built-in's [`builtin::BuiltinAction::post`] with the state its main stage saved.
    Builtin {
        name: String,
        inputs: IndexMap<String, String>,
        state: IndexMap<String, String>,
        step_env: IndexMap<String, String>,
    },
    /// `node <action_dir>/<script>` with the action's `INPUT_*` and `STATE_*` env.
    Node {
        action: ActionInstance,
        /// `runs.using` (`node20`).
        using: String,
        script: String,
    },
    /// A Docker action's `post-entrypoint`, in the image used by its main stage.
    Docker {
        action: ActionInstance,
        image: String,
        entrypoint: String,
        args: Vec<String>,
        runs_env: IndexMap<String, String>,
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
    /// `GITHUB_STATE` per action instance (pre and main stages write, later stages read).
    states: std::collections::HashMap<usize, IndexMap<String, String>>,
    next_instance: usize,
}

impl PostStack {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new action instance key.
    pub fn new_instance(&mut self) -> usize {
        self.next_instance += 1;
        self.next_instance
    }

    /// Adds `GITHUB_STATE` pairs of an instance (later writes win).
    pub fn save_state(
        &mut self,
        instance: usize,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) {
        self.states.entry(instance).or_default().extend(pairs);
    }

    /// The saved state of an instance.
    pub fn state(&self, instance: usize) -> IndexMap<String, String> {
        self.states.get(&instance).cloned().unwrap_or_default()
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

    /// A copy for one member of a `parallel:` group (`member` counts from 0): the same
    /// entries and states, with instance keys of its own so members never share state.
    pub fn fork(&self, member: usize) -> PostStack {
        let mut f = self.clone();
        f.next_instance += (member + 1) << 20;
        f
    }

    /// Takes what a fork of `self` added: its new entries (in order) and its states.
    pub fn absorb(&mut self, base_len: usize, fork: PostStack) {
        self.entries.extend(fork.entries.into_iter().skip(base_len));
        for (k, v) in fork.states {
            self.states.entry(k).or_default().extend(v);
        }
        self.next_instance = self.next_instance.max(fork.next_instance);
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
        step_env: &IndexMap<String, String>,
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
                step_env: step_env.clone(),
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
    b.post(inputs, env, state).await.map_err(|e| e.to_string())
}
