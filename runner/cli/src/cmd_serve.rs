//! `gantry serve`: hands the command line to the server crate.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Server config (gantry-server.yml); without it: no users or repositories.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite:…); default SQLite in the data directory.
    #[arg(long)]
    database: Option<String>,
    /// Address to listen on (overrides `listen:`); port 0 picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides `data:`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Check the config and exit.
    #[arg(long)]
    check: bool,
    /// Accept webhooks and serve the API, but start no runs (they stay queued until a
    /// server with an executor starts them).
    #[arg(long)]
    no_executor: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let opts = gantry_server::ServeOptions {
        config: args.config,
        database: args.database,
        listen: args.listen,
        data: args.data,
    };
    let cfg = match gantry_server::load_config(&opts) {
        Ok(c) => c,
        Err(gantry_server::ServeError::Config(e)) => {
            eprint!("{}", e.rendered);
            eprintln!("gantry serve: {} problem(s) in {}", e.count, e.file);
            return Ok(2);
        }
        Err(e) => return Err(e.into()),
    };
    if args.check {
        eprintln!(
            "gantry serve: config ok ({} repositories, {} users)",
            cfg.repositories.len(),
            cfg.users.len()
        );
        return Ok(0);
    }
    gantry_server::serve_with(cfg, !args.no_executor).await?;
    Ok(0)
}
