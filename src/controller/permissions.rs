//! The API access the operator needs, declared once.
//!
//! In: nothing. Out: the resources and verbs the controller watches and writes.
//! The ClusterRole in `config/rbac/` and the Helm chart are checked against this
//! table by a test, and the controller tests check that every request the
//! reconciler makes is covered by it.

/// One rule: verbs on a resource of an API group (`""` is the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group.
    pub group: &'static str,
    /// Resource (plural), with `/subresource` where it applies.
    pub resource: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
}

const WATCH: &[&str] = &["list", "watch"];
const MANAGE: &[&str] = &["list", "watch", "create", "patch", "delete"];

/// Cluster-wide access, granted by the operator's ClusterRole.
pub const CLUSTER: &[Permission] = &[
    // Wukongs: watched; the finalizer is added and removed with merge patches.
    Permission { group: "vm.novasphere.dev", resource: "wukongs", verbs: &["list", "watch", "patch"] },
    // Status is written with server-side apply.
    Permission { group: "vm.novasphere.dev", resource: "wukongs/status", verbs: &["patch"] },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    Permission { group: "vm.novasphere.dev", resource: "wukongs/finalizers", verbs: &["update"] },
    Permission { group: "kubevirt.io", resource: "virtualmachines", verbs: MANAGE },
    Permission { group: "kubevirt.io", resource: "virtualmachineinstances", verbs: WATCH },
    Permission { group: "cdi.kubevirt.io", resource: "datavolumes", verbs: MANAGE },
    // CDI authorises a cross-namespace clone by the creator's right to create this
    // subresource in the source namespace; the operator checks the grant first.
    Permission { group: "cdi.kubevirt.io", resource: "datavolumes/source", verbs: &["create"] },
    Permission { group: "k8s.cni.cncf.io", resource: "network-attachment-definitions", verbs: MANAGE },
    Permission { group: "", resource: "persistentvolumeclaims", verbs: MANAGE },
    // Secrets: the cloud-init Secrets it manages (watched by label) and a GET of
    // the password Secrets users reference.
    Permission { group: "", resource: "secrets", verbs: &["get", "list", "watch", "create", "patch", "delete"] },
    Permission { group: "storage.k8s.io", resource: "storageclasses", verbs: WATCH },
    Permission { group: "events.k8s.io", resource: "events", verbs: &["create", "patch"] },
];

/// Access in the operator's own namespace, granted by a Role: the leader lease.
pub const LEADER_ELECTION: &[Permission] =
    &[Permission { group: "coordination.k8s.io", resource: "leases", verbs: &["get", "create", "patch"] }];
