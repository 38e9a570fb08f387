//! The patch algorithms: JSON merge patch (also used for strategic merge and apply) and JSON patch.
//!
//! In: a stored object and a patch body. Out: the patched object, or a [`Failure`] for a malformed patch or a
//! failed `test` operation.

use serde_json::{Value, json};

use crate::state::Failure;

/// RFC 7386 merge patch, also used for apply: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
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
pub(crate) fn json_patch(mut document: Value, patch: &Value) -> Result<Value, Failure> {
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
