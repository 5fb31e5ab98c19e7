//! Each escape is tried through openat2 and through the O_NOFOLLOW walk.

use super::*;
use std::os::unix::fs::symlink;

struct Fixture {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
}

/// `<tmp>/ws` (the root) next to `<tmp>/outside/secret.txt`, with links inside the root:
/// `out_abs` → the outside dir (absolute), `out_rel` → `../outside`, `in_rel` → `sub`,
/// `sub/up` → `..` (stays inside), `sub/secret` → `../../outside/secret.txt`.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "host secret").unwrap();
    std::fs::write(ws.join("sub/a.txt"), "inside").unwrap();
    symlink(&outside, ws.join("out_abs")).unwrap();
    symlink("../outside", ws.join("out_rel")).unwrap();
    symlink("sub", ws.join("in_rel")).unwrap();
    symlink("..", ws.join("sub/up")).unwrap();
    symlink("../../outside/secret.txt", ws.join("sub/secret")).unwrap();
    Fixture {
        _tmp: tmp,
        ws,
        outside,
    }
}

fn roots(ws: &Path) -> Vec<Root> {
    vec![
        Root::open(ws, "the workspace").unwrap(),
        Root::open(ws, "the workspace")
            .unwrap()
            .with_walk_fallback(),
    ]
}

#[test]
fn lexical_escapes_are_refused_before_the_disk() {
    assert_eq!(
        clean_relative(Path::new("a/./b/../c")),
        Some(PathBuf::from("a/c"))
    );
    assert_eq!(clean_relative(Path::new("a/..")), Some(PathBuf::new()));
    assert_eq!(clean_relative(Path::new("../x")), None);
    assert_eq!(clean_relative(Path::new("a/../../x")), None);
    assert_eq!(clean_relative(Path::new("/etc/passwd")), None);
    let f = fixture();
    for r in roots(&f.ws) {
        let e = r.read(Path::new("../outside/secret.txt")).unwrap_err();
        assert!(matches!(e, BeneathError::Outside { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "'../outside/secret.txt' leads outside the workspace"
        );
    }
}

#[test]
fn reads_follow_links_only_while_they_stay_inside() {
    let f = fixture();
    for r in roots(&f.ws) {
        assert_eq!(r.read(Path::new("in_rel/a.txt")).unwrap(), b"inside");
        assert_eq!(r.read(Path::new("sub/up/sub/a.txt")).unwrap(), b"inside");
        for bad in ["out_abs/secret.txt", "out_rel/secret.txt", "sub/secret"] {
            let e = r.read(Path::new(bad)).unwrap_err();
            assert!(
                matches!(e, BeneathError::SymlinkOutside { .. }),
                "{bad} (walk only: {}): {e}",
                r.walk_only
            );
            assert!(e.to_string().contains(bad), "{e}");
            assert!(!e.to_string().contains("host secret"));
        }
        assert_eq!(
            r.kind(Path::new("sub/secret"), false).unwrap(),
            Kind::Symlink
        );
        assert!(
            r.kind(Path::new("sub/secret"), true)
                .unwrap_err()
                .is_escape()
        );
        assert!(r.read(Path::new("missing")).unwrap_err().is_not_found());
    }
}

#[test]
fn writes_never_go_through_a_link_or_outside() {
    let f = fixture();
    for r in roots(&f.ws) {
        // The final component is a link to a host file: replaced, the host file untouched.
        r.write(Path::new("sub/secret"), b"job data", 0o644)
            .unwrap();
        assert_eq!(
            std::fs::read(f.outside.join("secret.txt")).unwrap(),
            b"host secret"
        );
        assert!(
            !std::fs::symlink_metadata(f.ws.join("sub/secret"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(std::fs::read(f.ws.join("sub/secret")).unwrap(), b"job data");
        symlink("../../outside/secret.txt", f.ws.join("sub/secret2")).unwrap();
        // A parent that is a link leading outside: refused, nothing created outside.
        for bad in ["out_abs/new.txt", "out_rel/deeper/new.txt"] {
            let e = r.write(Path::new(bad), b"x", 0o644).unwrap_err();
            assert!(e.is_escape(), "{bad}: {e}");
        }
        assert_eq!(
            std::fs::read_dir(&f.outside).unwrap().count(),
            1,
            "nothing may appear outside"
        );
        let e = r.create_dir_all(Path::new("../made")).unwrap_err();
        assert!(e.is_escape());
        r.create_dir_all(Path::new("in_rel/x/y")).unwrap();
        assert!(f.ws.join("sub/x/y").is_dir());
        std::fs::remove_dir_all(f.ws.join("sub/x")).unwrap();
        std::fs::remove_file(f.ws.join("sub/secret2")).unwrap();
    }
}

#[test]
fn walk_lists_links_without_entering_them() {
    let f = fixture();
    for r in roots(&f.ws) {
        let all: Vec<(String, Kind)> = r
            .walk(Path::new(""))
            .unwrap()
            .into_iter()
            .map(|e| (e.rel.display().to_string(), e.kind))
            .collect();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "in_rel",
                "out_abs",
                "out_rel",
                "sub",
                "sub/a.txt",
                "sub/secret",
                "sub/up"
            ]
        );
        assert_eq!(all[1].1, Kind::Symlink);
        assert!(matches!(all[4].1, Kind::File { len: 6, .. }));
        assert!(r.walk(Path::new("out_abs")).unwrap_err().is_escape());
    }
}

#[test]
fn remove_all_removes_links_not_their_targets() {
    let f = fixture();
    for r in roots(&f.ws) {
        symlink(&f.outside, f.ws.join("sub/link_dir")).unwrap();
        std::fs::create_dir_all(f.ws.join("sub/d/e")).unwrap();
        std::fs::write(f.ws.join("sub/d/e/f"), "x").unwrap();
        r.remove_all(Path::new("sub/link_dir")).unwrap();
        r.remove_all(Path::new("sub/d")).unwrap();
        assert!(!f.ws.join("sub/d").exists());
        assert_eq!(
            std::fs::read(f.outside.join("secret.txt")).unwrap(),
            b"host secret"
        );
        assert!(
            r.remove_all(Path::new("out_abs/secret.txt"))
                .unwrap_err()
                .is_escape()
        );
    }
}

#[test]
fn openat2_is_used_when_the_kernel_has_it() {
    let f = fixture();
    let r = Root::open(&f.ws, "the workspace").unwrap();
    r.read(Path::new("sub/a.txt")).unwrap();
    // Either openat2 worked, or the kernel refused it and the walk took over; both are
    // reported honestly.
    let has = OPENAT2.load(Ordering::Relaxed);
    assert!(has == 1 || has == 2);
    assert_eq!(r.uses_openat2(), has == 1);
}
