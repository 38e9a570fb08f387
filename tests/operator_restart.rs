//! The real `wukong run` process lives through a restart of its API server (the fake over HTTP on loopback).
//!
//! In: a fake cluster with converged Wukongs, then an outage of the fake ([`fake_apiserver::FakeApi::go_down`]:
//! watches end, connections are refused) during which another API server replica takes writes (a new Wukong, a
//! deleted one), then the fake back with its watch history forgotten (every resumed watch gets 410 Expired) and more
//! writes right after (a new Wukong, a deleted one). Out: proof that the operator's watches reconnect and relist,
//! that it converges the new Wukongs and cleans up the deleted ones within a bounded wait, and that `/readyz` said
//! 503 (naming the failing watches) while they failed, `/healthz` stayed 200, and `/readyz` is 200 again after.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

#[path = "support/operator.rs"]
mod operator;

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use operator::{Scenario, http_get};
use serde_json::{Value, json};
use wukong::controller::wukong_resource;

const WUKONG: (&str, &str) = ("vm.novasphere.dev/v1alpha1", "wukongs");
const VM: (&str, &str) = ("kubevirt.io/v1", "virtualmachines");
const CLAIMS: (&str, &str) = ("v1", "persistentvolumeclaims");
/// How long the fake stays down: long enough for kube's default watch backoff to grow past its first steps.
const DOWN: Duration = Duration::from_secs(8);
/// How long the operator may take to converge everything once the fake is back.
const RESUME_SECONDS: u64 = 30;

/// `examples/empty-vm.yaml` named `name`.
fn wukong(name: &str) -> Value {
    let mut wukong: Value = wukong::yaml::from_str(include_str!("../examples/empty-vm.yaml")).unwrap();
    wukong["metadata"]["name"] = json!(name);
    wukong
}

/// What is missing for the Wukong `name` to be converged: children, finalizer and status phase Stopped.
fn unconverged(scenario: &Scenario, name: &str) -> Option<String> {
    let Some(wukong) = scenario.get(WUKONG, name) else { return Some(format!("{name}: absent")) };
    let mut missing = Vec::new();
    if scenario.get(VM, &format!("{name}-vm")).is_none() {
        missing.push("VirtualMachine");
    }
    if ["data1", "data2"].iter().any(|disk| scenario.get(CLAIMS, &format!("{name}-{disk}")).is_none()) {
        missing.push("claims");
    }
    if wukong["metadata"]["finalizers"].as_array().is_none_or(|finalizers| finalizers.is_empty()) {
        missing.push("finalizer");
    }
    if wukong["status"]["phase"] != "Stopped" {
        missing.push("phase Stopped");
    }
    (!missing.is_empty()).then(|| format!("{name}: no {}", missing.join(", ")))
}

/// What is left of the deleted Wukong `name`.
fn left_over(scenario: &Scenario, name: &str) -> Option<String> {
    let wukong = scenario.get(WUKONG, name)?;
    Some(format!("{name}: still there with finalizers {}", wukong["metadata"]["finalizers"]))
}

async fn endpoint(scenario: &Scenario, path: &str) -> (u16, String) {
    http_get(scenario.metrics, path).await.unwrap_or((0, "no answer".to_owned()))
}

#[tokio::test]
async fn the_operator_resumes_after_its_api_server_restarts() {
    let scenario = Scenario::start("operator-restart", &["--readiness-grace-seconds", "1"]).await;
    scenario.wait("/readyz answers 200", 20, async || (endpoint(&scenario, "/readyz").await.0 == 200).then_some(())).await;
    let wukongs: Api<DynamicObject> = Api::namespaced_with(scenario.fake.client(), "default", &wukong_resource());
    for name in ["old-0", "old-1", "old-2"] {
        wukongs.create(&PostParams::default(), &serde_json::from_value(wukong(name)).unwrap()).await.unwrap();
    }
    scenario
        .wait("the old Wukongs converge", 30, async || {
            ["old-0", "old-1", "old-2"].iter().all(|name| unconverged(&scenario, name).is_none()).then_some(())
        })
        .await;

    scenario.fake.go_down();
    let down_since = Instant::now();
    // Writes another API server replica takes meanwhile: a new Wukong, and a deletion (the finalizer holds it).
    scenario.fake.insert(wukong("new-0"));
    let mut deleted = scenario.get(WUKONG, "old-0").unwrap();
    deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    deleted["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    deleted["metadata"]["resourceVersion"] = Value::Null;
    scenario.fake.insert(deleted);
    let (_, unready) = scenario
        .wait_seeing("/readyz answers 503 while the watches fail", 20, async || {
            let (code, body) = endpoint(&scenario, "/readyz").await;
            // Each watch notices the outage on its own: wait until both named here have.
            if code == 503 && body.contains("Wukong") && body.contains("VirtualMachine") {
                Ok((code, body))
            } else {
                Err(format!("{code} {body}"))
            }
        })
        .await;
    assert!(unready.contains("Wukong") && unready.contains("VirtualMachine"), "/readyz should name the failing watches: {unready}");
    let (live, body) = endpoint(&scenario, "/healthz").await;
    assert_eq!(live, 200, "a short outage must not fail the liveness probe: {body}");
    tokio::time::sleep(DOWN.saturating_sub(down_since.elapsed())).await;
    scenario.fake.come_back();

    // Right after the restart, before the operator's watches are back: one more new Wukong and one more deletion.
    wukongs.create(&PostParams::default(), &serde_json::from_value(wukong("new-1")).unwrap()).await.unwrap();
    wukongs.delete("old-1", &DeleteParams::default()).await.unwrap();
    scenario
        .wait_seeing("the new Wukongs converge and the deleted ones are cleaned up", RESUME_SECONDS, async || {
            let unconverged = ["new-0", "new-1", "old-2"].iter().filter_map(|name| unconverged(&scenario, name));
            let left = ["old-0", "old-1"].iter().filter_map(|name| left_over(&scenario, name));
            let waiting: Vec<String> = unconverged.chain(left).collect();
            if waiting.is_empty() { Ok(()) } else { Err(waiting.join("; ")) }
        })
        .await;
    scenario.wait("/readyz answers 200 again", 20, async || (endpoint(&scenario, "/readyz").await.0 == 200).then_some(())).await;
    let log = scenario.log();
    assert!(log.contains("re-listing now watch=\"Wukong\""), "the Wukong watch should have re-listed after its version expired:\n{log}");
    let problems = scenario.stop().await;
    // kube's client logs every request the outage broke (refused, or sent on a closing connection) as an error;
    // anything else is the operator's.
    let outage = "kube_client::client::builder: failed with error client error";
    let errors: Vec<&String> = problems.iter().filter(|line| line.contains(" ERROR ") && !line.contains(outage)).collect();
    assert!(errors.is_empty(), "the operator logged errors: {errors:#?}");
}
