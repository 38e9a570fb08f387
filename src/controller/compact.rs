//! A watch cache that keeps each object as its JSON text, decoded when a pass reads it.
//!
//! In: the events of one kind's watch, after the watch's trims. Out: the cached objects by namespace and name
//! ([`CompactStore::get`], [`CompactStore::in_namespace`]), each decoded into a fresh `Arc<K>` on read.
//!
//! Why: a typed object costs several times its JSON. kopium's and k8s-openapi's structs hold every optional part
//! inline, every string and map is its own allocation, and kube's store keys each object with four more strings.
//! At 10,000 Wukongs the child kinds' typed caches were two thirds of the operator's memory. A pass reads a
//! handful of objects; decoding them costs microseconds.
//!
//! A relist fills a new map, which replaces the old one when it completes, as kube's reflector store does.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::index::{qualified, qualified_name};

/// The objects of one kind, as JSON, by `namespace/name` (`/name` for a cluster-scoped object).
type Objects = HashMap<Box<str>, Box<[u8]>>;

/// One kind's cache of JSON texts. Clones share the cache.
pub struct CompactStore<K> {
    inner: Arc<RwLock<Cached>>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for CompactStore<K> {
    fn clone(&self) -> Self {
        CompactStore { inner: self.inner.clone(), kind: PhantomData }
    }
}

impl<K> Default for CompactStore<K> {
    fn default() -> Self {
        CompactStore { inner: Arc::default(), kind: PhantomData }
    }
}

#[derive(Default)]
struct Cached {
    objects: Objects,
    /// The objects of a relist under way, which replace `objects` when it completes.
    relisted: Option<Objects>,
}

impl<K: Resource + Serialize + DeserializeOwned> CompactStore<K> {
    /// An empty cache.
    pub fn new() -> CompactStore<K> {
        CompactStore::default()
    }

    /// Applies one watch event, as kube's reflector store does.
    pub fn apply(&self, event: &Event<K>) {
        let mut cached = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(object) => match encode(object) {
                Some(text) => {
                    cached.objects.insert(qualified(object).into_boxed_str(), text);
                }
                None => {
                    cached.objects.remove(qualified(object).as_str());
                }
            },
            Event::Delete(object) => {
                cached.objects.remove(qualified(object).as_str());
            }
            Event::Init => cached.relisted = Some(Objects::new()),
            Event::InitApply(object) => {
                let text = encode(object);
                if let (Some(relisted), Some(text)) = (cached.relisted.as_mut(), text) {
                    relisted.insert(qualified(object).into_boxed_str(), text);
                }
            }
            Event::InitDone => {
                let relisted = cached.relisted.take().unwrap_or_default();
                cached.objects = relisted;
                cached.objects.shrink_to_fit();
            }
        }
    }

    /// The cached object `namespace/name` (`namespace` is empty for a cluster-scoped kind).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let cached = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        cached.objects.get(qualified_name(namespace, name).as_str()).and_then(|text| decode(text))
    }

    /// Every cached object in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let prefix = qualified_name(namespace, "");
        let cached = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        cached.objects.iter().filter(|(key, _)| key.starts_with(&prefix)).filter_map(|(_, text)| decode(text)).collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).objects.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object's JSON; `None` (the object is not cached, and a pass sees it missing) if it does not serialize,
/// which typed Kubernetes objects always do.
fn encode<K: Resource + Serialize>(object: &K) -> Option<Box<[u8]>> {
    match serde_json::to_vec(object) {
        Ok(text) => Some(text.into_boxed_slice()),
        Err(error) => {
            let name = object.meta().name.as_deref().unwrap_or_default();
            warn!(%error, name, "failed to cache an object: it does not serialize");
            None
        }
    }
}

/// The object a cached text holds; `None` if it does not read back, which a text this cache wrote always does.
fn decode<K: DeserializeOwned>(text: &[u8]) -> Option<Arc<K>> {
    match serde_json::from_slice(text) {
        Ok(object) => Some(Arc::new(object)),
        Err(error) => {
            warn!(%error, "failed to read a cached object back");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::CompactStore;

    fn config_map(namespace: &str, name: &str, value: &str) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}}, "data": {"key": value}}),
        )
        .expect("config map")
    }

    fn value(store: &CompactStore<ConfigMap>, namespace: &str, name: &str) -> Option<String> {
        store.get(namespace, name).and_then(|object| object.data.as_ref().and_then(|data| data.get("key").cloned()))
    }

    #[test]
    fn objects_read_back_as_they_were_cached_and_follow_their_events() {
        let store = CompactStore::new();
        let original = config_map("prod", "web", "1");
        store.apply(&Event::Apply(original.clone()));
        assert_eq!(store.get("prod", "web").as_deref(), Some(&original), "the decoded object is the one cached");
        store.apply(&Event::Apply(config_map("prod", "web", "2")));
        assert_eq!(value(&store, "prod", "web").as_deref(), Some("2"), "an update replaces the object");
        assert_eq!(store.get("test", "web"), None, "the namespace is part of the key");
        store.apply(&Event::Delete(config_map("prod", "web", "2")));
        assert_eq!(store.get("prod", "web"), None);
        assert!(store.is_empty());
    }

    #[test]
    fn a_namespace_lists_only_its_own_objects() {
        let store = CompactStore::new();
        for (namespace, name) in [("prod", "a"), ("prod", "b"), ("production", "c"), ("test", "d")] {
            store.apply(&Event::Apply(config_map(namespace, name, "1")));
        }
        let mut names: Vec<String> = store.in_namespace("prod").iter().filter_map(|object| object.metadata.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"], "a namespace whose name extends another's is not part of it");
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn a_relist_replaces_the_cache_once_it_completes() {
        let store = CompactStore::new();
        store.apply(&Event::Apply(config_map("prod", "gone", "1")));
        store.apply(&Event::Init);
        store.apply(&Event::InitApply(config_map("prod", "new", "1")));
        assert!(store.get("prod", "gone").is_some() && store.get("prod", "new").is_none(), "until the relist completes, the old cache");
        store.apply(&Event::InitDone);
        assert_eq!((store.get("prod", "gone"), store.len()), (None, 1));
        assert_eq!(value(&store, "prod", "new").as_deref(), Some("1"));
    }
}
