//! Plays KubeVirt's and CDI's part on a cluster without them.
//!
//! In: a client and a namespace. Out: a task that, for every VirtualMachine,
//! creates its running VirtualMachineInstance once (and deletes it with the
//! VM); for every DataVolume, once, creates the claim CDI would and marks the
//! import Succeeded; and marks every claim Bound. Each is done once per
//! object, not again on its later watch events, so the stand-in's writes the
//! bench counts are no more than KubeVirt and CDI would make (they write more:
//! VM statuses, import progress).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use tracing::debug;
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::{VirtualMachineInstance, VirtualMachineInstanceSpec, VirtualMachineInstanceStatus};

/// Runs the fake until the task is aborted.
pub async fn run(client: Client, namespace: String) {
    let machines = tokio::spawn(play_kubevirt(client.clone(), namespace.clone()));
    let volumes = tokio::spawn(play_cdi(client.clone(), namespace.clone()));
    let claims = tokio::spawn(play_storage(client, namespace));
    let _ = tokio::join!(machines, volumes, claims);
}

fn owner<K: Resource<DynamicType = ()>>(object: &K) -> Option<OwnerReference> {
    object.controller_owner_ref(&())
}

async fn play_kubevirt(client: Client, namespace: String) {
    let machines: Api<VirtualMachine> = Api::namespaced(client.clone(), &namespace);
    let instances: Api<VirtualMachineInstance> = Api::namespaced(client, &namespace);
    let mut events = watcher::watcher(machines, watcher::Config::default()).boxed();
    // VMs whose instance exists.
    let mut started = BTreeSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(vm) | Event::InitApply(vm)) if vm.metadata.deletion_timestamp.is_none() => {
                if vm.spec.run_strategy.as_deref() == Some("Halted") || started.contains(&vm.name_any()) {
                    continue;
                }
                match instances.create(&PostParams::default(), &instance_for(&vm)).await {
                    Ok(_) => {
                        started.insert(vm.name_any());
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        started.insert(vm.name_any());
                    }
                    Err(error) => debug!(%error, vm = %vm.name_any(), "instance not created"),
                }
            }
            Ok(Event::Apply(vm) | Event::Delete(vm)) if started.contains(&vm.name_any()) => {
                started.remove(&vm.name_any());
                let _ = instances.delete(&vm.name_any(), &DeleteParams::background()).await;
            }
            _ => {}
        }
    }
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
    let mut events = watcher::watcher(volumes.clone(), watcher::Config::default()).boxed();
    // DataVolumes whose import this task marked Succeeded.
    let mut imported = BTreeSet::new();
    while let Some(event) = events.next().await {
        let Ok(Event::Apply(volume) | Event::InitApply(volume)) = event else { continue };
        if volume.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Succeeded")
            || volume.metadata.deletion_timestamp.is_some()
            || imported.contains(&volume.name_any())
        {
            continue;
        }
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
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(volume.name_any()),
                namespace: Some(namespace.clone()),
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
        };
        let _ = claims.create(&PostParams::default(), &claim).await;
        let status = serde_json::json!({"status": {"phase": "Succeeded", "progress": "100.0%", "claimName": volume.name_any()}});
        match volumes.patch_status(&volume.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await {
            Ok(_) => {
                imported.insert(volume.name_any());
            }
            Err(error) => debug!(%error, "data volume status not set"),
        }
    }
}

async fn play_storage(client: Client, namespace: String) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, &namespace);
    let mut events = watcher::watcher(claims.clone(), watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let Ok(Event::Apply(claim) | Event::InitApply(claim)) = event else { continue };
        if claim.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Bound") || claim.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let capacity = claim
            .spec
            .as_ref()
            .and_then(|spec| spec.resources.as_ref())
            .and_then(|resources| resources.requests.clone())
            .unwrap_or_default();
        let status = serde_json::json!({"status": {"phase": "Bound", "capacity": capacity, "accessModes": ["ReadWriteOnce"]}});
        if let Err(error) = claims.patch_status(&claim.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await {
            debug!(%error, "claim status not set");
        }
    }
}
