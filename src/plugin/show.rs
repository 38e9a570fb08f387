//! `kubectl wukong status`: a Wukong's state, readable at a glance.
//!
//! In: a Wukong as read from the API server. Out: text with its phase, node
//! and address, its conditions, its children (as the status names them), the
//! last restart and migration, and — when it is not Ready — why. Pure.

use std::fmt::Write;

use crate::api::{Wukong, WukongStatus};

/// The status summary of `wukong`.
pub fn status_text(wukong: &Wukong) -> String {
    let status = wukong.status.clone().unwrap_or_default();
    let namespace = wukong.metadata.namespace.as_deref().unwrap_or("default");
    let name = wukong.metadata.name.as_deref().unwrap_or_default();
    let mut text = String::new();
    let phase = status.phase.map_or("unknown (no status yet)", |phase| phase.as_str());
    let _ = writeln!(text, "Wukong {namespace}/{name}: {phase}");
    let generation = wukong.metadata.generation.unwrap_or_default();
    let observed = status.observed_generation.unwrap_or_default();
    if observed < generation {
        let _ = writeln!(text, "  the operator has not seen the last change yet (generation {generation}, status of {observed})");
    }
    let node = status.node_name.as_deref().unwrap_or("-");
    let address = status.ip_address.as_deref().unwrap_or("-");
    let _ = writeln!(text, "  node {node}, address {address}");
    conditions(&mut text, &status);
    children(&mut text, &status);
    operations(&mut text, &status);
    if !is_ready(&status) {
        let _ = writeln!(text, "Not ready: {}", why_not_ready(wukong));
    }
    text
}

fn is_ready(status: &WukongStatus) -> bool {
    status.conditions.iter().any(|condition| condition.type_ == "Ready" && condition.status == "True")
}

fn conditions(text: &mut String, status: &WukongStatus) {
    if status.conditions.is_empty() {
        return;
    }
    let _ = writeln!(text, "Conditions:");
    for condition in &status.conditions {
        let _ = writeln!(text, "  {:<19} {:<6} {:<24} {}", condition.type_, condition.status, condition.reason, condition.message);
    }
}

fn children(text: &mut String, status: &WukongStatus) {
    let mut lines = Vec::new();
    if let Some(vm) = &status.vm_name {
        lines.push(format!("VirtualMachine {vm}"));
    }
    for network in &status.networks {
        if let Some(attachment) = &network.nad_name {
            let state = if network.ready { "ready" } else { "missing" };
            lines.push(format!("NetworkAttachmentDefinition {attachment} ({state})"));
        }
    }
    for volume in &status.volumes {
        if let Some(claim) = &volume.pvc_name {
            let phase = volume.phase.as_deref().unwrap_or(if volume.bound { "Bound" } else { "Pending" });
            let size = volume.size.as_deref().unwrap_or("-");
            let progress = volume.progress.as_deref().map(|progress| format!(", {progress}")).unwrap_or_default();
            lines.push(format!("volume {claim} for disk {} ({phase}, {size}{progress})", volume.name));
        }
    }
    if let Some(name) = status.migration.as_ref().filter(|migration| !migration.is_final()).and_then(|migration| migration.name.as_ref()) {
        lines.push(format!("VirtualMachineInstanceMigration {name}"));
    }
    if !lines.is_empty() {
        let _ = writeln!(text, "Children:");
        for line in lines {
            let _ = writeln!(text, "  {line}");
        }
    }
}

fn operations(text: &mut String, status: &WukongStatus) {
    if status.restart.is_none() && status.migration.is_none() {
        return;
    }
    let _ = writeln!(text, "Last operations:");
    if let Some(restart) = &status.restart {
        let completed = restart.completed_at.as_deref().map(|time| format!(", done {time}")).unwrap_or_default();
        let message = restart.message.as_deref().unwrap_or_default();
        let _ = writeln!(text, "  restart   \"{}\": {}{completed}: {message}", restart.requested_at, restart.phase.as_str());
    }
    if let Some(migration) = &status.migration {
        let completed = migration.completed_at.as_deref().map(|time| format!(", done {time}")).unwrap_or_default();
        let nodes = match (&migration.source_node, &migration.target_node) {
            (Some(source), Some(target)) => format!(" ({source} -> {target})"),
            (Some(source), None) => format!(" (from {source})"),
            _ => String::new(),
        };
        let message = migration.message.as_deref().unwrap_or_default();
        let _ = writeln!(text, "  migration \"{}\": {}{nodes}{completed}: {message}", migration.requested_at, migration.phase);
    }
}

/// Why the Wukong is not Ready: every condition that is not True, Ready first.
pub fn why_not_ready(wukong: &Wukong) -> String {
    let Some(status) = &wukong.status else { return "the operator has not reported a status yet".to_string() };
    let mut reasons: Vec<String> = status
        .conditions
        .iter()
        .filter(|condition| condition.status != "True" && condition.type_ != "RestartRequired")
        .map(|condition| format!("{} {}: {}", condition.type_, condition.reason, condition.message))
        .collect();
    if reasons.is_empty() {
        reasons.push("no condition explains it yet".to_string());
    }
    reasons.join("; ")
}

#[cfg(test)]
mod tests {
    use super::status_text;
    use crate::api::Wukong;

    fn wukong(status: serde_json::Value) -> Wukong {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
            "metadata": {"name": "web", "namespace": "prod", "generation": 3},
            "spec": {"cpu": 2, "memory": "2Gi"},
            "status": status,
        }))
        .expect("a Wukong")
    }

    #[test]
    fn a_running_wukong_shows_its_children_and_last_operations() {
        let text = status_text(&wukong(serde_json::json!({
            "phase": "Running", "observedGeneration": 3, "vmName": "web-vm", "nodeName": "node-b", "ipAddress": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True", "reason": "VMIReady", "message": "the VM runs", "lastTransitionTime": "t"}],
            "networks": [{"name": "lan", "nadName": "web-lan", "ready": true}],
            "volumes": [{"name": "system", "pvcName": "web-system", "bound": true, "size": "20Gi", "phase": "Succeeded"}],
            "restart": {"requestedAt": "r1", "phase": "Succeeded", "message": "restarted", "completedAt": "t1"},
            "migration": {"requestedAt": "m1", "phase": "Succeeded", "sourceNode": "node-a", "targetNode": "node-b", "message": "migrated"},
        })));
        let expected = "\
Wukong prod/web: Running
  node node-b, address 10.0.0.5
Conditions:
  Ready               True   VMIReady                 the VM runs
Children:
  VirtualMachine web-vm
  NetworkAttachmentDefinition web-lan (ready)
  volume web-system for disk system (Succeeded, 20Gi)
Last operations:
  restart   \"r1\": Succeeded, done t1: restarted
  migration \"m1\": Succeeded (node-a -> node-b): migrated
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_wukong_that_is_not_ready_says_why() {
        let text = status_text(&wukong(serde_json::json!({
            "phase": "Error", "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "VMNotCreated", "message": "no VM", "lastTransitionTime": "t"},
                {"type": "Valid", "status": "False", "reason": "ClaimNotFound", "message": "claim \"data\" not found", "lastTransitionTime": "t"},
                {"type": "Synced", "status": "True", "reason": "Applied", "message": "", "lastTransitionTime": "t"},
            ],
        })));
        assert!(text.contains("the operator has not seen the last change yet (generation 3, status of 2)"), "{text}");
        assert!(text.ends_with("Not ready: Ready VMNotCreated: no VM; Valid ClaimNotFound: claim \"data\" not found\n"), "{text}");
    }
}
