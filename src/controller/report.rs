//! Reporting: the status write and the Events of a pass.
//!
//! In: the computed status, the previous one and the failed step. Out: the
//! status written with server-side apply only when it changed, an Event when
//! the phase changes in a way worth telling ([`is_newsworthy`]) or a step newly
//! fails, and a summary Event per kind of decision (repaired, removed,
//! retained) — never one per child, as Events are API writes too.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use tracing::warn;

use super::context::Context;
use super::status::Failure;
use crate::api::{GuardedWukong, Phase, WukongStatus};
use crate::children::meta::MANAGER;

/// Errors of the status step.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Writing the status failed.
    #[error("failed to write the status of Wukong \"{namespace}/{name}\": {source}")]
    Write {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The status subresource body for server-side apply.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a WukongStatus,
}

/// Publishes the Events the new status calls for, then writes it when it
/// differs from the previous one.
pub async fn report(
    context: &Context,
    wukong: &GuardedWukong,
    status: &WukongStatus,
    failure: Option<&Failure>,
) -> Result<(), StatusError> {
    let previous = wukong.status();
    let old_phase = previous.and_then(|status| status.phase);
    if let Some(phase) = status.phase
        && is_newsworthy(old_phase, phase)
    {
        let kind = if phase == Phase::Error { EventType::Warning } else { EventType::Normal };
        let from = old_phase.map_or("none", |phase| phase.as_str());
        publish(context, wukong, kind, "PhaseChanged", format!("phase {from} -> {}", phase.as_str())).await;
    }
    if let Some(failure) = failure {
        let already = previous.is_some_and(|status| {
            status.conditions.iter().any(|condition| condition.reason == failure.reason && condition.message == failure.message)
        });
        if !already {
            publish(context, wukong, EventType::Warning, &failure.reason, failure.message.clone()).await;
        }
    }
    if previous == Some(status) {
        return Ok(());
    }
    let namespace = wukong.namespace().unwrap_or_default();
    let name = wukong.name_any();
    let api: Api<GuardedWukong> = Api::namespaced(context.client.clone(), &namespace);
    let body = StatusApply { api_version: "vm.novasphere.dev/v1alpha1", kind: "Wukong", status };
    let written = api
        .patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|source| StatusError::Write { namespace, name, source })?;
    context.recent.wrote(written);
    Ok(())
}

/// Whether a phase change is worth an Event (an API write): reaching Running,
/// entering or leaving Error, and a VM that stops running. The steps of a
/// converging Wukong (none -> Pending -> Creating) are not: on the happy path a
/// Wukong costs one Event, when its VM runs.
pub fn is_newsworthy(old: Option<Phase>, new: Phase) -> bool {
    old != Some(new) && (new == Phase::Running || new == Phase::Error || old == Some(Phase::Error) || old == Some(Phase::Running))
}

/// Publishes an Event about the Wukong; failing to publish is logged, never fatal.
pub async fn publish(context: &Context, wukong: &GuardedWukong, kind: EventType, reason: &str, note: String) {
    let reference = wukong.object_ref(&());
    let event = Event { type_: kind, reason: reason.to_string(), note: Some(note), action: "Reconcile".to_string(), secondary: None };
    if let Err(error) = context.recorder.publish(&event, &reference).await {
        warn!(%error, reason, "failed to publish an event");
    }
}
