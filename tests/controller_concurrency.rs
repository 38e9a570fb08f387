//! The real controller (watches, several reconciles in parallel) over the
//! in-memory API server: a burst of Wukongs from one pool, served by two
//! operator replicas at once (no leader election between them: the worst
//! case), one of them killed mid-burst and a fresh one started. Every
//! Wukong ends with exactly one lease, no address is leased twice, and none
//! is lost or re-allocated.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApi;
use serde_json::json;
use wukong::api::{IPLease, Wukong};
use wukong::controller::health::Health;
use wukong::controller::metrics::Metrics;
use wukong::controller::status::pacing::Pacing;
use wukong::controller::{Settings, run_until};

const WUKONGS: usize = 40;

fn settings() -> Settings {
    Settings { concurrency: 8, debounce: Duration::ZERO, pacing: Pacing::IMMEDIATE }
}

/// Starts one operator replica; aborting the task kills it (mid-reconcile,
/// as a killed process: no graceful shutdown).
fn replica(fake: &FakeApi) -> tokio::task::JoinHandle<()> {
    let health = Arc::new(Health::new(Metrics::new().expect("metrics")));
    let client = fake.client();
    tokio::spawn(async move { run_until(client, settings(), health, futures::future::pending()).await })
}

fn leases(fake: &FakeApi) -> Vec<IPLease> {
    fake.list_typed::<IPLease>()
}

/// Wukong UID -> the addresses its leases hold.
fn held(fake: &FakeApi) -> BTreeMap<String, Vec<String>> {
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for lease in leases(fake) {
        held.entry(lease.spec.holder.uid.clone()).or_default().push(lease.spec.address.clone());
    }
    held
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every Wukong shows, in its status, the one address it holds.
fn settled(fake: &FakeApi) -> bool {
    let held = held(fake);
    let wukongs = fake.list_typed::<Wukong>();
    wukongs.len() == WUKONGS
        && wukongs.iter().all(|wukong| {
            let uid = wukong.metadata.uid.clone().unwrap_or_default();
            let shown = wukong.status.as_ref().and_then(|status| status.networks.first()).map(|network| network.ip_addresses.clone());
            matches!(held.get(&uid), Some(addresses) if addresses.len() == 1 && shown.as_ref() == Some(addresses))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_from_one_pool_gets_distinct_addresses_across_replicas_and_a_restart() {
    let fake = FakeApi::new();
    fake.insert(json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "IPPool",
        "metadata": {"name": "burst"},
        "spec": {"cidr": "10.20.0.0/24", "gateway": "10.20.0.1"},
    }));
    for index in 0..WUKONGS {
        fake.insert(json!({
            "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
            "metadata": {"name": format!("burst-{index:02}"), "namespace": "prod"},
            "spec": {"cpu": 1, "memory": "1Gi", "networks": [
                {"name": "mgmt", "type": "vlan", "vlanId": 20, "ipConfig": {"mode": "pool", "pool": "burst"}}
            ]},
        }));
    }
    let first = replica(&fake);
    let second = replica(&fake);
    eventually("the burst is under way", || leases(&fake).len() >= WUKONGS / 4).await;
    first.abort();
    let third = replica(&fake);

    eventually("every Wukong shows the one address it holds", || settled(&fake)).await;
    second.abort();
    third.abort();

    let held = held(&fake);
    assert_eq!(held.len(), WUKONGS, "every Wukong holds a lease");
    let addresses: BTreeSet<&String> = held.values().flatten().collect();
    assert_eq!(addresses.len(), WUKONGS, "no address is leased twice: {held:?}");
    assert!(!addresses.contains(&"10.20.0.1".to_string()), "the gateway is never handed out");
    // Nothing re-allocated: the leases stayed what the statuses showed.
    let before: BTreeMap<String, Vec<String>> = held.clone();
    // A fresh replica, after an upgrade that lost every status: it shows the same addresses again.
    for wukong in fake.list("vm.novasphere.dev/v1alpha1", "wukongs") {
        let mut wukong = wukong;
        wukong.as_object_mut().expect("object").remove("status");
        fake.insert(wukong);
    }
    assert!(!settled(&fake));
    let fourth = replica(&fake);
    eventually("a fresh replica has settled", || settled(&fake)).await;
    fourth.abort();
    assert_eq!(self::held(&fake), before, "a restart re-allocates nothing");
}
