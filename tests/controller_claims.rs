//! Reconcile tests of existing claims: a claim must exist, be Bound, have an
//! access mode a VM can use and not be used read-write by someone else (the
//! older Wukong wins); a claim in another namespace needs that namespace's
//! grant and is then cloned by CDI, never touched.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::time::Duration;

use common::fixtures::WEB;
use common::harness::Harness;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachine::VirtualMachine;

const RESTORED: &str = include_str!("../examples/restored-vm.yaml");

fn claim(namespace: &str, name: &str, phase: &str, modes: &[&str]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": "20Gi"}}},
        "status": {"phase": phase, "capacity": {"storage": "20Gi"}},
    })
}

fn data_pvc() -> Value {
    claim("prod", "data-pvc", "Bound", &["ReadWriteOnce"])
}

/// web-server-01 with its data disk's `existingPVC.readOnly` set.
fn web_with_read_only_data(read_only: bool) -> String {
    WEB.replace(
        "existingPVC: {name: data-pvc, namespace: prod, readOnly: false}",
        &format!("existingPVC: {{name: data-pvc, namespace: prod, readOnly: {read_only}}}"),
    )
}

/// A VirtualMachine that is not a Wukong's, mounting `data-pvc` read-write.
fn foreign_vm() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "legacy-vm", "namespace": "prod"},
        "spec": {
            "runStrategy": "Always",
            "template": {"spec": {
                "domain": {"devices": {"disks": [{"name": "data", "disk": {"bus": "virtio"}}]}},
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}],
            }},
        },
    })
}

fn has_vm(harness: &Harness, namespace: &str, name: &str) -> bool {
    harness.api.get_typed::<VirtualMachine>(Some(namespace), name).is_some()
}

/// Writes other than the Wukong's own (finalizer, status).
fn child_writes(harness: &Harness) -> Vec<String> {
    harness.write_summary().into_iter().filter(|write| !write.contains("/wukongs/")).collect()
}

async fn refused_with(harness: &Harness, namespace: &str, name: &str, reason: &str) -> wukong::api::Condition {
    harness.api.clear_requests();
    let action = harness.reconcile(namespace, name).await.expect("a refusal is not a reconcile error");
    assert_eq!(action, Action::requeue(Duration::from_secs(120)), "a refused Wukong is looked at again later");
    assert_eq!(harness.status(namespace, name).phase, Some(Phase::Error));
    let valid = harness.condition(namespace, name, "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", reason), "{}", valid.message);
    assert_eq!(child_writes(harness), Vec::<String>::new(), "nothing is created for a refused Wukong");
    valid
}

#[tokio::test]
async fn a_missing_claim_is_refused_with_an_event_and_no_vm() {
    let harness = Harness::new();
    harness.create_wukong(WEB);
    let valid = refused_with(&harness, "prod", "web-server-01", "ClaimNotFound").await;

    assert!(valid.message.contains("spec.disks[1].existingPVC"), "{}", valid.message);
    assert!(valid.message.contains("PersistentVolumeClaim \"prod/data-pvc\" does not exist"), "{}", valid.message);
    let events = harness.events();
    let event = events.iter().find(|event| event["reason"] == "ClaimNotFound").expect("a ClaimNotFound Event");
    assert_eq!(event["type"], "Warning");
    assert!(event["note"].as_str().expect("note").contains("prod/data-pvc"), "{event}");
    let posted = harness.api.requests().into_iter().any(|request| {
        request.verb == "create"
            && request.path == "/apis/events.k8s.io/v1/namespaces/prod/events"
            && request.body.is_some_and(|body| body["reason"] == "ClaimNotFound")
    });
    assert!(posted, "the Event is POSTed to the Wukong's namespace");
    assert!(!has_vm(&harness, "prod", "web-server-01-vm"));
    let status = harness.status("prod", "web-server-01");
    let data = status.volumes.iter().find(|volume| volume.name == "data").expect("data volume status");
    assert_eq!((data.pvc_name.as_deref(), data.bound, data.phase.as_deref()), (Some("data-pvc"), false, Some("Missing")));
}

#[tokio::test]
async fn a_claim_that_appears_later_lets_the_wukong_converge() {
    let harness = Harness::new();
    harness.create_wukong(WEB);
    refused_with(&harness, "prod", "web-server-01", "ClaimNotFound").await;
    harness.api.insert(data_pvc());
    harness.converge("prod", "web-server-01", 4).await;

    assert!(has_vm(&harness, "prod", "web-server-01-vm"));
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("True", "Valid"));
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating));
}

#[tokio::test]
async fn a_claim_that_is_not_bound_is_refused() {
    let harness = Harness::new();
    harness.api.insert(claim("prod", "data-pvc", "Pending", &["ReadWriteOnce"]));
    harness.create_wukong(WEB);
    let valid = refused_with(&harness, "prod", "web-server-01", "ClaimNotBound").await;
    assert!(valid.message.contains("\"prod/data-pvc\" is Pending, not Bound"), "{}", valid.message);
}

#[tokio::test]
async fn a_read_only_many_claim_is_refused_for_a_writable_disk() {
    let harness = Harness::new();
    harness.api.insert(claim("prod", "data-pvc", "Bound", &["ReadOnlyMany"]));
    harness.create_wukong(WEB);
    let valid = refused_with(&harness, "prod", "web-server-01", "ClaimAccessMode").await;
    assert!(valid.message.contains("\"prod/data-pvc\" has access modes [ReadOnlyMany]"), "{}", valid.message);
}

#[tokio::test]
async fn a_read_only_many_claim_is_accepted_for_a_read_only_disk() {
    let harness = Harness::new();
    harness.api.insert(claim("prod", "data-pvc", "Bound", &["ReadOnlyMany"]));
    harness.create_wukong(&web_with_read_only_data(true));
    harness.converge("prod", "web-server-01", 4).await;

    assert!(has_vm(&harness, "prod", "web-server-01-vm"));
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True");
}

#[tokio::test]
async fn a_claim_another_vm_writes_is_refused_naming_that_vm() {
    let harness = Harness::new();
    harness.api.insert(data_pvc());
    harness.api.insert(foreign_vm());
    assert!(has_vm(&harness, "prod", "legacy-vm"), "the seeded VM is a valid VM");
    harness.create_wukong(WEB);
    let valid = refused_with(&harness, "prod", "web-server-01", "ClaimInUse").await;
    assert!(valid.message.contains("\"prod/data-pvc\" is used read-write by VirtualMachine \"prod/legacy-vm\""), "{}", valid.message);
}

#[tokio::test]
async fn a_claim_another_vm_writes_can_be_attached_read_only() {
    let harness = Harness::new();
    harness.api.insert(data_pvc());
    harness.api.insert(foreign_vm());
    harness.create_wukong(&web_with_read_only_data(true));
    harness.converge("prod", "web-server-01", 4).await;

    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True");
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    let spec = vm.spec.template.spec.expect("template spec");
    let volume = spec.volumes.iter().flatten().find(|volume| volume.name == "data").expect("data volume");
    let source = volume.persistent_volume_claim.as_ref().expect("a claim volume");
    assert_eq!((source.claim_name.as_str(), source.read_only), ("data-pvc", Some(true)));
    let disk = spec.domain.devices.disks.iter().flatten().find(|disk| disk.name == "data").expect("data disk");
    assert_eq!(disk.disk.as_ref().and_then(|disk| disk.readonly), Some(true));
}

fn aged(yaml: &str, name: &str, created: &str) -> Value {
    let mut wukong: Value = wukong::yaml::from_str(&yaml.replace("name: web-server-01", &format!("name: {name}"))).expect("yaml");
    wukong["metadata"]["creationTimestamp"] = json!(created);
    wukong
}

#[tokio::test]
async fn of_two_wukongs_writing_one_claim_the_older_wins() {
    let harness = Harness::new();
    harness.api.insert(data_pvc());
    harness.api.insert(aged(WEB, "web-server-02", "2026-02-01T00:00:00Z"));
    harness.api.insert(aged(WEB, "web-server-01", "2026-01-01T00:00:00Z"));

    let valid = refused_with(&harness, "prod", "web-server-02", "ClaimInUse").await;
    assert!(valid.message.contains("used read-write by Wukong \"prod/web-server-01\""), "{}", valid.message);
    harness.converge("prod", "web-server-01", 4).await;
    assert!(has_vm(&harness, "prod", "web-server-01-vm"));
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True");

    let valid = refused_with(&harness, "prod", "web-server-02", "ClaimInUse").await;
    assert!(valid.message.contains("Wukong \"prod/web-server-01\""), "{}", valid.message);
    assert!(!has_vm(&harness, "prod", "web-server-02-vm"));
}

#[tokio::test]
async fn the_older_wukong_wins_whichever_is_reconciled_first() {
    let harness = Harness::new();
    harness.api.insert(data_pvc());
    harness.api.insert(aged(WEB, "web-server-01", "2026-02-01T00:00:00Z"));
    harness.api.insert(aged(WEB, "web-server-02", "2026-01-01T00:00:00Z"));

    harness.converge("prod", "web-server-02", 4).await;
    assert!(has_vm(&harness, "prod", "web-server-02-vm"));
    let valid = refused_with(&harness, "prod", "web-server-01", "ClaimInUse").await;
    assert!(valid.message.contains("Wukong \"prod/web-server-02\""), "{}", valid.message);
}

// --- cross-namespace claims ---

fn backup_claim(grant: Option<&str>) -> Value {
    let mut backup = claim("backups", "backup-disk-pvc", "Bound", &["ReadWriteOnce"]);
    if let Some(grant) = grant {
        backup["metadata"]["annotations"] = json!({"vm.novasphere.dev/clone-to-namespaces": grant});
    }
    backup
}

#[tokio::test]
async fn a_cross_namespace_claim_without_a_grant_is_refused() {
    let harness = Harness::new();
    harness.api.insert(backup_claim(None));
    harness.create_wukong(RESTORED);
    let valid = refused_with(&harness, "default", "restored-vm", "CrossNamespaceNotGranted").await;

    assert!(valid.message.contains("spec.disks[0].existingPVC"), "{}", valid.message);
    assert!(valid.message.contains("\"backups/backup-disk-pvc\"") && valid.message.contains("namespace \"default\""), "{}", valid.message);
    assert!(harness.api.get_typed::<DataVolume>(Some("default"), "restored-vm-system").is_none());
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("default"), "restored-vm-data").is_none());
    assert!(!has_vm(&harness, "default", "restored-vm-vm"));
}

#[tokio::test]
async fn a_grant_to_other_namespaces_only_is_refused() {
    let harness = Harness::new();
    harness.api.insert(backup_claim(Some("staging, dev")));
    harness.create_wukong(RESTORED);
    refused_with(&harness, "default", "restored-vm", "CrossNamespaceNotGranted").await;
}

async fn cloned_with_grant(grant: &str) {
    let harness = Harness::new();
    harness.api.insert(backup_claim(Some(grant)));
    let source_before = harness.api.get("v1", "persistentvolumeclaims", Some("backups"), "backup-disk-pvc");
    harness.create_wukong(RESTORED);
    harness.converge("default", "restored-vm", 4).await;

    let data_volume: DataVolume = harness.api.get_typed(Some("default"), "restored-vm-system").expect("a clone DataVolume");
    let source = data_volume.spec.source.as_ref().and_then(|source| source.pvc.as_ref()).expect("a pvc source");
    assert_eq!((source.namespace.as_str(), source.name.as_str()), ("backups", "backup-disk-pvc"), "grant {grant:?}");
    assert!(data_volume.metadata.owner_references.is_some_and(|owners| owners[0].kind == "Wukong"));
    let vm: VirtualMachine = harness.api.get_typed(Some("default"), "restored-vm-vm").expect("vm");
    let volumes = vm.spec.template.spec.expect("template spec").volumes.expect("volumes");
    let system = volumes.iter().find(|volume| volume.name == "system").expect("system volume");
    assert_eq!(system.data_volume.as_ref().map(|source| source.name.as_str()), Some("restored-vm-system"));
    assert_eq!(harness.condition("default", "restored-vm", "Valid").status, "True");
    assert_eq!(
        harness.api.get("v1", "persistentvolumeclaims", Some("backups"), "backup-disk-pvc"),
        source_before,
        "the source claim is untouched"
    );
}

#[tokio::test]
async fn a_claim_granted_to_the_namespace_is_cloned() {
    cloned_with_grant("default").await;
}

#[tokio::test]
async fn a_claim_granted_to_every_namespace_is_cloned() {
    cloned_with_grant("*").await;
}

#[tokio::test]
async fn a_claim_granted_in_a_list_is_cloned() {
    cloned_with_grant("a, default").await;
}
