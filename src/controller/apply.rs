//! The apply step: make the cluster hold exactly the planned children.
//!
//! In: the validated Wukong, its plan, the builders' inputs and what the
//! caches hold. Out: every registered kind's children built and applied with
//! server-side apply (one field manager, `force`) when they differ from the
//! cache, a grown imported disk's claim resized, children the plan no longer
//! has deleted (or released, for `Retain` volumes), and the objects as the API
//! server returned them. Existing claims are never touched: only objects this
//! Wukong controls are ever deleted or released.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::context::Context;
use super::diff::holds;
use super::observe::Observed;
use super::ownership::{DELETION_POLICY_ANNOTATION, RETAINED_FROM_ANNOTATION};
use crate::children::meta::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, NAME_LABEL};
use crate::children::plan::{Plan, Volume};
use crate::children::{BuildInputs, ChildKind, EachKind, for_each_kind};
use crate::validate::{ValidWukong, quantity};

/// Errors of the apply step.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Server-side apply of a child failed.
    #[error("failed to apply {kind} \"{namespace}/{name}\": {source}")]
    Apply {
        /// Kind of the child.
        kind: String,
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
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// What the apply (or cleanup) step changed.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Children written, as "Kind name".
    pub written: Vec<String>,
    /// Children deleted, as "Kind name".
    pub deleted: Vec<String>,
    /// Volumes released because their disk says Retain, as "Kind name".
    pub released: Vec<String>,
}

/// What the apply step did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The writes, deletions and releases.
    pub changes: Changes,
    /// What the caches showed, with the children as the API server returned them.
    pub observed: Observed,
}

/// One kind's part of a pass: its changes and how its objects update the observation.
pub(super) struct KindOutcome {
    /// What the kind's step changed.
    pub changes: Changes,
    update: Box<dyn FnOnce(&mut Observed) + Send>,
}

/// A kind's part of a pass, not yet run.
pub(super) type KindStep<'a> = Pin<Box<dyn Future<Output = Result<KindOutcome, ApplyError>> + Send + 'a>>;

/// Applies every planned child and, when `scan_for_orphans` (the spec changed
/// since the last status), removes the ones the plan no longer has.
pub async fn apply(
    context: &Context,
    wukong: &ValidWukong,
    plan: &Plan,
    inputs: &BuildInputs,
    before: &Observed,
    scan_for_orphans: bool,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied { observed: before.clone(), ..Applied::default() };
    let mut steps = ApplyKinds { context, wukong, plan, inputs, before, steps: Vec::new() };
    for_each_kind(&mut steps);
    let mut waves: BTreeMap<u8, Vec<KindStep<'_>>> = BTreeMap::new();
    for (wave, step) in steps.steps {
        waves.entry(wave).or_default().push(step);
    }
    // The kinds of a wave do not depend on each other: their writes go out together.
    for wave in waves.into_values() {
        for outcome in futures::future::try_join_all(wave).await? {
            merge(&mut applied.changes, outcome.changes);
            (outcome.update)(&mut applied.observed);
        }
    }
    applied.observed.refresh_volumes();
    let grown = grow_imported_claims(&context.client, wukong, plan, before, &mut applied.changes).await?;
    for claim in grown {
        let name = claim.metadata.name.clone();
        applied.observed.volume_claims.retain(|known| known.metadata.name != name);
        applied.observed.volume_claims.push(claim);
    }
    if scan_for_orphans {
        let uid = wukong.uid.clone().unwrap_or_default();
        let owner = format!("{}/{}", wukong.namespace, wukong.name);
        let mut orphans =
            RemoveKinds { context, namespace: &wukong.namespace, uid: &uid, owner: &owner, plan: Some(plan), steps: Vec::new() };
        for_each_kind(&mut orphans);
        for step in orphans.steps {
            merge(&mut applied.changes, step.await?.changes);
        }
    }
    Ok(applied)
}

fn merge(into: &mut Changes, from: Changes) {
    into.written.extend(from.written);
    into.deleted.extend(from.deleted);
    into.released.extend(from.released);
}

/// Builds the apply step of every kind.
struct ApplyKinds<'a> {
    context: &'a Context,
    wukong: &'a ValidWukong,
    plan: &'a Plan,
    inputs: &'a BuildInputs,
    /// What the observe step found: a planned child's current object is its own (any other with the name was
    /// refused before apply, as a name conflict), read from the caches once per pass.
    before: &'a Observed,
    /// Each kind's step with its wave.
    steps: Vec<(u8, KindStep<'a>)>,
}

impl<'a> EachKind for ApplyKinds<'a> {
    fn kind<K: ChildKind>(&mut self) {
        let desired = K::build(self.wukong, self.plan, self.inputs);
        let (context, before) = (self.context, self.before);
        self.steps.push((
            K::WAVE,
            Box::pin(async move {
                let mut changes = Changes::default();
                let mut objects = Vec::with_capacity(desired.len());
                for mut object in desired {
                    let current = before.named::<K>(&object.name_any()).cloned();
                    if let Some(current) = &current {
                        K::prepare(&mut object, current);
                    }
                    objects.push(ensure(context, object, current, &mut changes.written).await?);
                }
                let update: Box<dyn FnOnce(&mut Observed) + Send> = Box::new(move |observed: &mut Observed| observed.set(objects));
                Ok(KindOutcome { changes, update })
            }),
        ));
    }
}

/// Applies `desired` unless `current` (or this operator's last write of it,
/// when the cache does not show that yet) already holds it; returns the object
/// as it is now.
async fn ensure<K: ChildKind>(
    context: &Context,
    desired: K,
    current: Option<Arc<K>>,
    written: &mut Vec<String>,
) -> Result<Arc<K>, ApplyError> {
    let current = context.recent.newest(current, &desired.namespace().unwrap_or_default(), &desired.name_any());
    if let Some(current) = current
        && holds(&desired, &current)
    {
        return Ok(current);
    }
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let kind = K::kind(&()).into_owned();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let mut result = api
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&desired))
        .await
        .map_err(|source| ApplyError::Apply { kind: kind.clone(), namespace: namespace.clone(), name: name.clone(), source })?;
    written.push(format!("{kind} {name}"));
    result.trim();
    Ok(context.recent.wrote(result))
}

/// Grows the claims CDI made for imported disks whose size went up (a
/// DataVolume's own spec cannot change). Returns the claims it resized.
async fn grow_imported_claims(
    client: &Client,
    wukong: &ValidWukong,
    plan: &Plan,
    before: &Observed,
    changes: &mut Changes,
) -> Result<Vec<Arc<PersistentVolumeClaim>>, ApplyError> {
    let mut grown = Vec::new();
    for ((disk, planned), bytes) in wukong.spec.disks.iter().zip(&plan.disks).zip(&wukong.disk_sizes) {
        let (Volume::DataVolume(name), Some(_), Some(size), Some(bytes)) = (&planned.volume, &disk.image, &disk.size, bytes) else {
            continue;
        };
        let Some(claim) = before.volume_claim(name) else { continue };
        let current = claim.spec.as_ref().and_then(|spec| spec.resources.as_ref()).and_then(|resources| resources.requests.as_ref());
        let current_bytes = current.and_then(|requests| requests.get("storage")).and_then(|quantity| quantity::parse(&quantity.0).ok());
        if current_bytes.is_none_or(|current| current >= *bytes) {
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
        let result = api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await.map_err(|source| {
            ApplyError::Apply { kind: "PersistentVolumeClaim".to_string(), namespace: wukong.namespace.clone(), name: name.clone(), source }
        })?;
        changes.written.push(format!("PersistentVolumeClaim {name}"));
        grown.push(Arc::new(result));
    }
    Ok(grown)
}

/// Builds, for every kind, the removal of the objects a Wukong controls that
/// `plan` does not have (all of them when there is no plan: the Wukong is going).
pub(super) struct RemoveKinds<'a> {
    /// The client and caches.
    pub context: &'a Context,
    /// The Wukong's namespace.
    pub namespace: &'a str,
    /// The Wukong's UID.
    pub uid: &'a str,
    /// `namespace/name` of the Wukong, recorded on released volumes.
    pub owner: &'a str,
    /// The children to keep.
    pub plan: Option<&'a Plan>,
    /// The removals, one per kind.
    pub steps: Vec<KindStep<'a>>,
}

impl<'a> EachKind for RemoveKinds<'a> {
    fn kind<K: ChildKind>(&mut self) {
        let plan = self.plan;
        let unwanted: Vec<Arc<K>> = self
            .context
            .stores
            .owned::<K>(self.namespace, self.uid)
            .into_iter()
            .filter(|object| plan.is_none_or(|plan| !plan.wants::<K>(&object.name_any())))
            .collect();
        let (context, owner) = (self.context, self.owner);
        self.steps.push(Box::pin(async move {
            let mut changes = Changes::default();
            for object in unwanted {
                let retain = K::RETAINABLE && is_retained(object.meta());
                remove::<K>(context, &object, retain, owner, &mut changes).await?;
            }
            Ok(KindOutcome { changes, update: Box::new(|_: &mut Observed| {}) })
        }));
    }
}

/// Whether an object carries the Retain deletion policy.
pub fn is_retained(metadata: &kube::api::ObjectMeta) -> bool {
    metadata.annotations.as_ref().and_then(|annotations| annotations.get(DELETION_POLICY_ANNOTATION)).map(String::as_str) == Some("Retain")
}

/// Deletes an owned child, or releases it (drops the owner reference and the
/// operator's labels, records where it came from) when `retain` is set.
pub async fn remove<K: ChildKind>(
    context: &Context,
    object: &K,
    retain: bool,
    owner: &str,
    changes: &mut Changes,
) -> Result<(), ApplyError> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let kind = K::kind(&()).into_owned();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let error = |source| ApplyError::Remove { kind: kind.clone(), namespace: namespace.clone(), name: name.clone(), source };
    if retain {
        let patch = serde_json::json!({
            "metadata": {
                "ownerReferences": null,
                "labels": {NAME_LABEL: null, INSTANCE_LABEL: null, MANAGED_BY_LABEL: null},
                "annotations": {RETAINED_FROM_ANNOTATION: owner},
            }
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(error)?;
        changes.released.push(format!("{kind} {name}"));
    } else {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(error(source)),
        }
        changes.deleted.push(format!("{kind} {name}"));
    }
    Ok(())
}
