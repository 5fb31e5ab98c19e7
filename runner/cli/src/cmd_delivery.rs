//! `gantry approvals`, `gantry approve`, `gantry reject`, `gantry deployments`: decide on
//! pending environment approvals and show the deployment history of a repository.

use std::path::PathBuf;

use gantry_delivery::approval::{ApprovalStore, DecideError};
use gantry_delivery::history::History;

/// `gantry approvals`: list pending approvals.
#[derive(Debug, Clone, clap::Args)]
pub struct ApprovalsArgs {
    /// The repository (where `.gantry/` lives).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `gantry approve RUN ENV --as NAME` / `gantry reject RUN ENV --as NAME`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    /// The run id (see `gantry approvals`).
    pub run: String,
    /// The environment.
    pub environment: String,
    /// Who decides (must be one of the environment's reviewers).
    #[arg(long = "as", value_name = "NAME")]
    pub name: String,
    /// A comment recorded with the decision (the reason, for a rejection).
    #[arg(long)]
    pub comment: Option<String>,
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

/// `gantry deployments [ENV]`: the deployment history.
#[derive(Debug, Clone, clap::Args)]
pub struct DeploymentsArgs {
    /// Only this environment.
    pub environment: Option<String>,
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

pub async fn approvals(args: ApprovalsArgs) -> anyhow::Result<i32> {
    let store = ApprovalStore::for_repo(&args.repo);
    // Requests of runs that died while waiting are not pending any more.
    for gone in store.sweep_abandoned() {
        eprintln!(
            "gantry: run {} no longer waits for environment {} (its process is gone); marked abandoned",
            gone.run_id, gone.environment
        );
    }
    let pending = store.pending();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&pending)?);
        return Ok(0);
    }
    if pending.is_empty() {
        println!("no pending approvals");
        return Ok(0);
    }
    println!(
        "{:<24} {:<14} {:<24} {:<9} {:<20} COMMAND",
        "RUN", "ENVIRONMENT", "JOB", "APPROVALS", "SINCE"
    );
    for p in &pending {
        println!(
            "{:<24} {:<14} {:<24} {:<9} {:<20} {}",
            p.run_id,
            p.environment,
            p.job,
            format!("{}/{}", p.approvals(), p.required_approvals),
            p.since.format("%Y-%m-%d %H:%M:%S"),
            p.approve_command()
        );
    }
    Ok(0)
}

async fn decide(args: DecideArgs, approved: bool) -> anyhow::Result<i32> {
    let store = ApprovalStore::for_repo(&args.repo);
    let rules = current_rules(&args.repo, &args.environment);
    let (run, env, name, comment) = (args.run, args.environment, args.name, args.comment);
    let result = tokio::task::spawn_blocking(move || {
        // Decide by the config's rules, not by whatever the request file says (the
        // waiting gate re-checks every decision against them too).
        if let Some(rules) = rules {
            let _ = store.update(&run, &env, |f| {
                let same = f.reviewers == rules.reviewers
                    && f.required_approvals == rules.required_approvals
                    && f.prevent_self_review == rules.prevent_self_review;
                f.reviewers = rules.reviewers;
                f.required_approvals = rules.required_approvals;
                f.prevent_self_review = rules.prevent_self_review;
                !same
            });
        }
        store.decide(&run, &env, &name, approved, comment)
    })
    .await?;
    match result {
        Ok(req) => {
            let verb = if approved { "approved" } else { "rejected" };
            println!(
                "{verb} run {} environment {} ({} of {} approvals; state {:?})",
                req.run_id,
                req.environment,
                req.approvals(),
                req.required_approvals,
                req.state
            );
            Ok(0)
        }
        Err(e @ DecideError::NotFound { .. }) => {
            eprintln!("error: {e}");
            Ok(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

/// The environment's rules in the repository's `.gantry/config.yml` (`None` without a
/// valid config or such an environment).
fn current_rules(
    repo: &std::path::Path,
    environment: &str,
) -> Option<gantry_delivery::config::EnvironmentConfig> {
    let path = repo.join(gantry_delivery::CONFIG_PATH);
    if !path.exists() {
        return None;
    }
    let (config, _) = gantry_delivery::load_config_with(&path, gantry_workflow::parse_tree);
    config?.environment(environment).cloned()
}

pub async fn approve(args: DecideArgs) -> anyhow::Result<i32> {
    decide(args, true).await
}

pub async fn reject(args: DecideArgs) -> anyhow::Result<i32> {
    decide(args, false).await
}

pub async fn deployments(args: DeploymentsArgs) -> anyhow::Result<i32> {
    if !args.repo.join(".gantry").join("deployments.db").exists() {
        println!("no deployments recorded");
        return Ok(0);
    }
    let history = History::open_repo(&args.repo).await?;
    let list = history
        .list(args.environment.as_deref(), args.limit)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no deployments recorded");
        return Ok(0);
    }
    for d in &list {
        println!(
            "{}  {:<12} {:<11} {} {:<20} run {} job {} by {}",
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            d.environment,
            d.status,
            &d.sha[..d.sha.len().min(7)],
            d.git_ref,
            d.run_id,
            d.job,
            d.actor
        );
        if let Some(url) = &d.url {
            println!("    url: {url}");
        }
        for a in &d.approvals {
            println!(
                "    {} by {} at {}{}",
                if a.approved { "approved" } else { "rejected" },
                a.by,
                a.at.format("%Y-%m-%d %H:%M:%S"),
                a.comment
                    .as_ref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            );
        }
        if let Some(h) = &d.health {
            println!(
                "    health: {} — {}",
                if h.passed { "passed" } else { "failed" },
                h.summary()
            );
        }
        if let Some(r) = &d.rollback {
            println!("    rollback ({}): {}", r.strategy, r.message);
        }
        if let Some(m) = &d.message {
            println!("    {m}");
        }
        if !d.outputs.is_empty() {
            let outs: Vec<String> = d.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("    outputs: {}", outs.join(" "));
        }
    }
    Ok(0)
}
