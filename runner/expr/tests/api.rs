//! Public API behaviour: templates, `if:` conversion, contexts and functions used,
//! status callbacks, hashFiles, errors with positions.

use gantry_expr::{
    ErrorKind, EvalContext, ExprError, MapContext, ParseOptions, StatusFunction, Template, Value,
    if_condition, parse,
};
use serde_json::json;

fn ctx() -> MapContext {
    let mut c = MapContext::new();
    c.insert("github", Value::from_json(&json!({"ref": "refs/heads/main", "event": {"labels": [{"name": "bug"}, {"name": "help"}]}})));
    c.insert(
        "matrix",
        Value::from_json(&json!({"os": "ubuntu", "exp": true})),
    );
    c
}

#[test]
fn parse_and_eval() {
    let e = parse("github.event.labels.*.name").unwrap();
    assert_eq!(e.eval(&ctx()).unwrap().to_json(), json!(["bug", "help"]));
    let e =
        parse("success() && contains(GITHUB.ref, 'MAIN') && hashFiles('x') || matrix.os").unwrap();
    assert_eq!(
        e.referenced_contexts().collect::<Vec<_>>(),
        vec!["github", "matrix"]
    );
    assert_eq!(
        e.called_functions().collect::<Vec<_>>(),
        vec!["success", "contains", "hashfiles"]
    );
    assert!(e.uses_status_function());
}

#[test]
fn parse_errors_have_positions() {
    let e = parse("github.ref == 'x' && foo").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Parsing);
    assert_eq!(e.position, Some(21));
    assert_eq!(e.message, "Unrecognized named-value: 'foo'");
    let e = parse("1 = 2").unwrap_err();
    assert_eq!((e.kind, e.position), (ErrorKind::Lexing, Some(2)));
    let e = parse("(1").unwrap_err();
    assert!(e.message.starts_with("Unexpected end of expression"), "{e}");
    let only = ParseOptions::with_contexts(&["matrix"]);
    assert!(gantry_expr::parse_with("github.ref", &only).is_err());
    assert!(gantry_expr::parse_with("MATRIX.os", &only).is_ok());
}

#[test]
fn templates() {
    let c = ctx();
    match Template::parse("${{ matrix.exp }}").unwrap() {
        t @ Template::Expr(_) => assert_eq!(t.eval(&c).unwrap().to_json(), json!(true)),
        other => panic!("{other:?}"),
    }
    let t = Template::parse("os=${{ matrix.os }} '{x}' ${{ github.ref }}").unwrap();
    assert_eq!(
        t.eval(&c).unwrap().to_json(),
        json!("os=ubuntu '{x}' refs/heads/main")
    );
    assert_eq!(
        t.converted_expr().unwrap(),
        "format('os={0} ''{{x}}'' {1}', matrix.os, github.ref)"
    );
    assert_eq!(
        t.referenced_contexts().collect::<Vec<_>>(),
        vec!["matrix", "github"]
    );
    match Template::parse("${{ '${{ not-an-expr }}' }}").unwrap() {
        Template::Literal(s) => assert_eq!(s, "${{ not-an-expr }}"),
        other => panic!("{other:?}"),
    }
    assert!(!Template::parse("plain").unwrap().has_expressions());
    let e = Template::parse("ab ${{ matrix.os }} ${{ nope }}").unwrap_err();
    assert_eq!(e.position, Some(20));
    assert!(Template::parse("x ${{ matrix.os }").is_err());
    assert!(Template::parse("${{ }}").is_err());
}

#[test]
fn if_conditions() {
    assert_eq!(if_condition(""), "success()");
    assert_eq!(if_condition("  "), "success()");
    assert_eq!(
        if_condition("${{ github.ref == 'x' }}"),
        "success() && (github.ref == 'x')"
    );
    assert_eq!(
        if_condition("github.ref == 'x'"),
        "success() && (github.ref == 'x')"
    );
    assert_eq!(if_condition("${{ always() }}"), "always()");
    assert_eq!(if_condition("123 || failure()"), "123 || failure()");
    assert_eq!(
        if_condition("success('build', 'b2')"),
        "success('build', 'b2')"
    );
    assert_eq!(
        if_condition("${{ matrix.os }} == 'x'"),
        "success() && (format('{0} == ''x''', matrix.os))"
    );
    assert_eq!(if_condition("Cancelled()"), "Cancelled()");
}

struct Failed;
impl EvalContext for Failed {
    fn context(&self, _: &str) -> Option<Value> {
        None
    }
    fn status(&self, f: StatusFunction) -> Result<bool, ExprError> {
        Ok(matches!(
            f,
            StatusFunction::Failure | StatusFunction::Always
        ))
    }
}

#[test]
fn status_callbacks() {
    let run = |s: &str| {
        parse(&if_condition(s))
            .unwrap()
            .eval(&Failed)
            .unwrap()
            .is_truthy()
    };
    assert!(!run("true"));
    assert!(run("failure()"));
    assert!(run("always()"));
    assert!(!run("!failure() && !cancelled()"));
    let d = MapContext::new();
    assert!(parse("success()").unwrap().eval(&d).unwrap().is_truthy());
    assert!(!parse("cancelled()").unwrap().eval(&d).unwrap().is_truthy());
    assert!(parse("hashFiles('*')").unwrap().eval(&d).is_err());
}

#[test]
fn hash_files() {
    let dir = std::env::temp_dir().join(format!("gantry-expr-hash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/deep")).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    std::fs::write(dir.join("sub/b.txt"), "b").unwrap();
    std::fs::write(dir.join("sub/deep/c.lock"), "c").unwrap();
    let c = MapContext::new().with_workspace(&dir);
    let h = |p: &str| parse(p).unwrap().eval(&c).unwrap().as_string().into_owned();
    use sha2::{Digest, Sha256};
    let mut outer = Sha256::new();
    for s in ["a", "b"] {
        outer.update(Sha256::digest(s.as_bytes()));
    }
    assert_eq!(h("hashFiles('**/*.txt')"), hex::encode(outer.finalize()));
    let mut one = Sha256::new();
    one.update(Sha256::digest(b"b"));
    let only_b = hex::encode(one.finalize());
    assert_eq!(h("hashFiles('**/*.txt', '!a.txt')"), only_b);
    assert_eq!(h("hashFiles('sub/b.txt')"), only_b);
    // A directory pattern matches its descendants.
    assert_eq!(h("hashFiles('sub', '!sub/deep')"), only_b);
    assert_eq!(h("hashFiles('nothing-*')"), "");
    assert!(
        parse("hashFiles('--bogus', 'x')")
            .unwrap()
            .eval(&c)
            .is_err()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn values() {
    let v = Value::from_json(&json!({"B": 1, "a": [1.5, null, "x"]}));
    assert_eq!(v.kind_name(), "Object");
    assert_eq!(v.as_string(), "Object");
    assert_eq!(
        v.to_json_pretty(),
        "{\n  \"B\": 1,\n  \"a\": [\n    1.5,\n    null,\n    \"x\"\n  ]\n}"
    );
    assert!(!Value::Number(f64::NAN).is_truthy());
    assert!(Value::string("false").is_truthy());
    assert_eq!(Value::Number(f64::INFINITY).to_json(), json!("Infinity"));
    let big = format!("'{}'", "x".repeat(21_001));
    assert!(parse(&big).is_err());
}

#[test]
fn case_sensitive_env() {
    let mut env = gantry_expr::Object::new_case_sensitive();
    env.insert("Key", Value::string("a"));
    env.insert("KEY", Value::string("b"));
    let mut c = MapContext::new();
    c.insert("env", Value::object(env));
    let get = |e: &str| parse(e).unwrap().eval(&c).unwrap().to_json();
    assert_eq!(get("env.Key"), json!("a"));
    assert_eq!(get("env.KEY"), json!("b"));
    assert_eq!(get("env.key"), json!(null));
    assert_eq!(
        get("toJSON(env)"),
        json!("{\n  \"Key\": \"a\",\n  \"KEY\": \"b\"\n}")
    );
}

#[test]
fn value_helpers() {
    let v = Value::from_json(&json!({"A": {"b": [true, 2, "x"]}}));
    let arr = v
        .get("a")
        .and_then(|a| a.get("B"))
        .and_then(Value::as_array)
        .unwrap();
    assert_eq!(arr[0].as_bool(), Some(true));
    assert_eq!(arr[1].as_f64(), Some(2.0));
    assert_eq!(arr[2].as_str(), Some("x"));
    assert!(Value::Null.is_null());
    assert_eq!(Value::from("s").kind_name(), "String");
    assert_eq!(Value::from(vec![Value::from(1.0)]).as_string(), "Array");
    assert_eq!(parse("  github.ref ").unwrap().to_string(), "  github.ref ");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let c = MapContext::new();
    let ok = format!("{}1{}", "(".repeat(90), ")".repeat(90));
    assert_eq!(parse(&ok).unwrap().eval(&c).unwrap().to_json(), json!(1));
    for src in [
        format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        "!".repeat(20_000),
        format!("{}1{}", "format('{0}', ".repeat(2_000), ")".repeat(2_000)),
        "github".to_string() + &"[0]".repeat(6_000),
    ] {
        assert!(parse(&src).is_err(), "{}", &src[..20]);
    }
    let deep = format!("fromJSON('{}1{}')", "[".repeat(64), "]".repeat(64));
    assert!(parse(&deep).unwrap().eval(&c).is_ok());
    let deeper = format!("fromJSON('{}1{}')", "[".repeat(65), "]".repeat(65));
    assert!(parse(&deeper).unwrap().eval(&c).is_err());
}

#[test]
fn long_chains_are_errors_not_crashes() {
    for src in [
        "1 == ".repeat(4_000) + "1",
        "1 < ".repeat(4_000) + "1",
        "github".to_string() + &".a".repeat(8_000),
    ] {
        assert!(parse(&src).is_err());
    }
}

#[test]
fn depth_limits_say_which_limit_was_hit() {
    use gantry_expr::{MAX_DEPTH, MAX_NESTING};
    assert_eq!(MAX_DEPTH, 50, "GitHub's ExpressionConstants.MaxDepth");
    // GitHub's tree depth: 49 nested calls around a literal is 50 levels, one more is not.
    let calls = |n: usize| format!("{}1{}", "format('{0}', ".repeat(n), ")".repeat(n));
    assert!(parse(&calls(MAX_DEPTH - 1)).is_ok());
    let err = parse(&calls(MAX_DEPTH)).unwrap_err();
    assert_eq!(
        err.message,
        format!("Exceeded max expression depth {MAX_DEPTH}")
    );
    // Parentheses make no tree node: past the nesting guard the message names that guard.
    let parens = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&parens(MAX_NESTING - 1)).is_ok());
    let err = parse(&parens(MAX_NESTING + 1)).unwrap_err();
    assert!(
        err.message
            .starts_with(&format!("Exceeded max expression nesting {MAX_NESTING}")),
        "{}",
        err.message
    );
}
