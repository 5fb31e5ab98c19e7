//! The terminal reporter: live logs prefixed by job, `::group::` folded (a group's lines
//! are shown only when its step fails), one line per finished step, indicatif spinners per
//! running job when stdout is a TTY, and a final summary table with the critical path.
//! With `--quiet`, a step's log is shown only when the step fails (cargo-nextest style).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use gantry_engine::events::{BatchedSubscription, RunEvent, Status, Stream};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Default)]
struct JobView {
    name: String,
    /// Buffered lines of the running step (quiet mode, or inside a group), each with the
    /// length of its `[job] ` prefix.
    held: Vec<(String, usize)>,
    group_depth: usize,
    bar: Option<ProgressBar>,
}

pub struct Options {
    pub quiet: bool,
    pub color: bool,
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn symbol(color: bool, s: Status) -> String {
    match s {
        Status::Success => paint(color, "32", "✓"),
        Status::Failure => paint(color, "31", "✗"),
        Status::Cancelled => paint(color, "33", "⊘"),
        Status::Skipped => paint(color, "90", "-"),
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// Consumes `sub` on a thread and prints to stdout.
pub fn spawn(mut sub: BatchedSubscription, opts: Options) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stdout().is_terminal();
        let color = opts.color && tty;
        let mp = tty.then(MultiProgress::new);
        let stdout = std::io::stdout();
        let mut jobs: HashMap<String, JobView> = HashMap::new();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let print = |mp: &Option<MultiProgress>,
                     out: &mut std::io::BufWriter<std::io::StdoutLock<'_>>,
                     s: &str| {
            match mp {
                Some(m) => {
                    let _ = m.println(s);
                }
                None => {
                    let _ = out.write_all(s.as_bytes());
                    let _ = out.write_all(b"\n");
                }
            }
        };
        while let Some(ev) = sub.blocking_recv() {
            match &*ev {
                RunEvent::RunStarted {
                    run_id,
                    event,
                    sha,
                    git_ref,
                    ..
                } => {
                    print(
                        &mp,
                        &mut out,
                        &format!(
                            "gantry run {run_id}: {event} on {git_ref} ({})",
                            &sha[..sha.len().min(7)]
                        ),
                    );
                }
                RunEvent::JobQueued { job, name, .. } => {
                    jobs.entry(job.to_string()).or_default().name = name.clone();
                }
                RunEvent::JobStarted { job, name, .. } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    v.name = name.clone();
                    if let Some(m) = &mp {
                        let pb = m.add(ProgressBar::new_spinner());
                        pb.set_style(
                            ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        pb.set_prefix(name.clone());
                        pb.enable_steady_tick(Duration::from_millis(120));
                        v.bar = Some(pb);
                    }
                }
                RunEvent::StepStarted { job, name, .. } => {
                    if let Some(v) = jobs.get_mut(job.as_str()) {
                        v.held.clear();
                        v.group_depth = 0;
                        if let Some(b) = &v.bar {
                            b.set_message(name.clone());
                        }
                    }
                }
                RunEvent::Log {
                    job, stream, text, ..
                } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    let code = if *stream == Stream::Runner { "36" } else { "2" };
                    let prefix = format!("{} ", paint(color, code, &format!("[{}]", v.name)));
                    let hold = opts.quiet || v.group_depth > 0;
                    if hold {
                        for line in text.split_terminator('\n') {
                            v.held.push((format!("{prefix}{line}"), prefix.len()));
                        }
                    } else if mp.is_none() {
                        // Hot path: no allocation per line.
                        for line in text.split_terminator('\n') {
                            let _ = out.write_all(prefix.as_bytes());
                            let _ = out.write_all(line.as_bytes());
                            let _ = out.write_all(b"\n");
                        }
                    } else {
                        for line in text.split_terminator('\n') {
                            print(&mp, &mut out, &format!("{prefix}{line}"));
                        }
                    }
                }
                RunEvent::GroupStarted { job, title, .. } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    if v.group_depth == 0 && !opts.quiet {
                        let l = format!(
                            "{} ▸ {}",
                            paint(color, "2", &format!("[{}]", v.name)),
                            title
                        );
                        print(&mp, &mut out, &l);
                    }
                    v.group_depth += 1;
                }
                RunEvent::GroupEnded { job, .. } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    v.group_depth = v.group_depth.saturating_sub(1);
                    if v.group_depth == 0 && !opts.quiet {
                        v.held.clear();
                    }
                }
                RunEvent::Annotation {
                    job,
                    step,
                    severity,
                    message,
                    file,
                    line,
                    ..
                } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    // A set-up failure (quiet mode): the lines held before it say what was
                    // being set up; its `Error:` line is the annotation's cause again.
                    if opts.quiet && step.is_none() && severity == "error" && v.group_depth == 0 {
                        for (l, at) in std::mem::take(&mut v.held) {
                            if !repeats_cause(&l[at..], message) {
                                print(&mp, &mut out, &l);
                            }
                        }
                    }
                    let loc = match (file, line) {
                        (Some(f), Some(l)) => format!(" {f}:{l}"),
                        (Some(f), None) => format!(" {f}"),
                        _ => String::new(),
                    };
                    let code = if severity == "error" { "31" } else { "33" };
                    let l = format!(
                        "[{}] {}{loc}: {message}",
                        v.name,
                        paint(color, code, severity)
                    );
                    print(&mp, &mut out, &l);
                }
                RunEvent::StepFinished {
                    job,
                    name,
                    outcome,
                    conclusion,
                    duration_ms,
                    ..
                } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    if *outcome == Status::Failure {
                        for (l, _) in std::mem::take(&mut v.held) {
                            print(&mp, &mut out, &l);
                        }
                    } else {
                        v.held.clear();
                    }
                    if *outcome != Status::Skipped {
                        let extra = if outcome != conclusion {
                            " (continue-on-error)"
                        } else {
                            ""
                        };
                        let l = format!(
                            "[{}] {} {name} {}{extra}",
                            v.name,
                            symbol(color, *outcome),
                            paint(color, "2", &secs(*duration_ms))
                        );
                        print(&mp, &mut out, &l);
                    }
                }
                RunEvent::JobFinished {
                    job,
                    name,
                    result,
                    duration_ms,
                    reused,
                    ..
                } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    // Lines held outside a step (quiet mode) are the failure's cause.
                    if *result == Status::Failure {
                        for (l, _) in std::mem::take(&mut v.held) {
                            print(&mp, &mut out, &l);
                        }
                    }
                    if let Some(b) = v.bar.take() {
                        b.finish_and_clear();
                        if let Some(m) = &mp {
                            m.remove(&b);
                        }
                    }
                    let tag = if *reused { " (reused)" } else { "" };
                    let l = format!(
                        "{} job {name}: {result}{tag} {}",
                        symbol(color, *result),
                        paint(color, "2", &secs(*duration_ms))
                    );
                    print(&mp, &mut out, &l);
                }
                RunEvent::GateEntered { job, environment } => {
                    let v = jobs.entry(job.to_string()).or_default();
                    print(
                        &mp,
                        &mut out,
                        &format!("[{}] waiting for environment '{environment}'", v.name),
                    );
                }
                _ => {}
            }
            if sub.is_empty() {
                let _ = out.flush();
            }
        }
        let _ = out.flush();
    })
}

/// Whether a log line only repeats an annotation's cause: the engine logs a job set-up
/// failure as `Error: CAUSE` and annotates it `job set-up failed: CAUSE` (the other lines
/// of a multi-line cause as they are).
fn repeats_cause(text: &str, annotation: &str) -> bool {
    let t = text.strip_prefix("Error: ").unwrap_or(text);
    let cause = annotation
        .strip_prefix("job set-up failed: ")
        .unwrap_or(annotation);
    !t.trim().is_empty() && cause.lines().any(|l| l == t)
}

/// Prints the final table and the critical path.
pub fn print_summary(summary: &gantry_engine::store::RunSummary, color: bool) {
    let color = color && std::io::stdout().is_terminal();
    let mut s = String::new();
    let w = summary
        .jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    s.push_str(&format!(
        "\n{:<w$}  {:<9}  {:>8}\n",
        "job", "result", "duration"
    ));
    for j in &summary.jobs {
        s.push_str(&format!(
            "{:<w$}  {} {:<7}  {:>8}\n",
            j.name,
            symbol(color, j.result),
            j.result.as_str(),
            secs(j.duration_ms)
        ));
    }
    if !summary.critical_path.is_empty() {
        let names: Vec<String> = summary
            .critical_path
            .iter()
            .map(|k| {
                summary
                    .jobs
                    .iter()
                    .find(|j| &j.key == k)
                    .map(|j| j.name.clone())
                    .unwrap_or_else(|| k.clone())
            })
            .collect();
        s.push_str(&format!("critical path: {}\n", names.join(" → ")));
    }
    s.push_str(&format!(
        "run {}: {} in {}\n",
        summary.run_id,
        summary.result,
        secs(summary.duration_ms)
    ));
    print!("{s}");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::repeats_cause;

    #[test]
    fn a_set_up_error_line_repeats_its_annotation() {
        let ann = "job set-up failed: image 'x:1' is not available locally: hint\nsecond line";
        assert!(repeats_cause(
            "Error: image 'x:1' is not available locally: hint",
            ann
        ));
        assert!(repeats_cause("second line", ann));
        assert!(!repeats_cause("Starting job container (x:1)", ann));
        assert!(!repeats_cause("hint", ann), "only a whole cause counts");
        assert!(!repeats_cause("Error: ", ann));
    }
}
