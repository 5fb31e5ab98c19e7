//! Placeholder until the docker backend lands (its owner replaces this file).
pub async fn run(_all: bool) -> anyhow::Result<i32> {
    anyhow::bail!("prune is not available yet")
}
