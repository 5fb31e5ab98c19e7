//! The [`EvalContext`] the engine evaluates expressions against: named context values plus
//! the meaning of the status functions (job level or step level, §3.9).

use std::path::PathBuf;

use gantry_expr::{ErrorKind, EvalContext, ExprError, StatusFunction, Template, Value};
use indexmap::IndexMap;

use crate::events::Status;

/// How status functions are answered.
#[derive(Debug, Clone, Default)]
pub enum StatusMode {
    /// No status functions expected (defaults: success/always true).
    #[default]
    None,
    /// Step level: `job.status`.
    Step(Status),
    /// Job level: results of every ancestor in the needs graph (direct needs first), and
    /// whether the run was cancelled.
    Job {
        ancestors: Vec<(String, Status)>,
        direct: Vec<String>,
        cancelled: bool,
    },
}

/// Named contexts (lowercase names) plus the status-function mode and hashFiles root.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub values: IndexMap<&'static str, Value>,
    pub status: StatusMode,
    pub workspace: Option<PathBuf>,
}

impl Ctx {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, name: &'static str, v: Value) -> &mut Self {
        self.values.insert(name, v);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Evaluates a `${{ }}` template (plain text gives a string).
    pub fn eval_template(&self, src: &str) -> Result<Value, ExprError> {
        if !src.contains("${{") {
            return Ok(Value::string(src));
        }
        Template::parse(src)?.eval(self)
    }

    /// Evaluates a template and converts the result to a string as interpolation does.
    pub fn eval_string(&self, src: &str) -> Result<String, ExprError> {
        if !src.contains("${{") {
            return Ok(src.to_string());
        }
        Ok(self.eval_template(src)?.as_string().into_owned())
    }

    /// Evaluates an `if:` condition after GitHub's processing (§3.10) to its truthiness.
    pub fn eval_if(&self, cond: Option<&str>) -> Result<bool, ExprError> {
        let text = gantry_expr::if_condition(cond.unwrap_or(""));
        let opts = gantry_expr::ParseOptions {
            status_function_args: matches!(self.status, StatusMode::Job { .. }),
            ..Default::default()
        };
        let e = gantry_expr::parse_with(&text, &opts)?;
        Ok(e.eval(self)?.is_truthy())
    }
}

impl EvalContext for Ctx {
    fn context(&self, name_lowercase: &str) -> Option<Value> {
        self.values.get(name_lowercase).cloned()
    }

    fn status(&self, f: StatusFunction) -> Result<bool, ExprError> {
        Ok(match &self.status {
            StatusMode::None => matches!(f, StatusFunction::Success | StatusFunction::Always),
            StatusMode::Step(s) => match f {
                StatusFunction::Always => true,
                StatusFunction::Success => *s == Status::Success,
                StatusFunction::Failure => *s == Status::Failure,
                StatusFunction::Cancelled => *s == Status::Cancelled,
            },
            StatusMode::Job {
                ancestors,
                cancelled,
                ..
            } => match f {
                StatusFunction::Always => true,
                StatusFunction::Cancelled => *cancelled,
                StatusFunction::Success => {
                    !*cancelled && ancestors.iter().all(|(_, s)| *s == Status::Success)
                }
                StatusFunction::Failure => ancestors.iter().any(|(_, s)| *s == Status::Failure),
            },
        })
    }

    fn status_with_args(&self, f: StatusFunction, job_ids: &[String]) -> Result<bool, ExprError> {
        if job_ids.is_empty() {
            return self.status(f);
        }
        let StatusMode::Job {
            ancestors,
            cancelled,
            ..
        } = &self.status
        else {
            return self.status(f);
        };
        let mut picked = Vec::new();
        for id in job_ids {
            match ancestors.iter().find(|(a, _)| a.eq_ignore_ascii_case(id)) {
                Some((_, s)) => picked.push(*s),
                None => {
                    return Err(ExprError::new(
                        ErrorKind::Evaluation,
                        format!("Job '{id}' is not a dependency of this job"),
                    ));
                }
            }
        }
        Ok(match f {
            StatusFunction::Success => !*cancelled && picked.iter().all(|s| *s == Status::Success),
            StatusFunction::Failure => picked.contains(&Status::Failure),
            _ => self.status(f)?,
        })
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, ExprError> {
        match &self.workspace {
            Some(ws) => gantry_expr::hash_files(ws, patterns),
            None => Err(ExprError::new(
                ErrorKind::Evaluation,
                "hashFiles is not available here",
            )),
        }
    }
}

/// The job's env: `--env` and `ACT`, then the workflow's `env`, then the job's; the `env`
/// context of `ctx` is left set to it.
pub(crate) fn job_env(
    shared: &crate::run::RunShared,
    wf: &gantry_workflow::Workflow,
    job: &gantry_workflow::Job,
    ctx: &mut Ctx,
) -> Result<IndexMap<String, String>, String> {
    let mut env_ctx: IndexMap<String, String> = shared.cfg.env.clone();
    env_ctx.insert("ACT".into(), "true".into());
    ctx.set(
        "env",
        crate::github_contexts::string_map_value(env_ctx.iter()),
    );
    let m = crate::job::eval_string_map(&wf.env, ctx).map_err(|e| format!("workflow env: {e}"))?;
    env_ctx.extend(m);
    ctx.set(
        "env",
        crate::github_contexts::string_map_value(env_ctx.iter()),
    );
    let m = crate::job::eval_string_map(&job.env, ctx).map_err(|e| format!("job env: {e}"))?;
    env_ctx.extend(m);
    ctx.set(
        "env",
        crate::github_contexts::string_map_value(env_ctx.iter()),
    );
    Ok(env_ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_status() {
        let mut c = Ctx::new();
        c.status = StatusMode::Step(Status::Failure);
        assert!(!c.eval_if(None).unwrap());
        assert!(c.eval_if(Some("failure()")).unwrap());
        assert!(c.eval_if(Some("${{ always() }}")).unwrap());
        c.status = StatusMode::Step(Status::Success);
        assert!(c.eval_if(Some("true")).unwrap());
        assert!(!c.eval_if(Some("${{ false }}")).unwrap());
    }

    #[test]
    fn job_status_skip_rule() {
        let mut c = Ctx::new();
        c.status = StatusMode::Job {
            ancestors: vec![("a".into(), Status::Skipped)],
            direct: vec!["a".into()],
            cancelled: false,
        };
        assert!(!c.eval_if(None).unwrap());
        assert!(
            c.eval_if(Some("${{ !failure() && !cancelled() }}"))
                .unwrap()
        );
    }
}
