//! Reconcile tests of `spec.restartRequestedAt`: one restart per new token of
//! a running VM (virt-api's restart subresource, else — as here, the
//! in-memory API server serves no virt-api — deleting the instance), followed
//! in `status.restart` to Succeeded once a new instance runs; a stopped VM is
//! Skipped; an acknowledged or removed token does nothing; each decision is an Event.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::harness::{Harness, converged_web};
use serde_json::{Value, json};
use wukong::api::OperationPhase;
use wukong_models::virtualmachine::VirtualMachine;

/// The VMI KubeVirt runs for `web-server-01-vm`, with `uid`, in `phase`.
fn seed_instance(harness: &Harness, uid: &str, phase: &str) {
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("vm");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-server-01-vm", "namespace": "prod", "uid": uid, "labels": labels},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": phase, "nodeName": "node-a"},
    }));
}

fn instance_uid(harness: &Harness) -> Option<Value> {
    harness.api.get("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm").map(|vmi| vmi["metadata"]["uid"].clone())
}

/// The restart requests (subresource PUTs and instance deletions) since the last clear.
fn restart_requests(harness: &Harness) -> Vec<String> {
    harness
        .writes()
        .into_iter()
        .filter(|request| request.path.contains("/restart") || request.path.contains("/virtualmachineinstances/"))
        .map(|request| format!("{} {}", request.verb, request.path))
        .collect()
}

#[tokio::test]
async fn a_new_token_restarts_the_running_vm_once() {
    let harness = converged_web().await;
    seed_instance(&harness, "uid-1", "Running");
    harness.edit_spec("prod", "web-server-01", |spec| spec["restartRequestedAt"] = json!("2026-12-02T10:00:00Z"));

    // First pass: acknowledged as Pending, nothing sent yet.
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("acknowledge");
    let mut reasons = harness.event_reasons();
    let restart = harness.status("prod", "web-server-01").restart.expect("status.restart");
    assert_eq!((restart.requested_at.as_str(), restart.phase), ("2026-12-02T10:00:00Z", OperationPhase::Pending));
    assert_eq!(restart.old_instance_uid.as_deref(), Some("uid-1"));
    assert!(restart_requests(&harness).is_empty(), "nothing is sent before the status acknowledges the token");

    // Second pass: the subresource answers 404 (no virt-api), so the instance is deleted.
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("send");
    reasons.extend(harness.event_reasons());
    let sent = restart_requests(&harness);
    assert_eq!(
        sent,
        [
            "update /apis/subresources.kubevirt.io/v1/namespaces/prod/virtualmachines/web-server-01-vm/restart",
            "delete /apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances/web-server-01-vm",
        ]
    );
    assert_eq!(instance_uid(&harness), None, "the old instance is gone");
    let restart = harness.status("prod", "web-server-01").restart.expect("status.restart");
    assert_eq!(restart.phase, OperationPhase::Running);
    assert!(restart.message.as_deref().unwrap_or_default().contains("uid-1"), "{restart:?}");

    // Nothing more is sent while KubeVirt starts the new instance.
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("wait");
    assert!(restart_requests(&harness).is_empty());
    assert_eq!(harness.status("prod", "web-server-01").restart.expect("status.restart").phase, OperationPhase::Running);

    // KubeVirt runs a new instance: Succeeded.
    seed_instance(&harness, "uid-2", "Running");
    harness.set_time("2026-12-02T10:01:00Z");
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("follow");
    reasons.extend(harness.event_reasons());
    let restart = harness.status("prod", "web-server-01").restart.expect("status.restart");
    assert_eq!(restart.phase, OperationPhase::Succeeded);
    assert_eq!(restart.completed_at.as_deref(), Some("2026-12-02T10:01:00Z"));
    for reason in ["RestartPending", "RestartRunning", "RestartSucceeded"] {
        assert!(reasons.iter().any(|seen| seen == reason), "{reason} in {reasons:?}");
    }

    // The same token again (a re-applied manifest), then the field removed: nothing happens.
    harness.edit_spec("prod", "web-server-01", |spec| spec["cpu"] = json!(4));
    harness.api.clear_requests();
    harness.converge("prod", "web-server-01", 4).await;
    harness.edit_spec("prod", "web-server-01", |spec| {
        spec.as_object_mut().expect("spec").remove("restartRequestedAt");
    });
    harness.converge("prod", "web-server-01", 4).await;
    assert!(restart_requests(&harness).is_empty());
    assert_eq!(instance_uid(&harness), Some(json!("uid-2")));
    assert_eq!(harness.status("prod", "web-server-01").restart.expect("kept").phase, OperationPhase::Succeeded);

    // A new token restarts again.
    harness.edit_spec("prod", "web-server-01", |spec| spec["restartRequestedAt"] = json!("second"));
    harness.reconcile("prod", "web-server-01").await.expect("acknowledge");
    harness.reconcile("prod", "web-server-01").await.expect("send");
    assert_eq!(instance_uid(&harness), None, "the second token restarts once more");
}

#[tokio::test]
async fn a_vm_that_does_not_run_is_skipped_with_the_reason() {
    let harness = converged_web().await;
    seed_instance(&harness, "uid-1", "Scheduling");
    harness.edit_spec("prod", "web-server-01", |spec| spec["restartRequestedAt"] = json!("now"));
    harness.api.clear_requests();
    harness.reconcile("prod", "web-server-01").await.expect("skip");
    assert!(harness.event_reasons().iter().any(|reason| reason == "RestartSkipped"));
    harness.converge("prod", "web-server-01", 4).await;
    let restart = harness.status("prod", "web-server-01").restart.expect("status.restart");
    assert_eq!(restart.phase, OperationPhase::Skipped);
    assert_eq!(restart.message.as_deref(), Some("not restarted: the VM's instance is Scheduling, not Running"));
    assert!(restart.completed_at.is_some());
    assert!(restart_requests(&harness).is_empty());
    assert_eq!(instance_uid(&harness), Some(json!("uid-1")));

    // Running later does not bring the skipped token back.
    seed_instance(&harness, "uid-1", "Running");
    harness.converge("prod", "web-server-01", 4).await;
    assert_eq!(instance_uid(&harness), Some(json!("uid-1")));
}

#[tokio::test]
async fn a_lost_status_write_never_restarts_twice() {
    let harness = converged_web().await;
    seed_instance(&harness, "uid-1", "Running");
    harness.edit_spec("prod", "web-server-01", |spec| spec["restartRequestedAt"] = json!("once"));
    harness.reconcile("prod", "web-server-01").await.expect("acknowledge");
    // The restart is sent, but the status write that records it fails.
    harness.api.fail_next(|request| request.path.ends_with("/status"), 500, "InternalError");
    assert!(harness.reconcile("prod", "web-server-01").await.is_err());
    assert_eq!(instance_uid(&harness), None);
    // KubeVirt starts the new instance; the next passes only record it.
    seed_instance(&harness, "uid-2", "Running");
    harness.api.clear_requests();
    harness.converge("prod", "web-server-01", 4).await;
    assert!(restart_requests(&harness).is_empty(), "the new instance is never restarted");
    assert_eq!(harness.status("prod", "web-server-01").restart.expect("status.restart").phase, OperationPhase::Succeeded);
}
