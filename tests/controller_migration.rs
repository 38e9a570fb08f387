//! Reconcile tests of `spec.migration`: one VirtualMachineInstanceMigration
//! per new token of a running, migratable VM (named after the token, owned by
//! the Wukong, `vmiName` and `addedNodeSelector` set), `status.migration`
//! mirroring its phase and the instance's migration state, a VM that does not
//! run or that KubeVirt says cannot migrate Skipped with KubeVirt's reason, an
//! acknowledged token never migrating again, finished migrations removed by
//! the orphan removal and all of them by the Wukong's deletion.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::harness::{Harness, converged_web};
use serde_json::{Value, json};
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstancemigration::VirtualMachineInstanceMigration;

const TOKEN: &str = "2026-12-02T10:05:00Z";

/// The VMI KubeVirt runs for `web-server-01-vm` (owned by the VM, as KubeVirt
/// does), on `node`, in `phase`, with its `LiveMigratable` condition.
fn seed_instance(harness: &Harness, phase: &str, node: &str, migratable: Value) {
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": "web-server-01-vm", "namespace": "prod", "uid": "vmi-1", "labels": labels,
            "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web-server-01-vm",
                                 "uid": vm.metadata.uid, "controller": true}],
        },
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": phase, "nodeName": node, "conditions": [migratable]},
    }));
}

fn migratable() -> Value {
    json!({"type": "LiveMigratable", "status": "True"})
}

fn migrations(harness: &Harness) -> Vec<VirtualMachineInstanceMigration> {
    harness.api.list_typed::<VirtualMachineInstanceMigration>()
}

fn request_migration(harness: &Harness, token: &str) {
    harness.edit_spec("prod", "web-server-01", |spec| {
        spec["migration"] = json!({"requestedAt": token, "nodeSelector": {"topology.kubernetes.io/zone": "b"}});
    });
}

#[tokio::test]
async fn a_new_token_migrates_the_running_vm_once() {
    let harness = converged_web().await;
    seed_instance(&harness, "Running", "node-a", migratable());
    request_migration(&harness, TOKEN);
    let name = wukong::naming::migration_name("web-server-01", TOKEN);
    assert!(name.starts_with("web-server-01-migration-"), "{name}");

    // Acknowledged first, then created.
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("acknowledge");
    let mut reasons = harness.event_reasons();
    let status = harness.status("prod", "web-server-01").migration.expect("status.migration");
    assert_eq!((status.requested_at.as_str(), status.phase.as_str()), (TOKEN, "Pending"));
    assert_eq!(status.name.as_deref(), Some(name.as_str()));
    assert_eq!(status.source_node.as_deref(), Some("node-a"));
    assert!(migrations(&harness).is_empty(), "nothing is created before the status acknowledges the token");

    harness.reconcile("prod", "web-server-01").await.expect("create");
    let created = migrations(&harness);
    assert_eq!(created.len(), 1);
    let migration = &created[0];
    assert_eq!(migration.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(migration.spec.vmi_name.as_deref(), Some("web-server-01-vm"));
    let selector = migration.spec.added_node_selector.clone().unwrap_or_default();
    assert_eq!(selector.get("topology.kubernetes.io/zone").map(String::as_str), Some("b"));
    let owner = &migration.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Wukong", Some(true)));
    let migration_uid = migration.metadata.uid.clone().expect("uid");

    // KubeVirt runs it: the status mirrors the phase and the instance's migration state.
    harness.edit("kubevirt.io/v1", "virtualmachineinstancemigrations", Some("prod"), &name, |migration| {
        migration["status"] = json!({"phase": "Running"});
    });
    harness.edit("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm", |instance| {
        instance["status"]["migrationState"] = json!({"migrationUid": migration_uid, "sourceNode": "node-a", "targetNode": "node-b"});
    });
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("follow");
    reasons.extend(harness.event_reasons());
    let status = harness.status("prod", "web-server-01").migration.expect("status.migration");
    assert_eq!((status.phase.as_str(), status.target_node.as_deref()), ("Running", Some("node-b")));

    harness.edit("kubevirt.io/v1", "virtualmachineinstancemigrations", Some("prod"), &name, |migration| {
        migration["status"] = json!({"phase": "Succeeded"});
    });
    harness.edit("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm", |instance| {
        instance["status"]["nodeName"] = json!("node-b");
    });
    harness.set_time("2026-12-02T10:06:00Z");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("finish");
    reasons.extend(harness.event_reasons());
    let wukong_status = harness.status("prod", "web-server-01");
    let status = wukong_status.migration.expect("status.migration");
    assert_eq!(status.phase, "Succeeded");
    assert_eq!((status.source_node.as_deref(), status.target_node.as_deref()), (Some("node-a"), Some("node-b")));
    assert_eq!(status.completed_at.as_deref(), Some("2026-12-02T10:06:00Z"));
    assert_eq!(wukong_status.node_name.as_deref(), Some("node-b"), "status.nodeName follows the instance");
    for reason in ["MigrationPending", "MigrationRunning", "MigrationSucceeded"] {
        assert!(reasons.iter().any(|seen| seen == reason), "{reason} in {reasons:?}");
    }

    // The same manifest again (another field edited): no new migration, and the
    // finished one is removed as the plan no longer names it.
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!(4));
    harness.converge("prod", "web-server-01", 4).await;
    assert!(migrations(&harness).is_empty(), "the finished migration is removed, none is made again");
    assert_eq!(harness.status("prod", "web-server-01").migration.expect("kept").phase, "Succeeded");

    // A new token: a new migration under another name.
    request_migration(&harness, "second");
    harness.converge("prod", "web-server-01", 4).await;
    let names: Vec<_> = migrations(&harness).into_iter().filter_map(|migration| migration.metadata.name).collect();
    assert_eq!(names, [wukong::naming::migration_name("web-server-01", "second")]);
}

#[tokio::test]
async fn a_vm_kubevirt_cannot_migrate_is_skipped_with_its_reason() {
    let harness = converged_web().await;
    let refused = json!({
        "type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable",
        "message": "cannot migrate VMI: PVC data-pvc is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)",
    });
    seed_instance(&harness, "Running", "node-a", refused);
    request_migration(&harness, TOKEN);
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("skip");
    assert!(harness.event_reasons().iter().any(|reason| reason == "MigrationSkipped"));
    harness.converge("prod", "web-server-01", 4).await;
    let status = harness.status("prod", "web-server-01").migration.expect("status.migration");
    assert_eq!(status.phase, "Skipped");
    assert_eq!(status.name, None);
    let message = status.message.unwrap_or_default();
    assert!(message.starts_with("not migrated: DisksNotLiveMigratable: cannot migrate VMI: PVC data-pvc is not shared"), "{message}");
    assert!(migrations(&harness).is_empty());
}

#[tokio::test]
async fn a_vm_that_does_not_run_is_skipped() {
    let harness = converged_web().await;
    request_migration(&harness, TOKEN);
    harness.converge("prod", "web-server-01", 4).await;
    let status = harness.status("prod", "web-server-01").migration.expect("status.migration");
    assert_eq!((status.phase.as_str(), status.message.as_deref()), ("Skipped", Some("not migrated: the VM has no running instance")));
    // It runs later: the skipped token stays skipped.
    seed_instance(&harness, "Running", "node-a", migratable());
    harness.converge("prod", "web-server-01", 4).await;
    assert!(migrations(&harness).is_empty());
}

#[tokio::test]
async fn a_failed_migration_reports_kubevirts_reason() {
    let harness = converged_web().await;
    seed_instance(&harness, "Running", "node-a", migratable());
    request_migration(&harness, TOKEN);
    harness.converge("prod", "web-server-01", 4).await;
    let name = wukong::naming::migration_name("web-server-01", TOKEN);
    let uid = migrations(&harness)[0].metadata.uid.clone();
    harness.edit("kubevirt.io/v1", "virtualmachineinstancemigrations", Some("prod"), &name, |migration| {
        migration["status"] = json!({"phase": "Failed"});
    });
    harness.edit("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm", |instance| {
        instance["status"]["migrationState"] =
            json!({"migrationUid": uid, "sourceNode": "node-a", "failed": true, "failureReason": "no node matches the selector"});
    });
    harness.converge("prod", "web-server-01", 4).await;
    let status = harness.status("prod", "web-server-01").migration.expect("status.migration");
    assert_eq!(status.phase, "Failed");
    assert_eq!(status.message.as_deref(), Some("migration failed: no node matches the selector"));
}

#[tokio::test]
async fn deleting_the_wukong_deletes_its_migrations() {
    let harness = converged_web().await;
    harness.api.set_garbage_collection(true);
    seed_instance(&harness, "Running", "node-a", migratable());
    request_migration(&harness, TOKEN);
    harness.converge("prod", "web-server-01", 4).await;
    assert_eq!(migrations(&harness).len(), 1);
    harness.delete_wukong("prod", "web-server-01").await;
    for _ in 0..6 {
        if harness.wukong("prod", "web-server-01").is_none() {
            break;
        }
        let _ = harness.reconcile("prod", "web-server-01").await;
    }
    assert!(harness.wukong("prod", "web-server-01").is_none(), "cleanup finished");
    assert!(migrations(&harness).is_empty(), "its migration is deleted with it");
}
