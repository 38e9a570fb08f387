//! An in-memory Kubernetes API server, for tests and benchmarks without a cluster.
//!
//! In: objects seeded with [`FakeApi::insert`]; requests from the [`kube::Client`] returned by [`FakeApi::client`]
//! (in process) or from any client over HTTP/1.1 once [`serve`] runs (with a kubeconfig from [`kubeconfig`]); faults
//! queued with [`FakeApi::fail_next`]; outages with [`FakeApi::go_down`], [`FakeApi::come_back`] and
//! [`FakeApi::restart`].
//! Out: API-server-like responses (stored objects, lists, watch streams, `Status` errors), the stored state
//! ([`FakeApi::get`], [`FakeApi::list`] and their typed variants) and a log of every request ([`FakeApi::requests`]).
//!
//! Covered: get, list and watch (equality and existence label selectors, `metadata.name`/`metadata.namespace` field
//! selectors), create, update with optimistic concurrency, the four patch content types, the `status` subresource
//! (per resource, see [`FakeApi::set_status_subresource`]), generation bumps, delete with finalizers, owner-reference
//! garbage collection, delete preconditions (`uid`, `resourceVersion`), and `/version`, `/api`, `/apis` for clients that ask.
//! Not covered: deletecollection, set-based label selectors, other field selectors, pagination (a list answers
//! everything at once), defaulting, validation, admission, discovery of resources, namespace deletion emptying the
//! namespace, and server-side apply field ownership (an apply is a deep merge: fields a manager stops applying stay,
//! no managedFields, no conflicts between managers). Any plural under any group is served: no CRD is needed.

mod outage;
mod patch;
mod request;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

pub use server::{kubeconfig, serve};
use state::{Fault, Key, State};

/// One request as the fake received it, recorded before it is handled.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// URL path without the query, e.g. `/api/v1/namespaces/apps/configmaps/settings`.
    pub path: String,
    /// Decoded query parameters, e.g. `fieldManager`, `force`, `labelSelector`.
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header, e.g. `application/apply-patch+yaml`.
    pub content_type: Option<String>,
    /// The body parsed as JSON (YAML for apply patches); `None` when empty, a JSON string when unparseable.
    pub body: Option<Value>,
}

/// An in-memory API server; clones share the same state.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    /// Whether the fake is down (see [`FakeApi::go_down`]); the HTTP server watches it to close its listener and
    /// connections.
    down: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi { state: Arc::default(), down: Arc::new(tokio::sync::watch::Sender::new(false)) }
    }
}

impl FakeApi {
    /// Creates an empty API server with garbage collection on.
    pub fn new() -> Self {
        FakeApi::default()
    }

    /// Returns a client (default namespace `default`) whose requests this fake answers in process, without HTTP.
    /// Needs a running Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(server::FakeService::new(self.clone()), "default")
    }

    /// Seeds an object as given (no request is logged), replacing any stored object with the same key, and tells
    /// watchers (ADDED or MODIFIED). Fills `uid`, `creationTimestamp` and `generation: 1` when absent, and
    /// `resourceVersion` unless the given one is newer than every other (the fake's versions only go up).
    /// Namespaced objects need `metadata.namespace`; the plural is derived from `kind` the way kube does.
    ///
    /// # Panics
    /// When the object lacks `apiVersion`, `kind` or `metadata.name`.
    pub fn insert(&self, object: Value) {
        let (Some(api_version), Some(kind), Some(name)) =
            (object["apiVersion"].as_str(), object["kind"].as_str(), object["metadata"]["name"].as_str())
        else {
            panic!("FakeApi::insert needs apiVersion, kind and metadata.name: {object}");
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)).plural;
        let key = Key::new(api_version, &plural, object["metadata"]["namespace"].as_str(), name);
        let mut state = self.lock();
        let object = state.stamp(object, false);
        state.put(key, object);
    }

    /// Returns the stored object, e.g. `get("v1", "configmaps", Some("apps"), "settings")`.
    pub fn get(&self, api_version: &str, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.lock().objects.get(&Key::new(api_version, plural, namespace, name)).cloned()
    }

    /// Returns every stored object of one resource, across all namespaces, ordered by namespace and name.
    pub fn list(&self, api_version: &str, plural: &str) -> Vec<Value> {
        let state = self.lock();
        state
            .objects
            .iter()
            .filter(|(key, _)| key.api_version == api_version && key.plural == plural)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Like [`FakeApi::get`] for a typed resource.
    ///
    /// # Panics
    /// When the stored object does not deserialise into `K`.
    pub fn get_typed<K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<K> {
        self.get(&K::api_version(&()), &K::plural(&()), namespace, name).map(deserialize)
    }

    /// Like [`FakeApi::list`] for a typed resource.
    ///
    /// # Panics
    /// When a stored object does not deserialise into `K`.
    pub fn list_typed<K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned>(&self) -> Vec<K> {
        self.list(&K::api_version(&()), &K::plural(&())).into_iter().map(deserialize).collect()
    }

    /// Returns the requests received so far, oldest first, including failed ones. Requests for `/version`, `/api`,
    /// `/apis` and the health paths are not logged.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Forgets the logged requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Makes the next request that `matcher` accepts fail with a `Status` of this `code` and `reason` (e.g. 409
    /// `Conflict`, 500 `InternalError`) without touching the state. Each call fails one request. The matcher runs
    /// while the state is locked, so it must not call this `FakeApi`.
    pub fn fail_next(&self, matcher: impl Fn(&Request) -> bool + Send + 'static, code: u16, reason: &str) {
        self.lock().faults.push(Fault { matcher: Box::new(matcher), code, reason: reason.to_owned() });
    }

    /// Turns owner-reference garbage collection on (the default) or off, to prove an operator deletes things itself.
    pub fn set_garbage_collection(&self, enabled: bool) {
        self.lock().garbage_collection_disabled = !enabled;
    }

    /// Says whether resources of `plural` (in any group) have a `status` subresource. By default every plural has
    /// one except `virtualmachineinstances` (KubeVirt's CRD has none), `configmaps`, `secrets`, `events` and
    /// `leases`. With one, create ignores `.status`, update and patch keep the stored status, and only
    /// `.../{name}/status` changes it. Without, `.status` is written with the object and `/status` answers 404.
    pub fn set_status_subresource(&self, plural: &str, enabled: bool) {
        self.lock().status_subresources.insert(plural.to_owned(), enabled);
    }

    /// Sets how many events the fake remembers per resource (default [`DEFAULT_WATCH_HISTORY`]); a watch from a
    /// `resourceVersion` older than that memory gets a `410 Expired` error event, so the client relists.
    pub fn set_watch_history(&self, events: usize) {
        self.lock().watches.set_limit(events);
    }

    /// Returns the current global `resourceVersion` (the version of the last change).
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The mutex is only poisoned when a thread already panicked while holding it (e.g. inside a fault matcher);
        // carrying on with the state shows that first panic instead of burying it under a second one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many events a fake remembers per resource for watches that resume from a `resourceVersion`.
pub const DEFAULT_WATCH_HISTORY: usize = 10_000;

fn deserialize<K: serde::de::DeserializeOwned>(object: Value) -> K {
    match serde_json::from_value(object) {
        Ok(typed) => typed,
        Err(error) => panic!("FakeApi: a stored object does not deserialise into {}: {error}", std::any::type_name::<K>()),
    }
}
