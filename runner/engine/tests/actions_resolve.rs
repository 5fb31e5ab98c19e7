//! Resolution of `uses:` through `file://` sources into the shared cache: every reference
//! form, tags/branches/full and short shas, cache reuse, offline mode, concurrency.

mod actions_common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use actions_common::*;
use gantry_engine::actions::{
    ActionResolver, Origin, ResolvedKind, ResolverConfig, UsesRef, parse_uses,
};

const COMPOSITE: &str =
    "name: hello\nruns:\n  using: composite\n  steps:\n    - run: echo hello\n      shell: bash\n";
const JS: &str = "name: js\nruns:\n  using: node20\n  main: index.js\n";

struct Fixture {
    _tmp: tempfile::TempDir,
    remotes: std::path::PathBuf,
    cache: std::path::PathBuf,
    ws: std::path::PathBuf,
    v1: String,
    v2: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let remotes = tmp.path().join("remotes");
    let repo = bare(&remotes, "acme", "hello");
    let v1 = commit(
        &repo,
        "main",
        &[
            ("action.yml", COMPOSITE, false),
            ("sub/js/action.yml", JS, false),
            ("sub/js/index.js", "console.log('v1')", false),
            (
                ".github/workflows/reuse.yml",
                "on: workflow_call\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo\n",
                false,
            ),
            ("bin/tool.sh", "#!/bin/sh\necho hi\n", true),
        ],
        "v1",
    );
    tag(&repo, "v1", &v1);
    tag_annotated(&repo, "v1.0.0", &v1);
    let v2 = commit(
        &repo,
        "main",
        &[
            ("action.yml", COMPOSITE, false),
            ("sub/js/action.yml", JS, false),
            ("sub/js/index.js", "console.log('v2')", false),
        ],
        "v2",
    );
    tag(&repo, "v2", &v2);
    commit(
        &repo,
        "feature/x",
        &[("action.yml", COMPOSITE, false)],
        "feature",
    );
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(ws.join("local-action")).unwrap();
    std::fs::write(ws.join("local-action/action.yml"), COMPOSITE).unwrap();
    std::fs::create_dir_all(ws.join(".github/workflows")).unwrap();
    std::fs::write(
        ws.join(".github/workflows/called.yml"),
        "on: workflow_call\n",
    )
    .unwrap();
    Fixture {
        cache: tmp.path().join("cache"),
        remotes,
        ws,
        v1,
        v2,
        _tmp: tmp,
    }
}

fn cfg(f: &Fixture, offline: bool) -> ResolverConfig {
    ResolverConfig {
        sources: vec![source(&f.remotes)],
        cache_root: f.cache.clone(),
        offline,
        no_builtin: HashSet::new(),
        credentials: Default::default(),
    }
}

fn dir_of(k: &ResolvedKind) -> &Path {
    match k {
        ResolvedKind::Dir(d) | ResolvedKind::Workflow(d) => d,
        other => panic!("expected a directory, got {other:?}"),
    }
}

#[test]
fn every_reference_form() {
    let f = fixture();
    let r = ActionResolver::new(cfg(&f, false));
    // tag, branch, full sha, short sha, annotated tag
    let a = r.resolve("acme/hello@v1", &f.ws).unwrap();
    assert_eq!(a.sha.as_deref(), Some(f.v1.as_str()));
    assert!(matches!(a.origin, Origin::Fetched(_)));
    assert!(dir_of(&a.kind).join("action.yml").is_file());
    assert_eq!(
        r.resolve("acme/hello@v1.0.0", &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v1.as_str())
    );
    assert_eq!(
        r.resolve("acme/hello@main", &f.ws).unwrap().sha.as_deref(),
        Some(f.v2.as_str())
    );
    assert_eq!(
        r.resolve(&format!("acme/hello@{}", f.v1), &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v1.as_str())
    );
    assert_eq!(
        r.resolve(&format!("acme/hello@{}", &f.v1[..8]), &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v1.as_str())
    );
    assert!(r.resolve("acme/hello@feature/x", &f.ws).is_ok());
    // sub path: contents at that commit
    let js = r.resolve("acme/hello/sub/js@v1", &f.ws).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir_of(&js.kind).join("index.js")).unwrap(),
        "console.log('v1')"
    );
    let js2 = r.resolve("acme/hello/sub/js@v2", &f.ws).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir_of(&js2.kind).join("index.js")).unwrap(),
        "console.log('v2')"
    );
    // executable bit kept
    use std::os::unix::fs::PermissionsExt;
    let root = dir_of(&a.kind);
    assert_ne!(
        std::fs::metadata(root.join("bin/tool.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0
    );
    // remote reusable workflow
    let w = r
        .resolve("acme/hello/.github/workflows/reuse.yml@v1", &f.ws)
        .unwrap();
    assert!(matches!(w.kind, ResolvedKind::Workflow(ref p) if p.is_file()));
    assert!(
        r.resolve("acme/hello/.github/workflows/reuse.yml@v2", &f.ws)
            .is_err(),
        "not in v2"
    );
    // local forms
    assert!(matches!(
        r.resolve("./local-action", &f.ws).unwrap().kind,
        ResolvedKind::Dir(_)
    ));
    assert!(matches!(
        r.resolve("./.github/workflows/called.yml", &f.ws)
            .unwrap()
            .kind,
        ResolvedKind::Workflow(_)
    ));
    let e = r.resolve("./missing", &f.ws).unwrap_err().to_string();
    assert!(e.contains("checkout"), "{e}");
    // docker
    assert_eq!(
        r.resolve("docker://alpine:3.19", &f.ws).unwrap().kind,
        ResolvedKind::Docker("alpine:3.19".into())
    );
    // built-in
    let b = r.resolve("actions/checkout@v4", &f.ws).unwrap();
    assert_eq!(b.kind, ResolvedKind::Builtin("actions/checkout".into()));
    assert_eq!(
        r.resolve("actions/cache/restore@v4", &f.ws).unwrap().kind,
        ResolvedKind::Builtin("actions/cache/restore".into())
    );
    // errors
    let e = r.resolve("acme/hello@nope", &f.ws).unwrap_err().to_string();
    assert!(
        e.contains("no tag, branch or commit 'nope'") && e.contains("file://"),
        "{e}"
    );
    let e = r.resolve("acme/missing@v1", &f.ws).unwrap_err();
    assert!(e.tried.iter().any(|t| t.contains("action cache")), "{e}");
    assert!(
        r.resolve("acme/hello", &f.ws)
            .unwrap_err()
            .to_string()
            .contains("@ref")
    );
    let e = r
        .resolve("acme/hello/nowhere@v1", &f.ws)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no action.yml"), "{e}");
}

#[test]
fn parse_forms() {
    assert!(matches!(parse_uses("./x").unwrap(), UsesRef::Local { .. }));
    assert!(matches!(
        parse_uses("o/r/.github/workflows/a.yml@v1").unwrap(),
        UsesRef::RemoteWorkflow(_)
    ));
    assert!(parse_uses("o/r@").is_err());
    assert!(parse_uses("/abs/path").is_err());
    assert!(parse_uses("o/r/../x@v1").is_err());
}

#[test]
fn no_builtin_falls_back_to_sources() {
    let f = fixture();
    let repo = bare(&f.remotes, "actions", "checkout");
    commit(
        &repo,
        "main",
        &[("action.yml", JS, false), ("index.js", "", false)],
        "real",
    );
    let repo_sha = commit(
        &repo,
        "main",
        &[("action.yml", JS, false), ("index.js", "x", false)],
        "real2",
    );
    tag(&repo, "v4", &repo_sha);
    let mut c = cfg(&f, false);
    c.no_builtin.insert("actions/checkout".into());
    let r = ActionResolver::new(c);
    let a = r.resolve("actions/checkout@v4", &f.ws).unwrap();
    assert_eq!(a.sha.as_deref(), Some(repo_sha.as_str()));
    assert!(matches!(a.kind, ResolvedKind::Dir(_)));
    let mut c = cfg(&f, true);
    c.no_builtin.insert("all".into());
    let e = ActionResolver::new(c)
        .resolve("actions/cache@v4", &f.ws)
        .unwrap_err()
        .to_string();
    assert!(e.contains("turned off") && e.contains("offline"), "{e}");
}

#[test]
fn warm_cache_offline_and_mutable_tags() {
    let f = fixture();
    {
        let r = ActionResolver::new(cfg(&f, false));
        r.resolve("acme/hello@v1", &f.ws).unwrap();
        r.resolve("acme/hello/sub/js@v2", &f.ws).unwrap();
    }
    // Offline: answered from the index, even with the sources gone.
    std::fs::rename(&f.remotes, f.remotes.with_extension("gone")).unwrap();
    let off = ActionResolver::new(cfg(&f, true));
    let a = off.resolve("acme/hello@v1", &f.ws).unwrap();
    assert_eq!(a.origin, Origin::Cache);
    assert_eq!(a.sha.as_deref(), Some(f.v1.as_str()));
    assert_eq!(
        off.resolve(&format!("acme/hello@{}", &f.v2[..10]), &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v2.as_str())
    );
    // main was never resolved, but the mirror knows it: offline still works without network.
    assert_eq!(
        off.resolve("acme/hello@main", &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v2.as_str())
    );
    let e = off.resolve("acme/other@v1", &f.ws).unwrap_err().to_string();
    assert!(e.contains("offline"), "{e}");
    std::fs::rename(f.remotes.with_extension("gone"), &f.remotes).unwrap();

    // Move v1 to v2's commit: online resolvers re-check once per run; offline keeps the index.
    let repo = git2::Repository::open_bare(f.remotes.join("acme/hello.git")).unwrap();
    tag(&repo, "v1", &f.v2);
    assert_eq!(
        ActionResolver::new(cfg(&f, true))
            .resolve("acme/hello@v1", &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v1.as_str())
    );
    let on = ActionResolver::new(cfg(&f, false));
    let a = on.resolve("acme/hello@v1", &f.ws).unwrap();
    assert_eq!(a.sha.as_deref(), Some(f.v2.as_str()));
    // Second resolution in the same run: from the cache.
    assert_eq!(
        on.resolve("acme/hello@v1", &f.ws).unwrap().origin,
        Origin::Cache
    );
    // The index was updated for later offline runs.
    assert_eq!(
        ActionResolver::new(cfg(&f, true))
            .resolve("acme/hello@v1", &f.ws)
            .unwrap()
            .sha
            .as_deref(),
        Some(f.v2.as_str())
    );
}

#[test]
fn concurrent_resolvers_share_the_cache() {
    let f = fixture();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = cfg(&f, false);
            let ws = f.ws.clone();
            std::thread::spawn(move || {
                let r = ActionResolver::new(c);
                let a = r.resolve("acme/hello@v1", &ws).unwrap();
                let b = r.resolve("acme/hello/sub/js@v2", &ws).unwrap();
                (a.sha.unwrap(), b.sha.unwrap())
            })
        })
        .collect();
    for h in handles {
        let (a, b) = h.join().unwrap();
        assert_eq!(a, f.v1);
        assert_eq!(b, f.v2);
    }
    let repo_dir = f.cache.join("acme/hello");
    let leftovers: Vec<_> = std::fs::read_dir(&repo_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp") || n.starts_with(".refs"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(repo_dir.join(&f.v1).join("action.yml").is_file());
    assert!(repo_dir.join(&f.v2).join("sub/js/index.js").is_file());
}

#[test]
fn twenty_actions_from_a_warm_cache() {
    let f = fixture();
    let mut uses = Vec::new();
    for i in 0..10 {
        let repo = bare(&f.remotes, "acme", &format!("a{i}"));
        let s = commit(&repo, "main", &[("action.yml", COMPOSITE, false)], "c");
        tag(&repo, "v1", &s);
        uses.push(format!("acme/a{i}@v1"));
        uses.push(format!("acme/a{i}@{s}"));
    }
    ActionResolver::new(cfg(&f, false))
        .resolve("acme/a0@v1", &f.ws)
        .unwrap();
    for u in &uses {
        ActionResolver::new(cfg(&f, false))
            .resolve(u, &f.ws)
            .unwrap();
    }
    let t = Instant::now();
    let r = ActionResolver::new(cfg(&f, true));
    for u in &uses {
        assert_eq!(r.resolve(u, &f.ws).unwrap().origin, Origin::Cache);
    }
    // Timing is reported, not asserted (speed targets live in bench/).
    eprintln!(
        "resolved {} actions from a warm cache in {:?}",
        uses.len(),
        t.elapsed()
    );
}
