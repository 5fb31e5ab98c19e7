//! Writes a run's `events.jsonl` and step logs so that a crash (`kill -9`, power aside)
//! at any moment leaves every finished line intact and at most the last line cut.
//!
//! Each file has a buffer that only ever holds whole lines (an event is serialized into it
//! in full and its newline added before anything is written; log batches are whole lines),
//! and a buffer goes to its file in one `write` call. Buffers are written out when they
//! reach [`FLUSH_BYTES`], when a job ends (its logs), and at the latest
//! [`FLUSH_INTERVAL`] after their first unwritten byte, also while the run is quiet: what
//! the terminal showed is on disk a moment later, not at the end of the run. Writing per
//! event instead would cost a system call per line on the benchmarked log path (P5, P6 in
//! `docs/benchmarks.md`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{SummaryBuilder, write_summary};
use crate::events::{BatchedSubscription, Received, RunEvent};
use crate::workspace::sanitize;

/// How long written lines may wait in memory at most.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A buffer this full is written out at once.
const FLUSH_BYTES: usize = 1 << 16;

/// A file that is only ever extended by whole lines.
struct LineFile {
    file: File,
    /// Whole lines not yet written.
    pending: Vec<u8>,
}

impl LineFile {
    fn create(path: &Path) -> io::Result<Self> {
        Ok(LineFile {
            file: File::create(path)?,
            pending: Vec::new(),
        })
    }

    /// One `write_all` of whole lines (a single `write` for a regular file unless the
    /// process dies during it, which cuts at most the last line).
    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// The open files of one run record and when their oldest unwritten line arrived.
struct RecordFiles {
    logs_dir: PathBuf,
    events: LineFile,
    logs: HashMap<(String, Option<usize>), LineFile>,
    dirty_since: Option<Instant>,
}

impl RecordFiles {
    fn mark_dirty(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    fn deadline(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + FLUSH_INTERVAL)
    }

    fn flush_all(&mut self) -> io::Result<()> {
        self.events.flush()?;
        for f in self.logs.values_mut() {
            f.flush()?;
        }
        self.dirty_since = None;
        Ok(())
    }

    fn event(&mut self, ev: &RunEvent) -> io::Result<()> {
        let buf = &mut self.events.pending;
        let start = buf.len();
        if let Err(e) = serde_json::to_writer(&mut *buf, ev) {
            // Never leave half a line in the buffer.
            buf.truncate(start);
            return Err(io::Error::other(e));
        }
        buf.push(b'\n');
        if buf.len() >= FLUSH_BYTES {
            self.events.flush()?;
        }
        self.mark_dirty();
        if let RunEvent::JobFinished { job, .. } = ev {
            // The job's logs are complete: write and close them.
            let keys: Vec<_> = self
                .logs
                .keys()
                .filter(|(j, _)| j == job.as_str())
                .cloned()
                .collect();
            for k in keys {
                if let Some(mut f) = self.logs.remove(&k) {
                    f.flush()?;
                }
            }
        }
        Ok(())
    }

    fn log(&mut self, job: &str, step: Option<usize>, text: &str) -> io::Result<()> {
        let key = (job.to_string(), step);
        if !self.logs.contains_key(&key) {
            let dir = self.logs_dir.join(sanitize(job));
            std::fs::create_dir_all(&dir)?;
            let name = match step {
                Some(s) => format!("{}.log", s + 1),
                None => "setup.log".to_string(),
            };
            self.logs
                .insert(key.clone(), LineFile::create(&dir.join(name))?);
        }
        if let Some(f) = self.logs.get_mut(&key) {
            // Log events carry whole lines, so the buffer ends at a line's end.
            f.pending.extend_from_slice(text.as_bytes());
            if f.pending.len() >= FLUSH_BYTES {
                f.flush()?;
            }
        }
        self.mark_dirty();
        Ok(())
    }
}

/// Consumes `sub` on a thread, writing `events.jsonl` (every event but log lines) and the
/// step logs under `dir`, and once the stream closes after `run_finished`, `summary.json`
/// and `summary.md` built from the same events ([`SummaryBuilder`]). A run that did not
/// finish gets no summary (its readers rebuild one from the events).
pub fn spawn_writer(
    dir: PathBuf,
    mut sub: BatchedSubscription,
) -> std::thread::JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        let mut files = RecordFiles {
            logs_dir: dir.join("logs"),
            events: LineFile::create(&dir.join("events.jsonl"))?,
            logs: HashMap::new(),
            dirty_since: None,
        };
        let mut summary = SummaryBuilder::default();
        loop {
            match sub.recv_until(files.deadline()) {
                Received::Event(ev) => {
                    match &*ev {
                        RunEvent::Log {
                            job, step, text, ..
                        } => files.log(job, *step, text)?,
                        other => {
                            summary.observe(other);
                            files.event(other)?
                        }
                    }
                    if files.deadline().is_some_and(|d| Instant::now() >= d) {
                        files.flush_all()?;
                    }
                }
                Received::TimedOut => files.flush_all()?,
                Received::Closed => {
                    files.flush_all()?;
                    if let Some(s) = summary.finished_summary() {
                        write_summary(&dir, &s, summary.step_summaries())?;
                    }
                    return Ok(());
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBus, Stream};

    /// While the run goes on (the bus open, nothing more emitted), what was emitted is on
    /// disk within the flush interval, as whole lines, also past the 64 KiB buffer size.
    #[test]
    fn lines_reach_the_disk_while_the_run_is_quiet_and_are_never_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let bus = EventBus::new();
        let writer = spawn_writer(tmp.path().to_path_buf(), bus.subscribe_batched());
        bus.emit(RunEvent::StepStarted {
            job: "build".into(),
            step: 0,
            name: "make".into(),
        });
        let big = "x".repeat(100_000);
        for i in 0..3 {
            bus.emit(RunEvent::Annotation {
                job: "build".into(),
                step: Some(0),
                severity: "warning".into(),
                message: format!("{i}{big}"),
                file: None,
                line: None,
                col: None,
                title: None,
            });
        }
        bus.emit(RunEvent::Log {
            job: "build".into(),
            step: Some(0),
            stream: Stream::Stdout,
            text: "first line\nsecond line\n".into(),
        });
        std::thread::sleep(FLUSH_INTERVAL * 4);

        let events = std::fs::read_to_string(tmp.path().join("events.jsonl")).unwrap();
        assert!(events.ends_with('\n'), "a cut line");
        let lines: Vec<serde_json::Value> = events
            .lines()
            .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3]["message"].as_str().unwrap().len(), 100_001);
        let log = std::fs::read_to_string(tmp.path().join("logs/build/1.log")).unwrap();
        assert_eq!(log, "first line\nsecond line\n");

        drop(bus);
        writer.join().unwrap().unwrap();
    }
}
