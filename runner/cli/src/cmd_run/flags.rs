//! Parsing of `gantry run`'s repeatable `K=V` / `K:V` flags: secrets (`-s`), variables,
//! env, inputs, platforms and `--matrix` filters. Bad input is a usage error (exit 2) that
//! names the flag and the argument.

use std::collections::BTreeSet;

use anyhow::bail;
use gantry_engine::run::WorkflowEntry;
use gantry_plan::matrix::{MatrixFilter, filter_text};
use indexmap::IndexMap;

use super::BadInput;

/// `KEY<sep>VALUE` items into a map (a later item wins). An empty key is refused.
pub(super) fn kv(
    items: &[String],
    sep: char,
    what: &str,
) -> anyhow::Result<IndexMap<String, String>> {
    let mut m = IndexMap::new();
    for i in items {
        match i.split_once(sep) {
            Some((k, _)) if k.trim().is_empty() => {
                bail!(BadInput(format!(
                    "{what} '{i}': the name before '{sep}' is empty"
                )))
            }
            Some((k, v)) => {
                m.insert(k.trim().to_string(), v.to_string());
            }
            None => bail!(BadInput(format!("{what} '{i}': expected KEY{sep}VALUE"))),
        }
    }
    Ok(m)
}

/// `-s K=V`, or `-s K` for the value of the environment variable K (act's form). An empty
/// name is refused, and so is a K that is not set: an empty secret would pass silently.
/// `env` looks a variable up (the process environment outside tests).
pub(super) fn secrets(
    items: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<IndexMap<String, String>> {
    let mut out = IndexMap::new();
    for s in items {
        let (name, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), v.to_string()),
            None => {
                let name = s.trim();
                if name.is_empty() {
                    bail!(BadInput("-s '': the secret name is empty".into()));
                }
                match env(name) {
                    Some(v) => {
                        if v.is_empty() {
                            eprintln!(
                                "gantry: warning: -s {name}: the environment variable {name} is empty, so the secret is empty"
                            );
                        }
                        (name, v)
                    }
                    None => bail!(BadInput(format!(
                        "-s {name}: the environment variable {name} is not set (give -s {name}=VALUE, or export {name})"
                    ))),
                }
            }
        };
        if name.is_empty() {
            bail!(BadInput(format!(
                "-s '{s}': the secret name before '=' is empty"
            )));
        }
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// `--matrix K:V` items, in order; the same key given twice means either value.
pub(super) fn matrix_filters(items: &[String]) -> anyhow::Result<Vec<MatrixFilter>> {
    items
        .iter()
        .map(|i| {
            i.parse::<MatrixFilter>()
                .map_err(|e| BadInput(format!("--matrix: {e}")).into())
        })
        .collect()
}

/// Refuses `--matrix` filters that cannot select anything: a key whose given values match
/// no leg of any job with that key, or a key no matrix has. Matrices that are only known
/// when their job starts (expressions) cannot be checked here and let an unknown key pass.
pub(super) fn check_matrix_filters(
    workflows: &[WorkflowEntry],
    filters: &[MatrixFilter],
) -> anyhow::Result<()> {
    if filters.is_empty() {
        return Ok(());
    }
    // Per key: every value some leg has, as `--matrix` compares it.
    let mut seen: IndexMap<String, BTreeSet<String>> = IndexMap::new();
    let mut dynamic = false;
    for w in workflows {
        for job in w.workflow.jobs.values() {
            if job.strategy.is_none() {
                continue;
            }
            if gantry_plan::strategy::has_expressions(job) {
                dynamic = true;
                continue;
            }
            let empty = gantry_expr::MapContext::new();
            // A strategy error is the engine's to report when the job runs.
            let Ok(exp) = gantry_plan::expand_job(job, &empty, &[]) else {
                continue;
            };
            for leg in exp.legs.iter().flatten() {
                for (k, v) in &leg.values {
                    seen.entry(k.clone()).or_default().insert(filter_text(v));
                }
            }
        }
    }
    let mut keys: IndexMap<&str, Vec<&str>> = IndexMap::new();
    for f in filters {
        keys.entry(&f.key).or_default().push(&f.value);
    }
    for (key, wanted) in keys {
        let given = wanted
            .iter()
            .map(|v| format!("{key}:{v}"))
            .collect::<Vec<_>>()
            .join(" / ");
        match seen.get(key) {
            Some(values) if !wanted.iter().any(|v| values.contains(*v)) => {
                bail!(BadInput(format!(
                    "--matrix {given} selects no matrix leg: '{key}' is one of {}",
                    quoted(values.iter().map(String::as_str))
                )))
            }
            Some(_) => {}
            None if dynamic => {}
            None if seen.is_empty() => {
                bail!(BadInput(format!(
                    "--matrix {given}: no job of these workflows has a matrix"
                )))
            }
            None => bail!(BadInput(format!(
                "--matrix {given}: no matrix has the key '{key}' (keys: {})",
                quoted(seen.keys().map(String::as_str))
            ))),
        }
    }
    Ok(())
}

fn quoted<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The image map: `images:` of `<root>/.gantry/config.yml` (when the file exists), then
/// `--image NAME=LOCAL` items over it. A bad `images:` entry is an error at its
/// `file:line:col`; the rest of the file is checked where the delivery gates load it.
pub(super) fn images(
    items: &[String],
    root: &std::path::Path,
) -> anyhow::Result<IndexMap<String, String>> {
    let mut m = IndexMap::new();
    let file = root.join(".gantry/config.yml");
    if file.is_file() {
        let (config, diags) = gantry_delivery::load_config_with(&file, gantry_workflow::parse_tree);
        let bad: Vec<String> = diags
            .iter()
            .filter(|d| {
                d.severity == gantry_workflow::Severity::Error && d.message.starts_with("images")
            })
            .map(|d| format!("{}:{}:{}: {}", d.file, d.span.line, d.span.col, d.message))
            .collect();
        if !bad.is_empty() {
            bail!(BadInput(bad.join("\n")));
        }
        if let Some(c) = config {
            m.extend(c.images);
        }
    }
    for (name, local) in kv(items, '=', "--image")? {
        if local.trim().is_empty() {
            bail!(BadInput(format!(
                "--image '{name}=': the local image after '=' is empty"
            )));
        }
        m.insert(name, local.trim().to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflows(text: &str) -> Vec<WorkflowEntry> {
        let loaded = gantry_workflow::parse_workflow("ci.yml", text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        vec![WorkflowEntry {
            workflow: loaded.value.unwrap(),
            rel_path: ".github/workflows/ci.yml".into(),
        }]
    }

    const MATRIX: &str = "on: push\njobs:\n  test:\n    runs-on: x\n    strategy:\n      matrix:\n        os: [linux, macos]\n        node: [18, 20]\n    steps: [{run: echo}]\n";

    fn check(wfs: &[WorkflowEntry], args: &[&str]) -> anyhow::Result<()> {
        let items: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        check_matrix_filters(wfs, &matrix_filters(&items)?)
    }

    #[test]
    fn a_mistyped_matrix_value_names_the_key_the_value_and_the_values() {
        let wfs = workflows(MATRIX);
        let err = check(&wfs, &["os:windos"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "--matrix os:windos selects no matrix leg: 'os' is one of 'linux', 'macos'"
        );
        assert!(err_is_usage(check(&wfs, &["os:windos"])));
        let err = check(&wfs, &["oss:linux"]).unwrap_err().to_string();
        assert!(err.contains("no matrix has the key 'oss'"), "{err}");
        assert!(err.contains("'os', 'node'"), "{err}");
        check(&wfs, &["os:linux", "node:20"]).unwrap();
    }

    #[test]
    fn repeated_matrix_keys_are_alternatives() {
        let wfs = workflows(MATRIX);
        let items: Vec<String> = vec!["os:linux".into(), "os:macos".into()];
        let filters = matrix_filters(&items).unwrap();
        assert_eq!(filters.len(), 2, "both values are kept");
        check_matrix_filters(&wfs, &filters).unwrap();
        // One good alternative is enough.
        check(&wfs, &["os:windos", "os:macos"]).unwrap();
        let legs = gantry_plan::expand_job(
            &wfs[0].workflow.jobs["test"],
            &gantry_expr::MapContext::new(),
            &filters,
        )
        .unwrap()
        .legs
        .unwrap();
        assert_eq!(legs.len(), 4, "linux and macos legs, both node versions");
    }

    #[test]
    fn matrices_known_only_at_run_time_let_unknown_keys_pass() {
        let wfs = workflows(
            "on: push\njobs:\n  test:\n    runs-on: x\n    strategy:\n      matrix: ${{ fromJSON(vars.m) }}\n    steps: [{run: echo}]\n",
        );
        check(&wfs, &["os:linux"]).unwrap();
    }

    #[test]
    fn secrets_refuse_an_empty_name_and_an_unset_variable() {
        let env = |k: &str| (k == "SET").then(|| "from-env".to_string());
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = secrets(&items(&["=x"]), env).unwrap_err().to_string();
        assert_eq!(err, "-s '=x': the secret name before '=' is empty");
        let err = secrets(&items(&["UNSET_K"]), env).unwrap_err();
        assert!(err.downcast_ref::<BadInput>().is_some());
        assert_eq!(
            err.to_string(),
            "-s UNSET_K: the environment variable UNSET_K is not set (give -s UNSET_K=VALUE, or export UNSET_K)"
        );
        let got = secrets(&items(&["SET", "A=b=c", "EMPTY="]), env).unwrap();
        assert_eq!(got["SET"], "from-env");
        assert_eq!(got["A"], "b=c");
        assert_eq!(
            got["EMPTY"], "",
            "an explicit empty value is the user's choice"
        );
    }

    #[test]
    fn key_value_flags_refuse_an_empty_name() {
        let err = kv(&["=x".into()], '=', "--var").unwrap_err().to_string();
        assert_eq!(err, "--var '=x': the name before '=' is empty");
        let err = kv(&["  =x".into()], '=', "--env").unwrap_err().to_string();
        assert!(err.starts_with("--env '  =x'"), "{err}");
        assert_eq!(kv(&["K=v".into()], '=', "--input").unwrap()["K"], "v");
    }

    fn err_is_usage(r: anyhow::Result<()>) -> bool {
        r.is_err_and(|e| e.downcast_ref::<BadInput>().is_some())
    }
}
