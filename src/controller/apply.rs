//! Step 4 of a reconcile: make the cluster hold exactly the built children.
//!
//! In: the built children, the validated Wukong and what the caches hold. Out:
//! every child applied with server-side apply (one field manager, `force`) when
//! it differs from the cache, a grown imported disk's claim resized, children
//! the spec no longer wants deleted (or released, for `Retain` volumes), and the
//! objects as the API server returned them. Existing claims are never touched:
//! only objects this Wukong controls are ever deleted or released.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;

use super::context::Context;
use super::dereference::Observed;
use super::diff::is_applied;
use super::ownership::{DELETION_POLICY_ANNOTATION, RETAINED_FROM_ANNOTATION, cached, owned};
use crate::build::Children;
use crate::build::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, NAME_LABEL};
use crate::validate::{ValidWukong, quantity};

/// Errors of the apply step.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Server-side apply of a child failed.
    #[error("failed to apply {kind} \"{namespace}/{name}\": {source}")]
    Apply {
        /// Kind of the child.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting or releasing a child the spec no longer wants failed.
    #[error("failed to remove {kind} \"{namespace}/{name}\": {source}")]
    Remove {
        /// Kind of the child.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// The API error behind this failure.
    pub fn api_error(&self) -> &kube::Error {
        match self {
            Self::Apply { source, .. } | Self::Remove { source, .. } => source,
        }
    }
}

/// What the apply step did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Children written, as "Kind name".
    pub written: Vec<String>,
    /// Children deleted, as "Kind name".
    pub deleted: Vec<String>,
    /// Volumes released because their disk says Retain, as "Kind name".
    pub released: Vec<String>,
    /// The children as they are after this step.
    pub observed: Observed,
}

/// Applies the children and, when `scan_for_orphans` (the spec changed since
/// the last status, or a pass was cut short), removes the ones no longer wanted.
pub async fn apply(
    context: &Context,
    wukong: &ValidWukong,
    children: Children,
    before: &Observed,
    scan_for_orphans: bool,
) -> Result<Applied, ApplyError> {
    let client = &context.client;
    let stores = &context.stores;
    let namespace = wukong.namespace.as_str();
    let mut applied = Applied { observed: before.clone(), ..Applied::default() };

    let mut attachments = Vec::new();
    for attachment in children.attachments {
        let current = cached(&stores.attachments, namespace, &attachment.name_any());
        attachments.push(ensure(client, attachment, current, &mut applied.written).await?);
    }
    applied.observed.attachments = attachments;
    if let Some(secret) = children.cloud_init {
        let current = cached(&stores.secrets, namespace, &secret.name_any());
        applied.observed.secrets = vec![ensure(client, secret, current, &mut applied.written).await?];
    } else {
        applied.observed.secrets = Vec::new();
    }
    let mut claims = Vec::new();
    for claim in children.claims {
        let current = cached(&stores.claims, namespace, &claim.name_any());
        claims.push(ensure(client, claim, current, &mut applied.written).await?);
    }
    let mut data_volumes = Vec::new();
    for mut data_volume in children.data_volumes {
        let current = cached(&stores.data_volumes, namespace, &data_volume.name_any());
        if let Some(current) = &current {
            // A DataVolume's spec is immutable once created: keep it, reconcile only metadata.
            data_volume.spec = current.spec.clone();
        }
        data_volumes.push(ensure(client, data_volume, current, &mut applied.written).await?);
    }
    for claim in grow_imported_claims(client, wukong, before, &mut applied.written).await? {
        claims.push(claim);
    }
    // The claims CDI made for wanted DataVolumes are observed, not applied. Any
    // other claim from before is no longer wanted and must not be kept here, or
    // remove_unwanted would never delete (or release) it.
    for claim in &before.claims {
        let made_for_wanted_volume = data_volumes.iter().any(|volume| volume.metadata.name == claim.metadata.name);
        if made_for_wanted_volume && !claims.iter().any(|known| known.metadata.name == claim.metadata.name) {
            claims.push(claim.clone());
        }
    }
    applied.observed.claims = claims;
    applied.observed.data_volumes = data_volumes;
    let current = cached(&stores.virtual_machines, namespace, &children.virtual_machine.name_any());
    applied.observed.virtual_machine = Some(ensure(client, children.virtual_machine, current, &mut applied.written).await?);

    if scan_for_orphans {
        remove_unwanted(context, wukong, &applied.observed.clone(), &mut applied).await?;
    }
    Ok(applied)
}

/// Applies `desired` unless `current` already holds it; returns the object as it is now.
async fn ensure<K>(client: &Client, desired: K, current: Option<Arc<K>>, written: &mut Vec<String>) -> Result<Arc<K>, ApplyError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
{
    if let Some(current) = current {
        let wanted = serde_json::to_value(&desired).unwrap_or_default();
        let present = serde_json::to_value(current.as_ref()).unwrap_or_default();
        if is_applied(&wanted, &present) {
            return Ok(current);
        }
    }
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let result = api
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&desired))
        .await
        .map_err(|source| ApplyError::Apply { kind: kind_name::<K>(), namespace: namespace.clone(), name: name.clone(), source })?;
    written.push(format!("{} {name}", K::kind(&())));
    Ok(Arc::new(result))
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "VirtualMachine" => "VirtualMachine",
        "DataVolume" => "DataVolume",
        "PersistentVolumeClaim" => "PersistentVolumeClaim",
        "NetworkAttachmentDefinition" => "NetworkAttachmentDefinition",
        "Secret" => "Secret",
        _ => "object",
    }
}

/// Grows the claims CDI made for imported disks whose size went up (a
/// DataVolume's own spec cannot change). Returns the claims it resized.
async fn grow_imported_claims(
    client: &Client,
    wukong: &ValidWukong,
    before: &Observed,
    written: &mut Vec<String>,
) -> Result<Vec<Arc<PersistentVolumeClaim>>, ApplyError> {
    let mut grown = Vec::new();
    for (index, disk) in wukong.spec.disks.iter().enumerate() {
        if disk.image.is_none() {
            continue;
        }
        let (Some(size), Some(bytes)) = (&disk.size, wukong.disk_sizes.get(index).copied().flatten()) else { continue };
        let name = crate::build::storage::volume_name(&wukong.name, disk);
        let Some(claim) = before.claims.iter().find(|claim| claim.metadata.name.as_deref() == Some(name.as_str())) else { continue };
        let current = claim.spec.as_ref().and_then(|spec| spec.resources.as_ref()).and_then(|resources| resources.requests.as_ref());
        let current_bytes = current.and_then(|requests| requests.get("storage")).and_then(|quantity| quantity::parse(&quantity.0).ok());
        if current_bytes.is_none_or(|current| current >= bytes) {
            continue;
        }
        let patch = PersistentVolumeClaim {
            metadata: kube::api::ObjectMeta { name: Some(name.clone()), namespace: Some(wukong.namespace.clone()), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec {
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity(size.clone()))].into()),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        };
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &wukong.namespace);
        let result = api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await.map_err(|source| {
            ApplyError::Apply { kind: "PersistentVolumeClaim", namespace: wukong.namespace.clone(), name: name.clone(), source }
        })?;
        written.push(format!("PersistentVolumeClaim {name}"));
        grown.push(Arc::new(result));
    }
    Ok(grown)
}

/// Deletes owned children the spec no longer wants; releases Retain volumes.
async fn remove_unwanted(context: &Context, wukong: &ValidWukong, wanted: &Observed, applied: &mut Applied) -> Result<(), ApplyError> {
    let stores = &context.stores;
    let uid = wukong.uid.clone().unwrap_or_default();
    let namespace = wukong.namespace.as_str();
    let keep = |names: Vec<Option<String>>, object_name: &Option<String>| names.contains(object_name);

    let wanted_attachments: Vec<_> = wanted.attachments.iter().map(|object| object.metadata.name.clone()).collect();
    for object in owned(&stores.attachments, namespace, &uid) {
        if !keep(wanted_attachments.clone(), &object.metadata.name) {
            remove::<NetworkAttachmentDefinition>(context, &object, false, wukong, applied).await?;
        }
    }
    let wanted_secrets: Vec<_> = wanted.secrets.iter().map(|object| object.metadata.name.clone()).collect();
    for object in owned(&stores.secrets, namespace, &uid) {
        if !keep(wanted_secrets.clone(), &object.metadata.name) {
            remove::<Secret>(context, &object, false, wukong, applied).await?;
        }
    }
    let wanted_volumes: Vec<_> = wanted.data_volumes.iter().map(|object| object.metadata.name.clone()).collect();
    for object in owned(&stores.data_volumes, namespace, &uid) {
        if !keep(wanted_volumes.clone(), &object.metadata.name) {
            remove::<DataVolume>(context, &object, is_retained(&object.metadata), wukong, applied).await?;
        }
    }
    let wanted_claims: Vec<_> = wanted.claims.iter().map(|object| object.metadata.name.clone()).collect();
    for object in owned(&stores.claims, namespace, &uid) {
        if !keep(wanted_claims.clone(), &object.metadata.name) {
            remove::<PersistentVolumeClaim>(context, &object, is_retained(&object.metadata), wukong, applied).await?;
        }
    }
    Ok(())
}

/// Whether a volume carries the Retain deletion policy.
pub fn is_retained(metadata: &kube::api::ObjectMeta) -> bool {
    metadata.annotations.as_ref().and_then(|annotations| annotations.get(DELETION_POLICY_ANNOTATION)).map(String::as_str) == Some("Retain")
}

/// Deletes an owned child, or releases it (drops the owner reference and the
/// operator's labels, records where it came from) when `retain` is set.
pub async fn remove<K>(context: &Context, object: &K, retain: bool, wukong: &ValidWukong, applied: &mut Applied) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
{
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let error = |source| ApplyError::Remove { kind: kind_name::<K>(), namespace: namespace.clone(), name: name.clone(), source };
    if retain {
        let patch = serde_json::json!({
            "metadata": {
                "ownerReferences": null,
                "labels": {NAME_LABEL: null, INSTANCE_LABEL: null, MANAGED_BY_LABEL: null},
                "annotations": {RETAINED_FROM_ANNOTATION: format!("{}/{}", wukong.namespace, wukong.name)},
            }
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(error)?;
        applied.released.push(format!("{} {name}", K::kind(&())));
    } else {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(error(source)),
        }
        applied.deleted.push(format!("{} {name}", K::kind(&())));
    }
    Ok(())
}
