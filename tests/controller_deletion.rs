//! Reconcile tests of deletion: the finalizer stops the VM first and waits for
//! it, then deletes every child the operator made (itself, not relying on the
//! garbage collector), releases Retain volumes, never touches existing claims
//! or objects it does not control, and lets the Wukong go.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::time::Duration;

use common::fixtures::{DATA_PVC, RETAINING, WEB};
use common::harness::Harness;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

const STOP_POLL: Duration = Duration::from_secs(5);

fn data_pvc(harness: &Harness) -> Option<Value> {
    harness.api.get("v1", "persistentvolumeclaims", Some("prod"), "data-pvc")
}

async fn converged_web(garbage_collection: bool) -> Harness {
    let harness = Harness::new();
    harness.api.set_garbage_collection(garbage_collection);
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.converge("prod", "web-server-01", 4).await;
    harness
}

fn children_left(harness: &Harness) -> Vec<&'static str> {
    let mut left = Vec::new();
    if harness.api.get_typed::<VirtualMachine>(Some("prod"), "web-server-01-vm").is_some() {
        left.push("VirtualMachine");
    }
    if harness.api.get_typed::<NetworkAttachmentDefinition>(Some("prod"), "web-server-01-mgmt").is_some() {
        left.push("NetworkAttachmentDefinition");
    }
    if harness.api.get_typed::<Secret>(Some("prod"), "web-server-01-cloudinit").is_some() {
        left.push("Secret");
    }
    if harness.api.get_typed::<DataVolume>(Some("prod"), "web-server-01-system").is_some() {
        left.push("DataVolume");
    }
    if harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_some() {
        left.push("PersistentVolumeClaim");
    }
    left
}

#[tokio::test]
async fn deletion_stops_the_vm_first_then_deletes_every_child_itself() {
    let harness = converged_web(false).await;
    let existing_before = data_pvc(&harness);
    let written = harness.context.status_writes.lock().expect("status writes lock").contains_key("prod/web-server-01");
    assert!(written, "converging wrote the status");
    harness.delete_wukong("prod", "web-server-01").await;
    let wukong = harness.wukong("prod", "web-server-01").expect("the finalizer holds the Wukong");
    assert!(!wukong["metadata"]["deletionTimestamp"].is_null());

    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("first cleanup pass");
    assert_eq!(action, Action::requeue(STOP_POLL), "waits for the VM to go");
    assert_eq!(harness.write_summary(), ["delete /apis/kubevirt.io/v1/namespaces/prod/virtualmachines/web-server-01-vm"]);
    assert_eq!(children_left(&harness), ["NetworkAttachmentDefinition", "Secret", "DataVolume", "PersistentVolumeClaim"]);
    assert!(harness.wukong("prod", "web-server-01").is_some());

    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("second cleanup pass");
    assert_eq!(action, Action::await_change());
    let mut writes = harness.write_summary();
    writes.sort();
    assert_eq!(
        writes,
        [
            "delete /api/v1/namespaces/prod/persistentvolumeclaims/web-server-01-cache",
            "delete /api/v1/namespaces/prod/secrets/web-server-01-cloudinit",
            "delete /apis/cdi.kubevirt.io/v1beta1/namespaces/prod/datavolumes/web-server-01-system",
            "delete /apis/k8s.cni.cncf.io/v1/namespaces/prod/network-attachment-definitions/web-server-01-mgmt",
            "delete /apis/vm.novasphere.dev/v1alpha1/ipleases/segment-b1292654b54bb3db.192-168-100-10",
            "patch /apis/vm.novasphere.dev/v1alpha1/namespaces/prod/wukongs/web-server-01",
        ]
    );
    assert_eq!(children_left(&harness), Vec::<&str>::new(), "no child is left behind, even without garbage collection");
    assert!(harness.wukong("prod", "web-server-01").is_none(), "the finalizer is gone and so is the Wukong");
    assert_eq!(data_pvc(&harness), existing_before, "the existing claim is untouched");
    assert!(harness.event_reasons().contains(&"Cleanup".to_string()));
    let writes = harness.context.status_writes.lock().expect("status writes lock");
    assert!(!writes.contains_key("prod/web-server-01"), "a deleted Wukong's last status write is forgotten: {writes:?}");
}

#[tokio::test]
async fn deletion_with_garbage_collection_leaves_the_existing_claim_alone() {
    let harness = converged_web(true).await;
    let existing_before = data_pvc(&harness);
    harness.delete_wukong("prod", "web-server-01").await;
    harness.reconcile("prod", "web-server-01").await.expect("first cleanup pass");
    harness.reconcile("prod", "web-server-01").await.expect("second cleanup pass");

    assert!(harness.wukong("prod", "web-server-01").is_none());
    assert_eq!(children_left(&harness), Vec::<&str>::new());
    let existing: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "data-pvc").expect("the existing claim stays");
    assert_eq!((existing.metadata.owner_references, existing.metadata.labels), (None, None));
    assert_eq!(data_pvc(&harness), existing_before);
}

#[tokio::test]
async fn deletion_waits_while_the_vm_instance_still_runs() {
    let harness = converged_web(false).await;
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod"},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running"},
    }));
    harness.delete_wukong("prod", "web-server-01").await;
    harness.reconcile("prod", "web-server-01").await.expect("deletes the VM");
    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("waits");

    assert_eq!(action, Action::requeue(STOP_POLL));
    assert_eq!(harness.write_summary(), Vec::<String>::new(), "nothing is removed while the instance runs");
    assert_eq!(children_left(&harness), ["NetworkAttachmentDefinition", "Secret", "DataVolume", "PersistentVolumeClaim"]);

    let instances: Api<VirtualMachineInstance> = Api::namespaced(harness.api.client(), "prod");
    instances.delete("web-server-01-vm", &DeleteParams::default()).await.expect("the instance stops");
    assert_eq!(harness.reconcile("prod", "web-server-01").await.expect("finishes"), Action::await_change());
    assert!(harness.wukong("prod", "web-server-01").is_none());
    assert_eq!(children_left(&harness), Vec::<&str>::new());
}

#[tokio::test]
async fn a_retained_disk_survives_deletion_released() {
    let harness = Harness::new();
    harness.create_wukong(RETAINING);
    harness.converge("default", "keeper", 4).await;
    harness.delete_wukong("default", "keeper").await;
    harness.reconcile("default", "keeper").await.expect("first cleanup pass");
    harness.reconcile("default", "keeper").await.expect("second cleanup pass");

    assert!(harness.wukong("default", "keeper").is_none());
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("default"), "keeper-scratch").is_none());
    let archive: PersistentVolumeClaim = harness
        .api
        .get_typed(Some("default"), "keeper-archive")
        .expect("the retained claim outlives the Wukong (and the garbage collector)");
    assert!(archive.metadata.owner_references.as_ref().is_none_or(Vec::is_empty), "{:?}", archive.metadata.owner_references);
    let labels = archive.metadata.labels.clone().unwrap_or_default();
    assert!(labels.keys().all(|key| !key.starts_with("app.kubernetes.io/")), "{labels:?}");
    assert_eq!(archive.metadata.annotations.as_ref().expect("annotations")["vm.novasphere.dev/retained-from"], "default/keeper");
}

#[tokio::test]
async fn deleting_a_wukong_without_the_finalizer_writes_nothing() {
    let harness = Harness::new();
    let mut wukong: Value = wukong::yaml::from_str(WEB).expect("yaml");
    wukong["metadata"]["deletionTimestamp"] = json!("2026-11-22T09:00:00Z");
    harness.api.insert(wukong);
    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert_eq!(action, Action::await_change());
    assert_eq!(harness.write_summary(), Vec::<String>::new(), "no finalizer is added to a Wukong on its way out");
}

#[tokio::test]
async fn deleting_a_never_reconciled_wukong_is_immediate() {
    let harness = Harness::new();
    harness.create_wukong(WEB);
    harness.delete_wukong("prod", "web-server-01").await;
    assert!(harness.wukong("prod", "web-server-01").is_none());
}

#[tokio::test]
async fn deleting_a_refused_wukong_finishes_in_one_pass() {
    let harness = Harness::new();
    harness.create_wukong(WEB); // data-pvc is missing: refused, but the finalizer is on
    harness.reconcile("prod", "web-server-01").await.expect("refused");
    assert_eq!(harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["finalizers"], json!(["vm.novasphere.dev/cleanup"]));
    harness.delete_wukong("prod", "web-server-01").await;
    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("cleanup");

    assert_eq!(action, Action::await_change());
    assert_eq!(harness.write_summary(), ["patch /apis/vm.novasphere.dev/v1alpha1/namespaces/prod/wukongs/web-server-01"]);
    assert!(harness.wukong("prod", "web-server-01").is_none());
}

#[tokio::test]
async fn deletion_never_deletes_a_vm_it_does_not_control() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod", "labels": {"team": "legacy"}},
        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
    }));
    let foreign_before = harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm");
    harness.create_wukong(WEB);
    harness.reconcile("prod", "web-server-01").await.expect("refused: name conflict");
    harness.delete_wukong("prod", "web-server-01").await;
    harness.reconcile("prod", "web-server-01").await.expect("cleanup");

    assert!(harness.wukong("prod", "web-server-01").is_none());
    assert_eq!(harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm"), foreign_before);
}

#[tokio::test]
async fn deletion_does_not_wait_for_the_instance_of_a_vm_it_does_not_control() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod"},
        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
    }));
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod"},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running"},
    }));
    harness.create_wukong(WEB);
    harness.reconcile("prod", "web-server-01").await.expect("refused: name conflict");
    harness.delete_wukong("prod", "web-server-01").await;
    let action = harness.reconcile("prod", "web-server-01").await.expect("cleanup");

    assert_eq!(action, Action::await_change(), "the foreign instance does not hold the deletion");
    assert!(harness.wukong("prod", "web-server-01").is_none());
    assert!(harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm").is_some());
    assert!(harness.api.get("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm").is_some());
}

#[tokio::test]
async fn a_wukong_whose_spec_no_longer_reads_can_still_be_deleted() {
    let harness = converged_web(false).await;
    let existing_before = data_pvc(&harness);
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!("four"));
    harness.reconcile("prod", "web-server-01").await.expect("reported as an invalid spec");
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").reason, "InvalidSpec");
    harness.delete_wukong("prod", "web-server-01").await;

    let action = harness.reconcile("prod", "web-server-01").await.expect("first cleanup pass");
    assert_eq!(action, Action::requeue(STOP_POLL), "the VM goes first");
    harness.reconcile("prod", "web-server-01").await.expect("second cleanup pass");
    assert!(harness.wukong("prod", "web-server-01").is_none(), "the finalizer does not outlive a spec that no longer reads");
    assert_eq!(children_left(&harness), Vec::<&str>::new());
    assert_eq!(data_pvc(&harness), existing_before);
}
