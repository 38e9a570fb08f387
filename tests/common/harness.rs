//! A controller harness over the in-memory API server.
//!
//! In: objects seeded into a [`FakeApi`]. Out: the real reconcile function run
//! against it, with the controller's watch caches filled from the fake's state
//! before every pass (as the reflectors would after their watch events).

#![allow(dead_code)]
#![allow(clippy::expect_used, reason = "test support: a failed expectation is a failed test")]

use std::sync::{Arc, Mutex};

use k8s_openapi::api::storage::v1::StorageClass;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::reflector;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wukong::api::{GuardedWukong, IPLease, IPPool};
use wukong::children::meta::{MANAGED_BY_LABEL, MANAGER};
use wukong::children::{ChildKind, EachKind, for_each_kind};
use wukong::controller::by_kind::ByKind;
use wukong::controller::context::{Context, KindCache, Stores, holder_key};
use wukong::controller::events::{Recorder, Reporter};
use wukong::controller::index::Index;
use wukong::controller::instances::CachedInstance;
use wukong::controller::reconcile::{Error, reconcile};
use wukong::controller::watches::trim_metadata;
use wukong::controller::wukong_resource;

use super::fake_api::{FakeApi, Request};
use super::fixtures::{DATA_PVC, WEB};

/// Refills one child kind's cache from the fake.
type Refill = Box<dyn FnMut(&FakeApi) + Send>;

/// The writers behind the controller's caches.
struct Writers {
    wukongs: Writer<GuardedWukong>,
    instances: Writer<CachedInstance>,
    storage_classes: Writer<StorageClass>,
    pools: Writer<IPPool>,
    leases: Writer<IPLease>,
    /// One refill per registered child kind.
    children: Vec<Refill>,
}

/// The fake cluster plus the controller's context.
pub struct Harness {
    /// The in-memory API server.
    pub api: FakeApi,
    /// The context reconcile runs with.
    pub context: Arc<Context>,
    writers: Mutex<Writers>,
    clock: Arc<Mutex<String>>,
}

fn refill<K>(writer: &mut Writer<K>, objects: Vec<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    refill_indexed(writer, None, objects);
}

/// Refills a cache, and its index as the controller's watch keeps it.
fn refill_indexed<K>(writer: &mut Writer<K>, index: Option<&Index<K>>, objects: Vec<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    for event in relist(objects) {
        writer.apply_watcher_event(&event);
        if let Some(index) = index {
            index.apply(&event);
        }
    }
}

/// The events of a relist that finds `objects`.
fn relist<K>(objects: Vec<K>) -> impl Iterator<Item = watcher::Event<K>> {
    std::iter::once(watcher::Event::Init)
        .chain(objects.into_iter().map(watcher::Event::InitApply))
        .chain(std::iter::once(watcher::Event::InitDone))
}

fn typed<K: DeserializeOwned>(api: &FakeApi, api_version: &str, plural: &str) -> Vec<K> {
    api.list(api_version, plural).into_iter().filter_map(|object| serde_json::from_value(object).ok()).collect()
}

/// Makes a cache and its refill for every registered child kind.
struct ChildCaches {
    stores: ByKind,
    refills: Vec<Refill>,
}

impl EachKind for ChildCaches {
    fn kind<K: ChildKind>(&mut self) {
        let cache = KindCache::<K>::new();
        self.stores.insert(cache.clone());
        self.refills.push(Box::new(move |api: &FakeApi| {
            let objects: Vec<K> = typed(api, &K::api_version(&()), &K::plural(&()));
            // The caches hold what the controller's watch selects, trimmed as the watch trims it.
            let selected = objects.into_iter().filter(|object| selected::<K>(object)).map(|mut object| {
                trim_metadata(&mut object);
                object.trim();
                object
            });
            for event in relist(selected.collect()) {
                cache.apply(&event);
            }
        }));
    }
}

/// Whether the operator's cache of kind `K` holds `object` (its label selector, `key=value` only).
fn selected<K: ChildKind>(object: &K) -> bool {
    let Some(selector) = K::cache_selector() else { return true };
    selector.split(',').all(|requirement| {
        let (key, value) = requirement.split_once('=').unwrap_or((requirement, ""));
        object.meta().labels.as_ref().and_then(|labels| labels.get(key)).map(String::as_str) == Some(value)
    })
}

impl Harness {
    /// A harness with an empty cluster; must be created inside a Tokio runtime.
    pub fn new() -> Harness {
        Harness::with_pacing(wukong::controller::status::pacing::Pacing::IMMEDIATE)
    }

    /// A harness whose controller paces status writes so.
    pub fn with_pacing(pacing: wukong::controller::status::pacing::Pacing) -> Harness {
        let api = FakeApi::new();
        let client = api.client();
        let (wukongs, wukong_writer) = reflector::store();
        let (instances, instance_writer) = reflector::store();
        let (storage_classes, class_writer) = reflector::store();
        let (pools, pool_writer) = reflector::store();
        let (leases, lease_writer) = reflector::store();
        let mut caches = ChildCaches { stores: ByKind::default(), refills: Vec::new() };
        for_each_kind(&mut caches);
        let lease_holders = Index::new(holder_key);
        let stores = Stores { wukongs, instances, storage_classes, children: caches.stores, pools, leases, lease_holders };
        let clock = Arc::new(Mutex::new("2026-11-22T10:00:00Z".to_string()));
        let clock_reader = clock.clone();
        let context = Arc::new(Context {
            client: client.clone(),
            stores,
            recorder: Recorder::new(client, Reporter { controller: "wukong-operator".to_string(), instance: None }),
            clock: Arc::new(move || clock_reader.lock().map(|time| time.clone()).unwrap_or_default()),
            metrics: wukong::controller::metrics::Metrics::new().expect("fresh metrics"),
            pacing,
            status_writes: Arc::default(),
            failures: Arc::default(),
            recent: Arc::default(),
        });
        let writers = Writers {
            wukongs: wukong_writer,
            instances: instance_writer,
            storage_classes: class_writer,
            pools: pool_writer,
            leases: lease_writer,
            children: caches.refills,
        };
        let harness = Harness { api, context, writers: Mutex::new(writers), clock };
        harness.sync();
        harness
    }

    /// Sets the time the controller sees.
    pub fn set_time(&self, time: &str) {
        *self.clock.lock().expect("clock lock") = time.to_string();
    }

    /// Refills every cache from the fake's current state.
    pub fn sync(&self) {
        let api = &self.api;
        let mut writers = self.writers.lock().expect("writers lock");
        refill(&mut writers.wukongs, typed(api, "vm.novasphere.dev/v1alpha1", "wukongs"));
        let instances: Vec<CachedInstance> = typed(api, "kubevirt.io/v1", "virtualmachineinstances");
        refill(&mut writers.instances, instances);
        refill(&mut writers.storage_classes, typed(api, "storage.k8s.io/v1", "storageclasses"));
        refill(&mut writers.pools, typed(api, "vm.novasphere.dev/v1alpha1", "ippools"));
        // As the operator's watch: only its own leases (by label).
        let leases: Vec<IPLease> = typed(api, "vm.novasphere.dev/v1alpha1", "ipleases");
        let managed = |lease: &IPLease| {
            lease.metadata.labels.as_ref().and_then(|labels| labels.get(MANAGED_BY_LABEL)).map(String::as_str) == Some(MANAGER)
        };
        refill_indexed(&mut writers.leases, Some(&self.context.stores.lease_holders), leases.into_iter().filter(managed).collect());
        for child in &mut writers.children {
            child(api);
        }
        // The caches now show the whole cluster, every write of the operator included.
        self.context.recent.clear();
    }

    /// Seeds a Wukong from YAML.
    pub fn create_wukong(&self, yaml: &str) {
        let value: Value = wukong::yaml::from_str(yaml).expect("wukong yaml");
        self.api.insert(value);
    }

    /// Seeds any object from YAML.
    pub fn create(&self, yaml: &str) {
        let value: Value = wukong::yaml::from_str(yaml).expect("object yaml");
        self.api.insert(value);
    }

    /// The stored Wukong as JSON.
    pub fn wukong(&self, namespace: &str, name: &str) -> Option<Value> {
        self.api.get("vm.novasphere.dev/v1alpha1", "wukongs", Some(namespace), name)
    }

    /// The stored Wukong's status.
    pub fn status(&self, namespace: &str, name: &str) -> wukong::api::WukongStatus {
        let object = self.wukong(namespace, name).expect("wukong exists");
        serde_json::from_value(object.get("status").cloned().unwrap_or(Value::Null)).unwrap_or_default()
    }

    /// One reconcile pass of `namespace/name`, with the caches synced first.
    pub async fn reconcile(&self, namespace: &str, name: &str) -> Result<Action, Error> {
        self.sync();
        let object = GuardedWukong::from_value(self.wukong(namespace, name).expect("wukong exists"));
        reconcile(Arc::new(object), self.context.clone()).await
    }

    /// One pass of the IPPool controller over the stored pool `name`, with the caches synced first.
    pub async fn reconcile_pool(&self, name: &str) -> Result<Action, wukong::controller::pools::PoolError> {
        self.sync();
        let pool: IPPool = self.api.get_typed(None, name).expect("the pool exists");
        let context = wukong::controller::pools::PoolContext {
            client: self.context.client.clone(),
            leases: self.context.stores.leases.clone(),
            recorder: self.context.recorder.clone(),
            clock: self.context.clock.clone(),
            metrics: self.context.metrics.clone(),
        };
        wukong::controller::pools::reconcile_pool(Arc::new(pool), Arc::new(context)).await
    }

    /// Write requests (create, patch, update, delete) seen since the last clear,
    /// leaving out Events.
    pub fn writes(&self) -> Vec<Request> {
        self.api
            .requests()
            .into_iter()
            .filter(|request| request.verb != "get" && request.verb != "list" && !request.path.contains("/events"))
            .collect()
    }

    /// Reconciles until a pass writes nothing (at most `limit` passes); returns the passes run.
    pub async fn converge(&self, namespace: &str, name: &str, limit: usize) -> usize {
        for pass in 1..=limit {
            self.api.clear_requests();
            let _ = self.reconcile(namespace, name).await;
            if self.writes().is_empty() {
                return pass;
            }
        }
        panic!(
            "no convergence after {limit} passes: last writes {:?}",
            self.writes().iter().map(|request| format!("{} {}", request.verb, request.path)).collect::<Vec<_>>()
        );
    }
}

/// Helpers for the scenario suites (`tests/controller_*.rs`).
#[allow(clippy::expect_used, reason = "a failed expectation is a failed test")]
impl Harness {
    /// One reconcile pass of the stored `namespace/name` with the caches left as
    /// they are: the controller's watches have not caught up with its own writes
    /// (as after a crash and restart racing the reflectors).
    pub async fn reconcile_without_sync(&self, namespace: &str, name: &str) -> Result<Action, Error> {
        let object = GuardedWukong::from_value(self.wukong(namespace, name).expect("wukong exists"));
        reconcile(Arc::new(object), self.context.clone()).await
    }

    /// Edits a stored object in place (no request logged), giving it a new
    /// resourceVersion: what another actor (a user, KubeVirt, CDI) did to it.
    ///
    /// # Panics
    /// For kinds whose plural kube cannot derive from the kind (e.g.
    /// `network-attachment-definitions`): `FakeApi::insert` would store the
    /// edit under another key. Edit those through the client instead.
    pub fn edit(&self, api_version: &str, plural: &str, namespace: Option<&str>, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut object = self.api.get(api_version, plural, namespace, name).unwrap_or_else(|| panic!("{plural} {name} exists"));
        let before = object["metadata"]["resourceVersion"].take();
        edit(&mut object);
        self.api.insert(object);
        let stored = self.api.get(api_version, plural, namespace, name).map(|stored| stored["metadata"]["resourceVersion"].clone());
        assert_ne!(stored, Some(before), "FakeApi::insert cannot store {plural} under that plural");
    }

    /// Edits the stored Wukong's spec as a user would: the generation goes up.
    pub fn edit_spec(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        self.edit("vm.novasphere.dev/v1alpha1", "wukongs", Some(namespace), name, |wukong| {
            edit(&mut wukong["spec"]);
            let generation = wukong["metadata"]["generation"].as_i64().unwrap_or(1);
            wukong["metadata"]["generation"] = Value::from(generation + 1);
        });
    }

    /// One sweep of leases whose Wukong is gone; the released leases.
    pub async fn sweep(&self) -> Vec<String> {
        wukong::controller::addresses::sweep::sweep(&self.context).await.expect("sweep")
    }

    /// Deletes the Wukong through the API, as `kubectl delete` does.
    pub async fn delete_wukong(&self, namespace: &str, name: &str) {
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(self.api.client(), namespace, &wukong_resource());
        api.delete(name, &kube::api::DeleteParams::default()).await.expect("delete the wukong");
    }

    /// One condition of the stored Wukong's status.
    pub fn condition(&self, namespace: &str, name: &str, type_: &str) -> wukong::api::Condition {
        let status = self.status(namespace, name);
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .cloned()
            .unwrap_or_else(|| panic!("no {type_} condition in {status:?}"))
    }

    /// The writes since the last clear, as "verb path".
    pub fn write_summary(&self) -> Vec<String> {
        self.writes().iter().map(|request| format!("{} {}", request.verb, request.path)).collect()
    }

    /// The Events created or updated since the last clear, as their bodies.
    pub fn events(&self) -> Vec<Value> {
        let requests = self.api.requests().into_iter();
        requests
            .filter(|request| request.path.ends_with("/events") || request.path.contains("/events/"))
            .filter_map(|request| request.body)
            .collect()
    }

    /// The reasons of the Events created or updated since the last clear.
    pub fn event_reasons(&self) -> Vec<String> {
        self.events().iter().filter_map(|event| event["reason"].as_str().map(str::to_string)).collect()
    }
}

/// A harness holding web-server-01 and its existing claim, converged.
pub async fn converged_web() -> Harness {
    let harness = Harness::new();
    harness.create(DATA_PVC);
    harness.create_wukong(WEB);
    harness.converge("prod", "web-server-01", 4).await;
    harness
}
