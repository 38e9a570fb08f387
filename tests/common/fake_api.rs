//! An in-memory Kubernetes API server for reconcile tests.
//!
//! In: objects seeded with [`FakeApi::insert`], HTTP requests from the [`kube::Client`] returned by [`FakeApi::client`],
//! and faults queued with [`FakeApi::fail_next`].
//! Out: API-server-like responses (stored objects, lists, `Status` errors), the stored state ([`FakeApi::get`],
//! [`FakeApi::list`] and their typed variants) and a log of every request ([`FakeApi::requests`]).
//!
//! Covered: get, list (equality label selectors), create, update with optimistic concurrency, the four patch content
//! types, the `status` subresource, generation bumps, delete with finalizers and owner-reference garbage collection.
//! Not covered: watch (405), deletecollection, field selectors, set-based label selectors, defaulting, validation,
//! admission, namespace deletion emptying the namespace, and server-side apply field ownership (an apply is a deep
//! merge: fields a manager stops applying stay, no managedFields, no conflicts between managers).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use kube::client::Body;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const APPLY_PATCH: &str = "application/apply-patch+yaml";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
/// Metadata the server owns: updates and patches cannot change it.
const SYSTEM_FIELDS: [&str; 7] =
    ["uid", "name", "namespace", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"];

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
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    uid_counter: u64,
    requests: Vec<Request>,
    faults: Vec<Fault>,
    garbage_collection_disabled: bool,
}

struct Fault {
    matcher: Box<dyn Fn(&Request) -> bool + Send>,
    code: u16,
    reason: String,
}

/// Where an object is stored: `api_version` is `v1` or `group/version`; `namespace` is `None` when cluster-scoped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    api_version: String,
    plural: String,
    namespace: Option<String>,
    name: String,
}

/// A parsed request path.
struct Target {
    api_version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Key {
    fn new(api_version: &str, plural: &str, namespace: Option<&str>, name: &str) -> Self {
        Key {
            api_version: api_version.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl Target {
    fn key(&self, name: &str) -> Key {
        Key::new(&self.api_version, &self.plural, self.namespace.as_deref(), name)
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

/// An error answer, sent as a `Status` body that kube turns into `kube::Error::Api`.
struct Failure {
    code: u16,
    reason: String,
    message: String,
}

impl Failure {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Failure { code, reason: reason.to_owned(), message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(400, "BadRequest", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Failure::new(422, "Invalid", message)
    }

    fn not_found(target: &Target, name: &str) -> Self {
        Failure::new(404, "NotFound", format!("{} \"{name}\" not found", target.plural))
    }

    fn into_status(self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// A status code and a JSON body, or a failure.
type Outcome = Result<(u16, Value), Failure>;

impl FakeApi {
    /// Creates an empty API server with garbage collection on.
    pub fn new() -> Self {
        FakeApi::default()
    }

    /// Returns a client (default namespace `default`) whose requests this fake answers. Needs a running Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(FakeService { api: self.clone() }, "default")
    }

    /// Seeds an object as given (no request is logged), replacing any stored object with the same key.
    /// Fills `uid`, `resourceVersion`, `creationTimestamp` and `generation: 1` when absent. Namespaced objects need
    /// `metadata.namespace`; the plural is derived from `kind` the way kube does.
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
        state.objects.insert(key, object);
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

    /// Returns the requests received so far, oldest first, including failed ones.
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // The mutex is only poisoned when a test already panicked while holding it (e.g. inside a fault matcher);
        // carrying on with the state shows that first panic instead of burying it under a second one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handle(&self, parts: &http::request::Parts, body: &[u8]) -> (u16, Value) {
        let query = parse_query(parts.uri.query().unwrap_or(""));
        let target = parse_path(parts.uri.path());
        let has_name = target.as_ref().is_some_and(|target| target.name.is_some());
        let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let request = Request {
            verb: verb_of(&parts.method, has_name, &query),
            path: parts.uri.path().to_owned(),
            body: parse_body(body, content_type.as_deref()),
            query,
            content_type,
        };
        let mut state = self.lock();
        state.requests.push(request.clone());
        let outcome = match state.faults.iter().position(|fault| (fault.matcher)(&request)) {
            Some(index) => {
                let fault = state.faults.remove(index);
                Err(Failure::new(fault.code, &fault.reason, "injected by FakeApi::fail_next"))
            }
            None => state.dispatch(&request, target),
        };
        outcome.unwrap_or_else(|failure| (failure.code, failure.into_status()))
    }
}

impl State {
    fn dispatch(&mut self, request: &Request, target: Option<Target>) -> Outcome {
        let Some(target) = target else {
            return Err(Failure::new(404, "NotFound", format!("FakeApi does not serve {}", request.path)));
        };
        let unsupported =
            || Failure::new(405, "MethodNotAllowed", format!("FakeApi does not support {} on {}", request.verb, request.path));
        if target.subresource.is_some() && !target.is_status() {
            return Err(unsupported());
        }
        let body = request.body.clone();
        match (request.verb.as_str(), target.name.as_deref()) {
            ("get", Some(name)) => {
                self.objects.get(&target.key(name)).map(|object| (200, object.clone())).ok_or_else(|| Failure::not_found(&target, name))
            }
            ("list", None) => Ok((200, self.list(&target, &request.query))),
            ("create", None) => self.create(&target, body),
            ("update", Some(name)) => self.update(&target, name, body),
            ("patch", Some(name)) => self.patch(&target, name, request, body),
            ("delete", Some(name)) => {
                let key = target.key(name);
                if !self.objects.contains_key(&key) {
                    return Err(Failure::not_found(&target, name));
                }
                let orphan =
                    body.as_ref().is_some_and(|options| options["propagationPolicy"] == "Orphan" || options["orphanDependents"] == true);
                Ok((200, self.delete_object(&key, orphan)))
            }
            _ => Err(unsupported()),
        }
    }

    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Fills server-owned metadata: always when `fresh` (create), otherwise only where absent (seeding).
    fn stamp(&mut self, mut object: Value, fresh: bool) -> Value {
        let metadata = &mut object["metadata"];
        if fresh || metadata["uid"].is_null() {
            self.uid_counter += 1;
            metadata["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid_counter));
        }
        if fresh || metadata["resourceVersion"].is_null() {
            metadata["resourceVersion"] = json!(self.next_resource_version());
        }
        if fresh || metadata["creationTimestamp"].is_null() {
            metadata["creationTimestamp"] = json!(timestamp());
        }
        if fresh || metadata["generation"].is_null() {
            metadata["generation"] = json!(1);
        }
        object
    }

    fn list(&self, target: &Target, query: &BTreeMap<String, String>) -> Value {
        let same_resource = |key: &Key| key.api_version == target.api_version && key.plural == target.plural;
        let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|(key, object)| {
                same_resource(key) && (target.namespace.is_none() || key.namespace == target.namespace) && matches_labels(object, selector)
            })
            .map(|(_, object)| object)
            .collect();
        let kind = self.objects.iter().find(|(key, _)| same_resource(key)).and_then(|(_, object)| object["kind"].as_str()).unwrap_or("");
        json!({"apiVersion": target.api_version, "kind": format!("{kind}List"),
               "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items})
    }

    fn create(&mut self, target: &Target, body: Option<Value>) -> Outcome {
        let mut object = require_object(body)?;
        // Like resources with a status subresource, a create ignores the status it is sent.
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
        if let Some(namespace) = &target.namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        let name = object["metadata"]["name"]
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| Failure::invalid("metadata.name is required"))?;
        let key = target.key(name);
        if self.objects.contains_key(&key) {
            return Err(Failure::new(409, "AlreadyExists", format!("{} \"{}\" already exists", target.plural, key.name)));
        }
        let object = self.stamp(object, true);
        self.objects.insert(key, object.clone());
        Ok((201, object))
    }

    fn update(&mut self, target: &Target, name: &str, body: Option<Value>) -> Outcome {
        let key = target.key(name);
        let stored = self.objects.get(&key).cloned().ok_or_else(|| Failure::not_found(target, name))?;
        let body = require_object(body)?;
        check_resource_version(&stored, &body, target, name)?;
        let updated = if target.is_status() { with_status(&stored, &body) } else { with_status(&body, &stored) };
        self.commit(key, &stored, updated)
    }

    fn patch(&mut self, target: &Target, name: &str, request: &Request, patch: Option<Value>) -> Outcome {
        let patch = patch.ok_or_else(|| Failure::bad_request("a patch needs a body"))?;
        let content_type = request.content_type.as_deref().unwrap_or("").split(';').next().unwrap_or("").trim();
        if content_type == APPLY_PATCH && !request.query.contains_key("fieldManager") {
            return Err(Failure::bad_request("fieldManager is required for apply patch"));
        }
        let key = target.key(name);
        let Some(stored) = self.objects.get(&key).cloned() else {
            if content_type != APPLY_PATCH || target.is_status() {
                return Err(Failure::not_found(target, name));
            }
            let mut object = require_object(Some(patch))?;
            object["metadata"]["name"] = json!(name);
            return self.create(target, Some(object));
        };
        let mut patched = stored.clone();
        match content_type {
            APPLY_PATCH | MERGE_PATCH | STRATEGIC_MERGE_PATCH => merge_patch(&mut patched, &patch),
            JSON_PATCH => patched = json_patch(patched, &patch)?,
            other => {
                return Err(Failure::new(415, "UnsupportedMediaType", format!("unsupported patch type {other:?}")));
            }
        }
        let patched = require_object(Some(patched))?;
        check_resource_version(&stored, &patched, target, name)?;
        let updated = if target.is_status() { with_status(&stored, &patched) } else { with_status(&patched, &stored) };
        self.commit(key, &stored, updated)
    }

    /// Stores `updated` over `stored`: keeps server-owned metadata, skips no-op writes, bumps `resourceVersion` and
    /// (on changes outside metadata and status) `generation`, and removes an object whose deletion no finalizer holds.
    fn commit(&mut self, key: Key, stored: &Value, mut updated: Value) -> Outcome {
        for field in SYSTEM_FIELDS.into_iter().chain(["resourceVersion"]) {
            match stored["metadata"].get(field) {
                Some(value) => updated["metadata"][field] = value.clone(),
                None => {
                    if let Some(metadata) = updated["metadata"].as_object_mut() {
                        metadata.remove(field);
                    }
                }
            }
        }
        if updated == *stored {
            return Ok((200, updated));
        }
        if without_metadata_and_status(stored) != without_metadata_and_status(&updated) {
            updated["metadata"]["generation"] = json!(stored["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        updated["metadata"]["resourceVersion"] = json!(self.next_resource_version());
        if !updated["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&updated) {
            self.remove(&key, false);
        } else {
            self.objects.insert(key, updated.clone());
        }
        Ok((200, updated))
    }

    /// Deletes like the API server: finalizers only mark the object; otherwise it goes, with its dependents.
    /// Returns the response body.
    fn delete_object(&mut self, key: &Key, orphan: bool) -> Value {
        if let Some(object) = self.objects.get_mut(key)
            && has_finalizers(object)
        {
            if object["metadata"]["deletionTimestamp"].is_null() {
                self.resource_version += 1;
                object["metadata"]["deletionTimestamp"] = json!(timestamp());
                object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
            }
            return object.clone();
        }
        let uid = self.objects.get(key).and_then(|object| object["metadata"]["uid"].as_str().map(str::to_owned)).unwrap_or_default();
        self.remove(key, orphan);
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": key.name, "kind": key.plural, "uid": uid}})
    }

    /// Removes an object, then collects its dependents like the background garbage collector: a dependent with
    /// another live owner (or when orphaning) only loses the owner reference; any other dependent is deleted.
    fn remove(&mut self, key: &Key, orphan: bool) {
        let Some(removed) = self.objects.remove(key) else { return };
        self.resource_version += 1;
        let uid = &removed["metadata"]["uid"];
        if uid.is_null() || self.garbage_collection_disabled {
            return;
        }
        let dependents: Vec<Key> =
            self.objects.iter().filter(|(_, object)| owner_uids(object).any(|owner| owner == uid)).map(|(key, _)| key.clone()).collect();
        for dependent in dependents {
            let Some(object) = self.objects.get(&dependent) else { continue };
            let live_owner =
                owner_uids(object).any(|owner| owner != uid && self.objects.values().any(|other| other["metadata"]["uid"] == *owner));
            if !orphan && !live_owner {
                self.delete_object(&dependent, false);
            } else if let Some(object) = self.objects.get_mut(&dependent) {
                self.resource_version += 1;
                if let Some(references) = object["metadata"]["ownerReferences"].as_array_mut() {
                    references.retain(|reference| reference["uid"] != *uid);
                }
                object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
            }
        }
    }
}

/// Adapts [`FakeApi`] to the `tower::Service` that [`kube::Client::new`] needs.
#[derive(Clone)]
struct FakeService {
    api: FakeApi,
}

impl tower::Service<http::Request<Body>> for FakeService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let api = self.api.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.map(|bytes| bytes.to_vec()).unwrap_or_default();
            let (code, value) = api.handle(&parts, &body);
            let mut response = http::Response::new(Body::from(value.to_string().into_bytes()));
            *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            Ok(response)
        })
    }
}

/// Splits `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]` or the `/apis/{group}/{version}/...` form.
fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, tail @ ..] if tail.first().is_some_and(|plural| !matches!(*plural, "status" | "finalize")) => {
            (Some((*namespace).to_owned()), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name), None),
        [plural, name, subresource] => (plural, Some(name), Some(subresource)),
        _ => return None,
    };
    let owned = |segment: &&str| (*segment).to_owned();
    Some(Target { api_version, plural: owned(plural), namespace, name: name.map(owned), subresource: subresource.map(owned) })
}

fn verb_of(method: &http::Method, has_name: bool, query: &BTreeMap<String, String>) -> String {
    let watch = query.get("watch").is_some_and(|value| value == "true" || value == "1");
    let verb = match (method.as_str(), has_name) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => return other.to_ascii_lowercase(),
    };
    verb.to_owned()
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    let pairs = query.split('&').filter(|pair| !pair.is_empty());
    pairs.map(|pair| pair.split_once('=').unwrap_or((pair, ""))).map(|(key, value)| (percent_decode(key), percent_decode(value))).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = text.get(index + 1..index + 3).filter(|_| bytes[index] == b'%');
        if let Some(byte) = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(if bytes[index] == b'+' { b' ' } else { bytes[index] });
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn parse_body(bytes: &[u8], content_type: Option<&str>) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    let parsed = if content_type.is_some_and(|content_type| content_type.starts_with(APPLY_PATCH)) {
        serde_yaml::from_slice::<Value>(bytes).ok()
    } else {
        serde_json::from_slice::<Value>(bytes).ok()
    };
    Some(parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}

/// Checks that a body is an object with object `metadata` (added when absent), so indexing into it cannot panic.
fn require_object(body: Option<Value>) -> Result<Value, Failure> {
    let mut object = body.filter(Value::is_object).ok_or_else(|| Failure::bad_request("the body must be a JSON object"))?;
    if object["metadata"].is_null() {
        object["metadata"] = json!({});
    }
    if !object["metadata"].is_object() {
        return Err(Failure::invalid("metadata must be an object"));
    }
    Ok(object)
}

fn check_resource_version(stored: &Value, candidate: &Value, target: &Target, name: &str) -> Result<(), Failure> {
    match candidate["metadata"]["resourceVersion"].as_str() {
        Some(version) if stored["metadata"]["resourceVersion"].as_str() != Some(version) => Err(Failure::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified", target.plural),
        )),
        _ => Ok(()),
    }
}

/// Returns `base` with the `status` of `source` (or without status when `source` has none).
fn with_status(base: &Value, source: &Value) -> Value {
    let mut result = base.clone();
    if let Some(object) = result.as_object_mut() {
        match source.get("status") {
            Some(status) => object.insert("status".to_owned(), status.clone()),
            None => object.remove("status"),
        };
    }
    result
}

fn without_metadata_and_status(object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    content
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"].as_array().is_some_and(|finalizers| !finalizers.is_empty())
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &Value> {
    object["metadata"]["ownerReferences"].as_array().into_iter().flatten().map(|reference| &reference["uid"])
}

fn matches_labels(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').map(str::trim).filter(|requirement| !requirement.is_empty()).all(|requirement| match requirement.split_once("!=") {
        Some((key, value)) => labels[key.trim()].as_str() != Some(value.trim()),
        None => requirement
            .split_once('=')
            .is_some_and(|(key, value)| labels[key.trim()].as_str() == Some(value.trim_start_matches('=').trim())),
    })
}

/// RFC 7386 merge patch, also used for apply: objects merge recursively, `null` deletes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902 JSON patch with `add`, `remove`, `replace` and `test`.
fn json_patch(mut document: Value, patch: &Value) -> Result<Value, Failure> {
    let operations = patch.as_array().ok_or_else(|| Failure::bad_request("a JSON patch must be an array"))?;
    for operation in operations {
        let path = operation["path"].as_str().ok_or_else(|| Failure::bad_request("a JSON patch operation needs a path"))?;
        match operation["op"].as_str().unwrap_or("") {
            "add" => pointer_add(&mut document, path, operation["value"].clone())?,
            "remove" => {
                pointer_remove(&mut document, path)?;
            }
            "replace" => {
                pointer_remove(&mut document, path)?;
                pointer_add(&mut document, path, operation["value"].clone())?;
            }
            "test" if document.pointer(path) == Some(&operation["value"]) => {}
            "test" => return Err(Failure::invalid(format!("test failed at {path}"))),
            other => return Err(Failure::bad_request(format!("unsupported JSON patch operation {other:?}"))),
        }
    }
    Ok(document)
}

/// Splits a JSON pointer into its parent pointer and unescaped last token.
fn split_pointer(path: &str) -> Result<(&str, String), Failure> {
    let (parent, token) = path.rsplit_once('/').ok_or_else(|| Failure::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok((parent, token.replace("~1", "/").replace("~0", "~")))
}

fn pointer_add(document: &mut Value, path: &str, value: Value) -> Result<(), Failure> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let (parent, token) = split_pointer(path)?;
    match document.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
        }
        Some(Value::Array(items)) => {
            let index = if token == "-" { Some(items.len()) } else { token.parse().ok().filter(|index| *index <= items.len()) };
            items.insert(index.ok_or_else(|| Failure::invalid(format!("invalid array index in {path}")))?, value);
        }
        _ => return Err(Failure::invalid(format!("the parent of {path} does not exist"))),
    }
    Ok(())
}

fn pointer_remove(document: &mut Value, path: &str) -> Result<Value, Failure> {
    let (parent, token) = split_pointer(path)?;
    let removed = match document.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token),
        Some(Value::Array(items)) => token.parse().ok().filter(|index| *index < items.len()).map(|index| items.remove(index)),
        _ => None,
    };
    removed.ok_or_else(|| Failure::invalid(format!("{path} does not exist")))
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn deserialize<K: serde::de::DeserializeOwned>(object: Value) -> K {
    match serde_json::from_value(object) {
        Ok(typed) => typed,
        Err(error) => panic!("FakeApi: a stored object does not deserialise into {}: {error}", std::any::type_name::<K>()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::{CustomResource, ResourceExt};
    use serde::{Deserialize, Serialize};

    #[derive(CustomResource, Clone, Debug, Deserialize, Serialize)]
    #[kube(group = "example.com", version = "v1", kind = "Widget", namespaced, status = "WidgetStatus", schema = "disabled")]
    pub struct WidgetSpec {
        size: u32,
    }

    #[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
    pub struct WidgetStatus {
        ready: bool,
    }

    fn config_map(namespace: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {"key": "value"}})
    }

    fn owned(kind: &str, name: &str, owner: &Value, finalizers: Value) -> Value {
        let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]});
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "apps", "finalizers": finalizers, "ownerReferences": [reference]}})
    }

    fn api_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
        match result {
            Err(kube::Error::Api(status)) => status.code,
            other => panic!("expected an API error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn creates_gets_and_reports_missing_objects() {
        let fake = FakeApi::new();
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        let config_map: ConfigMap = serde_json::from_value(config_map("apps", "settings")).unwrap();
        let created = config_maps.create(&PostParams::default(), &config_map).await.unwrap();
        assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(config_maps.get("settings").await.unwrap().data, created.data);
        let missing = config_maps.get("missing").await;
        assert!(matches!(&missing, Err(kube::Error::Api(status)) if status.code == 404 && status.reason == "NotFound"));
        assert_eq!(api_code(config_maps.create(&PostParams::default(), &config_map).await), 409);

        let namespaces: Api<Namespace> = Api::all(fake.client());
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap();
        namespaces.create(&PostParams::default(), &namespace).await.unwrap();
        assert_eq!(namespaces.list(&ListParams::default()).await.unwrap().items.len(), 1);
        assert!(fake.get_typed::<Namespace>(None, "apps").is_some());
        assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "value");
    }

    #[tokio::test]
    async fn lists_with_label_selectors() {
        let fake = FakeApi::new();
        for (namespace, name, labels) in [
            ("apps", "web", json!({"app": "web", "tier": "front"})),
            ("apps", "db", json!({"app": "db"})),
            ("other", "web", json!({"app": "web"})),
        ] {
            let mut object = config_map(namespace, name);
            object["metadata"]["labels"] = labels;
            fake.insert(object);
        }
        let in_apps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        let selected = in_apps.list(&ListParams::default().labels("app=web,tier=front")).await.unwrap();
        assert_eq!(selected.items.iter().map(|item| item.name_any()).collect::<Vec<_>>(), ["web"]);
        assert_eq!(in_apps.list(&ListParams::default()).await.unwrap().items.len(), 2);
        let everywhere: Api<ConfigMap> = Api::all(fake.client());
        assert_eq!(everywhere.list(&ListParams::default().labels("app=web")).await.unwrap().items.len(), 2);
        assert_eq!(fake.list_typed::<ConfigMap>().len(), 3);
    }

    #[tokio::test]
    async fn server_side_apply_creates_then_merges() {
        let fake = FakeApi::new();
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        let params = PatchParams::apply("test").force();
        let apply =
            |data: Value| Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data}));
        let first = config_maps.patch("settings", &params, &apply(json!({"a": "1", "b": "2"}))).await.unwrap();
        let second = config_maps.patch("settings", &params, &apply(json!({"a": "changed"}))).await.unwrap();
        let data = second.data.clone().unwrap();
        assert_eq!((data["a"].as_str(), data["b"].as_str()), ("changed", "2"));
        assert_ne!(first.resource_version(), second.resource_version());
        assert_eq!(second.metadata.generation, Some(2));
        let unchanged = config_maps.patch("settings", &params, &apply(json!({"a": "changed"}))).await.unwrap();
        assert_eq!(unchanged.resource_version(), second.resource_version());
        let request = fake.requests().pop().unwrap();
        assert_eq!((request.verb.as_str(), request.content_type.as_deref()), ("patch", Some(APPLY_PATCH)));
        assert_eq!((request.query["fieldManager"].as_str(), request.query["force"].as_str()), ("test", "true"));
    }

    #[tokio::test]
    async fn finalizers_hold_a_delete_until_a_patch_removes_them() {
        let fake = FakeApi::new();
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        let mut guarded = config_map("apps", "guarded");
        guarded["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
        fake.insert(guarded);
        let pending = config_maps.delete("guarded", &DeleteParams::default()).await.unwrap().left().unwrap();
        assert!(pending.metadata.deletion_timestamp.is_some());
        assert!(fake.get_typed::<ConfigMap>(Some("apps"), "guarded").unwrap().metadata.deletion_timestamp.is_some());
        let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        config_maps.patch("guarded", &PatchParams::default(), &release).await.unwrap();
        assert!(fake.get_typed::<ConfigMap>(Some("apps"), "guarded").is_none());

        fake.insert(config_map("apps", "plain"));
        assert!(config_maps.delete("plain", &DeleteParams::default()).await.unwrap().is_right());
        assert_eq!(api_code(config_maps.delete("plain", &DeleteParams::default()).await), 404);
    }

    #[tokio::test]
    async fn stale_resource_versions_conflict() {
        let fake = FakeApi::new();
        fake.insert(config_map("apps", "settings"));
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        let stale = config_maps.get("settings").await.unwrap();
        let mut changed = stale.clone();
        changed.data = Some([("key".to_owned(), "new".to_owned())].into());
        let current = config_maps.replace("settings", &PostParams::default(), &changed).await.unwrap();
        assert_ne!(current.resource_version(), stale.resource_version());
        assert_eq!(current.metadata.generation, Some(2));
        assert_eq!(api_code(config_maps.replace("settings", &PostParams::default(), &stale).await), 409);
        let stale_patch = Patch::Merge(json!({"metadata": {"resourceVersion": stale.resource_version()}, "data": {"key": "x"}}));
        assert_eq!(api_code(config_maps.patch("settings", &PatchParams::default(), &stale_patch).await), 409);
        assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "new");
    }

    #[tokio::test]
    async fn deleting_an_owner_collects_its_dependents() {
        let fake = FakeApi::new();
        fake.insert(config_map("apps", "owner"));
        let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
        fake.insert(owned("Secret", "child", &owner, json!([])));
        let child = fake.get("v1", "secrets", Some("apps"), "child").unwrap();
        fake.insert(owned("ConfigMap", "grandchild", &child, json!([])));
        fake.insert(owned("ConfigMap", "guarded", &owner, json!(["example.com/cleanup"])));
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        config_maps.delete("owner", &DeleteParams::background()).await.unwrap();
        assert!(fake.get("v1", "secrets", Some("apps"), "child").is_none());
        assert!(fake.get("v1", "configmaps", Some("apps"), "grandchild").is_none());
        assert!(!fake.get("v1", "configmaps", Some("apps"), "guarded").unwrap()["metadata"]["deletionTimestamp"].is_null());

        fake.insert(config_map("apps", "owner"));
        let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
        fake.insert(owned("Secret", "orphan", &owner, json!([])));
        config_maps.delete("owner", &DeleteParams::orphan()).await.unwrap();
        assert_eq!(fake.get("v1", "secrets", Some("apps"), "orphan").unwrap()["metadata"]["ownerReferences"], json!([]));

        fake.set_garbage_collection(false);
        fake.insert(config_map("apps", "owner"));
        let owner = fake.get("v1", "configmaps", Some("apps"), "owner").unwrap();
        fake.insert(owned("Secret", "left-behind", &owner, json!([])));
        config_maps.delete("owner", &DeleteParams::default()).await.unwrap();
        assert!(fake.get("v1", "secrets", Some("apps"), "left-behind").is_some());
    }

    #[tokio::test]
    async fn injected_faults_fail_one_matching_request() {
        let fake = FakeApi::new();
        fake.insert(config_map("apps", "settings"));
        let config_maps: Api<ConfigMap> = Api::namespaced(fake.client(), "apps");
        fake.fail_next(|request| request.verb == "patch" && request.path.ends_with("/settings"), 500, "InternalError");
        let patch = Patch::Merge(json!({"data": {"key": "new"}}));
        assert_eq!(api_code(config_maps.get("missing").await), 404);
        assert_eq!(api_code(config_maps.patch("settings", &PatchParams::default(), &patch).await), 500);
        assert_eq!(fake.get("v1", "configmaps", Some("apps"), "settings").unwrap()["data"]["key"], "value");
        config_maps.patch("settings", &PatchParams::default(), &patch).await.unwrap();
        let verbs: Vec<String> = fake.requests().into_iter().map(|request| request.verb).collect();
        assert_eq!(verbs, ["get", "patch", "patch"]);
        fake.clear_requests();
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn status_subresource_only_changes_status() {
        let fake = FakeApi::new();
        let widgets: Api<Widget> = Api::namespaced(fake.client(), "apps");
        widgets.create(&PostParams::default(), &Widget::new("gear", WidgetSpec { size: 1 })).await.unwrap();
        let status_patch = Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 9}}));
        let patched = widgets.patch_status("gear", &PatchParams::default(), &status_patch).await.unwrap();
        assert_eq!(
            (patched.spec.size, patched.status.clone(), patched.metadata.generation),
            (1, Some(WidgetStatus { ready: true }), Some(1))
        );
        let spec_patch = Patch::Merge(json!({"status": {"ready": false}, "spec": {"size": 2}}));
        let patched = widgets.patch("gear", &PatchParams::default(), &spec_patch).await.unwrap();
        assert_eq!(
            (patched.spec.size, patched.status.clone(), patched.metadata.generation),
            (2, Some(WidgetStatus { ready: true }), Some(2))
        );
        let mut replacement = patched.clone();
        replacement.spec.size = 7;
        replacement.status = Some(WidgetStatus { ready: false });
        let replaced = widgets.replace_status("gear", &PostParams::default(), &replacement).await.unwrap();
        assert_eq!((replaced.spec.size, replaced.status), (2, Some(WidgetStatus { ready: false })));
        let apply = Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"ready": true}}));
        assert_eq!(api_code(widgets.patch_status("missing", &PatchParams::apply("test"), &apply).await), 404);
        assert_eq!(fake.get_typed::<Widget>(Some("apps"), "gear").unwrap().metadata.generation, Some(2));
    }

    #[tokio::test]
    async fn json_patch_applies_operations_and_honours_test() {
        let fake = FakeApi::new();
        fake.insert(config_map("apps", "settings"));
        let client = fake.client();
        let send = |operations: Value| {
            let request =
                http::Request::patch("/api/v1/namespaces/apps/configmaps/settings").header(http::header::CONTENT_TYPE, JSON_PATCH);
            client.request::<ConfigMap>(request.body(serde_json::to_vec(&operations).unwrap()).unwrap())
        };
        let operations = json!([
            {"op": "test", "path": "/data/key", "value": "value"},
            {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
            {"op": "replace", "path": "/data/key", "value": "new"},
            {"op": "add", "path": "/data/extra", "value": "1"},
            {"op": "remove", "path": "/data/extra"},
        ]);
        let patched = send(operations).await.unwrap();
        assert_eq!(patched.labels()["app"], "web");
        assert_eq!(patched.data.unwrap()["key"], "new");
        assert_eq!(api_code(send(json!([{"op": "test", "path": "/data/key", "value": "value"}])).await), 422);
    }
}
