//! The plan: which children a Wukong has, of which kind, under which name, and
//! which of them may outlive it.
//!
//! In: a validated Wukong (or, for the status of an invalid one, its raw disks
//! and networks). Out: a [`Plan`] computed once per pass, right after
//! validation. The rules "which disk becomes which kind" and "which network
//! needs an attachment" live here and nowhere else; builders, the observe step,
//! the checks and the status all read the plan. Pure: no client, no clock.

use kube::Resource;
use wukong_models::virtualmachine::VirtualMachine;

use super::kind::{EachKind, for_each_kind};
use super::{ChildKind, Planned};
use crate::api::{DeletionPolicy, Disk, Network, NetworkType, WukongSpec};
use crate::naming::{attachment_name, cloud_init_secret_name, vm_name, volume_name};
use crate::validate::ValidWukong;

/// Every child of one Wukong and the decisions behind them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Namespace of the Wukong (and of every child).
    pub namespace: String,
    /// Name of the Wukong.
    pub wukong: String,
    /// Name of the VirtualMachine.
    pub virtual_machine: String,
    /// Name of the cloud-init Secret, when the Wukong needs one.
    pub cloud_init_secret: Option<String>,
    /// Each disk's volume, in spec order.
    pub disks: Vec<DiskPlan>,
    /// Each network's attachment, in spec order.
    pub networks: Vec<NetworkPlan>,
    /// Every child, in apply order (kinds in registry order).
    pub children: Vec<Planned>,
}

/// How one disk is provided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPlan {
    /// The disk's name in the spec.
    pub disk: String,
    /// The volume the VirtualMachine mounts.
    pub volume: Volume,
    /// The existing claim the disk references (in this or another namespace).
    pub existing: Option<ClaimReference>,
    /// Whether the operator's volume is kept when the disk or the Wukong goes.
    pub retain: bool,
}

/// The volume behind a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Volume {
    /// A DataVolume the operator creates: imported from an image, or cloned
    /// from a granted claim in another namespace.
    DataVolume(String),
    /// A blank claim the operator creates.
    BlankClaim(String),
    /// An existing claim in the Wukong's namespace, only referenced.
    ExistingClaim(String),
}

impl Volume {
    /// The name of the volume (DataVolumes and their claims share it).
    pub fn name(&self) -> &str {
        match self {
            Volume::DataVolume(name) | Volume::BlankClaim(name) | Volume::ExistingClaim(name) => name,
        }
    }

    /// Whether the operator creates (and owns) this volume.
    pub fn is_owned(&self) -> bool {
        !matches!(self, Volume::ExistingClaim(_))
    }
}

/// An existing claim a disk references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimReference {
    /// Namespace of the claim (the Wukong's unless the disk names another).
    pub namespace: String,
    /// Name of the claim.
    pub name: String,
    /// Whether the disk mounts it read-only.
    pub read_only: bool,
}

/// How one network is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network's name in the spec.
    pub network: String,
    /// The NetworkAttachmentDefinition, for every network but the pod network.
    pub attachment: Option<String>,
}

/// The plan of a validated Wukong.
pub fn plan(wukong: &ValidWukong) -> Plan {
    let mut plan = Plan {
        namespace: wukong.namespace.clone(),
        wukong: wukong.name.clone(),
        virtual_machine: vm_name(&wukong.name),
        cloud_init_secret: needs_cloud_init(wukong).then(|| cloud_init_secret_name(&wukong.name)),
        disks: disks(&wukong.namespace, &wukong.name, &wukong.spec.disks),
        networks: networks(&wukong.name, &wukong.spec.networks),
        children: Vec::new(),
    };
    let mut collect = Collect { wukong, plan: &plan, children: Vec::new() };
    for_each_kind(&mut collect);
    plan.children = collect.children;
    plan
}

/// Gathers each kind's planned children.
struct Collect<'a> {
    wukong: &'a ValidWukong,
    plan: &'a Plan,
    children: Vec<Planned>,
}

impl EachKind for Collect<'_> {
    fn kind<K: ChildKind>(&mut self) {
        self.children.extend(K::plan(self.wukong, self.plan));
    }
}

/// Whether the Wukong needs a cloud-init Secret: it has cloud-init, or a
/// network with an `ipConfig` the guest must be told.
pub fn needs_cloud_init(wukong: &ValidWukong) -> bool {
    wukong.spec.cloud_init.is_some() || wukong.spec.networks.iter().any(|network| network.ip_config.is_some())
}

/// The volume of every disk: an image -> a DataVolume that imports it; an
/// existing claim in another namespace -> a DataVolume that clones it; an
/// existing claim here -> that claim; nothing -> a blank claim.
pub fn disks(namespace: &str, wukong: &str, disks: &[Disk]) -> Vec<DiskPlan> {
    disks
        .iter()
        .map(|disk| {
            let existing = disk.existing_pvc.as_ref().map(|existing| ClaimReference {
                namespace: existing.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                name: existing.name.clone(),
                read_only: existing.read_only == Some(true),
            });
            let own = volume_name(wukong, &disk.name);
            let volume = match (&disk.image, &existing) {
                (Some(_), _) => Volume::DataVolume(own),
                (None, Some(claim)) if claim.namespace == namespace => Volume::ExistingClaim(claim.name.clone()),
                (None, Some(_)) => Volume::DataVolume(own),
                (None, None) => Volume::BlankClaim(own),
            };
            let retain = volume.is_owned() && disk.deletion_policy == Some(DeletionPolicy::Retain);
            DiskPlan { disk: disk.name.clone(), volume, existing, retain }
        })
        .collect()
}

/// The attachment of every network: every network but the pod network gets one.
pub fn networks(wukong: &str, networks: &[Network]) -> Vec<NetworkPlan> {
    networks
        .iter()
        .map(|network| NetworkPlan {
            network: network.name.clone(),
            attachment: (network.network_type != NetworkType::Pod).then(|| attachment_name(wukong, &network.name)),
        })
        .collect()
}

impl Plan {
    /// The plan of a Wukong whose spec is invalid (or, without a spec,
    /// unreadable): its disks and networks as written, and of its children only
    /// the VirtualMachine its name decides, so the status still shows them.
    pub fn unbuildable(namespace: &str, wukong: &str, spec: Option<&WukongSpec>) -> Plan {
        let virtual_machine = vm_name(wukong);
        Plan {
            namespace: namespace.to_string(),
            wukong: wukong.to_string(),
            cloud_init_secret: None,
            disks: spec.map(|spec| disks(namespace, wukong, &spec.disks)).unwrap_or_default(),
            networks: spec.map(|spec| networks(wukong, &spec.networks)).unwrap_or_default(),
            children: vec![Planned { kind: VirtualMachine::kind(&()).into_owned(), name: virtual_machine.clone(), retain: false }],
            virtual_machine,
        }
    }

    /// The planned names of kind `K`.
    pub fn names<K: ChildKind>(&self) -> impl Iterator<Item = &str> {
        let kind = K::kind(&());
        self.children.iter().filter(move |child| child.kind == kind).map(|child| child.name.as_str())
    }

    /// Whether a child of kind `K` named `name` is planned.
    pub fn wants<K: ChildKind>(&self, name: &str) -> bool {
        self.names::<K>().any(|planned| planned == name)
    }
}
