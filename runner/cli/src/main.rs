//! `gantry`: a GitHub Actions-compatible runner. This binary is thin: it parses the command
//! line and hands each subcommand to the module that owns it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_delivery;
mod cmd_eval;
mod cmd_graph;
mod cmd_image;
mod cmd_list;
mod cmd_prune;
mod cmd_rerun;
mod cmd_run;
mod cmd_serve;
mod cmd_validate;
mod signals;
mod terminal;

/// mimalloc instead of glibc's malloc: a quiet host step makes ~800 small allocations
/// (most of them building the child's environment inside `std::process::Command`), and
/// glibc spent ~200 instructions on each (see bench/findings.md, P1).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gantry",
    version,
    about = "Run GitHub Actions workflows locally, on build machines and from webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workflows an event triggers (default event: push).
    Run(Box<cmd_run::RunArgs>),
    /// Re-run the failed jobs of a saved run, and what depends on them.
    Rerun(cmd_rerun::RerunArgs),
    /// Check workflow files (and action.yml, .gantry/config.yml) and report every problem.
    Validate {
        /// Files or directories (default: .github/workflows).
        paths: Vec<PathBuf>,
        /// Output format: human or json (one object per line).
        #[arg(long, default_value = "human", value_parser = ["human", "json"])]
        format: String,
        #[command(flatten)]
        preflight: cmd_validate::PreflightArgs,
    },
    /// Evaluate a GitHub Actions expression (or JSON lines of {"expr": ...} from stdin).
    Eval {
        /// JSON file with the contexts (github, env, matrix, ...).
        #[arg(long)]
        context: Option<PathBuf>,
        /// The expression; without it, read JSON lines from stdin.
        expr: Option<String>,
    },
    /// List workflows and jobs, and which run for EVENT.
    List {
        /// Workflow file or directory (repeatable; default .github/workflows).
        #[arg(short = 'W', long = "workflows")]
        workflows: Vec<PathBuf>,
        /// Event payload JSON file.
        #[arg(short = 'e', long = "event-file")]
        event_file: Option<PathBuf>,
        /// Event name (push, pull_request, ...).
        event: Option<String>,
    },
    /// Print the job graph.
    Graph {
        #[arg(short = 'W', long = "workflows")]
        workflows: Vec<PathBuf>,
        #[arg(long, default_value = "text", value_parser = ["text", "dot", "mermaid"])]
        format: String,
    },
    /// Build Gantry's base images offline (no registry needed).
    Image {
        #[command(subcommand)]
        action: ImageCommand,
    },
    /// List deployments waiting for approval.
    Approvals(cmd_delivery::ApprovalsArgs),
    /// Approve a pending deployment: `gantry approve RUN ENV --as NAME`.
    Approve(cmd_delivery::DecideArgs),
    /// Reject a pending deployment: `gantry reject RUN ENV --as NAME --comment WHY`.
    Reject(cmd_delivery::DecideArgs),
    /// Show the deployment history (optionally of one environment).
    Deployments(cmd_delivery::DeploymentsArgs),
    /// Serve forge webhooks and GitHub's Actions REST API (docs/server.md).
    Serve(cmd_serve::ServeArgs),
    /// Remove what crashed or killed runs left: containers, networks and volumes whose
    /// gantry process is provably gone, and such runs' work directories here.
    Prune {
        /// Remove every Gantry-labelled container, network and volume, also those of runs
        /// in progress and of other machines sharing the Docker daemon.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build images: busybox, debian, registry, postgres, or all (default: busybox and debian).
    Build {
        names: Vec<String>,
        /// Rebuild even when the image exists.
        #[arg(long)]
        force: bool,
        /// Build a debian variant whose python3 is this version (3.9, 3.11, 3.13: the
        /// Debian suite that has it), tagged gantry/debian:<suite>.
        #[arg(long, value_name = "X.Y")]
        python: Option<String>,
        /// Build a debian variant with nodejs and npm of this major (12, 18, 20), tagged
        /// gantry/debian:<suite>-node<N>.
        #[arg(long, value_name = "N")]
        node: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's help and version are not errors.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Validate {
            paths,
            format,
            preflight,
        } => runtime().block_on(cmd_validate::run_with_preflight(
            &paths,
            format == "json",
            preflight,
        )),
        Command::Eval { context, expr } => cmd_eval::run(context.as_deref(), expr.as_deref()),
        Command::List {
            workflows,
            event_file,
            event,
        } => cmd_list::run(&workflows, event.as_deref(), event_file.as_deref()),
        Command::Graph { workflows, format } => cmd_graph::run(&workflows, &format),
        Command::Image {
            action:
                ImageCommand::Build {
                    names,
                    force,
                    python,
                    node,
                },
        } => cmd_image::run(
            &names,
            &cmd_image::Options {
                force,
                python,
                node,
            },
        ),
        Command::Run(args) => runtime().block_on(cmd_run::run(*args)),
        Command::Rerun(args) => runtime().block_on(cmd_rerun::rerun(args)),
        Command::Serve(args) => {
            let rt = runtime();
            let result = rt.block_on(cmd_serve::run(args));
            // The server waited for what it must (runs recorded, deliveries a few
            // seconds); a mirror fetch still running is abandoned: its delivery is still
            // recorded unprocessed and the next start processes it.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        }
        Command::Prune { all } => runtime().block_on(cmd_prune::run(all)),
        Command::Approvals(args) => runtime().block_on(cmd_delivery::approvals(args)),
        Command::Approve(args) => runtime().block_on(cmd_delivery::approve(args)),
        Command::Reject(args) => runtime().block_on(cmd_delivery::reject(args)),
        Command::Deployments(args) => runtime().block_on(cmd_delivery::deployments(args)),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("gantry: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
