//! Table tests of what `wukong validate` reports.
//!
//! Each row starts from `BASE`, a valid Wukong, applies a few mutations (a
//! dotted field path with `[i]` indexes and a YAML value, or removal) and lists
//! the exact problem lines expected, in order, and nothing else. Parse errors
//! (unknown fields, wrong types, documents that are not Wukongs) are checked
//! through `parse_documents` with their document number, path and position.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use wukong::api::{RestartPolicy, RunStrategy, Wukong};
use wukong::render::{DocumentError, parse_documents, render};
use wukong::validate::{run_strategy, validate};

const BASE: &str = r#"apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata:
  name: base
  namespace: test
spec:
  cpu: 2
  memory: 4Gi
  networks:
    - name: default
      type: pod
    - name: mgmt
      type: vlan
      bridge: br-mgmt
      vlanId: 100
      ipConfig:
        mode: static
        address: 192.168.1.10/24
        gateway: 192.168.1.1
        dns: [192.168.1.2]
  disks:
    - name: system
      size: 20Gi
      boot: true
      image: docker://quay.io/containerdisks/fedora:40
    - name: data
      size: 10Gi
  cloudInit:
    users:
      - name: ops
        sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example"]
        sudo: true
    userData: |
      #cloud-config
      packages: [nginx]
  highAvailability:
    nodeSelector: {node-role/vm: "true"}
    tolerations: [{key: dedicated, operator: Equal, value: vm, effect: NoSchedule}]
    antiAffinity: {group: web, mode: required}
"#;

/// A mutation: set the field at a path to a YAML value, or remove it (`None`).
type Mutation<'a> = (&'a str, Option<&'a str>);

/// Sets (or with `None` removes) the value at a dotted path like
/// `spec.networks[1].ipConfig.address`; `[+]` appends to a list.
fn set(root: &mut Value, path: &str, value: Option<&str>) {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = root;
    for (position, segment) in segments.iter().enumerate() {
        let last = position + 1 == segments.len();
        let (key, index) = match segment.split_once('[') {
            Some((key, index)) => (key, Some(index.trim_end_matches(']'))),
            None => (*segment, None),
        };
        let parsed = || wukong::yaml::from_str::<Value>(value.expect("a value to set")).expect("mutation value is YAML");
        let mapping = current.as_object_mut().unwrap_or_else(|| panic!("{path}: {key} is not inside a mapping"));
        match index {
            None if last => {
                match value {
                    Some(_) => mapping.insert(key.to_string(), parsed()),
                    None => mapping.remove(key),
                };
                return;
            }
            None => current = mapping.entry(key).or_insert_with(|| Value::Object(Default::default())),
            Some(index) => {
                let list = mapping.get_mut(key).and_then(Value::as_array_mut).unwrap_or_else(|| panic!("{path}: {key} is not a list"));
                if index == "+" {
                    assert!(last, "{path}: [+] must end the path");
                    list.push(parsed());
                    return;
                }
                let index: usize = index.parse().expect("numeric index");
                if last {
                    match value {
                        Some(_) => list[index] = parsed(),
                        None => drop(list.remove(index)),
                    }
                    return;
                }
                current = &mut list[index];
            }
        }
    }
}

fn mutated_text(mutations: &[Mutation<'_>]) -> String {
    let mut document: Value = wukong::yaml::from_str(BASE).expect("BASE is YAML");
    for (path, value) in mutations {
        set(&mut document, path, *value);
    }
    wukong::yaml::to_string(&document).expect("serialises")
}

fn mutated(mutations: &[Mutation<'_>]) -> Wukong {
    let text = mutated_text(mutations);
    let mut wukongs = parse_documents(&text).unwrap_or_else(|errors| panic!("{mutations:?} does not parse: {errors:?}"));
    assert_eq!(wukongs.len(), 1);
    wukongs.remove(0)
}

fn problems(wukong: &Wukong) -> Vec<String> {
    match validate(wukong) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(problems(&mutated(&[])), Vec::<String>::new());
}

/// The explanation every DNS-label problem carries.
const NOT_A_DNS_LABEL: &str = "is not a DNS label (lowercase letters, digits and '-', at most 63 characters)";

#[test]
fn each_mistake_is_reported_with_its_field_and_message() {
    let long_name = "a".repeat(64);
    let rows: Vec<(&str, Vec<Mutation<'_>>, Vec<String>)> = vec![
        (
            "uppercase name",
            vec![("metadata.name", Some("Web-01"))],
            vec![format!("metadata.name: \"Web-01\" {NOT_A_DNS_LABEL}; the VM and its hostname are named after it")],
        ),
        (
            "name longer than 63",
            vec![("metadata.name", Some(&long_name))],
            vec![format!("metadata.name: \"{long_name}\" {NOT_A_DNS_LABEL}; the VM and its hostname are named after it")],
        ),
        ("missing name", vec![("metadata.name", None)], vec!["metadata.name: is required".into()]),
        ("cpu 0", vec![("spec.cpu", Some("0"))], vec!["spec.cpu: \"0\" must be between 1 and 1024 cores".into()]),
        ("cpu 1025", vec![("spec.cpu", Some("1025"))], vec!["spec.cpu: \"1025\" must be between 1 and 1024 cores".into()]),
        ("memory 8GB", vec![("spec.memory", Some("8GB"))], vec!["spec.memory: \"8GB\" is not a quantity (unknown suffix \"GB\")".into()]),
        ("memory 0", vec![("spec.memory", Some("'0'"))], vec!["spec.memory: \"0\" must be greater than zero".into()]),
        (
            "vlan network without vlanId",
            vec![("spec.networks[1].vlanId", None)],
            vec!["spec.networks[1].vlanId: is required for a vlan network".into()],
        ),
        ("vlanId 5000", vec![("spec.networks[1].vlanId", Some("5000"))], vec!["spec.networks[1].vlanId: \"5000\" must be between 1 and 4094".into()]),
        ("vlanId 0", vec![("spec.networks[1].vlanId", Some("0"))], vec!["spec.networks[1].vlanId: \"0\" must be between 1 and 4094".into()]),
        ("pod network with bridge", vec![("spec.networks[0].bridge", Some("br0"))], vec!["spec.networks[0].bridge: a pod network takes no bridge".into()]),
        ("pod network with vlanId", vec![("spec.networks[0].vlanId", Some("7"))], vec!["spec.networks[0].vlanId: a pod network takes no vlanId".into()]),
        (
            "two pod networks",
            vec![("spec.networks[+]", Some("{name: second, type: pod}"))],
            vec!["spec.networks[2].type: at most one network may be the pod network".into()],
        ),
        (
            "sriov without resourceName",
            vec![("spec.networks[1].type", Some("sriov")), ("spec.networks[1].bridge", None)],
            vec!["spec.networks[1].resourceName: is required for an sriov network (the device plugin resource of its virtual functions)".into()],
        ),
        (
            "sriov with bridge",
            vec![("spec.networks[1].type", Some("sriov")), ("spec.networks[1].resourceName", Some("intel.com/sriov_netdevice"))],
            vec!["spec.networks[1].bridge: a sriov network takes no bridge".into()],
        ),
        (
            "resourceName on a bridge network",
            vec![("spec.networks[1].type", Some("bridge")), ("spec.networks[1].resourceName", Some("intel.com/sriov_netdevice"))],
            vec!["spec.networks[1].resourceName: a bridge network takes no resourceName".into()],
        ),
        (
            "bad resourceName",
            vec![("spec.networks[1].type", Some("sriov")), ("spec.networks[1].bridge", None), ("spec.networks[1].resourceName", Some("sriov"))],
            vec!["spec.networks[1].resourceName: \"sriov\" is not a device plugin resource name like \"intel.com/sriov_netdevice\"".into()],
        ),
        (
            "resourceName with two slashes",
            vec![("spec.networks[1].type", Some("sriov")), ("spec.networks[1].bridge", None), ("spec.networks[1].resourceName", Some("intel.com/sriov/vf"))],
            vec!["spec.networks[1].resourceName: \"intel.com/sriov/vf\" is not a device plugin resource name like \"intel.com/sriov_netdevice\"".into()],
        ),
        (
            "bad bridge name",
            vec![("spec.networks[1].bridge", Some("bridge-name-too-long"))],
            vec!["spec.networks[1].bridge: \"bridge-name-too-long\" is not a Linux interface name (at most 15 letters, digits, '-', '_' or '.', starting with a letter or digit)".into()],
        ),
        (
            "bridge name starting with a dash",
            vec![("spec.networks[1].bridge", Some("-br0"))],
            vec!["spec.networks[1].bridge: \"-br0\" is not a Linux interface name (at most 15 letters, digits, '-', '_' or '.', starting with a letter or digit)".into()],
        ),
        (
            "bad MAC",
            vec![("spec.networks[1].macAddress", Some("02:00:00:00:00"))],
            vec!["spec.networks[1].macAddress: \"02:00:00:00:00\" is not a MAC address like \"02:00:00:00:00:01\"".into()],
        ),
        (
            "multicast MAC",
            vec![("spec.networks[1].macAddress", Some("01:00:5e:00:00:01"))],
            vec!["spec.networks[1].macAddress: \"01:00:5e:00:00:01\" is a multicast address; an interface needs a unicast one".into()],
        ),
        (
            "same MAC twice",
            vec![("spec.networks[0].macAddress", Some("02:00:00:00:00:01")), ("spec.networks[1].macAddress", Some("02:00:00:00:00:01"))],
            vec!["spec.networks[1].macAddress: \"02:00:00:00:00:01\" is used by another network".into()],
        ),
        (
            "duplicate network names",
            vec![("spec.networks[1].name", Some("default"))],
            vec!["spec.networks[1].name: \"default\" is used by another network".into()],
        ),
        ("bad network name", vec![("spec.networks[1].name", Some("Mgmt"))], vec![format!("spec.networks[1].name: \"Mgmt\" {NOT_A_DNS_LABEL}")]),
        (
            "static without address",
            vec![("spec.networks[1].ipConfig.address", None)],
            vec!["spec.networks[1].ipConfig.address: is required for a static ipConfig".into()],
        ),
        (
            "address 10.0.0.300/24",
            vec![("spec.networks[1].ipConfig.address", Some("10.0.0.300/24"))],
            vec![
                "spec.networks[1].ipConfig.address: \"10.0.0.300/24\" is not a valid CIDR (an address with a prefix length, like \"192.168.100.10/24\")"
                    .into(),
            ],
        ),
        (
            "address without prefix",
            vec![("spec.networks[1].ipConfig.address", Some("192.168.1.10"))],
            vec![
                "spec.networks[1].ipConfig.address: \"192.168.1.10\" is not a valid CIDR (an address with a prefix length, like \"192.168.100.10/24\")"
                    .into(),
            ],
        ),
        (
            "network address",
            vec![("spec.networks[1].ipConfig.address", Some("192.168.1.0/24"))],
            vec!["spec.networks[1].ipConfig.address: \"192.168.1.0/24\" is the network or broadcast address of its subnet".into()],
        ),
        (
            "gateway outside the subnet",
            vec![("spec.networks[1].ipConfig.gateway", Some("10.0.0.1"))],
            vec!["spec.networks[1].ipConfig.gateway: \"10.0.0.1\" is not inside the subnet \"192.168.1.0/24\" of the address".into()],
        ),
        (
            "gateway equal to the address",
            vec![("spec.networks[1].ipConfig.gateway", Some("192.168.1.10"))],
            vec!["spec.networks[1].ipConfig.gateway: \"192.168.1.10\" is the interface's own address".into()],
        ),
        (
            "gateway not an address",
            vec![("spec.networks[1].ipConfig.gateway", Some("router"))],
            vec!["spec.networks[1].ipConfig.gateway: \"router\" is not an IP address".into()],
        ),
        (
            "dhcp with address and gateway",
            vec![("spec.networks[1].ipConfig.mode", Some("dhcp"))],
            vec![
                "spec.networks[1].ipConfig.address: a dhcp ipConfig takes no address".into(),
                "spec.networks[1].ipConfig.gateway: a dhcp ipConfig takes no gateway".into(),
            ],
        ),
        (
            "pool mode without pool, with an address and gateway",
            vec![("spec.networks[1].ipConfig.mode", Some("pool"))],
            vec![
                "spec.networks[1].ipConfig.pool: is required for a pool ipConfig".into(),
                "spec.networks[1].ipConfig.address: a pool ipConfig takes its address from the pool".into(),
                "spec.networks[1].ipConfig.gateway: a pool ipConfig takes its gateway from the pool".into(),
            ],
        ),
        (
            "dhcp naming a pool",
            vec![("spec.networks[1].ipConfig", Some("{mode: dhcp, pool: vlan100}"))],
            vec!["spec.networks[1].ipConfig.pool: a dhcp ipConfig takes no pool".into()],
        ),
        (
            "a pool name that is no object name",
            vec![("spec.networks[1].ipConfig.pool", Some("Vlan_100"))],
            vec!["spec.networks[1].ipConfig.pool: \"Vlan_100\" is not an IPPool name (a DNS subdomain)".into()],
        ),
        (
            "pool mode on the pod network",
            vec![("spec.networks[0].ipConfig", Some("{mode: pool, pool: vlan100}"))],
            vec!["spec.networks[0].ipConfig.mode: the pod network gets its address from KubeVirt's DHCP; use mode dhcp".into()],
        ),
        (
            "static on the pod network",
            vec![("spec.networks[0].ipConfig", Some("{mode: static, address: 10.0.2.2/24}"))],
            vec!["spec.networks[0].ipConfig.mode: the pod network gets its address from KubeVirt's DHCP; use mode dhcp".into()],
        ),
        (
            "gateways on two networks",
            vec![("spec.networks[+]", Some("{name: lan, type: bridge, ipConfig: {mode: static, address: 10.1.0.5/16, gateway: 10.1.0.1}}"))],
            vec!["spec.networks: only one network may set a gateway (the guest's default route); \"mgmt\", \"lan\" all do".into()],
        ),
        (
            "bad DNS server",
            vec![("spec.networks[1].ipConfig.dns", Some("[192.168.1.2, dns.example.com]"))],
            vec!["spec.networks[1].ipConfig.dns[1]: \"dns.example.com\" is not an IP address".into()],
        ),
        ("duplicate disk names", vec![("spec.disks[1].name", Some("system"))], vec!["spec.disks[1].name: \"system\" is used by another disk".into()]),
        (
            "disk named cloudinitdisk",
            vec![("spec.disks[1].name", Some("cloudinitdisk"))],
            vec!["spec.disks[1].name: \"cloudinitdisk\" is reserved for the cloud-init disk".into()],
        ),
        ("bad disk name", vec![("spec.disks[1].name", Some("data_1"))], vec![format!("spec.disks[1].name: \"data_1\" {NOT_A_DNS_LABEL}")]),
        ("two boot disks", vec![("spec.disks[1].boot", Some("true"))], vec!["spec.disks[1].boot: at most one disk may be the boot disk".into()]),
        (
            "disk with no source",
            vec![("spec.disks[1].size", None)],
            vec!["spec.disks[1].size: is required: a disk needs existingPVC, image with size, or size for a blank volume".into()],
        ),
        (
            "image without size",
            vec![("spec.disks[0].size", None)],
            vec!["spec.disks[0].size: an image disk needs the size of the volume to import into".into()],
        ),
        ("size 0", vec![("spec.disks[1].size", Some("'0'"))], vec!["spec.disks[1].size: \"0\" must be greater than zero".into()]),
        (
            "existingPVC with size",
            vec![("spec.disks[1].existingPVC", Some("{name: data-pvc}"))],
            vec!["spec.disks[1].size: a disk with existingPVC takes no image, size or storageClassName".into()],
        ),
        (
            "existingPVC with image and storageClassName",
            vec![("spec.disks[0].existingPVC", Some("{name: data-pvc}")), ("spec.disks[0].size", None), ("spec.disks[0].storageClassName", Some("fast"))],
            vec![
                "spec.disks[0].image: a disk with existingPVC takes no image, size or storageClassName".into(),
                "spec.disks[0].storageClassName: a disk with existingPVC takes no image, size or storageClassName".into(),
            ],
        ),
        (
            "existingPVC with deletionPolicy Delete",
            vec![("spec.disks[1]", Some("{name: data, existingPVC: {name: data-pvc}, deletionPolicy: Delete}"))],
            vec!["spec.disks[1].deletionPolicy: an existingPVC is never deleted; deletionPolicy Delete does not apply to it".into()],
        ),
        (
            "existingPVC with a bad name and namespace",
            vec![("spec.disks[1]", Some("{name: data, existingPVC: {name: Data_PVC, namespace: Backups}}"))],
            vec![
                "spec.disks[1].existingPVC.name: \"Data_PVC\" is not a valid claim name".into(),
                "spec.disks[1].existingPVC.namespace: \"Backups\" is not a valid namespace name".into(),
            ],
        ),
        (
            "image scheme s3://",
            vec![("spec.disks[0].image", Some("s3://bucket/disk.img"))],
            vec!["spec.disks[0].image: \"s3://bucket/disk.img\" must start with docker://, http:// or https://".into()],
        ),
        (
            "image without host",
            vec![("spec.disks[0].image", Some("https:///disk.img"))],
            vec!["spec.disks[0].image: \"https:///disk.img\" has no host".into()],
        ),
        (
            "bad storageClassName",
            vec![("spec.disks[1].storageClassName", Some("Fast_SSD"))],
            vec!["spec.disks[1].storageClassName: \"Fast_SSD\" is not a valid StorageClass name".into()],
        ),
        (
            "bad SSH key",
            vec![("spec.cloudInit.users[0].sshAuthorizedKeys", Some("[not-a-key]"))],
            vec!["spec.cloudInit.users[0].sshAuthorizedKeys[0]: \"not-a-key\" is not an OpenSSH public key (\"ssh-ed25519 AAAA... comment\")".into()],
        ),
        (
            "SSH key over two lines",
            vec![("spec.cloudInit.users[0].sshAuthorizedKeys", Some("[\"ssh-rsa AAAA a\\nssh-rsa BBBB b\"]"))],
            vec!["spec.cloudInit.users[0].sshAuthorizedKeys[0]: \"ssh-rsa AAAA a\nssh-rsa B...\" spans several lines; give one key per entry".into()],
        ),
        (
            "script userData with users",
            vec![("spec.cloudInit.userData", Some("\"#!/bin/sh\\necho hello\\n\""))],
            vec!["spec.cloudInit.userData: users can only be merged into a #cloud-config document; this one is a script".into()],
        ),
        (
            "userData that is not valid YAML",
            vec![("spec.cloudInit.userData", Some("\"#cloud-config\\npackages: [nginx\\n\""))],
            vec!["spec.cloudInit.userData: is not valid YAML: unclosed bracket '[' at line 2, column 11".into()],
        ),
        (
            "cloud-config userData whose users is not a list",
            vec![("spec.cloudInit.userData", Some("\"#cloud-config\\nusers: default\\n\""))],
            vec!["spec.cloudInit.userData: its \"users\" must be a list to merge spec.cloudInit.users into it".into()],
        ),
        (
            "cloud-config userData that is a list",
            vec![("spec.cloudInit.userData", Some("\"#cloud-config\\n- a\\n\""))],
            vec!["spec.cloudInit.userData: a #cloud-config document must be a YAML mapping".into()],
        ),
        (
            "duplicate users",
            vec![("spec.cloudInit.users[+]", Some("{name: ops}"))],
            vec!["spec.cloudInit.users[1].name: \"ops\" is declared twice".into()],
        ),
        (
            "bad user name",
            vec![("spec.cloudInit.users[0].name", Some("Ops"))],
            vec!["spec.cloudInit.users[0].name: \"Ops\" is not a Linux user name (lowercase letters, digits, '_' and '-', at most 32)".into()],
        ),
        (
            "bad password reference",
            vec![("spec.cloudInit.users[0].passwordSecretRef", Some("{name: Pass, key: 'a/b'}"))],
            vec![
                "spec.cloudInit.users[0].passwordSecretRef.name: \"Pass\" is not a valid Secret name".into(),
                "spec.cloudInit.users[0].passwordSecretRef.key: \"a/b\" is not a valid Secret key".into(),
            ],
        ),
        (
            "bad nodeSelector key",
            vec![("spec.highAvailability.nodeSelector", Some("{'node role/vm': 'true'}"))],
            vec!["spec.highAvailability.nodeSelector: \"node role/vm\" is not a valid label key".into()],
        ),
        (
            "bad nodeSelector value",
            vec![("spec.highAvailability.nodeSelector", Some("{node-role/vm: 'yes please'}"))],
            vec!["spec.highAvailability.nodeSelector.node-role/vm: \"yes please\" is not a valid label value".into()],
        ),
        (
            "bad migration nodeSelector key",
            vec![("spec.migration", Some("{requestedAt: t1, nodeSelector: {'zone b': x}}"))],
            vec!["spec.migration.nodeSelector: \"zone b\" is not a valid label key".into()],
        ),
        (
            "Exists toleration with value",
            vec![("spec.highAvailability.tolerations[0].operator", Some("Exists"))],
            vec!["spec.highAvailability.tolerations[0].value: an Exists toleration takes no value".into()],
        ),
        (
            "tolerationSeconds without effect NoExecute",
            vec![("spec.highAvailability.tolerations[0].tolerationSeconds", Some("300"))],
            vec!["spec.highAvailability.tolerations[0].tolerationSeconds: applies only to effect NoExecute".into()],
        ),
        (
            "Exists toleration with an empty value",
            vec![("spec.highAvailability.tolerations[0]", Some("{operator: Exists, value: ''}"))],
            vec!["spec.highAvailability.tolerations[0].value: an Exists toleration takes no value".into()],
        ),
        (
            "Equal toleration without key",
            vec![("spec.highAvailability.tolerations[0].key", None)],
            vec!["spec.highAvailability.tolerations[0].key: is required unless operator is Exists".into()],
        ),
        (
            "bad anti-affinity group",
            vec![("spec.highAvailability.antiAffinity.group", Some("web servers"))],
            vec!["spec.highAvailability.antiAffinity.group: \"web servers\" is not a valid label value".into()],
        ),
    ];
    let mut failures = Vec::new();
    for (what, mutations, expected) in &rows {
        let actual = problems(&mutated(mutations));
        if actual != *expected {
            failures.push(format!("{what}:\n  expected {expected:#?}\n  actual   {actual:#?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn every_problem_of_a_document_is_reported_at_once() {
    let wukong = mutated(&[
        ("metadata.name", Some("Bad")),
        ("spec.cpu", Some("0")),
        ("spec.memory", Some("8GB")),
        ("spec.networks[1].vlanId", Some("5000")),
        ("spec.networks[1].ipConfig.gateway", Some("10.0.0.1")),
        ("spec.disks[1].name", Some("system")),
        ("spec.disks[0].image", Some("s3://bucket/disk.img")),
        ("spec.cloudInit.users[0].sshAuthorizedKeys", Some("[nope]")),
        ("spec.highAvailability.tolerations[0].operator", Some("Exists")),
    ]);
    let expected = [
        format!("metadata.name: \"Bad\" {NOT_A_DNS_LABEL}; the VM and its hostname are named after it"),
        "spec.cpu: \"0\" must be between 1 and 1024 cores".into(),
        "spec.memory: \"8GB\" is not a quantity (unknown suffix \"GB\")".into(),
        "spec.networks[1].vlanId: \"5000\" must be between 1 and 4094".into(),
        "spec.networks[1].ipConfig.gateway: \"10.0.0.1\" is not inside the subnet \"192.168.1.0/24\" of the address".into(),
        "spec.disks[0].image: \"s3://bucket/disk.img\" must start with docker://, http:// or https://".into(),
        "spec.disks[1].name: \"system\" is used by another disk".into(),
        "spec.cloudInit.users[0].sshAuthorizedKeys[0]: \"nope\" is not an OpenSSH public key (\"ssh-ed25519 AAAA... comment\")".into(),
        "spec.highAvailability.tolerations[0].value: an Exists toleration takes no value".into(),
    ];
    assert_eq!(problems(&wukong), expected);

    // Across documents too: render reports every invalid document, each once.
    let bad = wukong::yaml::to_string(&wukong).expect("serialises");
    let input = format!("{bad}---\n{BASE}---\n{}", bad.replace("name: Bad", "name: Worse"));
    let errors = render(&input).expect_err("two invalid documents");
    let subjects: Vec<(usize, Option<&str>, usize)> =
        errors.iter().map(|error| (error.document, error.wukong.as_deref(), error.problems.len())).collect();
    assert_eq!(subjects, [(1, Some("test/Bad"), expected.len()), (3, Some("test/Worse"), expected.len())]);
}

/// The single problem line of an input that does not parse.
fn parse_errors(input: &str) -> Vec<String> {
    match parse_documents(input) {
        Ok(wukongs) => panic!("{input:?} parsed into {} Wukongs", wukongs.len()),
        Err(errors) => errors.iter().map(DocumentError::to_string).collect(),
    }
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let line = text[..offset].matches('\n').count() + 1;
    let column = offset - text[..offset].rfind('\n').map_or(0, |newline| newline + 1) + 1;
    (line, column)
}

#[test]
fn an_unknown_field_is_a_parse_error_with_path_and_line() {
    let input = BASE.replace("      size: 10Gi\n", "      size: 10Gi\n      storageClass: fast\n");
    let (line, column) = position(&input, "storageClass: fast");
    let fields = "`name`, `size`, `storageClassName`, `accessMode`, `volumeMode`, `boot`, `image`, `existingPVC`, `bus`, `deletionPolicy`";
    assert_eq!(
        parse_errors(&input),
        [format!(
            "document 1: spec.disks[1].storageClass: unknown field `storageClass`, expected one of {fields} at line {line} column {column}"
        )]
    );
    // The line counts from the start of the whole input, not of the document.
    let second = format!("{BASE}---\n{input}");
    let (line, column) = position(&second, "storageClass: fast");
    assert_eq!(
        parse_errors(&second),
        [format!(
            "document 2: spec.disks[1].storageClass: unknown field `storageClass`, expected one of {fields} at line {line} column {column}"
        )]
    );
}

#[test]
fn a_wrong_type_is_a_parse_error_with_path_and_line() {
    let input = BASE.replace("cpu: 2", "cpu: \"four\"");
    let (line, column) = position(&input, "\"four\"");
    assert_eq!(
        parse_errors(&input),
        [format!("document 1: spec.cpu: invalid type: string \"four\", expected u32 at line {line} column {column}")]
    );
}

#[test]
fn inputs_that_are_not_wukongs() {
    let not_wukong = "is not a Wukong (expected apiVersion \"vm.novasphere.dev/v1alpha1\", kind \"Wukong\")";
    let rows: [(&str, &str, Vec<String>); 7] = [
        (
            "a Pod",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
            vec![format!("document 1: apiVersion \"v1\", kind \"Pod\" {not_wukong}")],
        ),
        (
            "a Wukong of another version",
            "apiVersion: vm.novasphere.dev/v1\nkind: Wukong\n",
            vec![format!("document 1: apiVersion \"vm.novasphere.dev/v1\", kind \"Wukong\" {not_wukong}")],
        ),
        ("an empty file", "", vec!["document 0: the input holds no Wukong document".into()]),
        ("only comments and separators", "# nothing\n---\n---\n", vec!["document 0: the input holds no Wukong document".into()]),
        (
            "a list at the top level",
            "- apiVersion: vm.novasphere.dev/v1alpha1\n  kind: Wukong\n",
            vec!["document 1: is not a YAML mapping (expected a Wukong object)".into()],
        ),
        ("a plain string", "hello\n", vec!["document 1: is not a YAML mapping (expected a Wukong object)".into()]),
        (
            "not YAML",
            "spec: [cpu\nmemory: 4Gi\n",
            vec!["document 1: failed to parse YAML: illegal placement of ':' indicator at line 2, column 7".into()],
        ),
    ];
    for (what, input, expected) in rows {
        assert_eq!(parse_errors(input), expected, "{what}");
    }
    // A Pod among Wukongs is an error of its own document; the Wukongs still parse.
    let errors = parse_errors(&format!("{BASE}---\napiVersion: v1\nkind: Pod\n"));
    assert_eq!(errors, [format!("document 2: apiVersion \"v1\", kind \"Pod\" {not_wukong}")]);
    // Empty documents count: the Pod is the second document of the stream.
    let errors = parse_errors("---\n# nothing here\n---\napiVersion: v1\nkind: Pod\n");
    assert_eq!(errors, [format!("document 2: apiVersion \"v1\", kind \"Pod\" {not_wukong}")]);
    // A syntax error in a later document names it, with the line in the whole input.
    let input = format!("{BASE}---\nspec: [cpu\nmemory: 4Gi\n");
    let line = input[..input.rfind("memory: 4Gi").expect("the second document")].matches('\n').count() + 1;
    assert_eq!(
        parse_errors(&input),
        [format!("document 2: failed to parse YAML: illegal placement of ':' indicator at line {line}, column 7")]
    );
}

#[test]
fn plain_scalars_follow_yaml_1_2() {
    // `off`, `0755` and `on` are strings where the field is a string...
    let input = BASE
        .replace("- name: data", "- name: off")
        .replace("- name: ops", "- name: 0755")
        .replace("{node-role/vm: \"true\"}", "{node-role/vm: on}");
    let wukongs = parse_documents(&input).expect("parses");
    let spec = &wukongs[0].spec;
    assert_eq!(spec.disks[1].name, "off");
    assert_eq!(spec.cloud_init.as_ref().expect("cloud-init").users[0].name, "0755");
    assert_eq!(spec.high_availability.as_ref().expect("high availability").node_selector["node-role/vm"], "on");
    // ...and `yes` is no boolean.
    let input = BASE.replace("sudo: true", "sudo: yes");
    let (line, column) = position(&input, "yes");
    assert_eq!(
        parse_errors(&input),
        [format!(
            "document 1: spec.cloudInit.users[0].sudo: invalid type: string \"yes\", expected a boolean at line {line} column {column}"
        )]
    );
}

#[test]
fn merged_user_data_keeps_the_order_and_spelling_of_the_users_own_cloud_config() {
    let own =
        "      package_upgrade: yes\n      write_files:\n      - path: /etc/motd\n        permissions: 0644\n      packages: [nginx]\n";
    let rendered = render(&BASE.replace("      packages: [nginx]\n", own)).expect("renders");
    let secret: k8s_openapi::api::core::v1::Secret = wukong::yaml::documents(&rendered)
        .iter()
        .map(|document| document.parse::<Value>().expect("rendered YAML"))
        .find(|document| document["kind"] == "Secret")
        .map(|document| serde_json::from_value(document).expect("a Secret"))
        .expect("the cloud-init Secret");
    let user_data = String::from_utf8(secret.data.expect("data")["userdata"].0.clone()).expect("utf-8");
    // `yes` stays as written, so cloud-init (YAML 1.1) still reads a boolean; `0644` is the string it was.
    let expected = "#cloud-config
package_upgrade: yes
write_files:
- path: /etc/motd
  permissions: \"0644\"
packages:
- nginx
users:
- name: ops
  shell: /bin/bash
  ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example
  sudo: ALL=(ALL) NOPASSWD:ALL
  lock_passwd: true
";
    assert_eq!(user_data, expected);
}

#[test]
fn run_strategy_is_explicit_then_auto_start_then_restart_policy_then_always() {
    use RestartPolicy::{Always, Never, OnFailure};
    // runStrategy, startStrategy.autoStart, highAvailability.restartPolicy => expected
    type Row<'a> = (Option<&'a str>, Option<bool>, Option<RestartPolicy>, RunStrategy);
    let rows: [Row<'_>; 11] = [
        (None, None, None, RunStrategy::Always),
        (Some("Manual"), Some(false), Some(Never), RunStrategy::Manual),
        (Some("Always"), Some(false), None, RunStrategy::Always),
        (Some("Halted"), Some(true), Some(Always), RunStrategy::Halted),
        (Some("RerunOnFailure"), None, Some(Never), RunStrategy::RerunOnFailure),
        (None, Some(false), Some(Always), RunStrategy::Halted),
        (None, Some(false), Some(OnFailure), RunStrategy::Halted),
        (None, Some(true), None, RunStrategy::Always),
        (None, Some(true), Some(OnFailure), RunStrategy::RerunOnFailure),
        (None, None, Some(Never), RunStrategy::Once),
        (None, None, Some(Always), RunStrategy::Always),
    ];
    for (explicit, auto_start, restart_policy, expected) in rows {
        let mut mutations: Vec<Mutation<'_>> = Vec::new();
        let auto_start_text = auto_start.map(|auto_start| format!("{{autoStart: {auto_start}}}"));
        let restart_text = restart_policy.map(|policy| format!("{policy:?}"));
        if let Some(explicit) = explicit {
            mutations.push(("spec.runStrategy", Some(explicit)));
        }
        if let Some(text) = &auto_start_text {
            mutations.push(("spec.startStrategy", Some(text)));
        }
        if let Some(text) = &restart_text {
            mutations.push(("spec.highAvailability.restartPolicy", Some(text)));
        }
        let wukong = mutated(&mutations);
        assert_eq!(run_strategy(&wukong.spec), expected, "{mutations:?}");
        let valid = validate(&wukong).unwrap_or_else(|problems| panic!("{mutations:?}: {problems}"));
        assert_eq!(valid.run_strategy, expected, "{mutations:?}");
    }
}

#[test]
fn a_problem_quoting_a_line_break_stays_on_one_line() {
    let errors = render(&mutated_text(&[("spec.disks[1].name", Some("\"da\\nta\""))])).expect_err("a bad disk name");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown, [format!("document 1 (Wukong test/base): spec.disks[1].name: \"da\\nta\" {NOT_A_DNS_LABEL}")]);
}
