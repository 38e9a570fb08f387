//! The observe step: what the watch caches show about one Wukong.
//!
//! In: the caches, the Wukong and its plan. Out: [`Observed`]: its planned
//! children that exist and are its own, objects that carry a child's name but
//! belong to someone else, the VM's instance, the claims CDI made for its
//! DataVolumes, the existing claims its disks reference (and who else uses
//! them), the binding mode of its storage classes and the addresses its leases hold. Cache reads only: it
//! cannot fail, so the status always has it, whatever a later step does.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Resource;
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachine::VirtualMachine;

use super::by_kind::ByKind;
use super::context::Stores;
use super::instances::CachedInstance;
use super::ownership::{cached, is_controlled_by};
use crate::api::{GuardedWukong, Wukong};
use crate::children::plan::{Plan, Volume};
use crate::children::storage::references_claim;
use crate::children::{ChildKind, EachKind, for_each_kind};

/// The annotation marking the cluster's default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// An existing claim a disk references, with what the cluster says about it.
#[derive(Clone, Debug)]
pub struct ReferencedClaim {
    /// Namespace of the claim.
    pub namespace: String,
    /// Name of the claim.
    pub name: String,
    /// The claim, if it exists.
    pub claim: Option<Arc<PersistentVolumeClaim>>,
    /// Others that use it read-write: "VirtualMachine ns/name" or "Wukong ns/name".
    pub read_write_users: Vec<String>,
    /// Whether its StorageClass binds on first consumer (a Pending claim then
    /// binds when the VM's pod is scheduled, so it must not hold the VM back).
    pub waits_for_first_consumer: bool,
}

/// What the caches show about one Wukong.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its planned children that exist and that it controls: `Vec<Arc<K>>` per kind.
    pub children: ByKind,
    /// The VM's instance (none while the VM is not this Wukong's).
    pub instance: Option<Arc<CachedInstance>>,
    /// The DataVolumes it controls under the name of one of its volumes,
    /// whatever kind the plan now gives that volume.
    pub volume_data_volumes: Vec<Arc<DataVolume>>,
    /// The claims under the name of one of its volumes that it controls, or
    /// that CDI made for one of its DataVolumes, whatever kind the plan now
    /// gives that volume.
    pub volume_claims: Vec<Arc<PersistentVolumeClaim>>,
    /// The existing claims its disks reference, by disk index.
    pub existing_claims: BTreeMap<usize, ReferencedClaim>,
    /// Whether each StorageClass of its own volumes binds on first consumer; `""` is the default class.
    pub wait_for_first_consumer: BTreeMap<String, bool>,
    /// Objects with a child's name that belong to someone else: (kind, name).
    pub foreign: Vec<(String, String)>,
    /// What the operations step sent this pass (nothing before it runs).
    pub operations: super::operations::Performed,
    /// The addresses its pool networks hold, by network name (from the
    /// addresses step, or the lease cache when a pass stops before it).
    pub leased: BTreeMap<String, String>,
}

impl Observed {
    /// The observed children of kind `K`.
    pub fn of<K: ChildKind>(&self) -> &[Arc<K>] {
        self.children.get::<Vec<Arc<K>>>().map(Vec::as_slice).unwrap_or_default()
    }

    /// Replaces the observed children of kind `K`.
    pub fn set<K: ChildKind>(&mut self, objects: Vec<Arc<K>>) {
        self.children.insert(objects);
    }

    /// The child of kind `K` named `name`.
    pub fn named<K: ChildKind>(&self, name: &str) -> Option<&Arc<K>> {
        self.of::<K>().iter().find(|object| object.meta().name.as_deref() == Some(name))
    }

    /// The VirtualMachine, when it exists and is this Wukong's.
    pub fn virtual_machine(&self) -> Option<&Arc<VirtualMachine>> {
        self.of::<VirtualMachine>().first()
    }

    /// The claim behind the volume `name`: a blank claim, or the one CDI made for the DataVolume.
    pub fn volume_claim(&self, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.volume_claims.iter().find(|claim| claim.metadata.name.as_deref() == Some(name))
    }

    /// Takes the claims and DataVolumes of the kinds' lists (as a pass wrote
    /// them) into the volume lists.
    pub fn refresh_volumes(&mut self) {
        fn upsert<K: ChildKind>(list: &mut Vec<Arc<K>>, objects: &[Arc<K>]) {
            for object in objects {
                list.retain(|known| known.meta().name != object.meta().name);
                list.push(object.clone());
            }
        }
        let claims = self.of::<PersistentVolumeClaim>().to_vec();
        upsert(&mut self.volume_claims, &claims);
        let data_volumes = self.of::<DataVolume>().to_vec();
        upsert(&mut self.volume_data_volumes, &data_volumes);
    }

    /// The DataVolume behind the volume `name`.
    pub fn data_volume(&self, name: &str) -> Option<&Arc<DataVolume>> {
        self.volume_data_volumes.iter().find(|volume| volume.metadata.name.as_deref() == Some(name))
    }
}

/// Reads everything the caches know about `wukong` and its plan.
pub fn observe(stores: &Stores, wukong: &Wukong, plan: &Plan) -> Observed {
    let uid = wukong.metadata.uid.clone().unwrap_or_default();
    let mut children = Children { stores, plan, uid: &uid, observed: Observed::default() };
    for_each_kind(&mut children);
    let mut observed = children.observed;
    observed.leased = super::addresses::cached_addresses(stores, &uid);
    // Only the instance of a VM this Wukong controls describes it: a VM that
    // merely has the name belongs to someone else (a name conflict).
    observed.instance = observed.virtual_machine().and_then(|_| cached(&stores.instances, &plan.namespace, &plan.virtual_machine));
    let claims = stores.of::<PersistentVolumeClaim>();
    let data_volumes = stores.of::<DataVolume>();
    for name in plan.disks.iter().map(|disk| &disk.volume).filter(|volume| volume.is_owned()).map(Volume::name) {
        // A planned child was just read: only a volume the plan now gives another kind is read again.
        let data_volume = observed.named::<DataVolume>(name).cloned();
        let data_volume =
            data_volume.or_else(|| data_volumes.get(&plan.namespace, name).filter(|volume| is_controlled_by(volume.as_ref(), &uid)));
        let claim = observed.named::<PersistentVolumeClaim>(name).cloned().or_else(|| claims.get(&plan.namespace, name));
        // A DataVolume's claim is CDI's (controlled by the DataVolume); any other must be this Wukong's.
        let claim = claim.filter(|claim| data_volume.is_some() || is_controlled_by(claim.as_ref(), &uid));
        observed.volume_data_volumes.extend(data_volume);
        observed.volume_claims.extend(claim);
    }
    for (index, (disk, planned)) in wukong.spec.disks.iter().zip(&plan.disks).enumerate() {
        if let Some(reference) = &planned.existing {
            let claim = claims.get(&reference.namespace, &reference.name);
            let read_write_users =
                if reference.namespace == plan.namespace { read_write_users(stores, wukong, plan, &reference.name) } else { Vec::new() };
            let class = claim.as_ref().and_then(|claim| claim.spec.as_ref()).and_then(|spec| spec.storage_class_name.clone());
            let waits_for_first_consumer = storage_class_waits(stores, class.as_deref().unwrap_or_default());
            let referenced = ReferencedClaim {
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
                claim,
                read_write_users,
                waits_for_first_consumer,
            };
            observed.existing_claims.insert(index, referenced);
        } else {
            let class = disk.storage_class_name.clone().unwrap_or_default();
            let waits = storage_class_waits(stores, &class);
            observed.wait_for_first_consumer.insert(class, waits);
        }
    }
    observed
}

/// Looks up each kind's planned children by name.
struct Children<'a> {
    stores: &'a Stores,
    plan: &'a Plan,
    uid: &'a str,
    observed: Observed,
}

impl EachKind for Children<'_> {
    fn kind<K: ChildKind>(&mut self) {
        let store = self.stores.of::<K>();
        let mut found = Vec::new();
        for name in self.plan.names::<K>() {
            match store.get(&self.plan.namespace, name) {
                Some(object) if is_controlled_by(object.as_ref(), self.uid) => found.push(object),
                Some(_) => self.observed.foreign.push((K::kind(&()).into_owned(), name.to_string())),
                None => {}
            }
        }
        self.observed.set(found);
    }
}

/// Others in the Wukong's namespace that use the claim read-write:
/// VirtualMachines other than this Wukong's, and older Wukongs that reference
/// it without `readOnly`.
fn read_write_users(stores: &Stores, wukong: &Wukong, plan: &Plan, claim: &str) -> Vec<String> {
    let namespace = plan.namespace.as_str();
    let mut virtual_machines = stores.of::<VirtualMachine>().in_namespace(namespace);
    virtual_machines.retain(|vm| vm.metadata.name.as_deref() != Some(plan.virtual_machine.as_str()));
    let mut users: Vec<String> = virtual_machines
        .iter()
        .filter(|vm| vm_uses_claim_read_write(vm, claim))
        .map(|vm| format!("VirtualMachine \"{namespace}/{}\"", vm.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let others = stores.wukongs.state_filter(|other| {
        other.meta().namespace.as_deref() == Some(namespace) && other.meta().name != wukong.metadata.name && is_older(other, wukong)
    });
    for other in others.iter().filter_map(|other| other.wukong()) {
        if references_claim(other, namespace, claim, false) {
            users.push(format!("Wukong \"{namespace}/{}\"", other.metadata.name.as_deref().unwrap_or_default()));
        }
    }
    users.sort();
    users.dedup();
    users
}

fn vm_uses_claim_read_write(vm: &VirtualMachine, claim: &str) -> bool {
    let volumes = vm.spec.template.spec.as_ref().and_then(|spec| spec.volumes.as_ref());
    volumes.into_iter().flatten().any(|volume| {
        volume.persistent_volume_claim.as_ref().is_some_and(|source| source.claim_name == claim && source.read_only != Some(true))
            || volume.data_volume.as_ref().is_some_and(|source| source.name == claim)
    })
}

/// Whether `other` was created before `wukong` (name breaks ties): of two
/// Wukongs wanting one claim read-write, the older keeps it.
fn is_older(other: &GuardedWukong, wukong: &Wukong) -> bool {
    let key = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (meta.creation_timestamp.as_ref().map(|time| time.0.to_string()).unwrap_or_default(), meta.name.clone().unwrap_or_default())
    };
    key(other.meta()) < key(&wukong.metadata)
}

/// Whether claims of `class` (`""`: the default class) bind on first consumer.
fn storage_class_waits(stores: &Stores, class: &str) -> bool {
    let classes = stores.storage_classes.state();
    let found = if class.is_empty() {
        classes.iter().find(|candidate| {
            candidate.metadata.annotations.as_ref().and_then(|annotations| annotations.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
                == Some("true")
        })
    } else {
        classes.iter().find(|candidate| candidate.metadata.name.as_deref() == Some(class))
    };
    found.and_then(|class| class.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer")
}
