//! Every job's workspace is a git repository of its own at the run's commit, as after
//! GitHub's `actions/checkout`: `git ls-files` lists the commit's files, the history is
//! shallow (`fetch-depth` 1) unless asked otherwise, tags come only with `fetch-tags` or
//! `fetch-depth: 0`, and `git tag` / `git config --local` in a job stay in the job's
//! repository. The working tree's uncommitted edits are present (as act has them). The
//! user's repository (refs, config, index) is the same afterwards. The same holds inside a
//! container (`gantry/debian`), where the user's repository is not mounted at all.

use std::path::Path;

use gantry_tests::*;

/// What must not change in the user's repository: every ref, the config and the index.
fn repo_state(dir: &Path) -> (Vec<(String, String)>, Vec<u8>, Vec<u8>) {
    let repo = git2::Repository::open(dir).unwrap();
    let mut refs: Vec<(String, String)> = repo
        .references()
        .unwrap()
        .flatten()
        .map(|r| {
            (
                r.name().unwrap_or("?").to_string(),
                r.target().map(|o| o.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    refs.sort();
    let config = std::fs::read(dir.join(".git/config")).unwrap();
    let index = std::fs::read(dir.join(".git/index")).unwrap();
    (refs, config, index)
}

/// The checks a job runs in its workspace (POSIX sh; git on the host and in the image).
const CHECKS: &str = r#"
          set -eu
          test "$(git rev-parse --show-toplevel)" = "$(pwd -P)"
          test "$(git rev-parse HEAD)" = "$GITHUB_SHA"
          test "$(git rev-parse --abbrev-ref HEAD)" = main
          git ls-files > /tmp/ls.$$
          grep -qx a.txt /tmp/ls.$$
          grep -qx sub/b.txt /tmp/ls.$$
          ! grep -q new.txt /tmp/ls.$$
          echo "files: $(wc -l < /tmp/ls.$$)"
          grep -q edited a.txt
          test -f new.txt
          git status --porcelain | grep -q '^ M a.txt'
          git status --porcelain | grep -q '^?? new.txt'
          test "$(git log --oneline | wc -l)" = "$DEPTH"
          test "$(git tag | wc -l)" = "$TAGS"
          git tag x
          git config --local a.b c
          test "$(git config --local a.b)" = c
          test "$(git config --get remote.origin.url)" != ""
          echo CHECKS-PASSED
"#;

fn workflow(container: bool) -> String {
    let where_ = if container {
        "    container: gantry/debian:bookworm\n"
    } else {
        ""
    };
    format!(
        "on: push\njobs:\n  shallow:\n    runs-on: ubuntu-latest\n{where_}    env:\n      \
         DEPTH: 1\n      TAGS: 0\n    steps:\n      - uses: actions/checkout@v4\n      - run: |{CHECKS}\
         \n  full:\n    runs-on: ubuntu-latest\n{where_}    env:\n      DEPTH: 3\n      TAGS: 1\n    \
         steps:\n      - uses: actions/checkout@v4\n        with:\n          fetch-depth: 0\n      \
         - run: |{CHECKS}\n  two:\n    runs-on: ubuntu-latest\n{where_}    env:\n      DEPTH: 2\n      \
         TAGS: 0\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          \
         fetch-depth: 2\n      - run: |{CHECKS}\n"
    )
}

/// A repository with three commits (the first tagged `v0`), then an uncommitted edit of
/// `a.txt` and an untracked `new.txt`.
fn repo(container: bool) -> tempfile::TempDir {
    let wf = workflow(container);
    let t = git_repo_with(&[
        (".github/workflows/ci.yml", &wf),
        ("a.txt", "one\n"),
        ("sub/b.txt", "b\n"),
    ]);
    let repo = git2::Repository::open(t.path()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.tag_lightweight("v0", head.as_object(), false).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    for n in ["two", "three"] {
        std::fs::write(t.path().join("a.txt"), format!("{n}\n")).unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_path(Path::new("a.txt")).unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let parent = repo.head().unwrap().peel_to_commit().unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, n, &tree, &[&parent])
            .unwrap();
    }
    // The branch is `main` whatever git's default is.
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.branch("main", &head, true).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    std::fs::write(t.path().join("a.txt"), "edited\n").unwrap();
    std::fs::write(t.path().join("new.txt"), "new\n").unwrap();
    t
}

fn run_and_check(container: bool) {
    let repo = repo(container);
    let before = repo_state(repo.path());
    let mut args = vec!["run"];
    if !container {
        args.push("--host");
    }
    let out = gantry(repo.path(), &args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(all.matches("CHECKS-PASSED").count(), 3, "{all}");
    assert_eq!(
        repo_state(repo.path()),
        before,
        "the user's repository changed"
    );
    let user = git2::Repository::open(repo.path()).unwrap();
    assert!(user.find_reference("refs/tags/x").is_err());
    assert!(user.config().unwrap().get_string("a.b").is_err());
    // The edit is still the user's own, untouched.
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.txt")).unwrap(),
        "edited\n"
    );
}

#[test]
fn host_jobs_get_a_repository_of_their_own() {
    run_and_check(false);
}

#[test]
fn container_jobs_get_a_repository_of_their_own() {
    if !docker_ready(&["gantry/debian:bookworm"]) {
        return;
    }
    run_and_check(true);
}

/// `ref:` checks another commit out (tracked files only, `clean`); a second repository
/// given as `repository:` over file:// lands under `path:`, with its own history.
#[test]
fn checkout_of_a_ref_and_of_another_repository() {
    let other = git_repo_with(&[("lib.txt", "library\n")]);
    let other_url = format!("file://{}", other.path().display());
    let wf = format!(
        r#"on: push
jobs:
  refs:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: v0
      - run: |
          set -eu
          test "$(cat a.txt)" = one
          test ! -e new.txt
          test "$(git rev-parse HEAD)" = "$(git rev-parse v0)"
          test -z "$(git status --porcelain)"
      - uses: actions/checkout@v4
        with:
          repository: {other_url}
          path: vendor/other
      - run: |
          set -eu
          test "$(cat vendor/other/lib.txt)" = library
          cd vendor/other
          test "$(git log --oneline | wc -l)" = 1
          test "$(git config --get remote.origin.url)" = "{other_url}"
          echo REFS-PASSED
"#
    );
    let repo = repo(false);
    std::fs::write(repo.path().join(".github/workflows/ci.yml"), wf).unwrap();
    let before_other = repo_state(other.path());
    let out = gantry(repo.path(), &["run", "--host"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("REFS-PASSED"), "{all}");
    assert_eq!(repo_state(other.path()), before_other);
}

/// A job's tree is recycled for a later job (`--jobs 1`, `needs`): whatever the first job
/// did to its `.git` (a tag, local config, a hook, a commit, alternates, a broken pack)
/// is gone, while the repository's files are the same inodes (the tree was reused).
#[test]
fn a_recycled_workspace_repository_holds_nothing_of_the_earlier_job() {
    let outside = tempfile::tempdir().unwrap();
    let marker = outside.path().join("hook-ran");
    let wf = format!(
        r#"on: push
jobs:
  a:
    runs-on: ubuntu-latest
    outputs:
      ino: ${{{{ steps.s.outputs.ino }}}}
    steps:
      - id: s
        run: |
          set -eu
          echo "ino=$(stat -c %i .git/objects/pack/*.pack)" >> "$GITHUB_OUTPUT"
          git tag x
          git config --local a.b c
          mkdir -p .git/hooks
          printf '#!/bin/sh\ntouch {marker}\n' > .git/hooks/pre-commit
          chmod +x .git/hooks/pre-commit
          git -c user.name=a -c user.email=a@example.com commit -qam job
          test -e {marker} && rm {marker}
          git init -q --bare {outside}/other.git
          echo {outside}/other.git/objects > .git/objects/info/alternates
          chmod u+w .git/objects/pack/*.pack
          printf PACK-BROKEN | dd of="$(ls .git/objects/pack/*.pack)" conv=notrunc 2>/dev/null
          echo 'ref: refs/heads/elsewhere' > .git/HEAD
          echo A-DONE
  b:
    needs: a
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: |
          set -eu
          test "$(stat -c %i .git/objects/pack/*.pack)" = "${{{{ needs.a.outputs.ino }}}}" || {{ echo not recycled; exit 1; }}
          test "$(git rev-parse HEAD)" = "$GITHUB_SHA"
          test "$(git rev-parse --abbrev-ref HEAD)" = main
          test -z "$(git tag)"
          ! git config --local a.b
          test ! -e .git/hooks && test ! -e .git/objects/info/alternates
          git fsck --full --no-dangling
          test "$(git log --oneline | wc -l)" = 1
          git status --porcelain | grep -q '^ M a.txt'
          git -c user.name=b -c user.email=b@example.com commit -q --allow-empty -m next
          test ! -e {marker}
          echo B-CLEAN
"#,
        marker = marker.display(),
        outside = outside.path().display(),
    );
    let repo = repo(false);
    std::fs::write(repo.path().join(".github/workflows/ci.yml"), wf).unwrap();
    let before = repo_state(repo.path());
    let out = gantry(repo.path(), &["run", "--host", "--jobs", "1"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("A-DONE"), "{all}");
    assert!(all.contains("B-CLEAN"), "{all}");
    assert!(!marker.exists(), "the first job's hook ran in the second");
    assert_eq!(
        repo_state(repo.path()),
        before,
        "the user's repository changed"
    );
}
