//! What a run has in its namespace.
//!
//! In: a client and the run's namespace. Out: how many children of the
//! registered kinds the operator labelled, how many objects the run made
//! (Wukongs, every object of a child kind, VirtualMachineInstances: what its
//! delete removes), and the size of one VirtualMachine as JSON (the size of
//! the floor's objects).

use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, Resource};
use wukong::api::Wukong;
use wukong::children::meta::{MANAGED_BY_LABEL, MANAGER};
use wukong::children::{ChildKind, EachKind, for_each_kind};
use wukong_models::virtualmachine::VirtualMachine;
use wukong_models::virtualmachineinstance::VirtualMachineInstance;

use crate::floor::DEFAULT_OBJECT_BYTES;
use crate::run::{BenchError, api_error};

/// How many children of every registered kind the operator labelled in `namespace`.
pub async fn count_children(client: &Client, namespace: &str) -> Result<usize, BenchError> {
    count_kinds(client, namespace, &ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"))).await
}

/// How many objects the run made in `namespace`: Wukongs, every object of a
/// child kind (the operator's and those the stand-in or CDI made, such as an
/// import's claim) and VirtualMachineInstances.
pub async fn created_objects(client: &Client, namespace: &str) -> Result<usize, BenchError> {
    let every = ListParams::default();
    let wukongs = count::<Wukong>(client, namespace, &every).await?;
    let children = count_kinds(client, namespace, &every).await?;
    let instances = match count::<VirtualMachineInstance>(client, namespace, &every).await {
        Err(BenchError::Api { source: kube::Error::Api(status), .. }) if status.code == 404 => 0,
        other => other?,
    };
    Ok(wukongs + children + instances)
}

/// How many PersistentVolumeClaims `namespace` holds (the operator's and those the stand-in or CDI made).
pub async fn count_claims(client: &Client, namespace: &str) -> Result<usize, BenchError> {
    count::<PersistentVolumeClaim>(client, namespace, &ListParams::default()).await
}

/// Bytes of one of the run's VirtualMachines as JSON, `managedFields` left
/// out; [`DEFAULT_OBJECT_BYTES`] when there is none.
pub async fn object_bytes(client: &Client, namespace: &str) -> Result<usize, BenchError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<VirtualMachine>(&()));
    let listed = api.list(&ListParams::default().limit(1)).await.map_err(api_error("list VirtualMachines"))?;
    let Some(mut machine) = listed.items.into_iter().next() else { return Ok(DEFAULT_OBJECT_BYTES) };
    machine.metadata.managed_fields = None;
    Ok(serde_json::to_vec(&machine).map_or(DEFAULT_OBJECT_BYTES, |bytes| bytes.len()))
}

/// How many objects of every registered child kind in `namespace` match `selector`.
async fn count_kinds(client: &Client, namespace: &str, selector: &ListParams) -> Result<usize, BenchError> {
    type Count<'a> = Pin<Box<dyn Future<Output = Result<usize, BenchError>> + Send + 'a>>;
    struct Counts<'a> {
        client: &'a Client,
        namespace: &'a str,
        selector: &'a ListParams,
        counts: Vec<Count<'a>>,
    }
    impl<'a> EachKind for Counts<'a> {
        fn kind<K: ChildKind>(&mut self) {
            let (client, namespace, selector) = (self.client, self.namespace, self.selector);
            self.counts.push(Box::pin(count::<K>(client, namespace, selector)));
        }
    }
    let mut counts = Counts { client, namespace, selector, counts: Vec::new() };
    for_each_kind(&mut counts);
    let mut total = 0;
    for count in counts.counts {
        total += count.await?;
    }
    Ok(total)
}

/// How many objects of a kind in `namespace` match `selector`.
async fn count<K>(client: &Client, namespace: &str, selector: &ListParams) -> Result<usize, BenchError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let listed = api.list_metadata(selector).await.map_err(api_error(format!("list {}", K::plural(&()))))?;
    Ok(listed.items.len())
}
