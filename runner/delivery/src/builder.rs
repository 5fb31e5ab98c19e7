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
use gantry_engine::events::RunEvent;

/// Builds a [`Delivery`].
pub struct DeliveryBuilder {
    pub(crate) d: Delivery,
    pub(crate) bus: Option<gantry_engine::events::EventBus>,
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

    pub fn notifier(mut self, n: SlackNotifier) -> Self {
        self.d.notifier = Some(n);
        self
    }

    /// Builds; the Slack notifier comes from the config unless one was given. Config
    /// values like `${{ secrets.SLACK_WEBHOOK_URL }}` are resolved from the secrets.
    pub fn build(mut self) -> Delivery {
        if let Some(bus) = self.bus.take() {
            self.d.sink = EventSink::new(bus, self.d.mask.clone());
        }
        if self.d.notifier.is_none()
            && let Some(s) = &self.d.config.notifications.slack
        {
            match slack_target(s, &self.d.secrets) {
                Ok(target) => {
                    self.d.notifier = Some(
                        SlackNotifier::new(target, self.d.mask.clone())
                            .with_events(s.events.clone())
                            .with_mentions(s.mention_on_failure.clone()),
                    )
                }
                Err(e) => self.d.sink.emit(RunEvent::NotificationWarning {
                    message: format!("Slack notifications disabled: {e}"),
                }),
            }
        }
        self.d
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
