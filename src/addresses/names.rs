//! Lease names and labels, pure.
//!
//! In: a pool name or a network's segment, and an address. Out: the
//! deterministic name of the `IPLease` that locks the address (creating it is
//! the lock: the API server lets exactly one create of a name succeed), the
//! segment key of a static address, and label values that are always valid.
//!
//! A pool lease is `<pool>.<address>`: the address is written without dots or
//! colons (IPv4 `192-168-100-10`, IPv6 fully expanded `2001-0db8-0000-…`), so
//! the last dot separates pool and address and no two (pool, address) pairs
//! share a name. A segment lease is `segment-<hash of the segment>.<address>`.
//! Names over 253 characters become `lease-<hash>` (SHA-256, 40 hex digits).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::api::{Network, NetworkType};

/// The longest object name the API server accepts.
const MAX_NAME: usize = 253;

/// The address written as a DNS label: `192-168-100-10`, or the eight full
/// groups of an IPv6 address joined by `-`.
pub fn address_label(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.octets().iter().map(ToString::to_string).collect::<Vec<_>>().join("-"),
        IpAddr::V6(v6) => v6.segments().iter().map(|group| format!("{group:04x}")).collect::<Vec<_>>().join("-"),
    }
}

fn hex(text: &str, digits: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect::<String>().chars().take(digits).collect()
}

fn bounded(name: String) -> String {
    if name.len() <= MAX_NAME { name } else { format!("lease-{}", hex(&name, 40)) }
}

/// The name of the lease of `address` in pool `pool`.
pub fn pool_lease_name(pool: &str, address: IpAddr) -> String {
    bounded(format!("{pool}.{}", address_label(address)))
}

/// The name of the lease of static `address` on `segment` (see [`segment`]).
pub fn segment_lease_name(segment: &str, address: IpAddr) -> String {
    bounded(format!("segment-{}.{}", hex(segment, 16), address_label(address)))
}

/// The segment a network's static address lives on: `type/bridge/vlan` for
/// bridge and vlan networks (the bridge defaulted as the attachment does),
/// `sriov/resource/vlan` for SR-IOV; VLAN 0 means untagged.
pub fn segment(network: &Network) -> String {
    let vlan = network.vlan_id.unwrap_or(0);
    match network.network_type {
        NetworkType::Sriov => format!("sriov/{}/{vlan}", network.resource_name.as_deref().unwrap_or_default()),
        kind => format!("{}/{}/{vlan}", kind.as_str(), network.bridge.as_deref().unwrap_or(crate::children::network::DEFAULT_BRIDGE)),
    }
}

/// `value` as a label value: itself when it is one (at most 63 letters,
/// digits, `-`, `_`, `.`, alphanumeric at both ends), else `h_` and 40 hex
/// digits of its hash (`_` never occurs in a DNS name, so the two forms cannot meet).
pub fn label_value(value: &str) -> String {
    let valid = value.len() <= 63
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && value.bytes().next().is_none_or(|byte| byte.is_ascii_alphanumeric())
        && value.bytes().last().is_none_or(|byte| byte.is_ascii_alphanumeric());
    if valid { value.to_string() } else { format!("h_{}", hex(value, 40)) }
}
