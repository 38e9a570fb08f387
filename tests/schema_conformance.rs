//! Every object Wukong renders is valid against the upstream schema of its kind
//! (SPEC: "the upstream CRDs are the contract"), every example is valid against
//! our own CRD, and the committed CRD copy is what `wukong crd` prints.
//!
//! VirtualMachine, DataVolume, NetworkAttachmentDefinition and (built, as
//! `render` shows none) VirtualMachineInstanceMigration are checked with
//! the structural validator in `common::openapi` against `models/crds/`;
//! PersistentVolumeClaim and Secret are core kinds with no CRD, so they are
//! round-tripped through the k8s-openapi types: a field those types do not know
//! is dropped on the way and the round trip no longer matches.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::openapi::CrdSchema;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wukong::render::render;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Upstream CRDs by the kind they define, with the apiVersion Wukong must use.
const UPSTREAM: [(&str, &str, &str); 4] = [
    ("kubevirt.io_virtualmachines.yaml", "VirtualMachine", "kubevirt.io/v1"),
    ("kubevirt.io_virtualmachineinstancemigrations.yaml", "VirtualMachineInstanceMigration", "kubevirt.io/v1"),
    ("cdi.kubevirt.io_datavolumes.yaml", "DataVolume", "cdi.kubevirt.io/v1beta1"),
    ("k8s.cni.cncf.io_network-attachment-definitions.yaml", "NetworkAttachmentDefinition", "k8s.cni.cncf.io/v1"),
];

fn upstream_schemas() -> &'static BTreeMap<String, CrdSchema> {
    static SCHEMAS: OnceLock<BTreeMap<String, CrdSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        UPSTREAM
            .iter()
            .map(|(file, kind, api_version)| {
                let path = Path::new(MANIFEST).join("models/crds").join(file);
                let schema = CrdSchema::from_crd_yaml(&read(&path)).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                assert_eq!(
                    (schema.kind(), schema.api_version().as_str()),
                    (*kind, *api_version),
                    "{file} is not the expected storage version"
                );
                (kind.to_string(), schema)
            })
            .collect()
    })
}

fn wukong_schema() -> CrdSchema {
    let yaml = wukong::yaml::to_string(&wukong::api::crd()).expect("the CRD serialises");
    CrdSchema::from_crd_yaml(&yaml).expect("our CRD has a storage version with a schema")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new(MANIFEST).join("examples"))
        .expect("examples/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples/*.yaml found");
    files
}

/// Every YAML document of a text, as JSON.
fn documents(text: &str) -> Vec<Value> {
    wukong::yaml::documents(text)
        .iter()
        .map(|document| document.parse::<Value>().expect("YAML document parses"))
        .filter(|document| !document.is_null())
        .collect()
}

fn rendered_documents(example: &Path) -> Vec<Value> {
    let rendered = render(&read(example)).unwrap_or_else(|errors| panic!("{} does not render: {errors:?}", example.display()));
    documents(&rendered)
}

/// Deserialises a core object strictly enough: errors carry their path, and a
/// field the type does not know makes the round trip differ.
fn round_trip<T: DeserializeOwned + serde::Serialize>(document: &Value) -> Result<T, Vec<String>> {
    let typed: T = serde_path_to_error::deserialize(document).map_err(|error| vec![format!("{}: {}", error.path(), error.inner())])?;
    let back = serde_json::to_value(&typed).map_err(|error| vec![error.to_string()])?;
    if back == *document {
        Ok(typed)
    } else {
        Err(vec![format!(
            "does not survive a round trip through k8s-openapi (unknown or mistyped field):\n  rendered: {document}\n  typed:    {back}"
        )])
    }
}

fn check_claim(document: &Value) -> Vec<String> {
    let claim: PersistentVolumeClaim = match round_trip(document) {
        Ok(claim) => claim,
        Err(problems) => return problems,
    };
    let mut problems = Vec::new();
    if document["apiVersion"] != "v1" {
        problems.push(format!("apiVersion {} is not v1", document["apiVersion"]));
    }
    let spec = claim.spec.unwrap_or_default();
    let modes = spec.access_modes.unwrap_or_default();
    if modes.is_empty()
        || !modes.iter().all(|mode| ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"].contains(&mode.as_str()))
    {
        problems.push(format!("spec.accessModes {modes:?} is empty or unknown"));
    }
    let storage = spec.resources.and_then(|resources| resources.requests).and_then(|requests| requests.get("storage").cloned());
    match storage {
        Some(quantity) if wukong::validate::quantity::parse(&quantity.0).is_ok_and(|bytes| bytes > 0) => {}
        other => problems.push(format!("spec.resources.requests.storage {other:?} is not a positive quantity")),
    }
    if let Some(mode) = spec.volume_mode.filter(|mode| mode != "Filesystem" && mode != "Block") {
        problems.push(format!("spec.volumeMode {mode:?} is not Filesystem or Block"));
    }
    problems
}

fn check_secret(document: &Value) -> Vec<String> {
    let secret: Secret = match round_trip(document) {
        Ok(secret) => secret,
        Err(problems) => return problems,
    };
    let mut problems = Vec::new();
    if document["apiVersion"] != "v1" {
        problems.push(format!("apiVersion {} is not v1", document["apiVersion"]));
    }
    if secret.string_data.is_some() {
        problems.push("stringData is write-only; the operator writes data".to_string());
    }
    let data = secret.data.unwrap_or_default();
    if !data.contains_key("userdata") {
        problems.push(format!("data has no userdata key: {:?}", data.keys().collect::<Vec<_>>()));
    }
    for (key, value) in &data {
        if std::str::from_utf8(&value.0).is_err() {
            problems.push(format!("data[{key}] is not UTF-8 text"));
        }
    }
    problems
}

/// Every problem of one rendered document against the schema of its kind.
fn check_document(document: &Value) -> Vec<String> {
    let kind = document["kind"].as_str().unwrap_or_default();
    let name = document["metadata"]["name"].as_str().unwrap_or_default();
    let problems = match kind {
        "PersistentVolumeClaim" => check_claim(document),
        "Secret" => check_secret(document),
        _ => match upstream_schemas().get(kind) {
            Some(schema) => schema.validate(document),
            None => vec![format!("Wukong does not create {kind:?} objects")],
        },
    };
    problems.into_iter().map(|problem| format!("{kind} {name}: {problem}")).collect()
}

#[test]
fn every_rendered_object_is_valid_against_its_upstream_schema() {
    let mut problems = Vec::new();
    let mut kinds = BTreeMap::<String, usize>::new();
    for example in examples() {
        for document in rendered_documents(&example) {
            *kinds.entry(document["kind"].as_str().unwrap_or_default().to_string()).or_default() += 1;
            problems.extend(check_document(&document).into_iter().map(|problem| format!("{}: {problem}", example.display())));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The examples must exercise every kind, or this test proves less than it says.
    for kind in ["VirtualMachine", "DataVolume", "NetworkAttachmentDefinition", "PersistentVolumeClaim", "Secret"] {
        assert!(kinds.contains_key(kind), "no example renders a {kind}: {kinds:?}");
    }
}

#[test]
fn a_built_migration_is_valid_against_its_upstream_schema() {
    use wukong::children::{BuildInputs, ChildKind, plan};
    use wukong_models::virtualmachineinstancemigration::VirtualMachineInstanceMigration;
    let mut wukong: wukong::api::Wukong = documents(&read(&Path::new(MANIFEST).join("examples/web-server-01.yaml")))
        .into_iter()
        .map(|document| serde_json::from_value(document).expect("a Wukong"))
        .next()
        .expect("one document");
    wukong.metadata.uid = Some("0f0e0d0c-0000-4000-8000-000000000001".to_string());
    wukong.spec.migration = Some(wukong::api::Migration {
        requested_at: "2026-12-02T10:05:00Z".to_string(),
        node_selector: BTreeMap::from([("topology.kubernetes.io/zone".to_string(), "b".to_string())]),
    });
    let mut valid = wukong::validate::validate(&wukong).expect("valid");
    valid.migration_in_progress = Some(wukong::naming::migration_name(&valid.name, "2026-12-02T10:05:00Z"));
    let plan = plan(&valid);
    let built = VirtualMachineInstanceMigration::build(&valid, &plan, &BuildInputs::default());
    assert_eq!(built.len(), 1, "one migration while it is in progress");
    let document = serde_json::to_value(&built[0]).expect("json");
    assert_eq!(document["spec"]["vmiName"], "web-server-01-vm");
    assert_eq!(document["spec"]["addedNodeSelector"], json!({"topology.kubernetes.io/zone": "b"}));
    assert_eq!(document["metadata"]["ownerReferences"][0]["kind"], "Wukong");
    assert_eq!(check_document(&document), Vec::<String>::new());
}

#[test]
fn the_checks_have_teeth() {
    let example = Path::new(MANIFEST).join("examples/web-server-01.yaml");
    let rendered = rendered_documents(&example);
    let find = |kind: &str| rendered.iter().find(|document| document["kind"] == kind).cloned().unwrap_or_else(|| panic!("no {kind}"));
    let has = |problems: &[String], needle: &str| problems.iter().any(|problem| problem.contains(needle));

    let mut vm = find("VirtualMachine");
    assert_eq!(check_document(&vm), Vec::<String>::new());
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAdress"] = json!("02:00:00:00:00:01");
    let problems = check_document(&vm);
    assert!(has(&problems, r#"spec.template.spec.domain.devices.interfaces[0].macAdress: unknown field "macAdress""#), "{problems:?}");
    let mut vm = find("VirtualMachine");
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["bootOrder"] = json!("1");
    assert!(has(&check_document(&vm), "bootOrder: expected integer, got string"), "{:?}", check_document(&vm));

    let mut data_volume = find("DataVolume");
    data_volume["spec"]["storage"]["storageClass"] = json!("longhorn");
    assert!(has(&check_document(&data_volume), r#"spec.storage.storageClass: unknown field "storageClass""#));

    let mut attachment = find("NetworkAttachmentDefinition");
    attachment["apiVersion"] = json!("k8s.cni.cncf.io/v1beta1");
    assert!(has(&check_document(&attachment), "apiVersion: expected"));

    let mut claim = find("PersistentVolumeClaim");
    claim["spec"]["storageClass"] = json!("longhorn");
    assert!(has(&check_document(&claim), "does not survive a round trip"));
    let mut claim = find("PersistentVolumeClaim");
    claim["spec"]["resources"] = json!({});
    assert!(has(&check_document(&claim), "spec.resources.requests.storage None"));
    let mut claim = find("PersistentVolumeClaim");
    claim["spec"]["accessModes"] = json!("ReadWriteOnce");
    assert!(has(&check_document(&claim), "spec.accessModes"), "{:?}", check_document(&claim));

    let mut secret = find("Secret");
    secret["data"]["userdata"] = json!("not base64 !");
    assert!(has(&check_document(&secret), "data.userdata"), "{:?}", check_document(&secret));

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}});
    assert!(has(&check_document(&pod), "does not create"));
}

#[test]
fn every_example_is_valid_against_our_crd() {
    let schema = wukong_schema();
    assert_eq!((schema.kind(), schema.api_version().as_str()), ("Wukong", "vm.novasphere.dev/v1alpha1"));
    let mut problems = Vec::new();
    for example in examples() {
        for document in documents(&read(&example)) {
            problems.extend(schema.validate(&document).into_iter().map(|problem| format!("{}: {problem}", example.display())));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn our_crd_refuses_what_the_parser_refuses() {
    let schema = wukong_schema();
    let base = documents(&read(&Path::new(MANIFEST).join("examples/web-server-01.yaml"))).remove(0);
    type Mutate = fn(&mut Value);
    let mutations: [(&str, Mutate, &str); 6] = [
        ("typo", |w| w["spec"]["disks"][0]["storageClass"] = json!("x"), r#"spec.disks[0].storageClass: unknown field "storageClass""#),
        ("type", |w| w["spec"]["cpu"] = json!("four"), "spec.cpu: expected integer, got string"),
        ("range", |w| w["spec"]["cpu"] = json!(0), "spec.cpu: must be greater than or equal to 1"),
        ("enum", |w| w["spec"]["networks"][0]["type"] = json!("macvtap"), "spec.networks[0].type: unsupported value"),
        ("eviction", |w| w["spec"]["evictionStrategy"] = json!("Evict"), "spec.evictionStrategy: unsupported value"),
        ("duplicate", |w| w["spec"]["disks"][1]["name"] = json!("system"), "spec.disks[1]: duplicate entry with key name=\"system\""),
    ];
    for (what, mutate, expected) in mutations {
        let mut wukong = base.clone();
        mutate(&mut wukong);
        let problems = schema.validate(&wukong);
        assert!(problems.iter().any(|problem| problem.starts_with(expected)), "{what}: {problems:?} lacks {expected:?}");
        let text = wukong::yaml::to_string(&wukong).expect("serialises");
        let refused = wukong::render::parse_documents(&text).map(|wukongs| wukongs.iter().any(|w| wukong::validate::validate(w).is_err()));
        assert!(!matches!(refused, Ok(false)), "{what}: the CRD refuses it but wukong validate accepts it");
    }
}

#[test]
fn committed_crd_is_what_wukong_crd_prints() {
    let path = Path::new(MANIFEST).join("config/crd/wukongs.vm.novasphere.dev.yaml");
    let generated = wukong::api::crd_yaml().expect("the CRD serialises");
    assert!(
        read(&path) == generated,
        "{} is stale; regenerate it with: cargo run -- crd > config/crd/wukongs.vm.novasphere.dev.yaml",
        path.display()
    );
}

/// The schema of one of our own CRDs, by its file name (see `wukong::api::crds`).
fn own_schema(file: &str) -> CrdSchema {
    let yaml = wukong::api::crd_yaml_of(file).expect("a known CRD").expect("the CRD serialises");
    CrdSchema::from_crd_yaml(&yaml).expect("our CRD has a storage version with a schema")
}

/// Every IPLease the controller creates (pool, static in a pool, static on a
/// segment, marked for release) and the IPPool status it writes are valid
/// against their CRDs, and the sample pool is too.
#[tokio::test]
async fn leases_and_pool_statuses_are_valid_against_our_crds() {
    let harness = common::harness::Harness::new();
    harness.create(include_str!("../config/samples/ippool-vlan100.yaml"));
    harness.create_wukong(include_str!("../examples/pool-vm.yaml"));
    harness.create(common::fixtures::DATA_PVC);
    harness.create_wukong(include_str!("../examples/web-server-01.yaml"));
    let reserved = include_str!("../examples/pool-vm.yaml")
        .replace("name: pool-vm", "name: reserved-vm")
        .replace("mode: pool", "mode: static\n        address: 192.168.100.20/24");
    harness.create_wukong(&reserved);
    for name in ["pool-vm", "web-server-01", "reserved-vm"] {
        harness.converge("prod", name, 6).await;
    }
    harness.reconcile_pool("vlan100").await.expect("pool pass");
    harness.reconcile_pool("vlan100").await.expect("pool status");
    let leases = harness.api.list("vm.novasphere.dev/v1alpha1", "ipleases");
    assert_eq!(leases.len(), 3, "a pool lease, a reservation and a segment lease: {leases:?}");
    let lease_schema = own_schema("ipleases.vm.novasphere.dev.yaml");
    for lease in &leases {
        assert_eq!(lease_schema.validate(lease), Vec::<String>::new(), "{lease}");
    }
    let mut marked = leases[0].clone();
    marked["spec"]["releaseAfterInstance"] = json!("0b5e4a8c-6f2d-4a57-9d2e-4f0f1f6c2a11");
    assert_eq!(lease_schema.validate(&marked), Vec::<String>::new());
    let pool = harness.api.get("vm.novasphere.dev/v1alpha1", "ippools", None, "vlan100").expect("pool");
    assert!(pool["status"]["size"].is_number(), "{pool}");
    assert_eq!(own_schema("ippools.vm.novasphere.dev.yaml").validate(&pool), Vec::<String>::new(), "{pool}");
}
