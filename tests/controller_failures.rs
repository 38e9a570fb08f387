//! Reconcile tests of failure: invalid specs (including one that does not
//! deserialise), transient API errors (reported, returned for backoff, then
//! recovered from) and crash safety (passes over stale caches converge with
//! no duplicates).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::sync::Arc;

use common::fake_api::Request;
use common::fixtures::{DATA_PVC, WEB};
use common::harness::Harness;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong::controller::reconcile::{Error, reconcile};
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

const WUKONG_PATH: &str = "/apis/vm.novasphere.dev/v1alpha1/namespaces/prod/wukongs/web-server-01";
const VM_PATH: &str = "/apis/kubevirt.io/v1/namespaces/prod/virtualmachines/web-server-01-vm";

fn web() -> Value {
    wukong::yaml::from_str(WEB).expect("yaml")
}

/// Writes other than the Wukong's own (finalizer, status).
fn child_writes(harness: &Harness) -> Vec<String> {
    harness.write_summary().into_iter().filter(|write| !write.contains("/wukongs/")).collect()
}

fn is_vm_apply(request: &Request) -> bool {
    request.verb == "patch" && request.path == VM_PATH
}

fn is_finalizer_patch(request: &Request) -> bool {
    request.verb == "patch" && request.path == WUKONG_PATH
}

/// How many objects of each child kind exist.
fn census(harness: &Harness) -> [usize; 5] {
    [
        harness.api.list_typed::<VirtualMachine>().len(),
        harness.api.list_typed::<NetworkAttachmentDefinition>().len(),
        harness.api.list_typed::<Secret>().len(),
        harness.api.list_typed::<DataVolume>().len(),
        harness.api.list_typed::<PersistentVolumeClaim>().len(),
    ]
}

/// One VM, one NAD, one Secret, one DataVolume, data-pvc and the cache claim.
const CONVERGED_WEB: [usize; 5] = [1, 1, 1, 1, 2];

// --- invalid specs ---

async fn assert_invalid(harness: &Harness, field: &str, words: &str) {
    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("an invalid spec is not a reconcile error");
    assert_eq!(action, Action::await_change(), "an invalid spec waits for the user's edit");
    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Error));
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(valid.message.contains(field) && valid.message.contains(words), "{}", valid.message);
    let synced = harness.condition("prod", "web-server-01", "Synced");
    assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("False", "NotApplied"));
    assert_eq!(child_writes(harness), Vec::<String>::new(), "no child is created");
    assert!(harness.event_reasons().contains(&"InvalidSpec".to_string()));
}

#[tokio::test]
async fn two_gateways_are_an_invalid_spec() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    let mut wukong = web();
    wukong["spec"]["networks"].as_array_mut().expect("networks").push(json!({
        "name": "backend", "type": "vlan", "bridge": "br-back", "vlanId": 200,
        "ipConfig": {"mode": "static", "address": "10.0.0.10/24", "gateway": "10.0.0.1"},
    }));
    harness.api.insert(wukong);
    assert_invalid(&harness, "spec.networks", "only one network may set a gateway").await;
}

#[tokio::test]
async fn a_bad_cidr_is_an_invalid_spec() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    let mut wukong = web();
    wukong["spec"]["networks"][0]["ipConfig"]["address"] = json!("192.168.100.10/33");
    harness.api.insert(wukong);
    assert_invalid(&harness, "spec.networks[0].ipConfig.address", "\"192.168.100.10/33\" is not a valid CIDR").await;
}

#[tokio::test]
async fn a_fixed_spec_converges_after_being_invalid() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    let mut wukong = web();
    wukong["spec"]["networks"][0]["ipConfig"]["address"] = json!("192.168.100.10/33");
    harness.api.insert(wukong);
    assert_invalid(&harness, "spec.networks[0].ipConfig.address", "CIDR").await;
    harness.edit_spec("prod", "web-server-01", |spec| spec["networks"][0]["ipConfig"]["address"] = json!("192.168.100.10/24"));
    harness.converge("prod", "web-server-01", 4).await;

    assert_eq!(census(&harness), CONVERGED_WEB);
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.observed_generation), ("True", Some(2)));
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating));
}

#[tokio::test]
async fn a_spec_that_does_not_deserialise_is_reported_with_its_field_path() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    let mut wukong = web();
    wukong["spec"]["cpu"] = json!("four");
    harness.api.insert(wukong);
    harness.api.clear_requests();
    let action = harness.reconcile("prod", "web-server-01").await.expect("an unreadable spec is not a reconcile error");

    assert_eq!(action, Action::await_change());
    assert_eq!(format!("{action:?}"), format!("{:?}", Action::await_change()));
    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Error));
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(valid.message.contains("spec.cpu") && valid.message.contains("four"), "{}", valid.message);
    assert_eq!(harness.write_summary(), [format!("patch {WUKONG_PATH}/status")], "only the status is written: no finalizer, no child");
    assert!(harness.event_reasons().contains(&"InvalidSpec".to_string()));
}

#[tokio::test]
async fn an_unknown_field_is_reported_with_its_path() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    let mut wukong = web();
    wukong["spec"]["disks"][2]["sise"] = json!("10Gi");
    harness.api.insert(wukong);
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(valid.message.contains("spec.disks[2]") && valid.message.contains("sise"), "{}", valid.message);
    assert_eq!(census(&harness), [0, 0, 0, 0, 1]);
}

// --- transient API errors ---

#[tokio::test]
async fn a_failed_vm_apply_is_returned_and_reported_then_recovered() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.api.fail_next(is_vm_apply, 500, "InternalError");
    let error = harness.reconcile("prod", "web-server-01").await.expect_err("the apply failed");

    assert!(matches!(error, Error::Apply(_)), "{error:?}");
    assert_eq!(error.reason(), "ApplyFailed");
    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Pending), "no VM yet, and nothing invalid");
    let synced = harness.condition("prod", "web-server-01", "Synced");
    assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("False", "ApplyFailed"));
    assert!(synced.message.contains("VirtualMachine \"prod/web-server-01-vm\""), "{}", synced.message);
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True", "a transient failure is not an invalid spec");
    assert!(harness.event_reasons().contains(&"ApplyFailed".to_string()));
    assert!(harness.api.get_typed::<VirtualMachine>(Some("prod"), "web-server-01-vm").is_none());

    harness.reconcile("prod", "web-server-01").await.expect("the next pass creates the VM");
    harness.reconcile("prod", "web-server-01").await.expect("the pass after it reports");
    let synced = harness.condition("prod", "web-server-01", "Synced");
    assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("True", "Applied"));
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating));
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(census(&harness), CONVERGED_WEB);
}

#[tokio::test]
async fn a_failed_repair_of_an_existing_vm_keeps_the_vm_phase() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.converge("prod", "web-server-01", 4).await;
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!(8));
    harness.api.fail_next(is_vm_apply, 500, "InternalError");
    let error = harness.reconcile("prod", "web-server-01").await.expect_err("the apply failed");

    assert!(matches!(error, Error::Apply(_)), "{error:?}");
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating), "the VM exists: not Pending");
    assert_eq!(harness.condition("prod", "web-server-01", "Synced").reason, "ApplyFailed");
}

#[tokio::test]
async fn a_transient_failure_keeps_the_volume_and_network_statuses() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.converge("prod", "web-server-01", 4).await;
    let before = harness.status("prod", "web-server-01");
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!(8));
    harness.api.fail_next(is_vm_apply, 500, "InternalError");
    harness.reconcile("prod", "web-server-01").await.expect_err("the apply failed");

    let after = harness.status("prod", "web-server-01");
    assert_eq!(after.volumes, before.volumes, "the existing claim is still data-pvc, Bound");
    assert_eq!(after.networks, before.networks);
    for type_ in ["VolumesBound", "NetworksConfigured", "Ready", "Valid"] {
        let (old, new) = (harness_condition(&before, type_), harness_condition(&after, type_));
        assert_eq!((new.status.as_str(), new.reason.as_str()), (old.status.as_str(), old.reason.as_str()), "{type_} does not flap");
    }
}

fn harness_condition<'a>(status: &'a wukong::api::WukongStatus, type_: &str) -> &'a wukong::api::Condition {
    status.conditions.iter().find(|condition| condition.type_ == type_).expect("condition")
}

#[tokio::test]
async fn a_conflict_on_the_finalizer_is_returned_then_recovered() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.api.fail_next(is_finalizer_patch, 409, "Conflict");
    harness.api.clear_requests();
    let error = harness.reconcile("prod", "web-server-01").await.expect_err("the finalizer patch conflicted");

    assert!(matches!(&error, Error::Finalizer { name, .. } if name == "web-server-01"), "{error:?}");
    assert_eq!(error.reason(), "FinalizerFailed");
    assert_eq!(harness.write_summary(), [format!("patch {WUKONG_PATH}")], "nothing is created before the finalizer is on");
    assert_eq!(harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["finalizers"], Value::Null);

    harness.reconcile("prod", "web-server-01").await.expect("the next pass succeeds");
    assert_eq!(harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["finalizers"], json!(["vm.novasphere.dev/cleanup"]));
    assert!(harness.api.get_typed::<VirtualMachine>(Some("prod"), "web-server-01-vm").is_some());
}

#[tokio::test]
async fn a_failed_status_write_is_returned_and_retried() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.reconcile("prod", "web-server-01").await.expect("the first pass creates the children");
    assert!(harness.api.get_typed::<VirtualMachine>(Some("prod"), "web-server-01-vm").is_some(), "the children were applied");
    harness.api.fail_next(|request| request.path == format!("{WUKONG_PATH}/status"), 500, "InternalError");
    let error = harness.reconcile("prod", "web-server-01").await.expect_err("the status write failed");

    assert!(matches!(error, Error::Status(_)), "{error:?}");
    assert!(harness.wukong("prod", "web-server-01").expect("wukong")["status"].is_null());
    harness.reconcile("prod", "web-server-01").await.expect("the next pass succeeds");
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Creating));
}

#[tokio::test]
async fn a_failed_vm_delete_during_cleanup_is_returned_then_recovered() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.converge("prod", "web-server-01", 4).await;
    harness.delete_wukong("prod", "web-server-01").await;
    harness.api.fail_next(|request| request.verb == "delete" && request.path == VM_PATH, 500, "InternalError");
    let error = harness.reconcile("prod", "web-server-01").await.expect_err("the VM delete failed");

    assert!(matches!(error, Error::Cleanup(_)), "{error:?}");
    assert!(error.to_string().contains("web-server-01-vm"), "{error}");
    assert!(harness.api.get_typed::<VirtualMachine>(Some("prod"), "web-server-01-vm").is_some());
    harness.reconcile("prod", "web-server-01").await.expect("deletes the VM");
    harness.reconcile("prod", "web-server-01").await.expect("finishes");
    assert!(harness.wukong("prod", "web-server-01").is_none());
    assert_eq!(census(&harness), [0, 0, 0, 0, 1], "only data-pvc is left");
}

// --- crash safety ---

#[tokio::test]
async fn a_pass_over_stale_caches_after_a_crash_creates_no_duplicates() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.api.fail_next(is_vm_apply, 500, "InternalError"); // the "crash": every child but the VM written
    harness.reconcile("prod", "web-server-01").await.expect_err("crashed");
    assert_eq!(census(&harness), [0, 1, 1, 1, 2]);

    harness.reconcile_without_sync("prod", "web-server-01").await.expect("a pass whose caches missed the first pass's writes");
    assert_eq!(census(&harness), CONVERGED_WEB);
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(census(&harness), CONVERGED_WEB);
    assert_eq!(harness.condition("prod", "web-server-01", "Synced").status, "True");
}

#[tokio::test]
async fn two_passes_before_the_watches_catch_up_create_no_duplicates() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.reconcile("prod", "web-server-01").await.expect("first pass");
    harness.api.clear_requests();
    harness.reconcile_without_sync("prod", "web-server-01").await.expect("second pass over stale caches");

    assert!(
        harness.writes().iter().all(|request| request.verb == "patch"),
        "server-side apply, never a create: {:?}",
        harness.write_summary()
    );
    // The pass knows what the first one wrote (controller/recent.rs): it
    // writes no child and no finalizer again, only the status.
    let writes = harness.write_summary();
    let objects = writes.iter().filter(|write| !write.contains("/events"));
    assert!(objects.clone().all(|write| write.contains("/status")), "only the status is written: {writes:?}");
    assert_eq!(census(&harness), CONVERGED_WEB);
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    assert_eq!(vm.metadata.owner_references.expect("owner").len(), 1);
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(census(&harness), CONVERGED_WEB);
}

#[tokio::test]
async fn a_pass_with_a_stale_wukong_starts_from_the_operators_own_write() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    let stale = wukong::api::GuardedWukong::from_value(harness.wukong("prod", "web-server-01").expect("wukong"));
    harness.reconcile("prod", "web-server-01").await.expect("first pass adds the finalizer");
    harness.api.clear_requests();
    reconcile(Arc::new(stale), harness.context.clone()).await.expect("the pass uses the written Wukong, not the stale one");

    let writes = harness.write_summary();
    assert!(
        !writes.iter().any(|write| write.contains("wukongs/web-server-01") && !write.contains("/status")),
        "no finalizer again: {writes:?}"
    );
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(census(&harness), CONVERGED_WEB);
}

#[tokio::test]
async fn a_pass_with_a_stale_wukong_conflicts_on_the_finalizer_then_converges() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    let stale = wukong::api::GuardedWukong::from_value(harness.wukong("prod", "web-server-01").expect("wukong"));
    harness.reconcile("prod", "web-server-01").await.expect("first pass adds the finalizer");
    // An operator that does not know the write (another replica, a restart).
    harness.context.recent.clear();
    let error = reconcile(Arc::new(stale), harness.context.clone()).await.expect_err("the stale object's finalizer patch conflicts");

    assert!(matches!(error, Error::Finalizer { .. }), "{error:?}");
    assert_eq!(harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["finalizers"], json!(["vm.novasphere.dev/cleanup"]));
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(census(&harness), CONVERGED_WEB);
}
