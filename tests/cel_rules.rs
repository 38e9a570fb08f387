//! The CEL rules of our CRD (`x-kubernetes-validations`), evaluated with
//! `cel-interpreter`: every rule compiles, holds for every example, and the
//! rule meant for a mistake is the one (and the only one) that fails on it;
//! `wukong validate` refuses the same mistakes.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/cel.rs"]
mod cel;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn schema() -> Value {
    let crd = serde_json::to_value(wukong::api::crd()).expect("the CRD serialises");
    cel::storage_schema(&crd).expect("a storage version with a schema").clone()
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("examples"))
        .expect("examples/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    files.sort();
    files
}

fn example(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("example");
    wukong::yaml::documents(&text).first().expect("a document").parse().expect("YAML")
}

/// Every `x-kubernetes-validations` entry anywhere in a value.
fn count_validations(value: &Value) -> usize {
    match value {
        Value::Object(map) => {
            let here = map.get("x-kubernetes-validations").and_then(Value::as_array).map_or(0, Vec::len);
            here + map.values().map(count_validations).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_validations).sum(),
        _ => 0,
    }
}

#[test]
fn every_rule_compiles_and_is_found() {
    let schema = schema();
    let rules = cel::rules(&schema).unwrap_or_else(|errors| panic!("rules that do not compile:\n{}", errors.join("\n")));
    assert_eq!(rules.len(), count_validations(&schema), "the walker misses rules");
    assert!(!rules.is_empty());
}

#[test]
fn every_rule_holds_for_every_example_and_each_is_exercised() {
    let schema = schema();
    let rules = cel::rules(&schema).expect("rules compile");
    let mut exercised = BTreeSet::new();
    let mut failures = Vec::new();
    for path in examples() {
        for outcome in cel::evaluate(&schema, &rules, &example(&path)) {
            exercised.insert(outcome.message.clone());
            if outcome.result != Ok(true) {
                failures.push(format!("{}: {} ({}): {:?}", path.display(), outcome.path, outcome.message, outcome.result));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let unexercised: Vec<&str> = rules.iter().map(|rule| rule.message.as_str()).filter(|message| !exercised.contains(*message)).collect();
    assert!(unexercised.is_empty(), "no example reaches these rules: {unexercised:?}");
}

type Mutate = fn(&mut Value);

#[test]
fn each_mistake_breaks_exactly_its_rule() {
    let schema = schema();
    let rules = cel::rules(&schema).expect("rules compile");
    let base = example(&Path::new(MANIFEST).join("examples/web-server-01.yaml"));
    let cases: [(&str, Mutate, &str); 17] = [
        ("two boot disks", |w| w["spec"]["disks"][2]["boot"] = json!(true), "at most one disk may be the boot disk"),
        (
            "two pod networks",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "pod"}, {"name": "b", "type": "pod"}]),
            "at most one network may be the pod network",
        ),
        (
            "vlan without vlanId",
            |w| drop(w["spec"]["networks"][0].as_object_mut().unwrap().remove("vlanId")),
            "a vlan network needs vlanId",
        ),
        (
            "pod network with a bridge",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "pod", "bridge": "br0"}]),
            "a pod network takes no bridge, vlanId or resourceName",
        ),
        (
            "sriov without resourceName",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "sriov"}]),
            "an sriov network needs resourceName",
        ),
        (
            "resourceName on a bridge network",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "bridge", "resourceName": "intel.com/vf"}]),
            "resourceName is only for sriov networks",
        ),
        (
            "sriov with a bridge",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "sriov", "resourceName": "intel.com/vf", "bridge": "br0"}]),
            "an sriov network takes no bridge",
        ),
        (
            "static address on the pod network",
            |w| w["spec"]["networks"] = json!([{"name": "a", "type": "pod", "ipConfig": {"mode": "static", "address": "10.0.2.2/24"}}]),
            "the pod network gets its address by DHCP",
        ),
        (
            "static without address",
            |w| drop(w["spec"]["networks"][0]["ipConfig"].as_object_mut().unwrap().remove("address")),
            "a static ipConfig needs address",
        ),
        (
            "dhcp with address",
            |w| w["spec"]["networks"][0]["ipConfig"]["mode"] = json!("dhcp"),
            "a dhcp ipConfig takes no address or gateway",
        ),
        ("pool mode without pool", |w| w["spec"]["networks"][0]["ipConfig"] = json!({"mode": "pool"}), "a pool ipConfig needs pool"),
        (
            "dhcp naming a pool",
            |w| w["spec"]["networks"][0]["ipConfig"] = json!({"mode": "dhcp", "pool": "vlan100"}),
            "a dhcp ipConfig takes no pool",
        ),
        (
            "pool mode with an address",
            |w| w["spec"]["networks"][0]["ipConfig"] = json!({"mode": "pool", "pool": "vlan100", "address": "10.0.0.5/24"}),
            "a pool ipConfig takes its address and gateway from the pool",
        ),
        (
            "existingPVC with size",
            |w| w["spec"]["disks"][1]["size"] = json!("1Gi"),
            "a disk takes exactly one source: existingPVC, or size (with image to import it, without for a blank volume)",
        ),
        (
            "disk with no source",
            |w| drop(w["spec"]["disks"][2].as_object_mut().unwrap().remove("size")),
            "a disk takes exactly one source: existingPVC, or size (with image to import it, without for a blank volume)",
        ),
        (
            "existingPVC with deletionPolicy Delete",
            |w| w["spec"]["disks"][1]["deletionPolicy"] = json!("Delete"),
            "an existingPVC is never deleted; deletionPolicy Delete does not apply to it",
        ),
        (
            "Exists toleration with a value",
            |w| w["spec"]["highAvailability"]["tolerations"][0]["operator"] = json!("Exists"),
            "an Exists toleration takes no value",
        ),
    ];
    for (what, mutate, expected) in cases {
        let mut wukong = base.clone();
        mutate(&mut wukong);
        let outcomes = cel::evaluate(&schema, &rules, &wukong);
        let errors: Vec<&cel::Outcome> = outcomes.iter().filter(|outcome| outcome.result.is_err()).collect();
        assert!(errors.is_empty(), "{what}: {errors:?}");
        let failed: BTreeSet<&str> =
            outcomes.iter().filter(|outcome| outcome.result == Ok(false)).map(|outcome| outcome.message.as_str()).collect();
        assert_eq!(failed, BTreeSet::from([expected]), "{what}");
        // The offline validation refuses what the API server refuses.
        let text = wukong::yaml::to_string(&wukong).expect("serialises");
        let parsed = wukong::render::parse_documents(&text).unwrap_or_else(|errors| panic!("{what}: {errors:?}"));
        assert!(wukong::validate::validate(&parsed[0]).is_err(), "{what}: the CRD refuses it, wukong validate accepts it");
    }
}

/// The IPPool and IPLease rules: they compile, hold for the sample pool and a
/// lease, and each catches its mistake.
#[test]
fn pool_and_lease_rules_hold_and_catch_their_mistakes() {
    let crds = wukong::api::crds();
    let schema_of = |file: &str| {
        let crd = crds.iter().find(|(name, _)| *name == file).map(|(_, crd)| serde_json::to_value(crd).expect("serialises"));
        cel::storage_schema(&crd.expect("a known CRD")).expect("a storage version with a schema").clone()
    };
    let pool_schema = schema_of("ippools.vm.novasphere.dev.yaml");
    let pool_rules = cel::rules(&pool_schema).expect("rules compile");
    assert_eq!(pool_rules.len(), count_validations(&pool_schema));
    let pool = example(&Path::new(MANIFEST).join("config/samples/ippool-vlan100.yaml"));
    let failed = |schema: &Value, rules: &[cel::Rule], object: &Value| -> BTreeSet<String> {
        let outcomes = cel::evaluate(schema, rules, object);
        assert!(outcomes.iter().all(|outcome| outcome.result.is_ok()), "{outcomes:?}");
        outcomes.iter().filter(|outcome| outcome.result == Ok(false)).map(|outcome| outcome.message.clone()).collect()
    };
    assert!(failed(&pool_schema, &pool_rules, &pool).is_empty());
    for (field, message) in [
        ("start", "start is of the same address family as cidr"),
        ("end", "end is of the same address family as cidr"),
        ("gateway", "gateway is of the same address family as cidr"),
    ] {
        let mut mixed = pool.clone();
        mixed["spec"][field] = json!("2001:db8::1");
        assert_eq!(failed(&pool_schema, &pool_rules, &mixed), BTreeSet::from([message.to_string()]), "{field}");
    }

    let lease_schema = schema_of("ipleases.vm.novasphere.dev.yaml");
    let lease_rules = cel::rules(&lease_schema).expect("rules compile");
    let mut lease = json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "IPLease",
        "metadata": {"name": "vlan100.192-168-100-10"},
        "spec": {"pool": "vlan100", "address": "192.168.100.10", "mode": "pool",
                 "holder": {"namespace": "prod", "name": "a", "uid": "u", "network": "mgmt", "creationTimestamp": "2026-11-22T09:00:00Z"}},
    });
    assert!(failed(&lease_schema, &lease_rules, &lease).is_empty());
    lease["spec"]["segment"] = json!("vlan/br0/100");
    assert_eq!(failed(&lease_schema, &lease_rules, &lease), BTreeSet::from(["a lease is in exactly one of pool or segment".to_string()]));
}
