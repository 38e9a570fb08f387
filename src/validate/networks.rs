//! Validation of `spec.networks`.
//!
//! In: the networks of a spec. Out: each network with its MAC (given or derived)
//! and parsed addresses, plus problems for names, types, VLANs, MACs and
//! addresses (CIDR syntax, gateway inside the subnet, DNS servers).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Collector;
use super::names::is_dns_label;
use crate::api::{IpMode, Network, NetworkType};
use crate::naming::derived_mac;

/// A validated static address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddress {
    /// Address with prefix, for example `192.168.100.10/24`.
    pub cidr: IpNet,
    /// Default gateway, inside `cidr`.
    pub gateway: Option<IpAddr>,
}

/// A validated network.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedNetwork {
    /// The network as written.
    pub network: Network,
    /// MAC address of the interface (given or derived), lowercase.
    pub mac: String,
    /// Static address, when `ipConfig.mode` is static.
    pub address: Option<ParsedAddress>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
}

pub(crate) fn check(collector: &mut Collector, namespace: &str, name: &str, networks: &[Network]) -> Vec<ParsedNetwork> {
    let mut names = BTreeSet::new();
    let mut macs = BTreeSet::new();
    let mut pod_networks = 0;
    let mut gateways = Vec::new();
    let mut parsed = Vec::with_capacity(networks.len());
    for (index, network) in networks.iter().enumerate() {
        let path = format!("spec.networks[{index}]");
        let mut duplicate_name = false;
        if !is_dns_label(&network.name) {
            collector.push(
                format!("{path}.name"),
                format!("\"{}\" is not a DNS label (lowercase letters, digits and '-', at most 63 characters)", network.name),
            );
        } else if !names.insert(network.name.as_str()) {
            duplicate_name = true;
            collector.push(format!("{path}.name"), format!("\"{}\" is used by another network", network.name));
        }
        check_type(collector, &path, network);
        if network.network_type == NetworkType::Pod {
            pod_networks += 1;
            if pod_networks == 2 {
                collector.push(format!("{path}.type"), "at most one network may be the pod network");
            }
        }
        let mac = match &network.mac_address {
            Some(mac) => {
                check_mac(collector, &format!("{path}.macAddress"), mac);
                mac.to_ascii_lowercase()
            }
            None => derived_mac(namespace, name, &network.name),
        };
        // A derived MAC repeats only when the name does, which is reported already.
        let repeated = !macs.insert(mac.clone());
        if repeated && (network.mac_address.is_some() || !duplicate_name) {
            collector.push(format!("{path}.macAddress"), format!("\"{mac}\" is used by another network"));
        }
        let (address, dns) = check_ip_config(collector, &path, network);
        if let Some(ParsedAddress { gateway: Some(_), .. }) = &address {
            gateways.push(network.name.clone());
        }
        parsed.push(ParsedNetwork { network: network.clone(), mac, address, dns });
    }
    if gateways.len() > 1 {
        collector.push(
            "spec.networks",
            format!("only one network may set a gateway (the guest's default route); \"{}\" all do", gateways.join("\", \"")),
        );
    }
    parsed
}

fn check_type(collector: &mut Collector, path: &str, network: &Network) {
    let kind = network.network_type.as_str();
    match network.network_type {
        NetworkType::Vlan if network.vlan_id.is_none() => collector.push(format!("{path}.vlanId"), "is required for a vlan network"),
        NetworkType::Sriov if network.resource_name.is_none() => collector
            .push(format!("{path}.resourceName"), "is required for an sriov network (the device plugin resource of its virtual functions)"),
        _ => {}
    }
    if let Some(vlan) = network.vlan_id {
        if network.network_type == NetworkType::Pod {
            collector.push(format!("{path}.vlanId"), "a pod network takes no vlanId");
        } else if !(1..=4094).contains(&vlan) {
            collector.push(format!("{path}.vlanId"), format!("\"{vlan}\" must be between 1 and 4094"));
        }
    }
    if let Some(bridge) = &network.bridge {
        if matches!(network.network_type, NetworkType::Pod | NetworkType::Sriov) {
            collector.push(format!("{path}.bridge"), format!("a {kind} network takes no bridge"));
        } else if !bridge.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric())
            || bridge.len() > 15
            || !bridge.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        {
            collector.push(
                format!("{path}.bridge"),
                format!("\"{bridge}\" is not a Linux interface name (at most 15 letters, digits, '-', '_' or '.', starting with a letter or digit)"),
            );
        }
    }
    if let Some(resource) = &network.resource_name {
        if network.network_type != NetworkType::Sriov {
            collector.push(format!("{path}.resourceName"), format!("a {kind} network takes no resourceName"));
        } else if !resource
            .split_once('/')
            .is_some_and(|(prefix, name)| super::names::is_dns_subdomain(prefix) && super::names::is_qualified_name_part(name))
        {
            collector.push(
                format!("{path}.resourceName"),
                format!("\"{resource}\" is not a device plugin resource name like \"intel.com/sriov_netdevice\""),
            );
        }
    }
}

fn check_mac(collector: &mut Collector, field: &str, mac: &str) {
    let octets: Vec<&str> = mac.split(':').collect();
    let valid = octets.len() == 6 && octets.iter().all(|octet| octet.len() == 2 && u8::from_str_radix(octet, 16).is_ok());
    if !valid {
        collector.push(field, format!("\"{mac}\" is not a MAC address like \"02:00:00:00:00:01\""));
    } else if u8::from_str_radix(octets[0], 16).is_ok_and(|first| first & 1 == 1) {
        collector.push(field, format!("\"{mac}\" is a multicast address; an interface needs a unicast one"));
    }
}

fn check_ip_config(collector: &mut Collector, path: &str, network: &Network) -> (Option<ParsedAddress>, Vec<IpAddr>) {
    let Some(config) = &network.ip_config else {
        return (None, Vec::new());
    };
    let path = format!("{path}.ipConfig");
    let dns = config
        .dns
        .iter()
        .enumerate()
        .filter_map(|(index, server)| match server.parse::<IpAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                collector.push(format!("{path}.dns[{index}]"), format!("\"{server}\" is not an IP address"));
                None
            }
        })
        .collect();
    if let Some(pool) = &config.pool
        && !super::names::is_dns_subdomain(pool)
    {
        collector.push(format!("{path}.pool"), format!("\"{pool}\" is not an IPPool name (a DNS subdomain)"));
    }
    match config.mode {
        IpMode::Dhcp => {
            if config.address.is_some() {
                collector.push(format!("{path}.address"), "a dhcp ipConfig takes no address");
            }
            if config.gateway.is_some() {
                collector.push(format!("{path}.gateway"), "a dhcp ipConfig takes no gateway");
            }
            if config.pool.is_some() {
                collector.push(format!("{path}.pool"), "a dhcp ipConfig takes no pool");
            }
            (None, dns)
        }
        IpMode::Pool => {
            if network.network_type == NetworkType::Pod {
                collector.push(format!("{path}.mode"), "the pod network gets its address from KubeVirt's DHCP; use mode dhcp");
            }
            if config.pool.is_none() {
                collector.push(format!("{path}.pool"), "is required for a pool ipConfig");
            }
            if config.address.is_some() {
                collector.push(format!("{path}.address"), "a pool ipConfig takes its address from the pool");
            }
            if config.gateway.is_some() {
                collector.push(format!("{path}.gateway"), "a pool ipConfig takes its gateway from the pool");
            }
            (None, dns)
        }
        IpMode::Static if network.network_type == NetworkType::Pod => {
            collector.push(format!("{path}.mode"), "the pod network gets its address from KubeVirt's DHCP; use mode dhcp");
            (None, dns)
        }
        IpMode::Static => {
            let Some(address) = &config.address else {
                collector.push(format!("{path}.address"), "is required for a static ipConfig");
                return (None, dns);
            };
            let cidr = match address.parse::<IpNet>() {
                Ok(cidr) => cidr,
                Err(_) => {
                    collector.push(
                        format!("{path}.address"),
                        format!("\"{address}\" is not a valid CIDR (an address with a prefix length, like \"192.168.100.10/24\")"),
                    );
                    return (None, dns);
                }
            };
            check_host_address(collector, &path, address, cidr);
            let gateway = config.gateway.as_ref().and_then(|gateway| check_gateway(collector, &path, gateway, cidr));
            (Some(ParsedAddress { cidr, gateway }), dns)
        }
    }
}

fn check_host_address(collector: &mut Collector, path: &str, address: &str, cidr: IpNet) {
    let host = cidr.addr();
    let field = format!("{path}.address");
    if host.is_unspecified() || host.is_loopback() || host.is_multicast() {
        collector.push(field, format!("\"{address}\" is not a usable host address"));
    } else if let IpNet::V4(v4) = cidr
        && v4.prefix_len() < 31
        && (v4.addr() == v4.network() || v4.addr() == v4.broadcast())
    {
        collector.push(field, format!("\"{address}\" is the network or broadcast address of its subnet"));
    }
}

fn check_gateway(collector: &mut Collector, path: &str, gateway: &str, cidr: IpNet) -> Option<IpAddr> {
    let field = format!("{path}.gateway");
    let Ok(address) = gateway.parse::<IpAddr>() else {
        collector.push(field, format!("\"{gateway}\" is not an IP address"));
        return None;
    };
    if !cidr.contains(&address) {
        collector.push(field, format!("\"{gateway}\" is not inside the subnet \"{}\" of the address", cidr.trunc()));
        None
    } else if address == cidr.addr() {
        collector.push(field, format!("\"{gateway}\" is the interface's own address"));
        None
    } else {
        Some(address)
    }
}
