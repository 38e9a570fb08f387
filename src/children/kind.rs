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
/// the cloud-init Secret first, then volumes, the VirtualMachine last.
pub fn for_each_kind<V: EachKind>(visitor: &mut V) {
    visitor.kind::<NetworkAttachmentDefinition>();
    visitor.kind::<Secret>();
    visitor.kind::<PersistentVolumeClaim>();
    visitor.kind::<DataVolume>();
    visitor.kind::<VirtualMachine>();
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
