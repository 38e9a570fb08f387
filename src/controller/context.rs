//! What every reconciliation shares: the client, the watch caches, the event
//! recorder, the clock and the per-object failure counts used for backoff.
//!
//! In: a client and the readers of the reflectors the controller runs. Out: the
//! [`Context`] handed to each reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};

use super::by_kind::ByKind;
use super::compact::CompactStore;
use super::events::Recorder;
use super::index::Index;
use super::instances::CachedInstance;
use super::ownership;
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
    /// One [`KindCache`] per registered child kind.
    pub children: ByKind,
    /// Every IPPool.
    pub pools: Store<IPPool>,
    /// The operator's IPLeases.
    pub leases: Store<IPLease>,
    /// The leases' index by their holder's UID.
    pub lease_holders: Index<IPLease>,
}

impl Stores {
    /// The cache of child kind `K` (an empty one if the kind was never registered).
    pub fn of<K: ChildKind>(&self) -> CompactStore<K> {
        self.children.get::<KindCache<K>>().map(|cache| cache.objects.clone()).unwrap_or_default()
    }

    /// Every cached object of child kind `K` in `namespace` controlled by the Wukong with `uid` (none if the kind
    /// was never registered), found through the kind's owner index.
    pub fn owned<K: ChildKind>(&self, namespace: &str, uid: &str) -> Vec<Arc<K>> {
        let Some(cache) = self.children.get::<KindCache<K>>() else { return Vec::new() };
        // A child is in its owner's namespace.
        let named = cache.owners.objects(uid).into_iter().filter(|(found_in, _)| found_in == namespace);
        let found = named.filter_map(|(_, name)| cache.objects.get(namespace, &name));
        found.filter(|object| ownership::is_controlled_by(object.as_ref(), uid)).collect()
    }

    /// Every cached lease the Wukong with `uid` holds.
    pub fn leases_held_by(&self, uid: &str) -> Vec<Arc<IPLease>> {
        let found = self.lease_holders.objects(uid).into_iter().filter_map(|(_, name)| self.leases.get(&ObjectRef::new(&name)));
        found.filter(|lease| !uid.is_empty() && lease.spec.holder.uid == uid).collect()
    }
}

/// One child kind's cache and its index by controlling Wukong ([`ownership::owner_key`]), registered together so
/// that neither goes without the other. Clones share both.
pub struct KindCache<K> {
    /// The kind's watch cache, its objects kept as JSON (a fleet's children are most of the operator's memory).
    pub objects: CompactStore<K>,
    /// Its objects by the UID of the Wukong controlling them, kept in step by the same watch.
    pub owners: Index<K>,
}

impl<K> Clone for KindCache<K> {
    fn clone(&self) -> Self {
        KindCache { objects: self.objects.clone(), owners: self.owners.clone() }
    }
}

impl<K: ChildKind> KindCache<K> {
    /// An empty cache, indexed by controlling Wukong.
    pub fn new() -> KindCache<K> {
        KindCache { objects: CompactStore::new(), owners: Index::new(ownership::owner_key::<K>) }
    }

    /// Applies one watch event to the objects and the index.
    pub fn apply(&self, event: &kube::runtime::watcher::Event<K>) {
        self.objects.apply(event);
        self.owners.apply(event);
    }
}

impl<K: ChildKind> Default for KindCache<K> {
    fn default() -> Self {
        KindCache::new()
    }
}

/// The key of a lease in the holder index: its holder's UID.
pub fn holder_key(lease: &IPLease) -> Option<String> {
    Some(lease.spec.holder.uid.clone())
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
