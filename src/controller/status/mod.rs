//! The status step, pure: the Wukong's status as a function of its
//! generation, its spec and plan, what the caches show, the failed step and the
//! previous status.
//!
//! In: [`Inputs`]. Out: the [`WukongStatus`] ([`compute`]): the phase
//! ([`phase`]), the conditions ([`conditions`]) and the per-network and
//! per-disk statuses ([`resources`]) and the day-2 operations ([`operations`]). No client, no clock (the time comes in),
//! no randomness; the controller's `report` module only writes the result.

pub mod conditions;
pub mod operations;
#[cfg(test)]
mod operations_tests;
pub mod pacing;
pub mod phase;
pub mod resources;
#[cfg(test)]
mod tests;

use crate::api::{Condition, RunStrategy, WukongSpec, WukongStatus};
use crate::children::plan::Plan;

use super::observe::Observed;

/// Condition types.
pub mod types {
    /// The VM runs and KubeVirt reports it ready.
    pub const READY: &str = "Ready";
    /// Every NetworkAttachmentDefinition exists.
    pub const NETWORKS_CONFIGURED: &str = "NetworksConfigured";
    /// Every claim is Bound (or waits for its first consumer).
    pub const VOLUMES_BOUND: &str = "VolumesBound";
    /// The spec is valid and its dependencies usable.
    pub const VALID: &str = "Valid";
    /// The last reconcile reached the cluster without an API error.
    pub const SYNCED: &str = "Synced";
    /// KubeVirt needs a restart of the VM to apply the last change.
    pub const RESTART_REQUIRED: &str = "RestartRequired";
}

/// A failed step, as the status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase reason.
    pub reason: String,
    /// What failed, naming the field or object.
    pub message: String,
    /// Whether the failure is in the spec or its dependencies (phase Error,
    /// condition Valid=False) rather than a transient API error (Synced=False).
    pub invalid: bool,
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The spec (possibly invalid; the default for one that does not read).
    pub spec: &'a WukongSpec,
    /// The run strategy the spec asks for.
    pub run_strategy: RunStrategy,
    /// The plan (for an invalid spec, only what its name decides).
    pub plan: &'a Plan,
    /// What the caches (and the writes of this pass) show.
    pub observed: &'a Observed,
    /// The failed step, if any.
    pub failure: Option<&'a Failure>,
    /// The status as it was.
    pub previous: Option<&'a WukongStatus>,
    /// The current time (RFC 3339), for conditions that change.
    pub now: &'a str,
}

/// Computes the status.
pub fn compute(inputs: &Inputs<'_>) -> WukongStatus {
    let instance_status = inputs.observed.instance.as_ref().and_then(|instance| instance.status.as_ref());
    let networks = resources::networks(inputs);
    let volumes = resources::volumes(inputs);
    let phase = phase::phase(inputs);
    let mut conditions = conditions::conditions(inputs, phase, &networks, &volumes);
    stamp(&mut conditions, inputs);
    let ip_address = networks.iter().flat_map(|network| network.ip_addresses.first()).next().cloned().or_else(|| {
        instance_status
            .and_then(|status| status.interfaces.as_ref())
            .and_then(|interfaces| interfaces.iter().find_map(|nic| nic.ip_address.clone()))
    });
    WukongStatus {
        phase: Some(phase),
        observed_generation: inputs.generation,
        vm_name: inputs.observed.virtual_machine().map(|_| inputs.plan.virtual_machine.clone()),
        node_name: instance_status.and_then(|status| status.node_name.clone()),
        ip_address,
        conditions,
        networks,
        volumes,
        restart: operations::restart(inputs),
        migration: operations::migration(inputs),
    }
}

/// Sets each condition's generation, and its transition time: kept from the
/// previous condition of the same type and status, else now.
fn stamp(conditions: &mut [Condition], inputs: &Inputs<'_>) {
    let previous = inputs.previous.map(|status| status.conditions.as_slice()).unwrap_or_default();
    for condition in conditions {
        condition.observed_generation = inputs.generation;
        condition.last_transition_time = previous
            .iter()
            .find(|old| old.type_ == condition.type_ && old.status == condition.status)
            .map_or_else(|| inputs.now.to_string(), |old| old.last_transition_time.clone());
    }
}
