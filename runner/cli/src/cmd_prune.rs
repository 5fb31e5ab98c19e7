//! `gantry prune [--all]`: remove the containers, networks and volumes Gantry created
//! (label `dev.gantry.managed=true`). By default only leftovers of runs whose gantry process
//! is gone (crashed or killed) are removed; `--all` also removes those of runs in progress.
//! A normal run cleans up after itself.

use anyhow::Context;
use gantry_engine::backend::docker;

/// Prune Gantry-managed Docker resources (all of them with `all`, else only stale ones).
/// Prints what was removed; returns the process exit code.
pub async fn run(all: bool) -> anyhow::Result<i32> {
    let report = if all {
        docker::prune(None).await
    } else {
        docker::prune_stale().await
    }
    .context("pruning gantry's docker resources")?;
    println!(
        "removed {} container(s), {} network(s), {} volume(s){}",
        report.containers,
        report.networks,
        report.volumes,
        if all {
            ""
        } else {
            " left by runs that are no longer active"
        }
    );
    Ok(0)
}
