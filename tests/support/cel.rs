//! The CEL rules (`x-kubernetes-validations`) of a CRD schema, evaluated on an
//! object the way the API server scopes them: each rule of a schema node runs
//! with `self` bound to the value at that node, for every value the node
//! describes (every item of a list, every property present).
//!
//! Evaluated with the `cel-interpreter` crate, which covers the subset our
//! rules use (`has`, `filter`, `size`, comparisons, `?:`); Kubernetes' own
//! extension libraries are not available. Included with `#[path]` by the tests
//! that need it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::{Context, Program};
use serde_json::Value;

/// One rule, where it sits in the schema, and its compiled program.
pub struct Rule {
    /// Schema location, e.g. `spec.networks[]`.
    pub location: String,
    /// The CEL source.
    pub rule: String,
    /// The message the API server shows when the rule is false.
    pub message: String,
    program: Program,
}

/// The outcome of one rule on one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Path of the value, e.g. `spec.networks[1]`.
    pub path: String,
    /// The rule's message.
    pub message: String,
    /// `Ok(result)` or the evaluation error.
    pub result: Result<bool, String>,
}

/// Every rule of the schema, or the rules that do not compile.
pub fn rules(schema: &Value) -> Result<Vec<Rule>, Vec<String>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    collect(schema, "", &mut found, &mut errors);
    if errors.is_empty() { Ok(found) } else { Err(errors) }
}

fn collect(schema: &Value, location: &str, found: &mut Vec<Rule>, errors: &mut Vec<String>) {
    for validation in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        let rule = validation["rule"].as_str().unwrap_or_default().to_string();
        let message = validation["message"].as_str().unwrap_or_default().to_string();
        match Program::compile(&rule) {
            Ok(program) => found.push(Rule { location: location.to_string(), rule, message, program }),
            Err(error) => errors.push(format!("{location}: {rule}: {error}")),
        }
    }
    for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        collect(property, &join(location, name), found, errors);
    }
    if let Some(items) = schema.get("items") {
        collect(items, &format!("{location}[]"), found, errors);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|values| values.is_object()) {
        collect(values, &format!("{location}{{}}"), found, errors);
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// Evaluates every rule on every value of `object` its schema node describes.
pub fn evaluate(schema: &Value, rules: &[Rule], object: &Value) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    walk(schema, "", object, "", rules, &mut outcomes);
    outcomes
}

fn walk(schema: &Value, location: &str, value: &Value, path: &str, rules: &[Rule], outcomes: &mut Vec<Outcome>) {
    for rule in rules.iter().filter(|rule| rule.location == location) {
        outcomes.push(Outcome { path: path.to_string(), message: rule.message.clone(), result: run(rule, value) });
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, child) in map {
                if let Some(property) = properties.and_then(|properties| properties.get(name)) {
                    walk(property, &join(location, name), child, &join(path, name), rules, outcomes);
                } else if let Some(values) = schema.get("additionalProperties").filter(|values| values.is_object()) {
                    walk(values, &format!("{location}{{}}"), child, &format!("{path}[{name}]"), rules, outcomes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    walk(item_schema, &format!("{location}[]"), item, &format!("{path}[{index}]"), rules, outcomes);
                }
            }
        }
        _ => {}
    }
}

fn run(rule: &Rule, value: &Value) -> Result<bool, String> {
    let mut context = Context::default();
    context.add_variable_from_value("self", to_cel(value));
    match rule.program.execute(&context) {
        Ok(cel_interpreter::Value::Bool(result)) => Ok(result),
        Ok(other) => Err(format!("{} returned {other:?}, not a bool", rule.rule)),
        Err(error) => Err(format!("{}: {error}", rule.rule)),
    }
}

/// JSON to CEL, with every integer an `int` as in Kubernetes.
/// A JSON value as a CEL value.
pub fn to_cel(value: &Value) -> cel_interpreter::Value {
    use cel_interpreter::Value as Cel;
    match value {
        Value::Null => Cel::Null,
        Value::Bool(flag) => Cel::Bool(*flag),
        Value::Number(number) => number.as_i64().map_or_else(|| Cel::Float(number.as_f64().unwrap_or_default()), Cel::Int),
        Value::String(text) => Cel::String(Arc::new(text.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => Cel::from(map.iter().map(|(key, value)| (key.clone(), to_cel(value))).collect::<HashMap<String, Cel>>()),
    }
}

/// The openAPIV3Schema of the storage version of a CRD given as JSON.
pub fn storage_schema(crd: &Value) -> Option<&Value> {
    crd.pointer("/spec/versions")?.as_array()?.iter().find(|version| version["storage"] == true)?.pointer("/schema/openAPIV3Schema")
}
