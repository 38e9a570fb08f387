//! Reconcile tests of change: drift repair (children edited or deleted by
//! someone else are put back), children the spec no longer wants (deleted, or
//! released when their disk said Retain), and spec updates reaching the VM
//! and the volumes (grow yes, shrink and re-import no).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::fixtures::{DATA_PVC, RETAINING, WEB};
use common::harness::Harness;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};
use wukong::api::Phase;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

const DHCP: &str = include_str!("../examples/dhcp-vm.yaml");

const VM_PATH: &str = "/apis/kubevirt.io/v1/namespaces/prod/virtualmachines/web-server-01-vm";
const CACHE_PATH: &str = "/api/v1/namespaces/prod/persistentvolumeclaims/web-server-01-cache";

async fn converged(harness: &Harness, yaml: &str, namespace: &str, name: &str) {
    harness.create_wukong(yaml);
    harness.converge(namespace, name, 4).await;
}

async fn converged_web() -> Harness {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    converged(&harness, WEB, "prod", "web-server-01").await;
    harness
}

fn vm(harness: &Harness) -> VirtualMachine {
    harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm")
}

fn cores(vm: &VirtualMachine) -> Option<i32> {
    vm.spec.template.spec.as_ref()?.domain.cpu.as_ref()?.cores
}

fn volume_names(vm: &VirtualMachine) -> Vec<String> {
    let spec = vm.spec.template.spec.as_ref().expect("template spec");
    spec.volumes.iter().flatten().map(|volume| volume.name.clone()).collect()
}

fn requested(claim: &PersistentVolumeClaim) -> String {
    claim.spec.as_ref().and_then(|spec| spec.resources.as_ref()).and_then(|resources| resources.requests.as_ref()).expect("requests")["storage"].0.clone()
}

fn disk_index(spec: &Value, name: &str) -> usize {
    spec["disks"].as_array().expect("disks").iter().position(|disk| disk["name"] == name).expect("disk")
}

fn remove_disk(spec: &mut Value, name: &str) {
    let index = disk_index(spec, name);
    spec["disks"].as_array_mut().expect("disks").remove(index);
}

fn set_disk(spec: &mut Value, name: &str, field: &str, value: Value) {
    let index = disk_index(spec, name);
    spec["disks"][index][field] = value;
}

fn has_owner(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    metadata.owner_references.as_ref().is_some_and(|owners| owners.iter().any(|owner| owner.kind == "Wukong"))
}

// --- drift repair ---

#[tokio::test]
async fn an_edited_vm_is_put_back() {
    let harness = converged_web().await;
    harness.edit("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm", |vm| {
        vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = json!(1);
    });
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let patches: Vec<_> = harness.writes().into_iter().filter(|request| request.path == VM_PATH).collect();
    assert_eq!(patches.len(), 1, "{:?}", harness.write_summary());
    assert_eq!(patches[0].verb, "patch");
    assert_eq!(patches[0].content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!((patches[0].query["fieldManager"].as_str(), patches[0].query["force"].as_str()), ("wukong-operator", "true"));
    assert_eq!(cores(&vm(&harness)), Some(4));
    assert_eq!(harness.converge("prod", "web-server-01", 2).await, 1, "one repair converges");
}

#[tokio::test]
async fn a_deleted_attachment_is_recreated() {
    let harness = converged_web().await;
    let uid = harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["uid"].clone();
    let attachments: Api<NetworkAttachmentDefinition> = Api::namespaced(harness.api.client(), "prod");
    attachments.delete("web-server-01-mgmt", &DeleteParams::default()).await.expect("delete");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let attachment: NetworkAttachmentDefinition = harness.api.get_typed(Some("prod"), "web-server-01-mgmt").expect("recreated");
    assert_eq!(attachment.metadata.owner_references.expect("owner")[0].uid, uid.as_str().expect("uid"));
    assert_eq!(
        harness.write_summary(),
        ["patch /apis/k8s.cni.cncf.io/v1/namespaces/prod/network-attachment-definitions/web-server-01-mgmt"]
    );
    let networks = harness.condition("prod", "web-server-01", "NetworksConfigured");
    assert_eq!(networks.status, "True");
}

#[tokio::test]
async fn a_deleted_cloud_init_secret_is_recreated() {
    let harness = converged_web().await;
    let before: Secret = harness.api.get_typed(Some("prod"), "web-server-01-cloudinit").expect("secret");
    let secrets: Api<Secret> = Api::namespaced(harness.api.client(), "prod");
    secrets.delete("web-server-01-cloudinit", &DeleteParams::default()).await.expect("delete");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let after: Secret = harness.api.get_typed(Some("prod"), "web-server-01-cloudinit").expect("recreated");
    assert_eq!(after.data, before.data);
    assert!(has_owner(&after.metadata));
    assert_eq!(harness.write_summary(), ["patch /api/v1/namespaces/prod/secrets/web-server-01-cloudinit"]);
}

#[tokio::test]
async fn an_edited_cloud_init_secret_is_put_back() {
    let harness = converged_web().await;
    let before: Secret = harness.api.get_typed(Some("prod"), "web-server-01-cloudinit").expect("secret");
    harness.edit("v1", "secrets", Some("prod"), "web-server-01-cloudinit", |secret| {
        secret["data"]["userdata"] = json!("I2Nsb3VkLWNvbmZpZwo="); // "#cloud-config\n"
    });
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let after: Secret = harness.api.get_typed(Some("prod"), "web-server-01-cloudinit").expect("secret");
    assert_eq!(after.data, before.data);
}

// --- children the spec no longer wants ---

#[tokio::test]
async fn a_removed_disk_deletes_its_claim() {
    let harness = converged_web().await;
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_some());
    harness.edit_spec("prod", "web-server-01", |spec| remove_disk(spec, "cache"));
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert!(harness.write_summary().contains(&format!("delete {CACHE_PATH}")), "{:?}", harness.write_summary());
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_none());
    assert_eq!(volume_names(&vm(&harness)), ["system", "data", "cloudinitdisk"]);
    assert!(harness.event_reasons().contains(&"Removed".to_string()));
    let existing: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "data-pvc").expect("existing claim stays");
    assert_eq!(existing.metadata.owner_references, None);
    harness.converge("prod", "web-server-01", 3).await;
    assert_eq!(
        harness.status("prod", "web-server-01").volumes.iter().map(|volume| volume.name.as_str()).collect::<Vec<_>>(),
        ["system", "data"]
    );
}

#[tokio::test]
async fn a_disk_removed_before_any_status_was_written_still_deletes_its_claim() {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    // A first pass creates the children; no status is written yet (the next pass reports).
    harness.reconcile("prod", "web-server-01").await.expect("first pass");
    assert!(harness.wukong("prod", "web-server-01").expect("wukong").get("status").is_none_or(Value::is_null), "no status yet");
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_some());
    harness.edit_spec("prod", "web-server-01", |spec| remove_disk(spec, "cache"));
    harness.sync();
    harness.reconcile("prod", "web-server-01").await.expect("second pass");
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("prod"), "web-server-01-cache").is_none(), "the orphan is found");
}

#[tokio::test]
async fn a_removed_imported_disk_deletes_its_data_volume() {
    let harness = converged_web().await;
    harness.edit_spec("prod", "web-server-01", |spec| remove_disk(spec, "system"));
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert!(harness.api.get_typed::<DataVolume>(Some("prod"), "web-server-01-system").is_none());
    assert_eq!(volume_names(&vm(&harness)), ["data", "cache", "cloudinitdisk"]);
}

#[tokio::test]
async fn a_removed_network_deletes_its_attachment() {
    let harness = Harness::new();
    converged(&harness, DHCP, "lab", "dhcp-worker").await;
    assert!(harness.api.get_typed::<NetworkAttachmentDefinition>(Some("lab"), "dhcp-worker-storage").is_some());
    harness.edit_spec("lab", "dhcp-worker", |spec| {
        spec["networks"].as_array_mut().expect("networks").retain(|network| network["name"] != "storage");
    });
    harness.api.clear_requests();
    harness.reconcile("lab", "dhcp-worker").await.expect("reconcile");

    assert!(
        harness
            .write_summary()
            .contains(&"delete /apis/k8s.cni.cncf.io/v1/namespaces/lab/network-attachment-definitions/dhcp-worker-storage".to_string()),
        "{:?}",
        harness.write_summary()
    );
    assert!(harness.api.get_typed::<NetworkAttachmentDefinition>(Some("lab"), "dhcp-worker-storage").is_none());
    assert!(harness.api.get_typed::<NetworkAttachmentDefinition>(Some("lab"), "dhcp-worker-lan").is_some());
    let vm: VirtualMachine = harness.api.get_typed(Some("lab"), "dhcp-worker-vm").expect("vm");
    let networks: Vec<String> = vm.spec.template.spec.expect("spec").networks.into_iter().flatten().map(|network| network.name).collect();
    assert_eq!(networks, ["lan"]);
    let annotation = &vm.metadata.annotations.expect("annotations")["k8s.v1.cni.cncf.io/networks"];
    assert!(!annotation.contains("dhcp-worker-storage"), "{annotation}");
}

#[tokio::test]
async fn a_removed_retained_disk_is_released_not_deleted() {
    let harness = Harness::new();
    converged(&harness, RETAINING, "default", "keeper").await;
    harness.edit_spec("default", "keeper", |spec| remove_disk(spec, "archive"));
    harness.api.clear_requests();
    harness.reconcile("default", "keeper").await.expect("reconcile");

    let claim: PersistentVolumeClaim = harness.api.get_typed(Some("default"), "keeper-archive").expect("a retained claim stays");
    assert!(claim.metadata.owner_references.as_ref().is_none_or(Vec::is_empty), "{:?}", claim.metadata.owner_references);
    let labels = claim.metadata.labels.clone().unwrap_or_default();
    assert!(labels.keys().all(|key| !key.starts_with("app.kubernetes.io/")), "{labels:?}");
    assert_eq!(claim.metadata.annotations.as_ref().expect("annotations")["vm.novasphere.dev/retained-from"], "default/keeper");
    assert_eq!(requested(&claim), "20Gi");
    assert!(!harness.write_summary().iter().any(|write| write.starts_with("delete")), "{:?}", harness.write_summary());
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("default"), "keeper-scratch").is_some());

    harness.converge("default", "keeper", 3).await;
    assert!(harness.api.get_typed::<PersistentVolumeClaim>(Some("default"), "keeper-archive").is_some(), "later passes leave it alone");
}

// --- updates ---

#[tokio::test]
async fn cpu_and_memory_changes_reach_the_vm() {
    let harness = converged_web().await;
    harness.edit_spec("prod", "web-server-01", |spec| {
        spec["cpu"] = json!(8);
        spec["memory"] = json!("16Gi");
    });
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert!(harness.write_summary().contains(&format!("patch {VM_PATH}")), "{:?}", harness.write_summary());
    let vm = vm(&harness);
    assert_eq!(cores(&vm), Some(8));
    let memory = vm.spec.template.spec.as_ref().and_then(|spec| spec.domain.memory.as_ref()).and_then(|memory| memory.guest.clone());
    assert_eq!(memory, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("16Gi".to_string())));
    assert_eq!(harness.status("prod", "web-server-01").observed_generation, Some(2));
}

#[tokio::test]
async fn a_run_strategy_change_reaches_the_vm() {
    let harness = converged_web().await;
    harness.edit_spec("prod", "web-server-01", |spec| spec["runStrategy"] = json!("Halted"));
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert_eq!(vm(&harness).spec.run_strategy.as_deref(), Some("Halted"));
    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Stopped));
}

#[tokio::test]
async fn kubevirts_restart_required_is_mirrored() {
    let harness = converged_web().await;
    assert_eq!(harness.condition("prod", "web-server-01", "RestartRequired").status, "False");
    harness.edit("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm", |vm| {
        vm["status"] =
            json!({"conditions": [{"type": "RestartRequired", "status": "True", "message": "a restart is needed to apply cpu"}]});
    });
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let restart = harness.condition("prod", "web-server-01", "RestartRequired");
    assert_eq!((restart.status.as_str(), restart.reason.as_str()), ("True", "RestartRequired"));
    assert_eq!(restart.message, "a restart is needed to apply cpu");
}

#[tokio::test]
async fn a_grown_blank_disk_grows_its_claim() {
    let harness = converged_web().await;
    harness.edit_spec("prod", "web-server-01", |spec| set_disk(spec, "cache", "size", json!("60Gi")));
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    assert!(harness.write_summary().contains(&format!("patch {CACHE_PATH}")), "{:?}", harness.write_summary());
    let claim: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "web-server-01-cache").expect("claim");
    assert_eq!(requested(&claim), "60Gi");
}

/// The claim CDI makes for the DataVolume `web-server-01-system`: same name,
/// controlled by the DataVolume, bound.
fn seed_cdi_claim(harness: &Harness, size: &str) {
    let data_volume: DataVolume = harness.api.get_typed(Some("prod"), "web-server-01-system").expect("data volume");
    harness.api.insert(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "web-server-01-system",
            "namespace": "prod",
            "ownerReferences": [{
                "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": "web-server-01-system",
                "uid": data_volume.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn", "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound", "capacity": {"storage": size}},
    }));
}

#[tokio::test]
async fn a_grown_imported_disk_grows_the_claim_cdi_made_not_the_data_volume() {
    let harness = converged_web().await;
    seed_cdi_claim(&harness, "80Gi");
    harness.converge("prod", "web-server-01", 3).await;
    let data_volume_before = harness.api.get("cdi.kubevirt.io/v1beta1", "datavolumes", Some("prod"), "web-server-01-system");
    harness.edit_spec("prod", "web-server-01", |spec| set_disk(spec, "system", "size", json!("100Gi")));
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let writes = harness.write_summary();
    assert!(writes.contains(&"patch /api/v1/namespaces/prod/persistentvolumeclaims/web-server-01-system".to_string()), "{writes:?}");
    assert!(!writes.iter().any(|write| write.contains("/datavolumes/")), "{writes:?}");
    assert_eq!(harness.api.get("cdi.kubevirt.io/v1beta1", "datavolumes", Some("prod"), "web-server-01-system"), data_volume_before);
    let claim: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "web-server-01-system").expect("claim");
    assert_eq!(requested(&claim), "100Gi");
    assert!(!has_owner(&claim.metadata), "the claim stays CDI's");
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True");
    assert_eq!(harness.converge("prod", "web-server-01", 2).await, 1, "one resize converges");
}

#[tokio::test]
async fn a_shrunk_disk_is_refused_and_its_claim_untouched() {
    let harness = converged_web().await;
    harness.edit_spec("prod", "web-server-01", |spec| set_disk(spec, "cache", "size", json!("40Gi")));
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("a refusal is not a reconcile error");

    let status = harness.status("prod", "web-server-01");
    assert_eq!(status.phase, Some(Phase::Error));
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "DiskShrinkRefused"));
    assert!(
        valid.message.contains("spec.disks[2].size") && valid.message.contains("40Gi") && valid.message.contains("50Gi"),
        "{}",
        valid.message
    );
    let claim: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "web-server-01-cache").expect("claim");
    assert_eq!(requested(&claim), "50Gi");
    assert!(!harness.write_summary().iter().any(|write| write.ends_with(CACHE_PATH)), "{:?}", harness.write_summary());
    assert!(harness.event_reasons().contains(&"DiskShrinkRefused".to_string()));
}

#[tokio::test]
async fn a_new_image_for_an_imported_disk_is_refused() {
    let harness = converged_web().await;
    let data_volume_before = harness.api.get("cdi.kubevirt.io/v1beta1", "datavolumes", Some("prod"), "web-server-01-system");
    harness.edit_spec("prod", "web-server-01", |spec| {
        set_disk(spec, "system", "image", json!("docker://quay.io/containerdisks/ubuntu:24.04"))
    });
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("a refusal is not a reconcile error");

    assert_eq!(harness.status("prod", "web-server-01").phase, Some(Phase::Error));
    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "ImageChangeRefused"));
    assert!(valid.message.contains("spec.disks[0].image") && valid.message.contains("ubuntu:22.04"), "{}", valid.message);
    assert_eq!(harness.api.get("cdi.kubevirt.io/v1beta1", "datavolumes", Some("prod"), "web-server-01-system"), data_volume_before);
    let writes = harness.write_summary();
    assert!(writes.iter().all(|write| write.ends_with("/wukongs/web-server-01/status")), "only the status is written: {writes:?}");
}

#[tokio::test]
async fn the_filesystem_overhead_cdi_adds_to_an_imported_claim_is_not_a_shrink() {
    let harness = converged_web().await;
    // With spec.storage and Filesystem volume mode, CDI requests more than the
    // DataVolume asks for (80Gi / (1 - 5.5%) ≈ 84.66Gi) for filesystem overhead.
    seed_cdi_claim(&harness, "90900000000");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("reconcile");

    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("True", "Valid"), "{}", valid.message);
    assert_ne!(harness.status("prod", "web-server-01").phase, Some(Phase::Error));
    let claim: PersistentVolumeClaim = harness.api.get_typed(Some("prod"), "web-server-01-system").expect("claim");
    assert_eq!(requested(&claim), "90900000000", "the claim is left as CDI made it");
}

#[tokio::test]
async fn shrinking_an_imported_disk_below_its_data_volume_is_refused() {
    let harness = converged_web().await;
    seed_cdi_claim(&harness, "90900000000");
    harness.converge("prod", "web-server-01", 3).await;
    harness.edit_spec("prod", "web-server-01", |spec| set_disk(spec, "system", "size", json!("60Gi")));
    harness.reconcile("prod", "web-server-01").await.expect("a refusal is not a reconcile error");

    let valid = harness.condition("prod", "web-server-01", "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "DiskShrinkRefused"));
    assert!(valid.message.contains("spec.disks[0].size") && valid.message.contains("80Gi"), "{}", valid.message);
}
