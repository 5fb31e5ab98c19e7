//! `gantry prune [--all]`: remove what crashed or killed runs left behind. By default only
//! what a provably dead gantry process created: Docker containers, networks and volumes
//! whose owner labels name this host, this PID namespace and a process that no longer
//! exists (pid and start time), and the work directories (`.gantry/work/<run>/`) of such
//! runs in the current repository. Runs in progress, and other machines' runs on a shared
//! Docker daemon, are never touched. `--all` removes every Gantry-labelled Docker resource.
//! A normal run cleans up after itself.

use anyhow::Context;
use gantry_engine::backend::docker;
use gantry_engine::job::dirs::sweep;

/// Prune Gantry-managed Docker resources (all of them with `all`, else only stale ones)
/// and dead runs' work directories. Prints what was removed; returns the exit code.
pub async fn run(all: bool) -> anyhow::Result<i32> {
    let work_dirs = sweep::sweep_dead_runs(std::path::Path::new(".gantry/work"));
    let report = if all {
        docker::prune(None).await
    } else {
        docker::prune_stale().await
    }
    .context("pruning gantry's docker resources")?;
    println!(
        "removed {} container(s), {} network(s), {} volume(s){}, {work_dirs} work director{}",
        report.containers,
        report.networks,
        report.volumes,
        if all {
            ""
        } else {
            " left by runs whose gantry process is gone"
        },
        if work_dirs == 1 { "y" } else { "ies" }
    );
    Ok(0)
}
