//! One value per child kind, found by the kind's type.
//!
//! In: values whose type names their kind (`KindCache<K>`, `Vec<Arc<K>>`). Out:
//! typed access to them. The caches and the observed children of every
//! registered kind live in these maps, so adding a kind adds no field anywhere.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// A map from a type to the one value of that type.
#[derive(Clone, Default)]
pub struct ByKind {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl ByKind {
    /// Stores `value`, replacing the value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>()).and_then(|value| value.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for ByKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ByKind").field("values", &self.values.len()).finish()
    }
}
