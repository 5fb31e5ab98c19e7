//! Which workflow files a run ran, so that a re-run uses exactly them rather than whatever
//! the working tree holds by then. A file identical to the one in the run's commit is
//! recorded by reference (re-read with git from that commit's tree); any other (edited and
//! not committed, untracked, outside the repository, no repository at all) is copied into
//! the run record.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RecordError, write_atomically};
use crate::workspace::sanitize;

/// A workflow file's text as a run read it.
#[derive(Debug, Clone)]
pub struct WorkflowText {
    /// The path the run knows it by (relative to the repository root when inside it).
    pub rel_path: String,
    pub text: String,
}

/// Where a re-run finds one workflow of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum RecordedWorkflow {
    /// Identical to `tree_path` in the run's commit.
    Commit { rel_path: String, tree_path: String },
    /// Not as committed: `file` is its copy in the run directory.
    Snapshot { rel_path: String, file: String },
}

impl RecordedWorkflow {
    pub fn rel_path(&self) -> &str {
        match self {
            RecordedWorkflow::Commit { rel_path, .. }
            | RecordedWorkflow::Snapshot { rel_path, .. } => rel_path,
        }
    }
}

/// The run's commit and its workflows, as kept in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSources {
    /// HEAD when the run started (`None` outside a git repository or before a first commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    pub workflows: Vec<RecordedWorkflow>,
    /// Local reusable workflows (`uses: ./.github/workflows/…`) the workflows call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub called: Vec<RecordedWorkflow>,
}

/// The path of `rel_path` (relative to `repo_root`) in the repository's tree, when
/// `repo_root` is inside the repository's working directory.
fn tree_path(repo: &git2::Repository, repo_root: &Path, rel_path: &str) -> Option<String> {
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let root = repo_root.canonicalize().ok()?;
    let prefix = root.strip_prefix(&workdir).ok()?;
    let p = prefix.join(rel_path);
    if p.is_absolute() {
        return None;
    }
    p.to_str().map(str::to_string)
}

fn commit_file(repo: &git2::Repository, sha: &str, path: &str) -> Result<Vec<u8>, git2::Error> {
    let commit = repo.find_commit(git2::Oid::from_str(sha)?)?;
    let entry = commit.tree()?.get_path(Path::new(path))?;
    let blob = entry.to_object(repo)?.peel_to_blob()?;
    Ok(blob.content().to_vec())
}

/// Records `workflows` (the texts the run parsed) and `called` (the local reusable
/// workflows they call) for a run of `repo_root` whose record is `run_dir`, copying those
/// not identical to HEAD's into `run_dir/workflows/`.
pub fn record_workflows(
    repo_root: &Path,
    run_dir: &Path,
    workflows: &[WorkflowText],
    called: &[WorkflowText],
) -> Result<RecordedSources, RecordError> {
    let repo = git2::Repository::discover(repo_root).ok();
    let sha = repo
        .as_ref()
        .and_then(|r| r.head().ok()?.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let mut recorded = Vec::new();
    for (i, w) in workflows.iter().chain(called).enumerate() {
        let in_commit = match (&repo, &sha) {
            (Some(repo), Some(sha)) => tree_path(repo, repo_root, &w.rel_path).filter(|tp| {
                commit_file(repo, sha, tp).is_ok_and(|bytes| bytes == w.text.as_bytes())
            }),
            _ => None,
        };
        recorded.push(match in_commit {
            Some(tree_path) => RecordedWorkflow::Commit {
                rel_path: w.rel_path.clone(),
                tree_path,
            },
            None => {
                let dir = run_dir.join("workflows");
                std::fs::create_dir_all(&dir).map_err(|source| RecordError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let file = format!("workflows/{}-{}", i + 1, sanitize(&w.rel_path));
                write_atomically(&run_dir.join(&file), w.text.as_bytes())?;
                RecordedWorkflow::Snapshot {
                    rel_path: w.rel_path.clone(),
                    file,
                }
            }
        });
    }
    let called = recorded.split_off(workflows.len());
    Ok(RecordedSources {
        sha,
        workflows: recorded,
        called,
    })
}

/// The text a run used for `workflow`: from the run's commit or from its snapshot.
pub fn recorded_workflow_text(
    repo_root: &Path,
    run_dir: &Path,
    sources: &RecordedSources,
    workflow: &RecordedWorkflow,
) -> Result<String, RecordError> {
    match workflow {
        RecordedWorkflow::Snapshot { file, .. } => {
            let path = run_dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| RecordError::Io { path, source })
        }
        RecordedWorkflow::Commit {
            rel_path,
            tree_path,
        } => {
            let sha = sources.sha.as_deref().unwrap_or_default();
            let git_error = |e: git2::Error| RecordError::Git {
                rel_path: rel_path.clone(),
                sha: sha.to_string(),
                message: e.message().to_string(),
            };
            let repo = git2::Repository::discover(repo_root).map_err(git_error)?;
            let bytes = commit_file(&repo, sha, tree_path).map_err(git_error)?;
            String::from_utf8(bytes).map_err(|_| RecordError::Git {
                rel_path: rel_path.clone(),
                sha: sha.to_string(),
                message: "the file is not UTF-8".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &git2::Repository) {
        let mut idx = repo.index().unwrap();
        idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
    }

    /// A committed file is recorded by reference and read back from the commit even after
    /// the working tree changed; an edited one is copied and read back from the copy.
    #[test]
    fn committed_files_are_referenced_and_edited_ones_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(tmp.path()).unwrap();
        let wf = tmp.path().join(".github/workflows");
        std::fs::create_dir_all(&wf).unwrap();
        std::fs::write(wf.join("a.yml"), "committed a\n").unwrap();
        std::fs::write(wf.join("b.yml"), "committed b\n").unwrap();
        commit(&repo);
        std::fs::write(wf.join("b.yml"), "edited b\n").unwrap();
        let run_dir = tmp.path().join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let texts = [
            WorkflowText {
                rel_path: ".github/workflows/a.yml".into(),
                text: "committed a\n".into(),
            },
            WorkflowText {
                rel_path: ".github/workflows/b.yml".into(),
                text: "edited b\n".into(),
            },
        ];
        let rec = record_workflows(tmp.path(), &run_dir, &texts, &[]).unwrap();
        assert!(rec.sha.is_some());
        assert!(matches!(rec.workflows[0], RecordedWorkflow::Commit { .. }));
        assert!(matches!(
            rec.workflows[1],
            RecordedWorkflow::Snapshot { .. }
        ));

        std::fs::write(wf.join("a.yml"), "later a\n").unwrap();
        std::fs::write(wf.join("b.yml"), "later b\n").unwrap();
        let read: Vec<String> = rec
            .workflows
            .iter()
            .map(|w| recorded_workflow_text(tmp.path(), &run_dir, &rec, w).unwrap())
            .collect();
        assert_eq!(read, vec!["committed a\n", "edited b\n"]);
    }
}
