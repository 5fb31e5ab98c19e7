//! `--json`: one JSON object per line on stdout. Log batches are split into one `log`
//! event per line (`{"type":"log","job":..,"step":..,"stream":..,"line":..}`).

use std::io::Write;

use serde::Serialize;

use crate::events::{BatchedSubscription, RunEvent, Stream};

#[derive(Serialize)]
struct LogLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    job: &'a str,
    step: Option<usize>,
    stream: Stream,
    line: &'a str,
}

/// Writes one event (log batches as one line each) to `out`.
pub fn write_event(out: &mut impl Write, ev: &RunEvent) -> std::io::Result<()> {
    match ev {
        RunEvent::Log {
            job,
            step,
            stream,
            text,
        } => {
            for line in text.split_terminator('\n') {
                serde_json::to_writer(
                    &mut *out,
                    &LogLine {
                        kind: "log",
                        job,
                        step: *step,
                        stream: *stream,
                        line,
                    },
                )?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        other => {
            serde_json::to_writer(&mut *out, other)?;
            out.write_all(b"\n")
        }
    }
}

/// Consumes `sub` on a thread, printing every event to stdout as JSON lines.
pub fn spawn(mut sub: BatchedSubscription) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        // Each event is serialized whole before it is handed to the buffer, which never
        // splits one write: if Gantry is killed, a reader of stdout has whole lines (but
        // for one longer than the buffer), not a line cut at a 64 KiB boundary.
        let mut lines = Vec::new();
        while let Some(ev) = sub.blocking_recv() {
            lines.clear();
            if write_event(&mut lines, &ev).is_err() || out.write_all(&lines).is_err() {
                break;
            }
            // Flush when the stream is momentarily idle so that consumers see events live.
            if sub.is_empty() {
                let _ = out.flush();
            }
        }
        let _ = out.flush();
    })
}
