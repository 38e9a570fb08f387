//! The VirtualMachineInstances as the operator caches them.
//!
//! In: a VirtualMachineInstance as the API server serves it. Out: [`CachedInstance`], its metadata and the parts of
//! its status a step reads (phase, conditions, interfaces, node, migration state), and [`instance_owner`], the
//! Wukong it belongs to. The spec (a copy of the VM template) and the rest of the status are never decoded: the
//! operator never applies an instance, so nothing compares against them, and KubeVirt's full type is 1.7 KiB before
//! any content (a cache of 10,000 paid 17 MiB for empty fields).

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use wukong_models::virtualmachineinstance::{
    VirtualMachineInstance, VirtualMachineInstanceStatusConditions, VirtualMachineInstanceStatusInterfaces,
    VirtualMachineInstanceStatusMigrationState,
};

use crate::api::GuardedWukong;
use crate::children::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};

/// A cached VirtualMachineInstance: its metadata and the status parts a step reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct CachedInstance {
    /// The instance's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The status parts a step reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<InstanceStatus>>,
}

/// The parts of a VirtualMachineInstance's status a step reads; KubeVirt's field names.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// `Pending`, `Scheduling`, `Scheduled`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// KubeVirt's conditions (Ready, LiveMigratable, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<VirtualMachineInstanceStatusConditions>>,
    /// The interfaces and the addresses the guest reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<VirtualMachineInstanceStatusInterfaces>>,
    /// The node the instance runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The state of its last live migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_state: Option<Box<VirtualMachineInstanceStatusMigrationState>>,
}

impl Resource for CachedInstance {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dynamic: &()) -> Cow<'_, str> {
        VirtualMachineInstance::kind(dynamic)
    }

    fn group(dynamic: &()) -> Cow<'_, str> {
        VirtualMachineInstance::group(dynamic)
    }

    fn version(dynamic: &()) -> Cow<'_, str> {
        VirtualMachineInstance::version(dynamic)
    }

    fn plural(dynamic: &()) -> Cow<'_, str> {
        VirtualMachineInstance::plural(dynamic)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The Wukong an instance belongs to: KubeVirt copies the VM template's labels,
/// which carry the Wukong's name.
pub fn instance_owner(instance: &CachedInstance) -> Option<ObjectRef<GuardedWukong>> {
    let labels = instance.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    let name = labels.get(INSTANCE_LABEL)?;
    Some(ObjectRef::new(name).within(&instance.namespace()?))
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::{CachedInstance, instance_owner};

    #[test]
    fn an_instance_keeps_the_status_parts_that_are_read() {
        let instance: CachedInstance = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "web-vm", "namespace": "prod", "uid": "u1",
                         "labels": {"app.kubernetes.io/managed-by": "wukong-operator", "app.kubernetes.io/instance": "web"}},
            "spec": {"domain": {"devices": {}}},
            "status": {"phase": "Running", "nodeName": "node-a", "conditions": [{"type": "Ready", "status": "True"}],
                       "interfaces": [{"name": "default", "ipAddress": "10.0.0.5"}],
                       "migrationState": {"sourceNode": "node-a"},
                       "volumeStatus": [{"name": "root", "target": "vda"}], "guestOSInfo": {"name": "Debian"}}
        }))
        .expect("instance");
        let status = instance.status.as_deref().expect("status kept");
        assert_eq!((status.phase.as_deref(), status.node_name.as_deref()), (Some("Running"), Some("node-a")));
        assert_eq!(status.interfaces.as_ref().and_then(|interfaces| interfaces[0].ip_address.as_deref()), Some("10.0.0.5"));
        assert!(status.conditions.is_some() && status.migration_state.is_some());
        let kept = serde_json::to_value(&instance).expect("serialise");
        assert_eq!(kept["status"].as_object().map(|status| status.len()), Some(5), "the rest of the status is not kept: {kept}");
        assert!(kept.get("spec").is_none(), "the spec is not kept");
        assert_eq!(
            instance_owner(&instance).map(|owner| (owner.name, owner.namespace)),
            Some(("web".to_string(), Some("prod".to_string())))
        );
    }

    #[test]
    fn the_cached_instance_is_watched_at_kubevirts_address() {
        assert_eq!(CachedInstance::url_path(&(), Some("prod")), "/apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances");
        assert_eq!(CachedInstance::api_version(&()), "kubevirt.io/v1");
    }

    #[test]
    fn an_instance_of_another_manager_belongs_to_no_wukong() {
        let instance: CachedInstance = serde_json::from_value(json!({
            "metadata": {"name": "other", "namespace": "prod", "labels": {"app.kubernetes.io/instance": "web"}}
        }))
        .expect("instance");
        assert_eq!(instance_owner(&instance), None);
    }
}
