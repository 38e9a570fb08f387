//! The benchmark's results: a readable table and JSON.
//!
//! In: the measurements. Out: [`Report`] with the keys the issue names, its
//! table, and percentiles.

use serde::Serialize;

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
    /// First create to last converged status.
    pub converge_seconds: f64,
    /// Per Wukong, creation to converged status.
    pub latency_seconds: Latency,
    /// API writes by the operator to converge, per Wukong (Events left out).
    pub writes_per_wukong: f64,
    /// API reads (get, list) by the operator to converge, per Wukong.
    pub reads_per_wukong: f64,
    /// Events the operator wrote to converge, per Wukong.
    pub events_per_wukong: f64,
    /// Operator writes during the quiet period after convergence.
    pub idle_writes: f64,
    /// Length of that quiet period.
    pub idle_seconds: f64,
    /// Highest resident memory of the operator seen during the run.
    pub peak_rss_bytes: f64,
    /// CPU time the operator spent from the first create to convergence.
    pub operator_cpu_seconds: f64,
    /// Delete of every Wukong to nothing left.
    pub delete_seconds: f64,
    /// Children still present when the delete wait ended.
    pub leftover_children: usize,
    /// Wukongs that did not converge in time.
    pub unconverged: usize,
    /// Children missing when every Wukong had converged (must be 0).
    pub missing_children: usize,
    /// Time a plain parallel client needs for the same number of object writes, when measured.
    pub baseline_seconds: Option<f64>,
    /// `converge_seconds / baseline_seconds`, when measured.
    pub baseline_ratio: Option<f64>,
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
        let mut rows = vec![
            ("wukongs", self.count.to_string()),
            ("converge", format!("{:.2} s", self.converge_seconds)),
            (
                "latency p50 / p95 / p99",
                format!("{:.3} / {:.3} / {:.3} s", self.latency_seconds.p50, self.latency_seconds.p95, self.latency_seconds.p99),
            ),
            ("writes per wukong", format!("{:.2}", self.writes_per_wukong)),
            ("reads per wukong", format!("{:.2}", self.reads_per_wukong)),
            ("events per wukong", format!("{:.2}", self.events_per_wukong)),
            ("idle writes", format!("{} in {:.0} s", self.idle_writes, self.idle_seconds)),
            ("peak operator RSS", format!("{:.1} MiB", self.peak_rss_bytes / 1_048_576.0)),
            ("operator CPU to converge", format!("{:.2} s", self.operator_cpu_seconds)),
            ("delete", format!("{:.2} s", self.delete_seconds)),
            ("leftover children", self.leftover_children.to_string()),
            ("unconverged", self.unconverged.to_string()),
            ("missing children", self.missing_children.to_string()),
        ];
        if let (Some(baseline), Some(ratio)) = (self.baseline_seconds, self.baseline_ratio) {
            rows.push(("plain-client baseline", format!("{baseline:.2} s (ratio {ratio:.2})")));
        }
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
