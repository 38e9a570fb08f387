//! Reconcile tests of refusals that depend on other objects: password Secrets
//! (missing, missing key, found and carried into cloud-init only) and names
//! taken by objects the Wukong does not control.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::fixtures::{DATA_PVC, WEB};
use common::harness::Harness;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

const SRIOV: &str = include_str!("../examples/sriov-vm.yaml");

const HASH: &str = "$6$rounds=4096$wukongsalt$3v1LH7zYQ1bS0mVtq0nVg1";

/// Base64 of `text`, as a Secret's `data` holds it.
fn base64(text: &str) -> String {
    let secret = Secret { data: Some([("k".to_string(), k8s_openapi::ByteString(text.as_bytes().to_vec()))].into()), ..Secret::default() };
    serde_json::to_value(secret).expect("json")["data"]["k"].as_str().expect("base64").to_string()
}

fn password_secret(key: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "admin-password", "namespace": "telco"},
        "type": "Opaque",
        "data": {key: base64(value)},
    })
}

fn user_data(harness: &Harness) -> String {
    let secret: Secret = harness.api.get_typed(Some("telco"), "dpdk-router-cloudinit").expect("cloud-init secret");
    String::from_utf8(secret.data.expect("data")["userdata"].0.clone()).expect("utf-8")
}

/// A VirtualMachine named like web-server-01's that no Wukong controls.
fn foreign_vm() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod", "labels": {"team": "legacy"}},
        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"cpu": {"cores": 1}, "devices": {}}}}},
    })
}

/// The running instance of [`foreign_vm`].
fn foreign_instance() -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod", "labels": {"team": "legacy"}},
        "spec": {"domain": {"devices": {}}},
        "status": {
            "phase": "Running",
            "nodeName": "node-1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "interfaces": [{"name": "mgmt", "ipAddress": "10.9.9.9"}],
        },
    })
}

/// Writes other than the Wukong's own (finalizer, status).
fn child_writes(harness: &Harness) -> Vec<String> {
    harness.write_summary().into_iter().filter(|write| !write.contains("/wukongs/")).collect()
}

async fn refused_with(harness: &Harness, namespace: &str, name: &str, reason: &str) -> String {
    harness.api.clear_requests();
    harness.reconcile(namespace, name).await.expect("a refusal is not a reconcile error");
    assert_eq!(harness.status(namespace, name).phase, Some(Phase::Error));
    let valid = harness.condition(namespace, name, "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", reason), "{}", valid.message);
    assert_eq!(child_writes(harness), Vec::<String>::new(), "nothing is created for a refused Wukong");
    assert!(harness.event_reasons().contains(&reason.to_string()), "an Event explains the refusal");
    valid.message
}

// --- passwords ---

#[tokio::test]
async fn a_missing_password_secret_is_refused() {
    let harness = Harness::new();
    harness.create_wukong(SRIOV);
    let message = refused_with(&harness, "telco", "dpdk-router", "SecretNotFound").await;
    assert!(message.contains("spec.cloudInit.users[0].passwordSecretRef"), "{message}");
    assert!(message.contains("Secret \"telco/admin-password\" does not exist"), "{message}");
    let metrics = harness.context.metrics.render(None);
    assert!(metrics.contains("wukong_reconcile_errors_total{reason=\"SecretNotFound\",step=\"validate\"}"), "{metrics}");
}

#[tokio::test]
async fn a_password_secret_without_the_key_is_refused() {
    let harness = Harness::new();
    harness.api.insert(password_secret("password", HASH));
    harness.create_wukong(SRIOV);
    let message = refused_with(&harness, "telco", "dpdk-router", "SecretKeyNotFound").await;
    assert!(message.contains("Secret \"telco/admin-password\" has no key \"hash\""), "{message}");
}

#[tokio::test]
async fn a_password_hash_reaches_the_cloud_init_user_data_only() {
    let harness = Harness::new();
    harness.api.insert(password_secret("hash", &format!("{HASH}\n")));
    harness.create_wukong(SRIOV);
    harness.converge("telco", "dpdk-router", 4).await;

    let user_data = user_data(&harness);
    assert!(user_data.contains(&format!("passwd: {HASH}\n")), "{user_data}");
    assert!(user_data.contains("lock_passwd: false"), "{user_data}");
    assert!(!user_data.contains("plain_text_passwd"), "{user_data}");
    let vm = harness.api.get("kubevirt.io/v1", "virtualmachines", Some("telco"), "dpdk-router-vm").expect("vm");
    assert!(!vm.to_string().contains("wukongsalt"), "the password never reaches the VM");
    assert_eq!(harness.condition("telco", "dpdk-router", "Valid").status, "True");
}

#[tokio::test]
async fn a_plain_password_is_set_as_plain_text() {
    let harness = Harness::new();
    harness.api.insert(password_secret("hash", "correct horse"));
    harness.create_wukong(SRIOV);
    harness.converge("telco", "dpdk-router", 4).await;

    let user_data = user_data(&harness);
    assert!(user_data.contains("plain_text_passwd: correct horse"), "{user_data}");
    assert!(user_data.contains("lock_passwd: false"), "{user_data}");
}

#[tokio::test]
async fn a_changed_password_updates_the_cloud_init_secret() {
    let harness = Harness::new();
    harness.api.insert(password_secret("hash", HASH));
    harness.create_wukong(SRIOV);
    harness.converge("telco", "dpdk-router", 4).await;
    let rotated = "$6$rounds=4096$newsalt$Zx9";
    harness.api.insert(password_secret("hash", rotated));
    harness.reconcile("telco", "dpdk-router").await.expect("reconcile");

    let user_data = user_data(&harness);
    assert!(user_data.contains(&format!("passwd: {rotated}\n")) && !user_data.contains(HASH), "{user_data}");
}

#[tokio::test]
async fn a_password_secret_that_appears_later_lets_the_wukong_converge() {
    let harness = Harness::new();
    harness.create_wukong(SRIOV);
    refused_with(&harness, "telco", "dpdk-router", "SecretNotFound").await;
    harness.api.insert(password_secret("hash", HASH));
    harness.converge("telco", "dpdk-router", 4).await;

    assert!(harness.api.get_typed::<VirtualMachine>(Some("telco"), "dpdk-router-vm").is_some());
    assert!(user_data(&harness).contains(HASH));
}

// --- names taken by someone else ---

#[tokio::test]
async fn a_foreign_vm_with_the_vm_name_is_a_name_conflict_and_left_alone() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.api.insert(foreign_vm());
    let foreign_before = harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm");
    harness.create_wukong(WEB);
    let message = refused_with(&harness, "prod", "web-server-01", "NameConflict").await;

    assert!(message.contains("VirtualMachine \"prod/web-server-01-vm\" already exists and is not managed by this Wukong"), "{message}");
    assert_eq!(harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm"), foreign_before);
    harness.reconcile("prod", "web-server-01").await.expect("still refused");
    assert_eq!(harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm"), foreign_before);
}

#[tokio::test]
async fn a_foreign_vms_running_instance_is_not_reported_as_the_wukongs() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.api.insert(foreign_vm());
    harness.api.insert(foreign_instance());
    harness.create_wukong(WEB);
    refused_with(&harness, "prod", "web-server-01", "NameConflict").await;

    let status = harness.status("prod", "web-server-01");
    assert_eq!((status.vm_name, status.node_name, status.ip_address), (None, None, None));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMNotCreated"));
    assert!(status.networks[0].ip_addresses.is_empty(), "{:?}", status.networks);
}

#[tokio::test]
async fn another_wukongs_attachment_with_the_name_is_a_name_conflict() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    // Created through the client: FakeApi::insert derives the plural
    // "networkattachmentdefinitions", not the CRD's "network-attachment-definitions".
    let foreign: NetworkAttachmentDefinition = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": "web-server-01-mgmt",
            "namespace": "prod",
            "ownerReferences": [{"apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong", "name": "web-server",
                                 "uid": "11111111-2222-4333-8444-555555555555", "controller": true}],
        },
        "spec": {"config": "{}"},
    }))
    .expect("attachment");
    let attachments: Api<NetworkAttachmentDefinition> = Api::namespaced(harness.api.client(), "prod");
    attachments.create(&PostParams::default(), &foreign).await.expect("create");
    let foreign_before = harness.api.get("k8s.cni.cncf.io/v1", "network-attachment-definitions", Some("prod"), "web-server-01-mgmt");
    harness.create_wukong(WEB);
    let message = refused_with(&harness, "prod", "web-server-01", "NameConflict").await;

    assert!(message.contains("NetworkAttachmentDefinition \"prod/web-server-01-mgmt\""), "{message}");
    assert!(foreign_before.is_some());
    assert_eq!(harness.api.get("k8s.cni.cncf.io/v1", "network-attachment-definitions", Some("prod"), "web-server-01-mgmt"), foreign_before);
}

#[tokio::test]
async fn a_recreated_wukong_does_not_adopt_its_retained_volume() {
    let harness = Harness::new();
    let keeper = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {name: keeper, namespace: default}
spec:
  cpu: 2
  memory: 4Gi
  networks: [{name: default, type: pod}]
  disks: [{name: archive, size: 20Gi, deletionPolicy: Retain}]
"#;
    harness.create_wukong(keeper);
    harness.converge("default", "keeper", 4).await;
    harness.delete_wukong("default", "keeper").await;
    harness.reconcile("default", "keeper").await.expect("deletes the VM");
    harness.reconcile("default", "keeper").await.expect("releases the volume");
    assert!(harness.wukong("default", "keeper").is_none());
    let released = harness.api.get("v1", "persistentvolumeclaims", Some("default"), "keeper-archive");
    assert!(released.is_some());

    harness.create_wukong(keeper);
    let message = refused_with(&harness, "default", "keeper", "NameConflict").await;
    assert!(message.contains("PersistentVolumeClaim \"default/keeper-archive\""), "{message}");
    assert_eq!(
        harness.api.get("v1", "persistentvolumeclaims", Some("default"), "keeper-archive"),
        released,
        "the released volume is not taken back"
    );
}
