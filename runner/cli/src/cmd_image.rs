//! Placeholder until the docker backend lands (its owner replaces this file).
pub fn run(_names: &[String], _force: bool) -> anyhow::Result<i32> {
    anyhow::bail!("image build is not available yet")
}
