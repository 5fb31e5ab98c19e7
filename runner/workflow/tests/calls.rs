//! Reusable-workflow calls checked against the called workflow (in-repo, no shared data).

use gantry_workflow::{CallOptions, PermissionsPolicy, check_workflow_calls, parse_workflow};

const CALLED: &str = "on:\n  workflow_call:\n    inputs:\n      name:\n        type: string\n        required: true\n      flag:\n        type: boolean\n    secrets:\n      token:\n        required: true\njobs:\n  deploy:\n    permissions:\n      contents: write\n    runs-on: x\n    steps:\n      - run: echo\n";

fn check(caller: &str, opts: &CallOptions) -> Vec<String> {
    let wf = parse_workflow("caller.yml", caller)
        .value
        .expect("caller parses");
    let mut resolve = |r: &str| (r == "o/r/.github/workflows/d.yml@v1").then(|| CALLED.to_string());
    check_workflow_calls(&wf, &mut resolve, opts)
        .into_iter()
        .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
        .collect()
}

#[test]
fn inputs_secrets_and_permissions() {
    let opts = CallOptions {
        permissions_policy: PermissionsPolicy::Write,
        ..Default::default()
    };
    let ok = "on: push\njobs:\n  c:\n    uses: o/r/.github/workflows/d.yml@v1\n    with:\n      name: n\n      flag: true\n    secrets: inherit\n";
    assert_eq!(check(ok, &opts), Vec::<String>::new());

    let bad = "on: push\njobs:\n  c:\n    uses: o/r/.github/workflows/d.yml@v1\n    with:\n      flag: maybe\n      extra: 1\n    secrets:\n      other: x\n";
    let got = check(bad, &opts);
    assert_eq!(
        got,
        vec![
            "4:11: Input name is required, but not provided while calling.",
            "6:13: Unexpected value 'maybe'",
            "7:14: Invalid input, extra is not defined in the referenced workflow.",
            "4:11: Secret token is required, but not provided while calling.",
            "9:14: Invalid secret, other is not defined in the referenced workflow.",
        ]
    );

    let limited = CallOptions::default();
    let got = check(ok, &limited);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("3:3: Error calling workflow 'o/r/.github/workflows/d.yml@v1'. The nested job 'deploy' is requesting 'contents: write', but is only allowed 'contents: read'."), "{got:?}");

    // Unresolvable references are skipped.
    let other = "on: push\njobs:\n  c:\n    uses: o/r/.github/workflows/missing.yml@v1\n";
    assert!(check(other, &opts).is_empty());
}
