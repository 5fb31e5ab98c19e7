//! [`DeliveryBuilder`]: how a [`Delivery`] is put together.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::approval::ApprovalPrompt;
use crate::events::{DeliveryEvent, EventSink};
use crate::gate::Delivery;
use crate::history::History;
use crate::notify;
use crate::notify::slack::{SlackNotifier, SlackTarget};
use crate::rollback::Redeploy;

/// Builds a [`Delivery`].
pub struct DeliveryBuilder {
    pub(crate) d: Delivery,
    pub(crate) bus: Option<gantry_engine::events::EventBus>,
}

impl DeliveryBuilder {
    /// Where events go (the engine forwards them into the run's event stream).
    pub fn events(mut self, tx: tokio::sync::mpsc::UnboundedSender<DeliveryEvent>) -> Self {
        let print = self.d.sink.print;
        let bus = self.d.sink.bus.take();
        self.d.sink = EventSink::new(Some(tx));
        self.d.sink.print = print;
        self.d.sink.bus = bus;
        self
    }

    /// Emit approvals, health measurements, deployment outcomes and rollbacks into the
    /// run's event stream (`events.jsonl`, `--json`) as run events, masked with the
    /// secrets given to [`DeliveryBuilder::secrets`].
    pub fn run_events(mut self, bus: gantry_engine::events::EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Print events as lines on stderr (a CLI without a reporter for them).
    pub fn print_events(mut self, yes: bool) -> Self {
        self.d.sink.print = yes;
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
            self.d.sink.bus = Some((bus, self.d.mask.clone()));
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
                Err(e) => self.d.sink.emit(DeliveryEvent::NotificationWarning {
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
) -> Result<SlackTarget, String> {
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
        _ => Err("needs webhook_url or bot_token + channel".into()),
    }
}
