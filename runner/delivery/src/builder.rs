//! [`DeliveryBuilder`]: how a [`Delivery`] is put together.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::approval::ApprovalPrompt;
use crate::events::EventSink;
use crate::gate::Delivery;
use crate::history::History;
use crate::notify;
use crate::notify::slack::{SlackNotifier, SlackTarget};
use crate::rollback::Redeploy;
use crate::subscribers::DeliverySubscribers;
use gantry_engine::events::{EventBus, RunEvent};

/// Builds a [`Delivery`].
pub struct DeliveryBuilder {
    pub(crate) d: Delivery,
    pub(crate) bus: Option<EventBus>,
    pub(crate) notifier: Option<SlackNotifier>,
    pub(crate) subscribers: Option<Arc<DeliverySubscribers>>,
    /// Values masked besides the secrets ([`DeliveryBuilder::also_mask`]).
    pub(crate) also_mask: Vec<String>,
}

impl DeliveryBuilder {
    /// Emit the gate's events (approvals, gate progress, health checks, deployment outcomes,
    /// rollbacks, notification warnings) into the run's event stream (`events.jsonl`,
    /// `--json`, the terminal), masked with the secrets given to
    /// [`DeliveryBuilder::secrets`]. Without a stream they are only traced.
    pub fn run_events(mut self, bus: gantry_engine::events::EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Ask interactively ([`crate::approval::TtyPrompt`] in a terminal).
    pub fn prompt(mut self, p: Arc<dyn ApprovalPrompt>) -> Self {
        self.d.prompt = Some(p);
        self
    }

    /// Ask interactively ([`crate::approval::TtyPrompt`]) when stdin and stderr are
    /// terminals; otherwise the gate prints the `gantry approve` command and polls.
    pub fn prompt_if_terminal(self) -> Self {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            self.prompt(Arc::new(crate::approval::TtyPrompt))
        } else {
            self
        }
    }

    /// Every secret known to the run: environment secrets are taken from here, and every
    /// value is masked in messages, records and output.
    pub fn secrets(mut self, secrets: IndexMap<String, String>) -> Self {
        self.d.mask = notify::masker(secrets.values().cloned());
        self.d.secrets = secrets;
        self
    }

    /// Masks these values too, without making them secrets this delivery may use (a
    /// server's run-level delivery masks every environment's secrets in run messages,
    /// but must not resolve `${{ secrets.* }}` in its config from them).
    pub fn also_mask(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.also_mask.extend(values);
        self
    }

    /// The deployment history: read by the gate, written by the history subscriber.
    pub fn history(mut self, h: History) -> Self {
        self.d.history = Some(h);
        self
    }

    pub fn redeploy(mut self, r: Arc<dyn Redeploy>) -> Self {
        self.d.redeploy = Some(r);
        self
    }

    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.d.poll_interval = d;
        self
    }

    /// The Slack notifier of the Slack subscriber (instead of the config's).
    pub fn notifier(mut self, n: SlackNotifier) -> Self {
        self.notifier = Some(n);
        self
    }

    /// Emit to the history and Slack subscribers another delivery of the run started on
    /// the same stream ([`Delivery::subscribers`]) instead of starting them again, which
    /// would save every record and send every message once per delivery. The history and
    /// notifier given to this builder then only serve reads and run-level messages.
    pub fn subscribers(mut self, s: Arc<DeliverySubscribers>) -> Self {
        self.subscribers = Some(s);
        self
    }

    /// Builds (in a tokio runtime: the subscribers run on a task of their own); the Slack
    /// notifier comes from the config unless one was given. Config values like
    /// `${{ secrets.SLACK_WEBHOOK_URL }}` are resolved from the secrets. Without
    /// [`DeliveryBuilder::run_events`] the gate's events go to a stream of its own, so
    /// the history and Slack subscribers still hear them.
    pub fn build(mut self) -> Delivery {
        if !self.also_mask.is_empty() {
            let extra = std::mem::take(&mut self.also_mask);
            self.d.mask = notify::masker(self.d.secrets.values().cloned().chain(extra));
        }
        let bus = match self.bus.take() {
            Some(bus) => bus,
            None => {
                let own = EventBus::new();
                self.d.own_bus = Some(own.clone());
                own
            }
        };
        self.d.sink = EventSink::new(bus.clone(), self.d.mask.clone());
        if let Some(s) = self.subscribers.take() {
            self.d.subscribers = Some(s);
            return self.d;
        }
        let notifier = self.notifier.take().or_else(|| self.config_notifier());
        self.d.subscribers = Some(DeliverySubscribers::start(
            bus.subscribe(),
            self.d.history.clone(),
            notifier,
            self.d.sink.clone(),
        ));
        self.d
    }

    /// The notifier `notifications.slack` configures (a warning event when its target
    /// cannot be resolved).
    fn config_notifier(&self) -> Option<SlackNotifier> {
        let s = self.d.config.notifications.slack.as_ref()?;
        match slack_target(s, &self.d.secrets) {
            Ok(target) => Some(
                SlackNotifier::new(target, self.d.mask.clone())
                    .with_events(s.events.clone())
                    .with_mentions(s.mention_on_failure.clone()),
            ),
            Err(e) => {
                self.d.sink.emit(RunEvent::NotificationWarning {
                    message: format!("Slack notifications disabled: {e}"),
                });
                None
            }
        }
    }
}

/// The Slack target of a config, with `${{ secrets.X }}` resolved.
pub fn slack_target(
    s: &crate::config::SlackConfig,
    secrets: &IndexMap<String, String>,
) -> Result<SlackTarget, notify::RefError> {
    if let Some(url) = &s.webhook_url {
        return Ok(SlackTarget::Webhook {
            url: notify::resolve_refs(url, secrets)?,
        });
    }
    match (&s.bot_token, &s.channel) {
        (Some(t), Some(c)) => Ok(SlackTarget::Api {
            token: notify::resolve_refs(t, secrets)?,
            channel: c.clone(),
            base_url: s
                .api_url
                .clone()
                .unwrap_or_else(|| "https://slack.com/api".into()),
        }),
        _ => Err(notify::RefError::Incomplete),
    }
}
