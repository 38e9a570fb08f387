//! The status of the day-2 operations, pure.
//!
//! In: the status [`Inputs`]: the spec's tokens, the previous status, the
//! observed instance and migration, and what the operations step sent this
//! pass. Out: `status.restart` ([`restart`]) and `status.migration` ([`migration`]). A token the previous status already
//! acknowledges is only followed to its end, never started again; a removed
//! token keeps the last status as it was.

use wukong_models::virtualmachineinstancemigration::VirtualMachineInstanceMigration;

use super::Inputs;
use crate::api::{MigrationStatus, OperationPhase, RestartStatus};
use crate::controller::instances::CachedInstance;
use crate::naming::migration_name;

/// The UID of the instance when it runs (phase Running, not being deleted).
pub fn running_uid(instance: Option<&CachedInstance>) -> Option<&str> {
    let instance = instance?;
    let running = instance.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Running");
    (running && instance.metadata.deletion_timestamp.is_none()).then_some(instance.metadata.uid.as_deref()).flatten()
}

/// The instance's phase in words, for messages.
fn instance_state(instance: Option<&CachedInstance>) -> String {
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
    // The instance stopped by itself before the restart was sent (not being
    // deleted, as it is after a restart): nothing to restart any more.
    let stopped = instance.filter(|instance| {
        instance.metadata.uid == next.old_instance_uid
            && instance.metadata.deletion_timestamp.is_none()
            && running_uid(Some(instance)).is_none()
    });
    if next.phase == OperationPhase::Pending
        && let Some(instance) = stopped
    {
        next.phase = OperationPhase::Skipped;
        next.message = Some(format!("not restarted: {} before the restart was sent", instance_state(Some(instance))));
        next.completed_at = now;
        return Some(next);
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

/// Why KubeVirt says the instance cannot be live-migrated (its
/// `LiveMigratable` condition is False), e.g. a ReadWriteOnce disk.
fn not_migratable(instance: &CachedInstance) -> Option<String> {
    let conditions = instance.status.as_ref().and_then(|status| status.conditions.as_ref())?;
    let condition = conditions.iter().find(|condition| condition.r#type == "LiveMigratable" && condition.status == "False")?;
    let reason = condition.reason.clone().unwrap_or_else(|| "NotMigratable".to_string());
    Some(match condition.message.as_deref() {
        Some(message) if !message.is_empty() => format!("{reason}: {message}"),
        _ => reason,
    })
}

/// `status.migration`: a new token is acknowledged as Pending with the name
/// of its VirtualMachineInstanceMigration (the plan then creates it), or
/// Skipped with the reason when the VM does not run or KubeVirt says it cannot
/// be migrated; then it mirrors the migration's phase and the nodes of the
/// instance's migration state until it is finished.
pub fn migration(inputs: &Inputs<'_>) -> Option<MigrationStatus> {
    let previous = inputs.previous.and_then(|status| status.migration.as_ref());
    let Some(request) = inputs.spec.migration.as_ref() else { return previous.cloned() };
    let token = request.requested_at.as_str();
    let instance = inputs.observed.instance.as_deref();
    let now = Some(inputs.now.to_string());
    let Some(acknowledged) = previous.filter(|previous| previous.requested_at == token) else {
        let source_node = instance.and_then(|instance| instance.status.as_ref()).and_then(|status| status.node_name.clone());
        let refusal = match (running_uid(instance), instance) {
            (Some(_), Some(instance)) => not_migratable(instance).map(|reason| format!("not migrated: {reason}")),
            _ => Some(format!("not migrated: {}", instance_state(instance))),
        };
        let status = match refusal {
            Some(message) => MigrationStatus {
                requested_at: token.to_string(),
                phase: "Skipped".to_string(),
                source_node,
                message: Some(message),
                completed_at: now,
                ..MigrationStatus::default()
            },
            None => MigrationStatus {
                requested_at: token.to_string(),
                name: Some(migration_name(&inputs.plan.wukong, token)),
                phase: "Pending".to_string(),
                source_node,
                message: Some("migration requested".to_string()),
                ..MigrationStatus::default()
            },
        };
        return Some(status);
    };
    if acknowledged.is_final() {
        return Some(acknowledged.clone());
    }
    let mut next = acknowledged.clone();
    let name = next.name.clone().unwrap_or_default();
    let Some(migration) = inputs.observed.named::<VirtualMachineInstanceMigration>(&name) else {
        if next.phase != "Pending" {
            // It was seen, and is gone: someone deleted it (e.g. to cancel).
            next.phase = "Failed".to_string();
            next.message = Some(format!("VirtualMachineInstanceMigration \"{name}\" was deleted before it finished"));
            next.completed_at = now;
        }
        return Some(next);
    };
    let status = migration.status.as_ref();
    next.phase = status.and_then(|status| status.phase.clone()).filter(|phase| !phase.is_empty()).unwrap_or_else(|| "Pending".to_string());
    // The instance's migration state names the nodes once KubeVirt picked the target.
    let state = instance
        .and_then(|instance| instance.status.as_ref())
        .and_then(|status| status.migration_state.as_ref())
        .filter(|state| state.migration_uid.is_some() && state.migration_uid == migration.metadata.uid);
    if let Some(state) = state {
        next.source_node = state.source_node.clone().or(next.source_node);
        next.target_node = state.target_node.clone().or(next.target_node);
    }
    next.message = match next.phase.as_str() {
        "Succeeded" => Some(format!("migrated to node \"{}\"", next.target_node.clone().unwrap_or_default())),
        "Failed" => {
            let reason = state.and_then(|state| state.failure_reason.clone()).or_else(|| {
                let conditions = status.and_then(|status| status.conditions.as_ref());
                conditions.into_iter().flatten().find_map(|condition| condition.message.clone().or(condition.reason.clone()))
            });
            Some(format!("migration failed: {}", reason.unwrap_or_else(|| "KubeVirt gave no reason".to_string())))
        }
        phase => Some(format!("migration {phase}")),
    };
    if next.is_final() {
        next.completed_at = now;
    }
    Some(next)
}
