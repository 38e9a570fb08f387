//! Validation of a Wukong beyond what the CRD schema can say.
//!
//! In: a [`Wukong`] as read from a file or the API server. Out: a
//! [`ValidWukong`] the builders can trust, or every [`Problem`] at once, each
//! naming its field path. It repeats the CRD's CEL rules too, because API
//! servers older than 1.25 ignore them and `wukong validate` runs offline.
//! Pure: no client, no clock, no randomness.

mod cloudinit;
mod disks;
mod names;
mod networks;
pub mod quantity;
mod scheduling;

use std::fmt;

use crate::api::{RunStrategy, Wukong, WukongSpec};

pub use names::{is_dns_label, is_dns_subdomain};
pub use networks::{ParsedAddress, ParsedNetwork};

/// The namespace a Wukong without one is rendered into (as `kubectl` does).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One problem with a Wukong: the field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Field path, for example `spec.networks[1].ipConfig.address`.
    pub field: String,
    /// What is wrong, including the offending value in quotes.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one Wukong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        write!(formatter, "{}", lines.join("; "))
    }
}

/// Collects problems while walking a spec.
#[derive(Default)]
pub(crate) struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { field: field.into(), message: message.into() });
    }
}

/// A Wukong that passed validation, with everything the builders need parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidWukong {
    /// Name of the Wukong (a DNS label).
    pub name: String,
    /// Namespace of the Wukong.
    pub namespace: String,
    /// UID, known only for objects read from the API server.
    pub uid: Option<String>,
    /// The spec as written.
    pub spec: WukongSpec,
    /// The run strategy the VirtualMachine gets.
    pub run_strategy: RunStrategy,
    /// Guest memory in bytes.
    pub memory_bytes: u128,
    /// Each network with its MAC and parsed addresses, in spec order.
    pub networks: Vec<ParsedNetwork>,
    /// Requested size of each disk in bytes (`None` for existing claims), in spec order.
    pub disk_sizes: Vec<Option<u128>>,
    /// The VirtualMachineInstanceMigration of the current migration request,
    /// once the status acknowledged it and while it is not finished.
    pub migration_in_progress: Option<String>,
}

/// Validates a Wukong and returns it with its parsed values, or every problem.
pub fn validate(wukong: &Wukong) -> Result<ValidWukong, Problems> {
    let mut collector = Collector::default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        collector.push("metadata.name", "is required");
    } else if !is_dns_label(&name) {
        collector.push(
            "metadata.name",
            format!("\"{name}\" is not a DNS label (lowercase letters, digits and '-', at most 63 characters); the VM and its hostname are named after it"),
        );
    }
    let namespace = wukong.metadata.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if !is_dns_label(&namespace) {
        collector.push("metadata.namespace", format!("\"{namespace}\" is not a DNS label"));
    }
    let spec = &wukong.spec;
    if spec.cpu < 1 || spec.cpu > 1024 {
        collector.push("spec.cpu", format!("\"{}\" must be between 1 and 1024 cores", spec.cpu));
    }
    let memory_bytes = quantity::check_positive(&mut collector, "spec.memory", &spec.memory).unwrap_or_default();
    let networks = networks::check(&mut collector, &namespace, &name, &spec.networks);
    let disk_sizes = disks::check(&mut collector, &spec.disks);
    if let Some(cloud_init) = &spec.cloud_init {
        cloudinit::check(&mut collector, cloud_init);
    }
    if let Some(high_availability) = &spec.high_availability {
        scheduling::check(&mut collector, high_availability);
    }
    if let Some(migration) = &spec.migration {
        scheduling::check_node_selector(&mut collector, "spec.migration.nodeSelector", &migration.node_selector);
    }
    if !collector.problems.is_empty() {
        return Err(Problems(collector.problems));
    }
    Ok(ValidWukong {
        name,
        namespace,
        uid: wukong.metadata.uid.clone(),
        run_strategy: run_strategy(spec),
        spec: spec.clone(),
        memory_bytes,
        networks,
        disk_sizes,
        migration_in_progress: migration_in_progress(wukong),
    })
}

/// The migration of the current `spec.migration` token that the status
/// acknowledged with a VirtualMachineInstanceMigration and that is not finished.
fn migration_in_progress(wukong: &Wukong) -> Option<String> {
    let token = &wukong.spec.migration.as_ref()?.requested_at;
    let acknowledged = wukong.status.as_ref()?.migration.as_ref()?;
    (acknowledged.requested_at == *token && !acknowledged.is_final()).then(|| acknowledged.name.clone()).flatten()
}

/// The run strategy of the VirtualMachine: the explicit `runStrategy`; else
/// `startStrategy.autoStart: false` -> Halted; else `restartPolicy` mapped
/// (Always -> Always, OnFailure -> RerunOnFailure, Never -> Once); else Always.
pub fn run_strategy(spec: &WukongSpec) -> RunStrategy {
    use crate::api::RestartPolicy;
    if let Some(strategy) = spec.run_strategy {
        return strategy;
    }
    if spec.start_strategy.as_ref().is_some_and(|start| !start.auto_start) {
        return RunStrategy::Halted;
    }
    match spec.high_availability.as_ref().and_then(|ha| ha.restart_policy) {
        Some(RestartPolicy::OnFailure) => RunStrategy::RerunOnFailure,
        Some(RestartPolicy::Never) => RunStrategy::Once,
        Some(RestartPolicy::Always) | None => RunStrategy::Always,
    }
}
