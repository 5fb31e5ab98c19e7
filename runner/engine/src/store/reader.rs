//! Reading run records back, including those of runs that crashed: `events.jsonl` may end
//! in a cut line (skipped), and a run without `summary.json` is summarized from its events,
//! its unfinished jobs counting as failed.

use std::io;
use std::path::{Path, PathBuf};

use super::RunSummary;
use crate::events::RunEvent;

/// A run record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("workflow {rel_path} at the run's commit {sha}: {message}")]
    Git {
        rel_path: String,
        sha: String,
        message: String,
    },
    #[error("{}:{line}: not a run event: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl RecordError {
    /// Whether the file is missing (as opposed to unreadable or damaged).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RecordError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// The events of an `events.jsonl`.
#[derive(Debug)]
pub struct RecordedEvents {
    pub events: Vec<RunEvent>,
    /// The file ended in an incomplete line (the writer was killed while writing it),
    /// which was skipped.
    pub cut_tail: bool,
}

/// Parses an `events.jsonl`. A last line without its newline that does not parse is what a
/// crash leaves behind and is skipped; any other line that does not parse is an error
/// naming the file and line.
pub fn read_events(path: &Path) -> Result<RecordedEvents, RecordError> {
    let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut events = Vec::new();
    let mut cut_tail = false;
    let mut rest: &[u8] = &bytes;
    let mut line_no = 0;
    while !rest.is_empty() {
        line_no += 1;
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<RunEvent>(line) {
            Ok(ev) => events.push(ev),
            Err(_) if !complete => cut_tail = true,
            Err(e) => {
                return Err(RecordError::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(RecordedEvents { events, cut_tail })
}

/// A run's summary rebuilt from its events, for a run that ended without writing
/// `summary.json` (killed, machine lost). Every job that was queued but has no
/// `job_finished` is a failure (listed in `unfinished`), and so is the run unless its
/// `run_finished` was recorded. Jobs never queued are not in it, so a re-run runs them.
#[derive(Debug)]
pub struct RebuiltSummary {
    pub summary: RunSummary,
    /// Keys of the jobs that did not finish.
    pub unfinished: Vec<String>,
}

pub fn summary_from_events(run_id: &str, events: &[RunEvent]) -> RebuiltSummary {
    let mut builder = super::SummaryBuilder::default();
    for ev in events {
        builder.observe(ev);
    }
    builder.rebuilt(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Status;
    use indexmap::IndexMap;

    fn line(ev: &RunEvent) -> String {
        serde_json::to_string(ev).unwrap() + "\n"
    }

    fn queued(key: &str) -> RunEvent {
        RunEvent::JobQueued {
            job: key.into(),
            job_id: key.into(),
            name: key.into(),
            workflow: ".github/workflows/ci.yml".into(),
            needs: vec![],
        }
    }

    fn finished(key: &str, result: Status) -> RunEvent {
        RunEvent::JobFinished {
            job: key.into(),
            name: key.into(),
            result,
            duration_ms: 5,
            outputs: IndexMap::from([("v".to_string(), "1".to_string())]),
            reused: false,
            continue_on_error: false,
        }
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_a_damaged_middle_line_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let whole = line(&queued("a")) + &line(&finished("a", Status::Success));
        let cut = line(&queued("b"));
        std::fs::write(&path, format!("{whole}{}", &cut[..cut.len() / 2])).unwrap();
        let read = read_events(&path).unwrap();
        assert_eq!(read.events.len(), 2);
        assert!(read.cut_tail);

        // A complete last line without its newline is kept.
        std::fs::write(&path, format!("{whole}{}", cut.trim_end())).unwrap();
        let read = read_events(&path).unwrap();
        assert_eq!(read.events.len(), 3);
        assert!(!read.cut_tail);

        std::fs::write(
            &path,
            format!("{}{{\"type\":\"nope\"}}\n{whole}", line(&queued("a"))),
        )
        .unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("events.jsonl:2: not a run event"), "{err}");
    }

    #[test]
    fn unfinished_jobs_of_a_crashed_run_are_failures() {
        let events = vec![
            queued("a"),
            queued("b"),
            finished("a", Status::Success),
            queued("c"),
        ];
        let rebuilt = summary_from_events("7", &events);
        assert_eq!(rebuilt.unfinished, vec!["b".to_string(), "c".to_string()]);
        assert_eq!(rebuilt.summary.result, Status::Failure);
        let results: Vec<(&str, Status)> = rebuilt
            .summary
            .jobs
            .iter()
            .map(|j| (j.key.as_str(), j.result))
            .collect();
        assert_eq!(
            results,
            vec![
                ("a", Status::Success),
                ("b", Status::Failure),
                ("c", Status::Failure)
            ]
        );
        assert_eq!(rebuilt.summary.jobs[0].outputs["v"], "1");
    }
}
