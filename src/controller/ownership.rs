//! Who owns what: finding a Wukong's children in the caches and telling
//! operator-made objects from the user's.
//!
//! In: cached objects and a Wukong's UID. Out: filters and lookups.

use std::sync::Arc;

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

/// UID of the object's controller owner, if any.
pub fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object.meta().owner_references.as_ref()?.iter().find(|owner| owner.controller == Some(true)).map(|owner| owner.uid.as_str())
}

/// Every cached object in `namespace` controlled by the Wukong with `uid`.
pub fn owned<K>(store: &Store<K>, namespace: &str, uid: &str) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state_filter(|object| object.meta().namespace.as_deref() == Some(namespace) && is_controlled_by(object, uid))
}

/// The cached object `namespace/name`.
pub fn cached<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}
