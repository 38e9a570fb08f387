//! The status of the day-2 operations, pure.
//!
//! In: the status [`Inputs`]: the spec's tokens, the previous status, the
//! observed instance and what the operations step sent this pass. Out:
//! `status.restart` ([`restart`]). A token the previous status already
//! acknowledges is only followed to its end, never started again; a removed
//! token keeps the last status as it was.

use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use super::Inputs;
use crate::api::{OperationPhase, RestartStatus};

/// The UID of the instance when it runs (phase Running, not being deleted).
pub fn running_uid(instance: Option<&VirtualMachineInstance>) -> Option<&str> {
    let instance = instance?;
    let running = instance.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Running");
    (running && instance.metadata.deletion_timestamp.is_none()).then_some(instance.metadata.uid.as_deref()).flatten()
}

/// The instance's phase in words, for messages.
fn instance_state(instance: Option<&VirtualMachineInstance>) -> String {
    match instance {
        None => "the VM has no running instance".to_string(),
        Some(instance) if instance.metadata.deletion_timestamp.is_some() => "the VM's instance is being deleted".to_string(),
        Some(instance) => {
            let phase = instance.status.as_ref().and_then(|status| status.phase.as_deref()).unwrap_or("Unknown");
            format!("the VM's instance is {phase}, not Running")
        }
    }
}

/// `status.restart`: a new token is acknowledged as Pending (the VM runs) or
/// Skipped (it does not); Pending becomes Running once the operations step
/// sent the restart, and Succeeded once an instance with another UID runs.
pub fn restart(inputs: &Inputs<'_>) -> Option<RestartStatus> {
    let previous = inputs.previous.and_then(|status| status.restart.as_ref());
    let Some(token) = inputs.spec.restart_requested_at.as_deref() else { return previous.cloned() };
    let instance = inputs.observed.instance.as_deref();
    let now = Some(inputs.now.to_string());
    let Some(acknowledged) = previous.filter(|previous| previous.requested_at == token) else {
        let status = match running_uid(instance) {
            Some(uid) => RestartStatus {
                requested_at: token.to_string(),
                phase: OperationPhase::Pending,
                message: Some(format!("restart requested: instance \"{uid}\" will be replaced")),
                old_instance_uid: Some(uid.to_string()),
                completed_at: None,
            },
            None => RestartStatus {
                requested_at: token.to_string(),
                phase: OperationPhase::Skipped,
                message: Some(format!("not restarted: {}", instance_state(instance))),
                old_instance_uid: None,
                completed_at: now,
            },
        };
        return Some(status);
    };
    if acknowledged.phase.is_final() {
        return Some(acknowledged.clone());
    }
    let mut next = acknowledged.clone();
    if let Some(sent) = &inputs.observed.operations.restart {
        next.phase = OperationPhase::Running;
        next.message = Some(sent.clone());
    }
    let replaced = instance.filter(|instance| instance.metadata.uid.is_some() && instance.metadata.uid != next.old_instance_uid);
    let replaced_phase = replaced.and_then(|instance| instance.status.as_ref()).and_then(|status| status.phase.as_deref());
    let replaced_uid = replaced.and_then(|instance| instance.metadata.uid.clone()).unwrap_or_default();
    match replaced_phase {
        Some("Running") => {
            next.phase = OperationPhase::Succeeded;
            next.message = Some(format!("restarted: instance \"{replaced_uid}\" runs"));
            next.completed_at = now;
        }
        Some("Failed") => {
            next.phase = OperationPhase::Failed;
            next.message = Some(format!("restarted, but the new instance \"{replaced_uid}\" failed"));
            next.completed_at = now;
        }
        _ => {}
    }
    Some(next)
}
