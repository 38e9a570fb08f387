//! The admission policy that keeps `spec.migration` to users who may migrate
//! VMs themselves (SPEC §6: the operator must not become a way around
//! KubeVirt's own authorization).
//!
//! Checked here without an API server: the manifest in `config/policy/` and
//! its chart copy are equal, read as the Kubernetes types without losing a
//! field, match creates and updates of Wukongs, bind with `Deny`, and ask the
//! authorizer for `create` on `virtualmachineinstancemigrations.kubevirt.io`
//! in the Wukong's namespace; every expression compiles, and the match
//! condition (evaluated with `cel-interpreter`) selects exactly the requests
//! that set or change `spec.migration`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

#[path = "support/cel.rs"]
mod cel;

use cel_interpreter::{Context, Program};
use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use serde_json::{Value, json};

const POLICY: &str = include_str!("../config/policy/migration_policy.yaml");
const CHART_POLICY: &str = include_str!("../charts/wukong/templates/migration-policy.yaml");

fn documents() -> Vec<Value> {
    wukong::yaml::documents(POLICY).iter().map(|document| document.parse::<Value>().expect("YAML")).collect()
}

/// Reads a document as `K`, failing when a field does not survive the round trip.
fn strict<K: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> K {
    let typed: K = serde_json::from_value(value.clone()).expect("the Kubernetes type reads it");
    assert_eq!(&serde_json::to_value(&typed).expect("json"), value, "a field the Kubernetes type does not know");
    typed
}

fn policy() -> ValidatingAdmissionPolicy {
    strict(&documents()[0])
}

#[test]
fn the_chart_ships_the_same_policy() {
    assert_eq!(CHART_POLICY, POLICY, "charts/wukong/templates/migration-policy.yaml differs from config/policy/migration_policy.yaml");
}

#[test]
fn the_policy_matches_wukong_writes_and_the_binding_denies() {
    let documents = documents();
    assert_eq!(documents.len(), 2);
    let policy = policy();
    let binding: ValidatingAdmissionPolicyBinding = strict(&documents[1]);
    let spec = policy.spec.expect("spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    let rules = spec.match_constraints.and_then(|constraints| constraints.resource_rules).expect("resource rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["vm.novasphere.dev".to_string()][..]));
    assert_eq!(rules[0].resources.as_deref(), Some(&["wukongs".to_string()][..]), "the status subresource is not matched");
    assert_eq!(rules[0].operations.as_deref(), Some(&["CREATE".to_string(), "UPDATE".to_string()][..]));
    let binding = binding.spec.expect("binding spec");
    assert_eq!(binding.policy_name.as_deref(), policy.metadata.name.as_deref());
    assert_eq!(binding.validation_actions.as_deref(), Some(&["Deny".to_string()][..]));
}

#[test]
fn the_policy_asks_the_authorizer_for_the_migrate_right() {
    let spec = policy().spec.expect("spec");
    let validations = spec.validations.expect("validations");
    assert_eq!(validations.len(), 1);
    let expression: String = validations[0].expression.split_whitespace().collect();
    assert_eq!(
        expression,
        "authorizer.group('kubevirt.io').resource('virtualmachineinstancemigrations').namespace(object.metadata.namespace).check('create').allowed()"
    );
    let message = validations[0].message_expression.clone().expect("a message expression");
    for needed in
        ["spec.migration", "virtualmachineinstancemigrations.kubevirt.io", "object.metadata.namespace", "request.userInfo.username"]
    {
        assert!(message.contains(needed), "the message names {needed}: {message}");
    }
    let mut expressions = vec![validations[0].expression.clone(), message];
    expressions.extend(spec.match_conditions.into_iter().flatten().map(|condition| condition.expression));
    for expression in expressions {
        Program::compile(&expression).unwrap_or_else(|error| panic!("{expression}: {error}"));
    }
}

/// Whether the match condition selects a request.
fn matches(operation: &str, object: &Value, old: Option<&Value>) -> bool {
    let spec = policy().spec.expect("spec");
    let condition = &spec.match_conditions.expect("match conditions")[0].expression;
    let program = Program::compile(condition).expect("compiles");
    let mut context = Context::default();
    context.add_variable_from_value("object", cel::to_cel(object));
    context.add_variable_from_value("oldObject", cel::to_cel(old.unwrap_or(&Value::Null)));
    context.add_variable_from_value("request", cel::to_cel(&json!({"operation": operation})));
    match program.execute(&context).expect("evaluates") {
        cel_interpreter::Value::Bool(result) => result,
        other => panic!("not a boolean: {other:?}"),
    }
}

#[test]
fn only_setting_or_changing_the_migration_is_checked() {
    let wukong = |migration: Option<Value>| {
        let mut spec = json!({"cpu": 2, "memory": "2Gi"});
        if let Some(migration) = migration {
            spec["migration"] = migration;
        }
        json!({"metadata": {"name": "vm", "namespace": "team"}, "spec": spec})
    };
    let first = wukong(Some(json!({"requestedAt": "1"})));
    let second = wukong(Some(json!({"requestedAt": "2"})));
    let elsewhere = wukong(Some(json!({"requestedAt": "1", "nodeSelector": {"zone": "b"}})));
    let none = wukong(None);
    let cases = [
        ("create with a migration", "CREATE", &first, None, true),
        ("create without", "CREATE", &none, None, false),
        ("update adding it", "UPDATE", &first, Some(&none), true),
        ("update with a new token", "UPDATE", &second, Some(&first), true),
        ("update with a new node selector", "UPDATE", &elsewhere, Some(&first), true),
        ("update leaving it as it was (re-applied manifest, other fields)", "UPDATE", &first, Some(&first), false),
        ("update removing it", "UPDATE", &none, Some(&first), false),
    ];
    for (what, operation, object, old, expected) in cases {
        assert_eq!(matches(operation, object, old), expected, "{what}");
    }
}
