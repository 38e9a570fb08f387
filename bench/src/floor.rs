//! The floors: what a plain parallel client needs for the run's API work.
//!
//! In: a client, a namespace, the parallelism, how many writes the run made,
//! how many objects its delete removed, and how big an object is. Out:
//! [`Floors`]: the seconds to create that many ConfigMaps of that size, and
//! the seconds to delete that many. No operator, no watch, no status: the
//! least time the API server needs for the same number of writes.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

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
    /// Bytes of payload in each object.
    pub object_bytes: usize,
    /// Requests in flight.
    pub parallelism: usize,
}

/// Times a plain client creating `work.writes` ConfigMaps, then deleting
/// `work.deletes` of them (creating any missing first, untimed).
pub async fn measure(client: &Client, namespace: &str, work: FloorWork) -> Result<Floors, BenchError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let payload = "x".repeat(work.object_bytes);
    let started = Instant::now();
    create(&api, &payload, 0..work.writes, work.parallelism).await?;
    let create_seconds = started.elapsed().as_secs_f64();
    create(&api, &payload, work.writes..work.deletes.max(work.writes), work.parallelism).await?;
    let started = Instant::now();
    let results: Vec<Result<(), BenchError>> = stream::iter(0..work.deletes)
        .map(|index| {
            let api = api.clone();
            async move {
                let name = name(index);
                api.delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ())
                    .map_err(api_error(format!("delete the floor's ConfigMap \"{name}\"")))
            }
        })
        .buffer_unordered(work.parallelism.max(1))
        .collect()
        .await;
    let delete_seconds = started.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(Floors { create_seconds, delete_seconds })
}

fn name(index: usize) -> String {
    format!("floor-{index:06}")
}

async fn create(api: &Api<ConfigMap>, payload: &str, indices: std::ops::Range<usize>, parallelism: usize) -> Result<(), BenchError> {
    let results: Vec<Result<(), BenchError>> = stream::iter(indices)
        .map(|index| {
            let api = api.clone();
            let name = name(index);
            let object = ConfigMap {
                metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                data: Some(BTreeMap::from([("payload".to_string(), payload.to_string())])),
                ..ConfigMap::default()
            };
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .map(|_| ())
                    .map_err(api_error(format!("create the floor's ConfigMap \"{name}\"")))
            }
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}
