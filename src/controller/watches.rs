//! One watch per kind: the cache the controller reads and the trigger stream it reacts to, which live through an
//! API server restart.
//!
//! In: a client, the kind (its dynamic type: `()` for a typed kind, the `ApiResource` of a dynamic one), a watcher
//! config, a trim function, and the shared [`WatchHealth`]. Out: from [`reflect`], the kind's reflector `Store` and a
//! stream of the objects its events touch, for `Controller::for_stream_with`, `owns_stream_with` or
//! `watches_stream_with`. The stream never yields an error (see [`super::reconnect`]); the watch's health (cache
//! filled, failing since when and why) goes to the [`WatchHealth`] under the kind's name. [`reflect_indexed`] also
//! keeps an [`Index`] of the cache in step; [`reflect_compact`] fills a child kind's [`KindCache`] instead (its
//! objects as JSON, and their index).

use std::fmt::Debug;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tracing::info;

use super::checks::CLONE_GRANT_ANNOTATION;
use super::context::KindCache;
use super::index::Index;
use super::observe::DEFAULT_CLASS_ANNOTATION;
use super::reconnect::reconnecting;
use super::watch_health::{WatchHealth, WatchReporter};
use crate::children::ChildKind;
use crate::children::meta::DELETION_POLICY_ANNOTATION;
use crate::children::network::{NETWORKS_ANNOTATION, RESOURCE_NAME_ANNOTATION};

/// Watches every object of one kind (all namespaces, filtered by `config`'s selectors), caching each after
/// [`trim_metadata`] and `trim`. Register (call this for) every kind before polling any stream, so the caches count
/// as synced only once all are.
pub fn reflect<K>(
    client: &Client,
    kind: K::DynamicType,
    config: watcher::Config,
    trim: fn(&mut K),
    health: &WatchHealth,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync + 'static,
{
    reflect_indexed(client, kind, config, trim, health, None)
}

/// [`reflect`], keeping `index` in step with the cache: each event is applied to it right after the store.
pub fn reflect_indexed<K>(
    client: &Client,
    kind: K::DynamicType,
    config: watcher::Config,
    trim: fn(&mut K),
    health: &WatchHealth,
    index: Option<Index<K>>,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync + 'static,
{
    let (events, listed) = watch_events(client, kind.clone(), config, trim, health);
    let writer = Writer::new(kind);
    let reader = writer.as_reader();
    let stream = reflector::reflector(writer, events)
        .inspect(move |event| {
            // After the reflector: the store has applied the event (and, at InitDone, the complete list).
            if let (Some(index), Ok(event)) = (&index, event) {
                index.apply(event);
            }
            if matches!(event, Ok(watcher::Event::InitDone)) {
                listed.listed();
            }
        })
        .touched_objects();
    (reader, stream)
}

/// Watches every object of one kind as [`reflect`] does, into `cache`: its objects kept as JSON
/// ([`CompactStore`]) and its index, each event applied to both.
pub fn reflect_compact<K>(
    client: &Client,
    config: watcher::Config,
    trim: fn(&mut K),
    health: &WatchHealth,
    cache: KindCache<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: ChildKind,
{
    let (events, listed) = watch_events(client, (), config, trim, health);
    events
        .inspect(move |event| {
            if let Ok(event) = event {
                cache.apply(event);
            }
            if matches!(event, Ok(watcher::Event::InitDone)) {
                listed.listed();
            }
        })
        .touched_objects()
}

/// The trimmed watch events of one kind, which reconnect after a failure, and the reporter of the watch's health.
fn watch_events<K>(
    client: &Client,
    kind: K::DynamicType,
    config: watcher::Config,
    trim: fn(&mut K),
    health: &WatchHealth,
) -> (impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static, WatchReporter)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync + 'static,
{
    let reporter = health.register(&K::kind(&kind));
    let api: Api<K> = Api::all_with(observed(client, reporter.clone()), &kind);
    let config = config.any_semantic();
    let watch = move || {
        watcher(api.clone(), config.clone())
            .modify(move |object| {
                trim_metadata(object);
                trim(object);
            })
            .boxed()
    };
    (reconnecting(watch, reporter.clone()), reporter)
}

/// One watch's objects for two consumers (the Wukong controller and the pool
/// controller both react to pools and leases): a task forwards every object
/// the watch yields to both streams, so the kind is watched and cached once.
/// The task ends when both streams are dropped. The watch stream never yields
/// an error (see [`super::reconnect`]); one would be dropped here.
pub fn fan_out<K: Clone + Send + 'static>(
    stream: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> (impl Stream<Item = Result<K, watcher::Error>> + Send + 'static, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static) {
    let (first, first_stream) = futures::channel::mpsc::unbounded();
    let (second, second_stream) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let Ok(object) = item else { continue };
            let first_gone = first.unbounded_send(object.clone()).is_err();
            let second_gone = second.unbounded_send(object).is_err();
            if first_gone && second_gone {
                break;
            }
        }
    });
    (first_stream.map(Ok), second_stream.map(Ok))
}

/// The annotations a step reads or a builder sets (and so compares): every other annotation is dropped from the
/// caches. CDI, KubeVirt, the volume binder and kubectl annotate the objects the operator caches by the dozen
/// (a bound import claim carries a dozen), which a cache of thousands would keep for nothing.
const READ_ANNOTATIONS: &[&str] =
    &[NETWORKS_ANNOTATION, RESOURCE_NAME_ANNOTATION, DELETION_POLICY_ANNOTATION, CLONE_GRANT_ANNOTATION, DEFAULT_CLASS_ANNOTATION];

/// Drops from a cached object what the operator never reads and what often doubles its size: managedFields and
/// every annotation but [`READ_ANNOTATIONS`] (kubectl's last-applied-configuration is a copy of the object).
pub fn trim_metadata<K: Resource>(object: &mut K) {
    let metadata = object.meta_mut();
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.retain(|key, _| READ_ANNOTATIONS.contains(&key.as_str()));
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
}

/// `client` seen by one watch: every request goes through it unchanged; `reporter` learns while one waits for its
/// answer, and that the watch works again when one is answered (2xx). kube's watcher reports a failed request but
/// neither a hung one nor a successful resume (a watch that reconnects and finds nothing new yields no event),
/// hence this.
fn observed(client: &Client, reporter: WatchReporter) -> Client {
    let inner = client.clone();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let client = inner.clone();
        let reporter = reporter.clone();
        async move {
            let waiting = reporter.sent();
            let response = client.send(request).await;
            drop(waiting);
            let response = response?;
            if response.status().is_success()
                && let Some(failing_for) = reporter.succeeded()
            {
                info!(watch = reporter.name(), failing_for = ?failing_for, "the watch reaches the API server again");
            }
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, client.default_namespace())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use fake_apiserver::FakeApi;
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::reflect;
    use crate::controller::watch_health::WatchHealth;

    fn config_map(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "apps",
               "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "cdi.kubevirt.io/storage.pod.phase": "Succeeded",
                               "vm.novasphere.dev/deletion-policy": "Retain"}}})
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_cached_object_keeps_no_annotation_map_when_none_is_read() {
        let mut claim: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "import", "managedFields": [{"manager": "cdi"}],
            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "cdi.kubevirt.io/storage.import.endpoint": "http://images/root.img"}}}))
        .expect("config map");
        super::trim_metadata(&mut claim);
        assert_eq!(claim.metadata.annotations, None, "no empty map is kept either");
        assert_eq!(claim.metadata.managed_fields, None);
    }

    #[tokio::test]
    async fn both_consumers_of_a_shared_watch_see_every_object() {
        let source = futures::stream::iter(["a", "b", "c"].map(|name| Ok::<_, watcher::Error>(name.to_string())));
        let (first, second) = super::fan_out(source);
        let second: Vec<String> = second.map(|item| item.expect("no error")).collect().await;
        assert_eq!(second, ["a", "b", "c"], "one consumer does not wait for the other");
        let first: Vec<String> = first.map(|item| item.expect("no error")).collect().await;
        assert_eq!(first, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_watch_resumes_after_a_restart_and_reports_its_health() {
        let fake = FakeApi::new();
        fake.insert(config_map("before"));
        let health = WatchHealth::new();
        let (store, stream) = reflect::<ConfigMap>(&fake.client(), (), watcher::Config::default(), |_| {}, &health);
        let touched = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = touched.clone();
        tokio::spawn(stream.for_each(move |object| {
            if let Ok(object) = object {
                seen.lock().unwrap().push(object.metadata.name.unwrap_or_default());
            }
            futures::future::ready(())
        }));
        health.wait_synced().await;
        let cached = store.state();
        let annotations = cached[0].metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["vm.novasphere.dev/deletion-policy"], "only annotations a step reads are kept");

        fake.go_down();
        eventually("the watch reports its failure", || !health.failing_longer_than(Duration::ZERO, Instant::now()).is_empty()).await;
        let failing = health.failing_longer_than(Duration::ZERO, Instant::now());
        assert_eq!(failing[0].name, "ConfigMap");
        fake.insert(config_map("while-down"));
        fake.come_back();
        eventually("the cache holds the object made while down", || store.state().len() == 2).await;
        eventually("the watch is healthy again", || health.failing_longer_than(Duration::ZERO, Instant::now()).is_empty()).await;
        assert!(touched.lock().unwrap().contains(&"while-down".to_owned()), "the relist triggers the new object");
        assert!(health.synced());
    }
}
