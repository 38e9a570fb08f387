//! Snapshot tests of the offline renderer: every `examples/<name>.yaml` renders
//! to exactly `tests/golden/<name>.yaml`, byte for byte.
//!
//! After an intended change to the builders, regenerate the snapshots with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo nextest run --test render_golden
//! ```
//!
//! and review `git diff tests/golden` before committing: the golden files are
//! the reviewed record of what the operator creates.
//!
//! Besides the snapshots, the SPEC §2 rules that can be stated generally
//! (names, labels, MACs, the Multus annotation, boot order, readOnly, the
//! cloud-init Secret reference, DataVolume sources) are checked against every
//! rendered example, so a regenerated snapshot that breaks one still fails.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wukong::api::{NetworkType, Wukong};
use wukong::naming::derived_mac;
use wukong::render::{parse_documents, render};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Every example Wukong file, sorted by name.
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

fn golden_path(example: &Path) -> PathBuf {
    Path::new(MANIFEST).join("tests/golden").join(example.file_name().expect("example file name"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn render_ok(input: &str, what: &str) -> String {
    render(input).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{what} does not render:\n{}", lines.join("\n"))
    })
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut expected_lines, mut actual_lines) = (expected.lines(), actual.lines());
    for number in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => return "the texts differ only in line endings".to_string(),
            (left, right) if left != right => {
                return format!("line {number}:\n    golden:   {}\n    rendered: {}", left.unwrap_or("<end>"), right.unwrap_or("<end>"));
            }
            _ => {}
        }
    }
    unreachable!()
}

#[test]
fn every_example_matches_its_golden_file() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    let mut mismatches = Vec::new();
    for example in examples() {
        let rendered = render_ok(&read(&example), &example.display().to_string());
        let golden = golden_path(&example);
        if update {
            fs::write(&golden, &rendered).unwrap_or_else(|error| panic!("cannot write {}: {error}", golden.display()));
            continue;
        }
        match fs::read_to_string(&golden) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => mismatches.push(format!(
                "{} differs from {} at {}",
                example.display(),
                golden.display(),
                first_difference(&expected, &rendered)
            )),
            Err(error) => mismatches.push(format!("{} has no golden file {}: {error}", example.display(), golden.display())),
        }
    }
    let names: BTreeSet<_> = examples().iter().map(|example| example.file_name().map(ToOwned::to_owned)).collect();
    for entry in fs::read_dir(Path::new(MANIFEST).join("tests/golden")).expect("tests/golden/ is readable") {
        let path = entry.expect("directory entry").path();
        if !names.contains(&path.file_name().map(ToOwned::to_owned)) {
            mismatches.push(format!("{} belongs to no example; delete it", path.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo nextest run --test render_golden, then review git diff",
        mismatches.join("\n\n")
    );
}

#[test]
fn rendering_is_deterministic() {
    for example in examples() {
        let input = read(&example);
        let first = render_ok(&input, &example.display().to_string());
        let second = render_ok(&input, &example.display().to_string());
        assert_eq!(first, second, "{} renders differently twice", example.display());
    }
}

#[test]
fn all_examples_in_one_input_render_as_the_concatenation_of_each() {
    let mut combined_input = String::new();
    let mut expected = String::new();
    for example in examples() {
        let input = read(&example);
        expected.push_str(&render_ok(&input, &example.display().to_string()));
        combined_input.push_str(&input);
        combined_input.push_str("\n---\n");
    }
    assert_eq!(render_ok(&combined_input, "the concatenated examples"), expected);
}

/// The rendered documents of one example as JSON values.
fn documents(rendered: &str) -> Vec<Value> {
    wukong::yaml::documents(rendered).iter().map(|document| document.parse().expect("rendered YAML parses")).collect()
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("{pointer} is not a string in {value}"))
}

fn kind_named<'a>(documents: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    documents.iter().find(|document| document["kind"] == kind && document["metadata"]["name"] == name)
}

/// The name of the rendered child of `kind` for the full name `<wukong>-<suffix>`:
/// that name itself when it is a DNS label, else (SPEC: "shorten with a stable
/// hash suffix") the one child of that kind named `<prefix of it>-<8 hex digits>`.
fn child_name(documents: &[Value], kind: &str, full: &str) -> Result<String, String> {
    if full.len() <= 63 {
        return if kind_named(documents, kind, full).is_some() { Ok(full.to_string()) } else { Err(format!("no {kind} {full}")) };
    }
    let shortened = |name: &str| {
        let (prefix, hash) = name.rsplit_once('-').unwrap_or_default();
        name.len() <= 63
            && wukong::validate::is_dns_label(name)
            && hash.len() == 8
            && hash.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
            && prefix.len() >= 40
            && full.starts_with(prefix)
    };
    let candidates: Vec<&str> = documents
        .iter()
        .filter(|document| document["kind"] == kind)
        .map(|document| text(document, "/metadata/name"))
        .filter(|name| shortened(name))
        .collect();
    match candidates[..] {
        [name] => Ok(name.to_string()),
        _ => Err(format!("{full} is too long for a name; expected one {kind} shortened with a hash suffix, found {candidates:?}")),
    }
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().and_then(|items| items.iter().find(|item| item["name"] == name)).unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

/// SPEC §2, checked independently of the snapshots for every example.
#[test]
fn rendered_examples_follow_the_spec_rules() {
    for example in examples() {
        let input = read(&example);
        let wukong: Wukong = parse_documents(&input).expect("example parses").remove(0);
        let rendered = documents(&render_ok(&input, &example.display().to_string()));
        check_example(&wukong, &rendered).unwrap_or_else(|problem| panic!("{}: {problem}", example.display()));
    }
}

fn check_example(wukong: &Wukong, rendered: &[Value]) -> Result<(), String> {
    let name = wukong.metadata.name.as_deref().unwrap_or_default();
    let namespace = wukong.metadata.namespace.as_deref().unwrap_or("default");
    let spec = &wukong.spec;

    // Metadata of every child: namespace, the operator's labels, no owner offline.
    for document in rendered {
        let child = text(document, "/metadata/name");
        if text(document, "/metadata/namespace") != namespace {
            return Err(format!("{child} is not in namespace {namespace}"));
        }
        let labels = &document["metadata"]["labels"];
        for (key, value) in [
            ("app.kubernetes.io/name", "wukong"),
            ("app.kubernetes.io/instance", name),
            ("app.kubernetes.io/managed-by", "wukong-operator"),
        ] {
            if labels[key] != value {
                return Err(format!("{child} lacks label {key}={value}: {labels}"));
            }
        }
        if document["metadata"].get("ownerReferences").is_some() {
            return Err(format!("{child} has owner references offline"));
        }
    }

    // Exactly the expected children, by kind and name.
    let mut expected: Vec<(&str, String)> = vec![("VirtualMachine", "vm".to_string())];
    let attached: Vec<_> = spec.networks.iter().filter(|network| network.network_type != NetworkType::Pod).collect();
    for network in &attached {
        expected.push(("NetworkAttachmentDefinition", network.name.clone()));
    }
    for disk in &spec.disks {
        let other_namespace = disk.existing_pvc.as_ref().is_some_and(|pvc| pvc.namespace.as_deref().is_some_and(|ns| ns != namespace));
        if disk.image.is_some() || other_namespace {
            expected.push(("DataVolume", disk.name.clone()));
        } else if disk.existing_pvc.is_none() {
            expected.push(("PersistentVolumeClaim", disk.name.clone()));
        }
    }
    let has_ip_config = spec.networks.iter().any(|network| network.ip_config.is_some());
    let cloud_init = spec.cloud_init.is_some() || has_ip_config;
    if cloud_init {
        expected.push(("Secret", "cloudinit".to_string()));
    }
    let child = |kind: &str, suffix: &str| child_name(rendered, kind, &format!("{name}-{suffix}"));
    let mut names = BTreeSet::new();
    for (kind, suffix) in &expected {
        names.insert((*kind, child(kind, suffix)?));
    }
    if names.len() != rendered.len() {
        let actual: Vec<_> = rendered.iter().map(|document| (text(document, "/kind"), text(document, "/metadata/name"))).collect();
        return Err(format!("children {actual:?}, expected {expected:?}"));
    }

    let vm = kind_named(rendered, "VirtualMachine", &child("VirtualMachine", "vm")?).ok_or("no VirtualMachine")?;
    if rendered.last() != Some(vm) {
        return Err("the VirtualMachine is not applied last".into());
    }
    if vm["spec"].get("running").is_some() {
        return Err("the VM uses the deprecated spec.running".into());
    }
    let expected_strategy = wukong::validate::run_strategy(spec).as_str();
    if vm["spec"]["runStrategy"] != expected_strategy {
        return Err(format!("runStrategy {} instead of {expected_strategy}", vm["spec"]["runStrategy"]));
    }
    let template = &vm["spec"]["template"]["spec"];
    if template["domain"]["cpu"]["cores"] != spec.cpu || template["domain"]["memory"]["guest"] != spec.memory.as_str() {
        return Err(format!("cpu/memory {} {} do not match the spec", template["domain"]["cpu"], template["domain"]["memory"]));
    }
    let expected_eviction = spec.eviction_strategy.map(|strategy| serde_json::json!(strategy.as_str()));
    if template.get("evictionStrategy") != expected_eviction.as_ref() {
        return Err(format!("evictionStrategy {} instead of {expected_eviction:?}", template["evictionStrategy"]));
    }

    // Networks: bindings, Multus names, stable locally administered MACs, the annotation.
    let interfaces = &template["domain"]["devices"]["interfaces"];
    let networks = &template["networks"];
    if interfaces.as_array().map(Vec::len) != Some(spec.networks.len()) || networks.as_array().map(Vec::len) != Some(spec.networks.len()) {
        return Err(format!("{} networks but interfaces {interfaces} and networks {networks}", spec.networks.len()));
    }
    for (index, network) in spec.networks.iter().enumerate() {
        let interface = &interfaces[index];
        if interface["name"] != network.name.as_str() || networks[index]["name"] != network.name.as_str() {
            return Err(format!("interface/network {index} is not {:?} (guest order must follow the spec)", network.name));
        }
        let binding = match network.network_type {
            NetworkType::Pod => "masquerade",
            NetworkType::Sriov => "sriov",
            NetworkType::Bridge | NetworkType::Vlan => "bridge",
        };
        if interface.get(binding) != Some(&serde_json::json!({})) {
            return Err(format!("interface {:?} has no {binding} binding: {interface}", network.name));
        }
        let mac = network.mac_address.clone().map_or_else(|| derived_mac(namespace, name, &network.name), |mac| mac.to_ascii_lowercase());
        let first_octet = u8::from_str_radix(&mac[..2], 16).map_err(|error| error.to_string())?;
        if interface["macAddress"] != mac.as_str() || first_octet & 0b11 != 0b10 {
            return Err(format!(
                "interface {:?} MAC {} is not the stable locally administered unicast {mac}",
                network.name, interface["macAddress"]
            ));
        }
        let expected_network = if network.network_type == NetworkType::Pod {
            serde_json::json!({"name": network.name, "pod": {}})
        } else {
            serde_json::json!({"name": network.name, "multus": {"networkName": format!("{namespace}/{}", child("NetworkAttachmentDefinition", &network.name)?)}})
        };
        if networks[index] != expected_network {
            return Err(format!("network {} instead of {expected_network}", networks[index]));
        }
    }
    let annotation = vm["metadata"]["annotations"].get("k8s.v1.cni.cncf.io/networks");
    if attached.is_empty() {
        if annotation.is_some() {
            return Err("Multus annotation without attachments".into());
        }
    } else {
        let selections: Value = serde_json::from_str(annotation.and_then(Value::as_str).ok_or("no Multus annotation on the VM")?)
            .map_err(|error| error.to_string())?;
        let mut expected = Vec::new();
        for (index, network) in attached.iter().enumerate() {
            let nad = child("NetworkAttachmentDefinition", &network.name)?;
            expected.push(serde_json::json!({"name": nad, "interface": format!("net{}", index + 1)}));
        }
        if selections != Value::from(expected.clone()) {
            return Err(format!("Multus annotation {selections} instead of {expected:?}"));
        }
    }
    for network in &attached {
        let nad = kind_named(rendered, "NetworkAttachmentDefinition", &child("NetworkAttachmentDefinition", &network.name)?)
            .ok_or("missing NAD")?;
        let config: Value = serde_json::from_str(text(nad, "/spec/config")).map_err(|error| format!("NAD config is not JSON: {error}"))?;
        let plugin = if network.network_type == NetworkType::Sriov { "sriov" } else { "bridge" };
        if config["type"] != plugin || config["name"] != text(nad, "/metadata/name") || config["vlan"] != serde_json::json!(network.vlan_id)
        {
            return Err(format!("NAD config {config} does not match network {:?}", network.name));
        }
        let resource = nad["metadata"]["annotations"].get("k8s.v1.cni.cncf.io/resourceName").and_then(Value::as_str);
        if resource != network.resource_name.as_deref() {
            return Err(format!("NAD resourceName annotation {resource:?} instead of {:?}", network.resource_name));
        }
    }

    // Disks: boot order, readOnly, volume sources; the cloud-init NoCloud volume.
    let disks = &template["domain"]["devices"]["disks"];
    let volumes = &template["volumes"];
    for disk in &spec.disks {
        let vm_disk = named(disks, &disk.name);
        let volume = named(volumes, &disk.name);
        let boot_order = vm_disk.get("bootOrder");
        if (disk.boot == Some(true)) != (boot_order == Some(&Value::from(1))) || boot_order.is_some_and(|order| order != 1) {
            return Err(format!("disk {:?}: bootOrder {boot_order:?} for boot {:?}", disk.name, disk.boot));
        }
        let read_only = disk.existing_pvc.as_ref().and_then(|pvc| pvc.read_only) == Some(true);
        if (vm_disk["disk"].get("readonly") == Some(&Value::Bool(true))) != read_only {
            return Err(format!("disk {:?}: readonly in {vm_disk} should be {read_only}", disk.name));
        }
        let volume_kind = if disk.existing_pvc.is_none() && disk.image.is_none() { "PersistentVolumeClaim" } else { "DataVolume" };
        let own = child(volume_kind, &disk.name).unwrap_or_default();
        let expected_volume = match &disk.existing_pvc {
            Some(pvc) if pvc.namespace.as_deref().is_none_or(|ns| ns == namespace) => {
                let mut claim = serde_json::json!({"claimName": pvc.name});
                if read_only {
                    claim["readOnly"] = Value::Bool(true);
                }
                serde_json::json!({"name": disk.name, "persistentVolumeClaim": claim})
            }
            None if disk.image.is_none() => serde_json::json!({"name": disk.name, "persistentVolumeClaim": {"claimName": own}}),
            _ => serde_json::json!({"name": disk.name, "dataVolume": {"name": own}}),
        };
        if *volume != expected_volume {
            return Err(format!("volume {volume} instead of {expected_volume}"));
        }
        if let Some(data_volume) = kind_named(rendered, "DataVolume", &own) {
            let source = &data_volume["spec"]["source"];
            let expected_source = match (&disk.image, &disk.existing_pvc) {
                (Some(image), _) if image.starts_with("docker://") => serde_json::json!({"registry": {"url": image}}),
                (Some(image), _) => serde_json::json!({"http": {"url": image}}),
                (None, Some(pvc)) => serde_json::json!({"pvc": {"name": pvc.name, "namespace": pvc.namespace}}),
                (None, None) => return Err(format!("DataVolume {own} for a blank disk")),
            };
            if *source != expected_source {
                return Err(format!("DataVolume {own} source {source} instead of {expected_source}"));
            }
            let storage = &data_volume["spec"]["storage"];
            if storage["resources"]["requests"]["storage"].as_str() != disk.size.as_deref()
                || storage["storageClassName"].as_str() != disk.storage_class_name.as_deref()
            {
                return Err(format!("DataVolume {own} storage {storage} does not match the disk"));
            }
        }
        if let Some(claim) = kind_named(rendered, "PersistentVolumeClaim", &own) {
            let claim_spec = &claim["spec"];
            let mode = disk.access_mode.map_or("ReadWriteOnce", |mode| mode.as_str());
            if claim_spec["accessModes"] != serde_json::json!([mode])
                || claim_spec["resources"]["requests"]["storage"].as_str() != disk.size.as_deref()
            {
                return Err(format!("claim {own} spec {claim_spec} does not match the disk"));
            }
        }
    }
    let extra_disks = usize::from(cloud_init);
    if disks.as_array().map(Vec::len) != Some(spec.disks.len() + extra_disks)
        || volumes.as_array().map(Vec::len) != Some(spec.disks.len() + extra_disks)
    {
        return Err(format!("disks {disks} / volumes {volumes} do not match the spec's {} disks", spec.disks.len()));
    }
    if cloud_init {
        let secret = child("Secret", "cloudinit")?;
        let no_cloud = &named(volumes, "cloudinitdisk")["cloudInitNoCloud"];
        if no_cloud["secretRef"]["name"] != secret.as_str() || no_cloud.get("userData").is_some() || no_cloud.get("networkData").is_some() {
            return Err(format!("cloud-init volume {no_cloud} does not only reference Secret {secret}"));
        }
        if (no_cloud["networkDataSecretRef"]["name"] == secret.as_str()) != has_ip_config {
            return Err(format!("networkDataSecretRef in {no_cloud} should be set exactly when a network has ipConfig"));
        }
        let data = &kind_named(rendered, "Secret", &secret).ok_or("no cloud-init Secret")?["data"];
        if data.get("userdata").is_none() || data.get("networkdata").is_some() != has_ip_config {
            return Err(format!("cloud-init Secret keys {data}"));
        }
    }
    Ok(())
}

/// Inputs the examples do not cover, held to the same SPEC §2 rules.
const EXTRA_CASES: &[(&str, &str)] = &[
    (
        "cloned read-only claim, explicit MAC, dhcp pod network, access and volume modes",
        r#"
metadata: {name: clone-ro, namespace: apps}
spec:
  cpu: 1
  memory: 1Gi
  networks:
    - {name: default, type: pod, macAddress: "02:AB:CD:EF:00:01", ipConfig: {mode: dhcp}}
    - {name: lan, type: bridge}
  disks:
    - {name: system, boot: true, existingPVC: {name: golden-image, namespace: images, readOnly: true}}
    - {name: scratch, size: 1Gi, accessMode: ReadWriteMany, volumeMode: Block, storageClassName: fast}
    - {name: iso, size: 2Gi, image: "http://mirror.example/boot.iso", bus: sata}
"#,
    ),
    ("no networks, no disks", "metadata: {name: bare}\nspec: {cpu: 1, memory: 512Mi}\n"),
    (
        "a 63-character name",
        r#"
metadata: {name: a-very-long-wukong-name-that-fills-all-of-the-sixty-three-chars, namespace: long}
spec:
  cpu: 1
  memory: 1Gi
  networks: [{name: storage-network-with-a-long-name, type: vlan, vlanId: 42}]
  disks: [{name: system-disk-with-a-long-name, size: 1Gi}]
  cloudInit:
    userData: |
      #!/bin/sh
      echo hi
"#,
    ),
];

#[test]
fn extra_cases_follow_the_spec_rules() {
    for (what, body) in EXTRA_CASES {
        let input = format!("apiVersion: vm.novasphere.dev/v1alpha1\nkind: Wukong\n{body}");
        let wukong: Wukong = parse_documents(&input).unwrap_or_else(|errors| panic!("{what}: {errors:?}")).remove(0);
        let rendered = documents(&render_ok(&input, what));
        check_example(&wukong, &rendered).unwrap_or_else(|problem| panic!("{what}: {problem}"));
    }
}
