//! `uses:` steps (GHA-SEMANTICS §8): built-in actions and composite actions, run through
//! the step runner.

use gantry_expr::{Object, Value};
use gantry_workflow::Step;
use indexmap::IndexMap;

use super::{JobState, StepRunner};
use crate::context;
use crate::evalctx::Ctx;
use crate::events::Status;
use crate::job::{at, eval_string_map};

impl StepRunner<'_> {
    /// The `uses:` seam. Gantry's built-in actions (`step/builtin.rs`) and local composite
    /// actions (`./path`) run here; everything else (remote, JavaScript, Docker actions)
    /// fails with a clear message until the action resolver is wired in.
    pub(super) async fn run_uses(
        &self,
        i: usize,
        step: &Step,
        uses: &gantry_workflow::Spanned<String>,
        step_env: &IndexMap<String, String>,
        ctx: &mut Ctx,
        state: &mut JobState,
    ) -> (Status, IndexMap<String, String>) {
        use crate::actions::composite::{self, CompositeScope};
        let u = uses.value.trim();
        // Built-in actions run natively (see `step/builtin.rs` and docs/actions.md).
        if let Ok(crate::actions::UsesRef::Remote(r)) = crate::actions::parse_uses(u) {
            let name = r.name().to_ascii_lowercase();
            if crate::actions::builtin::is_builtin(&name) {
                let with = match eval_string_map(&step.with, ctx) {
                    Ok(w) => w,
                    Err(e) => {
                        self.log(
                            i,
                            &state.masker,
                            &format!("Error: {}: with: {e}", at(uses, "uses")),
                        );
                        return (Status::Failure, IndexMap::new());
                    }
                };
                return self
                    .run_builtin_step(i, &name, &with, step_env, ctx, state)
                    .await;
            }
        }
        let unsupported = |this: &Self, state: &JobState, why: &str| {
            this.log(
                i,
                &state.masker,
                &format!("Error: {}: action '{u}' {why}", at(uses, "uses")),
            );
            (Status::Failure, IndexMap::new())
        };
        if !u.starts_with("./") {
            return unsupported(
                self,
                state,
                "is not supported yet (only ./ composite actions and Gantry's built-in actions; see docs/actions.md)",
            );
        }
        let dir = self.workspace_host.join(u.trim_start_matches("./"));
        let action = match crate::actions::load_action(&dir) {
            Ok(a) => a,
            Err(e) => return unsupported(self, state, &format!("cannot be loaded: {e}")),
        };
        if !matches!(action.runs, gantry_workflow::ActionRuns::Composite { .. }) {
            return unsupported(
                self,
                state,
                "is not a composite action; JavaScript and Docker actions are not supported yet",
            );
        }
        let with = match eval_string_map(&step.with, ctx) {
            Ok(w) => w,
            Err(e) => return unsupported(self, state, &format!("with: {e}")),
        };
        let inputs = {
            let c: &Ctx = ctx;
            crate::actions::resolve_inputs(Some(&action), &with, |d| {
                c.eval_string(d).map_err(|e| e.to_string())
            })
        };
        let inputs = match inputs {
            Ok(x) => x,
            Err(e) => return unsupported(self, state, &e),
        };
        for w in &inputs.warnings {
            self.log(i, &state.masker, &format!("Warning: {w}"));
        }
        let scope = CompositeScope {
            uses: u.to_string(),
            action_path: dir.clone(),
            inputs: inputs.values,
            depth: state.depth + 1,
        };
        let mut host = CompositeHost {
            runner: self,
            ctx,
            state,
            outer_env: step_env.clone(),
            index: i,
        };
        let out = composite::run_composite(&mut host, &action, scope).await;
        let CompositeHost { state, .. } = host;
        for e in &out.errors {
            self.log(i, &state.masker, &format!("Error: {e}"));
        }
        let st = match out.status.as_str() {
            "success" => Status::Success,
            "cancelled" => Status::Cancelled,
            _ => Status::Failure,
        };
        (st, out.outputs)
    }
}

/// Runs a composite action's steps in a nested scope (see `actions::composite`).
struct CompositeHost<'r, 'a> {
    runner: &'r StepRunner<'a>,
    ctx: &'r mut Ctx,
    state: &'r mut JobState,
    outer_env: IndexMap<String, String>,
    index: usize,
}

#[async_trait::async_trait]
impl crate::actions::composite::StepHost for CompositeHost<'_, '_> {
    async fn run_steps(
        &mut self,
        steps: &[Step],
        scope: &crate::actions::composite::CompositeScope,
    ) -> crate::actions::composite::StepsResult {
        use crate::actions::composite::{StepRecord, StepsResult};
        let st = &mut *self.state;
        let saved_steps = std::mem::take(&mut st.steps);
        let saved_status = std::mem::replace(&mut st.status, Status::Success);
        let mut env = st.scope_env.clone();
        env.extend(self.outer_env.clone());
        let saved_env = std::mem::replace(&mut st.scope_env, env);
        let saved_nest = st.nest.replace(self.index);
        let ap = self.runner.env.to_job_path(&scope.action_path);
        let saved_ap = st.action_path.replace(ap);
        st.depth += 1;
        let saved_inputs = self.ctx.get("inputs").cloned();
        let saved_secrets = self.ctx.get("secrets").cloned();
        self.ctx
            .set("inputs", context::string_map_value(scope.inputs.iter()));
        self.ctx.set("secrets", Value::object(Object::new()));
        for (j, s) in steps.iter().enumerate() {
            self.runner.run_step_boxed(j, s, self.ctx, st).await;
        }
        let mut records = IndexMap::new();
        for (id, v) in st.steps.iter() {
            let get = |k: &str| {
                if let Value::Object(o) = v {
                    o.get(k)
                        .map(|x| x.as_string().into_owned())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            };
            let mut outputs = IndexMap::new();
            if let Value::Object(o) = v
                && let Some(Value::Object(outs)) = o.get("outputs")
            {
                for (k, x) in outs.iter() {
                    outputs.insert(k.to_string(), x.as_string().into_owned());
                }
            }
            records.insert(
                id.to_string(),
                StepRecord {
                    outcome: get("outcome"),
                    conclusion: get("conclusion"),
                    outputs,
                },
            );
        }
        let status = st.status;
        st.steps = saved_steps;
        st.status = saved_status;
        st.scope_env = saved_env;
        st.nest = saved_nest;
        st.action_path = saved_ap;
        st.depth -= 1;
        // Outputs are evaluated with the composite's inputs and env; restore the rest after.
        self.pending_restore(saved_inputs, saved_secrets);
        StepsResult {
            status: status.as_str().to_string(),
            steps: records,
        }
    }

    fn eval_output(
        &self,
        template: &str,
        scope: &crate::actions::composite::CompositeScope,
        steps: &IndexMap<String, crate::actions::composite::StepRecord>,
    ) -> Result<String, String> {
        let mut c = self.ctx.clone();
        c.set("steps", crate::actions::composite::steps_value(steps));
        c.set("inputs", context::string_map_value(scope.inputs.iter()));
        let mut env = self.state.env_ctx.clone();
        env.extend(self.state.scope_env.clone());
        env.extend(self.outer_env.clone());
        c.set("env", context::string_map_value(env.iter()));
        c.eval_string(template).map_err(|e| e.to_string())
    }
}

impl CompositeHost<'_, '_> {
    fn pending_restore(&mut self, inputs: Option<Value>, secrets: Option<Value>) {
        self.ctx.set("inputs", inputs.unwrap_or(Value::Null));
        self.ctx.set("secrets", secrets.unwrap_or(Value::Null));
    }
}
