//! Fan-out of run events to subscribers.
//!
//! Two kinds of subscription. [`EventBus::subscribe`] delivers every event the moment it is
//! emitted, to a task (`recv().await`) or a thread (`blocking_recv`). Reporters on threads of
//! their own that only need to keep up (the run store, the terminal, JSON lines) take
//! [`EventBus::subscribe_batched`]: the first event after a quiet spell wakes them at once,
//! but while events keep coming they collect them every [`BATCH_LATENCY`]. Waking a sleeping
//! thread is a futex call and often an inter-processor interrupt, paid by the emitter, that
//! is on the path from one step to the next; per-event wake-ups were a tenth of Gantry's
//! CPU in a DAG of 1000 short jobs (P6 in `docs/benchmarks.md`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::RunEvent;

/// A receiver of run events, woken for every event.
pub type Subscription = mpsc::UnboundedReceiver<Arc<RunEvent>>;

/// How long a batched subscriber may lag behind while events keep coming.
pub const BATCH_LATENCY: Duration = Duration::from_millis(20);
/// Queued events that wake a batched subscriber before its nap is over.
const BATCH_WAKE: usize = 256;

/// Fan-out of run events to every subscriber. Cloning is cheap (shared list).
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Sink>>>,
}

enum Sink {
    Eager(mpsc::UnboundedSender<Arc<RunEvent>>),
    Batched(BatchedSender),
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn sinks(&self) -> MutexGuard<'_, Vec<Sink>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes; events emitted from now on are delivered in emission order. The stream
    /// ends when every clone of the bus is dropped (or [`EventBus::close`] is called).
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sinks().push(Sink::Eager(tx));
        rx
    }

    /// Subscribes for a consumer thread that may lag up to [`BATCH_LATENCY`] behind while
    /// events flow. Same order and end of stream as [`EventBus::subscribe`].
    pub fn subscribe_batched(&self) -> BatchedSubscription {
        let queue = Arc::new(Batched::default());
        self.sinks()
            .push(Sink::Batched(BatchedSender(queue.clone())));
        BatchedSubscription {
            queue,
            local: VecDeque::new(),
        }
    }

    /// Emits one event to every subscriber.
    pub fn emit(&self, event: RunEvent) {
        let event = Arc::new(event);
        for s in self.sinks().iter() {
            match s {
                Sink::Eager(tx) => {
                    let _ = tx.send(event.clone());
                }
                Sink::Batched(q) => q.0.push(event.clone()),
            }
        }
    }

    /// Ends every subscription (receivers see the end of the stream once drained).
    pub fn close(&self) {
        self.sinks().clear();
    }
}

#[derive(Default)]
struct Batched {
    state: Mutex<BatchState>,
    ready: Condvar,
}

#[derive(Default)]
struct BatchState {
    queue: VecDeque<Arc<RunEvent>>,
    closed: bool,
    consumer: Consumer,
}

/// What the consumer of a batched subscription is doing, as far as the emitter cares.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// Processing what it took; it looks again when done.
    #[default]
    Busy,
    /// Waiting at most [`BATCH_LATENCY`]: woken early only for a large backlog.
    Napping,
    /// Waiting until woken: the next event wakes it.
    Sleeping,
}

impl Batched {
    fn state(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: Arc<RunEvent>) {
        let mut st = self.state();
        st.queue.push_back(event);
        let wake = match st.consumer {
            Consumer::Busy => false,
            Consumer::Napping => st.queue.len() >= BATCH_WAKE,
            Consumer::Sleeping => true,
        };
        if wake {
            st.consumer = Consumer::Busy;
            drop(st);
            self.ready.notify_one();
        }
    }
}

/// The bus's end of a batched subscription; dropping it (bus closed or gone) ends the
/// stream.
struct BatchedSender(Arc<Batched>);

impl Drop for BatchedSender {
    fn drop(&mut self) {
        self.0.state().closed = true;
        self.0.ready.notify_one();
    }
}

/// What [`BatchedSubscription::recv_until`] got.
#[derive(Debug)]
pub enum Received {
    Event(Arc<RunEvent>),
    /// The deadline passed with nothing to receive.
    TimedOut,
    /// The bus is closed and everything was received.
    Closed,
}

/// A receiver of run events for a consumer thread, see [`EventBus::subscribe_batched`].
pub struct BatchedSubscription {
    queue: Arc<Batched>,
    /// Events taken from the queue in one go, handed out one by one.
    local: VecDeque<Arc<RunEvent>>,
}

impl BatchedSubscription {
    /// The next event, blocking the thread until there is one; `None` once the bus is
    /// closed and everything was received.
    pub fn blocking_recv(&mut self) -> Option<Arc<RunEvent>> {
        match self.recv_until(None) {
            Received::Event(ev) => Some(ev),
            Received::Closed | Received::TimedOut => None,
        }
    }

    /// The next event, blocking the thread at most until `deadline` (`None`: no limit).
    /// Lets a consumer that buffers (the run store) write out on time while the run is
    /// quiet, without a wake-up per event while it is busy.
    pub fn recv_until(&mut self, deadline: Option<Instant>) -> Received {
        if let Some(ev) = self.local.pop_front() {
            return Received::Event(ev);
        }
        let mut st = self.queue.state();
        let mut quiet = false;
        loop {
            if !st.queue.is_empty() {
                std::mem::swap(&mut self.local, &mut st.queue);
                st.consumer = Consumer::Busy;
                return match self.local.pop_front() {
                    Some(ev) => Received::Event(ev),
                    None => Received::Closed,
                };
            }
            if st.closed {
                return Received::Closed;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        // It looks again when done with what it does at the deadline.
                        st.consumer = Consumer::Busy;
                        return Received::TimedOut;
                    }
                },
                None => None,
            };
            if quiet {
                // A whole nap without events: the run is quiet, so the next event should
                // be seen at once.
                st.consumer = Consumer::Sleeping;
                st = match left {
                    None => self.queue.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(left) => match self.queue.ready.wait_timeout(st, left) {
                        Ok((st, _)) => st,
                        Err(e) => e.into_inner().0,
                    },
                };
            } else {
                st.consumer = Consumer::Napping;
                let nap = left.map_or(BATCH_LATENCY, |l| l.min(BATCH_LATENCY));
                st = match self.queue.ready.wait_timeout(st, nap) {
                    Ok((st, _)) => st,
                    Err(e) => e.into_inner().0,
                };
                quiet = st.queue.is_empty();
            }
        }
    }

    /// Whether nothing is waiting to be received right now.
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.queue.state().queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(step: usize) -> RunEvent {
        RunEvent::GroupEnded {
            job: "j".into(),
            step,
        }
    }

    fn step_of(e: &RunEvent) -> usize {
        match e {
            RunEvent::GroupEnded { step, .. } => *step,
            _ => unreachable!(),
        }
    }

    #[tokio::test]
    async fn fan_out_in_order() {
        let bus = EventBus::new();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let mut c = bus.subscribe_batched();
        for i in 0..3 {
            bus.emit(ev(i));
        }
        bus.close();
        let mut seen = vec![];
        while let Some(e) = a.recv().await {
            seen.push(step_of(&e));
        }
        assert_eq!(seen, vec![0, 1, 2]);
        let mut n = 0;
        while b.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        let seen: Vec<usize> = std::iter::from_fn(|| c.blocking_recv())
            .map(|e| step_of(&e))
            .collect();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn batched_stream_ends_when_the_bus_is_dropped() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe_batched();
        let consumer = std::thread::spawn(move || {
            let mut n = 0;
            while sub.blocking_recv().is_some() {
                n += 1;
            }
            n
        });
        let emitter = bus.clone();
        for i in 0..5000 {
            emitter.emit(ev(i));
        }
        drop((bus, emitter));
        assert_eq!(consumer.join().unwrap(), 5000);
    }

    #[test]
    fn a_quiet_consumer_is_woken_at_once_by_the_next_event() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe_batched();
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = std::thread::spawn(move || {
            while let Some(e) = sub.blocking_recv() {
                tx.send((step_of(&e), Instant::now())).unwrap();
            }
        });
        // Let the consumer go through a whole nap and fall asleep.
        std::thread::sleep(BATCH_LATENCY * 5);
        let sent = Instant::now();
        bus.emit(ev(7));
        let (step, seen) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the sleeping consumer was not woken by the event");
        assert_eq!(step, 7);
        // Woken by the event, not by a timer: well under a nap (a loaded machine may still
        // take a few milliseconds to schedule the thread).
        assert!(seen - sent < BATCH_LATENCY * 10, "took {:?}", seen - sent);
        drop(bus);
        consumer.join().unwrap();
    }

    #[test]
    fn recv_until_returns_at_the_deadline_when_quiet_and_events_before_it() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe_batched();
        let start = Instant::now();
        let r = sub.recv_until(Some(start + Duration::from_millis(60)));
        assert!(matches!(r, Received::TimedOut), "{r:?}");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(60),
            "returned early: {waited:?}"
        );
        bus.emit(ev(3));
        match sub.recv_until(Some(Instant::now() + Duration::from_secs(10))) {
            Received::Event(e) => assert_eq!(step_of(&e), 3),
            other => panic!("expected the event, got {other:?}"),
        }
        drop(bus);
        assert!(matches!(
            sub.recv_until(Some(Instant::now() + Duration::from_secs(10))),
            Received::Closed
        ));
    }
}
