//! What every reconciliation shares: the client, the watch caches, the event
//! recorder, the clock and the per-object failure counts used for backoff.
//!
//! In: a client and the readers of the reflectors the controller runs. Out: the
//! [`Context`] handed to each reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

/// Read-only views of the watch caches. Reconcile reads the cluster through
/// these, never with list calls.
#[derive(Clone)]
pub struct Stores {
    /// Every Wukong (as raw objects: one that does not parse must not stall the others).
    pub wukongs: Store<DynamicObject>,
    /// Every VirtualMachine (ours, and others that may use an existing claim).
    pub virtual_machines: Store<VirtualMachine>,
    /// Every VirtualMachineInstance.
    pub instances: Store<VirtualMachineInstance>,
    /// Every DataVolume.
    pub data_volumes: Store<DataVolume>,
    /// Every PersistentVolumeClaim (ours and the existing ones Wukongs reference).
    pub claims: Store<PersistentVolumeClaim>,
    /// Every NetworkAttachmentDefinition.
    pub attachments: Store<NetworkAttachmentDefinition>,
    /// The Secrets this operator manages (label-selected).
    pub secrets: Store<Secret>,
    /// Every StorageClass (for the volume binding mode).
    pub storage_classes: Store<StorageClass>,
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
    /// Consecutive failures per Wukong (`namespace/name`), for exponential backoff.
    pub failures: Arc<Mutex<HashMap<String, u32>>>,
}

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
