//! What a repository's `.gantry/config.yml` adds on the server: health checks, rollback
//! and Slack notifications, run by the delivery crate as in `gantry run`. Its protection
//! rules (reviewers, required count, self-review, wait timer, branch and tag rules, the
//! secrets an environment releases) are dropped: those come from the server config only
//! (see [`strip_protection`]), so a commit cannot change who approves its deployment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gantry_delivery::history::{DeploymentRecord, History};
use gantry_delivery::{Delivery, DeliveryConfig, DeliverySubscribers};
use gantry_engine::events::EventBus;
use indexmap::IndexMap;

use crate::config::Repository;
use crate::gate::rules;

/// The delivery side of one run: the repository's config (protection stripped), its
/// deployment history, and one [`Delivery`] per environment (each releases that
/// environment's server secrets only).
pub struct RunDelivery {
    config: DeliveryConfig,
    root: PathBuf,
    history: Option<History>,
    /// The repository's secrets (for `${{ secrets.X }}` in the Slack settings).
    repo_secrets: IndexMap<String, String>,
    /// Each server environment's secrets, by its configured name.
    env_secrets: HashMap<String, IndexMap<String, String>>,
    run_id: String,
    run_url: String,
    bus: Mutex<Option<EventBus>>,
    /// The run's history and Slack subscribers, shared by every [`Delivery`] of the run.
    subscribers: Mutex<Option<Arc<DeliverySubscribers>>>,
    by_env: Mutex<HashMap<String, Arc<Delivery>>>,
}

/// A problem with the repository's `.gantry/config.yml` (every diagnostic, positioned).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryConfigError(pub String);

impl RunDelivery {
    /// The delivery of a run checked out at `root`; `None` without a `.gantry/config.yml`.
    /// `history` is the repository's deployment history on the server.
    pub fn load(
        root: &Path,
        repo: &Repository,
        history: Option<History>,
        run_id: String,
        run_url: String,
    ) -> Result<Option<RunDelivery>, DeliveryConfigError> {
        let path = root.join(gantry_delivery::CONFIG_PATH);
        if !path.exists() {
            return Ok(None);
        }
        let (config, diags) = gantry_delivery::load_config_with(&path, gantry_workflow::parse_tree);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == gantry_workflow::Severity::Error)
            .map(|d| d.to_string())
            .collect();
        let Some(mut config) = config.filter(|_| errors.is_empty()) else {
            return Err(DeliveryConfigError(errors.join("\n")));
        };
        strip_protection(&mut config, repo);
        let repo_secrets = repo
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        let env_secrets = repo
            .environments
            .iter()
            .map(|(name, env)| {
                let s = env
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect();
                (name.clone(), s)
            })
            .collect();
        Ok(Some(RunDelivery {
            config,
            root: root.to_path_buf(),
            history,
            repo_secrets,
            env_secrets,
            run_id,
            run_url,
            bus: Mutex::new(None),
            subscribers: Mutex::new(None),
            by_env: Mutex::new(HashMap::new()),
        }))
    }

    /// The run's event stream: delivery events (health measurements, rollbacks) go there.
    /// Starts the run-level Slack reporter (run succeeded/failed with the run's link); its
    /// task ends with the stream.
    pub fn attach(&self, bus: &EventBus, actor: &str) -> tokio::task::JoinHandle<()> {
        *self.bus.lock().unwrap() = Some(bus.clone());
        // Run-level messages are masked with every environment's secrets too: a failed
        // job's name or error may quote what an admitted job printed.
        let every_env_secret = self.env_secrets.values().flat_map(|s| s.values().cloned());
        let run_level = Arc::new(self.build_masking(&self.repo_secrets.clone(), every_env_secret));
        *self.subscribers.lock().unwrap() = run_level.subscribers().cloned();
        let ctx = gantry_delivery::RunReportContext {
            actor: actor.to_string(),
            run_url: Some(self.run_url.clone()),
        };
        gantry_delivery::spawn_run_reporter(run_level, bus.subscribe(), ctx)
    }

    fn build(&self, secrets: &IndexMap<String, String>) -> Delivery {
        self.build_masking(secrets, std::iter::empty())
    }

    /// [`RunDelivery::build`], masking `also_mask` as well.
    fn build_masking(
        &self,
        secrets: &IndexMap<String, String>,
        also_mask: impl Iterator<Item = String>,
    ) -> Delivery {
        let mut b = Delivery::builder(&self.root, self.config.clone())
            .secrets(secrets.clone())
            .also_mask(also_mask);
        if let Some(h) = &self.history {
            b = b.history(h.clone());
        }
        if let Some(bus) = self.bus.lock().unwrap().clone() {
            b = b.run_events(bus);
        }
        if let Some(s) = self.subscribers.lock().unwrap().clone() {
            b = b.subscribers(s);
        }
        let d = b.build();
        d.set_run_url(&self.run_id, &self.run_url);
        d
    }

    /// The delivery of environment `name` (the server's spelling when it protects it).
    pub fn for_environment(&self, name: &str) -> Arc<Delivery> {
        let key = name.to_lowercase();
        if let Some(d) = self.by_env.lock().unwrap().get(&key) {
            return d.clone();
        }
        let mut secrets = self.repo_secrets.clone();
        if let Some((_, s)) = self
            .env_secrets
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            secrets.extend(s.clone());
        }
        let d = Arc::new(self.build(&secrets));
        self.by_env.lock().unwrap().entry(key).or_insert(d).clone()
    }

    /// The history's record of this run's deployment by `job` to `environment`.
    pub async fn record_of(&self, environment: &str, job: &str) -> Option<DeploymentRecord> {
        let h = self.history.as_ref()?;
        let env = self
            .config
            .environment(environment)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| environment.to_string());
        h.list(Some(&env), 50)
            .await
            .ok()?
            .into_iter()
            .find(|r| r.run_id == self.run_id && r.job == job)
    }
}

/// Drops every protection rule of the repository's config: reviewers, required count,
/// self-review, wait timer, branch and tag rules. An environment releases exactly the
/// secrets the server config gives it (to its rollback script too), never what the commit
/// lists.
pub fn strip_protection(config: &mut DeliveryConfig, repo: &Repository) {
    for env in config.environments.values_mut() {
        env.reviewers.clear();
        env.required_approvals = 1;
        env.prevent_self_review = false;
        env.wait_timer = None;
        env.branches = None;
        env.tags = None;
        env.secrets = rules::environment(repo, &env.name)
            .map(|(_, e)| e.secrets.keys().cloned().collect())
            .unwrap_or_default();
    }
}
