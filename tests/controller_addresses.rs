//! Reconcile tests of addresses: leases from an IPPool into cloud-init and the
//! status, every refusal and its convergence once the cause is fixed, static
//! conflicts (the earlier declaration wins; other tenants stay unnamed), and
//! release (network removed, switched to DHCP, Wukong deleted) only once the
//! VM no longer uses the address.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use common::harness::Harness;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use wukong::api::{IPLease, Phase};
use wukong_models::virtualmachine::VirtualMachine;

const POOL: &str = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: IPPool
metadata: {name: vlan100}
spec:
  cidr: 192.168.100.0/24
  start: 192.168.100.10
  end: 192.168.100.12
  gateway: 192.168.100.1
  dns: [192.168.100.2]
  exclude: [192.168.100.11]
"#;

/// A Wukong in `namespace` created at `created` (with a UID unique across fakes) with one vlan-100 network whose `ipConfig` is given as YAML flow.
fn wukong(namespace: &str, name: &str, created: &str, ip_config: &str) -> String {
    format!(
        r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {{name: {name}, namespace: {namespace}, uid: {namespace}-{name}-uid, creationTimestamp: "{created}"}}
spec:
  cpu: 1
  memory: 1Gi
  networks:
    - name: mgmt
      type: vlan
      bridge: br-mgmt
      vlanId: 100
      ipConfig: {ip_config}
"#
    )
}

const FROM_POOL: &str = "{mode: pool, pool: vlan100}";

fn leases(harness: &Harness) -> Vec<IPLease> {
    harness.api.list_typed::<IPLease>()
}

fn addresses_of(harness: &Harness, namespace: &str, name: &str) -> Vec<String> {
    let mut held: Vec<String> = leases(harness)
        .into_iter()
        .filter(|lease| lease.spec.holder.namespace == namespace && lease.spec.holder.name == name)
        .map(|lease| lease.spec.address)
        .collect();
    held.sort();
    held
}

fn network_data(harness: &Harness, namespace: &str, name: &str) -> String {
    let secret: Secret = harness.api.get_typed(Some(namespace), &format!("{name}-cloudinit")).expect("cloud-init secret");
    String::from_utf8(secret.data.expect("data")["networkdata"].0.clone()).expect("utf-8")
}

async fn refused_with(harness: &Harness, namespace: &str, name: &str, reason: &str) -> String {
    harness.api.clear_requests();
    harness.reconcile(namespace, name).await.expect("a refusal is not a reconcile error");
    assert_eq!(harness.status(namespace, name).phase, Some(Phase::Error));
    let valid = harness.condition(namespace, name, "Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", reason), "{}", valid.message);
    assert!(harness.event_reasons().contains(&reason.to_string()), "an Event names {reason}: {:?}", harness.event_reasons());
    // A lease create that finds the address taken is the lock doing its job; no child is written.
    let written: Vec<String> = harness
        .write_summary()
        .into_iter()
        .filter(|write| !write.contains("/events") && !write.contains("/ipleases") && !write.contains("/wukongs/"))
        .collect();
    assert!(written.is_empty(), "nothing is created for a refused Wukong: {written:?}");
    assert!(addresses_of(harness, namespace, name).is_empty(), "a refused Wukong holds no address");
    valid.message
}

/// Cleanup passes of a deleted Wukong until it is gone.
async fn until_gone(harness: &Harness, namespace: &str, name: &str) {
    for _ in 0..4 {
        if harness.wukong(namespace, name).is_none() {
            return;
        }
        harness.reconcile(namespace, name).await.expect("cleanup pass");
    }
    assert!(harness.wukong(namespace, name).is_none(), "{namespace}/{name} is gone after its cleanup");
}

async fn converged(harness: &Harness, namespace: &str, name: &str) {
    harness.converge(namespace, name, 6).await;
    let valid = harness.condition(namespace, name, "Valid");
    assert_eq!(valid.status, "True", "{}: {}", valid.reason, valid.message);
}

/// The VMI KubeVirt runs for the Wukong's VM, with `uid`.
fn seed_instance(harness: &Harness, namespace: &str, name: &str, uid: &str) {
    let vm: VirtualMachine = harness.api.get_typed(Some(namespace), &format!("{name}-vm")).expect("vm");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": format!("{name}-vm"), "namespace": namespace, "uid": uid, "labels": labels},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running", "nodeName": "node-a"},
    }));
}

/// The VM restarted: its instance is another one (another UID), whose guest
/// reports the address DHCP gave it.
fn restart_instance(harness: &Harness, namespace: &str, name: &str) {
    harness.edit("kubevirt.io/v1", "virtualmachineinstances", Some(namespace), &format!("{name}-vm"), |instance| {
        instance["metadata"]["uid"] = json!("uid-after-restart");
        instance["status"]["interfaces"] = json!([{"name": "mgmt", "ipAddress": "192.168.100.99"}]);
    });
}

/// Runs `passes` reconciles. For a status field that goes away (the IP of a
/// removed network): the in-memory API server keeps fields an apply stops
/// sending (a real one removes them), so such a pass never writes nothing.
async fn passes(harness: &Harness, namespace: &str, name: &str, passes: usize) {
    for _ in 0..passes {
        harness.reconcile(namespace, name).await.expect("reconcile");
    }
}

#[tokio::test]
async fn a_pool_address_reaches_cloud_init_and_the_status_at_once() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    harness.create_wukong(&wukong("prod", "b", "2026-11-22T09:00:01Z", FROM_POOL));
    converged(&harness, "prod", "a").await;
    converged(&harness, "prod", "b").await;
    assert_eq!(addresses_of(&harness, "prod", "a"), ["192.168.100.10"]);
    assert_eq!(addresses_of(&harness, "prod", "b"), ["192.168.100.12"], "the excluded .11 is skipped");
    let data = network_data(&harness, "prod", "a");
    assert!(data.contains("192.168.100.10/24"), "{data}");
    assert!(data.contains("via: \"192.168.100.1\""), "{data}");
    assert!(data.contains("192.168.100.2"), "{data}");
    assert!(data.contains("dhcp4: false"), "{data}");
    let status = harness.status("prod", "a");
    assert_eq!(status.networks[0].ip_addresses, ["192.168.100.10"], "shown before the guest reports it");
    // Stable: more passes, and a restart with empty caches, keep the same address.
    harness.converge("prod", "a", 2).await;
    assert_eq!(addresses_of(&harness, "prod", "a"), ["192.168.100.10"]);
    let fresh = Harness::new();
    for object in harness.api.list("vm.novasphere.dev/v1alpha1", "ipleases") {
        fresh.api.insert(object);
    }
    fresh.create(POOL);
    fresh.create_wukong(&wukong("prod", "c", "2026-11-22T09:00:02Z", FROM_POOL));
    let refusal = refused_with(&fresh, "prod", "c", "PoolExhausted").await;
    assert!(refusal.contains("IPPool \"vlan100\""), "{refusal}");
}

#[tokio::test]
async fn a_missing_pool_refuses_and_converges_once_it_exists() {
    let harness = Harness::new();
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    let message = refused_with(&harness, "prod", "a", "PoolNotFound").await;
    assert!(message.contains("IPPool \"vlan100\" does not exist"), "{message}");
    assert!(harness.api.get_typed::<VirtualMachine>(Some("prod"), "a-vm").is_none(), "no VM for a refused Wukong");
    harness.create(POOL);
    converged(&harness, "prod", "a").await;
    assert_eq!(addresses_of(&harness, "prod", "a"), ["192.168.100.10"]);
}

#[tokio::test]
async fn a_full_pool_refuses_naming_it_and_converges_when_enlarged() {
    let harness = Harness::new();
    harness.create(POOL);
    for (name, second) in [("a", "00"), ("b", "01"), ("c", "02")] {
        harness.create_wukong(&wukong("prod", name, &format!("2026-11-22T09:00:{second}Z"), FROM_POOL));
    }
    converged(&harness, "prod", "a").await;
    converged(&harness, "prod", "b").await;
    let message = refused_with(&harness, "prod", "c", "PoolExhausted").await;
    assert!(message.contains("IPPool \"vlan100\" has no free address"), "{message}");
    harness.edit("vm.novasphere.dev/v1alpha1", "ippools", None, "vlan100", |pool| pool["spec"]["end"] = json!("192.168.100.13"));
    converged(&harness, "prod", "c").await;
    assert_eq!(addresses_of(&harness, "prod", "c"), ["192.168.100.13"]);
}

#[tokio::test]
async fn a_pool_that_does_not_admit_the_namespace_refuses_until_it_does() {
    let harness = Harness::new();
    harness.create(&format!("{POOL}  namespaces: [staging]\n"));
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    let message = refused_with(&harness, "prod", "a", "PoolNotAllowed").await;
    assert!(message.contains("does not admit namespace \"prod\""), "{message}");
    harness.edit("vm.novasphere.dev/v1alpha1", "ippools", None, "vlan100", |pool| {
        pool["spec"]["namespaces"] = json!(["staging", "prod"]);
    });
    converged(&harness, "prod", "a").await;
}

#[tokio::test]
async fn static_addresses_outside_the_pool_or_on_its_gateway_are_refused() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", "{mode: static, address: 10.0.0.5/24, pool: vlan100}"));
    refused_with(&harness, "prod", "a", "AddressOutsidePool").await;
    harness.create_wukong(&wukong("prod", "b", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.1/24, pool: vlan100}"));
    refused_with(&harness, "prod", "b", "AddressIsGateway").await;
    harness.edit_spec("prod", "b", |spec| spec["networks"][0]["ipConfig"]["address"] = json!("192.168.100.50/24"));
    converged(&harness, "prod", "b").await;
    assert_eq!(addresses_of(&harness, "prod", "b"), ["192.168.100.50"], "reserved in the pool");
    // A reservation inside the range is never handed out.
    harness.edit_spec("prod", "b", |spec| spec["networks"][0]["ipConfig"]["address"] = json!("192.168.100.10/24"));
    converged(&harness, "prod", "b").await;
    harness.create_wukong(&wukong("prod", "c", "2026-11-22T09:00:05Z", FROM_POOL));
    converged(&harness, "prod", "c").await;
    assert_eq!(addresses_of(&harness, "prod", "c"), ["192.168.100.12"]);
}

#[tokio::test]
async fn the_later_static_declaration_is_refused_and_other_tenants_stay_unnamed() {
    let harness = Harness::new();
    let address = "{mode: static, address: 192.168.100.20/24}";
    harness.create_wukong(&wukong("prod", "late", "2026-11-22T09:00:05Z", address));
    converged(&harness, "prod", "late").await;
    // An earlier Wukong declaring the same address takes it over...
    harness.create_wukong(&wukong("prod", "early", "2026-11-22T09:00:00Z", address));
    converged(&harness, "prod", "early").await;
    assert_eq!(addresses_of(&harness, "prod", "early"), ["192.168.100.20"]);
    // ...and the later one is refused on its next pass, naming it.
    let message = refused_with(&harness, "prod", "late", "AddressConflict").await;
    assert!(message.contains("Wukong \"prod/early\""), "{message}");
    // Another tenant's later Wukong learns only that another namespace has it.
    harness.create_wukong(&wukong("dev", "other", "2026-11-22T09:00:09Z", address));
    let message = refused_with(&harness, "dev", "other", "AddressConflict").await;
    assert!(message.contains("another namespace") && !message.contains("early") && !message.contains("prod"), "{message}");
    // A different VLAN is another segment: no conflict.
    harness.create_wukong(&wukong("dev", "elsewhere", "2026-11-22T09:00:09Z", address).replace("vlanId: 100", "vlanId: 101"));
    converged(&harness, "dev", "elsewhere").await;
    // The conflicting Wukong goes: the later one converges with no manual step.
    harness.delete_wukong("prod", "early").await;
    until_gone(&harness, "prod", "early").await;
    assert!(harness.wukong("prod", "early").is_none(), "the Wukong is gone");
    converged(&harness, "prod", "late").await;
    assert_eq!(addresses_of(&harness, "prod", "late"), ["192.168.100.20"]);
}

#[tokio::test]
async fn a_switch_to_dhcp_releases_the_address_only_after_the_vm_stops_using_it() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    converged(&harness, "prod", "a").await;
    seed_instance(&harness, "prod", "a", "uid-1");
    harness.edit_spec("prod", "a", |spec| spec["networks"][0]["ipConfig"] = json!({"mode": "dhcp"}));
    converged(&harness, "prod", "a").await;
    let held = leases(&harness);
    assert_eq!(held.len(), 1, "the running VM still uses the address");
    assert_eq!(held[0].spec.release_after_instance.as_deref(), Some("uid-1"));
    restart_instance(&harness, "prod", "a");
    converged(&harness, "prod", "a").await;
    assert!(leases(&harness).is_empty(), "released once the instance that used it is gone");
}

#[tokio::test]
async fn removing_the_network_or_the_wukong_releases_its_address() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    harness.create_wukong(&wukong("prod", "b", "2026-11-22T09:00:01Z", FROM_POOL));
    converged(&harness, "prod", "a").await;
    let before = leases(&harness).len();
    converged(&harness, "prod", "b").await;
    assert_eq!(leases(&harness).len(), before + 1);
    harness.edit_spec("prod", "b", |spec| spec["networks"] = json!([]));
    passes(&harness, "prod", "b", 3).await;
    assert_eq!(leases(&harness).len(), before, "no VM instance: released at once");
    harness.api.clear_requests();
    harness.delete_wukong("prod", "a").await;
    until_gone(&harness, "prod", "a").await;
    assert!(leases(&harness).is_empty(), "the deleted Wukong's lease is released");
    assert!(harness.wukong("prod", "a").is_none());
}

#[tokio::test]
async fn two_networks_of_one_wukong_cannot_declare_one_address() {
    let harness = Harness::new();
    let yaml = wukong("prod", "a", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.20/24}").replace(
        "      ipConfig: {mode: static, address: 192.168.100.20/24}\n",
        "      ipConfig: {mode: static, address: 192.168.100.20/24}\n    - name: second\n      type: vlan\n      bridge: br-mgmt\n      vlanId: 100\n      ipConfig: {mode: static, address: 192.168.100.20/24}\n",
    );
    harness.create_wukong(&yaml);
    harness.reconcile("prod", "a").await.expect("first pass");
    let message = harness.condition("prod", "a", "Valid").message;
    assert!(message.contains("network \"mgmt\" of this Wukong"), "{message}");
}

#[tokio::test]
async fn an_ipv6_pool_hands_out_addresses_with_its_prefix() {
    let harness = Harness::new();
    harness.create(
        r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: IPPool
metadata: {name: vlan100}
spec: {cidr: "2001:db8:100::/64", gateway: "2001:db8:100::1", dns: ["2001:db8:100::53"]}
"#,
    );
    harness.create_wukong(&wukong("prod", "a", "2026-11-22T09:00:00Z", FROM_POOL));
    converged(&harness, "prod", "a").await;
    assert_eq!(addresses_of(&harness, "prod", "a"), ["2001:db8:100::2"], "the anycast ::0 and the gateway ::1 are skipped");
    let data = network_data(&harness, "prod", "a");
    assert!(data.contains("2001:db8:100::2/64") && data.contains("2001:db8:100::53"), "{data}");
    let lease = leases(&harness).pop().expect("a lease");
    assert_eq!(lease.metadata.name.as_deref(), Some("vlan100.2001-0db8-0100-0000-0000-0000-0000-0002"));
    assert_eq!(harness.status("prod", "a").networks[0].ip_addresses, ["2001:db8:100::2"]);
}

/// The lease lists the Wukong's passes made.
fn lease_lists(harness: &Harness) -> usize {
    harness.api.requests().iter().filter(|request| request.verb == "list" && request.path.ends_with("/ipleases")).count()
}

#[tokio::test]
async fn a_static_address_is_leased_without_a_list_even_over_a_stale_cache() {
    let harness = Harness::new();
    harness.create(POOL);
    harness.create_wukong(&wukong("prod", "fixed", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.20/24}"));
    harness.api.clear_requests();
    // Two passes over caches that never show the lease (a restart racing the watches): the second creates it
    // again, finds its own, and keeps the one.
    for _ in 0..2 {
        harness.reconcile_without_sync("prod", "fixed").await.expect("a pass over a stale lease cache");
    }
    assert_eq!(lease_lists(&harness), 0, "a static lease has a fixed name: creating it is the whole check");
    assert_eq!(addresses_of(&harness, "prod", "fixed"), ["192.168.100.20"]);
    assert_eq!(leases(&harness).len(), 1, "no second lease");
    converged(&harness, "prod", "fixed").await;
    assert_eq!(addresses_of(&harness, "prod", "fixed"), ["192.168.100.20"]);
    // An address taken from a pool has no name known in advance: its first pass reads the truth once.
    harness.create_wukong(&wukong("prod", "pooled", "2026-11-22T09:00:00Z", FROM_POOL));
    harness.sync();
    harness.api.clear_requests();
    harness.reconcile("prod", "pooled").await.expect("first pass");
    assert_eq!(lease_lists(&harness), 1, "one consistent list before allocating from a pool");
    converged(&harness, "prod", "pooled").await;
    // A deletion releases what the cache shows it holding: no list either.
    harness.api.clear_requests();
    for name in ["fixed", "pooled"] {
        harness.delete_wukong("prod", name).await;
        until_gone(&harness, "prod", name).await;
    }
    assert_eq!(lease_lists(&harness), 0, "the cleanup reads its leases from the cache");
    assert!(leases(&harness).is_empty(), "both leases are released");
}

/// The clock time `seconds` after the stored lease of `holder` was created.
fn after_lease_of(harness: &Harness, holder: &str, seconds: i64) -> String {
    let lease = leases(harness).into_iter().find(|lease| lease.spec.holder.name == holder).expect("the holder's lease");
    let created: chrono::DateTime<chrono::Utc> = lease.metadata.creation_timestamp.expect("created").0.to_string().parse().expect("a time");
    (created + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn the_sweep_releases_leases_whose_wukong_is_gone_and_nothing_else() {
    let harness = Harness::new();
    harness.create_wukong(&wukong("prod", "kept", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.20/24}"));
    harness.create_wukong(&wukong("prod", "dropped", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.21/24}"));
    converged(&harness, "prod", "kept").await;
    converged(&harness, "prod", "dropped").await;
    // Someone removes the finalizer by hand and deletes the Wukong: no cleanup ran, its lease is left.
    harness.edit("vm.novasphere.dev/v1alpha1", "wukongs", Some("prod"), "dropped", |object| object["metadata"]["finalizers"] = json!([]));
    harness.delete_wukong("prod", "dropped").await;
    assert!(harness.wukong("prod", "dropped").is_none());
    harness.sync();
    // A young lease is left alone (its holder may be newer than the cache)...
    harness.set_time(&after_lease_of(&harness, "dropped", 30));
    assert!(harness.sweep().await.is_empty());
    assert_eq!(addresses_of(&harness, "prod", "dropped"), ["192.168.100.21"]);
    // ...an old one goes, and only it.
    harness.set_time(&after_lease_of(&harness, "dropped", 61));
    let released = harness.sweep().await;
    assert!(released.len() == 1 && released[0].ends_with("(192.168.100.21)"), "{released:?}");
    assert!(addresses_of(&harness, "prod", "dropped").is_empty());
    assert_eq!(addresses_of(&harness, "prod", "kept"), ["192.168.100.20"]);
    // A holder the cache does not show yet, but the API server has, keeps its lease.
    harness.api.insert(common::fixtures::operator_lease("fresh-lease", "192.168.100.22", "fresh", "prod-fresh-uid"));
    harness.sync();
    harness.create_wukong(&wukong("prod", "fresh", "2026-11-22T09:00:00Z", "{mode: static, address: 192.168.100.22/24}"));
    assert!(harness.sweep().await.is_empty(), "a GET finds the holder: the stale cache releases nothing");
    assert_eq!(addresses_of(&harness, "prod", "fresh"), ["192.168.100.22"]);
}
