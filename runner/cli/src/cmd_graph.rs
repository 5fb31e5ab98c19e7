//! Placeholder until planning lands (its owner replaces this file).
use std::path::PathBuf;
pub fn run(_w: &[PathBuf], _format: &str) -> anyhow::Result<i32> {
    anyhow::bail!("graph is not available yet")
}
