//! Plays KubeVirt's and CDI's part on a cluster without them.
//!
//! In: a client and a namespace. Out: a task that, for every VirtualMachine,
//! creates its running VirtualMachineInstance once (and deletes it with the
//! VM); for every DataVolume, once, creates the claim CDI would and marks the
//! import Succeeded; and makes a PersistentVolume for every claim (deleted
//! with the claim) and binds the claim to it once the volume is seen, as a
//! provisioner and kube-controller-manager's volume binder would. Each is done once per
//! object, not again on its later watch events, so the stand-in's writes the
//! bench counts are no more than KubeVirt and CDI would make (they write more:
//! VM statuses, import progress). Like KubeVirt's and CDI's controllers, which
//! run several workers, each part handles up to [`WORKERS`] objects at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use tracing::debug;
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::{VirtualMachineInstance, VirtualMachineInstanceSpec, VirtualMachineInstanceStatus};

/// Objects each part handles at once (virt-controller and CDI's controllers
/// run several workers; a single sequential loop would pace the whole bench).
pub const WORKERS: usize = 8;

/// Runs the fake until the task is aborted (which stops every part: they are
/// futures of this task, not tasks of their own).
pub async fn run(client: Client, namespace: String) {
    tokio::join!(
        play_kubevirt(client.clone(), namespace.clone()),
        play_cdi(client.clone(), namespace.clone()),
        play_storage(client, namespace)
    );
}

/// Names of the objects a part has handled (or is handling), shared by its workers.
#[derive(Clone, Default)]
struct Handled(Arc<Mutex<BTreeSet<String>>>);

impl Handled {
    /// Claims `name` for this worker; false when another has (or had) it.
    fn claim(&self, name: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string())
    }

    /// Forgets `name` (its work failed, or its object is gone); true when it was handled.
    fn forget(&self, name: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(name)
    }
}

fn owner<K: Resource<DynamicType = ()>>(object: &K) -> Option<OwnerReference> {
    object.controller_owner_ref(&())
}

async fn play_kubevirt(client: Client, namespace: String) {
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), &namespace);
    let instances: Api<VirtualMachineInstance> = Api::namespaced(client, &namespace);
    // VMs whose instance exists (or is being created).
    let started = Handled::default();
    watcher::watcher(machines, watcher::Config::default())
        .for_each_concurrent(WORKERS, |event| {
            let (instances, started) = (instances.clone(), started.clone());
            async move {
                match event {
                    Ok(Event::Apply(vm) | Event::InitApply(vm)) if vm.metadata.deletion_timestamp.is_none() => {
                        if vm.spec.run_strategy.as_deref() == Some("Halted") || !started.claim(&vm.name_any()) {
                            return;
                        }
                        match instances.create(&PostParams::default(), &instance_for(&vm)).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(status)) if status.code == 409 => {}
                            Err(error) => {
                                started.forget(&vm.name_any());
                                debug!(%error, vm = %vm.name_any(), "instance not created");
                            }
                        }
                    }
                    Ok(Event::Apply(vm) | Event::Delete(vm)) if started.forget(&vm.name_any()) => {
                        let _ = instances.delete(&vm.name_any(), &DeleteParams::background()).await;
                    }
                    _ => {}
                }
            }
        })
        .await;
}

/// The running instance KubeVirt would make for a VM.
fn instance_for(vm: &VirtualMachine) -> VirtualMachineInstance {
    let template = &vm.spec.template;
    let labels = template
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.get("labels"))
        .and_then(|labels| serde_json::from_value(labels.clone()).ok());
    let spec: VirtualMachineInstanceSpec = template
        .spec
        .as_ref()
        .and_then(|spec| serde_json::to_value(spec).ok())
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    let status = serde_json::json!({
        "phase": "Running",
        "nodeName": "bench-node",
        "conditions": [{"type": "Ready", "status": "True"}],
    });
    VirtualMachineInstance {
        metadata: ObjectMeta {
            name: vm.metadata.name.clone(),
            namespace: vm.metadata.namespace.clone(),
            labels,
            owner_references: owner(vm).map(|reference| vec![reference]),
            ..ObjectMeta::default()
        },
        spec,
        status: serde_json::from_value::<VirtualMachineInstanceStatus>(status).ok(),
    }
}

async fn play_cdi(client: Client, namespace: String) {
    let volumes: Api<DataVolume> = Api::namespaced(client.clone(), &namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, &namespace);
    // DataVolumes whose import this part marked (or is marking) Succeeded.
    let imported = Handled::default();
    watcher::watcher(volumes.clone(), watcher::Config::default())
        .for_each_concurrent(WORKERS, |event| {
            let (volumes, claims, imported, namespace) = (volumes.clone(), claims.clone(), imported.clone(), namespace.clone());
            async move {
                let Ok(Event::Apply(volume) | Event::InitApply(volume)) = event else { return };
                if volume.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Succeeded")
                    || volume.metadata.deletion_timestamp.is_some()
                    || !imported.claim(&volume.name_any())
                {
                    return;
                }
                let _ = claims.create(&PostParams::default(), &import_claim(&volume, &namespace)).await;
                let status = serde_json::json!({"status": {"phase": "Succeeded", "progress": "100.0%", "claimName": volume.name_any()}});
                if let Err(error) = volumes.patch_status(&volume.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await {
                    imported.forget(&volume.name_any());
                    debug!(%error, "data volume status not set");
                }
            }
        })
        .await;
}

/// The claim CDI makes for a DataVolume's import, owned by it.
fn import_claim(volume: &DataVolume, namespace: &str) -> PersistentVolumeClaim {
    let size = volume
        .spec
        .storage
        .as_ref()
        .and_then(|storage| storage.resources.as_ref())
        .and_then(|resources| resources.requests.as_ref())
        .and_then(|requests| requests.get("storage"))
        .map(|size| match size {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(text) => text.clone(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(number) => number.to_string(),
        })
        .unwrap_or_else(|| "1Gi".to_string());
    let owner_reference = OwnerReference {
        api_version: "cdi.kubevirt.io/v1beta1".to_string(),
        kind: "DataVolume".to_string(),
        name: volume.name_any(),
        uid: volume.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(volume.name_any()),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![owner_reference]),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

async fn play_storage(client: Client, namespace: String) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let volumes: Api<PersistentVolume> = Api::all(client);
    // Claims (by UID) this part made a volume for; volumes it bound a claim to.
    let (provisioned, bound) = (Handled::default(), Handled::default());
    let provision = watcher::watcher(claims.clone(), watcher::Config::default()).for_each_concurrent(WORKERS, |event| {
        let (volumes, provisioned) = (volumes.clone(), provisioned.clone());
        async move {
            match event {
                Ok(Event::Apply(claim) | Event::InitApply(claim)) => {
                    let uid = claim.metadata.uid.clone().unwrap_or_default();
                    let pending = claim.spec.as_ref().and_then(|spec| spec.volume_name.as_deref()).is_none();
                    if !pending || claim.metadata.deletion_timestamp.is_some() || !provisioned.claim(&uid) {
                        return;
                    }
                    match volumes.create(&PostParams::default(), &volume_for(&claim)).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.code == 409 => {}
                        Err(error) => {
                            provisioned.forget(&uid);
                            debug!(%error, claim = %claim.name_any(), "volume not provisioned");
                        }
                    }
                }
                Ok(Event::Delete(claim)) => {
                    // The provisioner's part: the claim's volume goes with it.
                    let uid = claim.metadata.uid.clone().unwrap_or_default();
                    if provisioned.forget(&uid) {
                        let _ = volumes.delete(&volume_name(&uid), &DeleteParams::background()).await;
                    }
                }
                _ => {}
            }
        }
    });
    // A claim is bound once its volume is seen (by this watch, and so very
    // likely by kube-controller-manager's volume binder too: were the binder
    // to see a claim bound to a volume it does not know yet, it would mark the
    // claim Lost, and the claim would flap).
    let selector = watcher::Config::default().labels(&format!("{VOLUME_NAMESPACE_LABEL}={namespace}"));
    let bind = watcher::watcher(volumes.clone(), selector).for_each_concurrent(WORKERS, |event| {
        let (claims, volumes, bound) = (claims.clone(), volumes.clone(), bound.clone());
        async move {
            let Ok(Event::Apply(volume) | Event::InitApply(volume)) = event else { return };
            let Some(claim) = volume.spec.as_ref().and_then(|spec| spec.claim_ref.clone()) else { return };
            if volume.metadata.deletion_timestamp.is_some() || !bound.claim(&volume.name_any()) {
                return;
            }
            if let Err(error) = bind_claim(&claims, &volumes, &volume, &claim).await {
                bound.forget(&volume.name_any());
                debug!(%error, volume = %volume.name_any(), "claim not bound");
            }
        }
    });
    tokio::join!(provision, bind);
}

/// The label that marks the volumes provisioned for the claims of a run's namespace.
const VOLUME_NAMESPACE_LABEL: &str = "wukong-bench/namespace";

/// The name of the volume provisioned for the claim with this UID.
fn volume_name(uid: &str) -> String {
    format!("bench-{uid}")
}

/// The PersistentVolume a provisioner makes for `claim`, reserved for it.
fn volume_for(claim: &PersistentVolumeClaim) -> PersistentVolume {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    let labels = BTreeMap::from([(VOLUME_NAMESPACE_LABEL.to_string(), claim.metadata.namespace.clone().unwrap_or_default())]);
    PersistentVolume {
        metadata: ObjectMeta { name: Some(volume_name(&uid)), labels: Some(labels), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeSpec {
            capacity: spec.resources.as_ref().and_then(|resources| resources.requests.clone()),
            access_modes: spec.access_modes.clone(),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("PersistentVolumeClaim".to_string()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: Some(uid.clone()),
                ..ObjectReference::default()
            }),
            persistent_volume_reclaim_policy: Some("Retain".to_string()),
            storage_class_name: spec.storage_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            host_path: Some(HostPathVolumeSource { path: format!("/var/lib/wukong-bench/{uid}"), type_: None }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// Binds the claim `reference` names to `volume`, as kube-controller-manager's
/// volume binder would: the claim points at the volume, with the binder's
/// annotations, and its status is Bound.
async fn bind_claim(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    volume: &PersistentVolume,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    let name = reference.name.clone().unwrap_or_default();
    let spec = volume.spec.clone().unwrap_or_default();
    // The volume first: a binder that finds its volume already Bound has
    // nothing to write, so its (rate-limited) volume queue keeps up, and it
    // knows the volume by the time it looks at the claim (a binder that does
    // not marks the claim Lost, and the claim flaps).
    let phase = serde_json::json!({"status": {"phase": "Bound"}});
    volumes.patch_status(&volume.name_any(), &PatchParams::default(), &Patch::Merge(&phase)).await?;
    let binding = serde_json::json!({
        "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}},
        "spec": {"volumeName": volume.name_any()},
    });
    claims.patch(&name, &PatchParams::default(), &Patch::Merge(&binding)).await?;
    let status = serde_json::json!({"status": {"phase": "Bound", "capacity": spec.capacity, "accessModes": spec.access_modes}});
    claims.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}
