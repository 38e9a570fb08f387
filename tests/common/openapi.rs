//! Offline validation of objects against a CRD's structural openAPIV3Schema.
//!
//! In: a CustomResourceDefinition YAML document and objects as `serde_json::Value`.
//! Out: every problem the Kubernetes API server would reject or silently prune, as `"path: message"` strings.
//! Not checked: CEL rules (`x-kubernetes-validations`), ObjectMeta under the root `metadata`, formats other than int32/date-time.
#![allow(dead_code)]

use serde_json::{Map, Value};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];
const DATE_TIME: &str = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$";

/// A CRD's storage-version openAPIV3Schema, loaded from a CRD YAML document.
pub struct CrdSchema {
    kind: String,
    group: String,
    version: String,
    schema: Value,
}

impl CrdSchema {
    /// Parses a CustomResourceDefinition YAML (one document), picks the version with `storage: true`
    /// and keeps its `schema.openAPIV3Schema`. Errors (as String) name what is missing.
    pub fn from_crd_yaml(yaml: &str) -> Result<CrdSchema, String> {
        let crd: Value = wukong::yaml::from_str(yaml).map_err(|error| format!("invalid crd yaml: {error}"))?;
        if let Some(kind) = text(&crd, "kind").filter(|kind| *kind != "CustomResourceDefinition") {
            return Err(format!("expected kind CustomResourceDefinition, got {kind}"));
        }
        let field = |pointer: &str| crd.pointer(pointer).and_then(Value::as_str).ok_or(format!("missing {pointer}"));
        let (group, kind) = (field("/spec/group")?.to_string(), field("/spec/names/kind")?.to_string());
        let versions = crd.pointer("/spec/versions").and_then(Value::as_array).ok_or("missing /spec/versions")?;
        let storage = versions.iter().find(|version| flag(version, "storage"));
        let storage = storage.ok_or("no version in /spec/versions has storage: true")?;
        let version = text(storage, "name").ok_or("storage version has no name")?.to_string();
        let schema = storage.pointer("/schema/openAPIV3Schema").filter(|schema| schema.is_object());
        let schema = schema.ok_or(format!("version {version} has no schema.openAPIV3Schema"))?.clone();
        Ok(CrdSchema { kind, group, version, schema })
    }

    /// The CRD's kind, e.g. `DataVolume`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The storage version's apiVersion, `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// Validates one object (as JSON) against the schema like a Kubernetes API server would,
    /// returning every problem as "path: message", e.g.
    /// "spec.template.spec.domain.devices.disks[0].bootOrder: expected integer, got string".
    /// Empty vec means valid.
    pub fn validate(&self, object: &Value) -> Vec<String> {
        let Some(map) = object.as_object() else {
            return vec![format!("<root>: expected object, got {}", type_name(object))];
        };
        let mut errors = Vec::new();
        for (field, want) in [("apiVersion", self.api_version()), ("kind", self.kind.clone())] {
            match map.get(field) {
                Some(Value::String(got)) if *got == want => {}
                Some(got) => errors.push(format!("{field}: expected {want:?}, got {got}")),
                None => errors.push(format!("{field}: missing required field {field:?}")),
            }
        }
        if let Some(metadata) = map.get("metadata").filter(|metadata| !metadata.is_object()) {
            errors.push(format!("metadata: expected object, got {}", type_name(metadata)));
        }
        check(&self.schema, object, "", Mode::Structural { preserve: false }, &mut errors);
        errors
    }
}

/// `Structural` reports unknown fields (unless preserved); `Branch` (inside allOf/anyOf/oneOf/not) checks values only.
#[derive(Clone, Copy)]
enum Mode {
    Structural { preserve: bool },
    Branch,
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

fn text<'a>(schema: &'a Value, name: &str) -> Option<&'a str> {
    schema.get(name).and_then(Value::as_str)
}

fn list<'a>(schema: &'a Value, name: &str) -> &'a [Value] {
    schema.get(name).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

fn field_path(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn same(left: &Value, right: &Value) -> bool {
    match (left.as_f64(), right.as_f64()) {
        (Some(left), Some(right)) => left == right,
        _ => left == right,
    }
}

/// Reports `count` (characters, items or properties) outside the schema's `minimum`/`maximum` keywords.
fn check_count(schema: &Value, (minimum, maximum): (&str, &str), count: usize, noun: &str, path: &str, errors: &mut Vec<String>) {
    let count = count as u64;
    if let Some(limit) = schema.get(minimum).and_then(Value::as_u64).filter(|limit| count < *limit) {
        errors.push(format!("{}: must have at least {limit} {noun}, got {count}", at(path)));
    }
    if let Some(limit) = schema.get(maximum).and_then(Value::as_u64).filter(|limit| count > *limit) {
        errors.push(format!("{}: must have at most {limit} {noun}, got {count}", at(path)));
    }
}

fn check(schema: &Value, value: &Value, path: &str, mode: Mode, errors: &mut Vec<String>) {
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let expected = if int_or_string { Some("integer or string") } else { text(schema, "type") };
    let integer = value.is_i64() || value.is_u64();
    let matches = match (value, expected) {
        (_, None) => true,
        (Value::Null, _) => flag(schema, "nullable"),
        (_, Some("integer or string")) => value.is_string() || integer,
        (_, Some("integer")) => integer,
        (_, Some(name)) => name == type_name(value) || (name == "number" && value.is_number()),
    };
    if !matches {
        errors.push(format!("{}: expected {}, got {}", at(path), expected.unwrap_or_default(), type_name(value)));
        return;
    }
    if value.is_null() {
        return;
    }
    let allowed = list(schema, "enum");
    if !allowed.is_empty() && !allowed.iter().any(|candidate| same(candidate, value)) {
        let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!("{}: unsupported value {value}, expected one of [{}]", at(path), allowed.join(", ")));
    }
    match value {
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::String(string) => check_string(schema, string, path, errors),
        Value::Array(items) => check_array(schema, items, path, mode, errors),
        Value::Object(map) => check_object(schema, map, path, mode, errors),
        _ => {}
    }
    check_combinators(schema, value, path, errors);
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let number = value.as_f64().unwrap_or_default();
    for (keyword, exclusive, relation) in [("minimum", "exclusiveMinimum", "greater than"), ("maximum", "exclusiveMaximum", "less than")] {
        let Some(limit) = schema.get(keyword).filter(|limit| limit.is_number()) else {
            continue;
        };
        let exclusive = flag(schema, exclusive);
        let beyond =
            if keyword == "minimum" { number < limit.as_f64().unwrap_or_default() } else { number > limit.as_f64().unwrap_or_default() };
        if beyond || (exclusive && same(value, limit)) {
            let relation = if exclusive { relation.to_string() } else { format!("{relation} or equal to") };
            errors.push(format!("{}: must be {relation} {limit}, got {value}", at(path)));
        }
    }
    if let Some(divisor) = schema.get("multipleOf").and_then(Value::as_f64).filter(|divisor| *divisor > 0.0)
        && (number / divisor).fract() != 0.0
    {
        errors.push(format!("{}: must be a multiple of {divisor}, got {value}", at(path)));
    }
    let in_int32 = value.as_i64().is_some_and(|integer| i32::try_from(integer).is_ok());
    if text(schema, "format") == Some("int32") && !value.is_f64() && !in_int32 {
        errors.push(format!("{}: {value} is out of int32 range", at(path)));
    }
}

fn check_string(schema: &Value, string: &str, path: &str, errors: &mut Vec<String>) {
    check_count(schema, ("minLength", "maxLength"), string.chars().count(), "characters", path, errors);
    // Kubernetes patterns are ECMA-262; those the regex crate cannot compile (lookaround, backreferences) are skipped.
    if let Some(pattern) = text(schema, "pattern")
        && let Ok(regex) = regex::Regex::new(pattern)
        && !regex.is_match(string)
    {
        errors.push(format!("{}: {string:?} does not match pattern {pattern:?}", at(path)));
    }
    let date_time = || regex::Regex::new(DATE_TIME).is_ok_and(|regex| regex.is_match(string));
    if text(schema, "format") == Some("date-time") && !date_time() {
        errors.push(format!("{}: {string:?} is not a valid date-time", at(path)));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, mode: Mode, errors: &mut Vec<String>) {
    check_count(schema, ("minItems", "maxItems"), items.len(), "items", path, errors);
    // Items inherit x-kubernetes-preserve-unknown-fields from their array, as in the API server's pruning.
    let item_mode = match mode {
        Mode::Structural { preserve } => Mode::Structural { preserve: preserve || flag(schema, "x-kubernetes-preserve-unknown-fields") },
        Mode::Branch => Mode::Branch,
    };
    if let Some(item_schema) = schema.get("items").filter(|item_schema| item_schema.is_object()) {
        for (index, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{index}]"), item_mode, errors);
        }
    }
    let keys: Vec<&str> = match text(schema, "x-kubernetes-list-type") {
        Some("map") => list(schema, "x-kubernetes-list-map-keys").iter().filter_map(Value::as_str).collect(),
        Some("set") => Vec::new(),
        _ => return,
    };
    let identity = |item: &Value| {
        if keys.is_empty() {
            item.clone()
        } else {
            Value::Array(keys.iter().map(|key| item.get(*key).cloned().unwrap_or_default()).collect())
        }
    };
    let identities: Vec<Value> = items.iter().map(identity).collect();
    for (index, current) in identities.iter().enumerate().filter(|(index, current)| identities[..*index].contains(current)) {
        let description = match current {
            Value::Array(values) if !keys.is_empty() => {
                let pairs: Vec<String> = keys.iter().zip(values).map(|(key, value)| format!("{key}={value}")).collect();
                format!("duplicate entry with key {}", pairs.join(", "))
            }
            _ => format!("duplicate value {current}"),
        };
        errors.push(format!("{path}[{index}]: {description}"));
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, mode: Mode, errors: &mut Vec<String>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let (preserve, child_mode) = match mode {
        Mode::Structural { preserve } => {
            (preserve || flag(schema, "x-kubernetes-preserve-unknown-fields"), Mode::Structural { preserve: false })
        }
        Mode::Branch => (true, Mode::Branch),
    };
    let root = path.is_empty() && matches!(mode, Mode::Structural { .. });
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    for (key, child) in map {
        let child_path = field_path(path, key);
        let declared = properties.and_then(|properties| properties.get(key));
        let meta = META_FIELDS.contains(&key.as_str());
        if root && meta {
            continue; // checked by `CrdSchema::validate`
        }
        if embedded && meta && (key == "metadata" || declared.is_none()) {
            if key == "metadata" && !child.is_object() {
                errors.push(format!("{child_path}: expected object, got {}", type_name(child)));
            }
            continue;
        }
        match (declared, schema.get("additionalProperties")) {
            (Some(property), _) => check(property, child, &child_path, child_mode, errors),
            (None, Some(values)) if values.is_object() => check(values, child, &format!("{path}[{key}]"), child_mode, errors),
            (None, Some(Value::Bool(true))) => {}
            _ if preserve => {}
            _ => errors.push(format!("{child_path}: unknown field {key:?}")),
        }
    }
    for name in list(schema, "required").iter().filter_map(Value::as_str).filter(|name| !map.contains_key(*name)) {
        errors.push(format!("{}: missing required field {name:?}", field_path(path, name)));
    }
    check_count(schema, ("minProperties", "maxProperties"), map.len(), "properties", path, errors);
}

fn check_combinators(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let branch_errors = |branch: &Value| {
        let mut found = Vec::new();
        check(branch, value, path, Mode::Branch, &mut found);
        found
    };
    let branches = |name: &str| -> Vec<Vec<String>> { list(schema, name).iter().map(branch_errors).collect() };
    let summary = |results: &[Vec<String>]| results.iter().map(|found| found.join("; ")).collect::<Vec<_>>().join(" | ");
    errors.extend(branches("allOf").into_iter().flatten());
    let any = branches("anyOf");
    if !any.is_empty() && any.iter().all(|found| !found.is_empty()) {
        errors.push(format!("{}: must match at least one anyOf schema ({})", at(path), summary(&any)));
    }
    let one = branches("oneOf");
    let matched = one.iter().filter(|found| found.is_empty()).count();
    if !one.is_empty() && matched != 1 {
        let detail = if matched == 0 { format!("matched none ({})", summary(&one)) } else { format!("matched {matched}") };
        errors.push(format!("{}: must match exactly one oneOf schema, {detail}", at(path)));
    }
    if schema.get("not").is_some_and(|negated| negated.is_object() && branch_errors(negated).is_empty()) {
        errors.push(format!("{}: must not match the \"not\" schema", at(path)));
    }
}

#[cfg(test)]
mod tests {
    use super::CrdSchema;
    use serde_json::{Value, json};

    fn widget(spec_schema: Value) -> CrdSchema {
        let schema = json!({"type": "object", "properties": {"spec": spec_schema, "status": {"type": "object"}}});
        let version = json!({"name": "v1", "storage": true, "schema": {"openAPIV3Schema": schema}});
        let spec = json!({"group": "example.com", "names": {"kind": "Widget"}, "versions": [version]});
        CrdSchema::from_crd_yaml(&json!({"kind": "CustomResourceDefinition", "spec": spec}).to_string()).expect("widget crd")
    }

    /// Each row is `spec schema => spec value => expected errors joined by " && " (or valid)`; rows may wrap lines.
    fn run(rows: &[&str]) {
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        for row in rows {
            let parts: Vec<&str> = row.split("=>").map(str::trim).collect();
            let [schema, spec, expected] = parts[..] else { panic!("malformed row {row}") };
            let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|error| panic!("{row}: {error}"));
            let object = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": parse(spec)});
            let errors = widget(parse(schema)).validate(&object).join(" && ");
            assert_eq!(if errors.is_empty() { "valid".to_string() } else { errors }, words(expected), "row {row}");
        }
    }

    #[test]
    fn unknown_fields_and_maps() {
        run(&[
            r#"{"type":"object","properties":{"a":{"type":"string"}}} => {"a":"x"} => valid"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}}} => {"b":"x"} => spec.b: unknown field "b""#,
            r#"{"type":"object","properties":{"a":{"type":"object"}}} => {"a":{"b":{}}} => spec.a.b: unknown field "b""#,
            r#"{"type":"object","x-kubernetes-preserve-unknown-fields":true} => {"b":{"c":1}} => valid"#,
            r#"{"type":"array","x-kubernetes-preserve-unknown-fields":true,"items":{"type":"object"}} => [{"b":1}] => valid"#,
            r#"{"type":"object","x-kubernetes-embedded-resource":true} => {"kind":"Pod","metadata":{"a":1}} => valid"#,
            r#"{"type":"object","x-kubernetes-embedded-resource":true} => {"metadata":1} => spec.metadata: expected object, got integer"#,
            r#"{"type":"object","additionalProperties":true} => {"b":[1]} => valid"#,
            r#"{"type":"object","additionalProperties":{"type":"string","maxLength":3}} => {"k":"abc","l":"abcd","m":1}
                => spec[l]: must have at most 3 characters, got 4 && spec[m]: expected string, got integer"#,
            r#"{"type":"object","maxProperties":1,"additionalProperties":true} => {"a":1,"b":2}
                => spec: must have at most 1 properties, got 2"#,
            r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}} => {}
                => spec.name: missing required field "name""#,
        ]);
    }

    #[test]
    fn types_and_values() {
        run(&[
            r#"{"x-kubernetes-int-or-string":true} => 8080 => valid"#,
            r#"{"x-kubernetes-int-or-string":true} => "http" => valid"#,
            r#"{"x-kubernetes-int-or-string":true} => true => spec: expected integer or string, got boolean"#,
            r#"{"type":"string","nullable":true} => null => valid"#,
            r#"{"type":"string"} => null => spec: expected string, got null"#,
            r#"{"type":"integer"} => 1.5 => spec: expected integer, got number"#,
            r#"{"type":"number"} => 2 => valid"#,
            r#"{"type":"boolean"} => "true" => spec: expected boolean, got string"#,
            r#"{"type":"array","items":{"type":"integer"}} => [1,"2"] => spec[1]: expected integer, got string"#,
            r#"{"type":"string","enum":["a","b"]} => "c" => spec: unsupported value "c", expected one of ["a", "b"]"#,
            r#"{"type":"string","pattern":"^[a-z]+$"} => "abc" => valid"#,
            r#"{"type":"string","pattern":"^[a-z]+$"} => "aBc" => spec: "aBc" does not match pattern "^[a-z]+$""#,
            r#"{"type":"string","pattern":"^(?!x)"} => "x" => valid"#,
            r#"{"type":"string","maxLength":2} => "żó" => valid"#,
            r#"{"type":"string","minLength":3} => "żó" => spec: must have at least 3 characters, got 2"#,
            r#"{"type":"integer","minimum":1,"maximum":3} => 4 => spec: must be less than or equal to 3, got 4"#,
            r#"{"type":"number","minimum":0,"exclusiveMinimum":true} => 0 => spec: must be greater than 0, got 0"#,
            r#"{"type":"integer","format":"int32"} => 4294967296 => spec: 4294967296 is out of int32 range"#,
            r#"{"type":"string","format":"date-time"} => "2024-05-01T10:00:00.5+02:00" => valid"#,
            r#"{"type":"string","format":"date-time"} => "yesterday" => spec: "yesterday" is not a valid date-time"#,
            r#"{"type":"array","maxItems":1,"items":{"type":"integer"}} => [1,2] => spec: must have at most 1 items, got 2"#,
            r#"{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}} => ["a","b","a"]
                => spec[2]: duplicate value "a""#,
            r#"{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name","protocol"],
                "items":{"type":"object","additionalProperties":true}}
                => [{"name":"a","protocol":"TCP"},{"name":"a","protocol":"UDP"}] => valid"#,
            r#"{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name","protocol"],
                "items":{"type":"object","additionalProperties":true}}
                => [{"name":"a","protocol":"TCP"},{"name":"a","protocol":"TCP","port":2}]
                => spec[1]: duplicate entry with key name="a", protocol="TCP""#,
        ]);
    }

    #[test]
    fn combinators_check_values_only() {
        run(&[
            r#"{"anyOf":[{"type":"integer"},{"type":"string"}],"x-kubernetes-int-or-string":true,"pattern":"^[0-9]+Gi$"} => 10 => valid"#,
            r#"{"anyOf":[{"type":"integer"},{"type":"string"}],"x-kubernetes-int-or-string":true,"pattern":"^[0-9]+Gi$"} => "1Gi"
                => valid"#,
            r#"{"anyOf":[{"type":"integer"},{"type":"string"}],"x-kubernetes-int-or-string":true,"pattern":"^[0-9]+Gi$"} => "1 GB"
                => spec: "1 GB" does not match pattern "^[0-9]+Gi$""#,
            r#"{"type":"integer","allOf":[{"minimum":1},{"maximum":9}]} => 5 => valid"#,
            r#"{"type":"integer","allOf":[{"minimum":1},{"maximum":9}]} => 10 => spec: must be less than or equal to 9, got 10"#,
            r#"{"type":"integer","anyOf":[{"minimum":5},{"maximum":1}]} => 3 => spec: must match at least one anyOf schema
                (spec: must be greater than or equal to 5, got 3 | spec: must be less than or equal to 1, got 3)"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"allOf":[{"properties":{"a":{"maxLength":1}}}]} => {"a":"xy"}
                => spec.a: must have at most 1 characters, got 2"#,
            r#"{"type":"object","properties":{"a":{},"b":{},"c":{}},"oneOf":[{"required":["a"]},{"required":["b"]}]} => {"a":1}
                => valid"#,
            r#"{"type":"object","properties":{"a":{},"b":{},"c":{}},"oneOf":[{"required":["a"]},{"required":["b"]}]} => {"a":1,"b":2}
                => spec: must match exactly one oneOf schema, matched 2"#,
            r#"{"type":"object","properties":{"a":{},"b":{},"c":{}},"oneOf":[{"required":["a"]},{"required":["b"]}]} => {"c":3}
                => spec: must match exactly one oneOf schema, matched none
                (spec.a: missing required field "a" | spec.b: missing required field "b")"#,
            r#"{"type":"object","properties":{"c":{}},"not":{"required":["c"]}} => {"c":3} => spec: must not match the "not" schema"#,
        ]);
    }

    #[test]
    fn root_identity_metadata_and_status() {
        let schema = widget(json!({"type": "object"}));
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"labels": {"a": "b"}, "other": [1]}});
        object["status"] = json!({});
        assert_eq!(schema.validate(&object), Vec::<String>::new());
        object["apiVersion"] = json!("example.com/v2");
        object["kind"] = json!(null);
        object["extra"] = json!(1);
        let expected = [r#"apiVersion: expected "example.com/v1", got "example.com/v2""#, r#"kind: expected "Widget", got null"#];
        assert_eq!(schema.validate(&object), [expected[0], expected[1], r#"extra: unknown field "extra""#]);
        assert_eq!(schema.validate(&json!([])), ["<root>: expected object, got array"]);
    }

    #[test]
    fn loading_names_what_is_missing() {
        let load = |yaml: &str| CrdSchema::from_crd_yaml(yaml).err().unwrap_or_default();
        let yaml =
            "kind: CustomResourceDefinition\nspec: {group: example.com, names: {kind: Widget}, versions: [{name: v1, storage: false}]}";
        assert_eq!(load(yaml), "no version in /spec/versions has storage: true");
        assert_eq!(load(&yaml.replace("false", "true")), "version v1 has no schema.openAPIV3Schema");
        assert_eq!(load("kind: CustomResourceDefinition"), "missing /spec/group");
        assert_eq!(load("kind: Deployment"), "expected kind CustomResourceDefinition, got Deployment");
    }

    #[test]
    fn real_datavolume_crd() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/crds/cdi.kubevirt.io_datavolumes.yaml");
        let schema = CrdSchema::from_crd_yaml(&std::fs::read_to_string(path).expect("read crd")).expect("parse crd");
        assert_eq!((schema.kind(), schema.api_version().as_str()), ("DataVolume", "cdi.kubevirt.io/v1beta1"));
        let storage = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}});
        let source = json!({"registry": {"url": "docker://quay.io/containerdisks/fedora:41"}});
        let mut volume = json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "root"},
            "spec": {"source": source, "storage": storage}});
        assert_eq!(schema.validate(&volume), Vec::<String>::new());
        volume["spec"]["storage"]["storageClass"] = json!("fast");
        volume["spec"]["preallocation"] = json!("yes");
        volume["spec"]["storage"]["resources"]["requests"]["storage"] = json!("10 GB");
        let errors = schema.validate(&volume);
        assert!(errors.contains(&r#"spec.storage.storageClass: unknown field "storageClass""#.to_string()), "{errors:?}");
        assert!(errors.contains(&"spec.preallocation: expected boolean, got string".to_string()), "{errors:?}");
        let quantity = r#"spec.storage.resources.requests[storage]: "10 GB" does not match pattern"#;
        assert!(errors.iter().any(|error| error.starts_with(quantity)), "{errors:?}");
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
