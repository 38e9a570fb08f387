//! Deciding whether an apply would change anything.
//!
//! In: the desired object and the cached one (as children or as JSON). Out: whether every field
//! the operator sets already has its value, so the apply can be skipped and a
//! converged Wukong costs no writes.

use serde_json::Value;

use crate::children::ChildKind;

/// Whether `current` (a cached or just-written child, trimmed as the caches
/// trim) already holds `desired`, compared trimmed the same way: a trim that
/// keeps a fingerprint instead of a value (a Secret's data) applies to both.
pub fn holds<K: ChildKind>(desired: &K, current: &K) -> bool {
    let mut comparable = desired.clone();
    comparable.trim();
    let wanted = serde_json::to_value(&comparable).unwrap_or_default();
    let present = serde_json::to_value(current).unwrap_or_default();
    is_applied(&wanted, &present)
}

/// Whether `observed` already holds everything in `desired`. Objects may have
/// extra keys (defaults, status, other managers' fields); arrays of objects are
/// compared element by element (the observed list may be longer, as server-side
/// apply merges list entries); arrays of scalars and scalars must be equal.
pub fn is_applied(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(wanted), Value::Object(present)) => {
            wanted.iter().all(|(key, value)| present.get(key).is_some_and(|current| is_applied(value, current)))
        }
        (Value::Array(wanted), Value::Array(present)) if wanted.iter().any(Value::is_object) => {
            wanted.len() <= present.len() && wanted.iter().zip(present).all(|(value, current)| is_applied(value, current))
        }
        (wanted, present) => wanted == present,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::is_applied;

    #[test]
    fn extra_observed_fields_do_not_count_as_drift() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"cores": 2}});
        let observed = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "uid": "u"}, "spec": {"cores": 2, "extra": true}, "status": {}});
        assert!(is_applied(&desired, &observed));
    }

    #[test]
    fn changed_or_missing_fields_are_drift() {
        let desired = json!({"spec": {"cores": 2, "disks": [{"name": "a"}, {"name": "b"}]}});
        assert!(!is_applied(&desired, &json!({"spec": {"cores": 4, "disks": [{"name": "a"}, {"name": "b"}]}})));
        assert!(!is_applied(&desired, &json!({"spec": {"cores": 2, "disks": [{"name": "a"}]}})));
        assert!(!is_applied(&desired, &json!({"spec": {"cores": 2, "disks": [{"name": "b"}, {"name": "a"}]}})));
        assert!(!is_applied(&json!({"modes": ["ReadWriteOnce"]}), &json!({"modes": ["ReadWriteOnce", "ReadWriteMany"]})));
    }
}
