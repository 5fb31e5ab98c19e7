//! Pending approvals under `.gantry/approvals/`: one JSON file per (run, environment),
//! decisions appended under an exclusive file lock so two deciders at once (two
//! terminals, two processes) never lose a decision.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod verdict;
mod waiter;
pub use verdict::{Verdict, reassert, verdict};
pub use waiter::{HEARTBEAT_EVERY, HEARTBEAT_STALE, Waiter};

/// The state of one approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
    TimedOut,
    Cancelled,
    /// The run that waited for it is gone (killed, crashed): nobody will act on a decision.
    Abandoned,
}

/// One reviewer's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub by: String,
    pub approved: bool,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

/// A request for approval, as stored in `.gantry/approvals/<run>--<env>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingApproval {
    pub run_id: String,
    pub environment: String,
    pub job: String,
    pub workflow: String,
    pub actor: String,
    pub git_ref: String,
    pub sha: String,
    pub reviewers: Vec<String>,
    pub required_approvals: u32,
    pub prevent_self_review: bool,
    pub since: DateTime<Utc>,
    pub state: ApprovalState,
    #[serde(default)]
    pub decisions: Vec<Decision>,
    /// The process that waits for the decision (absent in files of older versions).
    #[serde(default)]
    pub waiter: Option<Waiter>,
}

impl PendingApproval {
    /// Distinct approvers on file (logins compare case-insensitively).
    pub fn approvals(&self) -> usize {
        let mut who: Vec<String> = self
            .decisions
            .iter()
            .filter(|d| d.approved)
            .map(|d| d.by.to_ascii_lowercase())
            .collect();
        who.sort();
        who.dedup();
        who.len()
    }

    /// The command that approves this request from another terminal.
    pub fn approve_command(&self) -> String {
        format!(
            "gantry approve {} {} --as NAME",
            shell_word(&self.run_id),
            shell_word(&self.environment)
        )
    }

    /// The rejection, if any: (who, comment).
    pub fn rejection(&self) -> Option<&Decision> {
        self.decisions.iter().find(|d| !d.approved)
    }
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    NotFound {
        run_id: String,
        environment: String,
    },
    NotPending(ApprovalState),
    NotAReviewer {
        name: String,
        reviewers: Vec<String>,
    },
    SelfReview {
        name: String,
    },
    AlreadyDecided {
        name: String,
    },
    /// The run that waited is gone; the request is now marked abandoned.
    Abandoned {
        run_id: String,
        pid: u32,
    },
    Io(String),
}

impl std::fmt::Display for DecideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecideError::NotFound {
                run_id,
                environment,
            } => write!(
                f,
                "no approval request for run {run_id} and environment {environment} (see `gantry approvals`)"
            ),
            DecideError::NotPending(s) => write!(f, "the request is no longer pending ({s:?})"),
            DecideError::NotAReviewer { name, reviewers } => write!(
                f,
                "{name} is not a reviewer of this environment (reviewers: {})",
                reviewers.join(", ")
            ),
            DecideError::SelfReview { name } => write!(
                f,
                "{name} triggered this run and may not review it (prevent_self_review)"
            ),
            DecideError::AlreadyDecided { name } => {
                write!(f, "{name} has already decided on this request")
            }
            DecideError::Abandoned { run_id, pid } => write!(
                f,
                "run {run_id} no longer waits for this approval (its process {pid} is gone); the request is abandoned, start the run again"
            ),
            DecideError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DecideError {}

/// The directory of pending approvals.
#[derive(Debug, Clone)]
pub struct ApprovalStore {
    dir: PathBuf,
}

impl ApprovalStore {
    /// The store of the repository at `root` (`root/.gantry/approvals`).
    pub fn for_repo(root: &Path) -> Self {
        ApprovalStore {
            dir: root.join(".gantry").join("approvals"),
        }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        ApprovalStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stem(run_id: &str, environment: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        // Environment names are case-insensitive: `PRODUCTION` and `production` share a file.
        format!(
            "{}--{}",
            clean(run_id),
            clean(&environment.to_ascii_lowercase())
        )
    }

    fn path(&self, run_id: &str, environment: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Self::stem(run_id, environment)))
    }

    fn lock_path(&self, run_id: &str, environment: &str) -> PathBuf {
        self.dir
            .join(format!("{}.lock", Self::stem(run_id, environment)))
    }

    /// Holds the exclusive lock of one request while `f` runs.
    fn locked<T>(
        &self,
        run_id: &str,
        environment: &str,
        f: impl FnOnce() -> Result<T, DecideError>,
    ) -> Result<T, DecideError> {
        fs::create_dir_all(&self.dir).map_err(|e| DecideError::Io(e.to_string()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(run_id, environment))
            .map_err(|e| DecideError::Io(e.to_string()))?;
        lock.lock().map_err(|e| DecideError::Io(e.to_string()))?;
        let out = f();
        let _ = lock.unlock();
        out
    }

    fn write(&self, req: &PendingApproval) -> Result<(), DecideError> {
        let path = self.path(&req.run_id, &req.environment);
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let body = serde_json::to_vec_pretty(req).map_err(|e| DecideError::Io(e.to_string()))?;
        (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })()
        .map_err(|e| DecideError::Io(format!("{}: {e}", path.display())))
    }

    fn read(&self, run_id: &str, environment: &str) -> Result<PendingApproval, DecideError> {
        let path = self.path(run_id, environment);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DecideError::NotFound {
                    run_id: run_id.into(),
                    environment: environment.into(),
                });
            }
            Err(e) => return Err(DecideError::Io(format!("{}: {e}", path.display()))),
        };
        serde_json::from_slice(&text)
            .map_err(|e| DecideError::Io(format!("{}: {e}", path.display())))
    }

    /// Creates (or replaces) a pending request.
    pub fn create(&self, req: &PendingApproval) -> Result<(), DecideError> {
        self.locked(&req.run_id, &req.environment, || self.write(req))
    }

    pub fn get(&self, run_id: &str, environment: &str) -> Result<PendingApproval, DecideError> {
        self.locked(run_id, environment, || self.read(run_id, environment))
    }

    /// Every request on file (any state), oldest first.
    pub fn list(&self) -> Vec<PendingApproval> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) == Some("json")
                    && let Ok(text) = fs::read(&p)
                    && let Ok(req) = serde_json::from_slice::<PendingApproval>(&text)
                {
                    out.push(req);
                }
            }
        }
        out.sort_by_key(|r| r.since);
        out
    }

    /// Pending requests only.
    pub fn pending(&self) -> Vec<PendingApproval> {
        self.list()
            .into_iter()
            .filter(|r| r.state == ApprovalState::Pending)
            .collect()
    }

    /// Applies one decision atomically and returns the request as it now stands.
    pub fn decide(
        &self,
        run_id: &str,
        environment: &str,
        name: &str,
        approved: bool,
        comment: Option<String>,
    ) -> Result<PendingApproval, DecideError> {
        self.locked(run_id, environment, || {
            let mut req = self.read(run_id, environment)?;
            if req.state == ApprovalState::Pending
                && let Some(w) = req.waiter.as_ref().filter(|w| !w.is_alive())
            {
                let pid = w.pid;
                req.state = ApprovalState::Abandoned;
                self.write(&req)?;
                return Err(DecideError::Abandoned {
                    run_id: req.run_id,
                    pid,
                });
            }
            if req.state != ApprovalState::Pending {
                return Err(DecideError::NotPending(req.state));
            }
            // Logins compare case-insensitively (GitHub's do); the decision is recorded
            // under the reviewer's configured spelling.
            let by = match req.reviewers.iter().find(|r| r.eq_ignore_ascii_case(name)) {
                Some(r) => r.clone(),
                None if req.reviewers.is_empty() => name.to_string(),
                None => {
                    return Err(DecideError::NotAReviewer {
                        name: name.into(),
                        reviewers: req.reviewers.clone(),
                    });
                }
            };
            if req.prevent_self_review && by.eq_ignore_ascii_case(&req.actor) {
                return Err(DecideError::SelfReview { name: name.into() });
            }
            if req.decisions.iter().any(|d| d.by.eq_ignore_ascii_case(&by)) {
                return Err(DecideError::AlreadyDecided { name: name.into() });
            }
            req.decisions.push(Decision {
                by,
                approved,
                comment: comment.filter(|c| !c.is_empty()),
                at: Utc::now(),
            });
            if !approved {
                req.state = ApprovalState::Rejected;
            } else if req.approvals() >= req.required_approvals as usize {
                req.state = ApprovalState::Approved;
            }
            self.write(&req)?;
            Ok(req)
        })
    }

    /// Ends a still-pending request (timeout, cancellation); returns it as it now stands.
    pub fn close(
        &self,
        run_id: &str,
        environment: &str,
        state: ApprovalState,
    ) -> Result<PendingApproval, DecideError> {
        self.update(run_id, environment, |req| {
            if req.state == ApprovalState::Pending {
                req.state = state;
                true
            } else {
                false
            }
        })
    }

    /// Changes a request under its lock (`f` returns whether it changed anything, and
    /// only then is it written); returns the request as it now stands.
    pub fn update(
        &self,
        run_id: &str,
        environment: &str,
        f: impl FnOnce(&mut PendingApproval) -> bool,
    ) -> Result<PendingApproval, DecideError> {
        self.locked(run_id, environment, || {
            let mut req = self.read(run_id, environment)?;
            if f(&mut req) {
                self.write(&req)?;
            }
            Ok(req)
        })
    }

    /// Marks every pending request whose waiting run is gone as abandoned; returns them.
    /// `gantry approvals` and each new run call this, so a dead run's request does not
    /// stay listed as pending.
    pub fn sweep_abandoned(&self) -> Vec<PendingApproval> {
        let mut out = Vec::new();
        for p in self.pending() {
            if p.waiter.as_ref().is_none_or(|w| w.is_alive()) {
                continue;
            }
            let marked = self.update(&p.run_id, &p.environment, |req| {
                let dead = req.state == ApprovalState::Pending
                    && req.waiter.as_ref().is_some_and(|w| !w.is_alive());
                if dead {
                    req.state = ApprovalState::Abandoned;
                }
                dead
            });
            if let Ok(req) = marked
                && req.state == ApprovalState::Abandoned
            {
                out.push(req);
            }
        }
        out
    }

    /// Removes a finished request's files.
    pub fn remove(&self, run_id: &str, environment: &str) {
        let _ = fs::remove_file(self.path(run_id, environment));
        let _ = fs::remove_file(self.lock_path(run_id, environment));
    }
}

/// An interactive answer: who decides, yes/no, and a comment.
#[derive(Debug, Clone)]
pub struct PromptAnswer {
    pub by: String,
    pub approved: bool,
    pub comment: Option<String>,
}

/// Asks a person in a terminal. Injectable so tests need no TTY. `None` = stop asking
/// (keep waiting for decisions from other terminals).
#[async_trait::async_trait]
pub trait ApprovalPrompt: Send + Sync {
    async fn ask(&self, req: &PendingApproval, note: Option<&str>) -> Option<PromptAnswer>;
}

/// The terminal prompt: reads name, y/n and a comment from stdin (used when stdin and
/// stderr are terminals).
pub struct TtyPrompt;

#[async_trait::async_trait]
impl ApprovalPrompt for TtyPrompt {
    async fn ask(&self, req: &PendingApproval, note: Option<&str>) -> Option<PromptAnswer> {
        let req = req.clone();
        let note = note.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut stdin = std::io::stdin().lock();
            let mut line = String::new();
            let mut read = |prompt: &str| -> Option<String> {
                eprint!("{prompt}");
                let _ = std::io::stderr().flush();
                line.clear();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line.trim().to_string()),
                }
            };
            if let Some(n) = note {
                eprintln!("  {n}");
            }
            eprintln!(
                "Deployment to `{}` (job {}, {} @ {}) needs {} approval(s) from: {}",
                req.environment,
                req.job,
                req.git_ref,
                &req.sha[..req.sha.len().min(7)],
                req.required_approvals,
                req.reviewers.join(", ")
            );
            let default_name = std::env::var("USER").unwrap_or_default();
            let by = read(&format!("  approve as [{default_name}]: "))?;
            let by = if by.is_empty() { default_name } else { by };
            let yn = read("  approve? [y/n]: ")?;
            let approved = matches!(yn.to_ascii_lowercase().as_str(), "y" | "yes");
            let comment = read("  comment: ")?;
            Some(PromptAnswer {
                by,
                approved,
                comment: (!comment.is_empty()).then_some(comment),
            })
        })
        .await
        .ok()
        .flatten()
    }
}
