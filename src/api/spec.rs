//! The `Wukong` custom resource: the spec a platform team writes.
//!
//! In: nothing (plain data). Out: the serde/schemars types the CRD is generated
//! from. Every field carries a `///` comment, which becomes its description in the
//! CRD and so the text of `kubectl explain`.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::WukongStatus;

/// A whole virtual machine in one object: compute, networks, disks, cloud-init and
/// placement. Wukong turns it into the KubeVirt VirtualMachine, CDI DataVolumes,
/// PersistentVolumeClaims, Multus NetworkAttachmentDefinitions and the cloud-init
/// Secret, keeps them converged and reports their state in `status`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "vm.novasphere.dev",
    version = "v1alpha1",
    kind = "Wukong",
    plural = "wukongs",
    shortname = "wk",
    category = "all",
    namespaced,
    status = "WukongStatus",
    doc = "A whole KubeVirt virtual machine in one object: cores, memory, networks, disks, cloud-init and placement.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"CPU","type":"integer","jsonPath":".spec.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".spec.memory"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.nodeName"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".status.ipAddress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.disks) || self.disks.filter(d, has(d.boot) && d.boot).size() <= 1", "message": "at most one disk may be the boot disk"},
    {"rule": "!has(self.networks) || self.networks.filter(n, n.type == 'pod').size() <= 1", "message": "at most one network may be the pod network"}
]))]
pub struct WukongSpec {
    /// Number of virtual CPU cores given to the guest.
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: u32,

    /// Guest memory as a Kubernetes quantity, for example `8Gi` or `512Mi`.
    #[schemars(length(max = 32), regex(pattern = super::QUANTITY_PATTERN))]
    pub memory: String,

    /// KubeVirt run strategy of the VirtualMachine. When unset it is derived from
    /// `startStrategy.autoStart` (false -> Halted), then from
    /// `highAvailability.restartPolicy`, and defaults to Always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_strategy: Option<RunStrategy>,

    /// Whether the VM starts when it is created; used only when `runStrategy` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_strategy: Option<StartStrategy>,

    /// Network interfaces of the VM, in guest order. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub networks: Vec<Network>,

    /// Disks of the VM. Names are unique; at most one disk is the boot disk. A VM
    /// with no disks, or only data disks, is valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub disks: Vec<Disk>,

    /// Cloud-init configuration, delivered to the guest as a NoCloud disk backed
    /// by a Secret (never inline in the VirtualMachine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,

    /// Placement and availability: node selection, tolerations, anti-affinity and
    /// restart behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<HighAvailability>,

    /// What KubeVirt does with the running VM when its node is drained: `None`
    /// (stop it; the run strategy may start it elsewhere), `LiveMigrate`
    /// (migrate it; the drain waits until it can), `LiveMigrateIfPossible`
    /// (migrate it when it can be migrated, else as `None`) or `External`
    /// (block the eviction and let an external controller act). Unset: the
    /// cluster's default (KubeVirt's `evictionStrategy` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_strategy: Option<EvictionStrategy>,

    /// A restart request: each new value (any token, e.g. the time of the
    /// request) restarts the running VM once; `status.restart` acknowledges
    /// it. Re-applying the same value, or removing it, does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub restart_requested_at: Option<String>,

    /// A live-migration request: each new `requestedAt` migrates the running
    /// VM once; `status.migration` acknowledges it. Setting or changing it needs
    /// the right to create VirtualMachineInstanceMigrations in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
}

/// A live-migration request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    /// The request's token (any value, e.g. the time of the request): each new
    /// value migrates the VM once. Re-applying the same value does nothing.
    #[schemars(length(min = 1, max = 128))]
    pub requested_at: String,

    /// Labels the target node must have, in addition to the VM's own node
    /// selector (KubeVirt's `addedNodeSelector`); unset: any node the VM may run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

// KubeVirt's eviction strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EvictionStrategy {
    /// The VM is stopped when its node is drained.
    None,
    /// The VM is live-migrated when its node is drained.
    LiveMigrate,
    /// The VM is live-migrated when it can be, otherwise stopped.
    LiveMigrateIfPossible,
    /// The eviction is blocked and signalled to an external controller.
    External,
}

impl EvictionStrategy {
    /// The name KubeVirt uses for this strategy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::LiveMigrate => "LiveMigrate",
            Self::LiveMigrateIfPossible => "LiveMigrateIfPossible",
            Self::External => "External",
        }
    }
}

// A KubeVirt run strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunStrategy {
    /// The VM always runs; it is restarted whenever it stops.
    Always,
    /// The VM is restarted only when it fails; a clean guest shutdown stops it.
    RerunOnFailure,
    /// The VM is started and stopped only by explicit start/stop requests.
    Manual,
    /// The VM is stopped.
    Halted,
    /// The VM runs once and is not restarted.
    Once,
}

impl RunStrategy {
    /// The name KubeVirt uses for this strategy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::RerunOnFailure => "RerunOnFailure",
            Self::Manual => "Manual",
            Self::Halted => "Halted",
            Self::Once => "Once",
        }
    }
}

/// When the VM starts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartStrategy {
    /// true: start the VM as soon as it is created (run strategy Always);
    /// false: create it stopped (run strategy Halted).
    pub auto_start: bool,
}

/// One network interface of the VM.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.type != 'vlan' || has(self.vlanId)", "message": "a vlan network needs vlanId"},
    {"rule": "self.type != 'pod' || (!has(self.bridge) && !has(self.vlanId) && !has(self.resourceName))", "message": "a pod network takes no bridge, vlanId or resourceName"},
    {"rule": "self.type != 'sriov' || has(self.resourceName)", "message": "an sriov network needs resourceName"},
    {"rule": "self.type == 'sriov' || !has(self.resourceName)", "message": "resourceName is only for sriov networks"},
    {"rule": "self.type != 'sriov' || !has(self.bridge)", "message": "an sriov network takes no bridge"},
    {"rule": "self.type != 'pod' || !has(self.ipConfig) || self.ipConfig.mode == 'dhcp'", "message": "the pod network gets its address by DHCP"}
]))]
pub struct Network {
    /// Name of the interface, a DNS label unique within the Wukong. The
    /// NetworkAttachmentDefinition is named `<wukong>-<name>`.
    #[schemars(length(min = 1, max = 63), regex(pattern = super::DNS_LABEL_PATTERN))]
    pub name: String,

    /// Kind of network: `bridge` (a host Linux bridge), `vlan` (a host bridge with
    /// a VLAN tag), `sriov` (an SR-IOV virtual function) or `pod` (the cluster
    /// network, through KubeVirt's masquerade binding).
    #[serde(rename = "type")]
    pub network_type: NetworkType,

    /// Host Linux bridge for `bridge` and `vlan` networks. Defaults to `br0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"))]
    pub bridge: Option<String>,

    /// 802.1Q VLAN tag (1..4094). Required for `vlan`, optional for `bridge` and
    /// `sriov`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan_id: Option<u16>,

    /// SR-IOV device plugin resource that provides the virtual function, for
    /// example `intel.com/sriov_netdevice`. Required for `sriov`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.-]+/[A-Za-z0-9_.-]+$"))]
    pub resource_name: Option<String>,

    /// MAC address of the interface. When unset, a stable locally administered
    /// address is derived from the namespace, Wukong name and network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"))]
    pub mac_address: Option<String>,

    /// How the guest configures its address on this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_config: Option<IpConfig>,
}

// Kind of network.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkType {
    /// A host Linux bridge, optionally with a VLAN tag.
    #[default]
    Bridge,
    /// A host Linux bridge with a mandatory VLAN tag.
    Vlan,
    /// An SR-IOV virtual function.
    Sriov,
    /// The cluster's pod network through KubeVirt masquerade.
    Pod,
}

impl NetworkType {
    /// The spelling used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Vlan => "vlan",
            Self::Sriov => "sriov",
            Self::Pod => "pod",
        }
    }
}

/// Guest address configuration of one interface, written into cloud-init
/// network data (netplan v2, matched by MAC).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'static' || has(self.address)", "message": "a static ipConfig needs address"},
    {"rule": "self.mode != 'dhcp' || (!has(self.address) && !has(self.gateway))", "message": "a dhcp ipConfig takes no address or gateway"},
    {"rule": "self.mode != 'dhcp' || !has(self.pool)", "message": "a dhcp ipConfig takes no pool"},
    {"rule": "self.mode != 'pool' || has(self.pool)", "message": "a pool ipConfig needs pool"},
    {"rule": "self.mode != 'pool' || (!has(self.address) && !has(self.gateway))", "message": "a pool ipConfig takes its address and gateway from the pool"}
]))]
pub struct IpConfig {
    /// `static` (address, gateway and DNS from this object), `dhcp`, or
    /// `pool` (an address leased from the IPPool `pool`, with its prefix,
    /// gateway and DNS).
    pub mode: IpMode,

    /// Address with prefix length in CIDR notation, for example `192.168.100.10/24`
    /// or `2001:db8::10/64`. Required for `static`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub address: Option<String>,

    /// Default gateway reached through this interface; must lie inside `address`'s subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub gateway: Option<String>,

    /// DNS servers for this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 64)))]
    pub dns: Vec<String>,

    /// Name of an IPPool. Required for `pool` (the address is leased from it
    /// and stays the network's for the Wukong's life); optional for `static`
    /// (the address is reserved in the pool, so it is never handed to another
    /// network, and must lie inside the pool's CIDR and not be its gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = super::DNS_SUBDOMAIN_PATTERN))]
    pub pool: Option<String>,
}

// Address mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    /// Fixed address, gateway and DNS.
    Static,
    /// Address from a DHCP server on the network.
    #[default]
    Dhcp,
    /// Address leased from an IPPool.
    Pool,
}

/// One disk of the VM. Its source is exactly one of: `existingPVC`; `image` with
/// `size` (imported by CDI into a new volume); `size` alone (a new blank volume).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.existingPVC) ? !has(self.image) && !has(self.size) && !has(self.storageClassName) : has(self.size)", "message": "a disk takes exactly one source: existingPVC, or size (with image to import it, without for a blank volume)"},
    {"rule": "!has(self.existingPVC) || !has(self.deletionPolicy) || self.deletionPolicy == 'Retain'", "message": "an existingPVC is never deleted; deletionPolicy Delete does not apply to it"}
]))]
pub struct Disk {
    /// Name of the disk, a DNS label unique within the Wukong. The volume the
    /// operator creates for it is named `<wukong>-<name>`.
    #[schemars(length(min = 1, max = 63), regex(pattern = super::DNS_LABEL_PATTERN))]
    pub name: String,

    /// Size of a new volume as a Kubernetes quantity (for example `80Gi`). Required
    /// unless `existingPVC` is set. Growing it resizes the claim; shrinking is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = super::QUANTITY_PATTERN))]
    pub size: Option<String>,

    /// StorageClass of a new volume; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// Access mode of a new volume. Blank volumes default to ReadWriteOnce;
    /// imported volumes default to what CDI's StorageProfile says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,

    /// Volume mode of a new volume (Filesystem or Block); the storage default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<VolumeMode>,

    /// Boot from this disk first (boot order 1). At most one disk boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<bool>,

    /// Image to import into a new volume with CDI: `docker://registry/repo:tag`
    /// for a container disk, or an `http://` / `https://` URL of a qcow2, raw or
    /// iso file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub image: Option<String>,

    /// An existing PersistentVolumeClaim to attach. The operator never owns,
    /// labels, resizes or deletes it.
    #[serde(rename = "existingPVC", default, skip_serializing_if = "Option::is_none")]
    pub existing_pvc: Option<ExistingPvc>,

    /// Disk bus presented to the guest. Defaults to virtio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<DiskBus>,

    /// What happens to a volume the operator created when its disk or the Wukong
    /// is removed: `Delete` (the default) or `Retain` (left in place, no longer owned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// A reference to a PersistentVolumeClaim that already exists.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExistingPvc {
    /// Name of the claim.
    #[schemars(length(min = 1, max = 253), regex(pattern = super::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,

    /// Namespace of the claim; the Wukong's own when unset. A claim in another
    /// namespace is used only when that namespace granted it (annotation
    /// `vm.novasphere.dev/clone-to-namespaces` on the claim) and is then cloned by
    /// CDI into the Wukong's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = super::DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,

    /// Attach the claim read-only. A claim another VM uses read-write can only be
    /// attached read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

// Access mode of a new volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    /// Mounted read-write by one node.
    ReadWriteOnce,
    /// Mounted read-write by many nodes (needed for live migration).
    ReadWriteMany,
}

impl AccessMode {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWriteOnce => "ReadWriteOnce",
            Self::ReadWriteMany => "ReadWriteMany",
        }
    }
}

// Volume mode of a new volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VolumeMode {
    /// A filesystem holding the disk image.
    Filesystem,
    /// A raw block device.
    Block,
}

impl VolumeMode {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filesystem => "Filesystem",
            Self::Block => "Block",
        }
    }
}

// Disk bus.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskBus {
    /// Paravirtualised virtio-blk (fastest; needs virtio drivers in the guest).
    Virtio,
    /// Emulated SATA (for guests without virtio drivers).
    Sata,
    /// virtio-scsi.
    Scsi,
}

impl DiskBus {
    /// The KubeVirt spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtio => "virtio",
            Self::Sata => "sata",
            Self::Scsi => "scsi",
        }
    }
}

// What happens to an operator-created volume when it is no longer wanted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the volume with its disk or Wukong.
    Delete,
    /// Keep the volume: remove the owner reference and leave it in place.
    Retain,
}

/// Cloud-init for the guest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudInit {
    /// Users to create in the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub users: Vec<User>,

    /// The user's own user data. A `#cloud-config` document is merged with
    /// `users` (its own `users` come first); any other format (a script, MIME
    /// multipart) is used as is and then `users` must be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub user_data: Option<String>,
}

/// One guest user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    /// Login name.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z_][a-z0-9_-]*$"))]
    pub name: String,

    /// Public keys allowed to log in as this user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 16384)))]
    pub ssh_authorized_keys: Vec<String>,

    /// Give the user password-less sudo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,

    /// Password of the user, read from a key of a Secret in the Wukong's
    /// namespace. A value starting with `$` is used as a crypt hash, any other
    /// value as a plain-text password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the Wukong's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = super::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Placement and availability of the VM.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HighAvailability {
    /// Labels a node must carry to run the VM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the VM tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,

    /// Spread the VMs of one group over different nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,

    /// Restart behaviour, used when `runStrategy` is unset: Always -> Always,
    /// OnFailure -> RerunOnFailure, Never -> Once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
}

/// A toleration, as in a Pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.operator) || self.operator != 'Exists' || !has(self.value)", "message": "an Exists toleration takes no value"}
]))]
pub struct Toleration {
    /// Taint key; empty with operator Exists matches every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 316))]
    pub key: Option<String>,
    /// `Equal` (the default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// Taint value for operator Equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub value: Option<String>,
    /// Taint effect to match; all effects when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For NoExecute: how long the VM stays on a tainted node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

// Toleration operator.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TolerationOperator {
    /// Key and value must match.
    Equal,
    /// The key must exist.
    Exists,
}

impl TolerationOperator {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "Equal",
            Self::Exists => "Exists",
        }
    }
}

// Taint effect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaintEffect {
    /// Do not schedule onto the node.
    NoSchedule,
    /// Avoid scheduling onto the node.
    PreferNoSchedule,
    /// Evict from the node.
    NoExecute,
}

impl TaintEffect {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

/// Anti-affinity between VMs of one group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AntiAffinity {
    /// Group name; VMs of the same group in the namespace are spread over nodes.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"))]
    pub group: String,
    /// `required`: never two on one node; `preferred`: avoid it when possible.
    #[serde(default)]
    pub mode: AntiAffinityMode,
    /// Node label that defines the failure domain; `kubernetes.io/hostname` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 316))]
    pub topology_key: Option<String>,
}

// Strength of the anti-affinity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinityMode {
    /// The scheduler must spread the group.
    #[default]
    Required,
    /// The scheduler spreads the group when it can.
    Preferred,
}

// Restart behaviour of the VM.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Always restart (run strategy Always).
    Always,
    /// Restart after a failure only (run strategy RerunOnFailure).
    OnFailure,
    /// Never restart (run strategy Once).
    Never,
}
