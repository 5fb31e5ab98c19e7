//! Reusable-workflow values: typed inputs with defaults, secrets (named and inherit),
//! outputs, and a built-in run through `run_builtin` with input warnings.

use gantry_engine::actions::workflow_call::{
    call_inputs, call_outputs, call_secrets, job_display_name,
};
use gantry_expr::Value;
use gantry_workflow::CallSecrets;
use indexmap::IndexMap;

const CALLEE: &str = r#"
on:
  workflow_call:
    inputs:
      env-name:
        type: string
        required: true
      replicas:
        type: number
        default: 2
      dry-run:
        type: boolean
      tag:
        type: string
        default: ${{ github.sha }}
    secrets:
      token:
        required: true
      optional:
    outputs:
      url:
        value: ${{ jobs.deploy.outputs.url }}
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - run: echo
"#;

fn callee() -> gantry_workflow::Workflow {
    let l = gantry_workflow::parse_workflow("callee.yml", CALLEE);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.value.unwrap()
}

#[test]
fn typed_inputs_and_defaults() {
    let wf = callee();
    let mut with = IndexMap::new();
    with.insert("env-name".to_string(), Value::string("prod"));
    with.insert("REPLICAS".to_string(), Value::string("5"));
    let v = call_inputs(&wf, &with, |s| {
        Ok(Value::string(s.replace("${{ github.sha }}", "abc")))
    })
    .unwrap();
    let Value::Object(o) = v else { panic!() };
    assert_eq!(o.get("env-name").unwrap().as_string(), "prod");
    assert!(matches!(o.get("replicas"), Some(Value::Number(n)) if *n == 5.0));
    assert!(
        matches!(o.get("dry-run"), Some(Value::Bool(false))),
        "missing optional boolean defaults to false"
    );
    assert_eq!(o.get("tag").unwrap().as_string(), "abc");

    let mut bad = IndexMap::new();
    bad.insert("replicas".to_string(), Value::string("many"));
    bad.insert("undeclared".to_string(), Value::string("x"));
    let errs = call_inputs(&wf, &bad, |s| Ok(Value::string(s))).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("undeclared is not defined")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("env-name is required")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("wrong type")), "{errs:?}");
}

#[test]
fn secrets_and_outputs() {
    let wf = callee();
    let caller: IndexMap<String, String> = [
        ("token".to_string(), "t".to_string()),
        ("other".to_string(), "o".to_string()),
    ]
    .into_iter()
    .collect();
    let inherited =
        call_secrets(&wf, Some(&CallSecrets::Inherit), &IndexMap::new(), &caller).unwrap();
    assert_eq!(inherited.len(), 2);
    let named: IndexMap<String, String> = [("token".to_string(), "t".to_string())]
        .into_iter()
        .collect();
    let m = call_secrets(
        &wf,
        Some(&CallSecrets::Map(IndexMap::new())),
        &named,
        &caller,
    )
    .unwrap();
    assert_eq!(m["token"], "t");
    let errs = call_secrets(&wf, None, &IndexMap::new(), &caller).unwrap_err();
    assert!(errs[0].contains("token is required"), "{errs:?}");
    let extra: IndexMap<String, String> = [
        ("token".to_string(), "t".to_string()),
        ("nope".to_string(), "n".to_string()),
    ]
    .into_iter()
    .collect();
    assert!(
        call_secrets(
            &wf,
            Some(&CallSecrets::Map(IndexMap::new())),
            &extra,
            &caller
        )
        .is_err()
    );
    assert_eq!(call_outputs(&wf)["url"], "${{ jobs.deploy.outputs.url }}");
    assert_eq!(job_display_name("call", "deploy"), "call / deploy");
    let plain = gantry_workflow::parse_workflow(
        "p.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n",
    )
    .value
    .unwrap();
    assert!(
        call_inputs(&plain, &IndexMap::new(), |s| Ok(Value::string(s))).unwrap_err()[0]
            .contains("workflow_call")
    );
}

#[tokio::test]
async fn run_builtin_applies_defaults_and_warns() {
    use gantry_engine::actions::builtin::{ActionEnv, GithubFacts, run_builtin};
    let tmp = tempfile::tempdir().unwrap();
    let env = ActionEnv {
        workspace: tmp.path().to_path_buf(),
        repo_root: tmp.path().to_path_buf(),
        run_dir: tmp.path().join("run"),
        cache_dir: tmp.path().join("cache"),
        job: None,
        sharing: gantry_engine::backend::Sharing::RUNNER,
        github: GithubFacts {
            git_ref: "refs/heads/main".into(),
            sha: "1234567890".into(),
            ..Default::default()
        },
        env: IndexMap::new(),
        job_status: "success".into(),
        offline: true,
    };
    let with: IndexMap<String, String> = [
        ("images".to_string(), "app".to_string()),
        ("bogus".to_string(), "1".to_string()),
    ]
    .into_iter()
    .collect();
    let (inputs, res) = run_builtin("docker/metadata-action", &with, |s| Ok(s.to_string()), &env)
        .await
        .unwrap();
    assert_eq!(
        inputs["sep-tags"], "\n",
        "default from the embedded action.yml"
    );
    assert_eq!(res.outputs["tags"], "app:main");
    assert!(
        res.warnings
            .iter()
            .any(|w| w.contains("Unexpected input(s) 'bogus'")),
        "{:?}",
        res.warnings
    );
    assert!(
        run_builtin("acme/none", &with, |s| Ok(s.to_string()), &env)
            .await
            .is_err()
    );
}
