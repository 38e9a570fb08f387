//! Address arithmetic of IP pools, pure: no client, no clock, no randomness.
//!
//! In: an [`IPPoolSpec`] and the addresses already taken. Out: a validated
//! [`Pool`] (or every problem with the spec, naming its field), its size, the
//! lowest free addresses and whether an address or namespace belongs to it;
//! and, in [`names`], the lease name of an address (the lock) and the
//! segment of a static address. Addresses are numbers (`u128`, IPv4 mapped to
//! its 32-bit value) and the handed-out set is a list of disjoint ranges, so
//! every operation walks ranges and taken addresses, never every address: an
//! IPv6 /64 costs no more than an IPv4 /24.

pub mod names;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::api::IPPoolSpec;
use crate::validate::Problem;

/// A valid pool: its subnet and the ranges it hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// The subnet (its prefix length is the guests').
    pub cidr: IpNet,
    /// The gateway given to guests.
    pub gateway: Option<IpAddr>,
    /// DNS servers given to guests.
    pub dns: Vec<IpAddr>,
    /// Namespaces allowed to use the pool; all when empty.
    pub namespaces: Vec<String>,
    /// The handed-out addresses: sorted, disjoint, inclusive ranges.
    ranges: Vec<(u128, u128)>,
}

/// The number of an address.
pub fn number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a number in the family of `like`.
fn address(value: u128, like: &IpNet) -> IpAddr {
    match like {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Parses `text` as an address of the family of `cidr`, inside it.
fn inside(text: &str, cidr: &IpNet, field: &str, problems: &mut Vec<Problem>) -> Option<IpAddr> {
    let problem = |message: String| Problem { field: field.to_string(), message };
    match text.parse::<IpAddr>() {
        Ok(parsed) if cidr.contains(&parsed) => Some(parsed),
        Ok(_) => {
            problems.push(problem(format!("\"{text}\" is not inside \"{cidr}\"")));
            None
        }
        Err(_) => {
            problems.push(problem(format!("\"{text}\" is not an IP address")));
            None
        }
    }
}

/// Validates a pool spec: `cidr` parses; `start`, `end`, `gateway` and every
/// `exclude` lie inside it; `start` is not after `end`; DNS servers parse.
pub fn parse(spec: &IPPoolSpec) -> Result<Pool, Vec<Problem>> {
    let mut problems = Vec::new();
    let cidr = match spec.cidr.parse::<IpNet>() {
        Ok(cidr) => cidr.trunc(),
        Err(_) => {
            let message = format!("\"{}\" is not a CIDR like \"192.168.100.0/24\"", spec.cidr);
            return Err(vec![Problem { field: "spec.cidr".to_string(), message }]);
        }
    };
    let (first, last) = usable(&cidr);
    let start = spec.start.as_deref().and_then(|text| inside(text, &cidr, "spec.start", &mut problems)).map_or(first, number);
    let end = spec.end.as_deref().and_then(|text| inside(text, &cidr, "spec.end", &mut problems)).map_or(last, number);
    if start > end {
        problems.push(Problem {
            field: "spec.start".to_string(),
            message: format!("\"{}\" is after the end of the range", address(start, &cidr)),
        });
    }
    let gateway = spec.gateway.as_deref().and_then(|text| inside(text, &cidr, "spec.gateway", &mut problems));
    let mut blocked = Vec::new();
    if let IpNet::V4(v4) = cidr
        && v4.prefix_len() < 31
    {
        blocked.push((number(IpAddr::V4(v4.network())), number(IpAddr::V4(v4.network()))));
        blocked.push((number(IpAddr::V4(v4.broadcast())), number(IpAddr::V4(v4.broadcast()))));
    }
    if let Some(gateway) = gateway {
        blocked.push((number(gateway), number(gateway)));
    }
    for (index, text) in spec.exclude.iter().enumerate() {
        let field = format!("spec.exclude[{index}]");
        let excluded = text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from));
        match excluded {
            Some(excluded) if cidr.contains(&excluded) || excluded.contains(&cidr) => {
                let excluded = excluded.trunc();
                blocked.push((number(excluded.network()), number(excluded.broadcast())));
            }
            Some(_) => problems.push(Problem { field, message: format!("\"{text}\" is not inside \"{cidr}\"") }),
            None => problems.push(Problem { field, message: format!("\"{text}\" is not an address or CIDR") }),
        }
    }
    let mut dns = Vec::new();
    for (index, text) in spec.dns.iter().enumerate() {
        match text.parse::<IpAddr>() {
            Ok(server) => dns.push(server),
            Err(_) => problems.push(Problem { field: format!("spec.dns[{index}]"), message: format!("\"{text}\" is not an IP address") }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let ranges = if start <= end { subtract((start, end), blocked) } else { Vec::new() };
    Ok(Pool { cidr, gateway, dns, namespaces: spec.namespaces.clone(), ranges })
}

/// The default range of a subnet: IPv4 without its network and broadcast
/// addresses below /31; IPv6 without the subnet-router anycast address (the
/// first) below /127; /31, /32, /127 and /128 whole.
fn usable(cidr: &IpNet) -> (u128, u128) {
    let (network, last) = (number(cidr.network()), number(cidr.broadcast()));
    match cidr {
        IpNet::V4(v4) if v4.prefix_len() < 31 => (network + 1, last - 1),
        IpNet::V6(v6) if v6.prefix_len() < 127 => (network + 1, last),
        _ => (network, last),
    }
}

/// `range` without the `blocked` ranges, as sorted disjoint ranges.
fn subtract(range: (u128, u128), mut blocked: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    blocked.sort_unstable();
    let mut ranges = Vec::new();
    let (mut next, end) = range;
    let mut open = true;
    for (low, high) in blocked {
        if !open || high < next {
            continue;
        }
        if low > end {
            break;
        }
        if low > next {
            ranges.push((next, low - 1));
        }
        match high.checked_add(1) {
            Some(after) => next = after,
            None => open = false,
        }
    }
    if open && next <= end {
        ranges.push((next, end));
    }
    ranges
}

impl Pool {
    /// How many addresses the pool hands out (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        self.ranges.iter().fold(0u128, |total, (low, high)| total.saturating_add((high - low).saturating_add(1)))
    }

    /// Whether the pool may hand out `address`.
    pub fn hands_out(&self, address: IpAddr) -> bool {
        self.cidr.contains(&address) && {
            let value = number(address);
            self.ranges.iter().any(|(low, high)| (*low..=*high).contains(&value))
        }
    }

    /// Whether Wukongs of `namespace` may use the pool.
    pub fn admits(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|allowed| allowed == namespace)
    }

    /// The prefix length guests get.
    pub fn prefix_len(&self) -> u8 {
        self.cidr.prefix_len()
    }

    /// Up to `count` free addresses, lowest first: handed out by the pool and
    /// not in `taken`. Walks the ranges and the taken addresses, not the
    /// addresses in between.
    pub fn lowest_free(&self, taken: &BTreeSet<IpAddr>, count: usize) -> Vec<IpAddr> {
        let taken: BTreeSet<u128> = taken.iter().filter(|address| self.cidr.contains(*address)).map(|address| number(*address)).collect();
        let mut free = Vec::new();
        for (low, high) in &self.ranges {
            let mut next = Some(*low);
            for used in taken.range(*low..=*high) {
                let Some(candidate) = next else { break };
                let mut value = candidate;
                while value < *used && free.len() < count {
                    free.push(address(value, &self.cidr));
                    value += 1;
                }
                if free.len() >= count {
                    return free;
                }
                next = used.checked_add(1);
            }
            let mut value = next;
            while let Some(candidate) = value.filter(|candidate| candidate <= high) {
                if free.len() >= count {
                    return free;
                }
                free.push(address(candidate, &self.cidr));
                value = candidate.checked_add(1);
            }
        }
        free
    }

    /// The lowest free address, if any.
    pub fn first_free(&self, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        self.lowest_free(taken, 1).into_iter().next()
    }

    /// How many of `taken` the pool hands out (the others are reservations
    /// outside its range, or not its addresses).
    pub fn handed_out_among(&self, taken: &BTreeSet<IpAddr>) -> u128 {
        taken.iter().filter(|address| self.hands_out(**address)).count() as u128
    }
}

/// `value` as an `i64` for a status field, saturating.
pub fn saturating_i64(value: u128) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
