//! The phase table of the design notes.
//!
//! In: the status inputs. Out: the [`Phase`]: an invalid spec or unusable
//! dependency is Error; no VM is Pending; else the VMI's phase decides
//! (Running; Pending/Scheduling/Scheduled -> Creating; Failed/Unknown -> Error;
//! Succeeded -> Stopped), and without a VMI the run strategy does (Halted or
//! Manual -> Stopped, else Creating). A transient failure changes nothing here.

use super::Inputs;
use crate::api::{Phase, RunStrategy};

/// The phase of the Wukong.
pub fn phase(inputs: &Inputs<'_>) -> Phase {
    if inputs.failure.is_some_and(|failure| failure.invalid) {
        return Phase::Error;
    }
    if inputs.observed.virtual_machine().is_none() {
        return Phase::Pending;
    }
    let instance_phase =
        inputs.observed.instance.as_ref().and_then(|instance| instance.status.as_ref()).and_then(|status| status.phase.as_deref());
    match instance_phase {
        Some("Running") => Phase::Running,
        Some("Failed" | "Unknown") => Phase::Error,
        Some("Succeeded") => Phase::Stopped,
        Some(_) => Phase::Creating,
        None if matches!(inputs.run_strategy, RunStrategy::Halted | RunStrategy::Manual) => Phase::Stopped,
        None => Phase::Creating,
    }
}
