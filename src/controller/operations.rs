//! The operations step: the day-2 operations that are not children.
//!
//! In: the Wukong (its tokens and previous status) and what the caches show
//! (its running instance). Out: [`Performed`], what was sent to KubeVirt this
//! pass: a restart the status acknowledged as Pending is sent once, through
//! virt-api's `restart` subresource, or — where virt-api does not serve it
//! (404) — by deleting the instance (with its UID as a precondition), so that
//! KubeVirt starts a new one. Migrations are children (`children::migration`).
//! [`announce`] publishes an Event for every decision the status records, of
//! restarts and migrations. The decisions themselves are pure
//! (`status::operations`).

use kube::Client;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::EventType;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use super::context::Context;
use super::observe::Observed;
use super::report::publish;
use super::status::operations::running_uid;
use crate::api::{GuardedWukong, OperationPhase, Wukong, WukongStatus};
use crate::children::Permission;
use crate::children::plan::Plan;

/// The access the operations need besides the children's.
pub const PERMISSIONS: &[Permission] = &[
    // The restart subresource virt-api serves (a PUT is authorised as update).
    Permission { group: "subresources.kubevirt.io", resource: "virtualmachines/restart", verbs: &["update"] },
    // Without virt-api, a restart deletes the instance.
    Permission { group: "kubevirt.io", resource: "virtualmachineinstances", verbs: &["delete"] },
];

/// Errors of the operations step.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Sending a restart failed.
    #[error("failed to restart VirtualMachine \"{namespace}/{name}\": {source}")]
    Restart {
        /// Namespace.
        namespace: String,
        /// Name of the VirtualMachine.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl OperationError {
    /// The API error behind the failure.
    pub fn source_error(&self) -> &kube::Error {
        match self {
            Self::Restart { source, .. } => source,
        }
    }
}

/// What the operations step sent this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Performed {
    /// How a restart was sent, in words, when one was.
    pub restart: Option<String>,
}

/// Sends what the previous status acknowledged and is not yet sent.
pub async fn operate(context: &Context, wukong: &Wukong, plan: &Plan, observed: &Observed) -> Result<Performed, OperationError> {
    let mut performed = Performed::default();
    let token = wukong.spec.restart_requested_at.as_deref();
    let pending = wukong
        .status
        .as_ref()
        .and_then(|status| status.restart.as_ref())
        .filter(|restart| Some(restart.requested_at.as_str()) == token && restart.phase == OperationPhase::Pending);
    if let Some(pending) = pending
        && let Some(uid) = running_uid(observed.instance.as_deref())
        && pending.old_instance_uid.as_deref() == Some(uid)
    {
        let how = restart(&context.client, &plan.namespace, &plan.virtual_machine, uid)
            .await
            .map_err(|source| OperationError::Restart { namespace: plan.namespace.clone(), name: plan.virtual_machine.clone(), source })?;
        performed.restart = Some(how);
    }
    Ok(performed)
}

/// Restarts the VM through virt-api, or deletes its instance `uid` where
/// virt-api does not serve the subresource; returns how, in words.
async fn restart(client: &Client, namespace: &str, name: &str, uid: &str) -> Result<String, kube::Error> {
    let url = format!("/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}/restart");
    let request = http::Request::put(url).header(http::header::CONTENT_TYPE, "application/json").body(b"{}".to_vec());
    let request = request.map_err(kube::Error::HttpError)?;
    match client.request_text(request).await {
        Ok(_) => return Ok(format!("restart sent through virt-api; waiting for a new instance to replace \"{uid}\"")),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(error),
    }
    let instances: Api<VirtualMachineInstance> = Api::namespaced(client.clone(), namespace);
    let preconditions = Preconditions { uid: Some(uid.to_string()), resource_version: None };
    let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
    match instances.delete(name, &params).await {
        Ok(_) => {}
        // Already gone, or already replaced: nothing left to restart.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(error) => return Err(error),
    }
    Ok(format!("instance \"{uid}\" deleted (virt-api serves no restart); waiting for KubeVirt to start a new one"))
}

/// Publishes one Event per operation whose token or phase the new status changes.
pub async fn announce(context: &Context, object: &GuardedWukong, status: &WukongStatus) {
    let previous = object.status();
    let restart = previous.and_then(|status| status.restart.as_ref());
    if let Some(now) = &status.restart
        && restart.map(|before| (&before.requested_at, before.phase)) != Some((&now.requested_at, now.phase))
    {
        let warning = matches!(now.phase, OperationPhase::Failed | OperationPhase::Skipped);
        let note = format!("restart \"{}\": {}", now.requested_at, now.message.clone().unwrap_or_default());
        event(context, object, warning, &format!("Restart{}", now.phase.as_str()), note).await;
    }
    let migration = previous.and_then(|status| status.migration.as_ref());
    if let Some(now) = &status.migration
        && migration.map(|before| (&before.requested_at, &before.phase)) != Some((&now.requested_at, &now.phase))
    {
        let warning = matches!(now.phase.as_str(), "Failed" | "Skipped");
        let note = format!("migration \"{}\": {}", now.requested_at, now.message.clone().unwrap_or_default());
        event(context, object, warning, &format!("Migration{}", now.phase), note).await;
    }
}

async fn event(context: &Context, object: &GuardedWukong, warning: bool, reason: &str, note: String) {
    let kind = if warning { EventType::Warning } else { EventType::Normal };
    publish(context, object, kind, reason, note).await;
}
