//! Cached objects by one key each (a child's controller's UID, a lease's
//! holder's UID), so a pass finds a Wukong's objects without scanning a cache
//! of the whole fleet.
//!
//! In: the events of one kind's watch, applied right after its reflector
//! store applied them, and a function giving an object's key. Out:
//! [`Index::names`], the namespaced names of the cached objects with a key,
//! which the caller reads from the store (and checks again: the index only
//! narrows the search). A relist replaces the index when it completes, as it
//! replaces the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;

/// An object's namespace (empty when cluster-scoped) and name.
pub type Name = (String, String);

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
    by_key: HashMap<String, BTreeSet<Name>>,
    key_of: HashMap<Name, String>,
    /// The objects of a relist under way, applied when it completes.
    relisted: Option<Vec<(Name, String)>>,
}

impl Indexed {
    fn remove(&mut self, name: &Name) {
        if let Some(key) = self.key_of.remove(name)
            && let Some(names) = self.by_key.get_mut(&key)
        {
            names.remove(name);
            if names.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    fn insert(&mut self, name: Name, key: String) {
        self.by_key.entry(key.clone()).or_default().insert(name.clone());
        self.key_of.insert(name, key);
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
                let name = name(object);
                indexed.remove(&name);
                if let Some(key) = (self.key)(object) {
                    indexed.insert(name, key);
                }
            }
            Event::Delete(object) => indexed.remove(&name(object)),
            Event::Init => indexed.relisted = Some(Vec::new()),
            Event::InitApply(object) => {
                if let (Some(relisted), Some(key)) = (indexed.relisted.as_mut(), (self.key)(object)) {
                    relisted.push((name(object), key));
                }
            }
            Event::InitDone => {
                let relisted = indexed.relisted.take().unwrap_or_default();
                *indexed = Indexed::default();
                for (name, key) in relisted {
                    indexed.insert(name, key);
                }
            }
        }
    }

    /// The namespaced names of the indexed objects with `key`.
    pub fn names(&self, key: &str) -> Vec<Name> {
        let indexed = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        indexed.by_key.get(key).map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }
}

fn name<K: Resource>(object: &K) -> Name {
    (object.meta().namespace.clone().unwrap_or_default(), object.meta().name.clone().unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::Index;
    use crate::controller::ownership::controller_uid;

    fn owned(name: &str, owner: Option<&str>) -> ConfigMap {
        let references = owner.map(|uid| json!([{"apiVersion": "v1", "kind": "Wukong", "name": "w", "uid": uid, "controller": true}]));
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "prod", "ownerReferences": references}})).expect("object")
    }

    fn index() -> Index<ConfigMap> {
        Index::new(|object| controller_uid(object).map(str::to_string))
    }

    fn names(index: &Index<ConfigMap>, key: &str) -> Vec<String> {
        index.names(key).into_iter().map(|(_, name)| name).collect()
    }

    #[test]
    fn objects_are_found_by_their_key_and_follow_its_changes() {
        let index = index();
        index.apply(&Event::Apply(owned("a", Some("u1"))));
        index.apply(&Event::Apply(owned("b", Some("u1"))));
        index.apply(&Event::Apply(owned("c", Some("u2"))));
        index.apply(&Event::Apply(owned("free", None)));
        assert_eq!(names(&index, "u1"), ["a", "b"]);
        index.apply(&Event::Apply(owned("b", None)));
        assert_eq!(names(&index, "u1"), ["a"], "an object released by its owner leaves the owner's entry");
        index.apply(&Event::Delete(owned("a", Some("u1"))));
        assert!(names(&index, "u1").is_empty());
        assert_eq!(index.names("u2"), [("prod".to_string(), "c".to_string())]);
    }

    #[test]
    fn a_relist_replaces_the_index_once_it_completes() {
        let index = index();
        index.apply(&Event::Apply(owned("gone", Some("u1"))));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(owned("new", Some("u1"))));
        assert_eq!(names(&index, "u1"), ["gone"], "until the relist completes, the index is the old one");
        index.apply(&Event::InitDone);
        assert_eq!(names(&index, "u1"), ["new"]);
    }
}
