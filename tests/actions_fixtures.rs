//! Fixtures of `actions_e2e`: bare git repositories (built with git2) holding a
//! JavaScript action with pre/post, composite actions, a Docker action and a stand-in for
//! `actions/checkout`, at tags, branches and shas.

use std::path::{Path, PathBuf};

pub const JS_ACTION_YML: &str = r#"name: js fixture
inputs:
  name:
    default: anon
  num-octocats:
    default: "1"
outputs:
  greeting:
    description: set through GITHUB_OUTPUT
runs:
  using: node20
  pre: pre.js
  main: main.js
  post: post.js
"#;

pub const JS_PRE: &str = r#"const fs = require('fs');
const name = process.env.INPUT_NAME;
fs.appendFileSync(process.env.GITHUB_STATE, `from_pre=P-${name}\n`);
console.log(`JS-PRE ${name}`);
"#;

pub const JS_MAIN: &str = r#"const fs = require('fs');
const e = process.env;
const name = e.INPUT_NAME;
console.log(`JS-MAIN ${name} octo=${e['INPUT_NUM-OCTOCATS']} pre=${e.STATE_from_pre} repo=${e.GITHUB_ACTION_REPOSITORY} ref=${e.GITHUB_ACTION_REF} cwd-is-workspace=${process.cwd() === e.GITHUB_WORKSPACE}`);
fs.appendFileSync(e.GITHUB_OUTPUT, `greeting=hi ${name}\n`);
fs.appendFileSync(e.GITHUB_STATE, `from_main=M-${name}\n`);
fs.appendFileSync(e.GITHUB_ENV, `JS_SET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}=yes\n`);
console.log(`::notice::noticed ${name}`);
console.log(`::save-state name=cmd_state::C-${name}`);
"#;

pub const JS_POST: &str = r#"const e = process.env;
console.log(`JS-POST ${e.INPUT_NAME} pre=${e.STATE_from_pre} main=${e.STATE_from_main} cmd=${e.STATE_cmd_state}`);
"#;

pub fn composite_yml(nested: bool) -> String {
    let mut s = String::from(
        r#"name: composite fixture
inputs:
  who:
    default: world
outputs:
  greeting:
    value: ${{ steps.g.outputs.greeting }}
  nested:
    value: ${{ steps.n.outputs.greeting }}
runs:
  using: composite
  steps:
    - id: g
      shell: sh
      run: sh "${{ github.action_path }}/hello.sh" "${{ inputs.who }}"
"#,
    );
    if nested {
        s.push_str(
            r#"    - id: n
      uses: acme/js-action@v1
      with:
        name: nested-${{ inputs.who }}
"#,
        );
    }
    s
}

pub const INNER_YML: &str = r#"name: inner
outputs:
  where:
    value: ${{ steps.w.outputs.where }}
runs:
  using: composite
  steps:
    - id: w
      shell: sh
      run: echo "where=inner-$(cat "$GITHUB_ACTION_PATH/version.txt")" >> "$GITHUB_OUTPUT"
"#;

pub const DOCKER_ACTION_YML: &str = r#"name: docker fixture
inputs:
  greeting:
    default: hello
outputs:
  result:
    description: from the container
runs:
  using: docker
  image: Dockerfile
  args:
    - ${{ inputs.greeting }}
    - two words
  env:
    FROM_RUNS_ENV: ${{ inputs.greeting }}-env
  pre-entrypoint: /pre.sh
  post-entrypoint: /post.sh
"#;

pub const DOCKERFILE: &str =
    "FROM gantry/busybox:latest\nCOPY entry.sh pre.sh post.sh /\nENTRYPOINT [\"/entry.sh\"]\n";

pub const DOCKER_ENTRY: &str = r#"#!/bin/sh
echo "DOCKER-MAIN args=[$1][$2] input=$INPUT_GREETING env=$FROM_RUNS_ENV ws=$GITHUB_WORKSPACE home=$HOME pre=$STATE_dpre"
test -f /github/workspace/.github/workflows/ci.yml && echo "DOCKER-SAW-WORKSPACE"
test -f "$GITHUB_EVENT_PATH" && echo "DOCKER-SAW-EVENT"
echo "result=ok-$1" >> "$GITHUB_OUTPUT"
echo "DOCKER_ENV=set" >> "$GITHUB_ENV"
echo "dmain=DM" >> "$GITHUB_STATE"
"#;

pub const DOCKER_PRE: &str =
    "#!/bin/sh\necho \"DOCKER-PRE $INPUT_GREETING\"\necho \"dpre=DP\" >> \"$GITHUB_STATE\"\n";
pub const DOCKER_POST: &str = "#!/bin/sh\necho \"DOCKER-POST pre=$STATE_dpre main=$STATE_dmain\"\n";

pub const CHECKOUT_YML: &str = "name: fixture checkout\nruns:\n  using: node20\n  main: main.js\n";
pub const CHECKOUT_MAIN: &str =
    "console.log('FIXTURE-CHECKOUT ' + process.env.GITHUB_ACTION_REPOSITORY);\n";

/// Bare repositories under `<root>/src/<owner>/<repo>.git`.
pub struct Sources {
    pub root: tempfile::TempDir,
    /// Commits of `acme/composite-action`: v1 (tag) and main (branch, later).
    pub composite_v1: String,
    pub composite_main: String,
}

impl Sources {
    pub fn template(&self) -> String {
        format!(
            "file://{}/src/{{owner}}/{{repo}}.git",
            self.root.path().display()
        )
    }
    pub fn cache(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

pub fn commit(
    repo: &git2::Repository,
    files: &[(&str, &str)],
    parent: Option<git2::Oid>,
) -> git2::Oid {
    let mut idx = git2::Index::new().unwrap();
    for (path, content) in files {
        let blob = repo.blob(content.as_bytes()).unwrap();
        let mode = if path.ends_with(".sh") {
            0o100755
        } else {
            0o100644
        };
        idx.add(&git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            file_size: content.len() as u32,
            id: blob,
            flags: (path.len() & 0xfff) as u16,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        })
        .unwrap();
    }
    let tree = repo.find_tree(idx.write_tree_to(repo).unwrap()).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let parents: Vec<git2::Commit<'_>> = parent
        .map(|p| vec![repo.find_commit(p).unwrap()])
        .unwrap_or_default();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &sig, &sig, "fixture", &tree, &refs)
        .unwrap()
}

pub fn bare(root: &Path, owner: &str, name: &str) -> git2::Repository {
    git2::Repository::init_bare(root.join("src").join(owner).join(format!("{name}.git"))).unwrap()
}

pub fn tag(repo: &git2::Repository, name: &str, oid: git2::Oid, annotated: bool) {
    let obj = repo.find_object(oid, None).unwrap();
    if annotated {
        let sig = git2::Signature::now("Test", "test@example.com").unwrap();
        repo.tag(name, &obj, &sig, name, false).unwrap();
    } else {
        repo.tag_lightweight(name, &obj, false).unwrap();
    }
}

pub fn branch(repo: &git2::Repository, name: &str, oid: git2::Oid) {
    repo.reference(&format!("refs/heads/{name}"), oid, true, "fixture")
        .unwrap();
}

pub fn sources() -> Sources {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();

    let js = bare(r, "acme", "js-action");
    let c = commit(
        &js,
        &[
            ("action.yml", JS_ACTION_YML),
            ("pre.js", JS_PRE),
            ("main.js", JS_MAIN),
            ("post.js", JS_POST),
        ],
        None,
    );
    tag(&js, "v1", c, true);
    branch(&js, "main", c);

    let comp = bare(r, "acme", "composite-action");
    let yml1 = composite_yml(false);
    let c1 = commit(
        &comp,
        &[
            ("action.yml", &yml1),
            (
                "hello.sh",
                "echo \"greeting=hello $1 v1\" >> \"$GITHUB_OUTPUT\"\n",
            ),
            ("sub/inner/action.yml", INNER_YML),
            ("sub/inner/version.txt", "v1\n"),
        ],
        None,
    );
    tag(&comp, "v1", c1, true);
    tag(&comp, "v1.0.0", c1, false);
    let yml2 = composite_yml(true);
    let c2 = commit(
        &comp,
        &[
            ("action.yml", &yml2),
            (
                "hello.sh",
                "echo \"greeting=hello $1 v2\" >> \"$GITHUB_OUTPUT\"\n",
            ),
            ("sub/inner/action.yml", INNER_YML),
            ("sub/inner/version.txt", "v2\n"),
        ],
        Some(c1),
    );
    branch(&comp, "main", c2);

    let dk = bare(r, "acme", "docker-action");
    let d = commit(
        &dk,
        &[
            ("action.yml", DOCKER_ACTION_YML),
            ("Dockerfile", DOCKERFILE),
            ("entry.sh", DOCKER_ENTRY),
            ("pre.sh", DOCKER_PRE),
            ("post.sh", DOCKER_POST),
        ],
        None,
    );
    tag(&dk, "v1", d, true);

    let co = bare(r, "actions", "checkout");
    let c = commit(
        &co,
        &[("action.yml", CHECKOUT_YML), ("main.js", CHECKOUT_MAIN)],
        None,
    );
    tag(&co, "v4", c, true);

    Sources {
        root,
        composite_v1: c1.to_string(),
        composite_main: c2.to_string(),
    }
}
