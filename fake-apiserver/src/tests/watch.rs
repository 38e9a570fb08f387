//! Watch tests, with kube's own `watcher` and `reflector` where they apply: convergence, resuming from a list
//! version, label selectors, expiry and relisting, timeouts, streaming lists; and the per-resource status subresource.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::{Widget, WidgetSpec, api_code, config_map};
use crate::FakeApi;

/// Polls `check` every 10 ms for up to 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `namespace/name` to `resourceVersion` of a set of objects.
fn versions<'a>(objects: impl Iterator<Item = &'a ConfigMap>) -> BTreeMap<String, String> {
    objects
        .map(|object| {
            (format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any()), object.resource_version().unwrap_or_default())
        })
        .collect()
}

/// Starts a reflector over every ConfigMap (with `config`) and returns its store.
pub(super) fn reflect(fake: &FakeApi, config: watcher::Config) -> reflector::Store<ConfigMap> {
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<ConfigMap>::all(fake.client()), config)).default_backoff();
    tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    store
}

pub(super) fn converged(fake: &FakeApi, store: &reflector::Store<ConfigMap>) -> bool {
    let stored = fake.list_typed::<ConfigMap>();
    versions(stored.iter()) == versions(store.state().iter().map(|object| object.as_ref()))
}

/// The next `count` events of a watch as (type, name), failing after 5 s.
pub(super) async fn next_events(
    stream: &mut (impl Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
    count: usize,
) -> Vec<(String, String)> {
    let mut events = Vec::new();
    while events.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
        events.push(match event {
            WatchEvent::Added(object) => ("ADDED".to_owned(), object.name_any()),
            WatchEvent::Modified(object) => ("MODIFIED".to_owned(), object.name_any()),
            WatchEvent::Deleted(object) => ("DELETED".to_owned(), object.name_any()),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(status) => ("ERROR".to_owned(), status.code.to_string()),
        });
    }
    events
}

pub(super) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(kind, name)| ((*kind).to_owned(), (*name).to_owned())).collect()
}

#[tokio::test]
async fn a_reflector_converges_across_creates_updates_and_deletes() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "seeded"));
    fake.insert(config_map("other", "seeded"));
    let store = reflect(&fake, watcher::Config::default().any_semantic());
    store.wait_until_ready().await.unwrap();
    assert_eq!(store.state().len(), 2);

    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let fresh: ConfigMap = serde_json::from_value(config_map("apps", "fresh")).unwrap();
    config_maps.create(&PostParams::default(), &fresh).await.unwrap();
    config_maps.patch("seeded", &PatchParams::default(), &Patch::Merge(json!({"data": {"key": "changed"}}))).await.unwrap();
    let mut guarded = config_map("apps", "guarded");
    guarded["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    fake.insert(guarded);
    eventually("the reflector sees the creates and the update", || converged(&fake, &store)).await;

    config_maps.delete("guarded", &DeleteParams::default()).await.unwrap();
    eventually("the reflector sees the deletion mark", || converged(&fake, &store)).await;
    assert!(store.state().iter().any(|object| object.metadata.deletion_timestamp.is_some()));
    config_maps.patch("guarded", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    config_maps.delete("fresh", &DeleteParams::default()).await.unwrap();
    let owner = fake.get("v1", "configmaps", Some("apps"), "seeded").unwrap();
    let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "seeded", "uid": owner["metadata"]["uid"]});
    let mut dependent = config_map("apps", "dependent");
    dependent["metadata"]["ownerReferences"] = json!([reference]);
    fake.insert(dependent);
    config_maps.delete("seeded", &DeleteParams::default()).await.unwrap();
    eventually("the reflector sees the deletions and the garbage collection", || converged(&fake, &store)).await;
    assert_eq!(versions(store.state().iter().map(|object| object.as_ref())).into_keys().collect::<Vec<_>>(), ["other/seeded"]);
}

#[tokio::test]
async fn a_watch_from_a_list_version_sees_only_later_changes() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "before"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let listed = config_maps.list(&ListParams::default()).await.unwrap();
    let version = listed.metadata.resource_version.unwrap();
    assert_eq!(version, fake.resource_version().to_string());

    let after: ConfigMap = serde_json::from_value(config_map("apps", "after")).unwrap();
    config_maps.create(&PostParams::default(), &after).await.unwrap();
    config_maps.patch("before", &PatchParams::default(), &Patch::Merge(json!({"data": {"key": "changed"}}))).await.unwrap();
    let mut replayed = config_maps.watch(&WatchParams::default(), &version).await.unwrap().boxed();
    assert_eq!(next_events(&mut replayed, 2).await, pairs(&[("ADDED", "after"), ("MODIFIED", "before")]));
    config_maps.delete("after", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_events(&mut replayed, 1).await, pairs(&[("DELETED", "after")]));

    let mut from_zero = config_maps.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert_eq!(next_events(&mut from_zero, 1).await, pairs(&[("ADDED", "before")]));
    let elsewhere: Api<ConfigMap> = Api::namespaced(fake.client(), "other");
    elsewhere.create(&PostParams::default(), &serde_json::from_value(config_map("other", "ignored")).unwrap()).await.unwrap();
    config_maps.create(&PostParams::default(), &after).await.unwrap();
    assert_eq!(next_events(&mut from_zero, 1).await, pairs(&[("ADDED", "after")]));
    assert_eq!(fake.requests().iter().filter(|request| request.verb == "watch").count(), 2);
}

#[tokio::test]
async fn a_label_selected_watch_sees_objects_enter_and_leave() {
    let fake = FakeApi::new();
    for (name, app) in [("web", "web"), ("db", "db")] {
        let mut object = config_map("apps", name);
        object["metadata"]["labels"] = json!({"app": app});
        fake.insert(object);
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let mut web = config_maps.watch(&WatchParams::default().labels("app=web"), "0").await.unwrap().boxed();
    assert_eq!(next_events(&mut web, 1).await, pairs(&[("ADDED", "web")]));
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    config_maps.patch("db", &PatchParams::default(), &Patch::Merge(json!({"data": {"key": "db only"}}))).await.unwrap();
    config_maps.patch("db", &PatchParams::default(), &relabel("web")).await.unwrap();
    config_maps.patch("web", &PatchParams::default(), &relabel("db")).await.unwrap();
    config_maps.delete("db", &DeleteParams::default()).await.unwrap();
    let events = next_events(&mut web, 3).await;
    assert_eq!(events, pairs(&[("ADDED", "db"), ("DELETED", "web"), ("DELETED", "db")]));

    let store = reflect(&fake, watcher::Config::default().labels("app=db"));
    store.wait_until_ready().await.unwrap();
    eventually("the selected reflector holds web", || store.state().iter().map(|object| object.name_any()).collect::<Vec<_>>() == ["web"])
        .await;
}

#[tokio::test]
async fn a_watch_from_a_forgotten_version_expires_and_the_watcher_relists() {
    let fake = FakeApi::new();
    fake.set_watch_history(2);
    fake.insert(config_map("apps", "first"));
    let start = fake.resource_version().to_string();
    for name in ["a", "b", "c"] {
        fake.insert(config_map("apps", name));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let mut expired = config_maps.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    assert_eq!(next_events(&mut expired, 1).await, pairs(&[("ERROR", "410")]));
    assert!(expired.next().await.is_none(), "an expired watch ends");

    // A selective watcher's last version falls behind while other objects change; when its watch times out and
    // resumes, the version is forgotten, and kube's watcher relists.
    let store = reflect(&fake, watcher::Config::default().labels("app=web").timeout(1));
    store.wait_until_ready().await.unwrap();
    for name in ["d", "e", "f"] {
        fake.insert(config_map("apps", name));
    }
    let lists = || fake.requests().iter().filter(|request| request.verb == "list").count();
    eventually("the watcher relists", || lists() >= 2).await;
    let mut web = config_map("apps", "web");
    web["metadata"]["labels"] = json!({"app": "web"});
    fake.insert(web);
    eventually("the relisted reflector sees web", || store.state().len() == 1).await;
}

#[tokio::test]
async fn watches_time_out_and_streaming_lists_work() {
    let fake = FakeApi::new();
    fake.insert(config_map("apps", "settings"));
    let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
    let started = Instant::now();
    let mut short = config_maps.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    assert_eq!(next_events(&mut short, 1).await, pairs(&[("ADDED", "settings")]));
    assert!(tokio::time::timeout(Duration::from_secs(5), short.next()).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(900));

    let store = reflect(&fake, watcher::Config::default().streaming_lists());
    store.wait_until_ready().await.unwrap();
    config_maps.create(&PostParams::default(), &serde_json::from_value(config_map("apps", "later")).unwrap()).await.unwrap();
    eventually("the streaming-list reflector converges", || converged(&fake, &store)).await;
    let watches: Vec<_> = fake.requests().into_iter().filter(|request| request.verb == "watch").collect();
    assert!(watches.iter().any(|watch| watch.query.get("sendInitialEvents").is_some_and(|value| value == "true")));
}

#[tokio::test]
async fn the_status_subresource_is_configurable_per_resource() {
    let fake = FakeApi::new();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance"));
    let instances: Api<DynamicObject> = Api::namespaced_with(fake.client(), "apps", &resource);
    let mut instance = DynamicObject::new("vm", &resource);
    instance.data = json!({"spec": {"domain": {}}, "status": {"phase": "Running"}});
    let created = instances.create(&PostParams::default(), &instance).await.unwrap();
    assert_eq!(created.data["status"]["phase"], "Running");
    let patch = Patch::Merge(json!({"status": {"phase": "Succeeded"}}));
    assert_eq!(api_code(instances.patch_status("vm", &PatchParams::default(), &patch).await), 404);
    let patched = instances.patch("vm", &PatchParams::default(), &patch).await.unwrap();
    assert_eq!((patched.data["status"]["phase"].as_str(), patched.metadata.generation), (Some("Succeeded"), Some(2)));

    fake.set_status_subresource("virtualmachineinstances", true);
    let patch = Patch::Merge(json!({"status": {"phase": "Failed"}}));
    assert_eq!(instances.patch_status("vm", &PatchParams::default(), &patch).await.unwrap().data["status"]["phase"], "Failed");

    fake.set_status_subresource("widgets", false);
    let widgets: Api<Widget> = Api::namespaced(fake.client(), "apps");
    let mut widget = Widget::new("gear", WidgetSpec { size: 1 });
    widget.status = Some(super::WidgetStatus { ready: true });
    let created = widgets.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(created.status, widget.status);
    assert_eq!(Widget::plural(&()), "widgets");
    let stored: Value = fake.get("example.com/v1", "widgets", Some("apps"), "gear").unwrap();
    assert_eq!(stored["status"]["ready"], true);
}
