//! Reading a request: its path, verb, query, body and selectors.
//!
//! In: the method, URI, `Content-Type` and body bytes. Out: a [`Target`] (which resource, namespace, name and
//! subresource), the verb, decoded query parameters, the parsed body, and selector matching on stored objects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::state::{Failure, Key};

pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
pub(crate) const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub(crate) const JSON_PATCH: &str = "application/json-patch+json";

/// A parsed request path.
pub(crate) struct Target {
    /// `v1` or `group/version`.
    pub api_version: String,
    pub plural: String,
    /// `None` for cluster-scoped resources and for lists and watches across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    pub fn key(&self, name: &str) -> Key {
        Key::new(&self.api_version, &self.plural, self.namespace.as_deref(), name)
    }

    pub fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    /// Whether a stored object belongs to this target's resource and (when set) namespace.
    pub fn covers(&self, key: &Key) -> bool {
        key.api_version == self.api_version && key.plural == self.plural && (self.namespace.is_none() || key.namespace == self.namespace)
    }
}

/// Splits `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]` or the `/apis/{group}/{version}/...` form.
pub(crate) fn parse_path(path: &str) -> Option<Target> {
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

pub(crate) fn verb_of(method: &http::Method, has_name: bool, query: &BTreeMap<String, String>) -> String {
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

pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
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

pub(crate) fn parse_body(bytes: &[u8], content_type: Option<&str>) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    let parsed = if content_type.is_some_and(|content_type| content_type.starts_with(APPLY_PATCH)) {
        serde_saphyr::from_slice::<Value>(bytes).ok()
    } else {
        serde_json::from_slice::<Value>(bytes).ok()
    };
    Some(parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selectors {
    labels: String,
    fields: Vec<(String, bool, String)>,
}

impl Selectors {
    /// Reads the selectors of a query. Field selectors may only test `metadata.name` and `metadata.namespace`.
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Selectors, Failure> {
        let labels = query.get("labelSelector").cloned().unwrap_or_default();
        let requirements = query.get("fieldSelector").map(String::as_str).unwrap_or("").split(',').map(str::trim);
        let fields = requirements
            .filter(|requirement| !requirement.is_empty())
            .map(|requirement| {
                let (field, equal, value) = match requirement.split_once("!=") {
                    Some((field, value)) => (field, false, value),
                    None => {
                        let (field, value) = requirement
                            .split_once('=')
                            .ok_or_else(|| Failure::bad_request(format!("invalid field selector {requirement:?}")))?;
                        (field, true, value.trim_start_matches('='))
                    }
                };
                let field = field.trim();
                if !matches!(field, "metadata.name" | "metadata.namespace") {
                    return Err(Failure::bad_request(format!("field label not supported: {field}")));
                }
                Ok((field.to_owned(), equal, value.trim().to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Selectors { labels, fields })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        let fields = self.fields.iter().all(|(field, equal, value)| {
            let actual = object.pointer(&format!("/{}", field.replace('.', "/"))).and_then(Value::as_str).unwrap_or("");
            (actual == value) == *equal
        });
        fields && matches_labels(object, &self.labels)
    }
}

/// Equality (`k=v`, `k==v`), inequality (`k!=v`) and existence (`k`, `!k`) requirements, all of which must hold.
fn matches_labels(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').map(str::trim).filter(|requirement| !requirement.is_empty()).all(|requirement| {
        if let Some((key, value)) = requirement.split_once("!=") {
            labels[key.trim()].as_str() != Some(value.trim())
        } else if let Some((key, value)) = requirement.split_once('=') {
            labels[key.trim()].as_str() == Some(value.trim_start_matches('=').trim())
        } else if let Some(key) = requirement.strip_prefix('!') {
            labels.get(key.trim()).is_none()
        } else {
            labels.get(requirement).is_some()
        }
    })
}
