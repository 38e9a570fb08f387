//! The control plane's CPU, when it runs on this machine (the loopback
//! control plane of `../shared/realk8s`).
//!
//! In: `/proc`. Out: [`ControlPlaneCpu`] samples — the CPU-seconds every
//! process named `kube-apiserver` or `etcd` has used so far, and the machine's
//! idle CPU-seconds — and a [`Recorder`] that samples every half second so a
//! window that ends in the past (the converge ends at the operator's last
//! write, known only after the quiet period) can be read afterwards. With no
//! such process (a remote cluster) a sample is `None`, and so is every figure
//! made of it; an in-memory run does not sample.
//!
//! Why: when the API server is the bottleneck, converge time is its work
//! divided by the cores it gets. Its CPU during the converge against its CPU
//! during the floor says how much more work the run's requests are than the
//! floor's creates, whatever the operator's pacing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The processes whose CPU counts as the control plane's.
const CONTROL_PLANE: &[&str] = &["kube-apiserver", "etcd"];

/// Clock ticks per second in `/proc` (USER_HZ, 100 on every Linux the
/// control plane runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU-seconds used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ControlPlaneCpu {
    /// By every kube-apiserver and etcd process.
    pub control_plane: f64,
    /// Idle, summed over the machine's cores.
    pub idle: f64,
}

impl ControlPlaneCpu {
    /// The control plane's CPU now, or `None` when none of its processes runs here.
    pub fn sample() -> Option<ControlPlaneCpu> {
        let mut control_plane = None;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            if let Some((name, seconds)) = process_cpu(&stat)
                && CONTROL_PLANE.contains(&name)
            {
                *control_plane.get_or_insert(0.0) += seconds;
            }
        }
        let idle = machine_idle(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(ControlPlaneCpu { control_plane: control_plane?, idle })
    }

    /// What was used from `earlier` to this sample.
    pub fn since(&self, earlier: &ControlPlaneCpu) -> ControlPlaneCpu {
        ControlPlaneCpu { control_plane: self.control_plane - earlier.control_plane, idle: self.idle - earlier.idle }
    }
}

/// A process's name and CPU-seconds (user + system) from its `/proc/<pid>/stat` line.
fn process_cpu(stat: &str) -> Option<(&str, f64)> {
    // The name is in parentheses and may itself hold spaces or parentheses: it ends at the last ')'.
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime.
    let user: f64 = fields.nth(11)?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((name, (user + system) / TICKS_PER_SECOND))
}

/// The machine's idle CPU-seconds (idle + iowait) from `/proc/stat`.
fn machine_idle(stat: &str) -> Option<f64> {
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user, nice, system, idle, iowait.
    let idle: f64 = fields.nth(3)?.parse().ok()?;
    let iowait: f64 = fields.next()?.parse().ok()?;
    Some((idle + iowait) / TICKS_PER_SECOND)
}

/// Samples taken every half second since [`Recorder::start`], until dropped.
pub struct Recorder {
    samples: Arc<Mutex<Vec<(Instant, ControlPlaneCpu)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts sampling (nothing is kept when the control plane does not run here).
    pub fn start() -> Recorder {
        let samples: Arc<Mutex<Vec<(Instant, ControlPlaneCpu)>>> = Arc::default();
        let kept = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let sample = tokio::task::spawn_blocking(ControlPlaneCpu::sample).await.ok().flatten();
                if let Some(sample) = sample {
                    kept.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), sample));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Recorder { samples, task }
    }

    /// What was used between the samples nearest `from` and `to`, when both were taken.
    pub fn between(&self, from: Instant, to: Instant) -> Option<ControlPlaneCpu> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        between(&samples, from, to)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sample nearest each instant, and what was used between them.
fn between(samples: &[(Instant, ControlPlaneCpu)], from: Instant, to: Instant) -> Option<ControlPlaneCpu> {
    let nearest = |at: Instant| {
        let distance = |taken: &Instant| if *taken > at { *taken - at } else { at - *taken };
        samples.iter().min_by_key(|(taken, _)| distance(taken)).map(|(_, sample)| *sample)
    };
    let (first, last) = (nearest(from)?, nearest(to)?);
    Some(last.since(&first))
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "test fixtures")]
mod tests {
    use std::time::{Duration, Instant};

    use super::{ControlPlaneCpu, between, machine_idle, process_cpu};

    #[test]
    fn a_process_line_gives_its_name_and_user_plus_system_seconds() {
        let line = "4242 (kube-apiserver) S 1 4242 4242 0 -1 4194560 90000 0 12 0 1234 567 0 0 20 0 14 0 100 0 0";
        assert_eq!(process_cpu(line), Some(("kube-apiserver", 18.01)));
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 50 50 0 0 20 0 1 0 1 0 0";
        assert_eq!(process_cpu(odd), Some(("a (b) c", 1.0)), "a name with spaces and parentheses");
        assert_eq!(process_cpu("7 (short) R 1"), None);
    }

    #[test]
    fn the_machine_line_gives_idle_plus_iowait_seconds() {
        let stat = "cpu  100 5 200 30000 700 0 10 0 0 0\ncpu0 50 2 100 15000 350 0 5 0 0 0\n";
        assert_eq!(machine_idle(stat), Some(307.0));
        assert_eq!(machine_idle("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_window_is_read_from_the_samples_nearest_its_ends() {
        let start = Instant::now();
        let at =
            |seconds: u64, control_plane: f64, idle: f64| (start + Duration::from_secs(seconds), ControlPlaneCpu { control_plane, idle });
        let samples = [at(0, 10.0, 100.0), at(1, 11.5, 100.1), at(2, 13.0, 100.2), at(3, 13.1, 102.0)];
        let window = between(&samples, start + Duration::from_millis(900), start + Duration::from_millis(2100)).expect("sampled");
        assert!((window.control_plane - 1.5).abs() < 1e-9 && (window.idle - 0.1).abs() < 1e-9, "{window:?}");
        assert_eq!(between(&[], start, start), None, "nothing sampled: no figure");
    }
}
