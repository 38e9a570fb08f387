//! What this operator just wrote and its caches do not show yet.
//!
//! In: every object a write of the operator returned (a child it applied, a
//! Wukong whose finalizer or status it wrote) and every object its watches
//! deliver. Out: for a pass that runs before the watch brought back the
//! operator's own last write — a loaded API server delivers watch events
//! seconds late — the written object instead of the stale cached one, so the
//! pass neither writes the same child, finalizer or status again nor reports
//! from an old status. An entry lives until the cache shows that version or a
//! later one, or for [`LIFETIME`] at most. "Later" compares resourceVersions as
//! numbers when both are (etcd's revisions are, and the API server's watch
//! cache orders by them); otherwise only the very version counts, and the
//! lifetime bounds the rest. The watch event of a write may arrive before the
//! write's own answer, so equality alone would keep an entry past a newer
//! cached version (a deletion, someone's edit).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::Resource;

use super::watches::trim_metadata;

/// How long a written object is trusted over the cache at most.
pub const LIFETIME: Duration = Duration::from_secs(30);

/// Kind, namespace, name.
type Key = (String, String, String);

/// One write the watch has not delivered yet.
struct Entry {
    /// The written version.
    resource_version: String,
    /// Its generation (a cached object of a higher one is newer: someone changed its spec since).
    generation: i64,
    /// The object as the API server returned it (an `Arc<K>`).
    object: Arc<dyn Any + Send + Sync>,
    /// When it was written.
    written: Instant,
}

/// The operator's writes its watches have not delivered yet.
pub struct Recent {
    entries: Mutex<HashMap<Key, Entry>>,
    /// How long an undelivered write is trusted ([`LIFETIME`]).
    lifetime: Duration,
}

impl Default for Recent {
    fn default() -> Recent {
        Recent::with_lifetime(LIFETIME)
    }
}

/// `stream` (a watch's objects), telling `recent` of every object it yields so that writes the watch delivered are
/// forgotten.
pub fn forgetting_seen<K, E>(
    stream: impl futures::Stream<Item = Result<K, E>> + Send + 'static,
    recent: Arc<Recent>,
) -> impl futures::Stream<Item = Result<K, E>> + Send + 'static
where
    K: Resource<DynamicType = ()>,
{
    futures::StreamExt::inspect(stream, move |object| {
        if let Ok(object) = object {
            recent.seen(object);
        }
    })
}

fn key<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> Key {
    (K::kind(&()).into_owned(), namespace.to_string(), name.to_string())
}

impl Recent {
    /// Trusts undelivered writes for `lifetime`.
    pub fn with_lifetime(lifetime: Duration) -> Recent {
        Recent { entries: Mutex::default(), lifetime }
    }

    /// Remembers `object` as the API server returned it after a write,
    /// trimmed as the watches trim what they cache; returns it.
    pub fn wrote<K: Resource<DynamicType = ()> + Send + Sync + 'static>(&self, mut object: K) -> Arc<K> {
        trim_metadata(&mut object);
        let object = Arc::new(object);
        let meta = object.meta();
        // A cluster-scoped object (a lease) has no namespace: it is kept under "".
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let (Some(name), Some(resource_version)) = (&meta.name, &meta.resource_version) else {
            return object;
        };
        let key = key::<K>(namespace, name);
        let entry = Entry {
            resource_version: resource_version.clone(),
            generation: meta.generation.unwrap_or(0),
            object: object.clone(),
            written: Instant::now(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|_, entry| now.duration_since(entry.written) < self.lifetime);
        entries.insert(key, entry);
        object
    }

    /// Forgets the write of `object` once a watch delivered that version or a later one.
    pub fn seen<K: Resource<DynamicType = ()>>(&self, object: &K) {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let Some(name) = &meta.name else { return };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key::<K>(namespace, name);
        if entries.get(&key).is_some_and(|entry| caught_up(meta.resource_version.as_deref(), &entry.resource_version)) {
            entries.remove(&key);
        }
    }

    /// The newer of `cached` and this operator's last write of the object, when
    /// the watch has not delivered that write yet and no one changed the
    /// object's spec since (the cache shows no higher generation).
    pub fn newest<K: Resource<DynamicType = ()> + Send + Sync + 'static>(
        &self,
        cached: Option<Arc<K>>,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<K>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key::<K>(namespace, name);
        let Some(entry) = entries.get(&key) else { return cached };
        let cached_generation = cached.as_ref().and_then(|cached| cached.meta().generation).unwrap_or(0);
        let cached_version = cached.as_ref().and_then(|cached| cached.meta().resource_version.as_deref());
        if caught_up(cached_version, &entry.resource_version)
            || cached_generation > entry.generation
            || Instant::now().duration_since(entry.written) >= self.lifetime
        {
            entries.remove(&key);
            return cached;
        }
        match entry.object.clone().downcast::<K>() {
            Ok(written) => Some(written),
            Err(_) => cached,
        }
    }

    /// Forgets the write of an object the operator then deleted.
    pub fn forget<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&key::<K>(namespace, name));
    }

    /// Forgets every write: for caches re-filled from a list made after them.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How many writes wait for their watch event.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Whether a cached `version` is `written` or later (see the module notes).
fn caught_up(version: Option<&str>, written: &str) -> bool {
    let Some(version) = version else { return false };
    match (version.parse::<u64>(), written.parse::<u64>()) {
        (Ok(version), Ok(written)) => version >= written,
        _ => version == written,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::Recent;

    fn object(resource_version: &str, generation: i64, data: &str) -> Arc<ConfigMap> {
        Arc::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".to_string()),
                namespace: Some("apps".to_string()),
                resource_version: Some(resource_version.to_string()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            data: Some([("k".to_string(), data.to_string())].into()),
            ..ConfigMap::default()
        })
    }

    fn data(object: Option<Arc<ConfigMap>>) -> Option<String> {
        object.and_then(|object| object.data.as_ref().and_then(|data| data.get("k").cloned()))
    }

    #[test]
    fn a_write_the_watch_has_not_delivered_wins_over_the_stale_cache() {
        let recent = Recent::default();
        assert_eq!(data(recent.newest(Some(object("1", 1, "old")), "apps", "a")), Some("old".to_string()), "nothing written");
        recent.wrote((*object("2", 1, "new")).clone());
        assert_eq!(data(recent.newest::<ConfigMap>(None, "apps", "a")), Some("new".to_string()), "created, not yet cached");
        assert_eq!(data(recent.newest(Some(object("1", 1, "old")), "apps", "a")), Some("new".to_string()), "cache behind");
        assert!(recent.newest::<ConfigMap>(None, "apps", "other").is_none(), "another object");
    }

    #[test]
    fn the_cache_wins_once_it_shows_the_write_or_a_newer_spec() {
        let recent = Recent::default();
        recent.wrote((*object("2", 1, "new")).clone());
        assert_eq!(data(recent.newest(Some(object("3", 2, "edited")), "apps", "a")), Some("edited".to_string()), "a newer spec");
        recent.wrote((*object("2", 1, "new")).clone());
        assert_eq!(
            data(recent.newest(Some(object("x", 2, "edited")), "apps", "a")),
            Some("edited".to_string()),
            "a newer spec, any version"
        );
        recent.wrote((*object("2", 1, "new")).clone());
        recent.seen(object("1", 1, "old").as_ref());
        assert_eq!(recent.len(), 1, "an older version does not end the entry");
        recent.seen(object("2", 1, "new").as_ref());
        assert_eq!(recent.len(), 0, "the written version was delivered");
        recent.wrote((*object("4", 1, "new")).clone());
        assert_eq!(data(recent.newest(Some(object("7", 1, "deleting")), "apps", "a")), Some("deleting".to_string()), "a later version");
        assert_eq!(recent.len(), 0, "a cache past the write ends the entry");
        recent.wrote((*object("4", 1, "new")).clone());
        recent.seen(object("9", 1, "later").as_ref());
        assert_eq!(recent.len(), 0, "its watch event came before the write's answer, a later one after");
        assert_eq!(data(recent.newest::<ConfigMap>(None, "apps", "a")), None, "deleted after it was delivered: the cache is right");
    }

    #[test]
    fn an_undelivered_write_is_trusted_for_a_limited_time() {
        let recent = Recent::with_lifetime(std::time::Duration::ZERO);
        recent.wrote((*object("2", 1, "new")).clone());
        assert_eq!(data(recent.newest(Some(object("1", 1, "old")), "apps", "a")), Some("old".to_string()));
        let mut other = (*object("5", 1, "other")).clone();
        other.metadata.name = Some("b".to_string());
        recent.wrote(other);
        assert_eq!(recent.len(), 1, "expired entries go when another is written");
    }
}
