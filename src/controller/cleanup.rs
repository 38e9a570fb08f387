//! Deletion: what happens between `kubectl delete wukong` and the Wukong's
//! disappearance.
//!
//! In: a Wukong with a deletion timestamp and the caches. Out: the VM deleted
//! first (and waited for until its instance is gone), then every other
//! registered kind's children deleted — or released when their disk said
//! `Retain` — then its address leases released, and finally the finalizer removed. Existing claims are never
//! touched: only objects this Wukong controls are removed.

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use wukong_models::virtualmachine::VirtualMachine;

use super::apply::{ApplyError, Changes, RemoveKinds};
use super::context::Context;
use super::ownership::{FINALIZER, cached, is_controlled_by};
use crate::api::GuardedWukong;
use crate::children::for_each_kind;
use crate::naming::vm_name;

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
    /// Releasing the Wukong's leases failed.
    #[error(transparent)]
    Lease(#[from] super::addresses::leases::LeaseError),
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
    pub changes: Changes,
    /// Whether the pass is waiting for the VM to stop.
    pub waiting_for_vm: bool,
    /// Whether the finalizer was removed (the Wukong is gone).
    pub finished: bool,
}

/// One cleanup pass. Works from the metadata alone (children are found by the
/// Wukong's UID), so a Wukong whose spec no longer reads is cleaned up too.
/// Returns what it did and when to look again.
pub async fn cleanup(context: &Context, wukong: &GuardedWukong) -> Result<(Cleaned, Action), CleanupError> {
    let namespace = wukong.namespace().unwrap_or_default();
    let name = wukong.name_any();
    let uid = wukong.uid().unwrap_or_default();
    let stores = &context.stores;
    let mut cleaned = Cleaned::default();
    if !wukong.finalizers().iter().any(|finalizer| finalizer == FINALIZER) {
        cleaned.finished = true;
        return Ok((cleaned, Action::await_change()));
    }

    let vm = vm_name(&name);
    let named_vm = stores.of::<VirtualMachine>().get(&namespace, &vm);
    if let Some(found) = named_vm.as_ref().filter(|found| is_controlled_by(found.as_ref(), &uid)) {
        if found.metadata.deletion_timestamp.is_none() {
            let api: Api<VirtualMachine> = Api::namespaced(context.client.clone(), &namespace);
            match api.delete(&vm, &DeleteParams::background()).await {
                Ok(_) => cleaned.changes.deleted.push(format!("VirtualMachine {vm}")),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(CleanupError::DeleteVm { namespace, name: vm, source }),
            }
        }
        cleaned.waiting_for_vm = true;
        return Ok((cleaned, Action::requeue(STOP_POLL)));
    }
    // A VM that has the name but is not ours (a NameConflict) runs that
    // instance: it is not ours to wait for, or the deletion would never end.
    if named_vm.is_none() && cached(&stores.instances, &namespace, &vm).is_some() {
        cleaned.waiting_for_vm = true;
        return Ok((cleaned, Action::requeue(STOP_POLL)));
    }

    let owner = format!("{namespace}/{name}");
    let mut removals = RemoveKinds { context, namespace: &namespace, uid: &uid, owner: &owner, plan: None, steps: Vec::new() };
    for_each_kind(&mut removals);
    // With the VM gone nothing mounts the rest: every kind's removals go out together.
    for outcome in futures::future::try_join_all(removals.steps).await? {
        cleaned.changes.deleted.extend(outcome.changes.deleted);
        cleaned.changes.released.extend(outcome.changes.released);
    }
    // The VM is gone: nothing uses its addresses any more.
    let held = super::addresses::leases::cached_held_by(stores, &uid);
    let released = super::addresses::leases::release_all(&context.client, &held).await?;
    cleaned.changes.deleted.extend(released);
    remove_finalizer(context, wukong).await?;
    cleaned.finished = true;
    Ok((cleaned, Action::await_change()))
}

/// Removes the operator's finalizer. The merge patch carries the
/// resourceVersion it read, so a concurrent change of the finalizer list fails
/// with a conflict (and is retried) instead of being clobbered.
async fn remove_finalizer(context: &Context, wukong: &GuardedWukong) -> Result<(), CleanupError> {
    let namespace = wukong.namespace().unwrap_or_default();
    let name = wukong.name_any();
    let finalizers: Vec<String> = wukong.finalizers().iter().filter(|finalizer| *finalizer != FINALIZER).cloned().collect();
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": wukong.meta().resource_version}});
    let api: Api<GuardedWukong> = Api::namespaced(context.client.clone(), &namespace);
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(CleanupError::Finalizer { namespace, name, source }),
    }
}
