//! The sweep: releases leases whose Wukong is gone.
//!
//! In: the Wukong and lease caches, the clock, and a GET of each suspect
//! holder. Out: deleted leases whose holder no longer exists (or exists with
//! another UID: deleted and re-created under the name). A Wukong's cleanup
//! releases the leases its cache shows; the sweep catches the rest: a lease
//! created moments before the deletion that the cache did not show yet, or
//! the leases of a Wukong whose finalizer someone removed by hand. A lease
//! younger than [`GRACE`] is left alone (its holder may be too new for the
//! cache), and every suspect is confirmed with a GET before it goes, so a
//! stale cache never releases a live Wukong's address.

use std::collections::HashSet;
use std::time::Duration;

use kube::api::Api;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::leases::{self, LeaseError};
use crate::api::{GuardedWukong, IPLease};
use crate::controller::context::{Context, elapsed};
use crate::controller::watch_health::WatchHealth;

/// How old a lease must be before its holder's absence counts.
pub const GRACE: Duration = Duration::from_secs(60);
/// How often the sweep runs.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// The cached leases whose holder the Wukong cache does not show, older than
/// [`GRACE`] at `now` (RFC 3339). Pure: the caller confirms each with a GET.
pub fn suspects(wukongs: &[std::sync::Arc<GuardedWukong>], leases: &[std::sync::Arc<IPLease>], now: &str) -> Vec<IPLease> {
    let live: HashSet<&str> = wukongs.iter().filter_map(|wukong| wukong.meta().uid.as_deref()).collect();
    leases
        .iter()
        .filter(|lease| !live.contains(lease.spec.holder.uid.as_str()))
        .filter(|lease| {
            let created = lease.creation_timestamp().map(|time| time.0.to_string());
            created.as_deref().and_then(|created| elapsed(created, now)).is_some_and(|age| age >= GRACE)
        })
        .map(|lease| (**lease).clone())
        .collect()
}

/// Errors of one sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Reading a suspect lease's holder failed.
    #[error("failed to read Wukong \"{namespace}/{name}\", the holder of IPLease \"{lease}\": {source}")]
    ReadHolder {
        /// The holder's namespace.
        namespace: String,
        /// The holder's name.
        name: String,
        /// The lease.
        lease: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting a lease failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// One sweep: deletes every suspect lease whose holder a GET confirms gone.
/// Returns the released leases' names.
pub async fn sweep(context: &Context) -> Result<Vec<String>, SweepError> {
    let now = (context.clock)();
    let suspects = suspects(&context.stores.wukongs.state(), &context.stores.leases.state(), &now);
    let mut released = Vec::new();
    for lease in suspects {
        let holder = &lease.spec.holder;
        let api: Api<GuardedWukong> = Api::namespaced(context.client.clone(), &holder.namespace);
        let found = api.get_opt(&holder.name).await.map_err(|source| SweepError::ReadHolder {
            namespace: holder.namespace.clone(),
            name: holder.name.clone(),
            lease: lease.name_any(),
            source,
        })?;
        if found.is_some_and(|wukong| wukong.meta().uid.as_deref() == Some(holder.uid.as_str())) {
            continue;
        }
        leases::delete(&context.client, &lease).await?;
        released.push(format!("IPLease {} ({})", lease.name_any(), lease.spec.address));
    }
    Ok(released)
}

/// Sweeps every [`INTERVAL`] once the caches are synced, until aborted.
pub async fn run(context: std::sync::Arc<Context>, health: WatchHealth) {
    health.wait_synced().await;
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep(&context).await {
            Ok(released) if !released.is_empty() => info!(released = ?released, "released leases whose Wukong is gone"),
            Ok(_) => {}
            Err(error) => warn!(%error, "failed to sweep leases"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "a failed expectation is a failed test")]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    use super::suspects;
    use crate::api::{GuardedWukong, IPLease, IPLeaseSpec, LeaseHolder, LeaseMode, Wukong};

    fn lease(name: &str, holder_uid: &str, created: &str) -> Arc<IPLease> {
        let created: k8s_openapi::jiff::Timestamp = created.parse().expect("an RFC 3339 time");
        Arc::new(IPLease {
            metadata: ObjectMeta { name: Some(name.to_string()), creation_timestamp: Some(Time(created)), ..ObjectMeta::default() },
            spec: IPLeaseSpec {
                pool: None,
                segment: Some("vlan-100".to_string()),
                address: "192.168.100.20".to_string(),
                mode: LeaseMode::Static,
                holder: LeaseHolder { uid: holder_uid.to_string(), ..LeaseHolder::default() },
                release_after_instance: None,
            },
        })
    }

    fn wukong(uid: &str) -> Arc<GuardedWukong> {
        let mut wukong = Wukong::new("web", Default::default());
        wukong.metadata.uid = Some(uid.to_string());
        Arc::new(GuardedWukong(Ok(wukong)))
    }

    #[test]
    fn only_old_leases_of_holders_the_cache_does_not_show_are_suspects() {
        let leases = [
            lease("live", "uid-live", "2026-11-22T09:00:00Z"),
            lease("gone", "uid-gone", "2026-11-22T09:00:00Z"),
            lease("gone-but-new", "uid-gone", "2026-11-22T09:59:30Z"),
        ];
        let found = suspects(&[wukong("uid-live")], &leases, "2026-11-22T10:00:00Z");
        let names: Vec<_> = found.iter().filter_map(|lease| lease.metadata.name.clone()).collect();
        assert_eq!(names, ["gone"]);
    }
}
