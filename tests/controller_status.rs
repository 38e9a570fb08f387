//! Reconcile tests of the status: the phase and Ready condition following the
//! VirtualMachineInstance, addresses reported by KubeVirt, the
//! WaitForFirstConsumer rule of VolumesBound, and the write discipline (no
//! write without a change, lastTransitionTime moving only on a transition,
//! observedGeneration following the generation).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::fixtures::WEB;
use common::harness::{Harness, converged_web};
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

const EMPTY: &str = include_str!("../examples/empty-vm.yaml");

/// A Wukong with one blank disk on the `longhorn` class and no cloud-init.
const BLANK_ON_LONGHORN: &str = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {name: wffc-vm, namespace: default}
spec:
  cpu: 2
  memory: 2Gi
  networks: [{name: default, type: pod}]
  disks: [{name: data, size: 10Gi, storageClassName: longhorn}]
"#;

/// The VMI KubeVirt makes for `web-server-01-vm`: the VM template's labels,
/// and a status for `phase` (a node and the mgmt NIC's addresses once it runs).
fn seed_instance(harness: &Harness, phase: &str, ready: bool) {
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    let template = vm.spec.template.metadata.clone().unwrap_or_default();
    let mac = vm_mac(&vm);
    let mut status = json!({
        "phase": phase,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    });
    if phase != "Scheduling" && phase != "Pending" {
        status["nodeName"] = json!("node-7");
        status["interfaces"] =
            json!([{"name": "mgmt", "mac": mac, "ipAddress": "192.168.100.10", "ipAddresses": ["192.168.100.10", "fd00::10/64"]}]);
    }
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod", "labels": template["labels"]},
        "spec": {"domain": {"devices": {}}},
        "status": status,
    }));
    assert!(harness.api.get_typed::<VirtualMachineInstance>(Some("prod"), "web-server-01-vm").is_some(), "the seeded VMI is a valid VMI");
}

fn vm_mac(vm: &VirtualMachine) -> String {
    let spec = vm.spec.template.spec.as_ref().expect("template spec");
    let interfaces = spec.domain.devices.interfaces.as_ref().expect("interfaces");
    interfaces[0].mac_address.clone().expect("mac")
}

#[tokio::test]
async fn a_scheduling_instance_means_creating() {
    let harness = converged_web().await;
    seed_instance(&harness, "Scheduling", false);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Creating));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMIScheduling"));
    assert!(ready.message.contains("web-server-01-vm"), "{}", ready.message);
    assert_eq!(status.node_name, None);
}

#[tokio::test]
async fn a_running_ready_instance_means_running_with_node_and_addresses() {
    let harness = converged_web().await;
    seed_instance(&harness, "Scheduling", false);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");
    seed_instance(&harness, "Running", true);
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Running));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "VMIRunning"));
    assert!(ready.message.contains("web-server-01-vm"), "{}", ready.message);
    assert_eq!(status.node_name.as_deref(), Some("node-7"));
    assert_eq!(status.ip_address.as_deref(), Some("192.168.100.10"));
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    assert_eq!(status.networks.len(), 1);
    assert_eq!(status.networks[0].name, "mgmt");
    assert_eq!(status.networks[0].mac.as_deref(), Some(vm_mac(&vm).as_str()));
    assert_eq!(status.networks[0].ip_addresses, ["192.168.100.10", "fd00::10"], "prefix lengths are dropped");
    assert!(harness.event_reasons().contains(&"PhaseChanged".to_string()), "a phase change is an Event");
    assert_eq!(harness.write_summary(), ["patch /apis/vm.novasphere.dev/v1alpha1/namespaces/prod/wukongs/web-server-01/status"]);
}

#[tokio::test]
async fn a_running_instance_that_is_not_ready_is_reported_not_ready() {
    let harness = converged_web().await;
    seed_instance(&harness, "Running", false);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Running));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMINotReady"));
}

#[tokio::test]
async fn a_failed_instance_means_error() {
    let harness = converged_web().await;
    seed_instance(&harness, "Running", true);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");
    seed_instance(&harness, "Failed", false);
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Error));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMIFailed"));
    assert!(ready.message.contains("web-server-01-vm") && ready.message.contains("Failed"), "{}", ready.message);
    let events = harness.events();
    let phase_event = events.iter().find(|event| event["reason"] == "PhaseChanged").expect("a PhaseChanged Event");
    assert_eq!(phase_event["type"], "Warning", "entering Error is a warning");
    assert_eq!(phase_event["note"], "phase Running -> Error");
}

#[tokio::test]
async fn a_halted_vm_without_instance_is_stopped() {
    let harness = Harness::new();
    harness.create_wukong(EMPTY);
    harness.converge("default", "empty-vm", 4).await;

    let vm: VirtualMachine = harness.api.get_typed(Some("default"), "empty-vm-vm").expect("vm");
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Halted"), "autoStart: false halts the VM");
    let status = harness.status("default", "empty-vm");
    assert_eq!(status.phase, Some(Phase::Stopped));
    let ready = harness.condition("default", "empty-vm", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMStopped"));
    assert!(ready.message.contains("empty-vm-vm"), "{}", ready.message);
}

#[tokio::test]
async fn a_running_strategy_without_instance_is_creating() {
    let harness = converged_web().await;
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating));
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMIPending"));
}

#[tokio::test]
async fn a_refused_wukong_without_vm_is_error_not_pending() {
    let harness = Harness::new();
    harness.create_wukong(WEB); // data-pvc does not exist
    harness.reconcile("prod", "web-server-01").await.expect("a refusal is not a reconcile error");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Error));
    assert_eq!(status.vm_name, None);
    let ready = harness.condition("prod", "web-server-01", "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "VMNotCreated"));
}

fn storage_class(binding_mode: &str) -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "longhorn"},
        "provisioner": "driver.longhorn.io",
        "volumeBindingMode": binding_mode,
    })
}

/// Converges `wffc-vm` on a `longhorn` class with `binding_mode`, with its
/// blank claim left Pending by the provisioner.
async fn blank_claim_pending(binding_mode: &str) -> Harness {
    let harness = Harness::new();
    harness.api.insert(storage_class(binding_mode));
    harness.create_wukong(BLANK_ON_LONGHORN);
    harness.reconcile("default", "wffc-vm").await.expect("reconcile");
    harness.edit("v1", "persistentvolumeclaims", Some("default"), "wffc-vm-data", |claim| {
        claim["status"] = json!({"phase": "Pending"});
    });
    harness.converge("default", "wffc-vm", 4).await;
    harness
}

#[tokio::test]
async fn a_pending_claim_of_a_wait_for_first_consumer_class_counts_as_bound() {
    let harness = blank_claim_pending("WaitForFirstConsumer").await;

    assert!(harness.api.get_typed::<VirtualMachine>(Some("default"), "wffc-vm-vm").is_some(), "the VM is created");
    let bound = harness.condition("default", "wffc-vm", "VolumesBound");
    assert_eq!((bound.status.as_str(), bound.reason.as_str()), ("True", "AllBound"));
    let volume = &harness.status("default", "wffc-vm").volumes[0];
    assert_eq!((volume.pvc_name.as_deref(), volume.bound, volume.phase.as_deref()), (Some("wffc-vm-data"), true, Some("Pending")));
}

#[tokio::test]
async fn a_pending_claim_of_an_immediate_class_is_not_bound_but_the_vm_is_created() {
    let harness = blank_claim_pending("Immediate").await;

    assert!(harness.api.get_typed::<VirtualMachine>(Some("default"), "wffc-vm-vm").is_some(), "the VM is created");
    let bound = harness.condition("default", "wffc-vm", "VolumesBound");
    assert_eq!((bound.status.as_str(), bound.reason.as_str()), ("False", "VolumesPending"));
    assert!(bound.message.contains("wffc-vm-data (Pending)"), "{}", bound.message);
    assert!(!harness.status("default", "wffc-vm").volumes[0].bound);
}

#[tokio::test]
async fn a_bound_claim_turns_volumes_bound_true() {
    let harness = blank_claim_pending("Immediate").await;
    harness.edit("v1", "persistentvolumeclaims", Some("default"), "wffc-vm-data", |claim| {
        claim["status"] = json!({"phase": "Bound", "capacity": {"storage": "10Gi"}});
    });
    harness.reconcile("default", "wffc-vm").await.expect("reconcile");

    let bound = harness.condition("default", "wffc-vm", "VolumesBound");
    assert_eq!((bound.status.as_str(), bound.reason.as_str()), ("True", "AllBound"));
    let volume = &harness.status("default", "wffc-vm").volumes[0];
    assert_eq!((volume.bound, volume.size.as_deref(), volume.phase.as_deref()), (true, Some("10Gi"), Some("Bound")));
}

#[tokio::test]
async fn a_resync_with_nothing_changed_writes_no_status_and_keeps_transition_times() {
    let harness = converged_web().await;
    let before = harness.status("prod", "web-server-01");
    harness.set_time("2026-11-22T12:00:00Z");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert_eq!(harness.write_summary(), Vec::<String>::new());
    assert_eq!(harness.status("prod", "web-server-01"), before);
    assert!(before.conditions.iter().all(|condition| condition.last_transition_time == "2026-11-22T10:00:00Z"), "{before:?}");
}

#[tokio::test]
async fn only_the_condition_that_flips_gets_a_new_transition_time() {
    let harness = converged_web().await;
    let before = harness.status("prod", "web-server-01");
    harness.set_time("2026-11-22T12:00:00Z");
    seed_instance(&harness, "Running", true);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let after = harness.status("prod", "web-server-01");
    for condition in &after.conditions {
        let old = before.conditions.iter().find(|old| old.type_ == condition.type_).expect("same condition types");
        if condition.type_ == "Ready" {
            assert_eq!((old.status.as_str(), condition.status.as_str()), ("False", "True"));
            assert_eq!(condition.last_transition_time, "2026-11-22T12:00:00Z");
        } else {
            assert_eq!(condition.status, old.status, "{} did not flip", condition.type_);
            assert_eq!(condition.last_transition_time, old.last_transition_time, "{} keeps its transition time", condition.type_);
        }
    }
}

#[tokio::test]
async fn observed_generation_follows_the_generation() {
    let harness = converged_web().await;
    assert_eq!(harness.status("prod", "web-server-01").observed_generation, Some(1));
    let before = harness.status("prod", "web-server-01");
    harness.set_time("2026-11-22T12:00:00Z");
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!(6));
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let after = harness.status("prod", "web-server-01");
    assert_eq!(after.observed_generation, Some(2));
    assert!(after.conditions.iter().all(|condition| condition.observed_generation == Some(2)), "{after:?}");
    for condition in &after.conditions {
        let old = before.conditions.iter().find(|old| old.type_ == condition.type_).expect("same condition types");
        assert_eq!(condition.last_transition_time, old.last_transition_time, "{} did not change status", condition.type_);
    }
}

#[tokio::test]
async fn a_pending_claim_without_a_class_follows_the_default_class() {
    let harness = Harness::new();
    let mut class = storage_class("WaitForFirstConsumer");
    class["metadata"] = json!({"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}});
    harness.api.insert(class);
    harness.api.insert(storage_class("Immediate")); // longhorn, not the default
    harness.create_wukong(&BLANK_ON_LONGHORN.replace(", storageClassName: longhorn", ""));
    harness.reconcile("default", "wffc-vm").await.expect("reconcile");
    harness.edit("v1", "persistentvolumeclaims", Some("default"), "wffc-vm-data", |claim| {
        claim["status"] = json!({"phase": "Pending"});
    });
    harness.converge("default", "wffc-vm", 4).await;

    let bound = harness.condition("default", "wffc-vm", "VolumesBound");
    assert_eq!((bound.status.as_str(), bound.reason.as_str()), ("True", "AllBound"));
}
