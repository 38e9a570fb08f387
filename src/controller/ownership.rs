//! Who owns what: finding a Wukong's children in the caches and telling
//! operator-made objects from the user's.
//!
//! In: cached objects and a Wukong's UID. Out: filters and lookups.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

pub use crate::children::meta::DELETION_POLICY_ANNOTATION;
/// Annotation put on a volume the operator retained instead of deleting.
pub const RETAINED_FROM_ANNOTATION: &str = "vm.novasphere.dev/retained-from";
/// Finalizer the operator puts on every Wukong.
pub const FINALIZER: &str = "vm.novasphere.dev/cleanup";

/// Whether `object` has a controller owner reference to the Wukong with `uid`.
pub fn is_controlled_by<K: Resource>(object: &K, uid: &str) -> bool {
    controller_uid(object).is_some_and(|owner| owner == uid)
}

/// The object's controller owner reference, if any (the API server allows one).
pub fn controller_reference<K: Resource>(object: &K) -> Option<&OwnerReference> {
    object.meta().owner_references.as_ref()?.iter().find(|owner| owner.controller == Some(true))
}

/// UID of the object's controller owner, if any.
pub fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    controller_reference(object).map(|owner| owner.uid.as_str())
}

/// The object's controller owner reference when its controller is a Wukong.
pub fn controlling_wukong<K: Resource>(object: &K) -> Option<&OwnerReference> {
    controller_reference(object).filter(|owner| owner.kind == "Wukong")
}

/// The key of a child in its kind's owner index: the UID of the Wukong controlling it (the claims CDI makes for
/// DataVolumes are not looked up by their controller, and are left out).
pub fn owner_key<K: Resource>(object: &K) -> Option<String> {
    controlling_wukong(object).map(|owner| owner.uid.clone())
}

/// The cached object `namespace/name`.
pub fn cached<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use serde_json::json;

    use super::owner_key;

    fn claim(controller_kind: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "root", "namespace": "prod", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "not-the-controller"},
            {"apiVersion": "v1", "kind": controller_kind, "name": "web", "uid": "u1", "controller": true}]}}))
        .expect("claim")
    }

    #[test]
    fn children_are_indexed_by_their_controlling_wukong_only() {
        assert_eq!(owner_key(&claim("Wukong")), Some("u1".to_string()));
        assert_eq!(owner_key(&claim("DataVolume")), None, "CDI's claims are not looked up by their DataVolume");
    }
}
