//! What every reconciliation shares: the client, the watch caches, the event
//! recorder, the clock and the per-object failure counts used for backoff.
//!
//! In: a client and the readers of the reflectors the controller runs. Out: the
//! [`Context`] handed to each reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::runtime::reflector::{self, Store};

use super::by_kind::ByKind;
use super::events::Recorder;
use super::instances::CachedInstance;
use crate::api::{GuardedWukong, IPLease, IPPool};
use crate::children::ChildKind;

/// Read-only views of the watch caches. Reconcile reads the cluster through
/// these, never with list calls.
#[derive(Clone)]
pub struct Stores {
    /// Every Wukong (guarded: one that does not read must not stall the others).
    pub wukongs: Store<GuardedWukong>,
    /// Every VirtualMachineInstance (labels and status only).
    pub instances: Store<CachedInstance>,
    /// Every StorageClass (for the volume binding mode).
    pub storage_classes: Store<StorageClass>,
    /// One `Store<K>` per registered child kind.
    pub children: ByKind,
    /// Every IPPool.
    pub pools: Store<IPPool>,
    /// The operator's IPLeases.
    pub leases: Store<IPLease>,
}

impl Stores {
    /// The cache of child kind `K` (an empty one if the kind was never registered).
    pub fn of<K: ChildKind>(&self) -> Store<K> {
        self.children.get::<Store<K>>().cloned().unwrap_or_else(|| reflector::store().0)
    }
}

/// Returns the current time as RFC 3339; replaced by a fixed clock in tests.
pub type Clock = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared state of the controller.
#[derive(Clone)]
pub struct Context {
    /// API client; all writes go through it.
    pub client: Client,
    /// The watch caches.
    pub stores: Stores,
    /// Publishes Kubernetes Events about Wukongs.
    pub recorder: Recorder,
    /// Current time for condition transitions.
    pub clock: Clock,
    /// The operator's metrics (failed steps are counted here).
    pub metrics: super::metrics::Metrics,
    /// When changed statuses are written.
    pub pacing: super::status::pacing::Pacing,
    /// When this operator last wrote each Wukong's status (`namespace/name` -> clock time).
    pub status_writes: Arc<Mutex<HashMap<String, String>>>,
    /// Consecutive failures per Wukong (`namespace/name`), for exponential backoff.
    pub failures: Arc<Mutex<HashMap<String, u32>>>,
    /// The operator's writes its watches have not delivered yet.
    pub recent: Arc<super::recent::Recent>,
}

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The time from `earlier` to `now`, both RFC 3339 (a [`Clock`]'s time); `None` if either does not read.
pub fn elapsed(earlier: &str, now: &str) -> Option<std::time::Duration> {
    let earlier = chrono::DateTime::parse_from_rfc3339(earlier).ok()?;
    let now = chrono::DateTime::parse_from_rfc3339(now).ok()?;
    (now - earlier).to_std().ok().or(Some(std::time::Duration::ZERO))
}
