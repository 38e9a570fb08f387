//! `wukong-bench`: how fast and how cheaply the operator converges a fleet.
//!
//! In: a cluster (KUBECONFIG) with a running operator whose `/metrics` it
//! reads, and [`BenchOptions`]. Out: a [`report::Report`]: convergence time and
//! latency percentiles, API writes and reads per Wukong, idle writes, peak
//! operator memory, delete time and leftovers.
//!
//! A crate of its own so that the shipped `wukong` binary carries none of it
//! (nor the in-memory API server of `--in-memory`).

pub mod fake_kubevirt;
pub mod operator;
pub mod report;
pub mod run;
pub mod scrape;
pub mod shape;

use std::path::PathBuf;

/// Options of `wukong-bench`.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "wukong-bench", version, about = "Measure how fast and how cheaply Wukong converges a fleet")]
pub struct BenchOptions {
    /// How many Wukongs to create.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Create at this many per second; all at once when unset.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Shape of the Wukongs.
    #[arg(long, value_enum, default_value_t = shape::Shape::Default)]
    pub shape: shape::Shape,
    /// Start the operator with this shell command. It runs in a process group
    /// of its own, stopped at the end with SIGTERM to the whole group (SIGKILL
    /// after a grace period), so a shell wrapping the operator is fine.
    #[arg(long)]
    pub operator_cmd: Option<String>,
    /// The operator's metrics endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/metrics")]
    pub operator_metrics: String,
    /// Play KubeVirt's and CDI's part (for a cluster without them).
    #[arg(long)]
    pub fake_kubevirt: bool,
    /// Seconds to wait for convergence and for deletion.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Length of the quiet period after convergence in which writes are counted.
    #[arg(long, default_value_t = 60)]
    pub idle_seconds: u64,
    /// Also time a plain parallel client writing the same number of objects.
    #[arg(long)]
    pub baseline: bool,
    /// Requests in flight when creating, deleting and in the baseline.
    #[arg(long, default_value_t = 32)]
    pub parallelism: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run against an in-memory API server (fake-apiserver) started in this
    /// process instead of KUBECONFIG's cluster; the operator is given its
    /// kubeconfig. Measures the operator's own cost without a cluster. Without
    /// `--operator-cmd` the operator is the `wukong` binary next to this one
    /// (cargo builds every binary of the workspace into one directory).
    #[arg(long)]
    pub in_memory: bool,
}
