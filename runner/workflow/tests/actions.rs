//! action.yml loading (spec §8): the three `runs` kinds and their errors.

use gantry_workflow::{ActionRuns, Severity, load_action_dir, parse_action};

fn errors(text: &str) -> Vec<String> {
    parse_action("action.yml", text)
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
        .collect()
}

#[test]
fn node_docker_composite() {
    let node = parse_action(
        "action.yml",
        "name: n\ndescription: d\ninputs:\n  who:\n    default: ${{ github.actor }}\n    required: true\nruns:\n  using: node20\n  main: index.js\n  post: post.js\n  post-if: success()\n",
    );
    assert!(!node.has_errors(), "{:?}", node.diagnostics);
    let a = node.value.unwrap();
    assert!(a.inputs["who"].required);
    assert!(matches!(&a.runs, ActionRuns::Node { main, post: Some(_), .. } if main == "index.js"));

    let docker = parse_action(
        "action.yml",
        "name: d\nruns:\n  using: docker\n  image: Dockerfile\n  args: ['${{ inputs.x }}', b]\n  env:\n    A: '1'\n",
    );
    assert!(!docker.has_errors(), "{:?}", docker.diagnostics);
    assert!(
        matches!(&docker.value.unwrap().runs, ActionRuns::Docker { args, .. } if args.len() == 2)
    );

    let composite = parse_action(
        "action.yml",
        "name: c\noutputs:\n  o:\n    value: ${{ steps.s.outputs.o }}\nruns:\n  using: composite\n  steps:\n    - id: s\n      run: echo o=1 >> $GITHUB_OUTPUT\n      shell: bash\n    - uses: actions/checkout@v4\n      with:\n        path: x\n",
    );
    assert!(!composite.has_errors(), "{:?}", composite.diagnostics);
    assert!(
        matches!(&composite.value.unwrap().runs, ActionRuns::Composite { steps } if steps.len() == 2)
    );
}

#[test]
fn action_errors() {
    assert_eq!(
        errors("name: x\n"),
        vec!["1:1: Required property is missing: runs"]
    );
    let e = errors("runs:\n  using: node8\n  main: a.js\n");
    assert!(
        e[0].starts_with("2:10: 'using: node8' is not supported"),
        "{e:?}"
    );
    assert_eq!(
        errors("runs:\n  using: node20\n"),
        vec!["2:3: Required property is missing: main"]
    );
    let e = errors(
        "runs:\n  using: composite\n  steps:\n    - run: echo\n    - run: echo\n      shell: sh\n      timeout-minutes: 3\n",
    );
    assert_eq!(
        e,
        vec![
            "7:7: Unexpected value 'timeout-minutes'",
            "4:7: Required property is missing: shell"
        ]
    );
    let e = errors(
        "runs:\n  using: composite\n  steps:\n    - run: echo ${{ secrets.X }}\n      shell: sh\n",
    );
    assert!(e.iter().any(|m| m.contains("secrets")), "{e:?}");
    let e = errors("runs:\n  using: docker\n  image: x\n  main: y\n");
    assert_eq!(e, vec!["4:3: Unexpected value 'main'"]);
}

#[test]
fn load_action_dir_falls_back_to_yaml() {
    let dir = std::env::temp_dir().join(format!("gantry-action-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("action.yaml"),
        "name: y\nruns:\n  using: node20\n  main: m.js\n",
    )
    .unwrap();
    let loaded = load_action_dir(&dir);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    std::fs::remove_file(dir.join("action.yaml")).unwrap();
    let missing = load_action_dir(&dir);
    assert!(missing.has_errors());
    assert!(missing.diagnostics[0].message.contains("cannot read"));
    std::fs::remove_dir_all(&dir).ok();
}
