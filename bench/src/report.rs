//! The benchmark's results: a readable table and JSON.
//!
//! In: the measurements. Out: [`Report`] (its JSON keys are its field names),
//! its table, percentiles and ratios.

use serde::Serialize;

use crate::writes::WriteSplit;

/// Latency percentiles in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Wukongs created.
    pub count: usize,
    /// First create to the operator's last write (object or Event) before a
    /// quiet period of `idle_seconds` with no operator write, or to every
    /// Wukong showing its converged status if that came later.
    pub converge_seconds: f64,
    /// First create to every Wukong showing its converged status.
    pub status_converge_seconds: f64,
    /// Per Wukong, creation to converged status.
    pub latency_seconds: Latency,
    /// Operator writes to objects to converge, per Wukong (Events left out):
    /// the sum of `operator_writes_per_wukong` but its `events`.
    pub writes_per_wukong: f64,
    /// Operator writes to converge, per Wukong, by what they touched.
    pub operator_writes_per_wukong: WriteSplit,
    /// API reads (get, list) by the operator to converge, per Wukong.
    pub reads_per_wukong: f64,
    /// Events the operator wrote to converge, per Wukong.
    pub events_per_wukong: f64,
    /// Writes of the bench's stand-in for KubeVirt, CDI and storage to
    /// converge, per Wukong (0 without `--fake-kubevirt`).
    pub stand_in_writes_per_wukong: f64,
    /// Operator writes (Events included) after every Wukong showed its
    /// converged status: why `converge_seconds` exceeds `status_converge_seconds`.
    pub late_writes: f64,
    /// Operator writes (Events included) in the last quiet period watched: 0
    /// when the operator went quiet.
    pub idle_writes: f64,
    /// Length of that quiet period.
    pub idle_seconds: f64,
    /// Whether the operator went quiet after every Wukong converged.
    pub quiet: bool,
    /// Highest resident memory of the operator seen during the run.
    pub peak_rss_bytes: f64,
    /// CPU time the operator spent from the first create to its last write.
    pub operator_cpu_seconds: f64,
    /// Delete of every Wukong to nothing left (claims gone too, after
    /// kube-controller-manager removed their protection finalizer).
    pub delete_seconds: f64,
    /// Delete of every Wukong to the last Wukong gone: the operator's part
    /// (its cleanup deleted every child and removed its finalizer).
    pub delete_wukongs_seconds: f64,
    /// Children still present when the delete wait ended.
    pub leftover_children: usize,
    /// Wukongs that did not converge in time.
    pub unconverged: usize,
    /// Children missing when the operator went quiet (must be 0).
    pub missing_children: usize,
    /// Writes of the run to converge, operator's and stand-in's: the objects the floor creates.
    pub floor_writes: usize,
    /// Payload bytes of each object the floor creates: one of the run's VirtualMachines as JSON.
    pub floor_object_bytes: usize,
    /// Seconds a plain parallel client needs to create `floor_writes` ConfigMaps of that size.
    pub floor_seconds: f64,
    /// `converge_seconds / floor_seconds`.
    pub ratio: Option<f64>,
    /// Objects the run made and its delete removed: Wukongs, objects of the child kinds, VirtualMachineInstances.
    pub delete_objects: usize,
    /// How many of `delete_objects` are PersistentVolumeClaims.
    pub delete_claims: usize,
    /// Seconds a plain parallel client needs to delete `delete_objects`
    /// objects, `delete_claims` of them claims, until they are gone.
    pub delete_floor_seconds: f64,
    /// `delete_seconds / delete_floor_seconds`.
    pub delete_ratio: Option<f64>,
    /// CPU-seconds kube-apiserver and etcd used from the first create to the converge (when they run on this
    /// machine; `None` otherwise).
    pub control_plane_cpu_seconds: Option<f64>,
    /// Cores this machine left idle during the converge, on average (near 0: saturated).
    pub idle_cores: Option<f64>,
    /// CPU-seconds kube-apiserver and etcd used for the floor's creates.
    pub floor_control_plane_cpu_seconds: Option<f64>,
    /// `control_plane_cpu_seconds / floor_control_plane_cpu_seconds`: how much more work the run's requests were
    /// to the control plane than the floor's creates. On a saturated machine `ratio` cannot fall below it,
    /// however the operator paces its writes; `ratio` near it means the run went at the control plane's pace.
    pub work_ratio: Option<f64>,
}

/// `seconds / floor`, when the floor took any time.
pub fn ratio(seconds: f64, floor: f64) -> Option<f64> {
    (floor > 0.0).then(|| seconds / floor)
}

/// The `quantile` (0..=1) of `values` by nearest rank; 0 when empty.
pub fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    /// The results as an aligned table.
    pub fn table(&self) -> String {
        let split = &self.operator_writes_per_wukong;
        let ratio = |ratio: Option<f64>| ratio.map_or_else(|| "-".to_string(), |ratio| format!("{ratio:.2}"));
        let rows = [
            ("wukongs", self.count.to_string()),
            ("converge (last operator write)", format!("{:.2} s", self.converge_seconds)),
            ("converge (every status)", format!("{:.2} s", self.status_converge_seconds)),
            (
                "latency p50 / p95 / p99",
                format!("{:.3} / {:.3} / {:.3} s", self.latency_seconds.p50, self.latency_seconds.p95, self.latency_seconds.p99),
            ),
            ("writes per wukong", format!("{:.2}", self.writes_per_wukong)),
            ("  children / finalizer / status", format!("{:.2} / {:.2} / {:.2}", split.children, split.finalizer, split.status)),
            ("  events / addresses / other", format!("{:.2} / {:.2} / {:.2}", split.events, split.addresses, split.other)),
            ("stand-in writes per wukong", format!("{:.2}", self.stand_in_writes_per_wukong)),
            ("reads per wukong", format!("{:.2}", self.reads_per_wukong)),
            ("late writes", self.late_writes.to_string()),
            (
                "idle writes",
                format!("{} in {:.0} s{}", self.idle_writes, self.idle_seconds, if self.quiet { "" } else { " (never quiet)" }),
            ),
            ("peak operator RSS", format!("{:.1} MiB", self.peak_rss_bytes / 1_048_576.0)),
            ("operator CPU to converge", format!("{:.2} s", self.operator_cpu_seconds)),
            (
                "floor",
                format!(
                    "{:.2} s for {} writes of {} B (ratio {})",
                    self.floor_seconds,
                    self.floor_writes,
                    self.floor_object_bytes,
                    ratio(self.ratio)
                ),
            ),
            ("delete", format!("{:.2} s (last Wukong gone after {:.2} s)", self.delete_seconds, self.delete_wukongs_seconds)),
            (
                "delete floor",
                format!(
                    "{:.2} s for {} objects, {} of them claims (ratio {})",
                    self.delete_floor_seconds,
                    self.delete_objects,
                    self.delete_claims,
                    ratio(self.delete_ratio)
                ),
            ),
            (
                "control plane CPU",
                match (self.control_plane_cpu_seconds, self.floor_control_plane_cpu_seconds) {
                    (Some(run), Some(floor)) => format!(
                        "{run:.1} s to converge ({} cores idle), {floor:.1} s for the floor (work ratio {})",
                        self.idle_cores.map_or_else(|| "-".to_string(), |idle| format!("{idle:.2}")),
                        ratio(self.work_ratio)
                    ),
                    _ => "- (not on this machine)".to_string(),
                },
            ),
            ("leftover children", self.leftover_children.to_string()),
            ("unconverged", self.unconverged.to_string()),
            ("missing children", self.missing_children.to_string()),
        ];
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        rows.iter().map(|(name, value)| format!("{name:<width$}  {value}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.95), 95.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
