//! Preflight: what a run would miss, found before anything runs (`gantry run --dry-run`,
//! `gantry validate --preflight`). For every job of the run's workflows:
//! - **images**: the image its `runs-on` labels map to (`-P`, `--host`), its `container:`,
//!   its `services:` and `docker://` steps, after the `--image` / `images:` mapping, must
//!   exist in the local Docker daemon (Gantry never pulls);
//! - **actions**: every `uses:` must resolve (built-in, local, the action cache, or fetched
//!   from its repository; with `--offline` the cache only) exactly as the run resolves it;
//! - **secrets**: every `secrets.NAME` a job's steps reference must be given (`GITHUB_TOKEN`
//!   is always there);
//! - **inputs**: `workflow_dispatch` inputs marked `required` without a default must be given
//!   (`--input`) when the event is `workflow_dispatch`.
//!
//! Values that are expressions (`container: ${{ matrix.image }}`) are not guessed at.
//! Each finding names the job, the step, what is missing and what to do.

use std::collections::{BTreeSet, HashMap};

use crate::actions::reference::{UsesRef, parse_uses};
use crate::backend::docker::Daemon;
use crate::job::placement::{PlacementChoice, choose};
use crate::run::RunConfig;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Action,
    Secret,
    Input,
    Platform,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Action => "action",
            Kind::Secret => "secret",
            Kind::Input => "input",
            Kind::Platform => "platform",
        }
    }
}

/// One missing piece.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// The workflow file (relative to the repository).
    pub workflow: String,
    /// The job id (empty for the workflow as a whole).
    pub job: String,
    /// The step (`#<n> <name or uses>`), when a step needs it.
    pub step: Option<String>,
    /// What is missing (the image, the reference, the secret's or input's name).
    pub subject: String,
    /// What went wrong.
    pub what: String,
    /// What to do.
    pub fix: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: job {}", self.workflow, self.job)?;
        if let Some(s) = &self.step {
            write!(f, ", step {s}")?;
        }
        write!(
            f,
            ": {} {}: {}; {}",
            self.kind.as_str(),
            self.subject,
            self.what,
            self.fix
        )
    }
}

fn is_expr(s: &str) -> bool {
    s.contains("${{")
}

fn step_label(i: usize, s: &gantry_workflow::Step) -> String {
    let what = s
        .name
        .as_ref()
        .map(|n| n.value.clone())
        .or_else(|| s.uses.as_ref().map(|u| u.value.clone()))
        .or_else(|| s.id.as_ref().map(|u| u.value.clone()))
        .unwrap_or_else(|| "run".into());
    format!("#{} {what}", i + 1)
}

/// `secrets.NAME` and `secrets['NAME']` references in `text`.
pub fn secret_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("secrets") {
        let at = i + p;
        i = at + 7;
        // A whole word: not `mysecrets` nor `inputs.secrets_x`.
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_' || b[at - 1] == b'.') {
            continue;
        }
        let rest = &text[i..];
        let name: String = if let Some(r) = rest.strip_prefix('.') {
            r.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        } else if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            r.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        } else {
            continue;
        };
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Checks the run's workflows; findings in workflow, job, step order.
pub async fn check(cfg: &RunConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let docker = connect().await;
    // Secrets referenced outside every job (workflow `env:`): checked once per workflow.
    let mut image_cache: HashMap<String, Result<(), String>> = HashMap::new();
    for w in &cfg.workflows {
        let wf = &w.workflow;
        let text = std::fs::read_to_string(cfg.root.join(&w.rel_path)).unwrap_or_default();
        let mk = |kind: Kind,
                  job: &str,
                  step: Option<String>,
                  subject: &str,
                  what: String,
                  fix: String| {
            Finding {
                kind,
                workflow: w.rel_path.clone(),
                job: job.to_string(),
                step,
                subject: subject.to_string(),
                what,
                fix,
            }
        };
        if cfg.event_name == "workflow_dispatch"
            && let Some(t) = wf.on.events.get("workflow_dispatch")
        {
            for (name, def) in &t.inputs {
                if def.required && def.default.is_none() && !cfg.inputs.contains_key(name) {
                    out.push(mk(
                        Kind::Input,
                        "",
                        None,
                        name,
                        "a required workflow_dispatch input is not given".into(),
                        format!("pass --input {name}=VALUE"),
                    ));
                }
            }
        }
        let in_jobs: BTreeSet<String> = wf
            .jobs
            .values()
            .flat_map(|j| {
                secret_refs(
                    text.get(j.span.offset..j.span.offset + j.span.len)
                        .unwrap_or(""),
                )
            })
            .collect();
        for n in secret_refs(&text) {
            if in_jobs.contains(&n) || n == "GITHUB_TOKEN" || cfg.secrets.contains_key(&n) {
                continue;
            }
            out.push(mk(
                Kind::Secret,
                "(workflow env)",
                None,
                &n,
                "referenced but not given (it evaluates to an empty string)".into(),
                format!("pass -s {n}=VALUE, -s {n} (from the environment) or --secret-file"),
            ));
        }
        for (id, job) in &wf.jobs {
            if !cfg.only_jobs.is_empty() && !cfg.only_jobs.contains(id) {
                continue;
            }
            // Images: the platform, the job container, services, docker:// steps.
            let mut images: Vec<(Option<String>, String, &'static str)> = Vec::new();
            let labels: Vec<String> = job
                .runs_on
                .as_ref()
                .map(|r| r.labels.iter().map(|l| l.value.clone()).collect())
                .unwrap_or_default();
            if job.uses.is_none() && !labels.iter().any(|l| is_expr(l)) {
                match choose(&labels, &cfg.platforms, cfg.all_host) {
                    PlacementChoice::Run(p) if job.container.is_none() => {
                        if let Some(i) = p.image {
                            images.push((None, i, "runs-on"))
                        }
                    }
                    PlacementChoice::Unavailable(why) => out.push(mk(
                        Kind::Platform,
                        id,
                        None,
                        &labels.join(", "),
                        "the job would be skipped".into(),
                        why,
                    )),
                    _ => {}
                }
            }
            if let Some(c) = &job.container {
                images.push((None, c.image.value.clone(), "container"));
            }
            for (sid, s) in &job.services {
                let _ = sid;
                images.push((None, s.image.value.clone(), "services"));
            }
            for (i, s) in job.steps.iter().enumerate() {
                if let Some(u) = &s.uses
                    && let Some(img) = u.value.trim().strip_prefix("docker://")
                {
                    images.push((Some(step_label(i, s)), img.to_string(), "docker://"));
                }
            }
            for (step, image, from) in images {
                if is_expr(&image) || image.trim().is_empty() {
                    continue;
                }
                let local = cfg.local_image(&image);
                let res = match image_cache.get(&local) {
                    Some(r) => r.clone(),
                    None => {
                        let r = image_present(docker.as_ref(), &local).await;
                        image_cache.insert(local.clone(), r.clone());
                        r
                    }
                };
                if let Err(why) = res {
                    let mapped = if local != image {
                        format!(" (mapped from {image})")
                    } else {
                        String::new()
                    };
                    out.push(mk(
                        Kind::Image,
                        id,
                        step,
                        &local,
                        format!("{from} image{mapped} {why}"),
                        image_fix(&image, from),
                    ));
                }
            }
            // Actions.
            let uses: Vec<(Option<String>, String)> = match &job.uses {
                Some(u) => vec![(None, u.value.clone())],
                None => job
                    .steps
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        s.uses
                            .as_ref()
                            .map(|u| (Some(step_label(i, s)), u.value.clone()))
                    })
                    .collect(),
            };
            for (step, u) in uses {
                if is_expr(&u) {
                    continue;
                }
                if let Ok(UsesRef::Docker { .. }) = parse_uses(&u) {
                    continue;
                }
                let resolver = cfg.resolver.clone();
                let root = cfg.root.clone();
                let u2 = u.clone();
                let res =
                    tokio::task::spawn_blocking(move || resolver.resolve(&u2, &root).map(|_| ()))
                        .await
                        .unwrap_or_else(|e| {
                            Err(crate::actions::resolve::ResolveError {
                                uses: u.clone(),
                                tried: vec![e.to_string()],
                            })
                        });
                if let Err(e) = res {
                    let fix = if cfg.resolver.config().offline {
                        "run once without --offline to fill the action cache, or vendor it under ./.github/actions"
                    } else {
                        "check the reference (owner/repo@ref), the network and GANTRY_GIT_TOKEN/GITHUB_TOKEN for private repositories"
                    };
                    out.push(mk(
                        Kind::Action,
                        id,
                        step,
                        &u,
                        e.tried.join("; "),
                        fix.to_string(),
                    ));
                }
            }
            // Secrets, by step (the job's own keys count for the job).
            let slice =
                |s: &gantry_workflow::Span| text.get(s.offset..s.offset + s.len).unwrap_or("");
            let mut seen: BTreeSet<String> = BTreeSet::new();
            let mut report =
                |names: BTreeSet<String>, step: Option<String>, out: &mut Vec<Finding>| {
                    for n in names {
                        if n == "GITHUB_TOKEN"
                            || cfg.secrets.contains_key(&n)
                            || !seen.insert(n.clone())
                        {
                            continue;
                        }
                        out.push(mk(
                            Kind::Secret,
                            id,
                            step.clone(),
                            &n,
                            "referenced but not given (it evaluates to an empty string)".into(),
                            format!(
                                "pass -s {n}=VALUE, -s {n} (from the environment) or --secret-file"
                            ),
                        ));
                    }
                };
            for (i, s) in job.steps.iter().enumerate() {
                report(
                    secret_refs(slice(&s.span)),
                    Some(step_label(i, s)),
                    &mut out,
                );
            }
            report(secret_refs(slice(&job.span)), None, &mut out);
        }
    }
    out
}

/// The run's own hint for a missing image (the same words as when the run stops at it).
fn image_fix(image: &str, from: &str) -> String {
    use crate::backend::docker::{ImageUse, missing_image_hint};
    let used = if from == "runs-on" {
        ImageUse::Label
    } else {
        ImageUse::Named
    };
    missing_image_hint(image, used)
}

async fn connect() -> Option<Daemon> {
    Daemon::connect().await.ok()
}

async fn image_present(docker: Option<&Daemon>, image: &str) -> Result<(), String> {
    let Some(d) = docker else {
        return Err("cannot be checked: no Docker daemon answers".into());
    };
    d.find_image(image).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references() {
        let s = secret_refs(
            "run: echo ${{ secrets.TOKEN }} ${{secrets['OTHER-1']}} ${{ inputs.secrets_x }} mysecrets.X",
        );
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec!["OTHER-1".to_string(), "TOKEN".to_string()]
        );
    }
}
