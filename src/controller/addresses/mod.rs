//! The addresses step: lease the addresses a Wukong's networks need, and
//! release the ones it no longer wants once its VM stops using them.
//!
//! In: the Wukong, its validated spec and the caches (pools, leases,
//! instances). Out: [`Allocation::Leased`], the leased addresses the builders
//! and the status take, or [`Allocation::Refused`] with the refusals
//! (`PoolNotFound`, `PoolInvalid`, `PoolNotAllowed`, `PoolExhausted`,
//! `AddressOutsidePool`, `AddressIsGateway`, `AddressConflict`), or an API
//! error. Race-free by construction: an address is taken only by creating the
//! lease named after it (see [`leases`]); a stale cache only costs a failed
//! create, never a second holder. Before allocating from a pool, a Wukong
//! whose cache shows no lease reads its leases with a consistent list, so a
//! restart never allocates twice; a static address's lease has a fixed name
//! and needs no such read.

pub mod leases;
pub mod sweep;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use self::leases::{Created, LeaseError};
use super::checks::Refusal;
use super::context::{Context, Stores};
use crate::addresses::names::{pool_lease_name, segment, segment_lease_name};
use crate::addresses::{self, Pool};
use crate::api::{IPLease, IPLeaseSpec, IPPool, IpMode, LeaseHolder, LeaseMode, Wukong};
use crate::children::LeasedAddress;
use crate::naming::vm_name;
use crate::validate::{ParsedNetwork, Problem, ValidWukong};

/// How many free addresses one pass tries before it looks again later.
const ATTEMPTS: usize = 8;

/// The refusal reasons of this step: a Wukong refused with one of them is
/// looked at again when a lease or pool changes.
pub const REASONS: &[&str] =
    &["PoolNotFound", "PoolInvalid", "PoolNotAllowed", "PoolExhausted", "AddressOutsidePool", "AddressIsGateway", "AddressConflict"];

/// Errors of the addresses step (transient: retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum AddressesError {
    /// A lease request failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Every address tried was taken meanwhile (others allocate from the pool too).
    #[error("failed to lease an address from IPPool \"{pool}\": the {ATTEMPTS} lowest free addresses were taken meanwhile")]
    Contended {
        /// The pool.
        pool: String,
    },
}

impl AddressesError {
    /// The API error behind the failure, if any.
    pub fn source_error(&self) -> Option<&kube::Error> {
        match self {
            Self::Lease(error) => Some(&error.source),
            Self::Contended { .. } => None,
        }
    }
}

/// What the step decided.
pub enum Allocation {
    /// Every network that needs an address holds one.
    Leased(Leased),
    /// Some network cannot get its address.
    Refused(Vec<Refusal>),
}

/// The leased addresses.
#[derive(Debug, Default)]
pub struct Leased {
    /// Pool networks' addresses with the pool's prefix, gateway and DNS, by network.
    pub addresses: BTreeMap<String, LeasedAddress>,
    /// Every held address as the status shows it, by network.
    pub shown: BTreeMap<String, String>,
    /// Leases released this pass (for the Event).
    pub released: Vec<String>,
}

/// What one network wants.
struct Want<'a> {
    index: usize,
    parsed: &'a ParsedNetwork,
    pool: Option<String>,
    /// The static address and its lease name; `None` for a pool network.
    fixed: Option<(IpAddr, String)>,
}

impl Want<'_> {
    fn name(&self) -> &str {
        &self.parsed.network.name
    }

    fn field(&self, leaf: &str) -> String {
        format!("spec.networks[{}].ipConfig.{leaf}", self.index)
    }

    /// Whether `lease` is one this want keeps.
    fn matches(&self, lease: &IPLease) -> bool {
        let spec = &lease.spec;
        spec.holder.network == self.name()
            && match &self.fixed {
                Some((_, name)) => spec.mode == LeaseMode::Static && lease.name_any() == *name,
                None => spec.mode == LeaseMode::Pool && spec.pool == self.pool,
            }
    }
}

fn wants(valid: &ValidWukong) -> Vec<Want<'_>> {
    let mut wants = Vec::new();
    for (index, parsed) in valid.networks.iter().enumerate() {
        let Some(config) = &parsed.network.ip_config else { continue };
        let pool = config.pool.clone();
        let fixed = match (config.mode, &parsed.address) {
            (IpMode::Pool, _) => None,
            (IpMode::Static, Some(address)) => {
                let host = address.cidr.addr();
                let name = match &pool {
                    Some(pool) => pool_lease_name(pool, host),
                    None => segment_lease_name(&segment(&parsed.network), host),
                };
                Some((host, name))
            }
            _ => continue,
        };
        wants.push(Want { index, parsed, pool, fixed });
    }
    wants
}

fn refusal(reason: &'static str, field: String, message: String) -> Refusal {
    Refusal { reason, problem: Problem { field, message } }
}

/// `(creation time, namespace, name)`: of two static declarations the lower keeps the address.
fn seniority(holder: &LeaseHolder) -> (&str, &str, &str) {
    (&holder.creation_timestamp, &holder.namespace, &holder.name)
}

/// One pass of the step.
pub async fn addresses(context: &Context, wukong: &Wukong, valid: &ValidWukong) -> Result<Allocation, AddressesError> {
    let uid = wukong.uid().unwrap_or_default();
    let wants = wants(valid);
    let mut cached = leases::cached_held_by(&context.stores, &uid);
    // A static lease this operator just created and the cache does not show yet counts as held: no second create.
    for (_, name) in wants.iter().filter_map(|want| want.fixed.as_ref()) {
        if !cached.iter().any(|lease| lease.name_any() == *name)
            && let Some(written) = context.recent.newest::<IPLease>(None, "", name)
            && written.spec.holder.uid == uid
        {
            cached.push((*written).clone());
        }
    }
    // A cache that shows no lease for a pool network may be behind our own creates (a restart): read the
    // truth once before allocating from the pool. A static address needs no read: its lease has a fixed
    // name, so creating it again finds our own; a stale lease the spec dropped goes when the watch shows it.
    let allocates = wants.iter().any(|want| want.fixed.is_none() && !cached.iter().any(|lease| want.matches(lease)));
    let own = if allocates && !uid.is_empty() { leases::held_by(&context.client, &uid).await? } else { cached };
    let holder = LeaseHolder {
        namespace: valid.namespace.clone(),
        name: valid.name.clone(),
        uid: uid.clone(),
        network: String::new(),
        creation_timestamp: wukong.metadata.creation_timestamp.as_ref().map(|time| time.0.to_string()).unwrap_or_default(),
    };
    let mut leased = Leased::default();
    let mut kept = BTreeMap::new();
    let mut sorted = own;
    sorted.sort_by_key(|lease| (lease.creation_timestamp(), lease.name_any()));
    let instance = super::ownership::cached(&context.stores.instances, &valid.namespace, &vm_name(&valid.name));
    let instance_uid = instance.as_ref().and_then(|instance| instance.uid());
    for lease in sorted {
        match wants.iter().position(|want| want.matches(&lease)) {
            // The oldest matching lease is kept; a younger twin (two replicas raced) goes.
            Some(index) if !kept.contains_key(&index) => {
                if lease.spec.release_after_instance.is_some() {
                    leases::mark(&context.client, &lease, None).await?;
                }
                kept.insert(index, lease);
            }
            _ => release(context, &lease, instance_uid.as_deref(), &mut leased.released).await?,
        }
    }
    let mut refusals = Vec::new();
    for (index, want) in wants.iter().enumerate() {
        let holder = LeaseHolder { network: want.name().to_string(), ..holder.clone() };
        let outcome = match kept.remove(&index) {
            Some(lease) => check_kept(context, valid, want, &lease),
            None => lease_one(context, valid, want, holder).await?,
        };
        match outcome {
            Ok((address, pool)) => {
                leased.shown.insert(want.name().to_string(), address.to_string());
                if want.fixed.is_none()
                    && let Some(pool) = pool
                {
                    let leased_address = LeasedAddress { address, prefix_len: pool.prefix_len(), gateway: pool.gateway, dns: pool.dns };
                    leased.addresses.insert(want.name().to_string(), leased_address);
                }
            }
            Err(refused) => refusals.push(refused),
        }
    }
    if refusals.is_empty() { Ok(Allocation::Leased(leased)) } else { Ok(Allocation::Refused(refusals)) }
}

/// Releases a lease the spec no longer wants, once no instance uses it: at
/// once without an instance; else it is marked with the running instance's
/// UID and deleted when that instance is gone (a restarted VM runs another).
async fn release(context: &Context, lease: &IPLease, instance: Option<&str>, released: &mut Vec<String>) -> Result<(), LeaseError> {
    match (instance, lease.spec.release_after_instance.as_deref()) {
        (Some(running), Some(marked)) if running == marked => Ok(()),
        (Some(running), None) => leases::mark(&context.client, lease, Some(running)).await,
        _ => {
            leases::delete(&context.client, lease).await?;
            context.recent.forget::<IPLease>("", &lease.name_any());
            released.push(format!("IPLease {} ({})", lease.name_any(), lease.spec.address));
            Ok(())
        }
    }
}

type Outcome = Result<(IpAddr, Option<Pool>), Refusal>;

/// The pool a want names, checked for this Wukong's namespace.
fn usable_pool(context: &Context, valid: &ValidWukong, want: &Want<'_>, name: &str) -> Result<(IPPool, Pool), Refusal> {
    let field = want.field("pool");
    let found = cached_pool(&context.stores.pools, name).filter(|pool| pool.meta().deletion_timestamp.is_none());
    let Some(object) = found else {
        return Err(refusal("PoolNotFound", field, format!("IPPool \"{name}\" does not exist")));
    };
    let pool = addresses::parse(&object.spec).map_err(|problems| {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        refusal("PoolInvalid", field.clone(), format!("IPPool \"{name}\" is invalid: {}", shown.join("; ")))
    })?;
    if !pool.admits(&valid.namespace) {
        return Err(refusal("PoolNotAllowed", field, format!("IPPool \"{name}\" does not admit namespace \"{}\"", valid.namespace)));
    }
    if let Some((address, _)) = &want.fixed {
        let field = want.field("address");
        if !pool.cidr.contains(address) {
            return Err(refusal("AddressOutsidePool", field, format!("\"{address}\" is outside IPPool \"{name}\" (\"{}\")", pool.cidr)));
        }
        if pool.gateway == Some(*address) {
            return Err(refusal("AddressIsGateway", field, format!("\"{address}\" is the gateway of IPPool \"{name}\"")));
        }
    }
    Ok((object, pool))
}

fn cached_pool(store: &Store<IPPool>, name: &str) -> Option<IPPool> {
    store.get(&kube::runtime::reflector::ObjectRef::new(name)).map(|pool| (*pool).clone())
}

/// A lease already held: still valid against its pool?
fn check_kept(context: &Context, valid: &ValidWukong, want: &Want<'_>, lease: &IPLease) -> Outcome {
    let address = lease
        .spec
        .address
        .parse::<IpAddr>()
        .map_err(|_| refusal("AddressConflict", want.field("address"), format!("IPLease \"{}\" holds no address", lease.name_any())))?;
    match &want.pool {
        Some(name) => usable_pool(context, valid, want, name).map(|(_, pool)| (address, Some(pool))),
        None => Ok((address, None)),
    }
}

/// Leases the address a want needs.
async fn lease_one(context: &Context, valid: &ValidWukong, want: &Want<'_>, holder: LeaseHolder) -> Result<Outcome, AddressesError> {
    let pool = match &want.pool {
        Some(name) => match usable_pool(context, valid, want, name) {
            Ok(found) => Some(found),
            Err(refused) => return Ok(Err(refused)),
        },
        None => None,
    };
    match &want.fixed {
        Some((address, name)) => lease_static(context, want, holder, *address, name, pool).await,
        None => match pool {
            Some((object, pool)) => lease_from_pool(context, want, holder, &object, pool).await,
            None => Ok(Err(refusal("PoolNotFound", want.field("pool"), "names no IPPool".to_string()))),
        },
    }
}

/// Takes the lowest free address of the pool: creates its lease; an address
/// someone else took meanwhile is skipped.
async fn lease_from_pool(
    context: &Context,
    want: &Want<'_>,
    holder: LeaseHolder,
    object: &IPPool,
    pool: Pool,
) -> Result<Outcome, AddressesError> {
    let name = object.name_any();
    let mut taken: BTreeSet<IpAddr> = context
        .stores
        .leases
        .state()
        .iter()
        .filter(|lease| lease.spec.pool.as_deref() == Some(name.as_str()))
        .filter_map(|lease| lease.spec.address.parse().ok())
        .collect();
    let candidates = pool.lowest_free(&taken, ATTEMPTS);
    if candidates.is_empty() {
        let message = format!("IPPool \"{name}\" has no free address ({} addresses, {} leased)", pool.size(), taken.len());
        return Ok(Err(refusal("PoolExhausted", want.field("pool"), message)));
    }
    for address in candidates {
        let spec = IPLeaseSpec {
            pool: Some(name.clone()),
            segment: None,
            address: address.to_string(),
            mode: LeaseMode::Pool,
            holder: holder.clone(),
            release_after_instance: None,
        };
        let lease = leases::lease(&pool_lease_name(&name, address), spec, Some(object));
        match leases::create(&context.client, &lease).await? {
            Created::Won(created) => {
                context.recent.wrote(created);
                return Ok(Ok((address, Some(pool))));
            }
            Created::Taken(Some(existing)) if existing.spec.holder.uid == holder.uid && existing.spec.holder.network == holder.network => {
                return Ok(Ok((address, Some(pool))));
            }
            Created::Taken(_) => {
                taken.insert(address);
            }
        }
    }
    Err(AddressesError::Contended { pool: name })
}

/// Reserves a static address: creates its lease; when another Wukong holds
/// it, the earlier declaration (creation time, then namespace/name) keeps it
/// and the later is refused; an address a pool handed out is never taken over.
async fn lease_static(
    context: &Context,
    want: &Want<'_>,
    holder: LeaseHolder,
    address: IpAddr,
    name: &str,
    pool: Option<(IPPool, Pool)>,
) -> Result<Outcome, AddressesError> {
    let spec = IPLeaseSpec {
        pool: want.pool.clone(),
        segment: want.pool.is_none().then(|| segment(&want.parsed.network)),
        address: address.to_string(),
        mode: LeaseMode::Static,
        holder: holder.clone(),
        release_after_instance: None,
    };
    let lease = leases::lease(name, spec, pool.as_ref().map(|(object, _)| object));
    let pool = pool.map(|(_, pool)| pool);
    let existing = match leases::create(&context.client, &lease).await? {
        Created::Won(created) => {
            context.recent.wrote(created);
            return Ok(Ok((address, pool)));
        }
        Created::Taken(None) => return Err(AddressesError::Contended { pool: name.to_string() }),
        Created::Taken(Some(existing)) => existing,
    };
    let other = &existing.spec.holder;
    if other.uid == holder.uid && other.network == holder.network {
        return Ok(Ok((address, pool)));
    }
    let takes_over = existing.spec.mode == LeaseMode::Static && other.uid != holder.uid && seniority(&holder) < seniority(other);
    if !takes_over {
        let who = if other.uid == holder.uid {
            format!("network \"{}\" of this Wukong", other.network)
        } else if other.namespace == holder.namespace {
            format!("Wukong \"{}/{}\"", other.namespace, other.name)
        } else {
            "a Wukong in another namespace".to_string()
        };
        let how = if existing.spec.mode == LeaseMode::Pool { "was handed out to" } else { "is declared first by" };
        let message = format!("\"{address}\" {how} {who}");
        return Ok(Err(refusal("AddressConflict", want.field("address"), message)));
    }
    // This declaration is the earlier one: the later holder loses the lease
    // (and is refused on its next pass, which the lease watch brings).
    leases::delete(&context.client, &existing).await?;
    match leases::create(&context.client, &lease).await? {
        Created::Won(created) => {
            context.recent.wrote(created);
            Ok(Ok((address, pool)))
        }
        Created::Taken(_) => Err(AddressesError::Contended { pool: name.to_string() }),
    }
}

/// The addresses the cache shows the Wukong with `uid` holding, by network.
pub fn cached_addresses(stores: &Stores, uid: &str) -> BTreeMap<String, String> {
    let mut held = stores.leases_held_by(uid);
    held.sort_by_key(|lease| (lease.spec.release_after_instance.is_some(), lease.creation_timestamp()));
    let mut shown = BTreeMap::new();
    for lease in held {
        shown.entry(lease.spec.holder.network.clone()).or_insert_with(|| lease.spec.address.clone());
    }
    shown
}
