//! Signals during `gantry run`. SIGINT (Ctrl-C), SIGTERM (systemd, `docker stop`, a CI
//! cancellation) and SIGHUP (the terminal went away) all stop the run the same way:
//!
//! 1. the first one cancels the run as GitHub cancels a job: the running step gets SIGINT,
//!    SIGTERM 7.5 s later, SIGKILL 2.5 s after that; `always()` steps still run; every
//!    job removes its containers, network and volumes and kills its host processes; the
//!    run record is written with the result `cancelled`;
//! 2. a second one skips the remaining escalation delays (SIGKILL now, for the running
//!    steps and any later one), the rest of the cancellation proceeds as above;
//! 3. a third one, or the run still not finished [`FORCED_STOP_AFTER`] after the second,
//!    stops at once: gantry kills every step process it started, removes every Docker
//!    resource of its runs (by run key) and exits with 130. The run record then ends
//!    with the events written so far.

use std::io::Write;
use std::time::Duration;

use gantry_engine::backend::{self, docker, host};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Time the run gets to wind down after the second signal.
pub const FORCED_STOP_AFTER: Duration = Duration::from_secs(15);
/// Upper bound on removing Docker resources on a forced stop.
const FORCED_CLEANUP_LIMIT: Duration = Duration::from_secs(20);

/// Handles the stop signals while it lives (see the module docs).
pub struct StopOnSignals {
    task: tokio::task::JoinHandle<()>,
}

impl StopOnSignals {
    /// Starts handling SIGINT, SIGTERM and SIGHUP; the first one fires `cancel`.
    pub fn install(cancel: CancellationToken) -> std::io::Result<StopOnSignals> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let task = tokio::spawn(async move {
            let mut received = 0;
            loop {
                let name = tokio::select! {
                    Some(()) = int.recv() => "SIGINT",
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = hup.recv() => "SIGHUP",
                    else => return,
                };
                received += 1;
                match received {
                    1 => {
                        say(&format!(
                            "gantry: {name}: cancelling the run (again to kill the running steps at once)"
                        ));
                        cancel.cancel();
                    }
                    2 => {
                        say(&format!("gantry: {name}: killing the running steps now"));
                        backend::hurry().cancel();
                        tokio::spawn(async {
                            tokio::time::sleep(FORCED_STOP_AFTER).await;
                            forced_stop("the run did not stop in time").await;
                        });
                    }
                    _ => forced_stop(name).await,
                }
            }
        });
        Ok(StopOnSignals { task })
    }
}

impl Drop for StopOnSignals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A line on stderr; never a panic (after SIGHUP the terminal may be gone).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Kill every step process, remove every Docker resource of this process's runs, exit 130.
async fn forced_stop(why: &str) -> ! {
    say(&format!(
        "gantry: {why}: stopping now, removing the run's containers and processes"
    ));
    let _ = tokio::task::spawn_blocking(host::tree::kill_all_step_processes).await;
    match tokio::time::timeout(FORCED_CLEANUP_LIMIT, docker::remove_all_of_this_process()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => say(&format!("gantry: warning: docker cleanup: {e}")),
        Err(_) => say("gantry: warning: docker cleanup timed out; run 'gantry prune'"),
    }
    std::process::exit(130);
}
