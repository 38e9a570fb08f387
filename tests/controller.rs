//! Reconcile tests against the in-memory API server: create, converge, status,
//! drift, orphan removal, existing claims, refusals, updates and deletion.

mod common;

use common::fixtures::{DATA_PVC, WEB};
use common::harness::Harness;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use serde_json::Value;
use wukong::api::Phase;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

fn condition<'a>(status: &'a wukong::api::WukongStatus, type_: &str) -> &'a wukong::api::Condition {
    status.conditions.iter().find(|condition| condition.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition in {status:?}"))
}

fn write_summary(harness: &Harness) -> Vec<String> {
    harness.writes().iter().map(|request| format!("{} {}", request.verb, request.path)).collect()
}

#[tokio::test]
async fn creates_every_child_as_rendered_and_reports_creating() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    let action = harness.reconcile("prod", "web-server-01").await.expect("reconcile");
    assert_eq!(action, kube::runtime::controller::Action::requeue(wukong::controller::reconcile::STATUS_AFTER_CREATE));
    assert!(
        harness.wukong("prod", "web-server-01").expect("wukong")["status"].is_null(),
        "the pass that creates the VM leaves the status to the next"
    );
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let wukong = harness.wukong("prod", "web-server-01").expect("wukong");
    assert_eq!(wukong["metadata"]["finalizers"], serde_json::json!(["vm.novasphere.dev/cleanup"]));
    let uid = wukong["metadata"]["uid"].as_str().expect("uid").to_string();

    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm created");
    let owner = &vm.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Wukong", uid.as_str(), Some(true)));
    assert_eq!(vm.spec.run_strategy.as_deref(), Some("Always"));
    let rendered: Vec<Value> = wukong::yaml::documents(&wukong::render::render(WEB).expect("render"))
        .iter()
        .map(|document| document.parse().expect("yaml"))
        .collect();
    let rendered_vm = rendered.iter().find(|object| object["kind"] == "VirtualMachine").expect("rendered vm");
    assert_eq!(serde_json::to_value(&vm.spec).expect("json"), rendered_vm["spec"], "the controller applies exactly what render prints");

    assert!(harness.api.get_typed::<NetworkAttachmentDefinition>(Some("prod"), "web-server-01-mgmt").is_some());
    assert!(harness.api.get_typed::<Secret>(Some("prod"), "web-server-01-cloudinit").is_some());
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_some());
    assert!(harness.api.get_typed::<DataVolume>(Some("prod"), "web-server-01-system").is_some());

    let existing: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "data-pvc").expect("existing claim");
    assert!(existing.metadata.owner_references.is_none(), "an existing claim is never owned");
    assert!(existing.metadata.labels.is_none(), "an existing claim is never labelled");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Creating));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.vm_name.as_deref(), Some("web-server-01-vm"));
    assert_eq!(condition(&status, "Valid").status, "True");
    assert_eq!(condition(&status, "NetworksConfigured").status, "True");
    assert_eq!(condition(&status, "Ready").reason, "VMIPending");
    assert_eq!(condition(&status, "VolumesBound").status, "False", "the new claims are not bound yet");
    assert_eq!(status.networks[0].nad_name.as_deref(), Some("web-server-01-mgmt"));
    assert_eq!(status.volumes[1].pvc_name.as_deref(), Some("data-pvc"));
    assert!(status.volumes[1].bound);
}

#[tokio::test]
async fn a_converged_wukong_costs_no_writes() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    let passes = harness.converge("prod", "web-server-01", 4).await;
    assert!(passes <= 3, "converged in {passes} passes");
    harness.api.clear_requests();
    harness.set_time("2026-11-22T11:00:00Z");
    harness.reconcile("prod", "web-server-01").await.expect("resync");
    assert_eq!(write_summary(&harness), Vec::<String>::new());
}
