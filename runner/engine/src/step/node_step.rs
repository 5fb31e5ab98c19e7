//! JavaScript actions run from a step (GHA-SEMANTICS §8.3): `node <action dir>/<script>`
//! with cwd = `GITHUB_WORKSPACE`, `INPUT_*`, `STATE_*` of the instance, the file commands
//! and workflow commands of `run` steps. Host jobs use the host's node; container jobs use
//! the host's node bundled into the run's tool cache (mounted at `/__t`), else the image's
//! node, else fail with what was tried.

use std::path::PathBuf;

use indexmap::IndexMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::action_exec::{StageControl, StageOutcome};
use super::{JobState, StepRunner};
use crate::actions::ActionInstance;
use crate::actions::node;
use crate::backend::{ExecSpec, ExitStatus, Output};
use crate::envfile::FileCommandFiles;
use crate::events::Status;
use crate::expr_scope::Ctx;

impl StepRunner<'_> {
    /// The node command (program and leading arguments) in the job's view.
    async fn node_command(
        &self,
        i: usize,
        using: &str,
        path: &str,
        state: &mut JobState,
    ) -> Result<Vec<String>, String> {
        let major = node::required_major(using)?;
        if self.sharing.runner_programs {
            let rt = node::host_node(path)?;
            if !node::satisfies(&rt.version, major) {
                self.log(
                    i,
                    &state.masker,
                    &format!(
                        "Warning: the action asks for {using}; running it with the host's node {}",
                        rt.version
                    ),
                );
            }
            return Ok(vec![rt.program]);
        }
        if let Some(c) = &state.container_node {
            return Ok(c.clone());
        }
        let found = self.find_container_node(i, using, major, state).await?;
        state.container_node = Some(found.clone());
        Ok(found)
    }

    /// A node for the job container: `GANTRY_NODE_STATIC` or the host's node, bundled with
    /// its libraries; else the image's `node`.
    async fn find_container_node(
        &self,
        i: usize,
        using: &str,
        major: u32,
        state: &JobState,
    ) -> Result<Vec<String>, String> {
        let mut why = Vec::new();
        let host_path = self
            .shared
            .process_env
            .get("PATH")
            .cloned()
            .unwrap_or_default();
        let candidate: Option<(PathBuf, String)> = match std::env::var_os("GANTRY_NODE_STATIC")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
        {
            Some(p) => Some((p, "GANTRY_NODE_STATIC".into())),
            None => match node::host_node(&host_path) {
                Ok(rt) => {
                    if !node::satisfies(&rt.version, major) {
                        self.log(
                            i,
                            &state.masker,
                            &format!(
                                "Warning: the action asks for {using}; running it with the host's node {}",
                                rt.version
                            ),
                        );
                    }
                    Some((
                        PathBuf::from(rt.program),
                        format!("host node {}", rt.version),
                    ))
                }
                Err(e) => {
                    why.push(format!("host: {e}"));
                    None
                }
            },
        };
        if let Some((program, what)) = candidate {
            let root = self.shared.work_root.join("_tool").join("_gantry_node");
            let res = tokio::task::spawn_blocking(move || node::bundle_node(&program, &root))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match res {
                Ok(b) => return Ok(b.argv(|p| self.env.to_job_path(p))),
                Err(e) => why.push(format!("{what}: {e}")),
            }
        }
        // The image's own node.
        let (tx, mut rx) = mpsc::channel::<Output>(8);
        let probe = ExecSpec {
            argv: vec!["node".into(), "--version".into()],
            env: IndexMap::new(),
            workdir: "/".into(),
        };
        let collect = async {
            let mut s = Vec::new();
            while let Some(o) = rx.recv().await {
                if let Output::Stdout(b) = o {
                    s.extend_from_slice(&b);
                }
            }
            String::from_utf8_lossy(&s).trim().to_string()
        };
        let (r, version) = tokio::join!(
            self.env
                .exec(probe, tx, CancellationToken::new(), self.kill),
            collect
        );
        match r {
            Ok(ExitStatus::Code(0)) if node::satisfies(&version, major) => {
                return Ok(vec!["node".into()]);
            }
            Ok(ExitStatus::Code(0)) => why.push(format!(
                "the image's node is {version}, older than node{major}"
            )),
            _ => why.push("the image has no `node`".into()),
        }
        Err(format!(
            "JavaScript actions need node{major} inside the job container: {}",
            why.join("; ")
        ))
    }

    /// Runs `script` of a JavaScript action instance as step `i`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_node_stage(
        &self,
        i: usize,
        call: &ActionInstance,
        script: &str,
        using: &str,
        control: StageControl<'_>,
        ctx: &Ctx,
        state: &mut JobState,
    ) -> StageOutcome {
        let fail = |state: &JobState, msg: String| {
            self.log(i, &state.masker, &format!("Error: {msg}"));
            StageOutcome {
                outcome: Status::Failure,
                outputs: IndexMap::new(),
                state: Vec::new(),
            }
        };
        let files = match FileCommandFiles::create(self.leftovers.pool(), &self.temp_host) {
            Ok(f) => f,
            Err(e) => return fail(state, format!("cannot create the file-command files: {e}")),
        };
        let file_vars = files.env_vars(|p| self.env.to_job_path(p));
        let mut penv = self.process_env(state, &call.step_env, &call.action_name, &file_vars);
        penv.insert("GITHUB_ACTION_PATH".into(), call.dir_view.clone());
        if !call.repository.is_empty() {
            penv.insert("GITHUB_ACTION_REPOSITORY".into(), call.repository.clone());
            penv.insert("GITHUB_ACTION_REF".into(), call.git_ref.clone());
        }
        penv.extend(node::state_env(&state.post.state(call.instance)));
        for (k, v) in &call.inputs {
            penv.insert(crate::actions::input_env_name(k), v.clone());
        }
        let path = self.step_path(&mut penv, state);
        let mut argv = match self.node_command(i, using, &path, state).await {
            Ok(a) => a,
            Err(e) => {
                files.remove(self.leftovers.pool());
                return fail(state, format!("{}: {e}", call.uses));
            }
        };
        argv.extend(
            node::node_argv("", &call.dir_view, script)
                .into_iter()
                .skip(1),
        );
        let spec = ExecSpec {
            argv,
            env: penv,
            workdir: self.workspace_view.clone(),
        };
        self.run_stage_process(i, files, control, ctx, state, |tx, cancel| async move {
            self.env.exec(spec, tx, cancel, self.kill).await
        })
        .await
    }
}
