//! IPLeases in the API server: the lock on each address, and the duties of
//! the kind declared once.
//!
//! In: the client, a Wukong's identity and the lease it wants. Out: leases
//! created (the create of a deterministic name is the atomic lock: exactly one
//! creator wins, `AlreadyExists` tells the others), read, marked for release
//! after an instance, deleted with preconditions, and listed by holder with a
//! consistent read. Leases are cluster-scoped and a cluster-scoped object may
//! not be owned by a namespaced Wukong (the garbage collector would delete
//! it), so they are not a `ChildKind`: they are released explicitly, and
//! their permissions ([`PERMISSIONS`]) and watch are registered here and in
//! `controller::mod` beside the child kinds'.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

use crate::addresses::names::label_value;
use crate::api::{GROUP, IPLease, IPLeaseSpec, IPPool};
use crate::children::Permission;
use crate::children::meta::{MANAGED_BY_LABEL, MANAGER};
use crate::controller::context::Stores;

/// Label: the pool of a lease (a label value, hashed when the name is not one).
pub const POOL_LABEL: &str = "vm.novasphere.dev/pool";
/// Label: the UID of the Wukong holding a lease.
pub const HOLDER_UID_LABEL: &str = "vm.novasphere.dev/holder-uid";
/// Label: the namespace of the Wukong holding a lease.
pub const HOLDER_NAMESPACE_LABEL: &str = "vm.novasphere.dev/holder-namespace";

/// The API access leases and pools need: leases are created, read (after an
/// `AlreadyExists`), listed by holder, watched, marked and deleted; pools are
/// watched, get the operator's finalizer and a status.
pub const PERMISSIONS: &[Permission] = &[
    Permission { group: GROUP, resource: "ipleases", verbs: &["get", "list", "watch", "create", "patch", "delete"] },
    Permission { group: GROUP, resource: "ippools", verbs: &["list", "watch", "patch"] },
    Permission { group: GROUP, resource: "ippools/status", verbs: &["patch"] },
];

/// The label selector of the operator's lease cache: its own leases.
pub fn cache_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER}")
}

/// A lease as the operator creates it.
pub fn lease(name: &str, spec: IPLeaseSpec, pool: Option<&IPPool>) -> IPLease {
    let mut labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        (HOLDER_UID_LABEL.to_string(), label_value(&spec.holder.uid)),
        (HOLDER_NAMESPACE_LABEL.to_string(), label_value(&spec.holder.namespace)),
    ]);
    if let Some(pool) = &spec.pool {
        labels.insert(POOL_LABEL.to_string(), label_value(pool));
    }
    // Not a controller and not blocking: the pool's finalizer holds it while leases exist.
    let owner = pool.and_then(|pool| {
        Some(OwnerReference {
            api_version: IPPool::api_version(&()).into_owned(),
            kind: IPPool::kind(&()).into_owned(),
            name: pool.name_any(),
            uid: pool.uid()?,
            ..OwnerReference::default()
        })
    });
    let metadata = ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels),
        owner_references: owner.map(|owner| vec![owner]),
        ..ObjectMeta::default()
    };
    IPLease { metadata, spec }
}

/// Errors of lease requests.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} IPLease \"{name}\": {source}")]
pub struct LeaseError {
    /// What was attempted: `create`, `read`, `list`, `mark`, `delete`.
    pub action: &'static str,
    /// The lease (or the holder's UID for a list).
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// The outcome of a create.
pub enum Created {
    /// The lease is ours now.
    Won(IPLease),
    /// Someone holds the name: the lease as it is (`None` if it went meanwhile).
    Taken(Option<IPLease>),
}

fn api(client: &Client) -> Api<IPLease> {
    Api::all(client.clone())
}

fn is_code(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Creates `lease`; on `AlreadyExists` reads the holder's.
pub async fn create(client: &Client, lease: &IPLease) -> Result<Created, LeaseError> {
    let name = lease.name_any();
    match api(client).create(&PostParams::default(), lease).await {
        Ok(created) => Ok(Created::Won(created)),
        Err(error) if is_code(&error, 409) => match api(client).get_opt(&name).await {
            Ok(existing) => Ok(Created::Taken(existing)),
            Err(source) => Err(LeaseError { action: "read", name, source }),
        },
        Err(source) => Err(LeaseError { action: "create", name, source }),
    }
}

/// Every lease the cache shows the Wukong with `uid` holding.
pub fn cached_held_by(stores: &Stores, uid: &str) -> Vec<IPLease> {
    stores.leases_held_by(uid).iter().map(|lease| (**lease).clone()).collect()
}

/// Every lease held by the Wukong with `uid`, read from the API server
/// (a consistent read, not the cache).
pub async fn held_by(client: &Client, uid: &str) -> Result<Vec<IPLease>, LeaseError> {
    let selector = format!("{HOLDER_UID_LABEL}={}", label_value(uid));
    let listed = api(client).list(&ListParams::default().labels(&selector)).await;
    let listed = listed.map_err(|source| LeaseError { action: "list", name: uid.to_string(), source })?;
    Ok(listed.items.into_iter().filter(|lease| lease.spec.holder.uid == uid).collect())
}

/// Deletes `lease` if it is still the object read (same UID and
/// resourceVersion): a lease someone re-created meanwhile is not touched.
pub async fn delete(client: &Client, lease: &IPLease) -> Result<(), LeaseError> {
    let name = lease.name_any();
    let preconditions = Preconditions { uid: lease.uid(), resource_version: lease.resource_version() };
    let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::background() };
    match api(client).delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(error) if is_code(&error, 404) || is_code(&error, 409) => Ok(()),
        Err(source) => Err(LeaseError { action: "delete", name, source }),
    }
}

/// The merge patch that sets or clears `spec.releaseAfterInstance`.
#[derive(Serialize, Debug)]
struct MarkPatch<'a> {
    metadata: MarkMetadata<'a>,
    spec: MarkSpec<'a>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct MarkMetadata<'a> {
    resource_version: Option<&'a str>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct MarkSpec<'a> {
    release_after_instance: Option<&'a str>,
}

/// Records on `lease` the instance after which it is released (`None` clears
/// it). The patch carries the resourceVersion read, so it applies only to
/// that lease.
pub async fn mark(client: &Client, lease: &IPLease, instance: Option<&str>) -> Result<(), LeaseError> {
    let name = lease.name_any();
    let version = lease.resource_version();
    let patch =
        MarkPatch { metadata: MarkMetadata { resource_version: version.as_deref() }, spec: MarkSpec { release_after_instance: instance } };
    match api(client).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(error) if is_code(&error, 404) => Ok(()),
        Err(source) => Err(LeaseError { action: "mark", name, source }),
    }
}

/// Releases `held`, the leases the cache shows a deleted Wukong holding (its
/// VM is gone): used by its cleanup before its finalizer goes. No list: a
/// consistent list is served from etcd and decodes every lease in the cluster,
/// once per deleted Wukong; a lease the cache does not show yet is released
/// by the sweep ([`super::sweep`]) once its holder is gone. Returns the
/// released leases' names.
pub async fn release_all(client: &Client, held: &[IPLease]) -> Result<Vec<String>, LeaseError> {
    let mut released = Vec::new();
    for lease in held {
        delete(client, lease).await?;
        released.push(format!("IPLease {} ({})", lease.name_any(), lease.spec.address));
    }
    Ok(released)
}
