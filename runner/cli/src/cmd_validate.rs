//! Placeholder until the workflow loader lands (its owner replaces this file).
use std::path::PathBuf;
pub fn run(_paths: &[PathBuf], _json: bool) -> anyhow::Result<i32> {
    anyhow::bail!("validate is not available yet")
}
