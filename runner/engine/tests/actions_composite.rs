//! The composite driver against a small real [`StepHost`]: `run` steps are real processes,
//! nested `uses: ./…` composites go back through the driver, templates are evaluated with
//! gantry-expr.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use gantry_engine::actions::composite::{
    self, CompositeScope, StepHost, StepRecord, StepsResult, run_composite, steps_value,
};
use gantry_engine::actions::{inputs::resolve_inputs, load_action};
use gantry_expr::{EvalContext, ExprError, MapContext, StatusFunction, Template, Value};
use gantry_workflow::{Step, StringMap};
use indexmap::IndexMap;

/// Job-level state shared with the caller: `env` context after GITHUB_ENV writes.
struct TestHost {
    workspace: PathBuf,
    job_env: IndexMap<String, String>,
    log: Vec<String>,
}

struct Ctx {
    map: MapContext,
    failed: bool,
}

impl EvalContext for Ctx {
    fn context(&self, n: &str) -> Option<Value> {
        self.map.context(n)
    }
    fn status(&self, f: StatusFunction) -> Result<bool, ExprError> {
        Ok(match f {
            StatusFunction::Success => !self.failed,
            StatusFunction::Failure => self.failed,
            StatusFunction::Cancelled => false,
            StatusFunction::Always => true,
        })
    }
}

fn string_map(m: &StringMap) -> IndexMap<String, String> {
    match m {
        StringMap::Map(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        _ => IndexMap::new(),
    }
}

impl TestHost {
    fn ctx(
        &self,
        scope: &CompositeScope,
        steps: &IndexMap<String, StepRecord>,
        failed: bool,
    ) -> Ctx {
        let mut map = MapContext::new();
        let mut inputs = gantry_expr::Object::new();
        for (k, v) in &scope.inputs {
            inputs.insert(k.clone(), Value::string(v));
        }
        map.insert("inputs", Value::object(inputs));
        map.insert("steps", steps_value(steps));
        let mut env = gantry_expr::Object::new();
        for (k, v) in &self.job_env {
            env.insert(k.clone(), Value::string(v));
        }
        map.insert("env", Value::object(env));
        let mut g = gantry_expr::Object::new();
        g.insert(
            "action_path",
            Value::string(scope.action_path.display().to_string()),
        );
        map.insert("github", Value::object(g));
        Ctx { map, failed }
    }

    fn eval(&self, s: &str, ctx: &Ctx) -> Result<String, String> {
        if !s.contains("${{") {
            return Ok(s.to_string());
        }
        let t = Template::parse(s).map_err(|e| e.to_string())?;
        Ok(t.eval(ctx)
            .map_err(|e| e.to_string())?
            .as_string()
            .into_owned())
    }
}

#[async_trait]
impl StepHost for TestHost {
    async fn run_steps(&mut self, steps: &[Step], scope: &CompositeScope) -> StepsResult {
        let mut records: IndexMap<String, StepRecord> = IndexMap::new();
        let mut failed = false;
        for (i, step) in steps.iter().enumerate() {
            let ctx = self.ctx(scope, &records, failed);
            let cond = gantry_expr::if_condition(
                step.if_cond
                    .as_ref()
                    .map(|c| c.value.as_str())
                    .unwrap_or(""),
            );
            let run_it = gantry_expr::parse(&cond)
                .unwrap()
                .eval(&ctx)
                .unwrap()
                .is_truthy();
            let id = step
                .id
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_else(|| format!("__{i}"));
            if !run_it {
                records.insert(
                    id,
                    StepRecord {
                        outcome: "skipped".into(),
                        conclusion: "skipped".into(),
                        ..Default::default()
                    },
                );
                continue;
            }
            let step_env: IndexMap<String, String> = string_map(&step.env)
                .into_iter()
                .map(|(k, v)| (k, self.eval(&v, &ctx).unwrap()))
                .collect();
            let (ok, outputs) = if let Some(run) = &step.run {
                let script = self.eval(&run.value, &ctx).unwrap();
                let tmp = tempfile::tempdir().unwrap();
                let out_file = tmp.path().join("out");
                let env_file = tmp.path().join("env");
                std::fs::write(&out_file, "").unwrap();
                std::fs::write(&env_file, "").unwrap();
                let mut cmd =
                    std::process::Command::new(step.shell.as_ref().unwrap().value.as_str());
                cmd.arg("-ec")
                    .arg(&script)
                    .current_dir(&self.workspace)
                    .env_clear();
                cmd.env("PATH", std::env::var("PATH").unwrap());
                cmd.envs(&self.job_env).envs(&step_env);
                cmd.env("GITHUB_OUTPUT", &out_file)
                    .env("GITHUB_ENV", &env_file)
                    .env("GITHUB_ACTION_PATH", &scope.action_path);
                let o = cmd.output().unwrap();
                self.log
                    .push(String::from_utf8_lossy(&o.stdout).trim().to_string());
                let outputs: IndexMap<String, String> =
                    gantry_engine::envfile::read_key_value_file(&out_file)
                        .unwrap()
                        .into_iter()
                        .collect();
                for (k, v) in gantry_engine::envfile::read_key_value_file(&env_file).unwrap() {
                    self.job_env.insert(k, v);
                }
                (o.status.success(), outputs)
            } else {
                let uses = step.uses.as_ref().unwrap().value.clone();
                let dir = scope.action_path.join(uses.trim_start_matches("./"));
                let dir = if dir.exists() {
                    dir
                } else {
                    self.workspace.join(uses.trim_start_matches("./"))
                };
                let action = load_action(&dir).unwrap();
                let with: IndexMap<String, String> = string_map(&step.with)
                    .into_iter()
                    .map(|(k, v)| (k, self.eval(&v, &ctx).unwrap()))
                    .collect();
                let inputs = resolve_inputs(Some(&action), &with, |d| self.eval(d, &ctx)).unwrap();
                let nested = CompositeScope {
                    uses,
                    action_path: dir,
                    inputs: inputs.values,
                    depth: scope.depth + 1,
                };
                let r = Box::pin(run_composite(self, &action, nested)).await;
                self.log.extend(r.errors.iter().cloned());
                (r.status == "success", r.outputs)
            };
            let outcome = if ok { "success" } else { "failure" };
            if !ok {
                failed = true;
            }
            records.insert(
                id,
                StepRecord {
                    outcome: outcome.into(),
                    conclusion: outcome.into(),
                    outputs,
                },
            );
        }
        StepsResult {
            status: if failed {
                "failure".into()
            } else {
                "success".into()
            },
            steps: records,
        }
    }

    fn eval_output(
        &self,
        template: &str,
        scope: &CompositeScope,
        steps: &IndexMap<String, StepRecord>,
    ) -> Result<String, String> {
        self.eval(template, &self.ctx(scope, steps, false))
    }
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

async fn call(
    host: &mut TestHost,
    dir: &str,
    with: &[(&str, &str)],
) -> composite::CompositeOutcome {
    let d = host.workspace.join(dir);
    let action = load_action(&d).unwrap();
    let with: IndexMap<String, String> = with
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let inputs = resolve_inputs(Some(&action), &with, |s| Ok(s.to_string())).unwrap();
    run_composite(
        host,
        &action,
        CompositeScope {
            uses: format!("./{dir}"),
            action_path: d,
            inputs: inputs.values,
            depth: 1,
        },
    )
    .await
}

#[tokio::test]
async fn composite_inputs_outputs_nesting_env_isolation() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().to_path_buf();
    write(
        &ws.join("inner/action.yml"),
        r#"
name: inner
inputs:
  who:
    description: who
    default: world
outputs:
  line:
    description: the line
    value: ${{ steps.say.outputs.line }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: echo "line=hello ${{ inputs.who }} from $(basename "$GITHUB_ACTION_PATH")" >> "$GITHUB_OUTPUT"
"#,
    );
    write(
        &ws.join("outer/action.yml"),
        r#"
name: outer
inputs:
  name:
    description: name
    required: true
  greeting-style:
    description: style
    default: plain
outputs:
  result:
    description: r
    value: ${{ steps.nested.outputs.line }}/${{ inputs.greeting-style }}
  leaked:
    description: l
    value: ${{ steps.check.outputs.foo }}
runs:
  using: composite
  steps:
    - id: first
      shell: bash
      env:
        FOO: step-only
      run: |
        echo "first sees FOO=$FOO"
        echo "SHARED=from-composite" >> "$GITHUB_ENV"
    - id: check
      shell: bash
      run: echo "foo=${FOO:-unset}" >> "$GITHUB_OUTPUT"
    - id: nested
      uses: ./inner
      with:
        who: ${{ inputs.name }}
    - id: default-who
      uses: ./inner
"#,
    );
    let mut host = TestHost {
        workspace: ws.clone(),
        job_env: IndexMap::new(),
        log: Vec::new(),
    };
    host.job_env.insert("CALLER".into(), "c".into());
    let out = call(&mut host, "outer", &[("NAME", "gantry"), ("unknown", "x")]).await;
    assert_eq!(out.status, "success", "{:?} {:?}", out.errors, host.log);
    assert_eq!(out.outputs["result"], "hello gantry from inner/plain");
    assert_eq!(
        out.outputs["leaked"], "unset",
        "a step's env must not leak to the next step"
    );
    assert!(host.log.iter().any(|l| l == "first sees FOO=step-only"));
    // GITHUB_ENV writes reach the job; step env never does.
    assert_eq!(
        host.job_env.get("SHARED").map(String::as_str),
        Some("from-composite")
    );
    assert!(!host.job_env.contains_key("FOO"));
    // Unexpected input warning from resolve_inputs.
    let action = load_action(&ws.join("outer")).unwrap();
    let with: IndexMap<String, String> = [("unknown".to_string(), "x".to_string())]
        .into_iter()
        .collect();
    let r = resolve_inputs(Some(&action), &with, |s| Ok(s.to_string())).unwrap();
    assert!(
        r.warnings[0].starts_with("Unexpected input(s) 'unknown'"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.values["greeting-style"], "plain");
}

#[tokio::test]
async fn composite_if_and_failure_propagation() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().to_path_buf();
    write(
        &ws.join("failing/action.yml"),
        r#"
name: failing
outputs:
  cleanup:
    description: c
    value: ${{ steps.cleanup.outputs.ran }}
runs:
  using: composite
  steps:
    - shell: bash
      run: exit 3
    - id: skipped
      shell: bash
      run: echo "ran=yes" >> "$GITHUB_OUTPUT"
    - id: cleanup
      if: failure()
      shell: bash
      run: echo "ran=cleanup" >> "$GITHUB_OUTPUT"
"#,
    );
    write(
        &ws.join("calls-failing/action.yml"),
        "name: c\nruns:\n  using: composite\n  steps:\n    - uses: ./failing\n",
    );
    write(
        &ws.join("no-shell/action.yml"),
        "name: n\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n",
    );
    write(
        &ws.join("loop/action.yml"),
        "name: l\nruns:\n  using: composite\n  steps:\n    - uses: ./loop\n",
    );
    let mut host = TestHost {
        workspace: ws.clone(),
        job_env: IndexMap::new(),
        log: Vec::new(),
    };
    let out = call(&mut host, "failing", &[]).await;
    assert_eq!(out.status, "failure");
    assert_eq!(out.outputs["cleanup"], "cleanup");
    let out = call(&mut host, "calls-failing", &[]).await;
    assert_eq!(out.status, "failure", "a nested failure propagates");
    // A run step without shell: rejected when loading (and by the driver's own check).
    let e = load_action(&ws.join("no-shell")).unwrap_err();
    assert!(e.contains("shell"), "{e}");
    let out = call(&mut host, "loop", &[]).await;
    assert_eq!(out.status, "failure");
    assert!(
        host.log.iter().any(|l| l.contains("nest deeper than 10")),
        "{:?}",
        host.log
    );
}
