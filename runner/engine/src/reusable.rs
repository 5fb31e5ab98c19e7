//! Running a reusable-workflow call (`jobs.<id>.uses`, GHA-SEMANTICS §2.7): resolve the
//! called file (local `./.github/workflows/f.yml` against the calling workflow's repository,
//! or `owner/repo/.github/workflows/f.yml@ref` through the run's action resolver), load it,
//! map `with:` to typed inputs and `secrets:` (named or `inherit`), run its jobs as a nested
//! graph shown as `caller / callee`, then derive the caller's result from the callee's jobs
//! and evaluate `on.workflow_call.outputs` with the `jobs` context.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use gantry_expr::{Object, Value};
use gantry_workflow::{CallSecrets, Node, Severity};
use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use crate::actions::workflow_call::{self, MAX_DEPTH, MAX_WORKFLOWS};
use crate::actions::{ResolvedKind, UsesRef};
use crate::events::{Status, Text};
use crate::expr_scope::Ctx;
use crate::job::{JobOutcome, at, secrets_value};
use crate::run::{JobRecord, RunShared, Scope};
use crate::scheduler::{Sched, aggregate, finish_record, run_graph};

/// One leg of a caller job, ready to call.
pub(crate) struct CallLeg {
    /// The caller's scope.
    pub scope: Arc<Scope>,
    pub job_id: String,
    pub key: Text,
    /// Display name of the caller leg (prefix of the callee's job names).
    pub name: String,
    /// Job-level context of the leg: github, inputs, vars, needs, strategy, matrix.
    pub ctx: Ctx,
    /// The caller's needs (prefixed job ids), for events.
    pub needs: Vec<String>,
}

/// A called workflow, loaded: its file, the repository root its own `./` calls resolve
/// against, and a name for the distinct-workflows count.
struct Callee {
    workflow: gantry_workflow::Workflow,
    repo_root: PathBuf,
    identity: String,
}

/// Resolves and loads the workflow `uses` called from `scope`.
async fn load_callee(shared: &RunShared, scope: &Scope, uses: &str) -> Result<Callee, String> {
    let resolver = shared.cfg.resolver.clone();
    let root = scope.repo_root.clone();
    let u = uses.to_string();
    let resolved = tokio::task::spawn_blocking(move || resolver.resolve(&u, &root))
        .await
        .map_err(|e| format!("internal error resolving '{uses}': {e}"))?
        .map_err(|e| e.to_string())?;
    let ResolvedKind::Workflow(path) = &resolved.kind else {
        return Err(format!(
            "'{uses}' is not a reusable workflow (expected ./.github/workflows/<file>.yml or \
             owner/repo/.github/workflows/<file>.yml@ref)"
        ));
    };
    let (repo_root, identity) = match &resolved.uses {
        UsesRef::RemoteWorkflow(r) => {
            let mut root = path.clone();
            for _ in Path::new(&r.path).components() {
                root.pop();
            }
            let sha = resolved.sha.clone().unwrap_or_default();
            (
                root,
                format!("{}/{}/{}@{sha}", r.owner, r.repo, r.path).to_lowercase(),
            )
        }
        _ => (scope.repo_root.clone(), path.display().to_string()),
    };
    let loaded = match shared.cfg.workflow_texts.get(path) {
        Some(text) => gantry_workflow::parse_workflow(&path.display().to_string(), text),
        None => gantry_workflow::load_workflow(path),
    };
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}:{}:{}: {}", d.file, d.span.line, d.span.col, d.message))
        .collect();
    match loaded.value {
        Some(w) if errors.is_empty() => Ok(Callee {
            workflow: w,
            repo_root,
            identity,
        }),
        _ => Err(format!(
            "the called workflow '{uses}' is invalid:\n{}",
            errors.join("\n")
        )),
    }
}

/// Runs one caller leg; returns the records of every job it ran (or one failure record for
/// the caller when the call itself is wrong) and the caller's outcome for `needs`.
pub(crate) async fn run_call(
    shared: Arc<RunShared>,
    sched: Arc<Sched>,
    leg: CallLeg,
    cancel: CancellationToken,
) -> (Vec<JobRecord>, JobOutcome) {
    let started = Instant::now();
    let scope = leg.scope.clone();
    let job = &scope.workflow.jobs[&leg.job_id];
    let fail = |msg: String| {
        let rec = finish_record(
            &shared,
            &scope,
            &leg.key,
            &leg.job_id,
            &leg.name,
            &leg.needs,
            false,
            Status::Failure,
            IndexMap::new(),
            false,
            Some(format!(
                "Error: {}: job '{}': {msg}",
                scope.workflow.path, leg.job_id
            )),
        );
        (
            vec![rec],
            JobOutcome {
                result: Status::Failure,
                continue_on_error: false,
                outputs: IndexMap::new(),
                duration: started.elapsed(),
            },
        )
    };
    let Some(uses) = &job.uses else {
        return fail("no 'uses:'".into());
    };
    let uses_at = |m: &str| at(uses, m);

    // Nesting limits (§2.7): ten levels (the top-level caller and nine levels of called
    // workflows) and fifty distinct called workflows per top-level workflow.
    if scope.level + 1 > MAX_DEPTH {
        return fail(uses_at(&format!(
            "calling '{}' would nest reusable workflows deeper than GitHub's limit of {MAX_DEPTH} levels (the top-level workflow and {} levels of called workflows)",
            uses.value,
            MAX_DEPTH - 1
        )));
    }
    let callee = match load_callee(&shared, &scope, &uses.value).await {
        Ok(c) => c,
        Err(e) => return fail(uses_at(&e)),
    };
    {
        // A workflow already counted never fails; a new one fails once fifty are counted
        // (and is not counted, so later calls of counted workflows still run).
        let mut called = scope.called.lock().unwrap();
        let new = !called.contains(&callee.identity);
        if new && called.len() >= MAX_WORKFLOWS {
            drop(called);
            return fail(uses_at(&format!(
                "more than {MAX_WORKFLOWS} distinct reusable workflows are called from {} (GitHub's limit)",
                shared.cfg.workflows[scope.top].rel_path
            )));
        }
        called.insert(callee.identity.clone());
    }
    let callee_wf = callee.workflow;

    // Inputs: `with:` evaluated with the leg's context; typed and defaulted by the callee.
    let with = match evaluate_with(job, &leg.ctx) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut default_ctx = Ctx::new();
    for name in ["github", "inputs", "vars"] {
        if let Some(v) = leg.ctx.get(name) {
            default_ctx.set(name, v.clone());
        }
    }
    let inputs = match workflow_call::call_inputs(&callee_wf, &with, |s| {
        default_ctx.eval_template(s).map_err(|e| e.to_string())
    }) {
        Ok(i) => i,
        Err(errs) => return fail(uses_at(&errs.join("; "))),
    };

    // Secrets: named ones evaluated with the caller's secrets; `inherit` passes them all.
    let evaluated = match evaluate_secrets(job, &leg.ctx, &scope.secrets) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let secrets = match workflow_call::call_secrets(
        &callee_wf,
        job.secrets.as_ref(),
        &evaluated,
        &scope.secrets,
    ) {
        Ok(s) => s,
        Err(errs) => return fail(uses_at(&errs.join("; "))),
    };

    let outputs_def = workflow_call::call_outputs(&callee_wf);
    let callee_scope = Arc::new(Scope {
        workflow: Arc::new(callee_wf),
        top: scope.top,
        inputs: inputs.clone(),
        secrets,
        key_prefix: format!("{}/", leg.key),
        name_prefix: format!("{} / ", leg.name),
        id_prefix: format!("{}{}/", scope.id_prefix, leg.job_id),
        repo_root: callee.repo_root,
        level: scope.level + 1,
        called: scope.called.clone(),
    });
    let graph = run_graph(
        shared.clone(),
        sched,
        vec![callee_scope.clone()],
        false,
        cancel.clone(),
    )
    .await;

    // The caller's result: the callee's jobs as `needs` would see them.
    let results: Vec<(Status, bool)> = graph.jobs.values().map(|(s, _)| (*s, false)).collect();
    let mut result = aggregate(&results);
    if result == Status::Success && cancel.is_cancelled() {
        result = Status::Cancelled;
    }
    let mut records = graph.records;

    // Outputs: `on.workflow_call.outputs.*.value` with github, inputs, vars and jobs.
    let masker = crate::shared_masker::Masker::with_secrets(
        shared
            .cfg
            .secrets
            .values()
            .chain(callee_scope.secrets.values()),
    );
    let (outputs, problems) = callee_outputs(&leg.ctx, inputs, &graph.jobs, &outputs_def, &masker);
    if problems.iter().any(|p| p.starts_with("Error: ")) {
        result = Status::Failure;
    }
    if !problems.is_empty() {
        // Reported on the caller, which has no job of its own: one record carries them.
        let st = if result == Status::Failure {
            Status::Failure
        } else {
            Status::Success
        };
        records.push(finish_record(
            &shared,
            &scope,
            &leg.key,
            &leg.job_id,
            &leg.name,
            &leg.needs,
            false,
            st,
            outputs.clone(),
            false,
            Some(problems.join("\n")),
        ));
    }
    (
        records,
        JobOutcome {
            result,
            continue_on_error: false,
            outputs,
            duration: started.elapsed(),
        },
    )
}

/// `jobs.<id>.with`, each value evaluated with the leg's context (a value without an
/// expression keeps its YAML type).
fn evaluate_with(job: &gantry_workflow::Job, ctx: &Ctx) -> Result<IndexMap<String, Value>, String> {
    let mut with = IndexMap::new();
    for (k, v) in &job.with {
        let value = match &v.value {
            Node::String(s) if s.contains("${{") => ctx
                .eval_template(s)
                .map_err(|e| at(v, &format!("with.{k}: {e}")))?,
            other => Value::from_json(&other.to_json()),
        };
        with.insert(k.clone(), value);
    }
    Ok(with)
}

/// `jobs.<id>.secrets` when it names them: each evaluated with the caller's secrets.
fn evaluate_secrets(
    job: &gantry_workflow::Job,
    ctx: &Ctx,
    caller_secrets: &IndexMap<String, String>,
) -> Result<IndexMap<String, String>, String> {
    let mut evaluated = IndexMap::new();
    if let Some(CallSecrets::Map(m)) = &job.secrets {
        let mut c = ctx.clone();
        c.set("secrets", secrets_value(caller_secrets));
        for (k, v) in m {
            let x = c
                .eval_string(&v.value)
                .map_err(|e| at(v, &format!("secrets.{k}: {e}")))?;
            evaluated.insert(k.clone(), x);
        }
    }
    Ok(evaluated)
}

/// The call's outputs (`on.workflow_call.outputs.*.value`, with the caller's `github` and
/// `vars`, the call's `inputs` and the callee's `jobs`) and the lines to report: a value
/// that would be masked is left out, an evaluation error (a line starting `Error: `)
/// fails the call.
fn callee_outputs(
    caller_ctx: &Ctx,
    inputs: Value,
    callee_jobs: &IndexMap<String, (Status, IndexMap<String, String>)>,
    outputs_def: &IndexMap<String, String>,
    masker: &crate::shared_masker::Masker,
) -> (IndexMap<String, String>, Vec<String>) {
    let mut jobs = Object::new();
    for (id, (st, outs)) in callee_jobs {
        let mut e = Object::new();
        e.insert("result", Value::string(st.as_str()));
        let mut o = Object::new();
        for (k, v) in outs {
            o.insert(k.clone(), Value::string(v));
        }
        e.insert("outputs", Value::object(o));
        jobs.insert(id.clone(), Value::object(e));
    }
    let mut octx = Ctx::new();
    for name in ["github", "vars"] {
        if let Some(v) = caller_ctx.get(name) {
            octx.set(name, v.clone());
        }
    }
    octx.set("inputs", inputs);
    octx.set("jobs", Value::object(jobs));
    let mut outputs = IndexMap::new();
    let mut problems = Vec::new();
    for (name, template) in outputs_def {
        match octx.eval_string(template) {
            Ok(v) if v.is_empty() => {}
            Ok(v) if masker.would_mask(&v) => {
                problems.push(format!("Skip output '{name}' since it may contain secret."));
            }
            Ok(v) => {
                outputs.insert(name.clone(), v);
            }
            Err(e) => problems.push(format!("Error: on.workflow_call.outputs.{name}: {e}")),
        }
    }
    (outputs, problems)
}
