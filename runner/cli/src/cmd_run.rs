//! Placeholder until the engine lands (its owner replaces this file).
#[derive(clap::Args)]
pub struct RunArgs {}
#[derive(clap::Args)]
pub struct RerunArgs {}
pub async fn run(_a: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("run is not available yet")
}
pub async fn rerun(_a: RerunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("rerun is not available yet")
}
