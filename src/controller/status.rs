//! Step 5 of a reconcile: the Wukong's status.
//!
//! In: the generation, the spec, what the cluster holds (children, VM, VMI,
//! claims), the failure of an earlier step, the previous status and the time.
//! Out: the new status — a pure function of those — and [`write`], which sends
//! it with server-side apply only when it differs from the previous one.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::Serialize;

use super::dereference::{Dereferenced, Observed, ReferencedClaim};
use crate::api::{Condition, NetworkStatus, Phase, RunStrategy, VolumeStatus, WukongSpec, WukongStatus};
use crate::build::meta::MANAGER;
use crate::build::naming::{derived_mac, vm_name};
use crate::build::network::{attachment_name, has_attachment};
use crate::build::storage::volume_name;
use crate::validate::run_strategy;

/// Condition types.
pub mod types {
    /// The VM runs and KubeVirt reports it ready.
    pub const READY: &str = "Ready";
    /// Every NetworkAttachmentDefinition exists.
    pub const NETWORKS_CONFIGURED: &str = "NetworksConfigured";
    /// Every claim is Bound (or waits for its first consumer).
    pub const VOLUMES_BOUND: &str = "VolumesBound";
    /// The spec is valid and its dependencies usable.
    pub const VALID: &str = "Valid";
    /// The last reconcile reached the cluster without an API error.
    pub const SYNCED: &str = "Synced";
    /// KubeVirt needs a restart of the VM to apply the last change.
    pub const RESTART_REQUIRED: &str = "RestartRequired";
}

/// Errors of the status step.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Writing the status failed.
    #[error("failed to write the status of Wukong \"{namespace}/{name}\": {source}")]
    Write {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// A failed step, as the status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase reason.
    pub reason: String,
    /// What failed, naming the field or object.
    pub message: String,
    /// Whether the failure is in the spec or its dependencies (phase Error,
    /// condition Valid=False) rather than a transient API error (Synced=False).
    pub invalid: bool,
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Namespace of the Wukong.
    pub namespace: &'a str,
    /// Name of the Wukong.
    pub name: &'a str,
    /// The spec (possibly invalid).
    pub spec: &'a WukongSpec,
    /// The children and the VM/VMI as they are now.
    pub observed: &'a Observed,
    /// Existing claims and storage class facts.
    pub dereferenced: &'a Dereferenced,
    /// The failed step, if any.
    pub failure: Option<&'a Failure>,
    /// The status as it was.
    pub previous: Option<&'a WukongStatus>,
    /// The current time (RFC 3339), for conditions that change.
    pub now: &'a str,
}

/// Computes the status.
pub fn compute(inputs: &Inputs<'_>) -> WukongStatus {
    let observed = inputs.observed;
    let instance_status = observed.instance.as_ref().and_then(|instance| instance.status.as_ref());
    let networks = network_statuses(inputs);
    let volumes = volume_statuses(inputs);
    let phase = phase(inputs);
    let mut conditions = vec![
        ready_condition(inputs, phase),
        networks_condition(&networks),
        volumes_condition(&volumes),
        valid_condition(inputs.failure),
        synced_condition(inputs.failure),
        restart_condition(observed),
    ];
    let previous = inputs.previous.map(|status| status.conditions.as_slice()).unwrap_or_default();
    for condition in &mut conditions {
        condition.observed_generation = inputs.generation;
        condition.last_transition_time = previous
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
            .map_or_else(|| inputs.now.to_string(), |old| old.last_transition_time.clone());
    }
    let ip_address = networks.iter().flat_map(|network| network.ip_addresses.first()).next().cloned().or_else(|| {
        instance_status
            .and_then(|status| status.interfaces.as_ref())
            .and_then(|interfaces| interfaces.iter().find_map(|nic| nic.ip_address.clone()))
    });
    WukongStatus {
        phase: Some(phase),
        observed_generation: inputs.generation,
        vm_name: observed.virtual_machine.as_ref().and(Some(vm_name(inputs.name))),
        node_name: instance_status.and_then(|status| status.node_name.clone()),
        ip_address,
        conditions,
        networks,
        volumes,
    }
}

/// The phase table of the design notes.
fn phase(inputs: &Inputs<'_>) -> Phase {
    if inputs.failure.is_some_and(|failure| failure.invalid) {
        return Phase::Error;
    }
    if inputs.observed.virtual_machine.is_none() {
        return Phase::Pending;
    }
    let instance_phase =
        inputs.observed.instance.as_ref().and_then(|instance| instance.status.as_ref()).and_then(|status| status.phase.as_deref());
    match instance_phase {
        Some("Running") => Phase::Running,
        Some("Failed" | "Unknown") => Phase::Error,
        Some("Succeeded") => Phase::Stopped,
        Some(_) => Phase::Creating,
        None if matches!(run_strategy(inputs.spec), RunStrategy::Halted | RunStrategy::Manual) => Phase::Stopped,
        None if inputs.observed.instance.is_some() => Phase::Creating,
        None => Phase::Creating,
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        ..Condition::default()
    }
}

fn ready_condition(inputs: &Inputs<'_>, phase: Phase) -> Condition {
    let vm = vm_name(inputs.name);
    let Some(instance) = &inputs.observed.instance else {
        return match (inputs.observed.virtual_machine.is_some(), phase) {
            (false, _) => condition(types::READY, false, "VMNotCreated", format!("VirtualMachine \"{vm}\" does not exist yet")),
            (true, Phase::Stopped) => condition(types::READY, false, "VMStopped", format!("VirtualMachine \"{vm}\" is stopped")),
            (true, _) => condition(types::READY, false, "VMIPending", format!("VirtualMachine \"{vm}\" has no running instance yet")),
        };
    };
    let status = instance.status.as_ref();
    let instance_phase = status.and_then(|status| status.phase.clone()).unwrap_or_else(|| "Pending".to_string());
    let ready = status
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|condition| condition.r#type == "Ready"))
        .is_some_and(|condition| condition.status == "True");
    match (instance_phase.as_str(), ready) {
        ("Running", true) => condition(types::READY, true, "VMIRunning", format!("VirtualMachineInstance \"{vm}\" is running and ready")),
        ("Running", false) => {
            condition(types::READY, false, "VMINotReady", format!("VirtualMachineInstance \"{vm}\" is running but not ready"))
        }
        ("Failed" | "Unknown", _) => {
            condition(types::READY, false, "VMIFailed", format!("VirtualMachineInstance \"{vm}\" is {instance_phase}"))
        }
        (other, _) => condition(types::READY, false, &format!("VMI{other}"), format!("VirtualMachineInstance \"{vm}\" is {other}")),
    }
}

fn networks_condition(networks: &[NetworkStatus]) -> Condition {
    let missing: Vec<&str> = networks.iter().filter(|network| !network.ready).filter_map(|network| network.nad_name.as_deref()).collect();
    if missing.is_empty() {
        condition(types::NETWORKS_CONFIGURED, true, "AttachmentsExist", format!("{} network(s) configured", networks.len()))
    } else {
        condition(
            types::NETWORKS_CONFIGURED,
            false,
            "AttachmentMissing",
            format!("NetworkAttachmentDefinition \"{}\" does not exist", missing.join("\", \"")),
        )
    }
}

fn volumes_condition(volumes: &[VolumeStatus]) -> Condition {
    let pending: Vec<String> = volumes
        .iter()
        .filter(|volume| !volume.bound)
        .map(|volume| format!("{} ({})", volume.pvc_name.as_deref().unwrap_or(&volume.name), volume.phase.as_deref().unwrap_or("Missing")))
        .collect();
    if pending.is_empty() {
        condition(types::VOLUMES_BOUND, true, "AllBound", format!("{} volume(s) bound or waiting for their first consumer", volumes.len()))
    } else {
        condition(types::VOLUMES_BOUND, false, "VolumesPending", format!("not bound yet: {}", pending.join(", ")))
    }
}

fn valid_condition(failure: Option<&Failure>) -> Condition {
    match failure {
        Some(failure) if failure.invalid => condition(types::VALID, false, &failure.reason, failure.message.clone()),
        _ => condition(types::VALID, true, "Valid", "the spec is valid and its dependencies are usable".to_string()),
    }
}

fn synced_condition(failure: Option<&Failure>) -> Condition {
    match failure {
        Some(failure) if !failure.invalid => condition(types::SYNCED, false, &failure.reason, failure.message.clone()),
        Some(_) => condition(types::SYNCED, false, "NotApplied", "children are not applied while the spec is invalid".to_string()),
        None => condition(types::SYNCED, true, "Applied", "every child is applied".to_string()),
    }
}

fn restart_condition(observed: &Observed) -> Condition {
    let restart =
        observed.virtual_machine.as_ref().and_then(|vm| vm.status.as_ref()).and_then(|status| status.conditions.as_ref()).and_then(
            |conditions| conditions.iter().find(|condition| condition.r#type == types::RESTART_REQUIRED && condition.status == "True"),
        );
    match restart {
        Some(found) => condition(
            types::RESTART_REQUIRED,
            true,
            found.reason.as_deref().unwrap_or("RestartRequired"),
            found.message.clone().unwrap_or_else(|| "restart the VM to apply the last change".to_string()),
        ),
        None => condition(types::RESTART_REQUIRED, false, "UpToDate", "the running VM matches its spec".to_string()),
    }
}

fn network_statuses(inputs: &Inputs<'_>) -> Vec<NetworkStatus> {
    let interfaces =
        inputs.observed.instance.as_ref().and_then(|instance| instance.status.as_ref()).and_then(|status| status.interfaces.as_ref());
    inputs
        .spec
        .networks
        .iter()
        .map(|network| {
            let nad_name = has_attachment(network).then(|| attachment_name(inputs.name, network));
            let exists = nad_name.as_ref().is_none_or(|nad| {
                inputs.observed.attachments.iter().any(|attachment| attachment.metadata.name.as_deref() == Some(nad.as_str()))
            });
            let reported =
                interfaces.and_then(|interfaces| interfaces.iter().find(|nic| nic.name.as_deref() == Some(network.name.as_str())));
            let mac = reported
                .and_then(|nic| nic.mac.clone())
                .or_else(|| network.mac_address.clone().map(|mac| mac.to_ascii_lowercase()))
                .unwrap_or_else(|| derived_mac(inputs.namespace, inputs.name, &network.name));
            let ip_addresses = reported
                .and_then(|nic| nic.ip_addresses.clone().or_else(|| nic.ip_address.clone().map(|address| vec![address])))
                .unwrap_or_default()
                .into_iter()
                .map(|address| address.split('/').next().unwrap_or_default().to_string())
                .collect();
            NetworkStatus { name: network.name.clone(), nad_name, ready: exists, mac: Some(mac), ip_addresses }
        })
        .collect()
}

fn volume_statuses(inputs: &Inputs<'_>) -> Vec<VolumeStatus> {
    inputs
        .spec
        .disks
        .iter()
        .enumerate()
        .map(|(index, disk)| {
            if let Some(reference) = inputs.dereferenced.claims.get(&index).filter(|reference| reference.namespace == inputs.namespace) {
                return existing_volume(&disk.name, reference);
            }
            let claim_name = volume_name(inputs.name, disk);
            let claim = inputs.observed.claims.iter().find(|claim| claim.metadata.name.as_deref() == Some(claim_name.as_str()));
            let data_volume =
                inputs.observed.data_volumes.iter().find(|volume| volume.metadata.name.as_deref() == Some(claim_name.as_str()));
            let claim_phase = claim.and_then(|claim| claim.status.as_ref()).and_then(|status| status.phase.clone());
            let class = disk.storage_class_name.clone().unwrap_or_default();
            let waits = inputs.dereferenced.wait_for_first_consumer.get(&class).copied().unwrap_or(false);
            let data_volume_status = data_volume.and_then(|volume| volume.status.as_ref());
            let data_volume_phase = data_volume_status.and_then(|status| status.phase.clone());
            let bound = match claim_phase.as_deref() {
                Some("Bound") => true,
                Some("Pending") => waits || data_volume_phase.as_deref() == Some("WaitForFirstConsumer"),
                _ => false,
            };
            let capacity = claim
                .and_then(|claim| claim.status.as_ref())
                .and_then(|status| status.capacity.as_ref())
                .and_then(|capacity| capacity.get("storage"));
            VolumeStatus {
                name: disk.name.clone(),
                pvc_name: Some(claim_name),
                bound,
                size: capacity.map(|quantity| quantity.0.clone()).or_else(|| disk.size.clone()),
                phase: data_volume_phase.or(claim_phase),
                progress: data_volume_status.and_then(|status| status.progress.clone()).filter(|progress| progress != "N/A"),
            }
        })
        .collect()
}

fn existing_volume(disk: &str, reference: &ReferencedClaim) -> VolumeStatus {
    let status = reference.claim.as_ref().and_then(|claim| claim.status.as_ref());
    let phase = status.and_then(|status| status.phase.clone());
    VolumeStatus {
        name: disk.to_string(),
        pvc_name: Some(reference.name.clone()),
        bound: phase.as_deref() == Some("Bound"),
        size: status
            .and_then(|status| status.capacity.as_ref())
            .and_then(|capacity| capacity.get("storage"))
            .map(|quantity| quantity.0.clone()),
        phase: phase.or_else(|| reference.claim.is_none().then(|| "Missing".to_string())),
        progress: None,
    }
}

/// The status subresource body for server-side apply.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a WukongStatus,
}

/// Writes the status when it differs from `previous`; returns whether it wrote.
pub async fn write(
    api: &Api<DynamicObject>,
    name: &str,
    namespace: &str,
    status: &WukongStatus,
    previous: Option<&WukongStatus>,
) -> Result<bool, StatusError> {
    if previous == Some(status) {
        return Ok(false);
    }
    let body = StatusApply { api_version: "vm.novasphere.dev/v1alpha1", kind: "Wukong", status };
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await.map_err(|source| StatusError::Write {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    })?;
    Ok(true)
}

/// The previous status of a raw Wukong object, if it parses.
pub fn previous(object: &DynamicObject) -> Option<WukongStatus> {
    object.data.get("status").and_then(|status| serde_json::from_value(status.clone()).ok())
}

/// Sorted map helper used by tests and events: condition type -> status.
pub fn summary(status: &WukongStatus) -> BTreeMap<String, String> {
    status.conditions.iter().map(|condition| (condition.type_.clone(), condition.status.clone())).collect()
}
