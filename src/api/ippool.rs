//! The `IPPool` and `IPLease` custom resources: where VM addresses come from
//! and who holds each one.
//!
//! In: nothing (plain data). Out: the serde/schemars types the two
//! cluster-scoped CRDs are generated from. An `IPPool` is written by a cluster
//! administrator; an `IPLease` is written only by the operator: its name is
//! the lock on one address (see `controller::addresses`). Every field carries
//! a `///` comment, which becomes its description in the CRD.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::Condition;

/// A range of addresses on one network segment that Wukongs take their
/// addresses from (`ipConfig.mode: pool`) or reserve theirs in
/// (`ipConfig.mode: static` with `pool`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "vm.novasphere.dev",
    version = "v1alpha1",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ipp",
    status = "IPPoolStatus",
    doc = "A range of VM addresses on one segment: Wukongs take addresses from it, each held by an IPLease.",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"Allocated","type":"integer","jsonPath":".status.allocated"}"#,
    printcolumn = r#"{"name":"Free","type":"integer","jsonPath":".status.free"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.start) || self.start.contains(':') == self.cidr.contains(':')", "message": "start is of the same address family as cidr"},
    {"rule": "!has(self.end) || self.end.contains(':') == self.cidr.contains(':')", "message": "end is of the same address family as cidr"},
    {"rule": "!has(self.gateway) || self.gateway.contains(':') == self.cidr.contains(':')", "message": "gateway is of the same address family as cidr"}
]))]
pub struct IPPoolSpec {
    /// The subnet of the segment in CIDR notation, for example `192.168.100.0/24`
    /// or `2001:db8:100::/64`. Guests get its prefix length.
    #[schemars(length(min = 3, max = 64))]
    pub cidr: String,

    /// First address handed out; the first usable address of `cidr` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 45))]
    pub start: Option<String>,

    /// Last address handed out; the last usable address of `cidr` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 45))]
    pub end: Option<String>,

    /// Default gateway given to guests; inside `cidr` and never handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 45))]
    pub gateway: Option<String>,

    /// DNS servers given to guests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 45)))]
    pub dns: Vec<String>,

    /// Addresses or CIDR ranges inside `cidr` that are never handed out, for
    /// example `192.168.100.50/31` or `192.168.100.7`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 64)))]
    pub exclude: Vec<String>,

    /// Namespaces whose Wukongs may use the pool; every namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63), regex(pattern = super::DNS_LABEL_PATTERN)))]
    pub namespaces: Vec<String>,
}

/// What the operator reports about a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// How many addresses the pool hands out (its range minus the gateway,
    /// the excluded addresses and, for IPv4, the network and broadcast
    /// addresses); saturates at the largest 64-bit integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,

    /// How many addresses are leased (handed out or reserved by a static address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,

    /// How many addresses can still be handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (reason `Valid`, or `InvalidSpec` naming the field) and, while
    /// the pool is being deleted, `Terminating` (how many leases hold it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One address held by one network of one Wukong. Written only by the
/// operator: its name is derived from the address and its pool or segment, so
/// creating it is the lock on the address.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "vm.novasphere.dev",
    version = "v1alpha1",
    kind = "IPLease",
    plural = "ipleases",
    shortname = "ipl",
    doc = "One address held by one network of one Wukong; its name is the lock on the address.",
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.holder.namespace"}"#,
    printcolumn = r#"{"name":"Wukong","type":"string","jsonPath":".spec.holder.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.pool) != has(self.segment)", "message": "a lease is in exactly one of pool or segment"}
]))]
pub struct IPLeaseSpec {
    /// The IPPool the address belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pool: Option<String>,

    /// The segment of a static address that names no pool: `type/bridge-or-resource/vlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 300))]
    pub segment: Option<String>,

    /// The address, without prefix length.
    #[schemars(length(min = 2, max = 45))]
    pub address: String,

    /// `pool` (handed out by the operator; never taken over) or `static`
    /// (declared by the Wukong; the earliest declaration keeps it).
    pub mode: LeaseMode,

    /// The network that holds the address.
    pub holder: LeaseHolder,

    /// The UID of the VirtualMachineInstance that still uses the address
    /// after its Wukong stopped wanting it; the lease goes when that instance does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub release_after_instance: Option<String>,
}

/// How the holder came by the address.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeaseMode {
    /// Handed out from a pool.
    #[default]
    Pool,
    /// Declared by the Wukong.
    Static,
}

/// The network of a Wukong that holds a lease.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseHolder {
    /// Namespace of the Wukong.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Wukong.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// UID of the Wukong (a Wukong re-created under the same name is another holder).
    #[schemars(length(min = 1, max = 64))]
    pub uid: String,
    /// Name of the network in the Wukong's spec.
    #[schemars(length(min = 1, max = 63))]
    pub network: String,
    /// Creation time of the Wukong (RFC 3339): of two static declarations of
    /// one address the earlier keeps it.
    #[schemars(length(max = 64))]
    pub creation_timestamp: String,
}
