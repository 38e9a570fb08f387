//! The operator behind `wukong run`: watches Wukongs in every namespace and
//! converges their children.
//!
//! In: a client and [`RunOptions`]. Out: a running kube-runtime `Controller`
//! whose reconcile is the thin driver in [`reconcile`], fed by one shared
//! watch cache per kind (no list calls while reconciling), made by
//! [`watches::reflect`]: the watches reconnect promptly after an API server
//! restart and report their health to [`watch_health::WatchHealth`].

pub mod apply;
pub mod cleanup;
pub mod context;
pub mod dereference;
pub mod diff;
pub mod ownership;
pub mod permissions;
pub mod reconcile;
// Watches that survive API server restarts, and their health (see watches.rs).
pub mod reconnect;
pub mod status;
pub mod validate;
pub mod watch_health;
pub mod watches;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::{error, info, warn};
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use self::context::{Context, Stores, system_clock};
use self::reconnect::ReconnectBackoff;
use self::watch_health::WatchHealth;
use self::watches::reflect;
use crate::api::Wukong;
use crate::build::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};

/// Options of `wukong run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunOptions {
    /// How many Wukongs are reconciled at the same time.
    #[arg(long, default_value_t = 16, env = "WUKONG_CONCURRENCY")]
    pub concurrency: u16,
    /// Log format: `text` or `json`. The level comes from RUST_LOG (default info).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Reconcile only while holding the leader Lease, so several replicas can run.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease; the pod's namespace (POD_NAMESPACE) by default.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_elect_namespace: String,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Milliseconds to gather the watch events of one Wukong (its children
    /// settling) into one reconcile, so a burst of changes costs one status write.
    #[arg(long, default_value_t = 250, env = "WUKONG_DEBOUNCE_MS")]
    pub debounce_ms: u64,
    // Health of the watches (see watch_health.rs and operate/http.rs).
    /// Seconds a watch may keep failing (API server unreachable) before
    /// /readyz answers 503.
    #[arg(long, default_value_t = 5, env = "WUKONG_READINESS_GRACE_SECONDS")]
    pub readiness_grace_seconds: u64,
    /// Seconds a watch may keep failing before /healthz answers 503, so the
    /// liveness probe restarts an operator that cannot recover by itself.
    #[arg(long, default_value_t = 300, env = "WUKONG_LIVENESS_GRACE_SECONDS")]
    pub liveness_grace_seconds: u64,
}

impl RunOptions {
    /// The health endpoints' state for these options.
    pub fn health(&self, metrics: crate::operate::metrics::Metrics) -> crate::operate::http::Health {
        crate::operate::http::Health::new(metrics)
            .with_grace(Duration::from_secs(self.readiness_grace_seconds), Duration::from_secs(self.liveness_grace_seconds))
    }
}

/// The API resource of the Wukong kind, for the dynamic API.
pub fn wukong_resource() -> ApiResource {
    ApiResource::erase::<Wukong>(&())
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub fn main(options: RunOptions) -> ExitCode {
    init_logging(&options.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match crate::operate::operate(options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                error!(%error, "the operator stopped");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if format == "json" { builder.json().try_init() } else { builder.try_init() };
    if let Err(error) = result {
        eprintln!("failed to initialise logging: {error}");
    }
}

/// Keeps nothing extra.
fn keep_all<K>(_: &mut K) {}

/// A VMI is read for its labels and status only: its spec (a copy of the VM
/// template) is not cached.
fn trim_instance(instance: &mut VirtualMachineInstance) {
    instance.spec = Default::default();
}

/// Runs the controller with `client` until SIGTERM or Ctrl-C.
pub async fn run(client: Client, options: RunOptions) {
    let health = Arc::new(options.health(crate::operate::metrics::Metrics::new().unwrap_or_else(|error| {
        // Registering fresh metrics in a fresh registry cannot collide.
        unreachable!("{error}")
    })));
    run_until(client, options, health, futures::future::pending()).await;
}

/// Runs the controller until a shutdown signal or until `stop` resolves,
/// reporting readiness and metrics through `health`.
pub async fn run_until(
    client: Client,
    options: RunOptions,
    health: Arc<crate::operate::http::Health>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // Watches (see watches.rs): every kind registered with `health.watches` before any stream is polled.
    let resource = wukong_resource();
    let sync = health.watches.clone();
    let all = watcher::Config::default;
    let (wukong_reader, wukong_stream) = reflect::<DynamicObject>(&client, resource.clone(), all(), keep_all, &sync);
    let (virtual_machines, vm_stream) = reflect::<VirtualMachine>(&client, (), all(), keep_all, &sync);
    let (instances, instance_stream) = reflect::<VirtualMachineInstance>(&client, (), all(), trim_instance, &sync);
    let (data_volumes, data_volume_stream) = reflect::<DataVolume>(&client, (), all(), keep_all, &sync);
    let (claims, claim_stream) = reflect::<PersistentVolumeClaim>(&client, (), all(), keep_all, &sync);
    let (attachments, attachment_stream) = reflect::<NetworkAttachmentDefinition>(&client, (), all(), keep_all, &sync);
    let managed = format!("{MANAGED_BY_LABEL}={MANAGER}");
    let (secrets, secret_stream) = reflect::<Secret>(&client, (), all().labels(&managed), keep_all, &sync);
    let (storage_classes, class_stream) = reflect::<StorageClass>(&client, (), all(), keep_all, &sync);
    tokio::spawn(class_stream.for_each(|_| futures::future::ready(())));

    let stores = Stores {
        wukongs: wukong_reader.clone(),
        virtual_machines,
        instances,
        data_volumes: data_volumes.clone(),
        claims,
        attachments,
        secrets,
        storage_classes,
    };
    let reporter = Reporter { controller: MANAGER.to_string(), instance: std::env::var("POD_NAME").ok() };
    let context = Arc::new(Context {
        client: client.clone(),
        stores,
        recorder: Recorder::new(client.clone(), reporter),
        clock: system_clock(),
        failures: Arc::default(),
    });

    let _ = health.wukongs.set(wukong_reader.clone());
    let ready_sync = sync.clone();
    tokio::spawn(async move {
        ready_sync.wait_synced().await;
        info!("watch caches synced");
    });
    let metrics = health.metrics.clone();
    let instance_resource = resource.clone();
    let claim_mapper = claim_owners(wukong_reader.clone(), data_volumes, resource.clone());
    info!(concurrency = options.concurrency, "starting the Wukong controller");
    Controller::for_stream_with(wukong_stream, wukong_reader, resource)
        .owns_stream_with(vm_stream, ())
        .owns_stream_with(data_volume_stream, ())
        .owns_stream_with(attachment_stream, ())
        .owns_stream_with(secret_stream, ())
        .watches_stream_with(instance_stream, move |instance: VirtualMachineInstance| instance_owner(&instance, &instance_resource), ())
        .watches_stream_with(claim_stream, move |claim: PersistentVolumeClaim| claim_mapper(&claim), ())
        .with_config(ControllerConfig::default().concurrency(options.concurrency).debounce(Duration::from_millis(options.debounce_ms)))
        // The trigger streams never yield errors (reconnect.rs); should one, the pause of every trigger stays short.
        .trigger_backoff(ReconnectBackoff::default())
        .shutdown_on_signal()
        .graceful_shutdown_on(stop)
        .run(
            move |object, context| {
                let metrics = metrics.clone();
                let sync = sync.clone();
                async move {
                    let started = std::time::Instant::now();
                    let result = reconcile_tracked(object, context, &sync).await;
                    metrics.reconciled(result.is_ok(), started.elapsed());
                    result
                }
            },
            error_policy,
            context,
        )
        .for_each(|result| {
            match result {
                // A Wukong deleted while its reconcile was queued: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(reference)) => tracing::debug!(%reference, "the Wukong is gone"),
                Err(error) => warn!(%error, "reconcile failed"),
                Ok(_) => {}
            }
            futures::future::ready(())
        })
        .await;
    info!("the Wukong controller stopped");
}

/// The Wukong a VMI belongs to: KubeVirt copies the VM template's labels,
/// which carry the Wukong's name.
fn instance_owner(instance: &VirtualMachineInstance, resource: &ApiResource) -> Option<ObjectRef<DynamicObject>> {
    let labels = instance.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    let name = labels.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new_with(name, resource.clone()).within(&instance.namespace()?))
}

/// Maps a claim to the Wukongs that care about it: its controller (a Wukong, or
/// a DataVolume a Wukong controls) and every Wukong that references it as an
/// existing claim.
fn claim_owners(
    wukongs: Store<DynamicObject>,
    data_volumes: Store<DataVolume>,
    resource: ApiResource,
) -> impl Fn(&PersistentVolumeClaim) -> Vec<ObjectRef<DynamicObject>> + Send + Sync + 'static {
    move |claim| {
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let mut owners = Vec::new();
        if let Some(owner) = claim.metadata.owner_references.iter().flatten().find(|owner| owner.controller == Some(true)) {
            // A claim with a controller (a Wukong's blank disk, CDI's claim of a
            // DataVolume) is no user's existing claim: map it to its owner only.
            let wukong = match owner.kind.as_str() {
                "Wukong" => Some(owner.name.clone()),
                "DataVolume" => ownership::cached(&data_volumes, &namespace, &owner.name).and_then(|volume| {
                    volume
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|owner| owner.controller == Some(true) && owner.kind == "Wukong")
                        .map(|owner| owner.name.clone())
                }),
                _ => None,
            };
            owners.extend(wukong.map(|wukong| ObjectRef::new_with(&wukong, resource.clone()).within(&namespace)));
            return owners;
        }
        let referencing = wukongs.state_filter(|wukong| references_claim(wukong, &namespace, &name));
        owners.extend(referencing.iter().map(|wukong| ObjectRef::from_obj_with(wukong.as_ref(), resource.clone())));
        owners
    }
}

/// Whether a raw Wukong references the claim `namespace/name` as an existing claim.
fn references_claim(wukong: &DynamicObject, namespace: &str, name: &str) -> bool {
    let own_namespace = wukong.metadata.namespace.as_deref().unwrap_or_default();
    let disks = wukong.data.get("spec").and_then(|spec| spec.get("disks")).and_then(serde_json::Value::as_array);
    disks.into_iter().flatten().filter_map(|disk| disk.get("existingPVC")).any(|existing| {
        let claim_namespace = existing.get("namespace").and_then(serde_json::Value::as_str).unwrap_or(own_namespace);
        existing.get("name").and_then(serde_json::Value::as_str) == Some(name) && claim_namespace == namespace
    })
}

/// Runs a reconcile once every cache has synced, and keeps the failure count
/// that [`error_policy`] backs off with.
async fn reconcile_tracked(object: Arc<DynamicObject>, context: Arc<Context>, sync: &WatchHealth) -> Result<Action, reconcile::Error> {
    sync.wait_synced().await;
    let key = format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any());
    let result = reconcile::reconcile(object, context.clone()).await;
    if result.is_ok()
        && let Ok(mut failures) = context.failures.lock()
    {
        failures.remove(&key);
    }
    result
}

/// Retries a failed reconcile with exponential backoff per Wukong: 1 s, 2 s,
/// 4 s, ... up to 5 minutes.
fn error_policy(object: Arc<DynamicObject>, error: &reconcile::Error, context: Arc<Context>) -> Action {
    let key = format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any());
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
