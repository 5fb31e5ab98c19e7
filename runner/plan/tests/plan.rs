//! The job DAG: fan-out/fan-in, legs, `-j` closure, cycles, deferred matrices, readiness.

use std::collections::HashSet;
use std::time::Duration;

use gantry_expr::{MapContext, Value};
use gantry_plan::{NodeKind, PlanError, PlanOptions, plan};
use gantry_workflow::{Workflow, parse_workflow};

fn wf(yaml: &str) -> Workflow {
    let l = parse_workflow("t.yml", yaml);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l.value.unwrap()
}

const FAN: &str = r#"
on: push
jobs:
  setup:
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  build:
    needs: setup
    runs-on: ubuntu-latest
    strategy:
      max-parallel: 2
      fail-fast: false
      matrix:
        os: [ubuntu, windows]
        node: [18, 20]
    steps: [{run: echo}]
  lint:
    needs: setup
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  deploy:
    needs: [build, lint]
    runs-on: ubuntu-latest
    steps: [{run: echo}]
  docs:
    runs-on: ubuntu-latest
    steps: [{run: echo}]
"#;

#[test]
fn fan_out_fan_in_with_legs() {
    let w = wf(FAN);
    let p = plan(&w, &PlanOptions::default()).unwrap();
    assert_eq!(p.len(), 8);
    let build = &p.jobs["build"];
    assert_eq!(build.nodes.len(), 4);
    assert!(!build.fail_fast);
    assert_eq!(build.max_parallel, Some(2));
    let names: Vec<&str> = build
        .nodes
        .iter()
        .map(|n| p.node(*n).name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "build (ubuntu, 18)",
            "build (ubuntu, 20)",
            "build (windows, 18)",
            "build (windows, 20)"
        ]
    );
    match &p.node(build.nodes[3]).kind {
        NodeKind::Leg {
            index,
            total,
            matrix,
        } => {
            assert_eq!((*index, *total), (3, 4));
            assert_eq!(matrix["os"], "windows");
        }
        k => panic!("{k:?}"),
    }
    let deploy = p.jobs["deploy"].nodes[0];
    // deploy waits for all 4 legs and lint
    assert_eq!(p.waits_for(deploy).len(), 5);
    assert_eq!(p.jobs["deploy"].ancestors, ["setup", "build", "lint"]);
    assert_eq!(p.jobs["deploy"].layer, 2);
    assert_eq!(
        p.layers,
        vec![vec!["setup", "docs"], vec!["build", "lint"], vec!["deploy"]]
    );
    let setup = p.jobs["setup"].nodes[0];
    assert_eq!(p.dependents(setup).len(), 5);

    // readiness: incremental and batch agree
    let mut t = p.tracker();
    let roots = t.initial(&p);
    assert_eq!(roots.len(), 2);
    assert_eq!(roots, p.roots());
    let ready = t.finish(&p, setup);
    assert_eq!(ready.len(), 5);
    let mut finished: HashSet<_> = [setup].into_iter().collect();
    let mut batch = p.ready_after(&finished);
    batch.retain(|n| p.node(*n).job_id != "docs");
    assert_eq!(batch.len(), 5);
    for n in &build.nodes {
        assert!(t.finish(&p, *n).is_empty());
        finished.insert(*n);
    }
    assert!(!p.ready_after(&finished).contains(&deploy));
    assert_eq!(t.finish(&p, p.jobs["lint"].nodes[0]), vec![deploy]);
    assert!(
        t.finish(&p, p.jobs["lint"].nodes[0]).is_empty(),
        "idempotent"
    );
}

#[test]
fn only_jobs_selects_transitive_needs() {
    let w = wf(FAN);
    let opts = PlanOptions {
        only_jobs: vec!["deploy".into()],
        ..Default::default()
    };
    let p = plan(&w, &opts).unwrap();
    let ids: Vec<&String> = p.jobs.keys().collect();
    assert_eq!(ids, ["setup", "build", "lint", "deploy"]);
    let opts = PlanOptions {
        only_jobs: vec!["lint".into()],
        ..Default::default()
    };
    let p = plan(&w, &opts).unwrap();
    assert_eq!(p.jobs.keys().collect::<Vec<_>>(), ["setup", "lint"]);
    let opts = PlanOptions {
        only_jobs: vec!["nope".into()],
        ..Default::default()
    };
    assert_eq!(
        plan(&w, &opts).unwrap_err(),
        PlanError::UnknownJob("nope".into())
    );
}

#[test]
fn matrix_filters_apply() {
    let w = wf(FAN);
    let opts = PlanOptions {
        matrix_filters: vec!["os:windows".parse().unwrap()],
        ..Default::default()
    };
    let p = plan(&w, &opts).unwrap();
    assert_eq!(p.jobs["build"].nodes.len(), 2);
    let opts = PlanOptions {
        matrix_filters: vec!["os:macos".parse().unwrap()],
        ..Default::default()
    };
    let p = plan(&w, &opts).unwrap();
    assert_eq!(p.node(p.jobs["build"].nodes[0]).kind, NodeKind::NoLegs);
}

#[test]
fn critical_path_by_durations() {
    let w = wf(FAN);
    let p = plan(&w, &PlanOptions::default()).unwrap();
    let secs = |id: &str, leg: Option<usize>| -> u64 {
        match (id, leg) {
            ("setup", _) => 10,
            ("build", Some(2)) => 100,
            ("build", _) => 20,
            ("lint", _) => 50,
            ("deploy", _) => 5,
            _ => 500,
        }
    };
    let (total, path) = p.critical_path(|n| {
        let node = p.node(n);
        let leg = match &node.kind {
            NodeKind::Leg { index, .. } => Some(*index),
            _ => None,
        };
        Some(Duration::from_secs(secs(&node.job_id, leg)))
    });
    // docs alone (500) is longer than setup+build[2]+deploy (115)
    assert_eq!(total, Duration::from_secs(500));
    assert_eq!(path.len(), 1);
    let (total, path) = p.critical_path(|n| {
        let node = p.node(n);
        if node.job_id == "docs" {
            return None;
        }
        let leg = match &node.kind {
            NodeKind::Leg { index, .. } => Some(*index),
            _ => None,
        };
        Some(Duration::from_secs(secs(&node.job_id, leg)))
    });
    assert_eq!(total, Duration::from_secs(115));
    let names: Vec<&str> = path.iter().map(|n| p.node(*n).name.as_str()).collect();
    assert_eq!(names, ["setup", "build (windows, 18)", "deploy"]);
}

#[test]
fn cycle_is_an_error_naming_it() {
    // The loader refuses cycles itself; the planner must too, so close the loop by hand.
    let mut w = wf(r#"
on: push
jobs:
  a: {runs-on: x, steps: [{run: echo}]}
  b: {needs: a, runs-on: x, steps: [{run: echo}]}
  c: {needs: b, runs-on: x, steps: [{run: echo}]}
"#);
    let c = w.jobs["b"].needs[0].clone();
    w.jobs["a"]
        .needs
        .push(gantry_workflow::Spanned::new("c".into(), c.span));
    let e = plan(&w, &PlanOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the jobs' needs form a cycle: a -> c -> b -> a"
    );
}

const DYN: &str = r#"
on: push
jobs:
  prepare:
    runs-on: x
    outputs:
      matrix: ${{ steps.m.outputs.matrix }}
    steps: [{id: m, run: echo}]
  test:
    needs: prepare
    runs-on: x
    strategy:
      matrix: ${{ fromJSON(needs.prepare.outputs.matrix) }}
    steps: [{run: echo}]
  fromin:
    runs-on: x
    strategy:
      fail-fast: ${{ inputs.ff }}
      matrix:
        v: ${{ fromJSON(inputs.versions) }}
        os: [linux]
    steps: [{run: echo}]
  after:
    needs: [test]
    runs-on: x
    steps: [{run: echo}]
"#;

#[test]
fn needs_matrix_is_deferred_others_evaluated() {
    let w = wf(DYN);
    let mut ctx = MapContext::new();
    ctx.insert(
        "inputs",
        Value::from_json(&serde_json::json!({"versions": "[1, 2, 3]", "ff": false})),
    );
    let opts = PlanOptions {
        ctx: Some(&ctx),
        ..Default::default()
    };
    let p = plan(&w, &opts).unwrap();
    let t = p.jobs["test"].nodes[0];
    assert_eq!(p.node(t).kind, NodeKind::Deferred);
    assert_eq!(p.jobs["test"].nodes.len(), 1);
    assert_eq!(p.dependents(t), p.jobs["after"].nodes);
    let f = &p.jobs["fromin"];
    assert_eq!(f.nodes.len(), 3);
    assert!(!f.fail_fast);
    assert_eq!(p.node(f.nodes[2]).name, "fromin (3, linux)");

    // Without contexts, expression strategies are deferred too.
    let p = plan(&w, &PlanOptions::default()).unwrap();
    assert_eq!(p.node(p.jobs["fromin"].nodes[0]).kind, NodeKind::Deferred);

    // The engine expands the deferred job once needs are known.
    let mut ctx = MapContext::new();
    ctx.insert(
        "needs",
        Value::from_json(&serde_json::json!({"prepare": {"outputs": {"matrix": "{\"include\": [{\"a\": 1}, {\"a\": 2}]}"}}})),
    );
    let exp = gantry_plan::expand_job(&w.jobs["test"], &ctx, &[]).unwrap();
    assert_eq!(exp.total(), 2);
    assert!(exp.fail_fast);
}

#[test]
fn static_matrix_error_names_the_job() {
    // The loader rejects this statically; build the model by hand.
    let mut w = wf(r#"
on: push
jobs:
  t:
    runs-on: x
    strategy:
      matrix:
        include: [{a: 1}]
    steps: [{run: echo}]
"#);
    let other = wf(r#"
on: push
jobs:
  t:
    runs-on: x
    strategy:
      matrix:
        exclude: [{a: 1}]
        a: [1, 2]
    steps: [{run: echo}]
"#);
    let Some(gantry_workflow::Node::Map(entries)) = w.jobs["t"]
        .strategy
        .as_ref()
        .map(|s| s.matrix.clone().unwrap().value)
    else {
        panic!()
    };
    let Some(gantry_workflow::Node::Map(extra)) = other.jobs["t"]
        .strategy
        .as_ref()
        .map(|s| s.matrix.clone().unwrap().value)
    else {
        panic!()
    };
    let mut all = entries.clone();
    all.push(extra[0].clone());
    w.jobs["t"]
        .strategy
        .as_mut()
        .unwrap()
        .matrix
        .as_mut()
        .unwrap()
        .value = gantry_workflow::Node::Map(all);
    let e = plan(&w, &PlanOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "job 't': Matrix exclude key 'a' does not match any key within the matrix"
    );
}

#[test]
fn expression_job_name_gets_no_suffix() {
    let w = wf(r#"
on: push
jobs:
  t:
    name: Test on ${{ matrix.os }}
    runs-on: x
    strategy: {matrix: {os: [a, b]}}
    steps: [{run: echo}]
  u:
    name: Unit
    runs-on: x
    strategy: {matrix: {os: [a]}}
    steps: [{run: echo}]
"#);
    let p = plan(&w, &PlanOptions::default()).unwrap();
    assert_eq!(
        p.node(p.jobs["t"].nodes[0]).name,
        "Test on ${{ matrix.os }}"
    );
    assert_eq!(p.node(p.jobs["u"].nodes[0]).name, "Unit (a)");
}

#[test]
fn insert_directive_and_spliced_sequences_as_act() {
    let w = wf(r#"
on: push
jobs:
  t:
    runs-on: x
    strategy:
      matrix:
        os: [a, "${{ fromJSON('[\"b\", \"c\"]') }}"]
        ${{ insert }}: ${{ fromJSON('{"v":[1,2]}') }}
    steps: [{run: echo}]
"#);
    let ctx = MapContext::new();
    let exp = gantry_plan::expand_job(&w.jobs["t"], &ctx, &[]).unwrap();
    let names: Vec<String> = exp
        .legs
        .unwrap()
        .iter()
        .map(|l| l.display_name("t"))
        .collect();
    assert_eq!(
        names,
        [
            "t (a, 1)", "t (a, 2)", "t (b, 1)", "t (b, 2)", "t (c, 1)", "t (c, 2)"
        ]
    );
}

#[test]
fn inputs_required_checked_for_their_event_and_undeclared_passed_with_a_warning() {
    let w = wf(r#"
on:
  push:
  workflow_dispatch:
    inputs:
      level: {type: choice, options: [info, warn], required: true}
      n: {type: number}
jobs:
  t: {runs-on: x, steps: [{run: echo}]}
"#);
    let given = |kv: &[(&str, &str)]| -> indexmap::IndexMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let e = gantry_plan::workflow_inputs(&w, "workflow_dispatch", &given(&[])).unwrap_err();
    assert!(e.to_string().contains("'level' is required"), "{e}");
    assert!(matches!(&e, gantry_plan::InputError::Missing { name } if name == "level"));
    // A push run: the declarations give types and defaults, nothing is required.
    let r = gantry_plan::workflow_inputs(&w, "push", &given(&[])).unwrap();
    assert_eq!(r.values["n"], serde_json::json!(0));
    let r = gantry_plan::workflow_inputs(
        &w,
        "workflow_dispatch",
        &given(&[("level", "warn"), ("extra", "1")]),
    )
    .unwrap();
    assert_eq!(r.values["extra"], serde_json::json!("1"));
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("'extra'"), "{:?}", r.warnings);
    assert!(
        gantry_plan::workflow_inputs(&w, "workflow_dispatch", &given(&[("level", "debug")]))
            .is_err()
    );
}
