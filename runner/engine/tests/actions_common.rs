//! Shared helpers for the actions tests: bare git repositories built with git2.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// A file to commit: path, content, executable.
pub type F<'a> = (&'a str, &'a str, bool);

fn build_tree(repo: &git2::Repository, files: &BTreeMap<String, (Vec<u8>, bool)>) -> git2::Oid {
    let mut here: BTreeMap<String, (Vec<u8>, bool)> = BTreeMap::new();
    let mut subs: BTreeMap<String, BTreeMap<String, (Vec<u8>, bool)>> = BTreeMap::new();
    for (p, v) in files {
        match p.split_once('/') {
            Some((d, rest)) => {
                subs.entry(d.to_string())
                    .or_default()
                    .insert(rest.to_string(), v.clone());
            }
            None => {
                here.insert(p.clone(), v.clone());
            }
        }
    }
    let mut tb = repo.treebuilder(None).unwrap();
    for (name, (content, exec)) in here {
        let blob = repo.blob(&content).unwrap();
        tb.insert(&name, blob, if exec { 0o100755 } else { 0o100644 })
            .unwrap();
    }
    for (name, sub) in subs {
        let t = build_tree(repo, &sub);
        tb.insert(&name, t, 0o040000).unwrap();
    }
    tb.write().unwrap()
}

/// Commits `files` (the whole tree) on `branch` of a bare repo; returns the commit sha.
pub fn commit(repo: &git2::Repository, branch: &str, files: &[F<'_>], msg: &str) -> String {
    let map: BTreeMap<String, (Vec<u8>, bool)> = files
        .iter()
        .map(|(p, c, x)| (p.to_string(), (c.as_bytes().to_vec(), *x)))
        .collect();
    let tree_id = build_tree(repo, &map);
    let tree = repo.find_tree(tree_id).unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    let refname = format!("refs/heads/{branch}");
    let parent = repo
        .find_reference(&refname)
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo
        .commit(Some(&refname), &sig, &sig, msg, &tree, &parents)
        .unwrap();
    id.to_string()
}

/// Creates (or moves) a lightweight tag.
pub fn tag(repo: &git2::Repository, name: &str, sha: &str) {
    let obj = repo
        .find_object(git2::Oid::from_str(sha).unwrap(), None)
        .unwrap();
    repo.tag_lightweight(name, &obj, true).unwrap();
}

/// Creates an annotated tag.
pub fn tag_annotated(repo: &git2::Repository, name: &str, sha: &str) {
    let obj = repo
        .find_object(git2::Oid::from_str(sha).unwrap(), None)
        .unwrap();
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    repo.tag(name, &obj, &sig, "release", true).unwrap();
}

/// `<root>/<owner>/<repo>.git`, bare, HEAD on main.
pub fn bare(root: &Path, owner: &str, name: &str) -> git2::Repository {
    let p = root.join(owner).join(format!("{name}.git"));
    std::fs::create_dir_all(&p).unwrap();
    let r = git2::Repository::init_bare(&p).unwrap();
    r.set_head("refs/heads/main").unwrap();
    r
}

/// The source template for repos made by [`bare`].
pub fn source(root: &Path) -> String {
    format!("file://{}/{{owner}}/{{repo}}.git", root.display())
}
