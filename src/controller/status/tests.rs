//! Table tests of the phase and of every condition.

use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::{Value, json};
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

use super::{Failure, Inputs, compute, types};
use crate::api::{Condition, Phase, RunStrategy, Wukong, WukongStatus};
use crate::children::plan::{Plan, plan};
use crate::controller::instances::CachedInstance;
use crate::controller::observe::Observed;
use crate::validate::validate;

/// A Wukong with a VLAN network (so a NAD) and a blank disk (so a claim).
fn web() -> Wukong {
    serde_json::from_value(json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "generation": 3},
        "spec": {
            "cpu": 2, "memory": "2Gi",
            "networks": [{"name": "mgmt", "type": "vlan", "vlanId": 100}],
            "disks": [{"name": "data", "size": "10Gi", "storageClassName": "fast"}]
        }
    }))
    .expect("fixture wukong")
}

fn web_plan() -> Plan {
    plan(&validate(&web()).expect("valid fixture"))
}

fn object<K: serde::de::DeserializeOwned>(value: Value) -> Arc<K> {
    Arc::new(serde_json::from_value(value).expect("fixture object"))
}

fn vm(conditions: Value) -> Arc<VirtualMachine> {
    object(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "web-vm", "namespace": "prod"},
        "spec": {"template": {}},
        "status": {"conditions": conditions}
    }))
}

fn instance(phase: &str, ready: bool) -> Arc<CachedInstance> {
    object(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "web-vm", "namespace": "prod"},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": phase, "nodeName": "node-a",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
}

fn attachment() -> Arc<NetworkAttachmentDefinition> {
    object(json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                  "metadata": {"name": "web-mgmt", "namespace": "prod"}, "spec": {}}))
}

fn claim(phase: &str) -> Arc<PersistentVolumeClaim> {
    object(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": "web-data", "namespace": "prod"}, "status": {"phase": phase}}))
}

/// What the caches show, built up by the cases.
#[derive(Default)]
struct Seen {
    vm: Option<Arc<VirtualMachine>>,
    instance: Option<Arc<CachedInstance>>,
    attachment: bool,
    claim: Option<Arc<PersistentVolumeClaim>>,
    waits: bool,
}

fn observed(seen: Seen) -> Observed {
    let mut observed = Observed::default();
    observed.set(seen.vm.into_iter().collect());
    observed.instance = seen.instance;
    observed.set(if seen.attachment { vec![attachment()] } else { Vec::new() });
    observed.volume_claims = seen.claim.into_iter().collect();
    observed.wait_for_first_consumer.insert("fast".to_string(), seen.waits);
    observed
}

fn status_of(seen: Seen, strategy: RunStrategy, failure: Option<&Failure>, previous: Option<&WukongStatus>, now: &str) -> WukongStatus {
    let wukong = web();
    let plan = web_plan();
    let observed = observed(seen);
    compute(&Inputs {
        generation: wukong.metadata.generation,
        spec: &wukong.spec,
        run_strategy: strategy,
        plan: &plan,
        observed: &observed,
        failure,
        previous,
        now,
    })
}

fn condition<'a>(status: &'a WukongStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|condition| condition.type_ == type_).expect("every condition is present")
}

fn transient() -> Failure {
    Failure { reason: "ResolveFailed".to_string(), message: "failed to read Secret \"prod/pw\": 500".to_string(), invalid: false }
}

fn refused() -> Failure {
    Failure { reason: "ClaimNotFound".to_string(), message: "PersistentVolumeClaim \"prod/x\" does not exist".to_string(), invalid: true }
}

#[test]
fn phase_follows_the_design_notes_table() {
    let running = || Seen { vm: Some(vm(json!([]))), instance: Some(instance("Running", true)), ..Seen::default() };
    let cases: Vec<(&str, Seen, RunStrategy, Option<Failure>, Phase)> = vec![
        ("no VM yet", Seen::default(), RunStrategy::Always, None, Phase::Pending),
        ("VMI running", running(), RunStrategy::Always, None, Phase::Running),
        ("VMI running through a transient failure", running(), RunStrategy::Always, Some(transient()), Phase::Running),
        ("VMI running but the spec refused", running(), RunStrategy::Always, Some(refused()), Phase::Error),
        (
            "VMI pending",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Pending", false)), ..Seen::default() },
            RunStrategy::Always,
            None,
            Phase::Creating,
        ),
        (
            "VMI scheduling",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Scheduling", false)), ..Seen::default() },
            RunStrategy::Always,
            None,
            Phase::Creating,
        ),
        (
            "VMI scheduled",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Scheduled", false)), ..Seen::default() },
            RunStrategy::Always,
            None,
            Phase::Creating,
        ),
        (
            "VMI failed",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Failed", false)), ..Seen::default() },
            RunStrategy::Always,
            None,
            Phase::Error,
        ),
        (
            "VMI unknown",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Unknown", false)), ..Seen::default() },
            RunStrategy::Always,
            None,
            Phase::Error,
        ),
        (
            "VMI succeeded",
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Succeeded", false)), ..Seen::default() },
            RunStrategy::Once,
            None,
            Phase::Stopped,
        ),
        ("no VMI, halted", Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Halted, None, Phase::Stopped),
        ("no VMI, manual", Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Manual, None, Phase::Stopped),
        ("no VMI, always", Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Always, None, Phase::Creating),
        ("no VM, refused", Seen::default(), RunStrategy::Always, Some(refused()), Phase::Error),
    ];
    for (case, seen, strategy, failure, expected) in cases {
        let status = status_of(seen, strategy, failure.as_ref(), None, "t0");
        assert_eq!(status.phase, Some(expected), "{case}");
    }
}

#[test]
fn ready_condition_names_the_instance_state() {
    let cases: Vec<(Seen, RunStrategy, bool, &str)> = vec![
        (Seen::default(), RunStrategy::Always, false, "VMNotCreated"),
        (Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Halted, false, "VMStopped"),
        (Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Always, false, "VMIPending"),
        (
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Running", true)), ..Seen::default() },
            RunStrategy::Always,
            true,
            "VMIRunning",
        ),
        (
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Running", false)), ..Seen::default() },
            RunStrategy::Always,
            false,
            "VMINotReady",
        ),
        (
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Failed", false)), ..Seen::default() },
            RunStrategy::Always,
            false,
            "VMIFailed",
        ),
        (
            Seen { vm: Some(vm(json!([]))), instance: Some(instance("Scheduling", false)), ..Seen::default() },
            RunStrategy::Always,
            false,
            "VMIScheduling",
        ),
    ];
    for (seen, strategy, ready, reason) in cases {
        let status = status_of(seen, strategy, None, None, "t0");
        let found = condition(&status, types::READY);
        assert_eq!((found.status == "True", found.reason.as_str()), (ready, reason));
    }
}

#[test]
fn a_transient_failure_sets_only_synced_and_a_refusal_only_valid() {
    let running = || Seen {
        vm: Some(vm(json!([]))),
        instance: Some(instance("Running", true)),
        attachment: true,
        claim: Some(claim("Bound")),
        waits: false,
    };
    let healthy = status_of(running(), RunStrategy::Always, None, None, "t0");
    let failing = status_of(running(), RunStrategy::Always, Some(&transient()), None, "t0");
    for type_ in [types::READY, types::NETWORKS_CONFIGURED, types::VOLUMES_BOUND, types::VALID, types::RESTART_REQUIRED] {
        assert_eq!(condition(&failing, type_), condition(&healthy, type_), "{type_} must not change on a transient failure");
    }
    let synced = condition(&failing, types::SYNCED);
    assert_eq!((synced.status.as_str(), synced.reason.as_str()), ("False", "ResolveFailed"));
    assert!(synced.message.contains("prod/pw"), "{}", synced.message);
    assert_eq!(condition(&healthy, types::SYNCED).status, "True");

    let refusing = status_of(running(), RunStrategy::Always, Some(&refused()), None, "t0");
    let valid = condition(&refusing, types::VALID);
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "ClaimNotFound"));
    assert_eq!(condition(&refusing, types::SYNCED).reason, "NotApplied");
}

#[test]
fn networks_and_volumes_conditions_follow_the_children() {
    let cases: Vec<(Seen, bool, bool)> = vec![
        (Seen::default(), false, false),
        (Seen { attachment: true, claim: Some(claim("Bound")), ..Seen::default() }, true, true),
        (Seen { attachment: true, claim: Some(claim("Pending")), ..Seen::default() }, true, false),
        (Seen { attachment: true, claim: Some(claim("Pending")), waits: true, ..Seen::default() }, true, true),
    ];
    for (seen, networks, volumes) in cases {
        let status = status_of(seen, RunStrategy::Always, None, None, "t0");
        assert_eq!(condition(&status, types::NETWORKS_CONFIGURED).status == "True", networks);
        assert_eq!(condition(&status, types::VOLUMES_BOUND).status == "True", volumes);
        if !networks {
            assert_eq!(condition(&status, types::NETWORKS_CONFIGURED).message, "NetworkAttachmentDefinition \"web-mgmt\" does not exist");
        }
    }
}

#[test]
fn restart_required_mirrors_kubevirt() {
    let seen = Seen {
        vm: Some(vm(json!([{"type": "RestartRequired", "status": "True", "reason": "CPUChanged", "message": "cores changed"}]))),
        ..Seen::default()
    };
    let status = status_of(seen, RunStrategy::Always, None, None, "t0");
    let restart = condition(&status, types::RESTART_REQUIRED);
    assert_eq!((restart.status.as_str(), restart.reason.as_str(), restart.message.as_str()), ("True", "CPUChanged", "cores changed"));
    let status = status_of(Seen { vm: Some(vm(json!([]))), ..Seen::default() }, RunStrategy::Always, None, None, "t0");
    assert_eq!(condition(&status, types::RESTART_REQUIRED).status, "False");
}

#[test]
fn transition_times_move_only_when_a_status_changes() {
    let first = status_of(Seen::default(), RunStrategy::Always, None, None, "t0");
    assert!(first.conditions.iter().all(|condition| condition.last_transition_time == "t0" && condition.observed_generation == Some(3)));
    let same = status_of(Seen::default(), RunStrategy::Always, None, Some(&first), "t1");
    assert_eq!(same, first, "nothing changed: the status is equal, so it is not written");
    let running = Seen { vm: Some(vm(json!([]))), instance: Some(instance("Running", true)), ..Seen::default() };
    let changed = status_of(running, RunStrategy::Always, None, Some(&first), "t2");
    assert_eq!(condition(&changed, types::READY).last_transition_time, "t2");
    assert_eq!(condition(&changed, types::VALID).last_transition_time, "t0");
    assert_eq!(changed.node_name.as_deref(), Some("node-a"));
    assert_eq!(changed.vm_name.as_deref(), Some("web-vm"));
}
