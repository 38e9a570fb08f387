//! The e2e phase `addresses` against the real API server: an IPPool, a burst
//! of Wukongs taking distinct addresses from it, a static-address conflict
//! refused (naming the earlier Wukong of the same namespace), a deletion that
//! returns the pool's `allocated` to its earlier value, and a pool whose
//! deletion is held by its leases until they go. Plus [`cleanup`], which
//! removes this run's pool and leases (cluster-scoped: the namespaces'
//! deletion does not take them).

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, ListParams, Patch, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use wukong::api::{IPLease, IPPool, IPPoolSpec, Phase};
use wukong::controller::addresses::leases::HOLDER_NAMESPACE_LABEL;

use super::{Check, E2e, Env, TIMEOUT, condition, merge_params, wait_for, wait_for_status};

/// How many Wukongs the burst creates.
const BURST: usize = 6;

fn pool_name(env: &Env) -> String {
    format!("wukong-e2e-{}", env.run)
}

/// A Wukong with one VLAN 231 network whose `ipConfig` is given.
fn wukong(env: &Env, name: &str, ip_config: Value) -> Value {
    json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": {"cpu": 1, "memory": "1Gi", "runStrategy": "Halted", "networks": [
            {"name": "mgmt", "type": "vlan", "bridge": "br-e2e", "vlanId": 231, "ipConfig": ip_config}
        ]},
    })
}

async fn allocated(client: &Client, pool: &str) -> E2e<Option<i64>> {
    let api: Api<IPPool> = Api::all(client.clone());
    let found = api.get_opt(pool).await.map_err(|error| format!("failed to read IPPool {pool}: {error}"))?;
    Ok(found.and_then(|pool| pool.status).and_then(|status| status.allocated))
}

async fn wait_allocated(env: &Env, pool: &str, wanted: i64) -> E2e {
    wait_for(&format!("IPPool {pool}: allocated {wanted}"), TIMEOUT, async || match allocated(&env.client, pool).await? {
        Some(count) if count == wanted => Ok(Check::Done(())),
        other => Ok(Check::Waiting(format!("allocated {other:?}"))),
    })
    .await
}

/// The address a Wukong's status shows for its network.
async fn shown_address(env: &Env, name: &str) -> E2e<String> {
    let (_, status) = wait_for_status(env, &env.namespace, name, "an address shown for mgmt", |_, status| {
        status.networks.first().is_some_and(|network| !network.ip_addresses.is_empty())
    })
    .await?;
    Ok(status.networks.first().and_then(|network| network.ip_addresses.first().cloned()).unwrap_or_default())
}

/// The phase.
pub async fn phase_addresses(env: &Env) -> E2e {
    let kinds = &env.kinds;
    let pool = pool_name(env);
    let pools: Api<IPPool> = Api::all(env.client.clone());
    let spec = IPPoolSpec {
        cidr: "10.231.0.0/24".to_string(),
        start: Some("10.231.0.10".to_string()),
        end: Some("10.231.0.40".to_string()),
        gateway: Some("10.231.0.1".to_string()),
        dns: vec!["10.231.0.2".to_string()],
        namespaces: vec![env.namespace.clone()],
        ..IPPoolSpec::default()
    };
    pools
        .create(&PostParams::default(), &IPPool::new(&pool, spec))
        .await
        .map_err(|error| format!("failed to create IPPool {pool}: {error}"))?;
    println!("e2e:   created IPPool {pool}");
    wait_allocated(env, &pool, 0).await?;

    // A burst: distinct addresses.
    let names: Vec<String> = (0..BURST).map(|index| format!("pooled-{index}")).collect();
    for name in &names {
        env.apply_yaml(&kinds.wukong, &wukong(env, name, json!({"mode": "pool", "pool": pool}))).await?;
    }
    let mut addresses = BTreeSet::new();
    for name in &names {
        addresses.insert(shown_address(env, name).await?);
    }
    ensure!(addresses.len() == BURST, "the burst got {} distinct addresses for {BURST} Wukongs: {addresses:?}", addresses.len());
    ensure!(!addresses.contains("10.231.0.1"), "the gateway was handed out: {addresses:?}");
    wait_allocated(env, &pool, BURST as i64).await?;

    // A static conflict on one segment: the later Wukong is refused, naming the earlier.
    let address = json!({"mode": "static", "address": "10.231.1.5/24"});
    env.apply_yaml(&kinds.wukong, &wukong(env, "static-first", address.clone())).await?;
    shown_address(env, "static-first").await?;
    // Created later (or in the same second: then the name decides, and "static-first" sorts first).
    env.apply_yaml(&kinds.wukong, &wukong(env, "static-second", address)).await?;
    wait_for_status(env, &env.namespace, "static-second", "phase Error, AddressConflict naming static-first", |_, status| {
        status.phase == Some(Phase::Error)
            && condition(status, "Valid").is_some_and(|valid| valid.reason == "AddressConflict" && valid.message.contains("static-first"))
    })
    .await?;

    // Deleting a Wukong releases its address: allocated returns to its earlier value.
    let last = names.last().cloned().unwrap_or_default();
    super::delete_wukong(env, &last).await?;
    wait_allocated(env, &pool, BURST as i64 - 1).await?;

    // The pool's deletion waits for its leases.
    pools.delete(&pool, &DeleteParams::default()).await.map_err(|error| format!("failed to delete IPPool {pool}: {error}"))?;
    wait_for(&format!("IPPool {pool}: deletion blocked by its leases"), TIMEOUT, async || {
        let found = pools.get_opt(&pool).await.map_err(|error| format!("failed to read IPPool {pool}: {error}"))?;
        let blocked = found.as_ref().and_then(|pool| pool.status.as_ref()).is_some_and(|status| {
            status.conditions.iter().any(|condition| condition.type_ == "Terminating" && condition.message.contains("leases block"))
        });
        if blocked { Ok(Check::Done(())) } else { Ok(Check::Waiting(format!("{found:?}"))) }
    })
    .await?;
    for name in names.iter().take(BURST - 1) {
        super::delete_wukong(env, name).await?;
    }
    wait_for(&format!("IPPool {pool} gone once its leases are"), TIMEOUT, async || {
        match pools.get_opt(&pool).await.map_err(|error| format!("failed to read IPPool {pool}: {error}"))? {
            None => Ok(Check::Done(())),
            Some(found) => Ok(Check::Waiting(format!("{:?}", found.status))),
        }
    })
    .await?;
    for name in ["static-first", "static-second"] {
        super::delete_wukong(env, name).await?;
    }
    Ok(())
}

/// Removes this run's pool and every lease its namespaces' Wukongs held.
pub async fn cleanup(env: &Env) {
    let leases: Api<IPLease> = Api::all(env.client.clone());
    for namespace in [&env.namespace, &env.other] {
        let selector = format!("{HOLDER_NAMESPACE_LABEL}={namespace}");
        match leases.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                for lease in list.items {
                    if let Err(error) = leases.delete(&lease.name_any(), &DeleteParams::default()).await {
                        println!("e2e:   cleanup: failed to delete IPLease {}: {error}", lease.name_any());
                    }
                }
            }
            Err(error) => println!("e2e:   cleanup: failed to list the IPLeases of {namespace}: {error}"),
        }
    }
    let pools: Api<IPPool> = Api::all(env.client.clone());
    let pool = pool_name(env);
    let release = json!({"metadata": {"finalizers": null}});
    let _ = pools.patch(&pool, &merge_params(), &Patch::Merge(&release)).await;
    let _ = pools.delete(&pool, &DeleteParams::default()).await;
}
