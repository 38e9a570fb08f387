//! A Wukong as the watch delivers it: typed when it reads, its metadata and
//! status when it does not (kube-rs's `DeserializeGuard` pattern, keeping the
//! field path of the failure and the previous status).
//!
//! In: the JSON of a Wukong object. Out: [`GuardedWukong`], never a
//! deserialisation error, so one unreadable Wukong cannot stall the watch of
//! every other, and can still be reported and cleaned up.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use super::{Wukong, WukongStatus};

/// A Wukong, or what could be read of one whose spec does not deserialise.
#[derive(Clone, Debug)]
pub struct GuardedWukong(pub Result<Wukong, UnreadableWukong>);

/// A Wukong whose object does not deserialise.
#[derive(Clone, Debug, PartialEq)]
pub struct UnreadableWukong {
    /// Its metadata (for the name, the finalizer and the deletion timestamp).
    pub metadata: ObjectMeta,
    /// Its status, when that part still reads.
    pub status: Option<WukongStatus>,
    /// What failed to read, naming the field, e.g. `failed to read spec.cpu: invalid type ...`.
    pub error: String,
}

impl GuardedWukong {
    /// Reads a Wukong from JSON; the error of an unreadable one names the field.
    pub fn from_value(value: serde_json::Value) -> GuardedWukong {
        match serde_path_to_error::deserialize::<_, Wukong>(&value) {
            Ok(wukong) => GuardedWukong(Ok(wukong)),
            Err(error) => {
                let path = error.path().to_string();
                let error = format!("failed to read {path}: {}", error.into_inner());
                let metadata = value.get("metadata").and_then(|metadata| ObjectMeta::deserialize(metadata).ok()).unwrap_or_default();
                let status = value.get("status").and_then(|status| WukongStatus::deserialize(status).ok());
                GuardedWukong(Err(UnreadableWukong { metadata, status, error }))
            }
        }
    }

    /// The Wukong, when it reads.
    pub fn wukong(&self) -> Option<&Wukong> {
        self.0.as_ref().ok()
    }

    /// Its status as last written, also for an unreadable one.
    pub fn status(&self) -> Option<&WukongStatus> {
        match &self.0 {
            Ok(wukong) => wukong.status.as_ref(),
            Err(unreadable) => unreadable.status.as_ref(),
        }
    }
}

impl<'de> Deserialize<'de> for GuardedWukong {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(GuardedWukong::from_value(value))
    }
}

impl Resource for GuardedWukong {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dynamic: &()) -> Cow<'_, str> {
        Wukong::kind(dynamic)
    }

    fn group(dynamic: &()) -> Cow<'_, str> {
        Wukong::group(dynamic)
    }

    fn version(dynamic: &()) -> Cow<'_, str> {
        Wukong::version(dynamic)
    }

    fn plural(dynamic: &()) -> Cow<'_, str> {
        Wukong::plural(dynamic)
    }

    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(wukong) => &wukong.metadata,
            Err(unreadable) => &unreadable.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(wukong) => &mut wukong.metadata,
            Err(unreadable) => &mut unreadable.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;
    use serde_json::json;

    use super::GuardedWukong;

    #[test]
    fn a_readable_wukong_is_typed() {
        let guarded: GuardedWukong = serde_json::from_value(json!({
            "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"cpu": 2, "memory": "2Gi"}
        }))
        .expect("a guard always deserialises");
        assert_eq!(guarded.wukong().map(|wukong| wukong.spec.cpu), Some(2));
    }

    #[test]
    fn an_unreadable_wukong_keeps_its_metadata_status_and_the_field_at_fault() {
        let guarded: GuardedWukong = serde_json::from_value(json!({
            "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
            "metadata": {"name": "web", "namespace": "prod", "finalizers": ["vm.novasphere.dev/cleanup"]},
            "spec": {"cpu": "many", "memory": "2Gi"},
            "status": {"phase": "Running"}
        }))
        .expect("a guard always deserialises");
        let unreadable = guarded.0.as_ref().expect_err("the spec does not read");
        assert!(unreadable.error.starts_with("failed to read spec.cpu:"), "{}", unreadable.error);
        assert_eq!(guarded.name_any(), "web");
        assert_eq!(guarded.finalizers(), ["vm.novasphere.dev/cleanup"]);
        assert_eq!(guarded.status().and_then(|status| status.phase), Some(crate::api::Phase::Running));
    }
}
