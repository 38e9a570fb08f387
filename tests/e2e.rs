//! End-to-end suite against a real kube-apiserver.
//!
//! Runs only when `WUKONG_E2E_KUBECONFIG` names a kubeconfig; otherwise it
//! prints one "skipped" line and passes. It needs no KubeVirt, CDI, Multus or
//! storage provisioner: it installs the upstream CRDs itself and plays those
//! controllers' parts (the VirtualMachineInstance and its status, DataVolume
//! progress and the claim CDI makes, PersistentVolumes that bind claims), so a
//! bare API server (kube-apiserver + etcd, or kind) is enough. The operator runs
//! in-process.
//!
//! One test runs the named phases in order, each with bounded waits that say
//! what they waited for and what they saw last. The namespaces it creates and
//! the PersistentVolumes it makes are removed at the end, also after a failure.
//! The last phase restarts the API server when `WUKONG_E2E_RESTART_COMMAND`
//! says how (see [`restart`]), and is skipped with one line otherwise.

#[path = "e2e/restart.rs"]
mod restart;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use wukong::api::{Condition, Phase, WukongStatus};
use wukong::children::meta::{APP_NAME, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, NAME_LABEL};
use wukong::controller::metrics::Metrics;
use wukong::operate::RunOptions;
use wukong::operate::http::Health;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

/// The variable naming the kubeconfig of the cluster to test against.
const KUBECONFIG_VAR: &str = "WUKONG_E2E_KUBECONFIG";
/// Field manager of everything the suite writes.
const FIELD_MANAGER: &str = "wukong-e2e";
/// Field manager of the "someone else edited it" drift.
const DRIFT_MANAGER: &str = "wukong-e2e-drift";
/// Label on the suite's namespaces and PersistentVolumes, valued with the run's suffix.
const RUN_LABEL: &str = "wukong-e2e/run";
/// The annotation with which a claim's namespace grants clones into others.
const CLONE_GRANT_ANNOTATION: &str = "vm.novasphere.dev/clone-to-namespaces";
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);
/// How long a wait waits.
const TIMEOUT: Duration = Duration::from_secs(60);

const WEB_SERVER_YAML: &str = include_str!("../examples/web-server-01.yaml");
const VM_FROM_PVC_YAML: &str = include_str!("../examples/vm-from-pvc.yaml");
const RESTORED_VM_YAML: &str = include_str!("../examples/restored-vm.yaml");

/// The upstream CRDs the operator watches and writes, one CRD document per file.
const UPSTREAM_CRDS: [(&str, &str); 5] = [
    ("models/crds/kubevirt.io_virtualmachines.yaml", include_str!("../models/crds/kubevirt.io_virtualmachines.yaml")),
    ("models/crds/kubevirt.io_virtualmachineinstances.yaml", include_str!("../models/crds/kubevirt.io_virtualmachineinstances.yaml")),
    (
        "models/crds/kubevirt.io_virtualmachineinstancemigrations.yaml",
        include_str!("../models/crds/kubevirt.io_virtualmachineinstancemigrations.yaml"),
    ),
    ("models/crds/cdi.kubevirt.io_datavolumes.yaml", include_str!("../models/crds/cdi.kubevirt.io_datavolumes.yaml")),
    (
        "models/crds/k8s.cni.cncf.io_network-attachment-definitions.yaml",
        include_str!("../models/crds/k8s.cni.cncf.io_network-attachment-definitions.yaml"),
    ),
];

const WEB: &str = "web-server-01";
const WEB_VM: &str = "web-server-01-vm";
const WEB_NAD: &str = "web-server-01-mgmt";
const WEB_SECRET: &str = "web-server-01-cloudinit";
const WEB_CACHE: &str = "web-server-01-cache";
const WEB_SYSTEM: &str = "web-server-01-system";
const DATA_PVC: &str = "data-pvc";
const NODE: &str = "node-e2e";
const MGMT_ADDRESS: &str = "192.168.100.10";

/// Every fallible step of the suite fails with a message naming what it did.
type E2e<T = ()> = Result<T, String>;

/// Adds what was being done to an error (or to a missing value).
trait Context<T> {
    fn context(self, what: impl std::fmt::Display) -> E2e<T>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl std::fmt::Display) -> E2e<T> {
        self.map_err(|error| format!("{what}: {error}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl std::fmt::Display) -> E2e<T> {
        self.ok_or_else(|| what.to_string())
    }
}

/// Fails the current step with a formatted message unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

// After the macro, so the phase module can use `ensure!`.
#[path = "e2e/addresses.rs"]
mod addresses;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end() {
    let Some(path) = std::env::var_os(KUBECONFIG_VAR).filter(|value| !value.is_empty()).map(PathBuf::from) else {
        println!("e2e: skipped (set {KUBECONFIG_VAR} to a kubeconfig to run against a real API server)");
        return;
    };
    init_logging();
    match run_suite(&path).await {
        Ok(passed) => println!("e2e: {passed} phases passed"),
        Err(error) => panic!("e2e: FAILED: {error}"),
    }
}

/// Controller logs go to the test output; RUST_LOG picks the level (default warn).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Another subscriber already installed is fine.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Setup, the phases, and the cleanup that runs whatever happened.
async fn run_suite(path: &Path) -> E2e<usize> {
    let client = connect(path).await?;
    println!("e2e: setup: installing the CRDs (field manager {FIELD_MANAGER})");
    install_crds(&client).await?;
    let env = Env::new(client);
    let options = run_options()?;
    println!("e2e: setup: starting the controller in-process ({options:?})");
    let client = env.client.clone();
    let health = Arc::new(options.health(Metrics::new().context("failed to set up the controller's metrics")?));
    let controller_health = health.clone();
    let controller = tokio::spawn(async move {
        let _stopped = MarkStopped;
        wukong::controller::run_until(client, options.settings(), controller_health, futures::future::pending()).await;
    });

    let outcome = AssertUnwindSafe(run_phases(&env, &health)).catch_unwind().await;

    let stopped_early = controller.is_finished();
    controller.abort();
    let joined = controller.await;
    cleanup(&env).await;
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if !stopped_early {
        return result;
    }
    let why = match joined {
        Ok(()) => "the controller stopped on its own during the run".to_string(),
        Err(error) => format!("the controller task failed: {error}"),
    };
    match result {
        Ok(_) => Err(why),
        Err(error) => Err(format!("{error} ({why})")),
    }
}

/// Set once the in-process controller stops (returned, panicked or aborted), so
/// waits fail at once instead of timing out one by one. The controller listens
/// for Ctrl-C/SIGTERM itself: a signal stops it, and the suite then cleans up.
static CONTROLLER_STOPPED: AtomicBool = AtomicBool::new(false);

/// Sets [`CONTROLLER_STOPPED`] when dropped, which happens however the controller task ends.
struct MarkStopped;

impl Drop for MarkStopped {
    fn drop(&mut self) {
        CONTROLLER_STOPPED.store(true, Ordering::SeqCst);
    }
}

async fn connect(path: &Path) -> E2e<Client> {
    let kubeconfig = Kubeconfig::read_from(path).context(format!("failed to read the kubeconfig {} ({KUBECONFIG_VAR})", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context(format!("failed to load the kubeconfig {}", path.display()))?;
    println!("e2e: setup: API server {}", config.cluster_url);
    Client::try_from(config).context("failed to build a client from the kubeconfig")
}

/// `RunOptions` as `wukong run --concurrency 4 --log-format text
/// --status-settle-seconds 2` gives them, so fields added later with defaults
/// need no change here. The suite waits for intermediate phases (Creating while
/// the VMI schedules): a short settle window still holds them, briefly.
fn run_options() -> E2e<RunOptions> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        options: RunOptions,
    }
    Wrapper::try_parse_from(["wukong-e2e", "--concurrency", "4", "--log-format", "text", "--status-settle-seconds", "2"])
        .map(|wrapper| wrapper.options)
        .context("failed to build the controller's RunOptions")
}

/// The API resources the suite reads and writes.
struct Kinds {
    wukong: ApiResource,
    vm: ApiResource,
    vmi: ApiResource,
    dv: ApiResource,
    nad: ApiResource,
    pvc: ApiResource,
    secret: ApiResource,
}

/// The client, the run's namespaces and the kinds.
struct Env {
    client: Client,
    /// Suffix of this run's names, also the value of [`RUN_LABEL`].
    run: String,
    /// The namespace the Wukongs live in.
    namespace: String,
    /// A second namespace, holding the claim of the cross-namespace case.
    other: String,
    kinds: Kinds,
}

impl Env {
    fn new(client: Client) -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis()).unwrap_or_default();
        let run = format!("{millis:x}{:04x}", std::process::id() & 0xffff);
        Self {
            client,
            namespace: format!("wukong-e2e-{run}"),
            other: format!("wukong-e2e-{run}-src"),
            run,
            kinds: Kinds {
                wukong: wukong::controller::wukong_resource(),
                vm: ApiResource::erase::<VirtualMachine>(&()),
                vmi: ApiResource::erase::<VirtualMachineInstance>(&()),
                dv: ApiResource::erase::<DataVolume>(&()),
                nad: ApiResource::erase::<NetworkAttachmentDefinition>(&()),
                pvc: ApiResource::erase::<PersistentVolumeClaim>(&()),
                secret: ApiResource::erase::<Secret>(&()),
            },
        }
    }

    fn api(&self, kind: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, kind)
    }

    async fn get(&self, kind: &ApiResource, namespace: &str, name: &str) -> E2e<Option<DynamicObject>> {
        self.api(kind, namespace).get_opt(name).await.context(format!("failed to read {} {namespace}/{name}", kind.kind))
    }

    async fn get_required(&self, kind: &ApiResource, namespace: &str, name: &str) -> E2e<DynamicObject> {
        self.get(kind, namespace, name).await?.context(format!("{} {namespace}/{name} does not exist", kind.kind))
    }

    /// Server-side apply of a manifest (`metadata.namespace` and `metadata.name` set).
    async fn apply_yaml(&self, kind: &ApiResource, object: &Value) -> E2e<DynamicObject> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).context("the manifest has no metadata.namespace")?;
        let name = object.pointer("/metadata/name").and_then(Value::as_str).context("the manifest has no metadata.name")?;
        self.api(kind, namespace)
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
            .await
            .context(format!("failed to apply {} {namespace}/{name}", kind.kind))
    }

    /// Deletes an object; one already gone is fine.
    async fn delete(&self, kind: &ApiResource, namespace: &str, name: &str) -> E2e {
        match self.api(kind, namespace).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(format!("failed to delete {} {namespace}/{name}: {error}", kind.kind)),
        }
    }

    /// Removes every finalizer of an object (playing the controller that would); gone is fine.
    async fn strip_finalizers(&self, kind: &ApiResource, namespace: &str, name: &str) -> E2e {
        let patch = json!({"metadata": {"finalizers": null}});
        match self.api(kind, namespace).patch(name, &merge_params(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(format!("failed to remove the finalizers of {} {namespace}/{name}: {error}", kind.kind)),
        }
    }

    /// The example `text`, moved into this run's namespaces: its own namespace
    /// and those of its existing claims (`prod` and `default` become the test
    /// namespace, `backups` the second one; any other is refused).
    fn example(&self, text: &str) -> E2e<Value> {
        let mut value: Value = wukong::yaml::from_str(text).context("failed to parse an example")?;
        let original = value.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
        let target = self.map_namespace(&original)?;
        value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .context("the example has no metadata")?
            .insert("namespace".into(), json!(target));
        for disk in value.pointer_mut("/spec/disks").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(existing) = disk.get_mut("existingPVC").and_then(Value::as_object_mut)
                && let Some(namespace) = existing.get("namespace").and_then(Value::as_str).map(str::to_string)
            {
                existing.insert("namespace".into(), json!(self.map_namespace(&namespace)?));
            }
        }
        Ok(value)
    }

    fn map_namespace(&self, namespace: &str) -> E2e<String> {
        match namespace {
            "prod" | "default" => Ok(self.namespace.clone()),
            "backups" => Ok(self.other.clone()),
            other => Err(format!("an example uses namespace {other:?}, which the suite does not know how to move into its own namespaces")),
        }
    }
}

fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() }
}

fn is_terminating(object: &DynamicObject) -> bool {
    object.metadata.deletion_timestamp.is_some()
}

/// What a wait's check saw: done (with a value), or still waiting (and what it saw).
enum Check<T> {
    Done(T),
    Waiting(String),
}

/// Polls `check` every [`POLL`] until it is done or `timeout` passes. An error
/// from the check is treated as "still waiting" (the API server may be briefly
/// unavailable); the timeout message carries the last observation.
async fn wait_for<T>(description: &str, timeout: Duration, mut check: impl AsyncFnMut() -> E2e<Check<T>>) -> E2e<T> {
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Check::Done(value)) => {
                println!("e2e:   ok: {description} ({:.1}s)", start.elapsed().as_secs_f64());
                return Ok(value);
            }
            Ok(Check::Waiting(observed)) => observed,
            Err(error) => format!("error: {error}"),
        };
        if CONTROLLER_STOPPED.load(Ordering::SeqCst) {
            return Err(format!("the in-process controller stopped while waiting for {description}; last observed: {last}"));
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {}s waiting for {description}; last observed: {last}", timeout.as_secs()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the Wukong's status satisfies `accept`.
async fn wait_for_status(
    env: &Env,
    namespace: &str,
    name: &str,
    description: &str,
    accept: impl Fn(&DynamicObject, &WukongStatus) -> bool,
) -> E2e<(DynamicObject, WukongStatus)> {
    let description = format!("Wukong {name}: {description}");
    wait_for(&description, TIMEOUT, async || {
        let Some(object) = env.get(&env.kinds.wukong, namespace, name).await? else {
            return Ok(Check::Waiting("the Wukong does not exist".to_string()));
        };
        match wukong_status(&object)? {
            Some(status) if accept(&object, &status) => Ok(Check::Done((object, status))),
            _ => Ok(Check::Waiting(describe(&object))),
        }
    })
    .await
}

/// Waits until every object in `wanted` exists in `namespace`.
async fn wait_for_objects(env: &Env, namespace: &str, wanted: &[(&ApiResource, &str)], description: &str) -> E2e<Vec<DynamicObject>> {
    wait_for(description, TIMEOUT, async || {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for (kind, name) in wanted {
            match env.get(kind, namespace, name).await? {
                Some(object) => found.push(object),
                None => missing.push(format!("{} {name}", kind.kind)),
            }
        }
        if missing.is_empty() { Ok(Check::Done(found)) } else { Ok(Check::Waiting(format!("missing: {}", missing.join(", ")))) }
    })
    .await
}

/// Waits until an object is gone or being deleted; returns it if it is still there.
async fn wait_gone_or_terminating(env: &Env, kind: &ApiResource, namespace: &str, name: &str) -> E2e<Option<DynamicObject>> {
    wait_for(&format!("{} {name} to be deleted", kind.kind), TIMEOUT, async || match env.get(kind, namespace, name).await? {
        None => Ok(Check::Done(None)),
        Some(object) if is_terminating(&object) => Ok(Check::Done(Some(object))),
        Some(object) => {
            Ok(Check::Waiting(format!("still there, not terminating (resourceVersion {:?})", object.metadata.resource_version)))
        }
    })
    .await
}

/// Waits until an object is gone.
async fn wait_gone(env: &Env, kind: &ApiResource, namespace: &str, name: &str) -> E2e {
    wait_for(&format!("{} {name} to be gone", kind.kind), TIMEOUT, async || match env.get(kind, namespace, name).await? {
        None => Ok(Check::Done(())),
        Some(object) => Ok(Check::Waiting(format!(
            "still there: deletionTimestamp {:?}, finalizers {:?}",
            object.metadata.deletion_timestamp, object.metadata.finalizers
        ))),
    })
    .await
}

/// Asserts that an object is gone or being deleted, right now.
async fn ensure_deleted(env: &Env, kind: &ApiResource, namespace: &str, name: &str) -> E2e {
    match env.get(kind, namespace, name).await? {
        None => Ok(()),
        Some(object) if is_terminating(&object) => Ok(()),
        Some(object) => Err(format!(
            "{} {namespace}/{name} should have been deleted by the operator, but it is still there (owners {:?})",
            kind.kind, object.metadata.owner_references
        )),
    }
}

fn wukong_status(object: &DynamicObject) -> E2e<Option<WukongStatus>> {
    object
        .data
        .get("status")
        .map(|status| serde_json::from_value(status.clone()))
        .transpose()
        .context(format!("the status of Wukong {} does not parse", object.name_any()))
}

fn condition<'a>(status: &'a WukongStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|condition| condition.type_ == type_)
}

fn has_condition(status: &WukongStatus, type_: &str, value: &str) -> bool {
    condition(status, type_).is_some_and(|condition| condition.status == value)
}

/// Whether the status describes the object's current generation.
fn is_current(object: &DynamicObject, status: &WukongStatus) -> bool {
    status.observed_generation.is_some() && status.observed_generation == object.metadata.generation
}

/// A one-line picture of a Wukong's state, for timeouts.
fn describe(object: &DynamicObject) -> String {
    let generation = object.metadata.generation;
    let deleting = object.metadata.deletion_timestamp.as_ref().map_or(String::new(), |_| ", being deleted".to_string());
    match wukong_status(object) {
        Err(error) => format!("generation {generation:?}{deleting}, {error}"),
        Ok(None) => format!("generation {generation:?}{deleting}, no status yet"),
        Ok(Some(status)) => {
            let conditions: Vec<String> = status
                .conditions
                .iter()
                .map(|condition| format!("{}={} {} ({})", condition.type_, condition.status, condition.reason, condition.message))
                .collect();
            let volumes: Vec<String> = status
                .volumes
                .iter()
                .map(|volume| {
                    let phase = volume.phase.as_deref().unwrap_or("-");
                    format!("{} bound={} phase={phase} progress={}", volume.name, volume.bound, volume.progress.as_deref().unwrap_or("-"))
                })
                .collect();
            format!(
                "generation {generation:?}{deleting}, observedGeneration {:?}, phase {:?}, node {:?}, ip {:?}, conditions [{}], volumes [{}]",
                status.observed_generation,
                status.phase,
                status.node_name,
                status.ip_address,
                conditions.join("; "),
                volumes.join(", "),
            )
        }
    }
}

/// Asserts the child carries the controller owner reference to the Wukong and the operator's labels.
fn check_owned(object: &DynamicObject, kind: &str, wukong: &DynamicObject) -> E2e {
    let name = object.name_any();
    let wukong_name = wukong.name_any();
    let uid = wukong.metadata.uid.clone().unwrap_or_default();
    let owners = object.metadata.owner_references.clone().unwrap_or_default();
    let controller = owners.iter().find(|owner| owner.controller == Some(true));
    ensure!(
        controller.is_some_and(|owner| owner.kind == "Wukong"
            && owner.api_version == "vm.novasphere.dev/v1alpha1"
            && owner.name == wukong_name
            && owner.uid == uid),
        "{kind} {name} should have a controller ownerReference to Wukong {wukong_name} (uid {uid}); its ownerReferences are {owners:?}"
    );
    let labels = object.labels();
    for (key, value) in [(NAME_LABEL, APP_NAME), (INSTANCE_LABEL, wukong_name.as_str()), (MANAGED_BY_LABEL, MANAGER)] {
        ensure!(
            labels.get(key).map(String::as_str) == Some(value),
            "{kind} {name} should carry the label {key}={value}; its labels are {labels:?}"
        );
    }
    Ok(())
}

/// Asserts a claim the user made is still there as the user made it: not
/// deleted, not owned, not labelled by the operator.
async fn check_untouched_claim(env: &Env, namespace: &str, name: &str) -> E2e {
    let claim = env.get_required(&env.kinds.pvc, namespace, name).await?;
    ensure!(!is_terminating(&claim), "PersistentVolumeClaim {namespace}/{name} is the user's: it must not be deleted");
    let owners = claim.metadata.owner_references.clone().unwrap_or_default();
    ensure!(
        owners.is_empty(),
        "PersistentVolumeClaim {namespace}/{name} is the user's: it must not be owned, but has ownerReferences {owners:?}"
    );
    let labels: Vec<&String> = claim.labels().keys().filter(|key| key.starts_with("app.kubernetes.io/")).collect();
    ensure!(
        labels.is_empty(),
        "PersistentVolumeClaim {namespace}/{name} is the user's: it must not carry the operator's labels, but has {labels:?}"
    );
    Ok(())
}

/// Creates a claim (server-side apply), optionally controlled by `owner`.
async fn create_claim(env: &Env, namespace: &str, name: &str, size: &str, class: Option<&str>, owner: Option<Value>) -> E2e {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    if let (Some(class), Some(fields)) = (class, spec.as_object_mut()) {
        fields.insert("storageClassName".into(), json!(class));
    }
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let (Some(owner), Some(fields)) = (owner, metadata.as_object_mut()) {
        fields.insert("ownerReferences".into(), json!([owner]));
    }
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec});
    env.apply_yaml(&env.kinds.pvc, &claim).await?;
    Ok(())
}

/// Plays the storage layer: binds the claim to a PersistentVolume made for it
/// (the volume's claimRef, the claim's volumeName and bind-completed
/// annotation) and sets both statuses to Bound. On a cluster with
/// kube-controller-manager the PV controller sees a consistent binding and
/// leaves it; on a bare API server nothing else touches it.
async fn mark_bound(env: &Env, namespace: &str, name: &str) -> E2e {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), namespace);
    let claim = claims.get(name).await.context(format!("failed to read PersistentVolumeClaim {namespace}/{name}"))?;
    let uid = claim.metadata.uid.clone().context(format!("PersistentVolumeClaim {namespace}/{name} has no uid"))?;
    let spec = claim.spec.clone().unwrap_or_default();
    let access_modes = spec.access_modes.clone().filter(|modes| !modes.is_empty()).unwrap_or_else(|| vec!["ReadWriteOnce".to_string()]);
    let size = spec
        .resources
        .as_ref()
        .and_then(|resources| resources.requests.as_ref())
        .and_then(|requests| requests.get("storage"))
        .map_or_else(|| "1Gi".to_string(), |quantity| quantity.0.clone());
    let volume_name = spec.volume_name.clone().filter(|volume| !volume.is_empty()).unwrap_or_else(|| format!("{namespace}-{name}"));

    let volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name, "labels": {RUN_LABEL: env.run}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": access_modes,
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".to_string()),
            "hostPath": {"path": format!("/tmp/wukong-e2e/{volume_name}")},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name, "uid": uid},
        },
    });
    let volumes: Api<PersistentVolume> = Api::all(env.client.clone());
    volumes
        .patch(&volume_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&volume))
        .await
        .context(format!("failed to apply PersistentVolume {volume_name}"))?;
    if spec.volume_name.as_deref().is_none_or(str::is_empty) {
        let binding = json!({"metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}}, "spec": {"volumeName": volume_name}});
        claims
            .patch(name, &merge_params(), &Patch::Merge(&binding))
            .await
            .context(format!("failed to set the volumeName of PersistentVolumeClaim {namespace}/{name}"))?;
    }
    let status = json!({"status": {"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": size}}});
    claims
        .patch_status(name, &merge_params(), &Patch::Merge(&status))
        .await
        .context(format!("failed to mark PersistentVolumeClaim {namespace}/{name} Bound"))?;
    volumes
        .patch_status(&volume_name, &merge_params(), &Patch::Merge(&json!({"status": {"phase": "Bound"}})))
        .await
        .context(format!("failed to mark PersistentVolume {volume_name} Bound"))?;
    println!("e2e:   storage: PersistentVolumeClaim {name} bound to PersistentVolume {volume_name}");
    Ok(())
}

/// Installs our CRDs (Wukong, IPPool, IPLease) and the upstream ones, and waits until each is Established.
async fn install_crds(client: &Client) -> E2e {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for (file, crd) in wukong::api::crds() {
        let ours = serde_json::to_value(crd).context(format!("failed to serialise the CRD of {file}"))?;
        names.push(apply_crd(&api, ours, true).await?);
    }
    for (file, text) in UPSTREAM_CRDS {
        names.push(apply_crd(&api, crd_document(file, text)?, false).await?);
    }
    for name in &names {
        wait_for(&format!("CRD {name} to be Established"), TIMEOUT, async || {
            let crd = api.get(name).await.context(format!("failed to read CRD {name}"))?;
            let conditions = crd.status.and_then(|status| status.conditions).unwrap_or_default();
            if conditions.iter().any(|condition| condition.type_ == "Established" && condition.status == "True") {
                return Ok(Check::Done(()));
            }
            let seen: Vec<String> = conditions
                .iter()
                .map(|condition| format!("{}={} {}", condition.type_, condition.status, condition.message.clone().unwrap_or_default()))
                .collect();
            Ok(Check::Waiting(format!("conditions [{}]", seen.join("; "))))
        })
        .await?;
    }
    Ok(())
}

/// The one CRD document of an upstream file, without its status.
fn crd_document(file: &str, text: &str) -> E2e<Value> {
    let mut documents = Vec::new();
    for document in wukong::yaml::documents(text) {
        let value: Value = document.parse().context(format!("failed to parse {file}"))?;
        if value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            documents.push(value);
        }
    }
    ensure!(documents.len() == 1, "{file} should hold exactly one CustomResourceDefinition, it holds {}", documents.len());
    let mut crd = documents.remove(0);
    if let Some(fields) = crd.as_object_mut() {
        fields.remove("status");
    }
    if let Some(metadata) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("creationTimestamp");
    }
    Ok(crd)
}

/// Applies a CRD; returns its name. An upstream CRD someone else manages
/// (a real KubeVirt or CDI install) is left as it is.
async fn apply_crd(api: &Api<CustomResourceDefinition>, crd: Value, force: bool) -> E2e<String> {
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).context("a CRD has no metadata.name")?.to_string();
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force {
        params = params.force();
    }
    match api.patch(&name, &params, &Patch::Apply(&crd)).await {
        Ok(_) => println!("e2e:   applied CRD {name}"),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            println!("e2e:   CRD {name} is managed by someone else; left as it is ({})", status.message)
        }
        Err(error) => return Err(format!("failed to apply CRD {name}: {error}")),
    }
    Ok(name)
}

/// Creates the run's namespaces, then runs the phases in order.
async fn run_phases(env: &Env, health: &Health) -> E2e<usize> {
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for name in [&env.namespace, &env.other] {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(RUN_LABEL.to_string(), env.run.clone())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces.create(&PostParams::default(), &namespace).await.context(format!("failed to create namespace {name}"))?;
        println!("e2e: setup: created namespace {name}");
    }

    let mut passed = 0;
    run_phase(&mut passed, "create", phase_create(env)).await?;
    run_phase(&mut passed, "kubevirt-and-cdi", phase_kubevirt_and_cdi(env)).await?;
    run_phase(&mut passed, "drift", phase_drift(env)).await?;
    run_phase(&mut passed, "update", phase_update(env)).await?;
    run_phase(&mut passed, "refusal-and-recovery", phase_refusal(env)).await?;
    run_phase(&mut passed, "cross-namespace", phase_cross_namespace(env)).await?;
    run_phase(&mut passed, "deletion", phase_deletion(env)).await?;
    run_phase(&mut passed, "addresses", addresses::phase_addresses(env)).await?;
    match restart::command() {
        Some(command) => run_phase(&mut passed, "api-server-restart", restart::phase_restart(env, health, &command)).await?,
        None => println!("{}", restart::skipped()),
    }
    Ok(passed)
}

async fn run_phase(passed: &mut usize, name: &str, phase: impl Future<Output = E2e>) -> E2e {
    println!("e2e: {name} ...");
    let start = Instant::now();
    phase.await.map_err(|error| format!("phase {name} failed: {error}"))?;
    println!("e2e: {name} passed ({:.1}s)", start.elapsed().as_secs_f64());
    *passed += 1;
    Ok(())
}

/// Phase 1: The web server example: every child, owned and labelled; status Creating.
async fn phase_create(env: &Env) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    create_claim(env, ns, DATA_PVC, "20Gi", None, None).await?;
    mark_bound(env, ns, DATA_PVC).await?;
    env.apply_yaml(&kinds.wukong, &env.example(WEB_SERVER_YAML)?).await?;
    println!("e2e:   applied Wukong {WEB}");

    let children =
        [(&kinds.nad, WEB_NAD), (&kinds.secret, WEB_SECRET), (&kinds.pvc, WEB_CACHE), (&kinds.dv, WEB_SYSTEM), (&kinds.vm, WEB_VM)];
    let found = wait_for_objects(env, ns, &children, "the children of Wukong web-server-01").await?;
    let wukong = env.get_required(&kinds.wukong, ns, WEB).await?;
    for ((kind, _), object) in children.iter().zip(&found) {
        check_owned(object, &kind.kind, &wukong)?;
    }
    let vm = env.get_required(&kinds.vm, ns, WEB_VM).await?;
    ensure!(
        vm.data.pointer("/spec/runStrategy") == Some(&json!("Always")),
        "VirtualMachine {WEB_VM} should have runStrategy Always, has {:?}",
        vm.data.pointer("/spec/runStrategy")
    );
    ensure!(cores(&vm) == Some(4), "VirtualMachine {WEB_VM} should have 4 cores, has {:?}", cores(&vm));

    wait_for_status(env, ns, WEB, "phase Creating, current observedGeneration, Valid and NetworksConfigured True", |object, status| {
        status.phase == Some(Phase::Creating)
            && is_current(object, status)
            && has_condition(status, "Valid", "True")
            && has_condition(status, "NetworksConfigured", "True")
    })
    .await?;
    check_untouched_claim(env, ns, DATA_PVC).await
}

fn cores(vm: &DynamicObject) -> Option<i64> {
    vm.data.pointer("/spec/template/spec/domain/cpu/cores").and_then(Value::as_i64)
}

/// Phase 2: Plays KubeVirt (the VMI from Scheduling to Running) and CDI (import done,
/// claims bound).
async fn phase_kubevirt_and_cdi(env: &Env) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    let vm = env.get_required(&kinds.vm, ns, WEB_VM).await?;
    let vm_uid = vm.metadata.uid.clone().context(format!("VirtualMachine {WEB_VM} has no uid"))?;
    let template_spec =
        vm.data.pointer("/spec/template/spec").cloned().context(format!("VirtualMachine {WEB_VM} has no spec.template.spec"))?;
    let template_labels = vm.data.pointer("/spec/template/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    let interfaces =
        vm.data.pointer("/spec/template/spec/domain/devices/interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let mac = interfaces
        .iter()
        .find(|interface| interface.get("name") == Some(&json!("mgmt")))
        .and_then(|interface| interface.get("macAddress"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| wukong::naming::derived_mac(ns, WEB, "mgmt"));

    let vmi = json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": WEB_VM,
            "namespace": ns,
            "labels": template_labels,
            "ownerReferences": [{
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": WEB_VM, "uid": vm_uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template_spec,
        // The VMI CRD has no status subresource: the status is written with the object.
        "status": {"phase": "Scheduling"},
    });
    env.apply_yaml(&kinds.vmi, &vmi).await?;
    println!("e2e:   kubevirt: VirtualMachineInstance {WEB_VM} Scheduling");
    wait_for_status(env, ns, WEB, "phase Creating while the VMI is Scheduling", |_, status| {
        status.phase == Some(Phase::Creating)
            && condition(status, "Ready").is_some_and(|ready| ready.status == "False" && ready.message.contains("Scheduling"))
    })
    .await?;

    let running = json!({"status": {
        "phase": "Running",
        "nodeName": NODE,
        "conditions": [{"type": "Ready", "status": "True"}],
        "interfaces": [{"name": "mgmt", "interfaceName": "eth0", "ipAddress": MGMT_ADDRESS, "ipAddresses": [MGMT_ADDRESS], "mac": mac}],
    }});
    env.api(&kinds.vmi, ns)
        .patch(WEB_VM, &merge_params(), &Patch::Merge(&running))
        .await
        .context(format!("failed to set the status of VirtualMachineInstance {WEB_VM}"))?;
    println!("e2e:   kubevirt: VirtualMachineInstance {WEB_VM} Running on {NODE}");
    let (_, status) = wait_for_status(env, ns, WEB, "phase Running, Ready True, nodeName and ipAddress reported", |_, status| {
        status.phase == Some(Phase::Running)
            && has_condition(status, "Ready", "True")
            && status.node_name.as_deref() == Some(NODE)
            && status.ip_address.as_deref() == Some(MGMT_ADDRESS)
    })
    .await?;
    let network = status
        .networks
        .iter()
        .find(|network| network.name == "mgmt")
        .context(format!("status.networks has no mgmt entry: {:?}", status.networks))?;
    ensure!(
        network.ready && network.mac.as_deref() == Some(mac.as_str()) && network.ip_addresses == [MGMT_ADDRESS],
        "status.networks[mgmt] should be ready with mac {mac} and address {MGMT_ADDRESS}: {network:?}"
    );

    // CDI: the import finished, and the claim it made (named after the DataVolume, controlled by it) is bound.
    let dv = env.get_required(&kinds.dv, ns, WEB_SYSTEM).await?;
    let dv_uid = dv.metadata.uid.clone().context(format!("DataVolume {WEB_SYSTEM} has no uid"))?;
    let size = match dv.data.pointer("/spec/storage/resources/requests/storage") {
        Some(Value::String(size)) => size.clone(),
        Some(other) => other.to_string(),
        None => "80Gi".to_string(),
    };
    let class = dv.data.pointer("/spec/storage/storageClassName").and_then(Value::as_str).map(str::to_string);
    env.api(&kinds.dv, ns)
        .patch_status(WEB_SYSTEM, &merge_params(), &Patch::Merge(&json!({"status": {"phase": "Succeeded", "progress": "100.0%"}})))
        .await
        .context(format!("failed to set the status of DataVolume {WEB_SYSTEM}"))?;
    println!("e2e:   cdi: DataVolume {WEB_SYSTEM} Succeeded");
    let owner = json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": WEB_SYSTEM, "uid": dv_uid,
        "controller": true, "blockOwnerDeletion": true,
    });
    create_claim(env, ns, WEB_SYSTEM, &size, class.as_deref(), Some(owner)).await?;
    mark_bound(env, ns, WEB_SYSTEM).await?;
    mark_bound(env, ns, WEB_CACHE).await?;
    wait_for_status(env, ns, WEB, "VolumesBound True, the system volume Succeeded at 100.0%", |_, status| {
        has_condition(status, "VolumesBound", "True")
            && status.volumes.iter().any(|volume| {
                volume.name == "system"
                    && volume.bound
                    && volume.phase.as_deref() == Some("Succeeded")
                    && volume.progress.as_deref() == Some("100.0%")
            })
    })
    .await?;
    Ok(())
}

/// Phase 3: Someone else deletes the NAD and edits the VM: both are put back.
async fn phase_drift(env: &Env) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    let before = env.get_required(&kinds.nad, ns, WEB_NAD).await?;
    let old_uid = before.metadata.uid.clone().unwrap_or_default();
    env.delete(&kinds.nad, ns, WEB_NAD).await?;
    println!("e2e:   deleted NetworkAttachmentDefinition {WEB_NAD}");
    let recreated = wait_for(&format!("NetworkAttachmentDefinition {WEB_NAD} to be recreated"), TIMEOUT, async || {
        match env.get(&kinds.nad, ns, WEB_NAD).await? {
            Some(object) if object.metadata.uid.as_deref() != Some(old_uid.as_str()) && !is_terminating(&object) => Ok(Check::Done(object)),
            Some(_) => Ok(Check::Waiting("the deleted object is still there".to_string())),
            None => Ok(Check::Waiting("absent".to_string())),
        }
    })
    .await?;
    let wukong = env.get_required(&kinds.wukong, ns, WEB).await?;
    check_owned(&recreated, "NetworkAttachmentDefinition", &wukong)?;

    let drift = json!({"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 1}}}}}});
    let params = PatchParams { field_manager: Some(DRIFT_MANAGER.to_string()), ..PatchParams::default() };
    let patched = env
        .api(&kinds.vm, ns)
        .patch(WEB_VM, &params, &Patch::Merge(&drift))
        .await
        .context(format!("failed to edit VirtualMachine {WEB_VM}"))?;
    ensure!(cores(&patched) == Some(1), "the edit of VirtualMachine {WEB_VM} did not take: cores {:?}", cores(&patched));
    println!("e2e:   set VirtualMachine {WEB_VM} cores to 1 as {DRIFT_MANAGER}");
    wait_for(&format!("VirtualMachine {WEB_VM} cores to be put back to 4"), TIMEOUT, async || {
        let vm = env.get_required(&kinds.vm, ns, WEB_VM).await?;
        match cores(&vm) {
            Some(4) => Ok(Check::Done(())),
            other => Ok(Check::Waiting(format!("cores {other:?}"))),
        }
    })
    .await
}

/// Phase 4: Spec changes reach the children: more cores, a disk removed.
async fn phase_update(env: &Env) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    let mut web = env.example(WEB_SERVER_YAML)?;
    web.get_mut("spec").and_then(Value::as_object_mut).context("the web server example has no spec")?.insert("cpu".into(), json!(8));
    let applied = env.apply_yaml(&kinds.wukong, &web).await?;
    let generation = applied.metadata.generation;
    println!("e2e:   set spec.cpu to 8 (generation {generation:?})");
    wait_for(&format!("VirtualMachine {WEB_VM} to have 8 cores"), TIMEOUT, async || {
        let vm = env.get_required(&kinds.vm, ns, WEB_VM).await?;
        match cores(&vm) {
            Some(8) => Ok(Check::Done(())),
            other => Ok(Check::Waiting(format!("cores {other:?}"))),
        }
    })
    .await?;
    wait_for_status(env, ns, WEB, &format!("observedGeneration {generation:?}"), |object, status| {
        object.metadata.generation == generation && is_current(object, status)
    })
    .await?;

    let disks = web.pointer_mut("/spec/disks").and_then(Value::as_array_mut).context("the web server example has no spec.disks")?;
    disks.retain(|disk| disk.get("name") != Some(&json!("cache")));
    let applied = env.apply_yaml(&kinds.wukong, &web).await?;
    let generation = applied.metadata.generation;
    println!("e2e:   removed the cache disk (generation {generation:?})");
    if let Some(claim) = wait_gone_or_terminating(env, &kinds.pvc, ns, WEB_CACHE).await? {
        // kubernetes.io/pvc-protection: the storage layer (here: us) lets it go.
        println!("e2e:   storage: releasing the finalizers {:?} of PersistentVolumeClaim {WEB_CACHE}", claim.metadata.finalizers);
        env.strip_finalizers(&kinds.pvc, ns, WEB_CACHE).await?;
        wait_gone(env, &kinds.pvc, ns, WEB_CACHE).await?;
    }
    wait_for(&format!("VirtualMachine {WEB_VM} to drop the cache volume"), TIMEOUT, async || {
        let vm = env.get_required(&kinds.vm, ns, WEB_VM).await?;
        let volumes = vm.data.pointer("/spec/template/spec/volumes").and_then(Value::as_array).cloned().unwrap_or_default();
        let names: Vec<String> =
            volumes.iter().filter_map(|volume| volume.get("name").and_then(Value::as_str)).map(str::to_string).collect();
        if names.iter().any(|name| name == "cache") { Ok(Check::Waiting(format!("volumes {names:?}"))) } else { Ok(Check::Done(())) }
    })
    .await?;
    wait_for_status(env, ns, WEB, &format!("observedGeneration {generation:?} without the cache volume"), |object, status| {
        object.metadata.generation == generation
            && is_current(object, status)
            && !status.volumes.iter().any(|volume| volume.name == "cache")
    })
    .await?;
    Ok(())
}

/// The name of the first existing claim an example's disks reference.
fn existing_claim_name(example: &Value) -> E2e<String> {
    let disks = example.pointer("/spec/disks").and_then(Value::as_array).context("the example has no spec.disks")?;
    disks
        .iter()
        .find_map(|disk| disk.pointer("/existingPVC/name").and_then(Value::as_str))
        .map(str::to_string)
        .context("the example references no existing claim")
}

/// Phase 5: A Wukong whose claim is missing is refused, and recovers when it appears.
async fn phase_refusal(env: &Env) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    let example = env.example(VM_FROM_PVC_YAML)?;
    let name = example.pointer("/metadata/name").and_then(Value::as_str).context("the vm-from-pvc example has no name")?.to_string();
    let claim = existing_claim_name(&example)?;
    let vm_name = format!("{name}-vm");
    env.apply_yaml(&kinds.wukong, &example).await?;
    println!("e2e:   applied Wukong {name} without its claim {claim}");
    wait_for_status(env, ns, &name, &format!("phase Error, Valid False ClaimNotFound naming {claim}"), |_, status| {
        status.phase == Some(Phase::Error)
            && condition(status, "Valid")
                .is_some_and(|valid| valid.status == "False" && valid.reason == "ClaimNotFound" && valid.message.contains(&claim))
    })
    .await?;
    ensure!(env.get(&kinds.vm, ns, &vm_name).await?.is_none(), "a refused Wukong must have no VirtualMachine, but {vm_name} exists");

    create_claim(env, ns, &claim, "20Gi", None, None).await?;
    mark_bound(env, ns, &claim).await?;
    wait_for_objects(env, ns, &[(&kinds.vm, vm_name.as_str())], &format!("VirtualMachine {vm_name} once the claim exists")).await?;
    wait_for_status(env, ns, &name, "Valid True", |object, status| is_current(object, status) && has_condition(status, "Valid", "True"))
        .await?;
    Ok(())
}

/// Phase 6: A claim in another namespace: refused until granted, then cloned.
async fn phase_cross_namespace(env: &Env) -> E2e {
    let (ns, other, kinds) = (env.namespace.as_str(), env.other.as_str(), &env.kinds);
    let example = env.example(RESTORED_VM_YAML)?;
    let name = example.pointer("/metadata/name").and_then(Value::as_str).context("the restored-vm example has no name")?.to_string();
    let claim = existing_claim_name(&example)?;
    let clone = format!("{name}-system");
    create_claim(env, other, &claim, "20Gi", None, None).await?;
    mark_bound(env, other, &claim).await?;
    env.apply_yaml(&kinds.wukong, &example).await?;
    println!("e2e:   applied Wukong {name} referencing {other}/{claim}, not granted");
    wait_for_status(env, ns, &name, "Valid False CrossNamespaceNotGranted", |_, status| {
        status.phase == Some(Phase::Error)
            && condition(status, "Valid").is_some_and(|valid| {
                valid.status == "False" && valid.reason == "CrossNamespaceNotGranted" && valid.message.contains(&claim)
            })
    })
    .await?;
    ensure!(env.get(&kinds.dv, ns, &clone).await?.is_none(), "an ungranted claim must not be cloned, but DataVolume {clone} exists");

    let grant = json!({"metadata": {"annotations": {CLONE_GRANT_ANNOTATION: ns}}});
    env.api(&kinds.pvc, other)
        .patch(&claim, &merge_params(), &Patch::Merge(&grant))
        .await
        .context(format!("failed to annotate {other}/{claim}"))?;
    println!("e2e:   granted {other}/{claim} to namespace {ns}");
    let data_volume = wait_for(&format!("DataVolume {clone} cloning {other}/{claim}"), TIMEOUT, async || {
        let Some(object) = env.get(&kinds.dv, ns, &clone).await? else {
            return Ok(Check::Waiting("absent".to_string()));
        };
        let source = object.data.pointer("/spec/source/pvc").cloned();
        if source.as_ref().is_some_and(|source| source.get("name") == Some(&json!(claim)) && source.get("namespace") == Some(&json!(other)))
        {
            Ok(Check::Done(object))
        } else {
            Ok(Check::Waiting(format!("spec.source {:?}", object.data.pointer("/spec/source"))))
        }
    })
    .await?;
    let wukong = env.get_required(&kinds.wukong, ns, &name).await?;
    check_owned(&data_volume, "DataVolume", &wukong)?;
    wait_for_status(env, ns, &name, "Valid True", |object, status| is_current(object, status) && has_condition(status, "Valid", "True"))
        .await?;
    Ok(())
}

/// Deletes a Wukong and waits until it is gone, playing KubeVirt on the way:
/// once the VM is gone (or going), its instance is removed.
async fn delete_wukong(env: &Env, name: &str) -> E2e {
    let (ns, kinds) = (env.namespace.as_str(), &env.kinds);
    let vm_name = format!("{name}-vm");
    env.delete(&kinds.wukong, ns, name).await?;
    println!("e2e:   deleted Wukong {name}");
    wait_for(&format!("Wukong {name} to be gone (cleanup done, finalizer removed)"), TIMEOUT, async || {
        let vm = env.get(&kinds.vm, ns, &vm_name).await?;
        let vmi = env.get(&kinds.vmi, ns, &vm_name).await?;
        if vm.as_ref().is_none_or(is_terminating) && vmi.as_ref().is_some_and(|vmi| !is_terminating(vmi)) {
            env.delete(&kinds.vmi, ns, &vm_name).await?;
            println!("e2e:   kubevirt: VirtualMachine {vm_name} stopped, deleted its VirtualMachineInstance");
        }
        match env.get(&kinds.wukong, ns, name).await? {
            None => Ok(Check::Done(())),
            Some(object) => Ok(Check::Waiting(format!(
                "Wukong still there (finalizers {:?}, {}); VirtualMachine {}, VirtualMachineInstance {}",
                object.metadata.finalizers,
                describe(&object),
                presence(vm.as_ref()),
                presence(vmi.as_ref()),
            ))),
        }
    })
    .await
}

fn presence(object: Option<&DynamicObject>) -> &'static str {
    match object {
        None => "absent",
        Some(object) if is_terminating(object) => "terminating",
        Some(_) => "present",
    }
}

/// Phase 7: Deleting the Wukongs removes what the operator made, and only that.
async fn phase_deletion(env: &Env) -> E2e {
    let (ns, other, kinds) = (env.namespace.as_str(), env.other.as_str(), &env.kinds);

    delete_wukong(env, WEB).await?;
    for (kind, name) in
        [(&kinds.vm, WEB_VM), (&kinds.nad, WEB_NAD), (&kinds.secret, WEB_SECRET), (&kinds.dv, WEB_SYSTEM), (&kinds.pvc, WEB_CACHE)]
    {
        ensure_deleted(env, kind, ns, name).await?;
    }
    // The garbage collector's part (absent on a bare API server): the claim CDI made goes with its DataVolume.
    env.delete(&kinds.pvc, ns, WEB_SYSTEM).await?;
    env.strip_finalizers(&kinds.pvc, ns, WEB_SYSTEM).await?;
    check_untouched_claim(env, ns, DATA_PVC).await?;
    println!("e2e:   web-server-01: children deleted, {DATA_PVC} untouched");

    let vm_from_pvc = env.example(VM_FROM_PVC_YAML)?;
    let name = vm_from_pvc.pointer("/metadata/name").and_then(Value::as_str).context("the vm-from-pvc example has no name")?.to_string();
    let claim = existing_claim_name(&vm_from_pvc)?;
    delete_wukong(env, &name).await?;
    ensure_deleted(env, &kinds.vm, ns, &format!("{name}-vm")).await?;
    check_untouched_claim(env, ns, &claim).await?;
    println!("e2e:   {name}: VM deleted, {claim} untouched");

    let restored = env.example(RESTORED_VM_YAML)?;
    let name = restored.pointer("/metadata/name").and_then(Value::as_str).context("the restored-vm example has no name")?.to_string();
    let claim = existing_claim_name(&restored)?;
    delete_wukong(env, &name).await?;
    ensure_deleted(env, &kinds.vm, ns, &format!("{name}-vm")).await?;
    ensure_deleted(env, &kinds.dv, ns, &format!("{name}-system")).await?;
    // The data disk says deletionPolicy: Retain: its claim is released, not deleted.
    let retained = format!("{name}-data");
    check_untouched_claim(env, ns, &retained).await.map_err(|error| format!("a Retain volume must be released: {error}"))?;
    check_untouched_claim(env, other, &claim).await?;
    println!("e2e:   {name}: VM and clone deleted, {retained} retained, {other}/{claim} untouched");
    Ok(())
}

/// Removes what the run made, whatever happened: finalizers the stopped
/// controller can no longer remove, the namespaces, and the PersistentVolumes.
/// Failures are reported, not raised. (A bare API server has no namespace
/// controller: its namespaces stay Terminating.)
async fn cleanup(env: &Env) {
    println!("e2e: cleanup ...");
    addresses::cleanup(env).await;
    for namespace in [&env.namespace, &env.other] {
        match env.api(&env.kinds.wukong, namespace).list(&ListParams::default()).await {
            Ok(list) => {
                for wukong in list.items {
                    if let Err(error) = env.strip_finalizers(&env.kinds.wukong, namespace, &wukong.name_any()).await {
                        println!("e2e:   cleanup: {error}");
                    }
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => println!("e2e:   cleanup: failed to list the Wukongs in {namespace}: {error}"),
        }
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for namespace in [&env.namespace, &env.other] {
        match namespaces.delete(namespace, &DeleteParams::default()).await {
            Ok(_) => println!("e2e:   cleanup: deleted namespace {namespace}"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => println!("e2e:   cleanup: failed to delete namespace {namespace}: {error}"),
        }
    }
    let volumes: Api<PersistentVolume> = Api::all(env.client.clone());
    match volumes.list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", env.run))).await {
        Ok(list) => {
            for volume in list.items {
                let name = volume.name_any();
                // The pv-protection finalizer has no controller on a bare API server.
                let deleted = ignore_not_found(volumes.delete(&name, &DeleteParams::default()).await);
                let release = json!({"metadata": {"finalizers": null}});
                let released = ignore_not_found(volumes.patch(&name, &merge_params(), &Patch::Merge(&release)).await);
                match deleted.and(released) {
                    Ok(()) => println!("e2e:   cleanup: deleted PersistentVolume {name}"),
                    Err(error) => println!("e2e:   cleanup: failed to delete PersistentVolume {name}: {error}"),
                }
            }
        }
        Err(error) => println!("e2e:   cleanup: failed to list the PersistentVolumes of this run: {error}"),
    }
}

/// A result whose "not found" counts as done.
fn ignore_not_found<T>(result: kube::Result<T>) -> kube::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}
