//! Reconcile tests of transient failures on a *running* Wukong: whichever call
//! fails — the GET of a password Secret, the apply of any child kind, the
//! status write — the status keeps saying what the caches show (phase
//! Running, Ready True), names the failing call in a condition and an Event,
//! and nothing flaps when the fault clears.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::fake_api::Request;
use common::fixtures::{DATA_PVC, WEB};
use common::harness::Harness;
use serde_json::{Value, json};
use wukong::api::{Phase, WukongStatus};
use wukong::controller::reconcile::Error;
use wukong_models::virtualmachine::VirtualMachine;

const NAMESPACE: &str = "prod";
const NAME: &str = "web-server-01";
const STATUS_PATH: &str = "/apis/vm.novasphere.dev/v1alpha1/namespaces/prod/wukongs/web-server-01/status";
const SECRET_PATH: &str = "/api/v1/namespaces/prod/secrets/ops-password";

/// web-server-01 with the ops user's password read from a Secret.
fn web_with_password() -> Value {
    let mut wukong: Value = wukong::yaml::from_str(WEB).expect("yaml");
    wukong["spec"]["cloudInit"]["users"][0]["passwordSecretRef"] = json!({"name": "ops-password", "key": "hash"});
    wukong
}

/// A converged web-server-01 whose VMI runs and is ready, with the status that says so.
async fn running() -> Harness {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.api.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ops-password", "namespace": NAMESPACE},
        "data": {"hash": "czNjcmV0"},
    }));
    harness.api.insert(web_with_password());
    harness.converge(NAMESPACE, NAME, 4).await;
    let vm: VirtualMachine = harness.api.get_typed(Some(NAMESPACE), "web-server-01-vm").expect("vm");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": NAMESPACE, "labels": labels},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running", "nodeName": "node-7", "conditions": [{"type": "Ready", "status": "True"}]},
    }));
    harness.converge(NAMESPACE, NAME, 3).await;
    assert_running(&harness.status(NAMESPACE, NAME));
    harness
}

fn assert_running(status: &WukongStatus) {
    assert_eq!(status.phase, Some(Phase::Running), "{status:?}");
    let ready = status.conditions.iter().find(|condition| condition.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "VMIRunning"), "{status:?}");
    assert_eq!(status.node_name.as_deref(), Some("node-7"));
}

/// Makes the next pass write the child at `path` (someone edited it), so its apply runs.
fn drift(harness: &Harness, api_version: &str, plural: &str, name: &str) {
    harness.edit(api_version, plural, Some(NAMESPACE), name, |object| {
        object["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("someone-else");
    });
}

/// Runs failing passes while the call keeps failing (two in a row: a pass
/// must not retry the call and then report what it could not read) and the
/// recovery after them; checks the status never leaves Running and Synced
/// names the failure, then clears.
async fn fails_then_recovers(harness: &Harness, failing: impl Fn(&Request) -> bool + Clone + Send + 'static, step: &str, names: &str) {
    const FAILING_PASSES: usize = 2;
    let before = harness.status(NAMESPACE, NAME);
    let ready_since = before.conditions.iter().find(|condition| condition.type_ == "Ready").expect("Ready").last_transition_time.clone();
    harness.api.clear_requests();
    for _ in 0..FAILING_PASSES {
        harness.api.fail_next(failing.clone(), 500, "InternalError");
    }
    for _ in 0..FAILING_PASSES {
        let error = harness.reconcile(NAMESPACE, NAME).await.expect_err("the pass fails while the call fails");
        assert_eq!(error.reason(), step, "{error}");
        assert!(error.to_string().contains(names), "the error names the failing call: {error}");
        assert_running(&harness.status(NAMESPACE, NAME));
        if step != "StatusFailed" {
            let synced = harness.condition(NAMESPACE, NAME, "Synced");
            assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("False", step));
            assert!(synced.message.contains(names), "{}", synced.message);
        }
    }
    assert!(harness.event_reasons().contains(&step.to_string()), "an Event names the failure: {:?}", harness.event_reasons());

    harness.converge(NAMESPACE, NAME, 4).await;
    let after = harness.status(NAMESPACE, NAME);
    assert_running(&after);
    assert_eq!(harness.condition(NAMESPACE, NAME, "Synced").status, "True");
    let ready = harness.condition(NAMESPACE, NAME, "Ready");
    assert_eq!(ready.last_transition_time, ready_since, "Ready never flapped");
    assert!(!harness.event_reasons().contains(&"PhaseChanged".to_string()), "the phase never changed: {:?}", harness.event_reasons());
}

#[tokio::test]
async fn a_failed_password_get_keeps_a_running_wukong_running() {
    let harness = running().await;
    harness.set_time("2026-11-22T11:00:00Z");
    let is_secret_get = |request: &Request| request.verb == "get" && request.path == SECRET_PATH;
    fails_then_recovers(&harness, is_secret_get, "ResolveFailed", "Secret \"prod/ops-password\"").await;
    let metrics = harness.context.metrics.render(None);
    assert!(metrics.contains("wukong_reconcile_errors_total{reason=\"InternalError\",step=\"resolve\"} 2"), "{metrics}");
}

#[tokio::test]
async fn a_failed_apply_of_any_child_kind_keeps_a_running_wukong_running() {
    let children = [
        ("k8s.cni.cncf.io/v1", "network-attachment-definitions", "web-server-01-mgmt", "NetworkAttachmentDefinition"),
        ("v1", "secrets", "web-server-01-cloudinit", "Secret"),
        ("v1", "persistentvolumeclaims", "web-server-01-cache", "PersistentVolumeClaim"),
        ("cdi.kubevirt.io/v1beta1", "datavolumes", "web-server-01-system", "DataVolume"),
        ("kubevirt.io/v1", "virtualmachines", "web-server-01-vm", "VirtualMachine"),
    ];
    for (api_version, plural, name, kind) in children {
        let harness = running().await;
        harness.set_time("2026-11-22T11:00:00Z");
        if plural == "network-attachment-definitions" {
            // FakeApi::insert would store this plural under another key: drift it through the client.
            let api: kube::Api<wukong_models::network_attachment_definition::NetworkAttachmentDefinition> =
                kube::Api::namespaced(harness.api.client(), NAMESPACE);
            let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}});
            api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("drift the NAD");
        } else {
            drift(&harness, api_version, plural, name);
        }
        let path = format!("/{plural}/{name}");
        let failing = move |request: &Request| request.verb == "patch" && request.path.ends_with(&path);
        fails_then_recovers(&harness, failing, "ApplyFailed", &format!("{kind} \"prod/{name}\"")).await;
    }
}

#[tokio::test]
async fn a_failed_status_write_keeps_the_last_status_and_says_so_in_an_event() {
    let harness = running().await;
    harness.set_time("2026-11-22T11:00:00Z");
    // A new generation makes the next pass write the status.
    harness.edit_spec(NAMESPACE, NAME, |spec| spec["highAvailability"]["nodeSelector"]["zone"] = json!("a"));
    let is_status_write = |request: &Request| request.verb == "patch" && request.path == STATUS_PATH;
    fails_then_recovers(&harness, is_status_write, "StatusFailed", "status of Wukong \"prod/web-server-01\"").await;
    assert_eq!(harness.status(NAMESPACE, NAME).observed_generation, Some(2));
}

#[tokio::test]
async fn errors_name_their_step() {
    let harness = running().await;
    harness.api.fail_next(|request: &Request| request.verb == "get" && request.path == SECRET_PATH, 500, "InternalError");
    let error = harness.reconcile(NAMESPACE, NAME).await.expect_err("the pass fails");
    assert!(matches!(error, Error::Resolve(_)), "{error:?}");
    assert_eq!(error.step(), "resolve");
}
