//! Reconcile tests of where a disk's data comes from once it exists: an existing
//! WaitForFirstConsumer claim does not hold the VM back, a finished clone no
//! longer depends on its source or grant, and a disk cannot silently switch
//! between blank and imported.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::harness::Harness;
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong_models::virtualmachine::VirtualMachine;

const FROM_PVC: &str = include_str!("../examples/vm-from-pvc.yaml");
const RESTORED: &str = include_str!("../examples/restored-vm.yaml");
const HYBRID: &str = include_str!("../examples/hybrid-vm.yaml");

fn storage_class(name: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "example.com/disk",
        "volumeBindingMode": mode,
    })
}

fn pending_claim(class: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "existing-disk-pvc", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "resources": {"requests": {"storage": "20Gi"}}},
        "status": {"phase": "Pending"},
    })
}

#[tokio::test]
async fn a_pending_existing_claim_of_a_wait_for_first_consumer_class_does_not_hold_the_vm_back() {
    let harness = Harness::new();
    harness.api.insert(storage_class("local", "WaitForFirstConsumer"));
    harness.api.insert(pending_claim("local"));
    harness.create_wukong(FROM_PVC);
    harness.converge("default", "vm-from-pvc", 4).await;
    assert!(harness.api.get_typed::<VirtualMachine>(Some("default"), "vm-from-pvc-vm").is_some(), "the VM is created");
    assert_eq!(harness.condition("default", "vm-from-pvc", "Valid").status, "True");
}

#[tokio::test]
async fn a_pending_existing_claim_of_an_immediate_class_is_refused() {
    let harness = Harness::new();
    harness.api.insert(storage_class("fast", "Immediate"));
    harness.api.insert(pending_claim("fast"));
    harness.create_wukong(FROM_PVC);
    harness.reconcile("default", "vm-from-pvc").await.expect("reconcile");
    assert!(harness.api.get_typed::<VirtualMachine>(Some("default"), "vm-from-pvc-vm").is_none());
    let valid = harness.condition("default", "vm-from-pvc", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "ClaimNotBound"), "{}", valid.message);
}

#[tokio::test]
async fn a_finished_clone_survives_the_loss_of_its_source_and_grant() {
    let harness = Harness::new();
    harness.api.insert(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "backup-disk-pvc", "namespace": "backups", "annotations": {"vm.novasphere.dev/clone-to-namespaces": "default"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
        "status": {"phase": "Bound"},
    }));
    harness.create_wukong(RESTORED);
    harness.converge("default", "restored-vm", 4).await;
    assert_eq!(harness.condition("default", "restored-vm", "Valid").status, "True");

    harness.edit("v1", "persistentvolumeclaims", Some("backups"), "backup-disk-pvc", |claim| {
        claim["metadata"]["annotations"] = json!({});
    });
    harness.reconcile("default", "restored-vm").await.expect("reconcile");
    assert_eq!(harness.condition("default", "restored-vm", "Valid").status, "True", "a revoked grant does not undo a finished clone");
    assert_ne!(harness.status("default", "restored-vm").phase, Some(Phase::Error));
}

/// examples/hybrid-vm.yaml converged, with the existing claim it references.
async fn converged_hybrid(harness: Harness) -> Harness {
    harness.api.insert(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "existing-data-pvc", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
        "status": {"phase": "Bound"},
    }));
    harness.create_wukong(HYBRID);
    harness.converge("default", "hybrid-vm", 4).await;
    harness
}

#[tokio::test]
async fn a_blank_disk_cannot_become_an_imported_one() {
    let harness = Harness::new();
    let harness = converged_hybrid(harness).await;
    harness.edit_spec("default", "hybrid-vm", |spec| {
        spec["disks"][2]["image"] = json!("docker://quay.io/containerdisks/fedora:40");
    });
    harness.api.clear_requests();
    harness.reconcile("default", "hybrid-vm").await.expect("reconcile");
    let valid = harness.condition("default", "hybrid-vm", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "SourceChangeRefused"), "{}", valid.message);
    assert!(valid.message.contains("spec.disks[2].image"), "{}", valid.message);
    assert!(
        harness.api.get("cdi.kubevirt.io/v1beta1", "datavolumes", Some("default"), "hybrid-vm-cache").is_none(),
        "no DataVolume collides with the claim"
    );
}

#[tokio::test]
async fn an_imported_disk_cannot_become_a_blank_one() {
    let harness = Harness::new();
    let harness = converged_hybrid(harness).await;
    harness.edit_spec("default", "hybrid-vm", |spec| {
        spec["disks"][0].as_object_mut().expect("disk").remove("image");
    });
    harness.reconcile("default", "hybrid-vm").await.expect("reconcile");
    let valid = harness.condition("default", "hybrid-vm", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "SourceChangeRefused"), "{}", valid.message);
    assert!(harness.api.get("v1", "persistentvolumeclaims", Some("default"), "hybrid-vm-system").is_none(), "no blank claim is made");
}
