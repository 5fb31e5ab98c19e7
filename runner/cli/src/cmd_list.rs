//! Placeholder until planning lands (its owner replaces this file).
use std::path::{Path, PathBuf};
pub fn run(_w: &[PathBuf], _event: Option<&str>, _event_file: Option<&Path>) -> anyhow::Result<i32> {
    anyhow::bail!("list is not available yet")
}
