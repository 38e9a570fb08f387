//! Property tests: no input makes the parser, the validator or the renderer
//! panic, and whatever passes validation renders children that the cluster
//! accepts.
//!
//! Two generators: arbitrary text, and structured Wukongs whose fields are
//! usually plausible and sometimes wrong (random names of any length, CPU
//! counts, memory strings, networks of every type with random VLANs, MACs and
//! addresses, disks with random sources, cloud-init, scheduling). For those
//! that validate, every child name must be a DNS label of at most 63
//! characters, the VM must be `<wukong>-vm` or shortened with a hash, and every
//! child must be valid against its upstream schema, the Wukong against our CRD
//! (structure and CEL rules).
//! Case counts stay modest so the suite stays fast.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "support/cel.rs"]
mod cel;
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use common::openapi::CrdSchema;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};
use wukong::render::{parse_documents, render};
use wukong::validate::validate;

/// Cases per property; `PROPTEST_CASES` overrides it for a longer local run.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- generators -----------------------------------------------------------

/// An object of the fields that are set.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(key, value)| value.map(|value| (key.to_string(), value))).collect::<Map<_, _>>())
}

fn text(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::from).boxed()
}

/// DNS labels, mostly valid, sometimes long (shortening) or wrong.
fn label() -> BoxedStrategy<Value> {
    prop_oneof![
        30 => text("[a-z]([-a-z0-9]{0,12}[a-z0-9])?"),
        3 => text("[a-z][-a-z0-9]{40,61}[a-z0-9]"),
        1 => text("[a-z]{64,70}"),
        1 => text("[A-Za-z0-9._ -]{0,12}"),
    ]
    .boxed()
}

fn quantity() -> BoxedStrategy<Value> {
    prop_oneof![
        20 => text("[1-9][0-9]{0,3}(Ki|Mi|Gi|Ti|k|M|G)"),
        1 => text("[0-9]{1,3}(\\.[0-9]{1,3})?(Gi|e[0-9]|E|m|)"),
        1 => text("[-+0-9.]{0,5}[a-zA-Z]{0,3}"),
    ]
    .boxed()
}

fn mac() -> BoxedStrategy<Value> {
    prop_oneof![
        10 => text("02(:[0-9a-f]{2}){5}"),
        1 => text("[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}"),
        1 => text("[0-9a-z:]{0,20}"),
    ]
    .boxed()
}

/// `ipConfig`: dhcp, static with a gateway in (or out of) the subnet, or junk.
fn ip_config() -> BoxedStrategy<Value> {
    let dns = prop::collection::vec(
        prop_oneof![16 => text("10\\.[0-9]{1,2}\\.0\\.53"), 2 => text("2001:db8::53"), 1 => text("[a-z.]{1,10}")],
        0..3,
    );
    let static_v4 =
        (0u8..=255, 1u8..=254, 8u8..=30, weighted(0.3, prop_oneof![4 => (1u8..=254).prop_map(Some), 1 => Just(None)]), dns.clone())
            .prop_map(|(second, host, prefix, gateway, dns)| {
                let address = format!("10.{second}.0.{host}/{prefix}");
                let gateway = gateway.map(|last| Value::from(last.map_or("192.0.2.1".to_string(), |last| format!("10.{second}.0.{last}"))));
                object(vec![
                    ("mode", Some(json!("static"))),
                    ("address", Some(address.into())),
                    ("gateway", gateway),
                    ("dns", (!dns.is_empty()).then(|| dns.into())),
                ])
            });
    let static_v6 = (1u16..0xffff, weighted(0.2, Just(json!("2001:db8::1")))).prop_map(|(host, gateway)| {
        object(vec![("mode", Some(json!("static"))), ("address", Some(format!("2001:db8::{host:x}/64").into())), ("gateway", gateway)])
    });
    let dhcp = dns.prop_map(|dns| object(vec![("mode", Some(json!("dhcp"))), ("dns", (!dns.is_empty()).then(|| dns.into()))]));
    let junk = (
        prop_oneof![Just(json!("static")), Just(json!("dhcp"))],
        weighted(0.7, text("[0-9./:a-f]{0,20}")),
        weighted(0.5, text("[0-9.:a-f]{0,16}")),
    )
        .prop_map(|(mode, address, gateway)| object(vec![("mode", Some(mode)), ("address", address), ("gateway", gateway)]));
    prop_oneof![6 => dhcp, 6 => static_v4, 1 => static_v6, 1 => junk].boxed()
}

fn network() -> BoxedStrategy<Value> {
    let vlan = prop_oneof![10 => (1u16..=4094).prop_map(Value::from), 1 => any::<u16>().prop_map(Value::from)];
    let bridge = prop_oneof![8 => text("br[a-z0-9-]{0,8}"), 1 => text("[-_.a-zA-Z0-9]{0,18}")];
    let resource = prop_oneof![12 => text("[a-z]{2,8}\\.(com|io)/[a-z]([a-z_]{0,10}[a-z])?"), 1 => text("[a-z./_ ]{0,16}")];
    let kind = prop_oneof![Just("bridge"), Just("vlan"), Just("sriov"), Just("pod")];
    let pod_ip = prop_oneof![8 => Just(json!({"mode": "dhcp"})), 1 => ip_config()];
    let pod = (label(), weighted(0.2, mac()), weighted(0.2, pod_ip)).prop_map(|(name, mac, ip)| {
        object(vec![("name", Some(name)), ("type", Some(json!("pod"))), ("macAddress", mac), ("ipConfig", ip)])
    });
    let bridged = (
        label(),
        prop::bool::ANY,
        weighted(0.6, bridge.clone()),
        weighted(0.5, vlan.clone()),
        weighted(0.2, mac()),
        weighted(0.6, ip_config()),
    )
        .prop_map(|(name, is_vlan, bridge, vlan, mac, ip)| {
            let (kind, vlan) = if is_vlan { ("vlan", Some(vlan.unwrap_or(json!(100)))) } else { ("bridge", vlan) };
            object(vec![
                ("name", Some(name)),
                ("type", Some(kind.into())),
                ("bridge", bridge),
                ("vlanId", vlan),
                ("macAddress", mac),
                ("ipConfig", ip),
            ])
        });
    let sriov = (label(), resource.clone(), weighted(0.3, vlan.clone()), weighted(0.2, mac()), weighted(0.5, ip_config())).prop_map(
        |(name, resource, vlan, mac, ip)| {
            object(vec![
                ("name", Some(name)),
                ("type", Some(json!("sriov"))),
                ("resourceName", Some(resource)),
                ("vlanId", vlan),
                ("macAddress", mac),
                ("ipConfig", ip),
            ])
        },
    );
    let chaos = (
        label(),
        kind,
        weighted(0.5, bridge),
        weighted(0.5, vlan),
        weighted(0.5, resource),
        weighted(0.5, mac()),
        weighted(0.5, ip_config()),
    )
        .prop_map(|(name, kind, bridge, vlan, resource, mac, ip)| {
            object(vec![
                ("name", Some(name)),
                ("type", Some(kind.into())),
                ("bridge", bridge),
                ("vlanId", vlan),
                ("resourceName", resource),
                ("macAddress", mac),
                ("ipConfig", ip),
            ])
        });
    prop_oneof![2 => pod, 12 => bridged, 5 => sriov, 1 => chaos].boxed()
}

fn image() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => text("docker://quay\\.io/[a-z]{1,10}/[a-z]{1,10}(:[0-9]{1,2})?"),
        3 => text("https?://[a-z]{1,10}\\.example(:[0-9]{2,4})?/[a-z]{1,10}\\.(img|qcow2|iso)"),
        1 => text("(s3|ftp|docker|https)://[ -~]{0,20}"),
        1 => text("[ -~]{0,20}"),
    ]
    .boxed()
}

fn disk() -> BoxedStrategy<Value> {
    let storage_class = prop_oneof![16 => text("[a-z]([-a-z0-9]{0,10}[a-z0-9])?"), 1 => text("[A-Za-z_ ]{0,10}")];
    let access = prop_oneof![Just(json!("ReadWriteOnce")), Just(json!("ReadWriteMany"))];
    let volume_mode = prop_oneof![Just(json!("Filesystem")), Just(json!("Block"))];
    let bus = prop_oneof![Just(json!("virtio")), Just(json!("sata")), Just(json!("scsi"))];
    let existing = (label(), weighted(0.5, prop_oneof![4 => label(), 1 => Just(json!("test"))]), weighted(0.5, prop::bool::ANY)).prop_map(
        |(name, namespace, read_only)| {
            object(vec![("name", Some(name)), ("namespace", namespace), ("readOnly", read_only.map(Value::from))])
        },
    );
    let policy = prop_oneof![4 => Just(json!("Retain")), 1 => Just(json!("Delete"))];
    let new_volume =
        (label(), quantity(), weighted(0.5, image()), weighted(0.3, storage_class), weighted(0.3, access), weighted(0.3, volume_mode));
    let common = (weighted(0.25, prop::bool::ANY), weighted(0.3, bus), weighted(0.2, policy));
    let created = (new_volume, common.clone()).prop_map(|((name, size, image, class, access, mode), (boot, bus, policy))| {
        object(vec![
            ("name", Some(name)),
            ("size", Some(size)),
            ("image", image),
            ("storageClassName", class),
            ("accessMode", access),
            ("volumeMode", mode),
            ("boot", boot.map(Value::from)),
            ("bus", bus),
            ("deletionPolicy", policy),
        ])
    });
    let attached = (label(), existing.clone(), common.clone()).prop_map(|(name, existing, (boot, bus, policy))| {
        object(vec![
            ("name", Some(name)),
            ("existingPVC", Some(existing)),
            ("boot", boot.map(Value::from)),
            ("bus", bus),
            ("deletionPolicy", policy),
        ])
    });
    let chaos =
        (label(), weighted(0.5, quantity()), weighted(0.5, image()), weighted(0.5, existing)).prop_map(|(name, size, image, existing)| {
            object(vec![("name", Some(name)), ("size", size), ("image", image), ("existingPVC", existing)])
        });
    prop_oneof![12 => created, 6 => attached, 1 => chaos].boxed()
}

fn cloud_init() -> BoxedStrategy<Value> {
    let key = prop_oneof![
        16 => text("(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) AAAA[A-Za-z0-9+/]{8,30} [a-z]{1,8}@example"),
        1 => text("[ -~]{0,30}"),
    ];
    let user_name = prop_oneof![16 => text("[a-z_][a-z0-9_-]{0,10}"), 1 => text("[A-Za-z0-9 ]{0,12}")];
    let secret_ref = (label(), text("[a-zA-Z0-9._/-]{0,8}")).prop_map(|(name, key)| json!({"name": name, "key": key}));
    let user = (user_name, prop::collection::vec(key, 0..3), weighted(0.5, prop::bool::ANY), weighted(0.2, secret_ref)).prop_map(
        |(name, keys, sudo, password)| {
            object(vec![
                ("name", Some(name)),
                ("sshAuthorizedKeys", (!keys.is_empty()).then(|| keys.into())),
                ("sudo", sudo.map(Value::from)),
                ("passwordSecretRef", password),
            ])
        },
    );
    let user_data = prop_oneof![
        12 => Just(json!("#cloud-config\npackages: [nginx]\n")),
        1 => Just(json!("#cloud-config\nusers: [default]\nruncmd: [[ls, -l]]\n")),
        1 => Just(json!("#cloud-config\nusers: default\n")),
        1 => Just(json!("#cloud-config\n")),
        1 => Just(json!("#!/bin/sh\necho hello\n")),
        1 => Just(json!("#cloud-config\npackages: [nginx\n")),
        1 => text("#cloud-config\n[ -~\n]{0,40}"),
        1 => text("\\PC{0,40}"),
    ];
    (prop::collection::vec(user, 0..3), weighted(0.5, user_data))
        .prop_map(|(users, user_data)| object(vec![("users", (!users.is_empty()).then(|| users.into())), ("userData", user_data)]))
        .boxed()
}

fn high_availability() -> BoxedStrategy<Value> {
    let label_key = prop_oneof![12 => text("([a-z]{1,8}\\.)?[a-z]{1,8}(/[a-z][-a-z0-9.]{0,8}[a-z0-9])?"), 1 => text("[ -~]{0,12}")];
    let label_value = prop_oneof![12 => text("[a-z0-9]{0,8}"), 1 => text("[ -~]{0,10}")];
    let as_text = |value: Value| value.as_str().unwrap_or_default().to_string();
    let node_selector = prop::collection::btree_map(label_key.clone().prop_map(as_text), label_value.clone(), 0..3);
    let operator = prop_oneof![Just(json!("Equal")), Just(json!("Exists"))];
    let effect = prop_oneof![Just(json!("NoSchedule")), Just(json!("PreferNoSchedule")), Just(json!("NoExecute"))];
    let equal = (label_key.clone(), weighted(0.5, Just(json!("Equal"))), weighted(0.8, label_value.clone()), weighted(0.8, effect.clone()))
        .prop_map(|(key, operator, value, effect)| {
            object(vec![("key", Some(key)), ("operator", operator), ("value", value), ("effect", effect)])
        });
    let exists = (weighted(0.6, label_key.clone()), weighted(0.6, effect.clone()))
        .prop_map(|(key, effect)| object(vec![("key", key), ("operator", Some(json!("Exists"))), ("effect", effect)]));
    let evict = (label_key.clone(), 0i64..3600)
        .prop_map(|(key, seconds)| json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
    let chaos = (
        weighted(0.8, label_key.clone()),
        weighted(0.6, operator),
        weighted(0.5, label_value.clone()),
        weighted(0.6, effect),
        weighted(0.2, 0i64..3600),
    )
        .prop_map(|(key, operator, value, effect, seconds)| {
            object(vec![
                ("key", key),
                ("operator", operator),
                ("value", value),
                ("effect", effect),
                ("tolerationSeconds", seconds.map(Value::from)),
            ])
        });
    let toleration = prop_oneof![6 => equal, 3 => exists, 2 => evict, 1 => chaos];
    let mode = prop_oneof![Just(json!("required")), Just(json!("preferred"))];
    let anti_affinity = (prop_oneof![16 => text("[a-z]{1,10}"), 1 => text("[ -~]{0,10}")], weighted(0.7, mode), weighted(0.3, label_key))
        .prop_map(|(group, mode, topology)| object(vec![("group", Some(group)), ("mode", mode), ("topologyKey", topology)]));
    let restart = prop_oneof![Just(json!("Always")), Just(json!("OnFailure")), Just(json!("Never"))];
    (node_selector, prop::collection::vec(toleration, 0..3), weighted(0.4, anti_affinity), weighted(0.5, restart))
        .prop_map(|(selector, tolerations, anti_affinity, restart)| {
            object(vec![
                ("nodeSelector", (!selector.is_empty()).then(|| json!(selector))),
                ("tolerations", (!tolerations.is_empty()).then(|| tolerations.into())),
                ("antiAffinity", anti_affinity),
                ("restartPolicy", restart),
            ])
        })
        .boxed()
}

/// A whole Wukong document as JSON.
fn wukong() -> BoxedStrategy<Value> {
    let cpu = prop_oneof![20 => (1u32..=64).prop_map(Value::from), 1 => any::<u32>().prop_map(Value::from)];
    let strategy = prop_oneof![Just("Always"), Just("RerunOnFailure"), Just("Manual"), Just("Halted"), Just("Once")].prop_map(Value::from);
    let metadata = (label(), weighted(0.8, prop_oneof![6 => label(), 1 => Just(json!("default"))]))
        .prop_map(|(name, namespace)| object(vec![("name", Some(name)), ("namespace", namespace)]));
    let compute = (cpu, quantity(), weighted(0.3, strategy), weighted(0.2, prop::bool::ANY));
    let devices = (prop::collection::vec(network(), 0..4), prop::collection::vec(disk(), 0..4));
    let eviction = prop_oneof![Just("None"), Just("LiveMigrate"), Just("LiveMigrateIfPossible"), Just("External"), Just("Evict")]
        .prop_map(Value::from);
    let rest = (weighted(0.6, cloud_init()), weighted(0.5, high_availability()), weighted(0.3, eviction));
    (metadata, compute, devices, rest)
        .prop_map(|(metadata, (cpu, memory, run_strategy, auto_start), (networks, disks), (cloud_init, high_availability, eviction))| {
            let spec = object(vec![
                ("cpu", Some(cpu)),
                ("memory", Some(memory)),
                ("runStrategy", run_strategy),
                ("startStrategy", auto_start.map(|auto_start| json!({"autoStart": auto_start}))),
                ("networks", (!networks.is_empty()).then(|| networks.into())),
                ("disks", (!disks.is_empty()).then(|| disks.into())),
                ("cloudInit", cloud_init),
                ("highAvailability", high_availability),
                ("evictionStrategy", eviction),
            ]);
            json!({"apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong", "metadata": metadata, "spec": spec})
        })
        .boxed()
}

// ---- checks ---------------------------------------------------------------

fn upstream(kind: &str) -> Option<&'static CrdSchema> {
    static SCHEMAS: OnceLock<Vec<CrdSchema>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        ["kubevirt.io_virtualmachines.yaml", "cdi.kubevirt.io_datavolumes.yaml", "k8s.cni.cncf.io_network-attachment-definitions.yaml"]
            .iter()
            .map(|file| {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/crds").join(file);
                CrdSchema::from_crd_yaml(&std::fs::read_to_string(&path).expect("upstream CRD")).expect("upstream CRD parses")
            })
            .collect()
    });
    schemas.iter().find(|schema| schema.kind() == kind)
}

fn ours() -> &'static CrdSchema {
    static SCHEMA: OnceLock<CrdSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| CrdSchema::from_crd_yaml(&wukong::api::crd_yaml().expect("CRD serialises")).expect("our CRD parses"))
}

/// Our CRD's schema and its compiled CEL rules.
fn cel_rules() -> &'static (Value, Vec<cel::Rule>) {
    static RULES: OnceLock<(Value, Vec<cel::Rule>)> = OnceLock::new();
    RULES.get_or_init(|| {
        let crd = serde_json::to_value(wukong::api::crd()).expect("CRD serialises");
        let schema = cel::storage_schema(&crd).expect("storage schema").clone();
        let rules = cel::rules(&schema).unwrap_or_else(|errors| panic!("{errors:?}"));
        (schema, rules)
    })
}

fn dns_label(name: &str) -> bool {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").expect("regex")).is_match(name)
}

fn hash_suffixed(name: &str) -> bool {
    static PATTERN: OnceLock<regex::Regex> = OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new("-[0-9a-f]{8}$").expect("regex")).is_match(name)
}

/// Everything that must hold for one generated document; `Ok(true)` when it validated.
fn check_document(document: &Value) -> Result<bool, TestCaseError> {
    let input = wukong::yaml::to_string(document).expect("serialises");
    let wukongs = match parse_documents(&input) {
        Ok(wukongs) => wukongs,
        Err(errors) => {
            for error in &errors {
                prop_assert_eq!(error.to_string().lines().count(), error.problems.len(), "one line per problem: {}", error);
            }
            return Ok(false);
        }
    };
    prop_assert_eq!(wukongs.len(), 1);
    let valid = validate(&wukongs[0]);
    let rendered = render(&input);
    let valid = match (valid, rendered) {
        (Err(problems), Err(errors)) => {
            prop_assert_eq!(errors.len(), 1);
            prop_assert_eq!(errors[0].problems.len(), problems.0.len());
            prop_assert_eq!(errors[0].to_string().lines().count(), problems.0.len(), "one line per problem: {}", errors[0]);
            return Ok(false);
        }
        (Ok(valid), Ok(rendered)) => (valid, rendered),
        (valid, rendered) => return Err(TestCaseError::fail(format!("validate {valid:?} but render {rendered:?}"))),
    };
    let (valid, rendered) = valid;

    // What passes our validation, the API server must accept as a Wukong.
    let problems = ours().validate(document);
    prop_assert!(problems.is_empty(), "valid for wukong validate but not for our CRD: {:?}\n{}", problems, input);
    let (schema, rules) = cel_rules();
    let broken: Vec<_> = cel::evaluate(schema, rules, document).into_iter().filter(|outcome| outcome.result != Ok(true)).collect();
    prop_assert!(broken.is_empty(), "valid for wukong validate but a CEL rule of our CRD says no: {:?}\n{}", broken, input);

    let mut names = BTreeSet::new();
    let children: Vec<Value> = wukong::yaml::documents(&rendered).iter().map(|child| child.parse().expect("rendered YAML")).collect();
    for child in &children {
        let kind = child["kind"].as_str().unwrap_or_default();
        let name = child["metadata"]["name"].as_str().unwrap_or_default();
        prop_assert!(dns_label(name), "{} {:?} is not a DNS label of at most 63 characters", kind, name);
        prop_assert!(names.insert((kind.to_string(), name.to_string())), "two {} named {}", kind, name);
        if let Some(schema) = upstream(kind) {
            let problems = schema.validate(child);
            prop_assert!(problems.is_empty(), "{} {} is refused by its upstream schema: {:?}\n{}", kind, name, problems, input);
        }
    }
    let vm = children.last().expect("a VM");
    prop_assert_eq!(&vm["kind"], "VirtualMachine");
    let vm_name = vm["metadata"]["name"].as_str().unwrap_or_default();
    let full = format!("{}-vm", valid.name);
    prop_assert!(vm_name == full || (full.len() > 63 && hash_suffixed(vm_name)), "VM name {} for Wukong {}", vm_name, valid.name);
    Ok(true)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(input in "\\PC{0,200}") {
        let _ = parse_documents(&input);
        let _ = render(&input);
    }

    #[test]
    fn yaml_shaped_text_never_panics(input in "(apiVersion: vm.novasphere.dev/v1alpha1\nkind: Wukong\n)?[-a-z:{}\\[\\],'\" \n#&*!|>0-9.]{0,200}") {
        if let Ok(wukongs) = parse_documents(&input) {
            for wukong in &wukongs {
                let _ = validate(wukong);
            }
        }
        let _ = render(&input);
    }

    #[test]
    fn generated_wukongs_never_panic_and_valid_ones_render_valid_children(document in wukong()) {
        check_document(&document)?;
    }
}

/// The generator must produce both kinds, or the property above proves little.
#[test]
fn the_generator_produces_valid_and_invalid_wukongs() {
    let mut runner = TestRunner::deterministic();
    let strategy = wukong();
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..CASES {
        let document = strategy.new_tree(&mut runner).expect("a value").current();
        let text = wukong::yaml::to_string(&document).expect("serialises");
        match parse_documents(&text).map(|wukongs| wukongs.iter().all(|wukong| validate(wukong).is_ok())) {
            Ok(true) => valid += 1,
            _ => invalid += 1,
        }
    }
    assert!(valid >= CASES / 5 && invalid >= CASES / 5, "{valid} valid and {invalid} invalid of {CASES}");
}
