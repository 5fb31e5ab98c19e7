//! Continuous delivery for Gantry: environment gates (branch policy, N-of-M approvals,
//! self-review, wait timer, timeout), post-deploy health analysis, automatic rollback,
//! deployment history (SQLite through sqlx) and Slack notifications, configured in the
//! repository's `.gantry/config.yml`.
//!
//! [`Delivery`] implements the engine's [`gantry_engine::gate::DeliveryGates`].

pub mod approval;
pub mod builder;
pub mod config;
pub mod events;
pub mod gate;
pub mod health;
pub mod history;
pub mod notify;
pub mod policy;
pub mod report;
pub mod rollback;
pub mod subscribers;

use std::path::Path;

pub use builder::{DeliveryBuilder, slack_target};
pub use config::{DeliveryConfig, config_from_node};
pub use gate::Delivery;
pub use report::{RunReportContext, spawn_run_reporter};
pub use subscribers::DeliverySubscribers;

use gantry_workflow::{Diagnostic, Loaded, Node, Severity, Span, Spanned};

/// The path of the delivery config in a repository.
pub const CONFIG_PATH: &str = ".gantry/config.yml";

/// Turns YAML text into the positioned tree: `(path, text)`, `path` naming the file in
/// diagnostics. Supplied by `gantry_workflow`'s loader, the only module that reads YAML
/// (proposed there as `pub fn parse_tree(path: &str, text: &str) -> Loaded<Spanned<Node>>`).
pub type TreeParser = fn(path: &str, text: &str) -> Loaded<Spanned<Node>>;

/// Parses config text with the given YAML tree parser.
pub fn parse_config_with(
    path: &str,
    text: &str,
    parse: TreeParser,
) -> (Option<DeliveryConfig>, Vec<Diagnostic>) {
    let loaded = parse(path, text);
    let mut diags = loaded.diagnostics;
    match loaded.value {
        Some(tree) if !diags.iter().any(|d| d.severity == Severity::Error) => {
            let (cfg, more) = config_from_node(&tree, path);
            diags.extend(more);
            (cfg, diags)
        }
        _ => (None, diags),
    }
}

/// Loads a config file with the given YAML tree parser.
pub fn load_config_with(
    path: &Path,
    parse: TreeParser,
) -> (Option<DeliveryConfig>, Vec<Diagnostic>) {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_config_with(&file, &text, parse),
        Err(e) => (
            None,
            vec![Diagnostic {
                file,
                span: Span {
                    offset: 0,
                    len: 0,
                    line: 1,
                    col: 1,
                },
                severity: Severity::Error,
                message: format!("cannot read file: {e}"),
            }],
        ),
    }
}

/// Checks a config file for `gantry validate`: every problem as a positioned diagnostic.
pub fn validate_config_with(path: &Path, parse: TreeParser) -> Vec<Diagnostic> {
    load_config_with(path, parse).1
}

/// What the engine (or `gantry run`) needs for a repository: `Ok(None)` without a
/// `.gantry/config.yml`; `Err` with every diagnostic when the config is invalid; otherwise a
/// builder with the config, the deployment history (`.gantry/deployments.db`; a warning
/// when it cannot be opened) and the terminal prompt when interactive. Add `.secrets(..)`,
/// `.run_events(..)` (and `.redeploy(..)`) and `build()`.
pub async fn from_repo(
    root: &Path,
    parse: TreeParser,
) -> Result<Option<DeliveryBuilder>, Vec<Diagnostic>> {
    let path = root.join(CONFIG_PATH);
    if !path.exists() {
        return Ok(None);
    }
    let (config, diags) = load_config_with(&path, parse);
    let Some(config) = config else {
        return Err(diags);
    };
    let mut builder = Delivery::builder(root, config).prompt_if_terminal();
    match history::History::open_repo(root).await {
        Ok(h) => builder = builder.history(h),
        Err(e) => tracing::warn!("deployment history disabled: {e}"),
    }
    Ok(Some(builder))
}
