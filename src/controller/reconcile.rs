//! The reconcile driver: a thin sequence of named steps.
//!
//! In: a raw Wukong object from the watch cache and the context. Out: the
//! action for the scheduler, after running parse -> dereference -> validate ->
//! build -> apply -> status (or cleanup when the Wukong is being deleted). Each
//! step has its own error type; a failed step becomes a condition and an Event.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::{ApplyError, apply};
use super::cleanup::{CleanupError, cleanup};
use super::context::Context;
use super::dereference::{DereferenceError, Dereferenced, Observed, dereference};
use super::ownership::FINALIZER;
use super::status::{self, Failure, Inputs, StatusError};
use super::validate::{ValidateError, validate};
use super::wukong_resource;
use crate::api::{Wukong, WukongStatus};
use crate::build::build;

/// How long a converged Wukong waits before it is looked at again (drift the
/// watches missed); such a pass writes nothing.
pub const RESYNC: Duration = Duration::from_secs(600);
/// When the pass after the one that created the VM runs at the latest.
pub const STATUS_AFTER_CREATE: Duration = Duration::from_secs(2);
/// How long a Wukong the cluster refuses waits before it is looked at again,
/// in case the watches miss the fix.
pub const REFUSED_RETRY: Duration = Duration::from_secs(120);

/// A failed reconcile: one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Adding the finalizer failed.
    #[error("failed to add the finalizer to Wukong \"{namespace}/{name}\": {source}")]
    Finalizer {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The dereference step failed.
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    /// The apply step failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The status step failed.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The cleanup step failed.
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
}

impl Error {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Finalizer { .. } => "FinalizerFailed",
            Self::Dereference(_) => "DereferenceFailed",
            Self::Apply(_) => "ApplyFailed",
            Self::Status(_) => "StatusFailed",
            Self::Cleanup(_) => "CleanupFailed",
        }
    }
}

/// Reads a raw Wukong into the typed one; the error names the field.
pub fn parse(object: &DynamicObject) -> Result<Wukong, String> {
    let value = serde_json::to_value(object).map_err(|error| format!("failed to read the object: {error}"))?;
    serde_path_to_error::deserialize::<_, Wukong>(value).map_err(|error| {
        let path = error.path().to_string();
        format!("failed to read {path}: {}", error.into_inner())
    })
}

/// Reconciles one Wukong.
pub async fn reconcile(object: Arc<DynamicObject>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let api: Api<DynamicObject> = Api::namespaced_with(context.client.clone(), &namespace, &wukong_resource());
    let previous = status::previous(&object);
    let reference = object.object_ref(&wukong_resource());
    let now = (context.clock)();

    let wukong = match parse(&object) {
        Ok(wukong) => wukong,
        // Cleanup works from the metadata (children are found by UID): a spec
        // that no longer reads must not keep the finalizer on forever.
        Err(_) if object.metadata.deletion_timestamp.is_some() => {
            Wukong { metadata: object.metadata.clone(), spec: crate::api::WukongSpec::default(), status: None }
        }
        Err(message) => {
            let failure = Failure { reason: "InvalidSpec".to_string(), message, invalid: true };
            let spec = crate::api::WukongSpec::default();
            let dereferenced = Dereferenced::default();
            let inputs = inputs(&object, &spec, &dereferenced, &dereferenced.observed, Some(&failure), previous.as_ref(), &now);
            report(&context, &api, &object, &inputs, previous.as_ref()).await?;
            return Ok(Action::await_change());
        }
    };

    if wukong.metadata.deletion_timestamp.is_some() {
        let (cleaned, action) = cleanup(&context, &wukong).await?;
        if !cleaned.applied.deleted.is_empty() {
            publish(&context, &reference, EventType::Normal, "Cleanup", format!("deleted {}", cleaned.applied.deleted.join(", "))).await;
        }
        if !cleaned.applied.released.is_empty() {
            let note = format!("kept {} (deletionPolicy Retain)", cleaned.applied.released.join(", "));
            publish(&context, &reference, EventType::Normal, "Retained", note).await;
        }
        if cleaned.finished {
            info!(%namespace, %name, "cleanup finished");
        }
        return Ok(action);
    }

    if !wukong.metadata.finalizers.iter().flatten().any(|finalizer| finalizer == FINALIZER) {
        add_finalizer(&api, &wukong).await?;
    }

    let dereferenced = match dereference(&context, &wukong).await {
        Ok(dereferenced) => dereferenced,
        Err(error) => return fail(&context, &api, &object, &wukong, Error::Dereference(error), previous.as_ref()).await,
    };

    let validated = match validate(&wukong, &dereferenced) {
        Ok(validated) => validated,
        Err(error) => {
            let failure = Failure { reason: error.reason().to_string(), message: validate_message(&error), invalid: true };
            let inputs = inputs(&object, &wukong.spec, &dereferenced, &dereferenced.observed, Some(&failure), previous.as_ref(), &now);
            report(&context, &api, &object, &inputs, previous.as_ref()).await?;
            let action = match error {
                ValidateError::InvalidSpec(_) => Action::await_change(),
                ValidateError::Refused(_) => Action::requeue(REFUSED_RETRY),
            };
            return Ok(action);
        }
    };

    let children = build(&validated.wukong, &validated.passwords);
    // Children only become orphans when the spec changes: scan for them when the
    // generation moved since the last status (which a cut-short pass never wrote).
    let scan_for_orphans = previous.as_ref().and_then(|status| status.observed_generation) != wukong.metadata.generation;
    let applied = match apply(&context, &validated.wukong, children, &dereferenced.observed, scan_for_orphans).await {
        Ok(applied) => applied,
        Err(error) => return fail(&context, &api, &object, &wukong, Error::Apply(error), previous.as_ref()).await,
    };
    // One Event per kind of change and pass, not one per child: Events are API writes too.
    if !applied.written.is_empty() {
        publish(&context, &reference, EventType::Normal, "Applied", format!("applied {}", applied.written.join(", "))).await;
    }
    if !applied.deleted.is_empty() {
        publish(
            &context,
            &reference,
            EventType::Normal,
            "Removed",
            format!("deleted {}, no longer in the spec", applied.deleted.join(", ")),
        )
        .await;
    }
    if !applied.released.is_empty() {
        let note = format!("kept {} (deletionPolicy Retain), no longer in the spec", applied.released.join(", "));
        publish(&context, &reference, EventType::Normal, "Retained", note).await;
    }
    if dereferenced.observed.virtual_machine.is_none() && applied.observed.virtual_machine.is_some() {
        // The VM was just created: its watch event (and those of the other new
        // children, gathered by the debounce) brings another pass at once, which
        // reports the settled state. Writing "Creating" now would cost a status
        // write per new Wukong that the next pass overwrites; the short requeue
        // guarantees that pass even if no event came.
        return Ok(Action::requeue(STATUS_AFTER_CREATE));
    }
    let inputs = inputs(&object, &wukong.spec, &dereferenced, &applied.observed, None, previous.as_ref(), &now);
    report(&context, &api, &object, &inputs, previous.as_ref()).await?;
    Ok(Action::requeue(RESYNC))
}

fn validate_message(error: &ValidateError) -> String {
    match error {
        ValidateError::InvalidSpec(problems) => problems.to_string(),
        ValidateError::Refused(_) => error.to_string(),
    }
}

/// Reports a transient failure in the status and returns it for backoff.
async fn fail(
    context: &Context,
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    wukong: &Wukong,
    error: Error,
    previous: Option<&WukongStatus>,
) -> Result<Action, Error> {
    let failure = Failure { reason: error.reason().to_string(), message: error.to_string(), invalid: false };
    // What the caches hold: the children, and the existing claims and storage
    // classes the volume statuses are computed from.
    let dereferenced = dereference(context, wukong).await.unwrap_or_default();
    let now = (context.clock)();
    let inputs = inputs(object, &wukong.spec, &dereferenced, &dereferenced.observed, Some(&failure), previous, &now);
    if let Err(status_error) = report(context, api, object, &inputs, previous).await {
        warn!(error = %status_error, "failed to report a failure in the status");
    }
    Err(error)
}

fn inputs<'a>(
    object: &'a DynamicObject,
    spec: &'a crate::api::WukongSpec,
    dereferenced: &'a Dereferenced,
    observed: &'a Observed,
    failure: Option<&'a Failure>,
    previous: Option<&'a WukongStatus>,
    now: &'a str,
) -> Inputs<'a> {
    Inputs {
        generation: object.metadata.generation,
        namespace: object.metadata.namespace.as_deref().unwrap_or_default(),
        name: object.metadata.name.as_deref().unwrap_or_default(),
        spec,
        observed,
        dereferenced,
        failure,
        previous,
        now,
    }
}

/// Computes and writes the status; publishes Events for a phase change and for
/// a newly failing step.
async fn report(
    context: &Context,
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    inputs: &Inputs<'_>,
    previous: Option<&WukongStatus>,
) -> Result<(), StatusError> {
    let status = status::compute(inputs);
    let reference = object.object_ref(&wukong_resource());
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let old_phase = previous.and_then(|status| status.phase);
    if old_phase != status.phase
        && let Some(phase) = status.phase
    {
        let kind = if phase == crate::api::Phase::Error { EventType::Warning } else { EventType::Normal };
        let from = old_phase.map_or("none", |phase| phase.as_str());
        publish(context, &reference, kind, "PhaseChanged", format!("phase {from} -> {}", phase.as_str())).await;
    }
    if let Some(failure) = inputs.failure {
        let already = previous.is_some_and(|status| {
            status.conditions.iter().any(|condition| condition.reason == failure.reason && condition.message == failure.message)
        });
        if !already {
            publish(context, &reference, EventType::Warning, &failure.reason, failure.message.clone()).await;
        }
    }
    status::write(api, &name, &namespace, &status, previous).await?;
    Ok(())
}

/// Publishes an Event; failing to publish is logged, never fatal.
async fn publish(context: &Context, reference: &k8s_openapi::api::core::v1::ObjectReference, kind: EventType, reason: &str, note: String) {
    let event = Event { type_: kind, reason: reason.to_string(), note: Some(note), action: "Reconcile".to_string(), secondary: None };
    if let Err(error) = context.recorder.publish(&event, reference).await {
        warn!(%error, reason, "failed to publish an event");
    }
}

/// Adds the finalizer before the first child exists. The merge patch carries
/// the resourceVersion it read, so a concurrent change of the finalizer list
/// fails with a conflict (and is retried) instead of being lost.
async fn add_finalizer(api: &Api<DynamicObject>, wukong: &Wukong) -> Result<(), Error> {
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let mut finalizers = wukong.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": wukong.metadata.resource_version}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|source| Error::Finalizer {
        namespace,
        name,
        source,
    })?;
    Ok(())
}
