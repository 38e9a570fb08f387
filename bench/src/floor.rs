//! The floors: what a plain parallel client needs for the run's API work.
//!
//! In: a client, a namespace, the parallelism, how many writes the run made,
//! how many objects its delete removed (how many of them claims), and how big
//! an object is. Out: [`Floors`]: the seconds to create that many ConfigMaps of
//! that size, and the seconds to delete that many objects — as many of them
//! PersistentVolumeClaims as the run's delete removed, waited for until gone,
//! because a claim carries the API server's `kubernetes.io/pvc-protection`
//! finalizer, which kube-controller-manager removes at its own client's pace
//! (20 requests/s by default) whoever deletes the claim. No operator, no watch,
//! no status: the least time the cluster needs for the same work.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::run::{BenchError, api_error};

/// Object size when the run left no VirtualMachine to measure.
pub const DEFAULT_OBJECT_BYTES: usize = 4096;

/// The floors' times.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Floors {
    /// Seconds to create the run's number of writes as ConfigMaps.
    pub create_seconds: f64,
    /// Seconds to delete the number of objects the run's delete removed.
    pub delete_seconds: f64,
}

/// What the floors reproduce.
#[derive(Clone, Copy, Debug)]
pub struct FloorWork {
    /// Objects to create (the run's writes).
    pub writes: usize,
    /// Objects to delete (the objects the run's delete removed).
    pub deletes: usize,
    /// How many of `deletes` are PersistentVolumeClaims.
    pub claims: usize,
    /// Bytes of payload in each object.
    pub object_bytes: usize,
    /// Requests in flight.
    pub parallelism: usize,
}

/// Times a plain client creating `work.writes` ConfigMaps, then deleting
/// `work.deletes` objects: `work.claims` claims and the rest ConfigMaps
/// (creating what is missing first, untimed), until the claims are gone.
pub async fn measure(client: &Client, namespace: &str, work: FloorWork) -> Result<Floors, BenchError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let payload = "x".repeat(work.object_bytes);
    let started = Instant::now();
    create(&maps, 0..work.writes, work.parallelism, |name| config_map(name, &payload)).await?;
    let create_seconds = started.elapsed().as_secs_f64();
    let claim_count = work.claims.min(work.deletes);
    let map_count = work.deletes - claim_count;
    create(&maps, work.writes..map_count.max(work.writes), work.parallelism, |name| config_map(name, &payload)).await?;
    create(&claims, 0..claim_count, work.parallelism, claim).await?;
    let started = Instant::now();
    type Deletion<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BenchError>> + Send + 'a>>;
    let deletions = stream::iter(0..map_count)
        .map(|index| -> Deletion<'_> { Box::pin(delete(&maps, index)) })
        .chain(stream::iter(0..claim_count).map(|index| -> Deletion<'_> { Box::pin(delete(&claims, index)) }))
        .buffer_unordered(work.parallelism.max(1))
        .collect::<Vec<Result<(), BenchError>>>()
        .await;
    deletions.into_iter().collect::<Result<Vec<()>, _>>()?;
    wait_gone(&claims).await?;
    let delete_seconds = started.elapsed().as_secs_f64();
    Ok(Floors { create_seconds, delete_seconds })
}

/// Deletes the floor's object number `index`.
async fn delete<K>(api: &Api<K>, index: usize) -> Result<(), BenchError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = name(index);
    api.delete(&name, &DeleteParams::background())
        .await
        .map(|_| ())
        .map_err(api_error(format!("delete the floor's {} \"{name}\"", K::kind(&()))))
}

/// Waits until no floor claim is left (their protection finalizer removed).
async fn wait_gone(claims: &Api<PersistentVolumeClaim>) -> Result<(), BenchError> {
    loop {
        let left = claims.list_metadata(&ListParams::default()).await.map_err(api_error("list the floor's claims"))?;
        if left.items.iter().all(|claim| !claim.name_any().starts_with(FLOOR_PREFIX)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn config_map(name: String, payload: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("payload".to_string(), payload.to_string())])),
        ..ConfigMap::default()
    }
}

/// A claim like a blank disk's (no storage class: it stays Pending, which
/// does not change how it is deleted).
fn claim(name: String) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(name), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity("1Gi".to_string()))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The floor's objects' names begin so.
const FLOOR_PREFIX: &str = "floor-";

fn name(index: usize) -> String {
    format!("{FLOOR_PREFIX}{index:06}")
}

async fn create<K>(
    api: &Api<K>,
    indices: std::ops::Range<usize>,
    parallelism: usize,
    object: impl Fn(String) -> K,
) -> Result<(), BenchError>
where
    K: kube::Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let results: Vec<Result<(), BenchError>> = stream::iter(indices)
        .map(|index| {
            let api = api.clone();
            let name = name(index);
            let object = object(name.clone());
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .map(|_| ())
                    .map_err(api_error(format!("create the floor's {} \"{name}\"", K::kind(&()))))
            }
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
