//! Step 1 of a reconcile: read everything the Wukong refers to or owns.
//!
//! In: the parsed Wukong and the context. Out: [`Dereferenced`], the facts the
//! later steps decide on: the existing claims it references and who else uses
//! them, storage class binding modes, user passwords, and the children it owns
//! now. Everything comes from the watch caches except passwords, which are read
//! from their Secrets with a GET (the operator caches only its own Secrets).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::Api;
use kube::api::DynamicObject;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use super::context::Context;
use super::ownership::cached;
use crate::api::Wukong;
use crate::build::naming::{cloud_init_secret_name, vm_name};
use crate::build::network::{attachment_name, has_attachment};
use crate::build::storage::volume_name;

/// Annotation a claim's owner sets to let Wukongs in other namespaces clone it:
/// a comma-separated list of namespaces, or `*`.
pub const CLONE_GRANT_ANNOTATION: &str = "vm.novasphere.dev/clone-to-namespaces";
/// The annotation marking the cluster's default StorageClass.
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// Errors of the dereference step: only API failures (missing objects are facts).
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    /// Reading a password Secret failed for a reason other than its absence.
    #[error("failed to read Secret \"{namespace}/{name}\": {source}")]
    ReadSecret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

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

/// What a password reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordLookup {
    /// The value of the key.
    Found(String),
    /// The Secret does not exist.
    SecretMissing,
    /// The Secret exists but has no such key.
    KeyMissing,
}

/// The children a Wukong owns now, from the caches.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The VirtualMachine `<wukong>-vm`, if it exists and this Wukong controls it.
    pub virtual_machine: Option<Arc<VirtualMachine>>,
    /// Its VirtualMachineInstance (none while the VM is not this Wukong's).
    pub instance: Option<Arc<VirtualMachineInstance>>,
    /// Owned DataVolumes.
    pub data_volumes: Vec<Arc<DataVolume>>,
    /// Owned claims, plus the claims CDI made for owned DataVolumes.
    pub claims: Vec<Arc<PersistentVolumeClaim>>,
    /// Owned NetworkAttachmentDefinitions.
    pub attachments: Vec<Arc<NetworkAttachmentDefinition>>,
    /// Owned Secrets.
    pub secrets: Vec<Arc<Secret>>,
}

/// Everything the Wukong refers to or owns.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    /// Existing claims by disk index.
    pub claims: BTreeMap<usize, ReferencedClaim>,
    /// Passwords by user index.
    pub passwords: BTreeMap<usize, PasswordLookup>,
    /// Whether each StorageClass binds on first consumer (by name); `""` is the default class.
    pub wait_for_first_consumer: BTreeMap<String, bool>,
    /// The children as they are now.
    pub observed: Observed,
    /// Objects with the names of children that belong to someone else: (kind, name).
    pub foreign: Vec<(String, String)>,
}

/// Reads everything the Wukong refers to or owns.
pub async fn dereference(context: &Context, wukong: &Wukong) -> Result<Dereferenced, DereferenceError> {
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let uid = wukong.metadata.uid.clone().unwrap_or_default();
    let stores = &context.stores;
    let mut result = Dereferenced::default();

    for (index, disk) in wukong.spec.disks.iter().enumerate() {
        if let Some(existing) = &disk.existing_pvc {
            let claim_namespace = existing.namespace.clone().unwrap_or_else(|| namespace.clone());
            let claim = cached(&stores.claims, &claim_namespace, &existing.name);
            let read_write_users =
                if claim_namespace == namespace { read_write_users(context, wukong, &claim_namespace, &existing.name) } else { Vec::new() };
            let class =
                claim.as_ref().and_then(|claim| claim.spec.as_ref()).and_then(|spec| spec.storage_class_name.clone()).unwrap_or_default();
            let waits_for_first_consumer = storage_class_waits(context, &class);
            result.claims.insert(
                index,
                ReferencedClaim {
                    namespace: claim_namespace,
                    name: existing.name.clone(),
                    claim,
                    read_write_users,
                    waits_for_first_consumer,
                },
            );
        }
    }

    for class in
        wukong.spec.disks.iter().filter(|disk| disk.existing_pvc.is_none()).map(|disk| disk.storage_class_name.clone().unwrap_or_default())
    {
        let waits = storage_class_waits(context, &class);
        result.wait_for_first_consumer.insert(class, waits);
    }

    if let Some(cloud_init) = &wukong.spec.cloud_init {
        for (index, user) in cloud_init.users.iter().enumerate() {
            if let Some(reference) = &user.password_secret_ref {
                let lookup = read_password(context, &namespace, &reference.name, &reference.key).await?;
                result.passwords.insert(index, lookup);
            }
        }
    }

    // Children are found by the names the spec gives them (constant time per
    // child); children whose disk or network left the spec are found by the
    // orphan scan of the apply step.
    let observed = &mut result.observed;
    let controlled = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.owner_references.iter().flatten().any(|owner| owner.controller == Some(true) && owner.uid == uid)
    };
    // Only a VM this Wukong controls (and that VM's instance) describes it: a VM
    // that merely has the name belongs to someone else (a NameConflict).
    observed.virtual_machine = cached(&stores.virtual_machines, &namespace, &vm_name(&name)).filter(|vm| controlled(&vm.metadata));
    observed.instance = observed.virtual_machine.as_ref().and_then(|_| cached(&stores.instances, &namespace, &vm_name(&name)));
    for disk in wukong.spec.disks.iter().filter(|disk| {
        disk.existing_pvc.as_ref().is_none_or(|existing| existing.namespace.as_deref().is_some_and(|other| other != namespace))
    }) {
        let volume = volume_name(&name, disk);
        if let Some(data_volume) = cached(&stores.data_volumes, &namespace, &volume).filter(|data_volume| controlled(&data_volume.metadata))
        {
            observed.data_volumes.push(data_volume);
            // The claim CDI made for it, owned by the DataVolume.
            observed.claims.extend(cached(&stores.claims, &namespace, &volume));
        } else if let Some(claim) = cached(&stores.claims, &namespace, &volume).filter(|claim| controlled(&claim.metadata)) {
            observed.claims.push(claim);
        }
    }
    observed.attachments = wukong
        .spec
        .networks
        .iter()
        .filter(|network| has_attachment(network))
        .filter_map(|network| cached(&stores.attachments, &namespace, &attachment_name(&name, network)))
        .filter(|attachment| controlled(&attachment.metadata))
        .collect();
    observed.secrets = cached(&stores.secrets, &namespace, &cloud_init_secret_name(&name))
        .filter(|secret| controlled(&secret.metadata))
        .into_iter()
        .collect();
    result.foreign = foreign(context, wukong, &namespace, &uid);
    Ok(result)
}

/// Objects that carry the name of one of this Wukong's children but are not
/// controlled by it (another Wukong's, a retained volume, the user's own).
fn foreign(context: &Context, wukong: &Wukong, namespace: &str, uid: &str) -> Vec<(String, String)> {
    let stores = &context.stores;
    let name = wukong.metadata.name.clone().unwrap_or_default();
    let mut found = Vec::new();
    let mut check = |kind: &str, object: Option<(String, bool)>| {
        if let Some((object_name, ours)) = object
            && !ours
        {
            found.push((kind.to_string(), object_name));
        }
    };
    let probe = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let ours = meta.owner_references.iter().flatten().any(|owner| owner.controller == Some(true) && owner.uid == uid);
        (meta.name.clone().unwrap_or_default(), ours)
    };
    check("VirtualMachine", cached(&stores.virtual_machines, namespace, &vm_name(&name)).map(|vm| probe(&vm.metadata)));
    check("Secret", cached(&stores.secrets, namespace, &cloud_init_secret_name(&name)).map(|secret| probe(&secret.metadata)));
    for network in wukong.spec.networks.iter().filter(|network| has_attachment(network)) {
        let attachment = cached(&stores.attachments, namespace, &attachment_name(&name, network));
        check("NetworkAttachmentDefinition", attachment.map(|attachment| probe(&attachment.metadata)));
    }
    for disk in wukong.spec.disks.iter() {
        let volume = volume_name(&name, disk);
        if disk.image.is_some()
            || disk.existing_pvc.as_ref().is_some_and(|existing| existing.namespace.as_deref().is_some_and(|other| other != namespace))
        {
            check("DataVolume", cached(&stores.data_volumes, namespace, &volume).map(|data_volume| probe(&data_volume.metadata)));
        } else if disk.existing_pvc.is_none() {
            check("PersistentVolumeClaim", cached(&stores.claims, namespace, &volume).map(|claim| probe(&claim.metadata)));
        }
    }
    found
}

/// Others in `namespace` that use the claim read-write: VirtualMachines other
/// than this Wukong's, and older Wukongs that reference it without `readOnly`.
fn read_write_users(context: &Context, wukong: &Wukong, namespace: &str, claim: &str) -> Vec<String> {
    let own_vm = vm_name(wukong.metadata.name.as_deref().unwrap_or_default());
    let mut users: Vec<String> = context
        .stores
        .virtual_machines
        .state_filter(|vm| vm.metadata.namespace.as_deref() == Some(namespace) && vm.metadata.name.as_deref() != Some(own_vm.as_str()))
        .iter()
        .filter(|vm| vm_uses_claim_read_write(vm, claim))
        .map(|vm| format!("VirtualMachine \"{namespace}/{}\"", vm.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let others = context.stores.wukongs.state_filter(|other| {
        other.metadata.namespace.as_deref() == Some(namespace) && other.metadata.name != wukong.metadata.name && is_older(other, wukong)
    });
    for other in others {
        if wukong_uses_claim_read_write(&other, namespace, claim) {
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
fn is_older(other: &DynamicObject, wukong: &Wukong) -> bool {
    let key = |created: Option<String>, name: Option<&String>| (created.unwrap_or_default(), name.cloned().unwrap_or_default());
    let other_key = key(other.metadata.creation_timestamp.as_ref().map(|time| time.0.to_string()), other.metadata.name.as_ref());
    let own_key = key(wukong.metadata.creation_timestamp.as_ref().map(|time| time.0.to_string()), wukong.metadata.name.as_ref());
    other_key < own_key
}

fn wukong_uses_claim_read_write(other: &DynamicObject, namespace: &str, claim: &str) -> bool {
    let disks = other.data.pointer("/spec/disks").and_then(serde_json::Value::as_array);
    disks.into_iter().flatten().any(|disk| {
        let Some(existing) = disk.get("existingPVC") else {
            return false;
        };
        let name = existing.get("name").and_then(serde_json::Value::as_str);
        let claim_namespace = existing.get("namespace").and_then(serde_json::Value::as_str).unwrap_or(namespace);
        let read_only = existing.get("readOnly").and_then(serde_json::Value::as_bool).unwrap_or(false);
        name == Some(claim) && claim_namespace == namespace && !read_only
    })
}

/// Whether claims of `class` (`""`: the default class) bind on first consumer.
fn storage_class_waits(context: &Context, class: &str) -> bool {
    let classes = context.stores.storage_classes.state();
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

async fn read_password(context: &Context, namespace: &str, name: &str, key: &str) -> Result<PasswordLookup, DereferenceError> {
    let api: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|source| DereferenceError::ReadSecret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    })?;
    let Some(secret) = secret else {
        return Ok(PasswordLookup::SecretMissing);
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).trim_end_matches('\n').to_string());
    Ok(value.map_or(PasswordLookup::KeyMissing, PasswordLookup::Found))
}
