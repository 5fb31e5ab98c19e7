//! A JavaScript action with pre and post, fetched from a bare repository at a tag and run
//! with the host's node through the pieces the step runner uses: stages and conditions,
//! `INPUT_*`, `GITHUB_STATE` → `STATE_*`, `GITHUB_OUTPUT`.

mod actions_common;

use std::collections::HashSet;

use actions_common::*;
use gantry_engine::actions::node::{self, Stage};
use gantry_engine::actions::{
    ActionResolver, ResolvedKind, ResolverConfig, inputs::resolve_inputs, load_action,
};
use indexmap::IndexMap;

const ACTION: &str = r#"
name: js-fixture
inputs:
  num-octocats:
    description: n
    default: "1"
  who to greet:
    description: w
    default: World
outputs:
  greeting:
    description: g
runs:
  using: node20
  pre: pre.js
  main: dist/main.js
  post: post.js
  post-if: success()
"#;

const PRE: &str = r#"
const fs = require('fs');
fs.appendFileSync(process.env.GITHUB_STATE, `started=${Date.now()}\nphase=pre\n`);
console.log('pre ran');
"#;

const MAIN: &str = r#"
const fs = require('fs');
const n = process.env['INPUT_NUM-OCTOCATS'];
const who = process.env['INPUT_WHO_TO_GREET'];
if (process.env.STATE_phase !== 'pre') { console.log('::error::missing state'); process.exit(1); }
fs.appendFileSync(process.env.GITHUB_OUTPUT, `greeting=Hello ${who} x${n}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, `phase=main\n`);
console.log(`cwd=${process.cwd()}`);
"#;

const POST: &str = r#"
console.log(`post sees phase=${process.env.STATE_phase} started=${process.env.STATE_started ? 'yes' : 'no'}`);
"#;

fn run_node(
    node: &str,
    dir: &std::path::Path,
    script: &str,
    env: &IndexMap<String, String>,
    cwd: &std::path::Path,
) -> (
    bool,
    String,
    IndexMap<String, String>,
    IndexMap<String, String>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let state = tmp.path().join("state");
    std::fs::write(&out, "").unwrap();
    std::fs::write(&state, "").unwrap();
    let argv = node::node_argv(node, &dir.display().to_string(), script);
    let o = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .env("GITHUB_OUTPUT", &out)
        .env("GITHUB_STATE", &state)
        .output()
        .unwrap();
    let outputs = gantry_engine::envfile::read_key_value_file(&out)
        .unwrap()
        .into_iter()
        .collect();
    let st = gantry_engine::envfile::read_key_value_file(&state)
        .unwrap()
        .into_iter()
        .collect();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        outputs,
        st,
    )
}

#[test]
fn js_action_pre_main_post() {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = tmp.path().join("remotes");
    let repo = bare(&remotes, "acme", "js-action");
    let sha = commit(
        &repo,
        "main",
        &[
            ("action.yml", ACTION, false),
            ("pre.js", PRE, false),
            ("dist/main.js", MAIN, false),
            ("post.js", POST, false),
        ],
        "js",
    );
    tag(&repo, "v3", &sha);
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let r = ActionResolver::new(ResolverConfig {
        sources: vec![source(&remotes)],
        cache_root: tmp.path().join("cache"),
        offline: false,
        no_builtin: HashSet::new(),
        credentials: Default::default(),
    });
    let resolved = r.resolve("acme/js-action@v3", &ws).unwrap();
    let ResolvedKind::Dir(dir) = resolved.kind else {
        panic!()
    };
    let action = load_action(&dir).unwrap();
    let gantry_workflow::ActionRuns::Node { using, .. } = &action.runs else {
        panic!()
    };
    assert_eq!(node::required_major(using).unwrap(), 20);
    assert!(
        node::required_major("node8")
            .unwrap_err()
            .contains("not supported")
    );

    let stages = node::stages(&action, false);
    assert_eq!(
        stages.iter().map(|s| s.stage).collect::<Vec<_>>(),
        [Stage::Pre, Stage::Main, Stage::Post]
    );
    assert_eq!(
        stages[0].condition.as_deref(),
        Some("always()"),
        "pre-if defaults to always()"
    );
    assert_eq!(stages[2].condition.as_deref(), Some("success()"));
    // A local action has no pre stage.
    assert_eq!(node::stages(&action, true).len(), 2);

    let rt = node::host_node(&std::env::var("PATH").unwrap()).expect("node is installed");
    assert!(node::satisfies(&rt.version, 20), "{}", rt.version);

    let with: IndexMap<String, String> = [("NUM-OCTOCATS".to_string(), "3".to_string())]
        .into_iter()
        .collect();
    let inputs = resolve_inputs(Some(&action), &with, |s| Ok(s.to_string())).unwrap();
    let input_env = inputs.env();
    assert_eq!(input_env["INPUT_NUM-OCTOCATS"], "3");
    assert_eq!(input_env["INPUT_WHO_TO_GREET"], "World");

    let mut base: IndexMap<String, String> = IndexMap::new();
    base.insert("PATH".into(), std::env::var("PATH").unwrap());
    base.extend(input_env);
    let mut state: IndexMap<String, String> = IndexMap::new();
    let mut logs = Vec::new();
    let mut greeting = String::new();
    // pre and main now; post registered and run "at job end".
    for s in stages.iter().filter(|s| s.stage != Stage::Post) {
        let mut env = base.clone();
        env.extend(node::state_env(&state));
        let (ok, out, outputs, st) =
            run_node(&rt.program, &dir, s.target.as_deref().unwrap(), &env, &ws);
        assert!(ok, "{out}");
        logs.push(out);
        state.extend(st);
        if let Some(g) = outputs.get("greeting") {
            greeting = g.clone();
        }
    }
    assert_eq!(greeting, "Hello World x3");
    assert!(logs[1].contains(&format!("cwd={}", ws.display())));
    let mut env = base.clone();
    env.extend(node::state_env(&state));
    let (ok, out, _, _) = run_node(
        &rt.program,
        &dir,
        stages[2].target.as_deref().unwrap(),
        &env,
        &ws,
    );
    assert!(ok);
    assert_eq!(out.trim(), "post sees phase=main started=yes");
}

#[test]
fn container_node_choice() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        node::container_node(Some("v22.1.0\n"), 20, tmp.path()).unwrap(),
        node::ContainerNode::Image {
            version: "v22.1.0".into()
        }
    );
    if std::env::var_os("GANTRY_NODE_STATIC").is_none() {
        let e = node::container_node(None, 20, tmp.path()).unwrap_err();
        assert!(
            e.contains("no `node`") && e.contains("GANTRY_NODE_STATIC"),
            "{e}"
        );
        let e = node::container_node(Some("v16.0.0"), 20, tmp.path()).unwrap_err();
        assert!(e.contains("v16.0.0"), "{e}");
    }
}
