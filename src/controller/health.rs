//! What the health endpoints report: whether the watch caches are synced and
//! no watch has been failing too long, whether this replica is a standby, the
//! metrics and the Wukong cache.
//!
//! In: the controller's [`WatchHealth`], the standby flag set by leader
//! election, the metrics. Out: [`Health::readiness`] (`/readyz`: 200 for a
//! standby, or once every watch cache has synced and no watch has been failing
//! for longer than the readiness grace; otherwise why not, naming the watches)
//! and [`Health::liveness`] (`/healthz`: fails only when a watch has been
//! failing without a break for longer than the liveness grace, so a short API
//! server outage restarts nothing).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;

use super::metrics::Metrics;
use super::watch_health::{FailingWatch, WatchHealth};
use crate::api::GuardedWukong;

/// How long a watch may fail before `/readyz` answers 503, by default.
pub const READINESS_GRACE: Duration = Duration::from_secs(5);
/// How long a watch may fail before `/healthz` answers 503, by default.
pub const LIVENESS_GRACE: Duration = Duration::from_secs(300);

/// What the endpoints report.
pub struct Health {
    /// The controller's watches: caches synced, failures.
    pub watches: WatchHealth,
    /// This replica waits for the leader lease and reconciles nothing.
    pub standby: AtomicBool,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The Wukong cache, once the controller runs (for `wukong_wukongs{phase}`).
    pub wukongs: OnceLock<Store<GuardedWukong>>,
    readiness_grace: Duration,
    liveness_grace: Duration,
}

impl Health {
    /// Fresh state: not ready, not standby, the default graces.
    pub fn new(metrics: Metrics) -> Health {
        Health {
            watches: WatchHealth::new(),
            standby: AtomicBool::new(false),
            metrics,
            wukongs: OnceLock::new(),
            readiness_grace: READINESS_GRACE,
            liveness_grace: LIVENESS_GRACE,
        }
    }

    /// With these graces: how long a watch may fail before `/readyz`, and before `/healthz`, answer 503.
    pub fn with_grace(self, readiness: Duration, liveness: Duration) -> Health {
        Health { readiness_grace: readiness, liveness_grace: liveness, ..self }
    }

    /// `/readyz` at `now`: `Err` says why not ready.
    pub fn readiness(&self, now: Instant) -> Result<(), String> {
        if self.standby.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.watches.synced() {
            let unsynced = self.watches.unsynced();
            return Err(if unsynced.is_empty() {
                "the watches have not started yet".to_owned()
            } else {
                format!("watch caches not synced yet: {}", unsynced.join(", "))
            });
        }
        failing(&self.watches.failing_longer_than(self.readiness_grace, now))
    }

    /// `/healthz` at `now`: `Err` says which watches have been failing too long.
    pub fn liveness(&self, now: Instant) -> Result<(), String> {
        if self.standby.load(Ordering::Relaxed) {
            return Ok(());
        }
        failing(&self.watches.failing_longer_than(self.liveness_grace, now))
    }
}

fn failing(watches: &[FailingWatch]) -> Result<(), String> {
    if watches.is_empty() {
        return Ok(());
    }
    let described: Vec<String> = watches.iter().map(FailingWatch::to_string).collect();
    Err(format!("watches failing: {}", described.join("; ")))
}
