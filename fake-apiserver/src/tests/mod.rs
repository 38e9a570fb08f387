//! Unit tests of the fake through an in-process `kube::Client`: CRUD, selectors, apply, finalizers, conflicts,
//! garbage collection, faults, the status subresource and JSON patch; watch tests in [`watch`], outages in [`outage`].

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod outage;
mod watch;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::FakeApi;
use crate::request::{APPLY_PATCH, JSON_PATCH};

#[derive(CustomResource, Clone, Debug, Deserialize, Serialize)]
#[kube(group = "example.com", version = "v1", kind = "Widget", namespaced, status = "WidgetStatus", schema = "disabled")]
pub struct WidgetSpec {
    size: u32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct WidgetStatus {
    ready: bool,
}

fn config_map(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {"key": "value"}})
}

fn owned(kind: &str, name: &str, owner: &Value, finalizers: Value) -> Value {
    let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]});
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "apps", "finalizers": finalizers, "ownerReferences": [reference]}})
}

fn api_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_gets_and_reports_missing_objects() {
    let fake = FakeApi::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let config_map: ConfigMap = serde_json::from_value(config_map("apps", "settings")).unwrap();
    let created = config_maps.create(&PostParams::default(), &config_map).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(config_maps.get("settings").await.unwrap().data, created.data);
    let missing = config_maps.get("missing").await;
    assert!(matches!(&missing, Err(kube::Error::Api(status)) if status.code == 404 && status.reason == "NotFound"));
    assert_eq!(api_code(config_maps.create(&PostParams::default(), &config_map).await), 409);

    let namespaces: Api<Namespace> = Api::all(fake.client());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    assert_eq!(namespaces.list(&ListParams::default()).await.unwrap().items.len(), 1);
    assert!(fake.get_typed::<Namespace>(None, "apps").is_some());
    assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "value");
}

#[tokio::test]
async fn lists_with_label_selectors() {
    let fake = FakeApi::new();
    for (namespace, name, labels) in [
        ("apps", "web", json!({"app": "web", "tier": "front"})),
        ("apps", "db", json!({"app": "db"})),
        ("other", "web", json!({"app": "web"})),
    ] {
        let mut object = config_map(namespace, name);
        object["metadata"]["labels"] = labels;
        fake.insert(object);
    }
    let in_apps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let selected = in_apps.list(&ListParams::default().labels("app=web,tier=front")).await.unwrap();
    assert_eq!(selected.items.iter().map(|item| item.name_any()).collect::<Vec<_>>(), ["web"]);
    assert_eq!(in_apps.list(&ListParams::default()).await.unwrap().items.len(), 2);
    let everywhere: Api<ConfigMap> = Api::all(fake.client());
    assert_eq!(everywhere.list(&ListParams::default().labels("app=web")).await.unwrap().items.len(), 2);
    assert_eq!(fake.list_typed::<ConfigMap>().len(), 3);
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let fake = FakeApi::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let params = PatchParams::apply("test").force();
    let apply =
        |data: Value| Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data}));
    let first = config_maps.patch("settings", &params, &apply(json!({"a": "1", "b": "2"}))).await.unwrap();
    let second = config_maps.patch("settings", &params, &apply(json!({"a": "changed"}))).await.unwrap();
    let data = second.data.clone().unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("changed", "2"));
    assert_ne!(first.resource_version(), second.resource_version());
    assert_eq!(second.metadata.generation, Some(2));
    let unchanged = config_maps.patch("settings", &params, &apply(json!({"a": "changed"}))).await.unwrap();
    assert_eq!(unchanged.resource_version(), second.resource_version());
    let request = fake.requests().pop().unwrap();
    assert_eq!((request.verb.as_str(), request.content_type.as_deref()), ("patch", Some(APPLY_PATCH)));
    assert_eq!((request.query["fieldManager"].as_str(), request.query["force"].as_str()), ("test", "true"));
}

#[tokio::test]
async fn finalizers_hold_a_delete_until_a_patch_removes_them() {
    let fake = FakeApi::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let mut guarded = config_map("apps", "guarded");
    guarded["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    fake.insert(guarded);
    let pending = config_maps.delete("guarded", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(fake.get_typed::<ConfigMap>(Some("apps"), "guarded").unwrap().metadata.deletion_timestamp.is_some());
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    config_maps.patch("guarded", &PatchParams::default(), &release).await.unwrap();
    assert!(fake.get_typed::<ConfigMap>(Some("apps"), "guarded").is_none());

    fake.insert(config_map("apps", "plain"));
    assert!(config_maps.delete("plain", &DeleteParams::default()).await.unwrap().is_right());
    assert_eq!(api_code(config_maps.delete("plain", &DeleteParams::default()).await), 404);
}

#[tokio::test]
async fn stale_resource_versions_conflict() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "settings"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let stale = config_maps.get("settings").await.unwrap();
    let mut changed = stale.clone();
    changed.data = Some([("key".to_owned(), "new".to_owned())].into());
    let current = config_maps.replace("settings", &PostParams::default(), &changed).await.unwrap();
    assert_ne!(current.resource_version(), stale.resource_version());
    assert_eq!(current.metadata.generation, Some(2));
    assert_eq!(api_code(config_maps.replace("settings", &PostParams::default(), &stale).await), 409);
    let stale_patch = Patch::Merge(json!({"metadata": {"resourceVersion": stale.resource_version()}, "data": {"key": "x"}}));
    assert_eq!(api_code(config_maps.patch("settings", &PatchParams::default(), &stale_patch).await), 409);
    assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "new");
}

#[tokio::test]
async fn deletes_honour_uid_and_resource_version_preconditions() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "settings"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let read = config_maps.get("settings").await.unwrap();
    let wrong_uid = kube::api::Preconditions { uid: Some("another".to_owned()), resource_version: None };
    let params = DeleteParams { preconditions: Some(wrong_uid), ..DeleteParams::default() };
    assert_eq!(api_code(config_maps.delete("settings", &params).await.map(|_| ())), 409);
    let patch = Patch::Merge(json!({"data": {"key": "changed"}}));
    config_maps.patch("settings", &PatchParams::default(), &patch).await.unwrap();
    let stale = kube::api::Preconditions { uid: read.uid(), resource_version: read.resource_version() };
    let params = DeleteParams { preconditions: Some(stale), ..DeleteParams::default() };
    assert_eq!(api_code(config_maps.delete("settings", &params).await.map(|_| ())), 409);
    assert!(fake.get("v1", "configmaps", Some("apps"), "settings").is_some(), "a failed precondition deletes nothing");
    let current = config_maps.get("settings").await.unwrap();
    let fresh = kube::api::Preconditions { uid: current.uid(), resource_version: current.resource_version() };
    config_maps.delete("settings", &DeleteParams { preconditions: Some(fresh), ..DeleteParams::default() }).await.unwrap();
    assert!(fake.get("v1", "configmaps", Some("apps"), "settings").is_none());
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "owner"));
    let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
    fake.insert(owned("Secret", "child", &owner, json!([])));
    let child = fake.get("v1", "secrets", Some("apps"), "child").unwrap();
    fake.insert(owned("ConfigMap", "grandchild", &child, json!([])));
    fake.insert(owned("ConfigMap", "guarded", &owner, json!(["example.com/cleanup"])));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    config_maps.delete("owner", &DeleteParams::background()).await.unwrap();
    assert!(fake.get("v1", "secrets", Some("apps"), "child").is_none());
    assert!(fake.get("v1", "configmaps", Some("apps"), "grandchild").is_none());
    assert!(!fake.get("v1", "configmaps", Some("apps"), "guarded").unwrap()["metadata"]["deletionTimestamp"].is_null());

    fake.insert(config_map("apps", "owner"));
    let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
    fake.insert(owned("Secret", "orphan", &owner, json!([])));
    config_maps.delete("owner", &DeleteParams::orphan()).await.unwrap();
    assert_eq!(fake.get("v1", "secrets", Some("apps"), "orphan").unwrap()["metadata"]["ownerReferences"], json!([]));

    fake.set_garbage_collection(false);
    fake.insert(config_map("apps", "owner"));
    let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
    fake.insert(owned("Secret", "left-behind", &owner, json!([])));
    config_maps.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(fake.get("v1", "secrets", Some("apps"), "left-behind").is_some());
}

#[tokio::test]
async fn injected_faults_fail_one_matching_request() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "settings"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    fake.fail_next(|request| request.verb == "patch" && request.path.ends_with("/settings"), 500, "InternalError");
    let patch = Patch::Merge(json!({"data": {"key": "new"}}));
    assert_eq!(api_code(config_maps.get("missing").await), 404);
    assert_eq!(api_code(config_maps.patch("settings", &PatchParams::default(), &patch).await), 500);
    assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "value");
    config_maps.patch("settings", &PatchParams::default(), &patch).await.unwrap();
    let verbs: Vec<String> = fake.requests().into_iter().map(|request| request.verb).collect();
    assert_eq!(verbs, ["get", "patch", "patch"]);
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn status_subresource_only_changes_status() {
    let fake = FakeApi::new();
    let widgets: Api<Widget> = Api::namespaced(fake.client(), "apps");
    widgets.create(&PostParams::default(), &Widget::new("gear", WidgetSpec { size: 1 })).await.unwrap();
    let status_patch = Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 9}}));
    let patched = widgets.patch_status("gear", &PatchParams::default(), &status_patch).await.unwrap();
    assert_eq!((patched.spec.size, patched.status.clone(), patched.metadata.generation), (1, Some(WidgetStatus { ready: true }), Some(1)));
    let spec_patch = Patch::Merge(json!({"status": {"ready": false}, "spec": {"size": 2}}));
    let patched = widgets.patch("gear", &PatchParams::default(), &spec_patch).await.unwrap();
    assert_eq!((patched.spec.size, patched.status.clone(), patched.metadata.generation), (2, Some(WidgetStatus { ready: true }), Some(2)));
    let mut replacement = patched.clone();
    replacement.spec.size = 7;
    replacement.status = Some(WidgetStatus { ready: false });
    let replaced = widgets.replace_status("gear", &PostParams::default(), &replacement).await.unwrap();
    assert_eq!((replaced.spec.size, replaced.status), (2, Some(WidgetStatus { ready: false })));
    let apply = Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"ready": true}}));
    assert_eq!(api_code(widgets.patch_status("missing", &PatchParams::apply("test"), &apply).await), 404);
    assert_eq!(fake.get_typed::<Widget>(Some("apps"), "gear").unwrap().metadata.generation, Some(2));
}

#[tokio::test]
async fn json_patch_applies_operations_and_honours_test() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "settings"));
    let client = fake.client();
    let send = |operations: Value| {
        let request = http::Request::patch("/api/v1/namespaces/apps/configmaps/settings").header(http::header::CONTENT_TYPE, JSON_PATCH);
        client.request::<ConfigMap>(request.body(serde_json::to_vec(&operations).unwrap()).unwrap())
    };
    let operations = json!([
        {"op": "test", "path": "/data/key", "value": "value"},
        {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
        {"op": "replace", "path": "/data/key", "value": "new"},
        {"op": "add", "path": "/data/extra", "value": "1"},
        {"op": "remove", "path": "/data/extra"},
    ]);
    let patched = send(operations).await.unwrap();
    assert_eq!(patched.labels()["app"], "web");
    assert_eq!(patched.data.unwrap()["key"], "new");
    assert_eq!(api_code(send(json!([{"op": "test", "path": "/data/key", "value": "value"}])).await), 422);
}
