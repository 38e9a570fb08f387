//! Outage tests through the in-process client: going down ends the watches and fails requests, coming back forgets
//! the watch history, and kube's own watcher and reflector relist and converge afterwards.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, WatchParams};
use kube::runtime::watcher;

use super::watch::{converged, next_events, pairs, reflect};
use super::{api_code, config_map};
use crate::FakeApi;

#[tokio::test]
async fn going_down_ends_watches_and_coming_back_expires_old_versions() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "first"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let version = config_maps.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut open = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();

    fake.go_down();
    assert!(fake.is_down());
    let ended = tokio::time::timeout(Duration::from_secs(5), open.next()).await.expect("the open watch ends when the fake goes down");
    assert!(ended.is_none(), "the open watch ends without an event, got {ended:?}");
    let logged = fake.requests().len();
    assert_eq!(api_code(config_maps.list(&ListParams::default()).await), 503);
    assert_eq!(api_code(config_maps.watch(&WatchParams::default(), &version).await.map(|_| ())), 503);
    assert_eq!(fake.requests().len(), logged, "requests made while down are not logged");
    // Another API server replica takes this write while ours is down.
    fake.insert(config_map("apps", "while-down"));

    fake.come_back();
    assert!(!fake.is_down());
    let mut expired = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();
    assert_eq!(next_events(&mut expired, 1).await, pairs(&[("ERROR", "410")]), "a watch from before the restart expires");
    let current = fake.resource_version().to_string();
    let mut resumed = config_maps.watch(&WatchParams::default(), &current).await.unwrap().boxed();
    fake.insert(config_map("apps", "after"));
    assert_eq!(next_events(&mut resumed, 1).await, pairs(&[("ADDED", "after")]), "a watch from the current version works");
    let names: Vec<String> = config_maps.list(&ListParams::default()).await.unwrap().iter().map(kube::ResourceExt::name_any).collect();
    assert_eq!(names, ["after", "first", "while-down"], "the stored objects survive the restart");
}

#[tokio::test]
async fn a_reflector_relists_after_a_restart() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "kept"));
    fake.insert(config_map("apps", "deleted-after"));
    let store = reflect(&fake, watcher::Config::default());
    store.wait_until_ready().await.unwrap();
    let lists = || fake.requests().iter().filter(|request| request.verb == "list").count();
    assert_eq!(lists(), 1);

    fake.go_down();
    fake.insert(config_map("apps", "added-while-down"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.come_back();
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    config_maps.delete("deleted-after", &DeleteParams::default()).await.unwrap();

    // kube's default backoff may wait several seconds between the failed and the expired attempts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !converged(&fake, &store) {
        let cached: Vec<String> = store.state().iter().map(|object| kube::ResourceExt::name_any(object.as_ref())).collect();
        assert!(Instant::now() < deadline, "the reflector did not converge after the restart; it holds {cached:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lists() >= 2, "the reflector relisted after its resumed watch expired");
}
