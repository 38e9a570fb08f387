//! The operator's controller: watches Wukongs in every namespace and
//! converges their children.
//!
//! In: a client, [`Settings`] and the shared [`health::Health`]. Out: a
//! running kube-runtime `Controller` whose reconcile is the thin driver in
//! [`reconcile`], fed by one shared watch cache per kind (the Wukongs, VMIs,
//! StorageClasses and every registered child kind; no list calls while
//! reconciling), made by [`watches::reflect`]: the watches reconnect promptly
//! after an API server restart and report their health to
//! [`watch_health::WatchHealth`]. The process around it (options, logging,
//! endpoints, leader election) is `operate`'s.

pub mod addresses;
pub mod apply;
pub mod by_kind;
pub mod checks;
pub mod cleanup;
pub mod compact;
pub mod context;
pub mod diff;
pub mod events;
pub mod health;
pub mod index;
pub mod instances;
pub mod metrics;
pub mod observe;
pub mod operations;
pub mod ownership;
pub mod permissions;
pub mod pools;
pub mod recent;
pub mod reconcile;
pub mod reconnect;
pub mod report;
pub mod resolve;
pub mod status;
pub mod watch_health;
pub mod watches;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::{Instrument, info, warn};
use wukong_models::datavolume::DataVolume;

use self::by_kind::ByKind;
use self::context::{Context, KindCache, Stores, system_clock};
use self::events::{Recorder, Reporter};
use self::health::Health;
use self::index::Index;
use self::instances::{CachedInstance, instance_owner};
use self::recent::Recent;
use self::reconnect::ReconnectBackoff;
use self::status::pacing::Pacing;
use self::watch_health::WatchHealth;
use self::watches::{reflect, reflect_compact, reflect_indexed};
use crate::api::{GuardedWukong, IPLease, IPPool};
use crate::children::meta::MANAGER;
use crate::children::{ChildKind, EachKind, for_each_kind};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How many Wukongs are reconciled at the same time.
    pub concurrency: u16,
    /// How long the watch events of one Wukong are gathered into one reconcile.
    pub debounce: Duration,
    /// When changed statuses are written.
    pub pacing: Pacing,
}

/// The API resource of the Wukong kind, for the dynamic API (tests, the bench).
pub fn wukong_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<crate::api::Wukong>(&())
}

/// Keeps nothing extra.
fn keep_all<K>(_: &mut K) {}

/// Runs the controller until a shutdown signal or until `stop` resolves,
/// reporting readiness and metrics through `health`.
pub async fn run_until(
    client: Client,
    settings: Settings,
    health: Arc<Health>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // Every watch registers with `health.watches` before any stream is polled (see watches.rs).
    let sync = health.watches.clone();
    let all = watcher::Config::default;
    let recent = Arc::new(Recent::default());
    // The Wukongs refused for an address reason, which a lease change may let through, kept by the Wukong watch.
    let refused = Index::new(address_refusal);
    let (wukongs, wukong_stream) = reflect_indexed::<GuardedWukong>(&client, (), all(), keep_all, &sync, Some(refused.clone()));
    let wukong_stream = recent::forgetting_seen(wukong_stream, recent.clone());
    let (instances, instance_stream) = reflect::<CachedInstance>(&client, (), all(), keep_all, &sync);
    let (storage_classes, class_stream) = reflect::<StorageClass>(&client, (), all(), keep_all, &sync);
    tokio::spawn(class_stream.for_each(|_| futures::future::ready(())));
    // Leases are cluster-scoped and not owned by their Wukong (addresses/leases.rs): watched here, beside the
    // kinds, once for this controller and the pool controller.
    let pool_watches = pools::watches(&client, &sync);
    let (pools, leases, lease_holders) = (pool_watches.pools.clone(), pool_watches.leases.clone(), pool_watches.lease_holders.clone());
    let (pool_stream, pool_controller_pools) = watches::fan_out(pool_watches.pool_stream);
    let (lease_stream, pool_controller_leases) = watches::fan_out(pool_watches.lease_stream);
    let pool_watches = pools::PoolWatches {
        pools: pools.clone(),
        pool_stream: pool_controller_pools,
        leases: leases.clone(),
        lease_holders: lease_holders.clone(),
        lease_stream: pool_controller_leases,
    };
    let lease_stream = recent::forgetting_seen(lease_stream, recent.clone());

    let children_stores = Arc::new(OnceLock::new());
    let controller = Controller::for_stream(wukong_stream, wukongs.clone())
        .watches_stream(instance_stream, |instance: CachedInstance| instance_owner(&instance))
        .watches_stream(pool_stream, {
            let wukongs = wukongs.clone();
            move |pool: IPPool| pool_users(&wukongs, &pool.name_any())
        })
        .watches_stream(lease_stream, move |lease: IPLease| lease_concerns(&refused, &lease));
    let mut watches = ChildWatches {
        client: client.clone(),
        health: &sync,
        wukongs: wukongs.clone(),
        all: children_stores.clone(),
        stores: ByKind::default(),
        controller: Some(controller),
        recent: recent.clone(),
    };
    for_each_kind(&mut watches);
    let _ = children_stores.set(watches.stores.clone());
    let Some(controller) = watches.controller else { return };

    let stores = Stores { wukongs: wukongs.clone(), instances, storage_classes, children: watches.stores, pools, leases, lease_holders };
    let reporter = Reporter { controller: MANAGER.to_string(), instance: std::env::var("POD_NAME").ok() };
    let context = Arc::new(Context {
        client: client.clone(),
        stores,
        recorder: Recorder::new(client.clone(), reporter),
        clock: system_clock(),
        metrics: health.metrics.clone(),
        pacing: settings.pacing,
        status_writes: Arc::default(),
        failures: Arc::default(),
        recent,
    });

    let _ = health.wukongs.set(wukongs.clone());
    let ready_sync = sync.clone();
    tokio::spawn(async move {
        ready_sync.wait_synced().await;
        info!("watch caches synced");
    });
    let pool_context = Arc::new(pools::PoolContext {
        client: client.clone(),
        leases: pool_watches.leases.clone(),
        recorder: context.recorder.clone(),
        clock: system_clock(),
        metrics: health.metrics.clone(),
    });
    // The pool controller and the lease sweep live as long as this one: aborted when it stops.
    let pool_controller = tokio::spawn(pools::run(pool_watches, pool_context));
    let sweep = tokio::spawn(addresses::sweep::run(context.clone(), sync.clone()));
    let metrics = health.metrics.clone();
    let failures = context.failures.clone();
    info!(concurrency = settings.concurrency, "starting the Wukong controller");
    controller
        .with_config(ControllerConfig::default().concurrency(settings.concurrency).debounce(settings.debounce))
        // The trigger streams never yield errors (reconnect.rs); should one, the pause of every trigger stays short.
        .trigger_backoff(ReconnectBackoff::default())
        .shutdown_on_signal()
        .graceful_shutdown_on(stop)
        .run(
            move |object, context| {
                let metrics = metrics.clone();
                let sync = sync.clone();
                let span = reconcile_span(&object);
                async move {
                    let started = std::time::Instant::now();
                    let result = reconcile_tracked(object, context, &sync).await;
                    metrics.reconciled(result.is_ok(), started.elapsed());
                    result
                }
                .instrument(span)
            },
            error_policy,
            context,
        )
        .for_each(|result| {
            match result {
                // A Wukong deleted while its reconcile was queued (a failing one's retry, say): nothing to do but
                // forget its failures, which no successful pass will.
                Err(kube::runtime::controller::Error::ObjectNotFound(reference)) => {
                    tracing::debug!(%reference, "the Wukong is gone");
                    forget_failures(&failures, reference.namespace.as_deref(), &reference.name);
                }
                Err(error) => warn!(%error, "reconcile failed"),
                Ok(_) => {}
            }
            futures::future::ready(())
        })
        .await;
    pool_controller.abort();
    sweep.abort();
    info!("the Wukong controller stopped");
}

/// The Wukongs whose networks name pool `pool`.
fn pool_users(wukongs: &Store<GuardedWukong>, pool: &str) -> Vec<ObjectRef<GuardedWukong>> {
    let users = wukongs.state_filter(|object| {
        object.wukong().is_some_and(|wukong| {
            wukong.spec.networks.iter().any(|network| network.ip_config.as_ref().and_then(|config| config.pool.as_deref()) == Some(pool))
        })
    });
    users.iter().map(|wukong| ObjectRef::from_obj(wukong.as_ref())).collect()
}

/// The only key of the index of Wukongs refused for an address reason.
const ADDRESS_REFUSED: &str = "address-refused";

/// [`ADDRESS_REFUSED`] for a Wukong whose status says it was refused for an address reason (the key of the
/// refusals index; no key for the others).
fn address_refusal(wukong: &GuardedWukong) -> Option<String> {
    let refused = wukong.status().is_some_and(|status| {
        status.conditions.iter().any(|condition| condition.status == "False" && addresses::REASONS.contains(&condition.reason.as_str()))
    });
    refused.then(|| ADDRESS_REFUSED.to_string())
}

/// The Wukongs a lease change concerns: its holder, and every Wukong refused
/// for an address reason (a freed address or pool may let it through), found
/// in the refusals index: a scan of the fleet per lease event cost a fifth of
/// the operator's CPU at 10,000 Wukongs.
fn lease_concerns(refused: &Index<GuardedWukong>, lease: &IPLease) -> Vec<ObjectRef<GuardedWukong>> {
    let holder = &lease.spec.holder;
    let refused = refused.objects(ADDRESS_REFUSED).into_iter();
    let mut concerned: Vec<ObjectRef<GuardedWukong>> = refused.map(|(namespace, name)| ObjectRef::new(&name).within(&namespace)).collect();
    concerned.push(ObjectRef::new(&holder.name).within(&holder.namespace));
    concerned
}

/// Watches every registered child kind: one cache each, and a trigger that
/// reconciles the Wukongs an object belongs to or is referenced by.
struct ChildWatches<'a> {
    client: Client,
    health: &'a WatchHealth,
    wukongs: Store<GuardedWukong>,
    /// Every kind's cache, for the mappers (filled once every kind is registered).
    all: Arc<OnceLock<ByKind>>,
    stores: ByKind,
    controller: Option<Controller<GuardedWukong>>,
    /// Told of every object the watches deliver.
    recent: Arc<Recent>,
}

impl EachKind for ChildWatches<'_> {
    fn kind<K: ChildKind>(&mut self) {
        let mut config = watcher::Config::default();
        if let Some(selector) = K::cache_selector() {
            config = config.labels(&selector);
        }
        let cache = KindCache::<K>::new();
        let stream = reflect_compact(&self.client, config, K::trim, self.health, cache.clone());
        self.stores.insert(cache);
        let (wukongs, all, recent) = (self.wukongs.clone(), self.all.clone(), self.recent.clone());
        self.controller = self.controller.take().map(|controller| {
            controller.watches_stream(stream, move |object: K| {
                recent.seen(&object);
                owners(&object, &wukongs, all.get())
            })
        });
    }
}

/// The Wukongs an object of a child kind concerns: its controller (a Wukong,
/// or a DataVolume a Wukong controls, as for the claims CDI makes), or, for an
/// object nobody controls, every Wukong that references it (an existing claim).
fn owners<K: ChildKind>(object: &K, wukongs: &Store<GuardedWukong>, stores: Option<&ByKind>) -> Vec<ObjectRef<GuardedWukong>> {
    let namespace = object.namespace().unwrap_or_default();
    if let Some(owner) = ownership::controller_reference(object) {
        let wukong = match owner.kind.as_str() {
            "Wukong" => Some(owner.name.clone()),
            "DataVolume" => stores
                .and_then(|stores| stores.get::<KindCache<DataVolume>>())
                .and_then(|data_volumes| data_volumes.objects.get(&namespace, &owner.name))
                .and_then(|volume| ownership::controlling_wukong(volume.as_ref()).map(|owner| owner.name.clone())),
            _ => None,
        };
        return wukong.map(|wukong| ObjectRef::new(&wukong).within(&namespace)).into_iter().collect();
    }
    if !K::REFERENCED {
        return Vec::new();
    }
    let referencing = wukongs.state_filter(|wukong| wukong.wukong().is_some_and(|wukong| object.is_referenced_by(wukong)));
    referencing.iter().map(|wukong| ObjectRef::from_obj(wukong.as_ref())).collect()
}

/// The span of one reconcile: the Wukong's namespace and name, and a trace id
/// that every log line of the pass carries (unique per pass and process).
fn reconcile_span(object: &GuardedWukong) -> tracing::Span {
    static PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static PROCESS: OnceLock<u64> = OnceLock::new();
    let process = *PROCESS.get_or_init(|| {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (started.as_nanos() as u64) ^ (u64::from(std::process::id()) << 40)
    });
    let pass = PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trace_id = format!("{process:016x}{pass:016x}");
    tracing::info_span!("reconcile", namespace = %object.namespace().unwrap_or_default(), name = %object.name_any(), %trace_id)
}

/// Runs a reconcile once every cache has synced, and keeps the failure count
/// that [`error_policy`] backs off with.
async fn reconcile_tracked(object: Arc<GuardedWukong>, context: Arc<Context>, sync: &WatchHealth) -> Result<Action, reconcile::Error> {
    sync.wait_synced().await;
    let key = failure_key(object.namespace().as_deref(), &object.name_any());
    let result = reconcile::reconcile(object, context.clone()).await;
    if result.is_ok()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&key);
    }
    result
}

/// The key of a Wukong's failure count: `namespace/name`.
fn failure_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// Forgets the failure count of a Wukong that is gone.
fn forget_failures(failures: &std::sync::Mutex<std::collections::HashMap<String, u32>>, namespace: Option<&str>, name: &str) {
    if let Ok(mut failures) = failures.lock() {
        failures.remove(&failure_key(namespace, name));
    }
}

/// Retries a failed reconcile with exponential backoff per Wukong: 1 s, 2 s,
/// 4 s, ... up to 5 minutes.
fn error_policy(object: Arc<GuardedWukong>, error: &reconcile::Error, context: Arc<Context>) -> Action {
    let key = failure_key(object.namespace().as_deref(), &object.name_any());
    let attempts = match context.failures.lock() {
        Ok(mut failures) => {
            let count = failures.entry(key.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    };
    let delay = backoff(attempts);
    warn!(wukong = %key, %error, attempts, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay before retry number `attempts` (1-based).
pub fn backoff(attempts: u32) -> Duration {
    let seconds = 1u64.checked_shl(attempts.saturating_sub(1)).unwrap_or(u64::MAX).min(300);
    Duration::from_secs(seconds)
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::{Index, address_refusal, forget_failures, lease_concerns};
    use crate::api::{GuardedWukong, IPLease};

    fn wukong(name: &str, reason: &str) -> GuardedWukong {
        GuardedWukong::from_value(json!({"apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
            "metadata": {"name": name, "namespace": "prod"}, "spec": {"cpu": 1, "memory": "1Gi"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": "m",
                                       "lastTransitionTime": "2026-12-02T10:00:00Z"}]}}))
    }

    #[test]
    fn a_lease_change_concerns_its_holder_and_the_wukongs_refused_for_an_address() {
        let refused = Index::new(address_refusal);
        let reason = crate::controller::addresses::REASONS[0];
        refused.apply(&Event::Apply(wukong("waiting", reason)));
        refused.apply(&Event::Apply(wukong("broken", "InvalidSpec")));
        let lease: IPLease = serde_json::from_value(json!({"metadata": {"name": "vlan100.10-0-0-5"},
            "spec": {"address": "10.0.0.5", "mode": "pool", "holder": {"namespace": "test", "name": "web", "uid": "u1", "network": "mgmt", "creationTimestamp": "2026-12-02T10:00:00Z"}}}))
        .expect("lease");
        let names = |refused: &Index<GuardedWukong>| {
            lease_concerns(refused, &lease).iter().map(|reference| format!("{reference}")).collect::<Vec<_>>().join(" ")
        };
        assert!(names(&refused).contains("prod") && names(&refused).contains("waiting"), "{}", names(&refused));
        assert!(!names(&refused).contains("broken"), "a Wukong refused for another reason is not woken");
        assert!(names(&refused).contains("web"), "the holder is always concerned");
        refused.apply(&Event::Apply(wukong("waiting", "Ready")));
        assert!(!names(&refused).contains("waiting"), "a Wukong no longer refused leaves the index");
    }

    #[test]
    fn a_gone_wukong_leaves_no_failure_count_behind() {
        let failures = Mutex::new(HashMap::from([("prod/web".to_string(), 3), ("prod/db".to_string(), 1)]));
        forget_failures(&failures, Some("prod"), "web");
        assert_eq!(failures.lock().map(|failures| failures.keys().cloned().collect::<Vec<_>>()).ok(), Some(vec!["prod/db".to_string()]));
    }
}
