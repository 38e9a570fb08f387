//! The IPPool controller: a pool's finalizer, status and gauge.
//!
//! In: an IPPool from the watch cache and the lease cache. Out: the
//! finalizer `vm.novasphere.dev/leases` on every live pool; a status with
//! `size`, `allocated`, `free`, `observedGeneration` and the `Ready`
//! condition (`Valid` or `InvalidSpec`), written only when it changed; while
//! the pool is being deleted, a `Terminating` condition and an Event saying
//! how many leases (and which Wukongs: the pool is cluster-administrator
//! territory, so namespaces and names are shown) hold it, and the finalizer
//! removed once none does; the gauge `wukong_ippool_addresses{pool,state}`
//! (removed with the pool). [`pool_status`] is pure.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::{reflector::ObjectRef, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use tracing::warn;

use super::context::{Clock, holder_key};
use super::events::{Event, EventType, Recorder};
use super::index::Index;
use super::metrics::Metrics;
use super::reconnect::ReconnectBackoff;
use super::watch_health::WatchHealth;
use super::watches::{reflect, reflect_indexed};
use crate::addresses::{self, saturating_i64};
use crate::api::{Condition, IPLease, IPPool, IPPoolStatus};
use crate::children::meta::MANAGER;

/// The finalizer that keeps a pool while leases hold addresses of it.
pub const FINALIZER: &str = "vm.novasphere.dev/leases";

/// Errors of one pool pass.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} IPPool \"{name}\": {source}")]
pub struct PoolError {
    /// What was attempted.
    pub action: &'static str,
    /// The pool.
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// What a pool pass needs.
pub struct PoolContext {
    /// API client.
    pub client: Client,
    /// The operator's leases.
    pub leases: Store<IPLease>,
    /// Publishes Events about pools.
    pub recorder: Recorder,
    /// Current time for condition transitions.
    pub clock: Clock,
    /// The gauge lives here.
    pub metrics: Metrics,
}

/// The leases of pool `name`, oldest first.
fn leases_of(store: &Store<IPLease>, name: &str) -> Vec<Arc<IPLease>> {
    let mut leases: Vec<_> = store.state().into_iter().filter(|lease| lease.spec.pool.as_deref() == Some(name)).collect();
    leases.sort_by_key(|lease| (lease.creation_timestamp(), lease.name_any()));
    leases
}

/// The status of a pool given its leases (pure). Conditions keep their
/// transition time while their status stays.
pub fn pool_status(pool: &IPPool, leases: &[Arc<IPLease>], now: &str) -> IPPoolStatus {
    let previous = pool.status.clone().unwrap_or_default();
    let generation = pool.metadata.generation;
    let condition = |type_: &str, status: &str, reason: &str, message: String| {
        let kept = previous.conditions.iter().find(|old| old.type_ == type_ && old.status == status);
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: kept.map_or_else(|| now.to_string(), |old| old.last_transition_time.clone()),
            observed_generation: generation,
        }
    };
    let taken = leases.iter().filter_map(|lease| lease.spec.address.parse().ok()).collect();
    let mut status = IPPoolStatus { observed_generation: generation, allocated: Some(leases.len() as i64), ..IPPoolStatus::default() };
    match addresses::parse(&pool.spec) {
        Ok(parsed) => {
            let size = parsed.size();
            status.size = Some(saturating_i64(size));
            status.free = Some(saturating_i64(size.saturating_sub(parsed.handed_out_among(&taken))));
            status.conditions.push(condition("Ready", "True", "Valid", format!("{} addresses to hand out", size)));
        }
        Err(problems) => {
            let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
            status.conditions.push(condition("Ready", "False", "InvalidSpec", shown.join("; ")));
        }
    }
    if pool.meta().deletion_timestamp.is_some() && !leases.is_empty() {
        status.conditions.push(condition("Terminating", "True", "LeasesHeld", holders(leases)));
    }
    status
}

/// "N leases block the deletion: ns/name (address), ...", at most five named.
fn holders(leases: &[Arc<IPLease>]) -> String {
    let named: Vec<String> = leases
        .iter()
        .take(5)
        .map(|lease| format!("{}/{} ({})", lease.spec.holder.namespace, lease.spec.holder.name, lease.spec.address))
        .collect();
    let more = if leases.len() > 5 { format!(" and {} more", leases.len() - 5) } else { String::new() };
    format!("{} leases block the deletion: {}{more}", leases.len(), named.join(", "))
}

#[derive(Serialize, Debug)]
struct StatusApply<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    status: &'a IPPoolStatus,
}

#[derive(Serialize, Debug)]
struct FinalizerPatch<'a> {
    metadata: FinalizerMetadata<'a>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct FinalizerMetadata<'a> {
    finalizers: Vec<String>,
    resource_version: Option<&'a str>,
}

async fn set_finalizers(context: &PoolContext, pool: &IPPool, finalizers: Vec<String>) -> Result<(), PoolError> {
    let name = pool.name_any();
    let version = pool.resource_version();
    let patch = FinalizerPatch { metadata: FinalizerMetadata { finalizers, resource_version: version.as_deref() } };
    let api: Api<IPPool> = Api::all(context.client.clone());
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(PoolError { action: "update the finalizers of", name, source }),
    }
}

/// One pass over a pool.
pub async fn reconcile_pool(pool: Arc<IPPool>, context: Arc<PoolContext>) -> Result<Action, PoolError> {
    let name = pool.name_any();
    let leases = leases_of(&context.leases, &name);
    let has_finalizer = pool.finalizers().iter().any(|finalizer| finalizer == FINALIZER);
    if pool.meta().deletion_timestamp.is_some() && leases.is_empty() {
        if has_finalizer {
            let rest = pool.finalizers().iter().filter(|finalizer| *finalizer != FINALIZER).cloned().collect();
            set_finalizers(&context, &pool, rest).await?;
        }
        context.metrics.forget_pool(&name);
        return Ok(Action::await_change());
    }
    if !has_finalizer && pool.meta().deletion_timestamp.is_none() {
        let mut finalizers = pool.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        set_finalizers(&context, &pool, finalizers).await?;
    }
    let status = pool_status(&pool, &leases, &(context.clock)());
    if let (Some(size), Some(allocated)) = (status.size, status.allocated) {
        context.metrics.pool_addresses(&name, allocated, status.free.unwrap_or_default().min(size));
    }
    if pool.status.as_ref() != Some(&status) {
        let blocked = status.conditions.iter().find(|condition| condition.type_ == "Terminating");
        let was_blocked = pool.status.as_ref().and_then(|old| old.conditions.iter().find(|condition| condition.type_ == "Terminating"));
        if let Some(blocked) = blocked
            && was_blocked.map(|old| &old.message) != Some(&blocked.message)
        {
            let event = Event {
                type_: EventType::Warning,
                reason: "DeletionBlocked".to_string(),
                note: Some(blocked.message.clone()),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            if let Err(error) = context.recorder.publish(&event, &pool.object_ref(&())).await {
                warn!(%error, "failed to publish an event");
            }
        }
        let api: Api<IPPool> = Api::all(context.client.clone());
        let body = StatusApply { api_version: "vm.novasphere.dev/v1alpha1", kind: "IPPool", status: &status };
        api.patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await.map_err(|source| PoolError {
            action: "write the status of",
            name: name.clone(),
            source,
        })?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<IPPool>, error: &PoolError, _: Arc<PoolContext>) -> Action {
    warn!(%error, "pool reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The pools controller's watches: pools, and the leases that trigger their pools.
pub struct PoolWatches<P, L> {
    /// The pool cache.
    pub pools: Store<IPPool>,
    /// The pools' trigger stream.
    pub pool_stream: P,
    /// The lease cache.
    pub leases: Store<IPLease>,
    /// The leases' index by their holder's UID.
    pub lease_holders: Index<IPLease>,
    /// The leases' trigger stream.
    pub lease_stream: L,
}

/// Registers the pool and lease watches (before any stream is polled); `controller::run_until` shares them with the
/// Wukong controller.
pub fn watches(
    client: &Client,
    health: &WatchHealth,
) -> PoolWatches<
    impl futures::Stream<Item = Result<IPPool, watcher::Error>> + Send + 'static,
    impl futures::Stream<Item = Result<IPLease, watcher::Error>> + Send + 'static,
> {
    let (pools, pool_stream) = reflect::<IPPool>(client, (), watcher::Config::default(), |_| {}, health);
    let selector = super::addresses::leases::cache_selector();
    let lease_holders = Index::new(holder_key);
    let config = watcher::Config::default().labels(&selector);
    let (leases, lease_stream) = reflect_indexed::<IPLease>(client, (), config, |_| {}, health, Some(lease_holders.clone()));
    PoolWatches { pools, pool_stream, leases, lease_holders, lease_stream }
}

/// Runs the pool controller (until its task is aborted).
pub async fn run(
    watches: PoolWatches<
        impl futures::Stream<Item = Result<IPPool, watcher::Error>> + Send + 'static,
        impl futures::Stream<Item = Result<IPLease, watcher::Error>> + Send + 'static,
    >,
    context: Arc<PoolContext>,
) {
    let PoolWatches { pools, pool_stream, lease_stream, .. } = watches;
    Controller::for_stream(pool_stream, pools)
        .watches_stream(lease_stream, |lease: IPLease| lease.spec.pool.map(|pool| ObjectRef::<IPPool>::new(&pool)))
        .with_config(ControllerConfig::default().concurrency(2))
        .trigger_backoff(ReconnectBackoff::default())
        .run(reconcile_pool, error_policy, context)
        .for_each(|_| futures::future::ready(()))
        .await;
}
