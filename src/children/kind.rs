//! A child kind as one concept, and the registry of every kind.
//!
//! In: nothing. Out: [`ChildKind`], the duties a kind of child implements once
//! (its API access, whether it may be retained, which of its objects the
//! operator caches, its plan, its builder, its pre-apply hook, how its cached
//! objects are trimmed), and [`for_each_kind`], the one list of registered
//! kinds in apply order. Every loop over children — plan, apply, orphans,
//! cleanup, watches, render, the permissions table, the test harness and the
//! bench — runs over this list, so a kind is added by implementing the trait
//! next to its builder and adding one line here; a missing duty fails to compile.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstancemigration::VirtualMachineInstanceMigration;

use super::plan::Plan;
use crate::api::Wukong;
use crate::validate::ValidWukong;

/// One rule of API access: verbs on a resource of an API group (`""` is the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group.
    pub group: &'static str,
    /// Resource (plural), with `/subresource` where it applies.
    pub resource: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// What the operator does with the objects of a child kind it owns.
pub const MANAGE: &[&str] = &["list", "watch", "create", "patch", "delete"];

/// One planned child: its kind, its name, and whether it outlives its Wukong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The Kubernetes kind, e.g. `DataVolume`.
    pub kind: String,
    /// The object's name (in the Wukong's namespace).
    pub name: String,
    /// Whether it is released instead of deleted when no longer wanted.
    pub retain: bool,
}

/// What the builders need beyond the validated Wukong and its plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInputs {
    /// Passwords by user name, read from the Secrets users reference; users
    /// missing here get a locked password.
    pub passwords: BTreeMap<String, String>,
    /// The addresses leased for `pool` networks, by network name; a pool
    /// network missing here (offline) gets no address in its network data.
    pub addresses: BTreeMap<String, LeasedAddress>,
}

/// An address leased from a pool, as the guest is told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedAddress {
    /// The address.
    pub address: std::net::IpAddr,
    /// The prefix length of the pool's CIDR.
    pub prefix_len: u8,
    /// The pool's gateway.
    pub gateway: Option<std::net::IpAddr>,
    /// The pool's DNS servers.
    pub dns: Vec<std::net::IpAddr>,
}

/// A kind of object a Wukong owns. Implemented once per kind, next to its builder.
pub trait ChildKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The API access the operator needs on this kind (the RBAC table is built from it).
    const PERMISSIONS: &'static [Permission];
    /// Whether an object of this kind may be released (kept) instead of
    /// deleted, when its disk says `deletionPolicy: Retain`.
    const RETAINABLE: bool;
    /// Whether a Wukong may refer to objects of this kind that it does not own
    /// (its disks' existing claims): a change of one reconciles those Wukongs.
    const REFERENCED: bool;
    /// The apply wave: kinds of one wave are applied concurrently, after every
    /// kind of a lower wave (the VirtualMachine comes after what it mounts).
    const WAVE: u8;

    /// Whether `wukong` refers to this object without owning it.
    fn is_referenced_by(&self, wukong: &Wukong) -> bool;

    /// The label selector of the operator's cache of this kind (`None`: every object).
    fn cache_selector() -> Option<String>;

    /// The children of this kind that `plan` (whose disks, networks and
    /// cloud-init decisions are made) calls for, in apply order.
    fn plan(wukong: &ValidWukong, plan: &Plan) -> Vec<Planned>;

    /// Builds the planned children of this kind.
    fn build(wukong: &ValidWukong, plan: &Plan, inputs: &BuildInputs) -> Vec<Self>;

    /// Adjusts the desired object before it is applied over the existing one
    /// (e.g. keeps an immutable spec).
    fn prepare(desired: &mut Self, current: &Self);

    /// Drops from a cached object what the operator never reads.
    fn trim(&mut self);
}

/// Something done once for every registered kind.
pub trait EachKind {
    /// Does it for kind `K`.
    fn kind<K: ChildKind>(&mut self);
}

/// Runs `visitor` over every registered kind, in apply order: attachments and
/// the cloud-init Secret first, then volumes, the VirtualMachine, and last
/// the migration of its instance.
pub fn for_each_kind<V: EachKind>(visitor: &mut V) {
    visitor.kind::<NetworkAttachmentDefinition>();
    visitor.kind::<Secret>();
    visitor.kind::<PersistentVolumeClaim>();
    visitor.kind::<DataVolume>();
    visitor.kind::<VirtualMachine>();
    visitor.kind::<VirtualMachineInstanceMigration>();
}

/// The `kind` of every registered kind, in apply order.
pub fn kind_names() -> Vec<String> {
    struct Names(Vec<String>);
    impl EachKind for Names {
        fn kind<K: ChildKind>(&mut self) {
            self.0.push(K::kind(&()).into_owned());
        }
    }
    let mut names = Names(Vec::new());
    for_each_kind(&mut names);
    names.0
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;

    use super::{BuildInputs, ChildKind, EachKind, for_each_kind, kind_names};
    use crate::children::plan::{Plan, plan};
    use crate::validate::ValidWukong;

    /// Every example, validated.
    fn examples() -> Vec<ValidWukong> {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut files: Vec<_> = std::fs::read_dir(&folder).expect("examples folder").map(|entry| entry.expect("entry").path()).collect();
        files.sort();
        let wukongs = files.iter().flat_map(|file| {
            let text = std::fs::read_to_string(file).expect("example text");
            crate::render::parse_documents(&text).unwrap_or_else(|errors| panic!("{}: {errors:?}", file.display()))
        });
        wukongs.map(|wukong| crate::validate::validate(&wukong).expect("examples are valid")).collect()
    }

    /// Checks that each kind builds exactly the children the plan names for it.
    struct BuiltAsPlanned<'a> {
        wukong: &'a ValidWukong,
        plan: &'a Plan,
        kinds_seen: usize,
    }

    impl EachKind for BuiltAsPlanned<'_> {
        fn kind<K: ChildKind>(&mut self) {
            let built: Vec<String> =
                K::build(self.wukong, self.plan, &BuildInputs::default()).iter().map(|object| object.name_any()).collect();
            let planned: Vec<String> = self.plan.names::<K>().map(str::to_string).collect();
            assert_eq!(built, planned, "{} of Wukong {}: built and planned names differ", K::kind(&()), self.wukong.name);
            for object in K::build(self.wukong, self.plan, &BuildInputs::default()) {
                assert_eq!(object.namespace().as_deref(), Some(self.wukong.namespace.as_str()));
                let retain =
                    self.plan.children.iter().any(|child| child.name == object.name_any() && child.kind == K::kind(&()) && child.retain);
                let annotated =
                    object.annotations().get(crate::children::meta::DELETION_POLICY_ANNOTATION).map(String::as_str) == Some("Retain");
                assert_eq!(retain, annotated, "{} {}: the Retain annotation follows the plan", K::kind(&()), object.name_any());
                assert!(!retain || K::RETAINABLE, "only retainable kinds are planned to be retained");
            }
            self.kinds_seen += 1;
        }
    }

    #[test]
    fn every_kind_builds_exactly_what_the_plan_names() {
        let examples = examples();
        assert!(examples.len() >= 7, "every example is checked");
        for wukong in &examples {
            let plan = plan(wukong);
            let mut check = BuiltAsPlanned { wukong, plan: &plan, kinds_seen: 0 };
            for_each_kind(&mut check);
            assert_eq!(check.kinds_seen, kind_names().len());
            let mut names: Vec<(&str, &str)> = plan.children.iter().map(|child| (child.kind.as_str(), child.name.as_str())).collect();
            let count = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), count, "no two children of one kind share a name in {}", wukong.name);
        }
    }

    /// Checks that each kind's built children, as the API server returns them (with a
    /// status and server fields) and as the cache trims them, still count as applied.
    struct TrimmedStillApplied<'a> {
        wukong: &'a ValidWukong,
        plan: &'a Plan,
    }

    impl EachKind for TrimmedStillApplied<'_> {
        fn kind<K: ChildKind>(&mut self) {
            for desired in K::build(self.wukong, self.plan, &BuildInputs::default()) {
                let wanted = serde_json::to_value(&desired).expect("desired as JSON");
                let mut returned = wanted.clone();
                returned["metadata"]["uid"] = serde_json::json!("uid-1");
                returned["metadata"]["managedFields"] = serde_json::json!([{"manager": "wukong-operator", "operation": "Apply"}]);
                returned["status"] = serde_json::json!({"phase": "Bound", "progress": "100.0%", "conditions": []});
                let mut cached: K = serde_json::from_value(returned).expect("returned object reads");
                crate::controller::watches::trim_metadata(&mut cached);
                cached.trim();
                assert!(
                    crate::controller::diff::holds(&desired, &cached),
                    "{} {}: a trimmed cached object would be applied again",
                    K::kind(&()),
                    desired.name_any()
                );
            }
        }
    }

    #[test]
    fn trimmed_cached_children_still_count_as_applied() {
        for wukong in &examples() {
            let plan = plan(wukong);
            for_each_kind(&mut TrimmedStillApplied { wukong, plan: &plan });
        }
    }

    #[test]
    fn trims_keep_the_status_parts_that_are_read() {
        use k8s_openapi::api::core::v1::PersistentVolumeClaim;
        use wukong_models::datavolume::DataVolume;
        use wukong_models::virtualmachine::VirtualMachine;

        let mut vm: VirtualMachine = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "vm"}, "spec": {"template": {}},
            "status": {"conditions": [{"type": "RestartRequired", "status": "True"}], "printableStatus": "Running",
                       "volumeSnapshotStatuses": [{"name": "root", "enabled": false}]}
        }))
        .expect("vm");
        vm.trim();
        let status = vm.status.expect("vm status kept");
        assert_eq!(status.conditions.expect("conditions kept")[0].r#type, "RestartRequired");
        assert!(status.volume_snapshot_statuses.is_none() && status.printable_status.is_none(), "the rest of the VM status goes");

        let mut claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                       "conditions": [{"type": "Resizing", "status": "True"}]}
        }))
        .expect("claim");
        claim.trim();
        assert_eq!(claim.spec.and_then(|spec| spec.access_modes), Some(vec!["ReadWriteOnce".to_string()]), "the spec stays");
        let status = claim.status.expect("claim status kept");
        assert_eq!((status.phase.as_deref(), status.capacity.is_some()), (Some("Bound"), true));
        assert!(status.conditions.is_none() && status.access_modes.is_none(), "the rest of the claim status goes");

        let mut volume: DataVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "root"}, "spec": {},
            "status": {"phase": "ImportInProgress", "progress": "42.0%", "claimName": "root",
                       "conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .expect("data volume");
        volume.trim();
        let status = volume.status.expect("data volume status kept");
        assert_eq!((status.phase.as_deref(), status.progress.as_deref()), (Some("ImportInProgress"), Some("42.0%")));
        assert!(status.conditions.is_none() && status.claim_name.is_none(), "the rest of the DataVolume status goes");
    }

    #[test]
    fn kinds_are_registered_once_in_apply_order() {
        assert_eq!(
            kind_names(),
            [
                "NetworkAttachmentDefinition",
                "Secret",
                "PersistentVolumeClaim",
                "DataVolume",
                "VirtualMachine",
                "VirtualMachineInstanceMigration"
            ]
        );
    }
}
