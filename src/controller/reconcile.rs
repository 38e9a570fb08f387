//! The reconcile driver: a thin sequence of named steps.
//!
//! In: a guarded Wukong from the watch cache and the context. Out: the action
//! for the scheduler, after finalizer -> validate the spec -> plan -> observe
//! -> resolve -> validate the facts -> addresses -> apply -> status (or cleanup when the
//! Wukong is being deleted). Each step has its own error type and one variant
//! here; a failed step becomes a condition and an Event, and the status it
//! writes is computed from what the caches show (observe cannot fail), so a
//! failure never makes the status forget a running VM.

use std::time::Duration;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::addresses::{AddressesError, Allocation, addresses};
use super::apply::{ApplyError, Changes, apply};
use super::checks::{ValidateError, check, validate_spec};
use super::cleanup::{CleanupError, cleanup};
use super::context::{Context, elapsed};
use super::observe::{Observed, observe};
use super::operations::{OperationError, announce as announce_operations, operate};
use super::ownership::FINALIZER;
use super::report::{StatusError, publish, report};
use super::resolve::{ResolveError, resolve};
use super::status::pacing::{Pace, pace};
use super::status::{Failure, Inputs, compute};
use crate::api::{GuardedWukong, Wukong, WukongSpec};
use crate::children::plan::{Plan, plan};
use crate::validate::run_strategy;

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
    /// The resolve step failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The apply step failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The status step failed.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The cleanup step failed.
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    /// The operations step (day-2 operations) failed.
    #[error(transparent)]
    Operation(#[from] OperationError),
    /// The addresses step (leases) failed.
    #[error(transparent)]
    Addresses(#[from] AddressesError),
}

impl Error {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Finalizer { .. } => "FinalizerFailed",
            Self::Resolve(_) => "ResolveFailed",
            Self::Apply(_) => "ApplyFailed",
            Self::Status(_) => "StatusFailed",
            Self::Cleanup(_) => "CleanupFailed",
            Self::Operation(_) => "OperationFailed",
            Self::Addresses(_) => "AddressesFailed",
        }
    }

    /// The API server's reason for the failure (`Conflict`, `InternalError`,
    /// ...), or `Unreachable` when no answer came.
    pub fn api_reason(&self) -> String {
        let source = match self {
            Self::Finalizer { source, .. } => source,
            Self::Resolve(ResolveError::ReadSecret { source, .. }) => source,
            Self::Apply(ApplyError::Apply { source, .. } | ApplyError::Remove { source, .. }) => source,
            Self::Status(StatusError::Write { source, .. }) => source,
            Self::Cleanup(CleanupError::Remove(ApplyError::Apply { source, .. } | ApplyError::Remove { source, .. })) => source,
            Self::Cleanup(CleanupError::DeleteVm { source, .. } | CleanupError::Finalizer { source, .. }) => source,
            Self::Cleanup(CleanupError::Lease(error)) => &error.source,
            Self::Operation(error) => error.source_error(),
            Self::Addresses(error) => match error.source_error() {
                Some(source) => source,
                None => return "Contended".to_string(),
            },
        };
        match source {
            kube::Error::Api(status) if !status.reason.is_empty() => status.reason.clone(),
            kube::Error::Api(status) => format!("HTTP{}", status.code),
            _ => "Unreachable".to_string(),
        }
    }

    /// The step that failed, for metrics and logs.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Finalizer { .. } => "finalizer",
            Self::Resolve(_) => "resolve",
            Self::Apply(_) => "apply",
            Self::Status(_) => "status",
            Self::Cleanup(_) => "cleanup",
            Self::Operation(_) => "operations",
            Self::Addresses(_) => "addresses",
        }
    }
}

/// Reconciles one Wukong; a failed step is counted by step and reason.
pub async fn reconcile(object: std::sync::Arc<GuardedWukong>, context: std::sync::Arc<Context>) -> Result<Action, Error> {
    // The cache may not show this operator's last write of the Wukong yet (its
    // finalizer, its status): the pass starts from that write then.
    let (namespace, name) = (object.meta().namespace.clone().unwrap_or_default(), object.meta().name.clone().unwrap_or_default());
    let object = context.recent.newest(Some(object.clone()), &namespace, &name).unwrap_or(object);
    let result = steps(&object, &context).await;
    if let Err(error) = &result {
        context.metrics.step_failed(error.step(), &error.api_reason());
    }
    result
}

/// The steps of one pass.
async fn steps(object: &GuardedWukong, context: &Context) -> Result<Action, Error> {
    if object.meta().deletion_timestamp.is_some() {
        return delete(context, object).await;
    }
    let wukong = match &object.0 {
        Ok(wukong) => wukong,
        Err(unreadable) => return refuse(context, object, None, "InvalidSpec", unreadable.error.clone()).await,
    };
    add_finalizer(context, wukong).await?;
    let valid = match validate_spec(wukong) {
        Ok(valid) => valid,
        Err(error) => return refuse(context, object, Some(wukong), error.reason(), message(&error)).await,
    };
    let plan = plan(&valid);
    let observed = observe(&context.stores, wukong, &plan);
    let resolved = match resolve(&context.client, wukong).await {
        Ok(resolved) => resolved,
        Err(error) => return fail(context, object, &plan, &observed, Error::Resolve(error)).await,
    };
    let mut inputs = match check(&valid, &plan, &observed, &resolved) {
        Ok(inputs) => inputs,
        Err(error) => return refuse_facts(context, object, &plan, &observed, &error).await,
    };
    let mut observed = observed;
    match addresses(context, wukong, &valid).await {
        Ok(Allocation::Leased(leased)) => {
            if !leased.released.is_empty() {
                let note = format!("released {}, no longer in the spec", leased.released.join(", "));
                publish(context, object, EventType::Normal, "Released", note).await;
            }
            inputs.addresses = leased.addresses;
            // Addresses still held for a running VM (released later) stay shown too.
            observed.leased.extend(leased.shown);
        }
        Ok(Allocation::Refused(refusals)) => {
            return refuse_facts(context, object, &plan, &observed, &ValidateError::Refused(refusals)).await;
        }
        Err(error) => return fail(context, object, &plan, &observed, Error::Addresses(error)).await,
    }
    let observed = observed;
    // Children only become orphans when the spec changes: scan for them when the
    // generation moved since the last status (which a cut-short pass never wrote).
    // Before any status, only a spec that changed since the creation can have left
    // orphans: a new Wukong's passes skip the scan of every cache (O(fleet) each).
    let scan_for_orphans = match object.status() {
        Some(status) => status.observed_generation != wukong.metadata.generation,
        None => wukong.metadata.generation.is_none_or(|generation| generation > 1),
    };
    let mut applied = match apply(context, &valid, &plan, &inputs, &observed, scan_for_orphans).await {
        Ok(applied) => applied,
        Err(error) => return fail(context, object, &plan, &observed, Error::Apply(error)).await,
    };
    // Day-2 operations (controller/operations.rs): what the status acknowledged is sent once.
    applied.observed.operations = match operate(context, wukong, &plan, &applied.observed).await {
        Ok(performed) => performed,
        Err(error) => return fail(context, object, &plan, &applied.observed, Error::Operation(error)).await,
    };
    let created = observed.virtual_machine().is_none() && applied.observed.virtual_machine().is_some();
    if !created {
        // Creating the children of a new Wukong is the expected answer to its
        // creation, not a decision worth an Event; writing them later is (a
        // repair of someone's edit, or an update of the spec).
        announce(context, object, &applied.changes, ("Removed", ", no longer in the spec")).await;
    }
    if created {
        // The VM was just created: the watch events of the new children,
        // gathered by the debounce, bring the next pass at once; it reports
        // the settled state, which saves a status write per new Wukong. The
        // short requeue guarantees that pass even if no event came.
        return Ok(Action::requeue(STATUS_AFTER_CREATE));
    }
    let held = status(context, object, &plan, &applied.observed, None).await?;
    Ok(Action::requeue(held.unwrap_or(RESYNC)))
}

/// Computes the status from what was observed and writes it, or holds it
/// while a new Wukong converges (returning when to look again); a failed write
/// becomes an Event too (there is no status to carry it).
async fn status(
    context: &Context,
    object: &GuardedWukong,
    plan: &Plan,
    observed: &Observed,
    failure: Option<&Failure>,
) -> Result<Option<Duration>, Error> {
    let default_spec = WukongSpec::default();
    let spec = object.wukong().map_or(&default_spec, |wukong| &wukong.spec);
    let now = (context.clock)();
    let inputs = Inputs {
        generation: object.meta().generation,
        spec,
        run_strategy: run_strategy(spec),
        plan,
        observed,
        failure,
        previous: object.status(),
        now: &now,
    };
    let computed = compute(&inputs);
    let key = format!("{}/{}", plan.namespace, plan.wukong);
    let changed = object.status() != Some(&computed);
    if changed {
        // A Wukong converges from when the operator built its VM: under load
        // its first pass may come long after its creation, and the window
        // must not be over before the Wukong had a chance to settle.
        let vm_created = observed.virtual_machine().and_then(|vm| vm.metadata.creation_timestamp.as_ref());
        let created = vm_created.or(object.meta().creation_timestamp.as_ref()).map(|time| time.0.to_string());
        let last_write = context.status_writes.lock().ok().and_then(|writes| writes.get(&key).cloned());
        let age = created.as_deref().and_then(|created| elapsed(created, &now)).unwrap_or(Duration::MAX);
        let since_write = last_write.as_deref().and_then(|written| elapsed(written, &now));
        if let Pace::Hold(hold) = pace(&context.pacing, object.status(), &computed, age, since_write) {
            return Ok(Some(hold));
        }
    }
    announce_operations(context, object, &computed).await;
    if let Err(error) = report(context, object, &computed, failure).await {
        publish(context, object, EventType::Warning, "StatusFailed", error.to_string()).await;
        return Err(Error::Status(error));
    }
    if changed && let Ok(mut writes) = context.status_writes.lock() {
        writes.insert(key, now);
    }
    Ok(None)
}

/// Reports a transient failure (Synced=False, an Event) over what the caches
/// show, and returns it for backoff.
async fn fail(context: &Context, object: &GuardedWukong, plan: &Plan, observed: &Observed, error: Error) -> Result<Action, Error> {
    let failure = Failure { reason: error.reason().to_string(), message: error.to_string(), invalid: false };
    if let Err(status_error) = status(context, object, plan, observed, Some(&failure)).await {
        warn!(error = %status_error, "failed to report a failure in the status");
    }
    Err(error)
}

/// Reports an unreadable or invalid spec: phase Error until the spec changes.
async fn refuse(
    context: &Context,
    object: &GuardedWukong,
    wukong: Option<&Wukong>,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let meta = object.meta();
    let (namespace, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    let plan = Plan::unbuildable(&namespace, &name, wukong.map(|wukong| &wukong.spec));
    let observed = wukong.map(|wukong| observe(&context.stores, wukong, &plan)).unwrap_or_default();
    let failure = Failure { reason: reason.to_string(), message, invalid: true };
    context.metrics.step_failed("validate", reason);
    status(context, object, &plan, &observed, Some(&failure)).await?;
    Ok(Action::await_change())
}

/// Reports a valid spec the cluster does not allow building yet; looks again
/// later in case the watches miss the fix.
async fn refuse_facts(
    context: &Context,
    object: &GuardedWukong,
    plan: &Plan,
    observed: &Observed,
    error: &ValidateError,
) -> Result<Action, Error> {
    let failure = Failure { reason: error.reason().to_string(), message: message(error), invalid: true };
    context.metrics.step_failed("validate", error.reason());
    status(context, object, plan, observed, Some(&failure)).await?;
    Ok(Action::requeue(REFUSED_RETRY))
}

fn message(error: &ValidateError) -> String {
    match error {
        ValidateError::InvalidSpec(problems) => problems.to_string(),
        ValidateError::Refused(_) => error.to_string(),
    }
}

/// One cleanup pass of a Wukong being deleted.
async fn delete(context: &Context, object: &GuardedWukong) -> Result<Action, Error> {
    let (cleaned, action) = cleanup(context, object).await?;
    announce(context, object, &cleaned.changes, ("Cleanup", "")).await;
    if cleaned.finished {
        // The Wukong is gone: forget when its status was last written.
        let key =
            format!("{}/{}", object.meta().namespace.as_deref().unwrap_or_default(), object.meta().name.as_deref().unwrap_or_default());
        if let Ok(mut writes) = context.status_writes.lock() {
            writes.remove(&key);
        }
        info!(namespace = ?object.meta().namespace, name = ?object.meta().name, "cleanup finished");
    }
    Ok(action)
}

/// One Event per kind of change and pass, not one per child: Events are API
/// writes too. `removal` is the reason of the deletions' Event and what the
/// removal notes add (why).
async fn announce(context: &Context, object: &GuardedWukong, changes: &Changes, removal: (&str, &str)) {
    let (reason, why) = removal;
    if !changes.written.is_empty() {
        publish(context, object, EventType::Normal, "Applied", format!("applied {}", changes.written.join(", "))).await;
    }
    if !changes.deleted.is_empty() {
        publish(context, object, EventType::Normal, reason, format!("deleted {}{why}", changes.deleted.join(", "))).await;
    }
    if !changes.released.is_empty() {
        let note = format!("kept {} (deletionPolicy Retain){why}", changes.released.join(", "));
        publish(context, object, EventType::Normal, "Retained", note).await;
    }
}

/// Adds the finalizer before the first child exists. The merge patch carries
/// the resourceVersion it read, so a concurrent change of the finalizer list
/// fails with a conflict (and is retried) instead of being lost.
async fn add_finalizer(context: &Context, wukong: &Wukong) -> Result<(), Error> {
    if wukong.metadata.finalizers.iter().flatten().any(|finalizer| finalizer == FINALIZER) {
        return Ok(());
    }
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let mut finalizers = wukong.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": wukong.metadata.resource_version}});
    let api: Api<GuardedWukong> = Api::namespaced(context.client.clone(), &namespace);
    let written = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|source| Error::Finalizer {
        namespace,
        name,
        source,
    })?;
    context.recent.wrote(written);
    Ok(())
}
