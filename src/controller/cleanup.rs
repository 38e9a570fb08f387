//! Deletion: what happens between `kubectl delete wukong` and the Wukong's
//! disappearance.
//!
//! In: a Wukong with a deletion timestamp and the caches. Out: the VM deleted
//! first (and waited for until its instance is gone), then the attachments,
//! the cloud-init Secret and the operator's volumes deleted — or released when
//! their disk said `Retain` — and finally the finalizer removed. Existing
//! claims are never touched: only objects this Wukong controls are removed.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

use super::apply::{Applied, ApplyError, is_retained, remove};
use super::context::Context;
use super::ownership::{FINALIZER, cached, is_controlled_by, owned};
use crate::api::Wukong;
use crate::build::naming::vm_name;
use crate::validate::ValidWukong;

/// How often a deletion waiting for the VM to stop looks again.
const STOP_POLL: Duration = Duration::from_secs(5);

/// Errors of the cleanup step.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// Deleting or releasing a child failed.
    #[error(transparent)]
    Remove(#[from] ApplyError),
    /// Deleting the VirtualMachine failed.
    #[error("failed to delete VirtualMachine \"{namespace}/{name}\": {source}")]
    DeleteVm {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Removing the finalizer failed.
    #[error("failed to remove the finalizer of Wukong \"{namespace}/{name}\": {source}")]
    Finalizer {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// What a cleanup pass did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Children deleted or released.
    pub applied: Applied,
    /// Whether the pass is waiting for the VM to stop.
    pub waiting_for_vm: bool,
    /// Whether the finalizer was removed (the Wukong is gone).
    pub finished: bool,
}

/// One cleanup pass. Returns what it did and when to look again.
pub async fn cleanup(context: &Context, wukong: &Wukong) -> Result<(Cleaned, Action), CleanupError> {
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let uid = wukong.metadata.uid.clone().unwrap_or_default();
    let stores = &context.stores;
    let mut cleaned = Cleaned::default();
    let has_finalizer = wukong.metadata.finalizers.iter().flatten().any(|finalizer| finalizer == FINALIZER);
    if !has_finalizer {
        cleaned.finished = true;
        return Ok((cleaned, Action::await_change()));
    }

    let named_vm = cached(&stores.virtual_machines, &namespace, &vm_name(&name));
    let vm = named_vm.clone().filter(|vm| is_controlled_by(vm.as_ref(), &uid));
    if let Some(vm) = &vm {
        if vm.metadata.deletion_timestamp.is_none() {
            let api: Api<VirtualMachine> = Api::namespaced(context.client.clone(), &namespace);
            match api.delete(&vm_name(&name), &DeleteParams::background()).await {
                Ok(_) => cleaned.applied.deleted.push(format!("VirtualMachine {}", vm_name(&name))),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(CleanupError::DeleteVm { namespace, name: vm_name(&name), source }),
            }
        }
        cleaned.waiting_for_vm = true;
        return Ok((cleaned, Action::requeue(STOP_POLL)));
    }
    // A VM that has the name but is not ours (a NameConflict) runs that
    // instance: it is not ours to wait for, or the deletion would never end.
    if named_vm.is_none() && cached(&stores.instances, &namespace, &vm_name(&name)).is_some() {
        cleaned.waiting_for_vm = true;
        return Ok((cleaned, Action::requeue(STOP_POLL)));
    }

    let owner = ValidWukong {
        name: name.clone(),
        namespace: namespace.clone(),
        uid: Some(uid.clone()),
        spec: wukong.spec.clone(),
        run_strategy: crate::validate::run_strategy(&wukong.spec),
        memory_bytes: 0,
        networks: Vec::new(),
        disk_sizes: Vec::new(),
    };
    let applied = &mut cleaned.applied;
    for object in owned(&stores.attachments, &namespace, &uid) {
        remove::<NetworkAttachmentDefinition>(context, &object, false, &owner, applied).await?;
    }
    for object in owned(&stores.secrets, &namespace, &uid) {
        remove::<Secret>(context, &object, false, &owner, applied).await?;
    }
    for object in owned(&stores.data_volumes, &namespace, &uid) {
        remove::<DataVolume>(context, &object, is_retained(&object.metadata), &owner, applied).await?;
    }
    for object in owned(&stores.claims, &namespace, &uid) {
        remove::<PersistentVolumeClaim>(context, &object, is_retained(&object.metadata), &owner, applied).await?;
    }

    remove_finalizer(context, wukong).await?;
    cleaned.finished = true;
    Ok((cleaned, Action::await_change()))
}

/// Removes the operator's finalizer. The merge patch carries the
/// resourceVersion it read, so a concurrent change of the finalizer list fails
/// with a conflict (and is retried) instead of being clobbered.
async fn remove_finalizer(context: &Context, wukong: &Wukong) -> Result<(), CleanupError> {
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let finalizers: Vec<String> =
        wukong.metadata.finalizers.iter().flatten().filter(|finalizer| *finalizer != FINALIZER).cloned().collect();
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": wukong.metadata.resource_version}});
    let api: Api<DynamicObject> = Api::namespaced_with(context.client.clone(), &namespace, &super::wukong_resource());
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(CleanupError::Finalizer { namespace, name, source }),
    }
}
