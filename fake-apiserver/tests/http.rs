//! The fake over real HTTP on loopback: a `kube::Client` built from the generated kubeconfig creates, lists, applies,
//! watches (raw and through a reflector) and reads `/version`, exactly as it would against a cluster; and lives
//! through an outage of the fake (connections refused, then an expired watch and a relist).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::time::{Duration, Instant};

use fake_apiserver::{FakeApi, kubeconfig, serve};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

/// Serves a fresh fake on a free loopback port; returns it with a client that reaches it over HTTP.
async fn start() -> (FakeApi, Client) {
    let fake = FakeApi::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(fake.clone(), listener));
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig(&url)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{url}/"));
    assert_eq!(config.default_namespace, "default");
    (fake, Client::try_from(config).unwrap())
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"}}, "data": {"key": value}})).unwrap()
}

#[tokio::test]
async fn a_client_works_end_to_end_over_http() {
    let (fake, client) = start().await;
    assert_eq!(client.apiserver_version().await.unwrap().minor, "33");
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    config_maps.create(&PostParams::default(), &config_map("first", "1")).await.unwrap();
    let listed = config_maps.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(listed.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>(), ["first"]);
    let version = listed.metadata.resource_version.unwrap();

    let mut events = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();
    let apply = Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}, "data": {"key": "2"}}));
    config_maps.patch("second", &PatchParams::apply("test").force(), &apply).await.unwrap();
    config_maps.patch("first", &PatchParams::default(), &Patch::Merge(json!({"data": {"key": "changed"}}))).await.unwrap();
    config_maps.delete("second", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
        seen.push(match event {
            WatchEvent::Added(object) => format!("ADDED {}", object.name_any()),
            WatchEvent::Modified(object) => format!("MODIFIED {} {:?}", object.name_any(), object.data.unwrap()["key"]),
            WatchEvent::Deleted(object) => format!("DELETED {}", object.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED second", "MODIFIED first \"changed\"", "DELETED second"]);

    let leases: Api<Lease> = Api::default_namespaced(client);
    let lease = Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "me"}}));
    leases.patch("lock", &PatchParams::apply("test"), &lease).await.unwrap();
    assert_eq!(leases.get("lock").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("me"));
    let verbs: Vec<String> = fake.requests().into_iter().map(|request| request.verb).collect();
    assert_eq!(verbs, ["create", "list", "watch", "patch", "patch", "delete", "patch", "get"]);
}

#[tokio::test]
async fn a_reflector_over_http_converges() {
    let (fake, client) = start().await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    config_maps.create(&PostParams::default(), &config_map("seeded", "1")).await.unwrap();
    let (store, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(Api::all(client), watcher::Config::default().any_semantic()));
    tokio::spawn(stream.default_backoff().for_each(|_| futures::future::ready(())));
    store.wait_until_ready().await.unwrap();

    for index in 0..20 {
        config_maps.create(&PostParams::default(), &config_map(&format!("item-{index}"), "1")).await.unwrap();
    }
    config_maps.patch("seeded", &PatchParams::default(), &Patch::Merge(json!({"data": {"key": "2"}}))).await.unwrap();
    for index in 0..10 {
        config_maps.delete(&format!("item-{index}"), &DeleteParams::default()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut cached: Vec<(String, String)> =
            store.state().iter().map(|object| (object.name_any(), object.resource_version().unwrap_or_default())).collect();
        cached.sort();
        let stored: Vec<(String, String)> = fake
            .list_typed::<ConfigMap>()
            .iter()
            .map(|object| (object.name_any(), object.resource_version().unwrap_or_default()))
            .collect();
        if cached == stored {
            assert_eq!(cached.len(), 11);
            break;
        }
        assert!(Instant::now() < deadline, "the reflector did not converge: {cached:?} against {stored:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_outage_refuses_connections_and_the_fake_comes_back_on_the_same_address() {
    let (fake, client) = start().await;
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    config_maps.create(&PostParams::default(), &config_map("seeded", "1")).await.unwrap();
    let version = config_maps.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut open = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();

    fake.go_down();
    let ended = tokio::time::timeout(Duration::from_secs(5), open.next()).await.expect("the open watch ends when the fake goes down");
    assert!(ended.is_none(), "the open watch ends, got {ended:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        // A request already on its way may meet the closing connection; the next ones are refused.
        match config_maps.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => panic!("a down fake does not answer over HTTP, got {status:?}"),
            Ok(list) => panic!("a down fake does not answer over HTTP, got {} objects", list.items.len()),
            Err(error) if format!("{error:?}").contains("Connect") => break error,
            Err(error) => assert!(Instant::now() < deadline, "no connection refused within 5 s, last {error:?}"),
        }
    };
    assert!(refused.to_string().contains("client error (Connect)"), "{refused}");

    fake.come_back();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(error) = config_maps.get("seeded").await {
        assert!(Instant::now() < deadline, "the fake does not answer again on its address: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut expired = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), expired.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&event, WatchEvent::Error(status) if status.code == 410 && status.reason == "Expired"), "{event:?}");
}
