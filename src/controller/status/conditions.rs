//! The conditions of the status, keyed by type.
//!
//! In: the status inputs, the phase and the network and volume statuses. Out:
//! `Ready`, `NetworksConfigured`, `VolumesBound`, `Valid`, `Synced` and
//! `RestartRequired`, in that order, without generation or transition time
//! (the caller stamps those). A transient failure sets only `Synced`; the
//! others keep saying what the caches show.

use super::{Failure, Inputs, types};
use crate::api::{Condition, NetworkStatus, Phase, VolumeStatus};
use crate::controller::instances::CachedInstance;

/// Every condition, in a fixed order.
pub fn conditions(inputs: &Inputs<'_>, phase: Phase, networks: &[NetworkStatus], volumes: &[VolumeStatus]) -> Vec<Condition> {
    vec![
        ready(inputs, phase),
        networks_configured(networks),
        volumes_bound(volumes),
        valid(inputs.failure),
        synced(inputs.failure),
        restart_required(inputs),
    ]
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

/// `Ready`: the VMI runs and KubeVirt reports it ready.
pub fn ready(inputs: &Inputs<'_>, phase: Phase) -> Condition {
    let vm = &inputs.plan.virtual_machine;
    let Some(instance) = &inputs.observed.instance else {
        return match (inputs.observed.virtual_machine().is_some(), phase) {
            (false, _) => condition(types::READY, false, "VMNotCreated", format!("VirtualMachine \"{vm}\" does not exist yet")),
            (true, Phase::Stopped) => condition(types::READY, false, "VMStopped", format!("VirtualMachine \"{vm}\" is stopped")),
            (true, _) => condition(types::READY, false, "VMIPending", format!("VirtualMachine \"{vm}\" has no running instance yet")),
        };
    };
    let instance_phase = instance_phase(instance);
    match (instance_phase.as_str(), instance_ready(instance)) {
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

fn instance_phase(instance: &CachedInstance) -> String {
    instance.status.as_ref().and_then(|status| status.phase.clone()).unwrap_or_else(|| "Pending".to_string())
}

fn instance_ready(instance: &CachedInstance) -> bool {
    let conditions = instance.status.as_ref().and_then(|status| status.conditions.as_ref());
    conditions.into_iter().flatten().any(|condition| condition.r#type == "Ready" && condition.status == "True")
}

/// `NetworksConfigured`: every NetworkAttachmentDefinition exists.
pub fn networks_configured(networks: &[NetworkStatus]) -> Condition {
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

/// `VolumesBound`: every claim is Bound or waits for its first consumer.
pub fn volumes_bound(volumes: &[VolumeStatus]) -> Condition {
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

/// `Valid`: false with the refusal's reason when the spec or a dependency is unusable.
pub fn valid(failure: Option<&Failure>) -> Condition {
    match failure {
        Some(failure) if failure.invalid => condition(types::VALID, false, &failure.reason, failure.message.clone()),
        _ => condition(types::VALID, true, "Valid", "the spec is valid and its dependencies are usable".to_string()),
    }
}

/// `Synced`: false with the failed step's reason and message while the cluster
/// does not hold what the spec asks for.
pub fn synced(failure: Option<&Failure>) -> Condition {
    match failure {
        Some(failure) if !failure.invalid => condition(types::SYNCED, false, &failure.reason, failure.message.clone()),
        Some(_) => condition(types::SYNCED, false, "NotApplied", "children are not applied while the spec is invalid".to_string()),
        None => condition(types::SYNCED, true, "Applied", "every child is applied".to_string()),
    }
}

/// `RestartRequired`: KubeVirt's own condition on the VM, mirrored.
pub fn restart_required(inputs: &Inputs<'_>) -> Condition {
    let vm_conditions = inputs.observed.virtual_machine().and_then(|vm| vm.status.as_ref()).and_then(|status| status.conditions.as_ref());
    let restart =
        vm_conditions.into_iter().flatten().find(|condition| condition.r#type == types::RESTART_REQUIRED && condition.status == "True");
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
