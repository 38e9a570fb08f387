//! Reconcile tests of the IPPool controller: the finalizer, the status
//! (size, allocated, free, Ready), the gauge, allocated back to its earlier
//! value once a Wukong is gone, and a deletion held while leases exist.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::harness::Harness;
use wukong::api::{IPPool, IPPoolStatus};
use wukong::controller::pools::FINALIZER;

const POOL: &str = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: IPPool
metadata: {name: vlan100}
spec:
  cidr: 192.168.100.0/24
  start: 192.168.100.10
  end: 192.168.100.200
  gateway: 192.168.100.1
  exclude: [192.168.100.50/31]
"#;

fn wukong(name: &str) -> String {
    format!(
        r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {{name: {name}, namespace: prod}}
spec:
  cpu: 1
  memory: 1Gi
  networks:
    - {{name: mgmt, type: vlan, vlanId: 100, ipConfig: {{mode: pool, pool: vlan100}}}}
"#
    )
}

fn pool(harness: &Harness) -> Option<IPPool> {
    harness.api.get_typed(None, "vlan100")
}

fn pool_status(harness: &Harness) -> IPPoolStatus {
    pool(harness).and_then(|pool| pool.status).unwrap_or_default()
}

fn gauge(harness: &Harness, state: &str) -> Option<String> {
    let text = harness.context.metrics.render(None);
    let series = format!("wukong_ippool_addresses{{pool=\"vlan100\",state=\"{state}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(series.as_str()).map(str::to_string))
}

#[tokio::test]
async fn a_pool_gets_its_finalizer_a_status_and_a_gauge_and_writes_nothing_when_unchanged() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.reconcile_pool("vlan100").await.expect("first pass");
    harness.reconcile_pool("vlan100").await.expect("second pass");
    let stored = pool(&harness).expect("pool");
    assert!(stored.metadata.finalizers.unwrap_or_default().contains(&FINALIZER.to_string()));
    let status = pool_status(&harness);
    assert_eq!((status.size, status.allocated, status.free), (Some(189), Some(0), Some(189)));
    assert_eq!(status.conditions[0].reason, "Valid");
    assert_eq!(gauge(&harness, "free").as_deref(), Some("189"));
    harness.api.clear_requests();
    harness.reconcile_pool("vlan100").await.expect("idle pass");
    assert!(harness.writes().is_empty(), "nothing changed, nothing written: {:?}", harness.write_summary());

    for name in ["a", "b"] {
        harness.create_wukong(&wukong(name));
        harness.converge("prod", name, 6).await;
    }
    harness.reconcile_pool("vlan100").await.expect("pass with leases");
    let status = pool_status(&harness);
    assert_eq!((status.allocated, status.free), (Some(2), Some(187)));
    assert_eq!(gauge(&harness, "allocated").as_deref(), Some("2"));

    // The Wukong goes: allocated returns to its earlier value.
    harness.delete_wukong("prod", "b").await;
    for _ in 0..3 {
        if harness.wukong("prod", "b").is_some() {
            harness.reconcile("prod", "b").await.expect("cleanup");
        }
    }
    harness.reconcile_pool("vlan100").await.expect("pass after the release");
    assert_eq!(pool_status(&harness).allocated, Some(1));
}

#[tokio::test]
async fn an_invalid_pool_says_which_field() {
    let harness = Harness::new();
    harness.create(&POOL.replace("gateway: 192.168.100.1", "gateway: 10.0.0.1"));
    harness.reconcile_pool("vlan100").await.expect("pass");
    let ready = pool_status(&harness).conditions.into_iter().find(|condition| condition.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
    assert!(ready.message.contains("spec.gateway"), "{}", ready.message);
}

#[tokio::test]
async fn a_pool_with_live_leases_cannot_be_deleted_until_they_are_released() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.reconcile_pool("vlan100").await.expect("finalizer");
    harness.create_wukong(&wukong("a"));
    harness.converge("prod", "a", 6).await;
    let api: kube::Api<IPPool> = kube::Api::all(harness.api.client());
    api.delete("vlan100", &kube::api::DeleteParams::default()).await.expect("delete the pool");

    harness.api.clear_requests();
    harness.reconcile_pool("vlan100").await.expect("blocked pass");
    assert!(pool(&harness).is_some(), "the finalizer holds the pool");
    let terminating = pool_status(&harness).conditions.into_iter().find(|condition| condition.type_ == "Terminating").expect("Terminating");
    assert!(terminating.message.starts_with("1 leases block the deletion: prod/a"), "{}", terminating.message);
    assert!(harness.event_reasons().contains(&"DeletionBlocked".to_string()), "{:?}", harness.event_reasons());
    // The Wukong cannot take another address from a pool being deleted, but keeps its own.
    harness.create_wukong(&wukong("b"));
    harness.reconcile("prod", "b").await.expect("refusal");
    assert_eq!(harness.condition("prod", "b", "Valid").reason, "PoolNotFound");

    harness.delete_wukong("prod", "a").await;
    for _ in 0..3 {
        if harness.wukong("prod", "a").is_some() {
            harness.reconcile("prod", "a").await.expect("cleanup");
        }
    }
    harness.reconcile_pool("vlan100").await.expect("last pass");
    assert!(pool(&harness).is_none(), "the last lease went, so did the pool");
    assert_eq!(gauge(&harness, "free"), None, "the gauge's series goes with the pool");
}
