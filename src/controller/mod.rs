//! The operator behind `wukong run`: watches Wukongs in every namespace and
//! converges their children.
//!
//! In: a client and [`RunOptions`]. Out: a running kube-runtime `Controller`
//! whose reconcile is the thin driver in [`reconcile`], fed by one shared
//! watch cache per kind (no list calls while reconciling).

pub mod apply;
pub mod by_kind;
pub mod checks;
pub mod cleanup;
pub mod context;
pub mod diff;
pub mod metrics;
pub mod observe;
pub mod operations;
pub mod ownership;
pub mod permissions;
pub mod reconcile;
pub mod report;
pub mod resolve;
pub mod status;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{Instrument, error, info, warn};
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use self::by_kind::ByKind;
use self::context::{Context, Stores, system_clock};
use crate::api::GuardedWukong;
use crate::children::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};
use crate::children::{ChildKind, EachKind, for_each_kind};

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
}

/// The API resource of the Wukong kind, for the dynamic API (tests, the bench).
pub fn wukong_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<crate::api::Wukong>(&())
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

/// A reflector over every object of a kind, as a stream of touched objects
/// plus the reader of its cache; `sync` learns when the cache is filled.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    sync: &CacheSync,
    trim: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, config.any_semantic()).modify(move |object: &mut K| {
        trim_metadata(object);
        trim(object);
    });
    let stream = reflector::reflector(writer, events).inspect(sync.tracker()).default_backoff().touched_objects();
    (reader, stream)
}

/// Drops from a cached object what the operator never reads and what often
/// doubles its size: managedFields and kubectl's last-applied-configuration.
fn trim_metadata<K: Resource>(object: &mut K) {
    object.managed_fields_mut().clear();
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Keeps nothing extra.
fn keep_all<K>(_: &mut K) {}

/// A VMI is read for its labels and status only: its spec (a copy of the VM
/// template) is not cached.
fn trim_instance(instance: &mut VirtualMachineInstance) {
    instance.spec = Default::default();
}

/// Whether every watch cache has finished its first list: each reflector
/// stream with a [`CacheSync::tracker`] counts its cache when it yields its
/// first `InitDone` (the store has applied it by then). Every tracker must be
/// made before any stream is polled.
///
/// Reconciles and `/readyz` wait on this rather than on
/// `Store::wait_until_ready`: kube's store readiness (a `DelayedInit` over a
/// oneshot channel) keeps one waker, so of several tasks waiting on one store
/// at the same time only the last is woken. The readiness task then never
/// saw the Wukong store ready (the Controller waits on it too), leaving
/// `/readyz` at 503, and reconciles started before every cache was ready
/// could stay parked for good.
#[derive(Clone)]
struct CacheSync {
    pending: Arc<std::sync::atomic::AtomicUsize>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl CacheSync {
    /// Waits for no cache yet.
    fn new() -> CacheSync {
        let (ready, _) = tokio::sync::watch::channel(false);
        CacheSync { pending: Arc::default(), ready: Arc::new(ready) }
    }

    /// The hook for one more reflector stream: its first `InitDone` counts its cache.
    fn tracker<K>(&self) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + Send + 'static {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let sync = self.clone();
        let mut counted = false;
        move |event| {
            if !counted && matches!(event, Ok(watcher::Event::InitDone)) {
                counted = true;
                if sync.pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    sync.ready.send_replace(true);
                }
            }
        }
    }

    /// Resolves once every cache is filled.
    async fn wait(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

/// Runs the controller with `client` until SIGTERM or Ctrl-C.
pub async fn run(client: Client, options: RunOptions) {
    let health = Arc::new(crate::operate::http::Health::new(metrics::Metrics::new().unwrap_or_else(|error| {
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
    let sync = CacheSync::new();
    let (wukongs, wukong_stream) = reflect::<GuardedWukong>(Api::all(client.clone()), watcher::Config::default(), &sync, keep_all);
    let (instances, instance_stream) =
        reflect::<VirtualMachineInstance>(Api::all(client.clone()), watcher::Config::default(), &sync, trim_instance);
    let (storage_classes, class_stream) = reflect::<StorageClass>(Api::all(client.clone()), watcher::Config::default(), &sync, keep_all);
    tokio::spawn(class_stream.for_each(|_| futures::future::ready(())));

    let children_stores = Arc::new(OnceLock::new());
    let controller = Controller::for_stream(wukong_stream, wukongs.clone())
        .watches_stream(instance_stream, |instance: VirtualMachineInstance| instance_owner(&instance));
    let mut watches = ChildWatches {
        client: client.clone(),
        sync: &sync,
        wukongs: wukongs.clone(),
        all: children_stores.clone(),
        stores: ByKind::default(),
        controller: Some(controller),
    };
    for_each_kind(&mut watches);
    let _ = children_stores.set(watches.stores.clone());
    let Some(controller) = watches.controller else { return };

    let stores = Stores { wukongs: wukongs.clone(), instances, storage_classes, children: watches.stores };
    let reporter = Reporter { controller: MANAGER.to_string(), instance: std::env::var("POD_NAME").ok() };
    let context = Arc::new(Context {
        client: client.clone(),
        stores,
        recorder: Recorder::new(client.clone(), reporter),
        clock: system_clock(),
        metrics: health.metrics.clone(),
        failures: Arc::default(),
    });

    let _ = health.wukongs.set(wukongs.clone());
    let ready_sync = sync.clone();
    let ready_health = health.clone();
    tokio::spawn(async move {
        ready_sync.wait().await;
        ready_health.caches_ready.store(true, std::sync::atomic::Ordering::Relaxed);
        info!("watch caches synced");
    });
    let metrics = health.metrics.clone();
    info!(concurrency = options.concurrency, "starting the Wukong controller");
    controller
        .with_config(ControllerConfig::default().concurrency(options.concurrency).debounce(Duration::from_millis(options.debounce_ms)))
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

/// Watches every registered child kind: one cache each, and a trigger that
/// reconciles the Wukongs an object belongs to or is referenced by.
struct ChildWatches<'a> {
    client: Client,
    sync: &'a CacheSync,
    wukongs: Store<GuardedWukong>,
    /// Every kind's cache, for the mappers (filled once every kind is registered).
    all: Arc<OnceLock<ByKind>>,
    stores: ByKind,
    controller: Option<Controller<GuardedWukong>>,
}

impl EachKind for ChildWatches<'_> {
    fn kind<K: ChildKind>(&mut self) {
        let mut config = watcher::Config::default();
        if let Some(selector) = K::cache_selector() {
            config = config.labels(&selector);
        }
        let (store, stream) = reflect::<K>(Api::all(self.client.clone()), config, self.sync, K::trim);
        self.stores.insert(store);
        let (wukongs, all) = (self.wukongs.clone(), self.all.clone());
        self.controller = self
            .controller
            .take()
            .map(|controller| controller.watches_stream(stream, move |object: K| owners(&object, &wukongs, all.get())));
    }
}

/// The Wukongs an object of a child kind concerns: its controller (a Wukong,
/// or a DataVolume a Wukong controls, as for the claims CDI makes), or, for an
/// object nobody controls, every Wukong that references it (an existing claim).
fn owners<K: ChildKind>(object: &K, wukongs: &Store<GuardedWukong>, stores: Option<&ByKind>) -> Vec<ObjectRef<GuardedWukong>> {
    let namespace = object.namespace().unwrap_or_default();
    let controller = object.meta().owner_references.iter().flatten().find(|owner| owner.controller == Some(true));
    if let Some(owner) = controller {
        let wukong = match owner.kind.as_str() {
            "Wukong" => Some(owner.name.clone()),
            "DataVolume" => stores
                .and_then(|stores| stores.get::<Store<DataVolume>>())
                .and_then(|data_volumes| ownership::cached(data_volumes, &namespace, &owner.name))
                .and_then(|volume| {
                    let owners = volume.metadata.owner_references.iter().flatten();
                    owners.filter(|owner| owner.controller == Some(true) && owner.kind == "Wukong").map(|owner| owner.name.clone()).next()
                }),
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

/// The Wukong a VMI belongs to: KubeVirt copies the VM template's labels,
/// which carry the Wukong's name.
fn instance_owner(instance: &VirtualMachineInstance) -> Option<ObjectRef<GuardedWukong>> {
    let labels = instance.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    let name = labels.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(name).within(&instance.namespace()?))
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
async fn reconcile_tracked(object: Arc<GuardedWukong>, context: Arc<Context>, sync: &CacheSync) -> Result<Action, reconcile::Error> {
    sync.wait().await;
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
fn error_policy(object: Arc<GuardedWukong>, error: &reconcile::Error, context: Arc<Context>) -> Action {
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
