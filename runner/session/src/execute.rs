//! [`PreparedRun::execute`]: record, wire delivery, run, report.

use std::sync::Arc;

use gantry_engine::events::{EventBus, Status};
use gantry_engine::gate::DeliveryGates;
use gantry_engine::store::{RunSummary, SummaryBuilder};
use tokio_util::sync::CancellationToken;

use crate::error::SessionError;
use crate::prepare::{PreparedRun, local_callees};
use crate::redeploy::RunRedeploy;
use crate::request::GateSource;
use crate::store::{RunStart, RunStore};

/// What to wait for, once the run's event stream has closed, before a subscriber's work
/// counts as done (its last lines printed, its files written).
pub enum Pending {
    Nothing,
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
    Join(Box<dyn FnOnce() + Send>),
}

impl Pending {
    /// Waits without blocking the runtime's worker.
    pub async fn wait(self) {
        match self {
            Pending::Nothing => {}
            Pending::Task(t) => {
                let _ = t.await;
            }
            Pending::Thread(t) => {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
            Pending::Join(f) => {
                let _ = tokio::task::spawn_blocking(f).await;
            }
        }
    }
}

/// A consumer of a run's events (terminal, JSON lines, a store's recorder, a live page):
/// it subscribes to the bus before the run starts and never steers the run.
pub trait RunSubscriber: Send {
    fn attach(self: Box<Self>, bus: &EventBus) -> Pending;
}

impl<F: FnOnce(&EventBus) -> Pending + Send> RunSubscriber for F {
    fn attach(self: Box<Self>, bus: &EventBus) -> Pending {
        (*self)(bus)
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunResult {
    pub run_id: String,
    pub result: Status,
    /// Built from the run's events, as the store's.
    pub summary: RunSummary,
    /// Where the store keeps the record.
    pub location: std::path::PathBuf,
}

impl RunResult {
    /// Whether the run succeeded (a run of skipped jobs did).
    pub fn succeeded(&self) -> bool {
        matches!(self.result, Status::Success | Status::Skipped)
    }
}

impl PreparedRun {
    /// Allocates the run in `store`, attaches the store's recorder and `subscribers`,
    /// wires delivery per the request's [`GateSource`], runs the jobs until they end or
    /// `cancel` fires, and waits for every subscriber to finish.
    pub async fn execute(
        mut self,
        store: &dyn RunStore,
        subscribers: Vec<Box<dyn RunSubscriber>>,
        cancel: CancellationToken,
    ) -> Result<RunResult, SessionError> {
        if self.is_empty() {
            return Err(SessionError::NothingTriggered(self.cfg.event_name.clone()));
        }
        // The run calls the local reusable workflows as recorded now, not as the files
        // are when a job gets to the call.
        let called = local_callees(
            &self.cfg.root,
            &self.cfg.workflows,
            &self.cfg.workflow_texts,
        );
        self.cfg.workflow_texts = called
            .iter()
            .map(|w| (self.cfg.root.join(&w.rel_path), w.text.clone()))
            .collect();
        let slot = store.begin(&RunStart {
            root: &self.cfg.root,
            invocation: &self.request.invocation,
            secret_names: self.cfg.secrets.keys().cloned().collect(),
            workflows: &self.sources,
            called: &called,
            rerun_of: self.request.rerun_of.as_deref(),
        })?;
        self.cfg.run_id = slot.id.clone();
        self.cfg.run_number = slot.number;

        let bus = EventBus::new();
        let mut pending = vec![slot.recorder.attach(&bus)];
        pending.extend(subscribers.into_iter().map(|s| s.attach(&bus)));
        let mut summary_sub = bus.subscribe();
        let summary = tokio::spawn(async move {
            let mut b = SummaryBuilder::default();
            while let Some(ev) = summary_sub.recv().await {
                b.observe(&ev);
            }
            b.finished_summary()
        });
        let delivery_report = match self.wire_delivery(&bus).await {
            Ok(h) => h,
            Err(e) => {
                // No run: let the recorder and the subscribers end (the record stays
                // without a summary, as a run that did not finish).
                bus.close();
                drop(bus);
                for p in pending {
                    p.wait().await;
                }
                return Err(e);
            }
        };
        let outcome = gantry_engine::run::execute(self.cfg, bus.clone(), cancel).await;
        bus.close();
        drop(bus);
        if let Some(h) = delivery_report {
            let _ = h.await;
        }
        let summary = summary.await.ok().flatten();
        for p in pending {
            p.wait().await;
        }
        let outcome = outcome.map_err(SessionError::Run)?;
        let summary = summary.ok_or_else(|| SessionError::Run("the run did not finish".into()))?;
        Ok(RunResult {
            run_id: slot.id,
            result: outcome.result,
            summary,
            location: slot.location,
        })
    }

    /// Sets the run's gates. From `.gantry/config.yml` (environment gates, health checks,
    /// rollback, Slack): delivery events go into the run's event stream, `strategy:
    /// previous` is wired ([`RunRedeploy`]) and the run-level Slack reporter starts (its
    /// task, returned, ends with the event stream). Without the file every environment is
    /// open.
    async fn wire_delivery(
        &mut self,
        bus: &EventBus,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, SessionError> {
        let print_events = match &self.request.gates {
            GateSource::Given(gates) => {
                self.cfg.gates = gates.clone();
                return Ok(None);
            }
            GateSource::GivenWithEvents(build) => {
                self.cfg.gates = build(bus);
                return Ok(None);
            }
            GateSource::RepoConfig { print_events } => *print_events,
        };
        let builder =
            match gantry_delivery::from_repo(&self.cfg.root, gantry_workflow::parse_tree).await {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(diags) => {
                    let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                    return Err(SessionError::DeliveryConfig(text.join("\n")));
                }
            };
        let redeploy = RunRedeploy::new(&self.request, &self.cfg, bus.subscribe());
        let delivery = Arc::new(
            builder
                .secrets(self.cfg.secrets.clone())
                .run_events(bus.clone())
                .redeploy(redeploy)
                .build(),
        );
        self.cfg.gates = delivery.clone() as Arc<dyn DeliveryGates>;
        let actor = self.cfg.actor.clone().unwrap_or_else(|| {
            gantry_engine::github_contexts::GitInfo::discover(&self.cfg.root).actor
        });
        let ctx = gantry_delivery::RunReportContext {
            actor,
            run_url: None,
        };
        let printer = gantry_delivery::events::spawn_printer(bus.subscribe(), print_events);
        let slack = gantry_delivery::spawn_run_reporter(delivery, bus.subscribe(), ctx);
        Ok(Some(tokio::spawn(async move {
            let _ = printer.await;
            let _ = slack.await;
        })))
    }

    /// Runs the prepared jobs as part of run `run_id` (a redeploy inside a run: no record
    /// of its own), sending each log line to `output`.
    pub(crate) async fn execute_within(
        mut self,
        run_id: &str,
        output: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Status, SessionError> {
        self.cfg.run_id = run_id.to_string();
        if let GateSource::Given(gates) = &self.request.gates {
            self.cfg.gates = gates.clone();
        }
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let run = async {
            let o =
                gantry_engine::run::execute(self.cfg, bus.clone(), CancellationToken::new()).await;
            bus.close();
            o
        };
        let show = async {
            while let Some(ev) = sub.recv().await {
                if let gantry_engine::events::RunEvent::Log { text, .. } = &*ev {
                    for line in text.split_terminator('\n') {
                        output(line.to_string());
                    }
                }
            }
        };
        let (outcome, _) = tokio::join!(run, show);
        Ok(outcome.map_err(SessionError::Run)?.result)
    }
}
