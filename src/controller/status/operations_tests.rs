//! Table tests of `status.restart` and `status.migration`: what a token, the
//! previous status and the observed instance and migration give.

use std::sync::Arc;

use serde_json::{Value, json};
use wukong_models::virtualmachineinstancemigration::VirtualMachineInstanceMigration;

use super::Inputs;
use super::operations::{migration, restart};
use crate::api::{MigrationStatus, OperationPhase, RestartStatus, RunStrategy, WukongSpec, WukongStatus};
use crate::children::plan::Plan;
use crate::controller::instances::CachedInstance;
use crate::controller::observe::Observed;
use crate::controller::operations::Performed;

const NOW: &str = "2026-12-02T10:00:00Z";

fn instance(uid: &str, phase: &str, extra: Value) -> Arc<CachedInstance> {
    let mut status = json!({"phase": phase, "nodeName": "node-a"});
    if let (Some(status), Some(extra)) = (status.as_object_mut(), extra.as_object()) {
        status.extend(extra.clone());
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "web-vm", "namespace": "prod", "uid": uid},
            "spec": {"domain": {"devices": {}}}, "status": status,
        }))
        .expect("instance"),
    )
}

fn migration_object(name: &str, phase: &str) -> Arc<VirtualMachineInstanceMigration> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name, "namespace": "prod", "uid": "m-1"},
            "spec": {"vmiName": "web-vm"}, "status": {"phase": phase},
        }))
        .expect("migration"),
    )
}

fn inputs_for<T>(spec: &WukongSpec, previous: &WukongStatus, observed: &Observed, run: impl Fn(&Inputs<'_>) -> T) -> T {
    let plan = Plan { namespace: "prod".to_string(), wukong: "web".to_string(), ..Plan::default() };
    run(&Inputs {
        generation: Some(1),
        spec,
        run_strategy: RunStrategy::Always,
        plan: &plan,
        observed,
        failure: None,
        previous: Some(previous),
        now: NOW,
    })
}

fn restart_status(phase: OperationPhase, old: Option<&str>) -> RestartStatus {
    RestartStatus { requested_at: "t1".to_string(), phase, message: None, old_instance_uid: old.map(str::to_string), completed_at: None }
}

#[test]
fn restart_follows_the_token_and_the_instance() {
    let spec = WukongSpec { restart_requested_at: Some("t1".to_string()), ..WukongSpec::default() };
    let sent = Performed { restart: Some("sent".to_string()) };
    type Case = (&'static str, Option<RestartStatus>, Option<Arc<CachedInstance>>, Performed, Option<(OperationPhase, bool)>);
    let cases: Vec<Case> = vec![
        (
            "new token, running",
            None,
            Some(instance("u1", "Running", json!({}))),
            Performed::default(),
            Some((OperationPhase::Pending, false)),
        ),
        ("new token, no instance", None, None, Performed::default(), Some((OperationPhase::Skipped, true))),
        (
            "new token, scheduling",
            None,
            Some(instance("u1", "Scheduling", json!({}))),
            Performed::default(),
            Some((OperationPhase::Skipped, true)),
        ),
        (
            "pending, sent",
            Some(restart_status(OperationPhase::Pending, Some("u1"))),
            Some(instance("u1", "Running", json!({}))),
            sent.clone(),
            Some((OperationPhase::Running, false)),
        ),
        (
            "pending, the instance stopped before the restart was sent",
            Some(restart_status(OperationPhase::Pending, Some("u1"))),
            Some(instance("u1", "Succeeded", json!({}))),
            Performed::default(),
            Some((OperationPhase::Skipped, true)),
        ),
        (
            "pending, old gone (sent, the status write lost)",
            Some(restart_status(OperationPhase::Pending, Some("u1"))),
            None,
            Performed::default(),
            Some((OperationPhase::Pending, false)),
        ),
        (
            "running, old gone",
            Some(restart_status(OperationPhase::Running, Some("u1"))),
            None,
            Performed::default(),
            Some((OperationPhase::Running, false)),
        ),
        (
            "running, new instance runs",
            Some(restart_status(OperationPhase::Running, Some("u1"))),
            Some(instance("u2", "Running", json!({}))),
            Performed::default(),
            Some((OperationPhase::Succeeded, true)),
        ),
        (
            "running, new instance failed",
            Some(restart_status(OperationPhase::Running, Some("u1"))),
            Some(instance("u2", "Failed", json!({}))),
            Performed::default(),
            Some((OperationPhase::Failed, true)),
        ),
        (
            "succeeded stays",
            Some(RestartStatus { completed_at: Some("earlier".to_string()), ..restart_status(OperationPhase::Succeeded, Some("u1")) }),
            Some(instance("u1", "Running", json!({}))),
            sent,
            Some((OperationPhase::Succeeded, true)),
        ),
    ];
    for (what, previous, instance, performed, expected) in cases {
        let previous = WukongStatus { restart: previous, ..WukongStatus::default() };
        let observed = Observed { instance, operations: performed, ..Observed::default() };
        let status = inputs_for(&spec, &previous, &observed, restart);
        assert_eq!(status.as_ref().map(|status| (status.phase, status.completed_at.is_some())), expected, "{what}");
    }
    // No token: the last status is kept as it was.
    let previous = WukongStatus { restart: Some(restart_status(OperationPhase::Succeeded, None)), ..WukongStatus::default() };
    let kept = inputs_for(&WukongSpec::default(), &previous, &Observed::default(), restart);
    assert_eq!(kept, previous.restart);
}

#[test]
fn migration_is_acknowledged_skipped_or_mirrored() {
    let spec = WukongSpec {
        migration: Some(crate::api::Migration { requested_at: "t1".to_string(), ..Default::default() }),
        ..WukongSpec::default()
    };
    let name = crate::naming::migration_name("web", "t1");
    let acknowledged = |phase: &str| MigrationStatus {
        requested_at: "t1".to_string(),
        name: Some(name.clone()),
        phase: phase.to_string(),
        ..MigrationStatus::default()
    };
    let refused =
        json!({"conditions": [{"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable", "message": "RWO"}]});
    let state = json!({"migrationState": {"migrationUid": "m-1", "sourceNode": "node-a", "targetNode": "node-b"}});
    type Case =
        (&'static str, Option<MigrationStatus>, Option<Arc<CachedInstance>>, Option<&'static str>, (&'static str, Option<&'static str>));
    let cases: Vec<Case> = vec![
        ("new token, migratable", None, Some(instance("u1", "Running", json!({}))), None, ("Pending", Some("migration requested"))),
        ("new token, not running", None, None, None, ("Skipped", Some("not migrated: the VM has no running instance"))),
        (
            "new token, not migratable",
            None,
            Some(instance("u1", "Running", refused)),
            None,
            ("Skipped", Some("not migrated: DisksNotLiveMigratable: RWO")),
        ),
        (
            "acknowledged, not created yet",
            Some(acknowledged("Pending")),
            Some(instance("u1", "Running", json!({}))),
            None,
            ("Pending", None),
        ),
        (
            "running",
            Some(acknowledged("Pending")),
            Some(instance("u1", "Running", state.clone())),
            Some("Running"),
            ("Running", Some("migration Running")),
        ),
        (
            "succeeded",
            Some(acknowledged("Running")),
            Some(instance("u1", "Running", state)),
            Some("Succeeded"),
            ("Succeeded", Some("migrated to node \"node-b\"")),
        ),
        (
            "deleted while running",
            Some(acknowledged("Running")),
            Some(instance("u1", "Running", json!({}))),
            None,
            ("Failed", Some("VirtualMachineInstanceMigration")),
        ),
    ];
    for (what, previous, instance, migration_phase, (phase, message)) in cases {
        let previous = WukongStatus { migration: previous, ..WukongStatus::default() };
        let mut observed = Observed { instance, ..Observed::default() };
        observed.set(migration_phase.map(|phase| migration_object(&name, phase)).into_iter().collect());
        let status = inputs_for(&spec, &previous, &observed, migration).expect("a status");
        assert_eq!(status.phase, phase, "{what}");
        if let Some(message) = message {
            assert!(status.message.as_deref().unwrap_or_default().starts_with(message), "{what}: {status:?}");
        }
        assert_eq!(status.completed_at.is_some(), status.is_final(), "{what}: completedAt only when finished");
    }
}
