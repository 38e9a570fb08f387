//! Cached objects by one key each (a child's controller's UID, a lease's
//! holder's UID), so a pass finds a Wukong's objects without scanning a cache
//! of the whole fleet.
//!
//! In: the events of one kind's watch, applied right after its reflector
//! store applied them, and a function giving an object's key. Out:
//! [`Index::objects`], the namespaces and names of the cached objects with a
//! key, which the caller reads from the store and checks again: the index
//! only narrows the search. A relist replaces the index when it
//! completes, as it replaces the store. Keys and namespaced names are kept as
//! 64-bit hashes, each name once: at 10,000 Wukongs an index of strings cost
//! 66 MiB of RSS.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;

/// The index of one kind's cached objects by `key`.
pub struct Index<K> {
    inner: Arc<RwLock<Indexed>>,
    key: fn(&K) -> Option<String>,
}

impl<K> Clone for Index<K> {
    fn clone(&self) -> Self {
        Index { inner: self.inner.clone(), key: self.key }
    }
}

#[derive(Default)]
struct Indexed {
    /// The objects with a key (`namespace/name`, `/name` when cluster-scoped), by the key's hash.
    by_key: HashMap<u64, Vec<Box<str>>>,
    /// The hash of each indexed object's key, by the hash of its namespace and name.
    key_of: HashMap<u64, u64>,
    /// The objects of a relist under way, applied when it completes.
    relisted: Option<Vec<Entry>>,
}

/// An indexed object: the hash of its namespace and name, `namespace/name`, the hash of its key.
type Entry = (u64, Box<str>, u64);

impl Indexed {
    fn remove(&mut self, object: u64, name: &str) {
        if let Some(key) = self.key_of.remove(&object)
            && let Some(names) = self.by_key.get_mut(&key)
        {
            names.retain(|indexed| &**indexed != name);
            if names.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    fn insert(&mut self, (object, name, key): Entry) {
        self.by_key.entry(key).or_default().push(name);
        self.key_of.insert(object, key);
    }
}

impl<K: Resource> Index<K> {
    /// An empty index of the objects `key` gives a key (the others are not indexed).
    pub fn new(key: fn(&K) -> Option<String>) -> Index<K> {
        Index { inner: Arc::default(), key }
    }

    /// Applies one watch event, as the reflector's store does.
    pub fn apply(&self, event: &Event<K>) {
        let mut indexed = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(object) => {
                indexed.remove(object_hash(object), &qualified(object));
                if let Some(entry) = self.entry(object) {
                    indexed.insert(entry);
                }
            }
            Event::Delete(object) => indexed.remove(object_hash(object), &qualified(object)),
            Event::Init => indexed.relisted = Some(Vec::new()),
            Event::InitApply(object) => {
                let entry = self.entry(object);
                if let (Some(relisted), Some(entry)) = (indexed.relisted.as_mut(), entry) {
                    relisted.push(entry);
                }
            }
            Event::InitDone => {
                let relisted = indexed.relisted.take().unwrap_or_default();
                *indexed = Indexed::default();
                for entry in relisted {
                    indexed.insert(entry);
                }
            }
        }
    }

    /// The namespace (empty when cluster-scoped) and name of each indexed object with `key`.
    pub fn objects(&self, key: &str) -> Vec<(String, String)> {
        let indexed = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let found = indexed.by_key.get(&hash(key)).map(Vec::as_slice).unwrap_or_default();
        found
            .iter()
            .filter_map(|object| object.split_once('/'))
            .map(|(namespace, name)| (namespace.to_string(), name.to_string()))
            .collect()
    }

    fn entry(&self, object: &K) -> Option<Entry> {
        let key = (self.key)(object)?;
        Some((object_hash(object), qualified(object).into_boxed_str(), hash(&key)))
    }
}

/// `namespace/name` (`/name` for a cluster-scoped object): names and namespaces hold no `/`. The caches' key too.
pub(super) fn qualified_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// [`qualified_name`] of an object.
pub(super) fn qualified<K: Resource>(object: &K) -> String {
    let metadata = object.meta();
    qualified_name(metadata.namespace.as_deref().unwrap_or_default(), metadata.name.as_deref().unwrap_or_default())
}

fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

fn object_hash<K: Resource>(object: &K) -> u64 {
    hash(&(object.meta().namespace.as_deref(), object.meta().name.as_deref()))
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::Index;
    use crate::controller::ownership::owner_key;

    fn owned(name: &str, owner: Option<&str>) -> ConfigMap {
        let references = owner.map(|uid| json!([{"apiVersion": "v1", "kind": "Wukong", "name": "w", "uid": uid, "controller": true}]));
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "prod", "ownerReferences": references}})).expect("object")
    }

    fn index() -> Index<ConfigMap> {
        Index::new(owner_key)
    }

    fn names(index: &Index<ConfigMap>, key: &str) -> Vec<String> {
        let mut names: Vec<String> = index.objects(key).into_iter().map(|(namespace, name)| format!("{namespace}/{name}")).collect();
        names.sort();
        names
    }

    #[test]
    fn objects_are_found_by_their_key_and_follow_its_changes() {
        let index = index();
        index.apply(&Event::Apply(owned("a", Some("u1"))));
        index.apply(&Event::Apply(owned("b", Some("u1"))));
        index.apply(&Event::Apply(owned("c", Some("u2"))));
        index.apply(&Event::Apply(owned("free", None)));
        assert_eq!(names(&index, "u1"), ["prod/a", "prod/b"]);
        index.apply(&Event::Apply(owned("b", None)));
        assert_eq!(names(&index, "u1"), ["prod/a"], "an object released by its owner leaves the owner's entry");
        index.apply(&Event::Delete(owned("a", Some("u1"))));
        assert!(names(&index, "u1").is_empty());
        assert_eq!(index.objects("u2"), [("prod".to_string(), "c".to_string())]);
    }

    #[test]
    fn a_relist_replaces_the_index_once_it_completes() {
        let index = index();
        index.apply(&Event::Apply(owned("gone", Some("u1"))));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(owned("new", Some("u1"))));
        assert_eq!(names(&index, "u1"), ["prod/gone"], "until the relist completes, the index is the old one");
        index.apply(&Event::InitDone);
        assert_eq!(names(&index, "u1"), ["prod/new"]);
    }
}
