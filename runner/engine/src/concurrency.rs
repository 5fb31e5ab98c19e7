//! Job-level concurrency groups within one run (GHA-SEMANTICS §6.7). A group holds at most
//! one running and one pending job: a job entering a group that already has a pending one
//! cancels that pending one and takes its place; with `cancel-in-progress: true` it also
//! cancels the running one. The newcomer starts when the running one has finished. Group
//! names are compared case-insensitively.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::events::Text;

/// A member of a group: its job key (for the log line telling it why it was cancelled) and
/// the token that cancels it.
struct Member {
    id: u64,
    key: Text,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    running: Option<Member>,
    pending: Option<Member>,
}

struct Group {
    state: Mutex<State>,
    /// Bumped whenever the running slot frees up.
    changed: watch::Sender<u64>,
}

/// Every concurrency group of a run, by lower-cased name.
#[derive(Default)]
pub struct Groups {
    map: Mutex<HashMap<String, Arc<Group>>>,
    next_id: Mutex<u64>,
}

/// The running slot of a group; released on drop.
pub struct Slot {
    group: Arc<Group>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.group.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.running.as_ref().is_some_and(|m| m.id == self.id) {
            st.running = None;
        }
        drop(st);
        self.group.changed.send_modify(|v| *v += 1);
    }
}

/// Tells a member why it is cancelled (through `notify`), then cancels it.
fn cancel_member(notify: &dyn Fn(&Text, String), group: &str, m: &Member) {
    notify(
        &m.key,
        format!("Canceling since a higher priority waiting request for '{group}' exists"),
    );
    m.cancel.cancel();
}

impl Groups {
    /// Enters group `name` as job `key`. Returns the running slot once this job may run, or
    /// `None` when it was cancelled while pending (replaced by a newer job, or `cancel`
    /// fired). `cancel` is the job's own token: a newer job with `cancel-in-progress`
    /// cancels it while it runs. `notify(key, line)` logs why a job is cancelled.
    pub async fn enter(
        &self,
        notify: &(dyn Fn(&Text, String) + Send + Sync),
        name: &str,
        cancel_in_progress: bool,
        key: &Text,
        cancel: &CancellationToken,
    ) -> Option<Slot> {
        let lower = name.to_lowercase();
        let group = self
            .map
            .lock()
            .unwrap()
            .entry(lower)
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::default(),
                    changed: watch::channel(0).0,
                })
            })
            .clone();
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            *n
        };
        let mut rx = group.changed.subscribe();
        let run_now = {
            let mut st = group.state.lock().unwrap();
            if let Some(old) = st.pending.take() {
                cancel_member(notify, name, &old);
            }
            if cancel_in_progress && let Some(r) = &st.running {
                cancel_member(notify, name, r);
            }
            let me = Member {
                id,
                key: key.clone(),
                cancel: cancel.clone(),
            };
            if st.running.is_none() {
                st.running = Some(me);
                true
            } else {
                st.pending = Some(me);
                false
            }
        };
        if run_now {
            return Some(Slot { group, id });
        }
        loop {
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return None;
                    }
                    let mut st = group.state.lock().unwrap();
                    let mine = st.pending.as_ref().is_some_and(|m| m.id == id);
                    if !mine {
                        return None;
                    }
                    if st.running.is_none() {
                        st.running = st.pending.take();
                        return Some(Slot { group: group.clone(), id });
                    }
                }
                _ = cancel.cancelled() => {
                    let mut st = group.state.lock().unwrap();
                    if st.pending.as_ref().is_some_and(|m| m.id == id) {
                        st.pending = None;
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn member(k: &str) -> (Text, CancellationToken) {
        (Text::from(k), CancellationToken::new())
    }

    #[tokio::test]
    async fn pending_is_replaced_and_runs_after_the_running_one() {
        let groups = Groups::default();
        let log: StdMutex<Vec<String>> = StdMutex::default();
        let notify = |k: &Text, l: String| log.lock().unwrap().push(format!("{k}: {l}"));
        let (ka, ca) = member("a");
        let a = groups.enter(&notify, "G", false, &ka, &ca).await;
        assert!(a.is_some());
        let (kb, cb) = member("b");
        let (kc, cc) = member("c");
        let (b, c) = tokio::join!(groups.enter(&notify, "g", false, &kb, &cb), async {
            tokio::task::yield_now().await;
            let c = groups.enter(&notify, "g", false, &kc, &cc);
            tokio::pin!(c);
            // c waits while a runs; b was replaced and cancelled.
            tokio::select! {
                _ = &mut c => panic!("c entered while a runs"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
            assert!(cb.is_cancelled());
            assert!(!ca.is_cancelled());
            drop(a);
            c.await
        });
        assert!(b.is_none());
        assert!(c.is_some());
        assert!(!cc.is_cancelled());
        assert_eq!(
            log.lock().unwrap().as_slice(),
            ["b: Canceling since a higher priority waiting request for 'g' exists"]
        );
    }

    #[tokio::test]
    async fn cancel_in_progress_cancels_the_running_one() {
        let groups = Groups::default();
        let notify = |_: &Text, _: String| {};
        let (ka, ca) = member("a");
        let a = groups.enter(&notify, "deploy", false, &ka, &ca).await;
        let (kb, cb) = member("b");
        let b = groups.enter(&notify, "deploy", true, &kb, &cb);
        tokio::pin!(b);
        tokio::select! {
            _ = &mut b => panic!("b entered while a runs"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
        assert!(ca.is_cancelled(), "the running job was not cancelled");
        drop(a);
        assert!(b.await.is_some());
        // Other groups are independent.
        let (kc, cc) = member("c");
        assert!(
            groups
                .enter(&notify, "other", true, &kc, &cc)
                .await
                .is_some()
        );
    }
}
