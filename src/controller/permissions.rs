//! The API access the operator needs, declared once.
//!
//! In: the registered child kinds' own permissions, the operations' and the address leases'. Out: [`cluster`], the
//! resources and verbs the controller watches and writes, and
//! [`LEADER_ELECTION`]. The ClusterRole in `config/rbac/` and the Helm chart
//! are checked against this table by a test, and the controller tests check
//! that every request the reconciler makes is covered by it.

pub use crate::children::Permission;
use crate::children::{ChildKind, EachKind, for_each_kind};

const WATCH: &[&str] = &["list", "watch"];

/// Access that belongs to no child kind: the Wukongs themselves, what is only
/// watched, and Events.
pub const BASE: &[Permission] = &[
    // Wukongs: watched; the finalizer is added and removed with merge patches; a GET confirms a swept lease's holder is gone.
    Permission { group: "vm.novasphere.dev", resource: "wukongs", verbs: &["get", "list", "watch", "patch"] },
    // Status is written with server-side apply.
    Permission { group: "vm.novasphere.dev", resource: "wukongs/status", verbs: &["patch"] },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    Permission { group: "vm.novasphere.dev", resource: "wukongs/finalizers", verbs: &["update"] },
    Permission { group: "kubevirt.io", resource: "virtualmachineinstances", verbs: WATCH },
    Permission { group: "storage.k8s.io", resource: "storageclasses", verbs: WATCH },
    Permission { group: "events.k8s.io", resource: "events", verbs: &["create", "patch"] },
];

/// Cluster-wide access, granted by the operator's ClusterRole: [`BASE`] and
/// every registered child kind's own.
pub fn cluster() -> Vec<Permission> {
    struct Collect(Vec<Permission>);
    impl EachKind for Collect {
        fn kind<K: ChildKind>(&mut self) {
            self.0.extend_from_slice(K::PERMISSIONS);
        }
    }
    let mut collect = Collect([BASE, super::operations::PERMISSIONS, super::addresses::leases::PERMISSIONS].concat());
    for_each_kind(&mut collect);
    collect.0
}

/// Access in the operator's own namespace, granted by a Role: the leader lease.
pub const LEADER_ELECTION: &[Permission] =
    &[Permission { group: "coordination.k8s.io", resource: "leases", verbs: &["get", "create", "patch"] }];
