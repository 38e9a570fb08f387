//! The health of the operator's watches, shared by the controller and the HTTP endpoints.
//!
//! In: per watched kind, from [`super::watches`]: its cache filled by a complete list, a failed request (with its
//! error), a list or watch request sent and answered. Out: whether every cache has synced ([`WatchHealth::synced`], and
//! [`WatchHealth::wait_synced`] for reconciles), and which watches have been failing for longer than a given time
//! ([`WatchHealth::failing_longer_than`]), for `/readyz` and `/healthz`.
//!
//! Reconciles and `/readyz` wait on this rather than on `Store::wait_until_ready`: kube's store readiness (a
//! `DelayedInit` over a oneshot channel) keeps one waker, so of several tasks waiting on one store at the same time
//! only the last is woken. A readiness task then never saw the Wukong store ready (the Controller waits on it too),
//! and reconciles started before every cache was ready could stay parked for good.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a list or watch request may go unanswered before its watch counts as failing (kube's client gives
/// up connecting after 30 s, but waits for an answer to a sent request forever).
pub const UNANSWERED: Duration = Duration::from_secs(30);

/// The watches of one operator; clones share the same state.
#[derive(Clone)]
pub struct WatchHealth {
    shared: Arc<Shared>,
}

struct Shared {
    watches: Mutex<BTreeMap<String, State>>,
    /// Whether every registered cache has been filled, for [`WatchHealth::wait_synced`].
    synced: tokio::sync::watch::Sender<bool>,
}

/// What is known of one watch.
#[derive(Clone, Debug, Default)]
struct State {
    /// A complete list has filled its cache (it stays filled across relists).
    listed: bool,
    /// Since when and with what error it fails; `None` while healthy.
    failure: Option<(Instant, String)>,
    /// Since when a list or watch request waits for its answer.
    waiting: Option<Instant>,
}

impl State {
    /// Since when and why the watch fails at `now`: a failed request, or one unanswered for [`UNANSWERED`].
    fn failing(&self, now: Instant) -> Option<(Instant, String)> {
        if let Some(failure) = &self.failure {
            return Some(failure.clone());
        }
        let sent = self.waiting.filter(|sent| now.saturating_duration_since(*sent) > UNANSWERED)?;
        let waited = now.saturating_duration_since(sent).as_secs();
        Some((sent, format!("no answer from the API server to a list or watch request for {waited} s")))
    }
}

/// A watch failing for a while, as [`WatchHealth::failing_longer_than`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingWatch {
    /// The watch's name (its kind).
    pub name: String,
    /// How long it has been failing.
    pub duration: Duration,
    /// The last error.
    pub error: String,
}

impl std::fmt::Display for FailingWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} failing for {} s: {}", self.name, self.duration.as_secs(), self.error)
    }
}

impl Default for WatchHealth {
    fn default() -> Self {
        WatchHealth::new()
    }
}

impl WatchHealth {
    /// No watch yet: not synced.
    pub fn new() -> WatchHealth {
        WatchHealth { shared: Arc::new(Shared { watches: Mutex::default(), synced: tokio::sync::watch::Sender::new(false) }) }
    }

    /// Starts tracking a watch, unsynced and healthy, under `name` (its kind; a second watch of the same name gets
    /// a numbered one). Register every watch before polling any, so the caches count as synced only once all are.
    pub fn register(&self, name: &str) -> WatchReporter {
        let mut watches = self.lock();
        let mut unique = name.to_owned();
        let mut number = 1;
        while watches.contains_key(&unique) {
            number += 1;
            unique = format!("{name} ({number})");
        }
        watches.insert(unique.clone(), State::default());
        self.shared.synced.send_replace(false);
        WatchReporter { health: self.clone(), name: unique }
    }

    /// Whether at least one watch is registered and every registered cache has been filled.
    pub fn synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// The watches whose cache has not been filled yet.
    pub fn unsynced(&self) -> Vec<String> {
        self.lock().iter().filter(|(_, state)| !state.listed).map(|(name, _)| name.clone()).collect()
    }

    /// Resolves once every registered cache has been filled.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// The watches failing without a success for longer than `grace` at `now`, by name.
    pub fn failing_longer_than(&self, grace: Duration, now: Instant) -> Vec<FailingWatch> {
        let watches = self.lock();
        let failing = watches.iter().filter_map(|(name, state)| {
            let (since, error) = state.failing(now)?;
            let duration = now.saturating_duration_since(since);
            (duration > grace).then(|| FailingWatch { name: name.clone(), duration, error })
        });
        failing.collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, State>> {
        // Poisoned only if a thread panicked while holding it; the map is still consistent (every write is one step).
        self.shared.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, name: &str, change: impl FnOnce(&mut State) -> T) -> Option<T> {
        let mut watches = self.lock();
        let result = watches.get_mut(name).map(change);
        let synced = !watches.is_empty() && watches.values().all(|state| state.listed);
        self.shared.synced.send_if_modified(|current| std::mem::replace(current, synced) != synced);
        result
    }
}

/// Reports what happens to one watch.
#[derive(Clone)]
pub struct WatchReporter {
    health: WatchHealth,
    name: String,
}

impl WatchReporter {
    /// The watch's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A complete list has filled the cache.
    pub fn listed(&self) {
        self.health.update(&self.name, |state| state.listed = true);
    }

    /// A request of the watch failed. True when this starts a failure (the watch was healthy until now).
    pub fn failed(&self, error: &dyn std::fmt::Display) -> bool {
        let error = error.to_string();
        self.health
            .update(&self.name, |state| match &mut state.failure {
                Some((_, last)) => {
                    *last = error;
                    false
                }
                None => {
                    state.failure = Some((Instant::now(), error));
                    true
                }
            })
            .unwrap_or(false)
    }

    /// A list or watch request is sent: until the returned guard is dropped (answered, failed or given up), the
    /// watch waits for an answer.
    pub fn sent(&self) -> Waiting {
        self.health.update(&self.name, |state| state.waiting = Some(Instant::now()));
        Waiting { reporter: self.clone() }
    }

    /// A list or watch request was answered. How long the watch had been failing, when it was.
    pub fn succeeded(&self) -> Option<Duration> {
        self.health.update(&self.name, |state| state.failure.take().map(|(since, _)| since.elapsed())).flatten()
    }
}

/// A request of a watch waiting for its answer; see [`WatchReporter::sent`].
pub struct Waiting {
    reporter: WatchReporter,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.reporter.health.update(&self.reporter.name, |state| state.waiting = None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::WatchHealth;

    #[test]
    fn synced_once_every_registered_cache_is_filled() {
        let health = WatchHealth::new();
        assert!(!health.synced(), "nothing registered is not synced");
        let wukongs = health.register("Wukong");
        let machines = health.register("VirtualMachine");
        wukongs.listed();
        assert!(!health.synced());
        assert_eq!(health.unsynced(), ["VirtualMachine"]);
        machines.listed();
        assert!(health.synced());
        let second = health.register("VirtualMachine");
        assert_eq!(second.name(), "VirtualMachine (2)");
        assert!(!health.synced(), "a watch registered later must fill its cache too");
        second.listed();
        assert!(health.synced());
    }

    #[test]
    fn a_failure_lasts_until_a_success_and_keeps_its_start() {
        let health = WatchHealth::new();
        let machines = health.register("VirtualMachine");
        let claims = health.register("PersistentVolumeClaim");
        assert!(machines.failed(&"failed to start watching object: client error (Connect)"));
        assert!(!machines.failed(&"too old resource version: 407 (413)"), "a second failure continues the first");
        assert!(claims.failed(&"connection refused"));
        let later = Instant::now() + Duration::from_secs(10);
        let failing = health.failing_longer_than(Duration::from_secs(5), later);
        let names: Vec<&str> = failing.iter().map(|watch| watch.name.as_str()).collect();
        assert_eq!(names, ["PersistentVolumeClaim", "VirtualMachine"]);
        assert_eq!(failing[1].error, "too old resource version: 407 (413)");
        assert!(failing[1].to_string().starts_with("VirtualMachine failing for "), "{}", failing[1]);
        assert!(health.failing_longer_than(Duration::from_secs(60), later).is_empty(), "not failing for a minute yet");

        assert!(machines.succeeded().is_some());
        assert_eq!(machines.succeeded(), None, "already healthy");
        let names: Vec<String> = health.failing_longer_than(Duration::ZERO, later).into_iter().map(|watch| watch.name).collect();
        assert_eq!(names, ["PersistentVolumeClaim"]);
        assert!(machines.failed(&"again"), "a failure after a success starts a new one");
    }

    #[test]
    fn a_request_unanswered_for_long_counts_as_failing() {
        let health = WatchHealth::new();
        let wukongs = health.register("Wukong");
        let waiting = wukongs.sent();
        let soon = Instant::now() + Duration::from_secs(20);
        assert!(health.failing_longer_than(Duration::from_secs(5), soon).is_empty(), "an answer may take a while");
        let late = Instant::now() + Duration::from_secs(40);
        let failing = health.failing_longer_than(Duration::from_secs(5), late);
        assert_eq!(failing.len(), 1);
        assert!(failing[0].error.starts_with("no answer from the API server"), "{}", failing[0]);
        drop(waiting);
        assert!(health.failing_longer_than(Duration::from_secs(5), late).is_empty(), "answered");
    }
}
