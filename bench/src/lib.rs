//! `wukong-bench`: how fast and how cheaply the operator converges a fleet.
//!
//! In: a cluster (KUBECONFIG) with a running operator whose `/metrics` it
//! reads, and [`BenchOptions`]. Out: a [`report::Report`]: convergence time
//! (the operator's last write before a quiet period) and latency percentiles,
//! the operator's writes per Wukong by what they touched, the stand-in's
//! writes, reads, idle writes, peak operator memory, delete time and
//! leftovers, and the floors (a plain client doing as many writes and
//! deletes) with the ratios to them, and, when the control plane runs on
//! this machine, its CPU during the converge and during the floor.
//!
//! A crate of its own so that the shipped `wukong` binary carries none of it
//! (nor the in-memory API server of `--in-memory`).

pub mod count;
pub mod cpu;
pub mod fake_kubevirt;
pub mod floor;
pub mod objects;
pub mod operator;
pub mod report;
pub mod run;
pub mod scrape;
pub mod settle;
pub mod shape;
pub mod writes;

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
    /// Length of the quiet period: convergence is the operator's last write
    /// (object or Event) before this many seconds with no operator write.
    #[arg(long, default_value_t = 60)]
    pub idle_seconds: u64,
    /// Accepted for older command lines and ignored: every run now times the
    /// floors (a plain parallel client doing the run's writes and deletes).
    #[arg(long, hide = true)]
    pub baseline: bool,
    /// Requests in flight when creating, deleting and in the floors.
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
