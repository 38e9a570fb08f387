//! The observed state of a Wukong, written by the controller.
//!
//! In: nothing (plain data). Out: the status types of the CRD. The controller's
//! status step computes a `WukongStatus` as a pure function of the generation,
//! the observed children and the error of the failing step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a Wukong.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WukongStatus {
    /// Summary of the VM's state: Pending (no VM yet), Creating, Running,
    /// Stopped or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Name of the KubeVirt VirtualMachine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_name: Option<String>,

    /// Node the VM runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,

    /// First address the guest reports, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,

    /// Conditions, one per type: Ready, NetworksConfigured, VolumesBound, Valid
    /// and RestartRequired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// State of each network, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkStatus>,

    /// State of each disk's volume, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeStatus>,

    /// The last restart request (`spec.restartRequestedAt`) and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartStatus>,

    /// The last live-migration request (`spec.migration`) and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
}

/// What became of one live-migration request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The token of `spec.migration.requestedAt` this status acknowledges.
    pub requested_at: String,
    /// The VirtualMachineInstanceMigration carrying it (none when Skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The migration's phase as KubeVirt reports it (Pending, Scheduling,
    /// Scheduled, PreparingTarget, TargetReady, Running, Succeeded, Failed),
    /// or Skipped when the VM could not be migrated.
    pub phase: String,
    /// Node the VM migrates from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node: Option<String>,
    /// Node the VM migrates to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
    /// Why the migration is in this phase (KubeVirt's own reason when it refuses or fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the migration finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl MigrationStatus {
    /// Whether the migration is over (Succeeded, Failed or Skipped).
    pub fn is_final(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed" | "Skipped")
    }
}

/// What became of one restart request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    /// The token of `spec.restartRequestedAt` this status acknowledges.
    pub requested_at: String,
    /// Pending (acknowledged, not yet sent), Running (sent; waiting for a new
    /// instance), Succeeded, Failed or Skipped (the VM was not running).
    pub phase: OperationPhase,
    /// Why the operation is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// UID of the instance that ran when the request was acknowledged; the
    /// restart succeeds once an instance with another UID runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_instance_uid: Option<String>,
    /// When the operation finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

// The phase of a day-2 operation the operator performs itself.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationPhase {
    /// Acknowledged, not yet sent to KubeVirt.
    Pending,
    /// Sent to KubeVirt; waiting for the result.
    Running,
    /// Done.
    Succeeded,
    /// KubeVirt could not do it.
    Failed,
    /// Not done: the VM was not in a state that allows it.
    Skipped,
}

impl OperationPhase {
    /// The spelling in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }

    /// Whether the operation is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

// Summary phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// The VirtualMachine does not exist yet.
    Pending,
    /// The VM is being scheduled or started.
    Creating,
    /// The VM runs.
    Running,
    /// The VM is stopped, as its run strategy asks.
    Stopped,
    /// The spec is invalid, a dependency is missing, or the VM failed.
    Error,
}

impl Phase {
    /// The spelling in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Creating => "Creating",
            Self::Running => "Running",
            Self::Stopped => "Stopped",
            Self::Error => "Error",
        }
    }
}

/// A condition in the Kubernetes convention.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, for example `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One-word CamelCase reason.
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// State of one network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Network name from the spec.
    pub name: String,
    /// NetworkAttachmentDefinition backing it (none for the pod network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nad_name: Option<String>,
    /// Whether the attachment exists (and, once the VM runs, the interface is up).
    pub ready: bool,
    /// MAC address of the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Addresses the guest reports on this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
}

/// State of one disk's volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    /// Disk name from the spec.
    pub name: String,
    /// The claim backing the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_name: Option<String>,
    /// Whether the claim is Bound (or waiting for its first consumer).
    pub bound: bool,
    /// Capacity of the claim, or the requested size before it is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// DataVolume phase for imported disks, claim phase otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Import progress reported by CDI, for example `45.2%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}
