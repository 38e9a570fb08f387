//! When a changed status is written: at once, or held a little while the
//! Wukong is still converging.
//!
//! In: the pacing settings, the previous and the new status, the Wukong's age
//! and how long ago its status was last written. Out: [`Pace`]. Every status
//! write is an API server's time: a new Wukong's intermediate states (no VM
//! yet, its instance scheduling, its image importing) are held for up to
//! `settle` after its VM was created (its own creation while it has none),
//! so the usual new Wukong costs one status write,
//! when its VM runs; after that, an import's progress is written at most every
//! `progress_interval`. Settled states, failures and refusals are written at
//! once. Held statuses are never wrong, only later: the write that follows
//! carries the state as it then is. Pure: the times come in.

use std::time::Duration;

use crate::api::{Phase, WukongStatus};

/// How status writes are paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// How long after its VM's creation a converging Wukong's status may be held.
    pub settle: Duration,
    /// How often at most a changed import progress alone is written.
    pub progress_interval: Duration,
}

impl Pacing {
    /// No holding at all: every changed status is written at once.
    pub const IMMEDIATE: Pacing = Pacing { settle: Duration::ZERO, progress_interval: Duration::ZERO };
}

/// The decision for one changed status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Write it now.
    Write,
    /// Hold it; look again after this long.
    Hold(Duration),
}

/// Whether a status is still on its way to a settled state: no step failed,
/// and the VM is not there yet, or runs while its volumes are still binding or
/// importing, its attachments are missing or KubeVirt does not call it ready.
fn is_converging(status: &WukongStatus) -> bool {
    let condition_false = |type_: &str| status.conditions.iter().any(|condition| condition.type_ == type_ && condition.status == "False");
    if condition_false("Valid") || condition_false("Synced") {
        return false;
    }
    let volumes_settling =
        status.volumes.iter().any(|volume| !volume.bound || volume.phase.as_deref().is_some_and(|phase| phase.ends_with("InProgress")));
    match status.phase {
        Some(Phase::Pending | Phase::Creating) | None => true,
        Some(Phase::Running) => volumes_settling || condition_false("NetworksConfigured") || condition_false("Ready"),
        Some(Phase::Stopped | Phase::Error) => false,
    }
}

/// Whether `new` differs from `previous` only in the import progress of its volumes.
fn only_progress_moved(previous: &WukongStatus, new: &WukongStatus) -> bool {
    let mut without = new.clone();
    for (volume, old) in without.volumes.iter_mut().zip(&previous.volumes) {
        volume.progress.clone_from(&old.progress);
    }
    without.volumes.len() == previous.volumes.len() && &without == previous
}

/// Decides when `new` (which differs from `previous`) is written. `age` is how
/// long ago the Wukong was created, `since_write` how long ago this operator
/// last wrote its status (`None`: not since it started).
pub fn pace(pacing: &Pacing, previous: Option<&WukongStatus>, new: &WukongStatus, age: Duration, since_write: Option<Duration>) -> Pace {
    if !is_converging(new) {
        return Pace::Write;
    }
    if previous.is_none_or(is_converging) && age < pacing.settle {
        return Pace::Hold(pacing.settle - age);
    }
    if let (Some(previous), Some(since_write)) = (previous, since_write)
        && only_progress_moved(previous, new)
        && since_write < pacing.progress_interval
    {
        return Pace::Hold(pacing.progress_interval - since_write);
    }
    Pace::Write
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Pace, Pacing, pace};
    use crate::api::{Condition, Phase, VolumeStatus, WukongStatus};

    const PACING: Pacing = Pacing { settle: Duration::from_secs(20), progress_interval: Duration::from_secs(5) };

    fn status(phase: Phase, progress: &str) -> WukongStatus {
        WukongStatus {
            phase: Some(phase),
            volumes: vec![VolumeStatus {
                name: "system".to_string(),
                bound: true,
                phase: Some("Succeeded".to_string()),
                progress: Some(progress.to_string()),
                ..VolumeStatus::default()
            }],
            ..WukongStatus::default()
        }
    }

    fn failing(mut status: WukongStatus, type_: &str) -> WukongStatus {
        status.conditions.push(Condition { type_: type_.to_string(), status: "False".to_string(), ..Condition::default() });
        status
    }

    fn seconds(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn a_new_wukong_holds_intermediate_states_until_it_settles_or_the_window_ends() {
        let creating = status(Phase::Creating, "10%");
        assert_eq!(pace(&PACING, None, &creating, seconds(3), None), Pace::Hold(seconds(17)));
        assert_eq!(pace(&PACING, None, &status(Phase::Pending, "N/A"), seconds(0), None), Pace::Hold(seconds(20)));
        assert_eq!(pace(&PACING, None, &creating, seconds(20), None), Pace::Write, "the window is over");
        assert_eq!(pace(&PACING, None, &status(Phase::Running, "100%"), seconds(3), None), Pace::Write, "settled");
        assert_eq!(pace(&PACING, None, &status(Phase::Stopped, "100%"), seconds(3), None), Pace::Write, "settled");
        assert_eq!(pace(&PACING, None, &status(Phase::Error, "10%"), seconds(3), None), Pace::Write, "an error is news");
    }

    #[test]
    fn a_running_vm_whose_volumes_or_readiness_still_settle_is_held_in_the_window() {
        let mut importing = status(Phase::Running, "40%");
        importing.volumes[0].phase = Some("ImportInProgress".to_string());
        assert_eq!(pace(&PACING, None, &importing, seconds(3), None), Pace::Hold(seconds(17)));
        let mut unbound = status(Phase::Running, "100%");
        unbound.volumes[0].bound = false;
        assert_eq!(pace(&PACING, None, &unbound, seconds(3), None), Pace::Hold(seconds(17)));
        let mut not_ready = status(Phase::Running, "100%");
        not_ready.conditions.push(Condition { type_: "Ready".to_string(), status: "False".to_string(), ..Condition::default() });
        assert_eq!(pace(&PACING, None, &not_ready, seconds(3), None), Pace::Hold(seconds(17)));
        assert_eq!(pace(&PACING, None, &importing, seconds(20), None), Pace::Write, "the window is over");
    }

    #[test]
    fn failures_and_refusals_are_written_at_once() {
        for type_ in ["Valid", "Synced"] {
            let refused = failing(status(Phase::Creating, "10%"), type_);
            assert_eq!(pace(&PACING, None, &refused, seconds(1), None), Pace::Write, "{type_}");
        }
    }

    #[test]
    fn a_running_vm_going_back_to_creating_is_written_at_once() {
        let running = status(Phase::Running, "100%");
        assert_eq!(pace(&PACING, Some(&running), &status(Phase::Creating, "100%"), seconds(3), Some(seconds(1))), Pace::Write);
    }

    #[test]
    fn import_progress_alone_is_written_at_most_every_interval() {
        let old = status(Phase::Creating, "10%");
        let new = status(Phase::Creating, "11%");
        assert_eq!(pace(&PACING, Some(&old), &new, seconds(60), Some(seconds(2))), Pace::Hold(seconds(3)));
        assert_eq!(pace(&PACING, Some(&old), &new, seconds(60), Some(seconds(5))), Pace::Write);
        assert_eq!(pace(&PACING, Some(&old), &new, seconds(60), None), Pace::Write, "no write since this operator started");
        let bound = WukongStatus { phase: Some(Phase::Creating), ..new.clone() };
        let mut changed = bound.clone();
        changed.node_name = Some("node-a".to_string());
        assert_eq!(pace(&PACING, Some(&old), &changed, seconds(60), Some(seconds(1))), Pace::Write, "more than the progress moved");
    }

    #[test]
    fn immediate_pacing_never_holds() {
        let creating = status(Phase::Creating, "10%");
        assert_eq!(pace(&Pacing::IMMEDIATE, None, &creating, seconds(0), None), Pace::Write);
        assert_eq!(pace(&Pacing::IMMEDIATE, Some(&status(Phase::Creating, "9%")), &creating, seconds(0), Some(seconds(0))), Pace::Write);
    }
}
