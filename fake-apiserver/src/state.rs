//! The stored objects and what each verb does to them.
//!
//! In: a logged [`Request`] and its parsed [`Target`]. Out: a [`Reply`] (a status code and JSON body, or a watch
//! stream) or a [`Failure`], with the objects changed like the API server would (resource versions, generations,
//! finalizers, garbage collection) and every change told to [`Watches`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::Request;
use crate::patch::{json_patch, merge_patch};
use crate::request::{APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, Selectors, Target};
use crate::watch::{Filter, Start, WatchBody, Watches};

/// Metadata the server owns: updates and patches cannot change it.
const SYSTEM_FIELDS: [&str; 7] =
    ["uid", "name", "namespace", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"];
/// Plurals without a `status` subresource unless [`crate::FakeApi::set_status_subresource`] says otherwise.
const WITHOUT_STATUS_SUBRESOURCE: [&str; 5] = ["virtualmachineinstances", "configmaps", "secrets", "events", "leases"];
/// How long a watch without `timeoutSeconds` stays open.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(crate) struct State {
    pub objects: BTreeMap<Key, Value>,
    /// The global version: that of the last change.
    pub resource_version: u64,
    uid_counter: u64,
    pub requests: Vec<Request>,
    pub faults: Vec<Fault>,
    pub garbage_collection_disabled: bool,
    /// Overrides of the default per plural.
    pub status_subresources: BTreeMap<String, bool>,
    pub watches: Watches,
    /// Index of the stored objects by uid, so garbage collection does not scan everything.
    by_uid: HashMap<String, Key>,
    /// Index of the stored objects by the uids of their owners.
    dependents: HashMap<String, BTreeSet<Key>>,
}

pub(crate) struct Fault {
    pub matcher: Box<dyn Fn(&Request) -> bool + Send>,
    pub code: u16,
    pub reason: String,
}

/// Where an object is stored: `api_version` is `v1` or `group/version`; `namespace` is `None` when cluster-scoped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub api_version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn new(api_version: &str, plural: &str, namespace: Option<&str>, name: &str) -> Self {
        Key {
            api_version: api_version.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

/// An error answer, sent as a `Status` body that kube turns into `kube::Error::Api`.
pub(crate) struct Failure {
    pub code: u16,
    reason: String,
    message: String,
}

impl Failure {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Failure { code, reason: reason.to_owned(), message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(400, "BadRequest", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(422, "Invalid", message)
    }

    fn not_found(target: &Target, name: &str) -> Self {
        Failure::new(404, "NotFound", format!("{} \"{name}\" not found", target.plural))
    }

    pub fn into_status(self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// What the fake answers.
pub(crate) enum Reply {
    /// A status code and a JSON body.
    Json(u16, Value),
    /// A watch stream (status 200).
    Watch(WatchBody),
}

type Outcome = Result<(u16, Value), Failure>;

impl State {
    pub fn dispatch(&mut self, request: &Request, target: Option<Target>) -> Result<Reply, Failure> {
        let Some(target) = target else {
            return Err(Failure::new(404, "NotFound", format!("FakeApi does not serve {}", request.path)));
        };
        let unsupported =
            || Failure::new(405, "MethodNotAllowed", format!("FakeApi does not support {} on {}", request.verb, request.path));
        if target.subresource.is_some() && !target.is_status() {
            // As a real API server without the aggregated API (e.g. virt-api's `restart`).
            return Err(Failure::new(404, "NotFound", "the server could not find the requested resource"));
        }
        if target.is_status() && !self.has_status_subresource(&target.plural) {
            return Err(Failure::new(404, "NotFound", "the server could not find the requested resource"));
        }
        let body = request.body.clone();
        let outcome = match (request.verb.as_str(), target.name.as_deref()) {
            ("get", Some(name)) => {
                self.objects.get(&target.key(name)).map(|object| (200, object.clone())).ok_or_else(|| Failure::not_found(&target, name))
            }
            ("list", None) => Ok((200, self.list(&target, &Selectors::from_query(&request.query)?))),
            ("watch", None) => return self.watch(&target, &request.query).map(Reply::Watch),
            ("create", None) => self.create(&target, body),
            ("update", Some(name)) => self.update(&target, name, body),
            ("patch", Some(name)) => self.patch(&target, name, request, body),
            ("delete", Some(name)) => {
                let key = target.key(name);
                if !self.objects.contains_key(&key) {
                    return Err(Failure::not_found(&target, name));
                }
                if let Some(preconditions) = body.as_ref().map(|options| &options["preconditions"]) {
                    check_preconditions(&self.objects[&key], preconditions, &target, name)?;
                }
                let orphan =
                    body.as_ref().is_some_and(|options| options["propagationPolicy"] == "Orphan" || options["orphanDependents"] == true);
                Ok((200, self.delete_object(&key, orphan)))
            }
            _ => Err(unsupported()),
        };
        outcome.map(|(code, body)| Reply::Json(code, body))
    }

    fn has_status_subresource(&self, plural: &str) -> bool {
        self.status_subresources.get(plural).copied().unwrap_or(!WITHOUT_STATUS_SUBRESOURCE.contains(&plural))
    }

    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// Fills server-owned metadata: always when `fresh` (create), otherwise only where absent (seeding). A seeded
    /// `resourceVersion` stays only when newer than every other, so versions keep going up for watches.
    pub fn stamp(&mut self, mut object: Value, fresh: bool) -> Value {
        let seeded_version = object["metadata"]["resourceVersion"].as_str().and_then(|version| version.parse::<u64>().ok());
        let metadata = &mut object["metadata"];
        if fresh || metadata["uid"].is_null() {
            self.uid_counter += 1;
            metadata["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid_counter));
        }
        match seeded_version {
            Some(version) if !fresh && version > self.resource_version => self.resource_version = version,
            _ => metadata["resourceVersion"] = json!(self.next_resource_version().to_string()),
        }
        if fresh || metadata["creationTimestamp"].is_null() {
            metadata["creationTimestamp"] = json!(timestamp());
        }
        if fresh || metadata["generation"].is_null() {
            metadata["generation"] = json!(1);
        }
        object
    }

    /// Stores an object (its `resourceVersion` already set) and tells the watches.
    pub fn put(&mut self, key: Key, object: Value) {
        let before = self.store(key.clone(), object);
        let after = self.objects.get(&key);
        self.watches.record(&key.api_version, &key.plural, self.resource_version, before, after);
    }

    /// Stores an object and keeps the uid and owner indexes; returns the object it replaced.
    fn store(&mut self, key: Key, object: Value) -> Option<Value> {
        let uid = object["metadata"]["uid"].as_str().map(str::to_owned);
        let owners: Vec<String> = owner_uids(&object).filter_map(Value::as_str).map(str::to_owned).collect();
        let before = self.objects.insert(key.clone(), object);
        if let Some(before) = &before {
            self.unindex_owners(&key, before);
        }
        if let Some(uid) = uid {
            self.by_uid.insert(uid, key.clone());
        }
        for owner in owners {
            self.dependents.entry(owner).or_default().insert(key.clone());
        }
        before
    }

    fn unindex_owners(&mut self, key: &Key, object: &Value) {
        for owner in owner_uids(object).filter_map(Value::as_str) {
            if let Some(keys) = self.dependents.get_mut(owner) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
    }

    /// Removes an object at a new `resourceVersion` and tells the watches; returns it as removed.
    fn take(&mut self, key: &Key) -> Option<Value> {
        let mut removed = self.objects.remove(key)?;
        self.unindex_owners(key, &removed);
        if let Some(uid) = removed["metadata"]["uid"].as_str() {
            self.by_uid.remove(uid);
        }
        let version = self.next_resource_version();
        removed["metadata"]["resourceVersion"] = json!(version.to_string());
        self.watches.record(&key.api_version, &key.plural, version, Some(removed.clone()), None);
        Some(removed)
    }

    fn list(&self, target: &Target, selectors: &Selectors) -> Value {
        let items: Vec<&Value> =
            self.objects.iter().filter(|(key, object)| target.covers(key) && selectors.matches(object)).map(|(_, object)| object).collect();
        json!({"apiVersion": target.api_version, "kind": format!("{}List", kind_of(&self.objects, target)),
               "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items})
    }

    /// Opens a watch as the query asks: `resourceVersion`, `labelSelector`, `fieldSelector`, `timeoutSeconds` and
    /// `sendInitialEvents`; `allowWatchBookmarks` is accepted and no bookmark is sent but the initial-events one.
    fn watch(&mut self, target: &Target, query: &BTreeMap<String, String>) -> Result<WatchBody, Failure> {
        let filter = Filter { namespace: target.namespace.clone(), selectors: Selectors::from_query(query)? };
        let timeout = match query.get("timeoutSeconds") {
            Some(seconds) => Duration::from_secs(seconds.parse().map_err(|_| Failure::bad_request("invalid timeoutSeconds"))?),
            None => DEFAULT_WATCH_TIMEOUT,
        };
        let version = match query.get("resourceVersion").map(String::as_str) {
            None | Some("" | "0") => None,
            Some(version) => {
                Some(version.parse::<u64>().map_err(|_| Failure::bad_request(format!("invalid resourceVersion {version:?}")))?)
            }
        };
        let send_initial_events = query.get("sendInitialEvents").is_some_and(|value| value == "true");
        let start = match version {
            Some(version) if !send_initial_events => Start::After(version),
            _ => Start::Current {
                objects: self
                    .objects
                    .iter()
                    .filter(|(key, _)| target.covers(key))
                    .map(|(key, object)| (key.namespace.as_deref(), object))
                    .collect(),
                bookmark: send_initial_events.then(|| (self.resource_version, kind_of(&self.objects, target))),
            },
        };
        Ok(self.watches.subscribe(&target.api_version, &target.plural, filter, start, timeout))
    }

    fn create(&mut self, target: &Target, body: Option<Value>) -> Outcome {
        let mut object = require_object(body)?;
        // Resources with a status subresource ignore the status a create sends.
        if self.has_status_subresource(&target.plural)
            && let Some(fields) = object.as_object_mut()
        {
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
        self.put(key, object.clone());
        Ok((201, object))
    }

    /// The object `candidate` asks for, with the status rules of the target: a status write keeps everything but
    /// the status; a main write keeps the stored status when the resource has a status subresource.
    fn merged_with_status(&self, target: &Target, stored: &Value, candidate: &Value) -> Value {
        if target.is_status() {
            with_status(stored, candidate)
        } else if self.has_status_subresource(&target.plural) {
            with_status(candidate, stored)
        } else {
            candidate.clone()
        }
    }

    fn update(&mut self, target: &Target, name: &str, body: Option<Value>) -> Outcome {
        let key = target.key(name);
        let stored = self.objects.get(&key).cloned().ok_or_else(|| Failure::not_found(target, name))?;
        let body = require_object(body)?;
        check_resource_version(&stored, &body, target, name)?;
        let updated = self.merged_with_status(target, &stored, &body);
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
        let updated = self.merged_with_status(target, &stored, &patched);
        self.commit(key, &stored, updated)
    }

    /// Stores `updated` over `stored`: keeps server-owned metadata, skips no-op writes, bumps `resourceVersion` and
    /// `generation` (on changes outside metadata, and outside status when there is a status subresource), and
    /// removes an object whose deletion no finalizer holds.
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
        let keep_status = !self.has_status_subresource(&key.plural);
        if content(stored, keep_status) != content(&updated, keep_status) {
            updated["metadata"]["generation"] = json!(stored["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        updated["metadata"]["resourceVersion"] = json!(self.next_resource_version().to_string());
        if !updated["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&updated) {
            // The last finalizer went: the update is the removal, seen by watches as DELETED.
            // Stored without telling the watches: its removal (DELETED) follows at once.
            self.store(key.clone(), updated.clone());
            self.remove(&key, false);
        } else {
            self.put(key, updated.clone());
        }
        Ok((200, updated))
    }

    /// Deletes like the API server: finalizers only mark the object; otherwise it goes, with its dependents.
    /// Returns the response body.
    fn delete_object(&mut self, key: &Key, orphan: bool) -> Value {
        if let Some(object) = self.objects.get(key)
            && has_finalizers(object)
        {
            if !object["metadata"]["deletionTimestamp"].is_null() {
                return object.clone();
            }
            let mut marked = object.clone();
            marked["metadata"]["deletionTimestamp"] = json!(timestamp());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            marked["metadata"]["resourceVersion"] = json!(self.next_resource_version().to_string());
            self.put(key.clone(), marked.clone());
            return marked;
        }
        let uid = self.objects.get(key).and_then(|object| object["metadata"]["uid"].as_str().map(str::to_owned)).unwrap_or_default();
        self.remove(key, orphan);
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": key.name, "kind": key.plural, "uid": uid}})
    }

    /// Removes an object, then collects its dependents like the background garbage collector: a dependent with
    /// another live owner (or when orphaning) only loses the owner reference; any other dependent is deleted.
    fn remove(&mut self, key: &Key, orphan: bool) {
        let Some(removed) = self.take(key) else { return };
        let uid = &removed["metadata"]["uid"];
        if uid.is_null() || self.garbage_collection_disabled {
            return;
        }
        let dependents: Vec<Key> =
            uid.as_str().and_then(|uid| self.dependents.get(uid)).map(|keys| keys.iter().cloned().collect()).unwrap_or_default();
        for dependent in dependents {
            let Some(object) = self.objects.get(&dependent) else { continue };
            let live_owner =
                owner_uids(object).any(|owner| owner != uid && owner.as_str().is_some_and(|owner| self.by_uid.contains_key(owner)));
            if !orphan && !live_owner {
                self.delete_object(&dependent, false);
            } else {
                let mut released = object.clone();
                if let Some(references) = released["metadata"]["ownerReferences"].as_array_mut() {
                    references.retain(|reference| reference["uid"] != *uid);
                }
                released["metadata"]["resourceVersion"] = json!(self.next_resource_version().to_string());
                self.put(dependent, released);
            }
        }
    }
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

/// Checks a delete's `preconditions` (`uid`, `resourceVersion`) against the stored object, as the API server does.
fn check_preconditions(stored: &Value, preconditions: &Value, target: &Target, name: &str) -> Result<(), Failure> {
    for field in ["uid", "resourceVersion"] {
        if let Some(expected) = preconditions[field].as_str()
            && stored["metadata"][field].as_str() != Some(expected)
        {
            return Err(Failure::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": precondition failed: {field} in precondition: {expected}",
                    target.plural
                ),
            ));
        }
    }
    Ok(())
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

/// The part of an object whose change bumps the generation: all but metadata, and but status unless `with_status`.
fn content(object: &Value, with_status: bool) -> Value {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("metadata");
        if !with_status {
            map.remove("status");
        }
    }
    content
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"].as_array().is_some_and(|finalizers| !finalizers.is_empty())
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &Value> {
    object["metadata"]["ownerReferences"].as_array().into_iter().flatten().map(|reference| &reference["uid"])
}

/// The kind of a resource, from any stored object of it; empty when none is stored.
fn kind_of<'a>(objects: &'a BTreeMap<Key, Value>, target: &Target) -> &'a str {
    let same_resource = |key: &Key| key.api_version == target.api_version && key.plural == target.plural;
    objects.iter().find(|(key, _)| same_resource(key)).and_then(|(_, object)| object["kind"].as_str()).unwrap_or("")
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
