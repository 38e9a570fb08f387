//! Table tests of pool arithmetic and lease names.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::names::{address_label, label_value, pool_lease_name, segment, segment_lease_name};
use super::{Pool, parse};
use crate::api::{IPPoolSpec, Network, NetworkType};

fn pool(cidr: &str, start: Option<&str>, end: Option<&str>, gateway: Option<&str>, exclude: &[&str]) -> Pool {
    let spec = IPPoolSpec {
        cidr: cidr.to_string(),
        start: start.map(str::to_string),
        end: end.map(str::to_string),
        gateway: gateway.map(str::to_string),
        exclude: exclude.iter().map(|text| text.to_string()).collect(),
        ..IPPoolSpec::default()
    };
    parse(&spec).unwrap_or_else(|problems| panic!("{cidr}: {problems:?}"))
}

fn addresses(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|text| text.parse().expect("address")).collect()
}

fn shown(list: Vec<IpAddr>) -> Vec<String> {
    list.into_iter().map(|address| address.to_string()).collect()
}

#[test]
fn sizes_and_first_addresses_follow_range_gateway_and_excludes() {
    struct Case {
        cidr: &'static str,
        start: Option<&'static str>,
        end: Option<&'static str>,
        gateway: Option<&'static str>,
        exclude: &'static [&'static str],
        taken: &'static [&'static str],
        size: u128,
        lowest: &'static [&'static str],
    }
    let cases = [
        // The example: .10 to .200, gateway outside the range, .50/.51 excluded.
        Case {
            cidr: "192.168.100.0/24",
            start: Some("192.168.100.10"),
            end: Some("192.168.100.200"),
            gateway: Some("192.168.100.1"),
            exclude: &["192.168.100.50/31"],
            taken: &[],
            size: 189,
            lowest: &["192.168.100.10", "192.168.100.11"],
        },
        // Defaults: network and broadcast out; the gateway out.
        Case {
            cidr: "10.0.0.0/29",
            start: None,
            end: None,
            gateway: Some("10.0.0.1"),
            exclude: &[],
            taken: &["10.0.0.2", "10.0.0.4"],
            size: 5,
            lowest: &["10.0.0.3", "10.0.0.5", "10.0.0.6"],
        },
        // Excludes inside the taken walk: gaps, not addresses.
        Case {
            cidr: "10.0.0.0/28",
            start: None,
            end: None,
            gateway: None,
            exclude: &["10.0.0.1", "10.0.0.4/30"],
            taken: &["10.0.0.2"],
            size: 9,
            lowest: &["10.0.0.3", "10.0.0.8", "10.0.0.9"],
        },
        // /31 (point to point): both addresses.
        Case {
            cidr: "10.1.1.0/31",
            start: None,
            end: None,
            gateway: None,
            exclude: &[],
            taken: &[],
            size: 2,
            lowest: &["10.1.1.0", "10.1.1.1"],
        },
        // /32: the one address.
        Case { cidr: "10.1.1.7/32", start: None, end: None, gateway: None, exclude: &[], taken: &[], size: 1, lowest: &["10.1.1.7"] },
        // /31 with its gateway: one left.
        Case {
            cidr: "10.1.1.0/31",
            start: None,
            end: None,
            gateway: Some("10.1.1.0"),
            exclude: &[],
            taken: &[],
            size: 1,
            lowest: &["10.1.1.1"],
        },
        // IPv6 /64: 2^64 - 1 addresses (the anycast first one out), minus the gateway.
        Case {
            cidr: "2001:db8:100::/64",
            start: None,
            end: None,
            gateway: Some("2001:db8:100::1"),
            exclude: &[],
            taken: &["2001:db8:100::2"],
            size: (1u128 << 64) - 2,
            lowest: &["2001:db8:100::3", "2001:db8:100::4"],
        },
        // IPv6 /127 and /128: whole.
        Case {
            cidr: "2001:db8::/127",
            start: None,
            end: None,
            gateway: None,
            exclude: &[],
            taken: &[],
            size: 2,
            lowest: &["2001:db8::", "2001:db8::1"],
        },
        Case {
            cidr: "2001:db8::5/128",
            start: None,
            end: None,
            gateway: None,
            exclude: &[],
            taken: &[],
            size: 1,
            lowest: &["2001:db8::5"],
        },
    ];
    for case in cases {
        let pool = pool(case.cidr, case.start, case.end, case.gateway, case.exclude);
        assert_eq!(pool.size(), case.size, "{}", case.cidr);
        let lowest = pool.lowest_free(&addresses(case.taken), case.lowest.len());
        assert_eq!(shown(lowest), case.lowest, "{}", case.cidr);
    }
}

#[test]
fn a_full_pool_has_no_free_address() {
    let small = pool("10.0.0.0/30", None, None, None, &[]);
    assert_eq!(small.size(), 2);
    assert_eq!(small.first_free(&addresses(&["10.0.0.1", "10.0.0.2"])), None);
    let last = small.first_free(&addresses(&["10.0.0.1"])).expect("one free");
    assert_eq!(last.to_string(), "10.0.0.2");
    let whole = pool("10.0.0.255/32", None, None, None, &[]);
    assert_eq!(whole.first_free(&addresses(&["10.0.0.255"])), None);
    let top = pool("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", None, None, None, &[]);
    let free = top.lowest_free(&addresses(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"]), 4);
    assert_eq!(shown(free), ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], "the last address of the space does not overflow");
}

#[test]
fn a_large_ipv6_pool_with_many_taken_addresses_answers_at_once() {
    let pool = pool("2001:db8::/64", None, None, None, &[]);
    let taken: BTreeSet<IpAddr> = (1u128..=2000).map(|offset| IpAddr::V6((0x2001_0db8_u128 << 96 | offset).into())).collect();
    let free = pool.first_free(&taken).expect("free");
    assert_eq!(free.to_string(), "2001:db8::7d1");
    assert_eq!(pool.handed_out_among(&taken), 2000);
}

#[test]
fn invalid_specs_name_every_field() {
    let spec = IPPoolSpec {
        cidr: "192.168.100.0/24".to_string(),
        start: Some("192.168.100.200".to_string()),
        end: Some("192.168.100.10".to_string()),
        gateway: Some("10.0.0.1".to_string()),
        exclude: vec!["192.168.101.0/24".to_string(), "nonsense".to_string()],
        dns: vec!["dns.example".to_string()],
        ..IPPoolSpec::default()
    };
    let problems = parse(&spec).expect_err("invalid");
    let fields: Vec<&str> = problems.iter().map(|problem| problem.field.as_str()).collect();
    assert_eq!(fields, ["spec.start", "spec.gateway", "spec.exclude[0]", "spec.exclude[1]", "spec.dns[0]"]);
    assert!(problems[1].message.contains("\"10.0.0.1\" is not inside \"192.168.100.0/24\""), "{problems:?}");
    let bad = parse(&IPPoolSpec { cidr: "192.168.100.0/33".to_string(), ..IPPoolSpec::default() }).expect_err("bad cidr");
    assert_eq!(bad[0].field, "spec.cidr");
    let mixed = IPPoolSpec { cidr: "10.0.0.0/24".to_string(), start: Some("2001:db8::1".to_string()), ..IPPoolSpec::default() };
    assert_eq!(parse(&mixed).expect_err("mixed families")[0].field, "spec.start");
}

#[test]
fn namespaces_and_membership() {
    let mut spec = IPPoolSpec { cidr: "10.0.0.0/24".to_string(), gateway: Some("10.0.0.1".to_string()), ..IPPoolSpec::default() };
    assert!(parse(&spec).expect("valid").admits("anything"));
    spec.namespaces = vec!["prod".to_string()];
    let pool = parse(&spec).expect("valid");
    assert!(pool.admits("prod") && !pool.admits("dev"));
    assert!(!pool.hands_out("10.0.0.1".parse().expect("ip")), "the gateway");
    assert!(!pool.hands_out("10.0.0.255".parse().expect("ip")), "the broadcast address");
    assert!(!pool.hands_out("10.0.1.5".parse().expect("ip")), "outside");
    assert!(pool.hands_out("10.0.0.5".parse().expect("ip")));
    assert_eq!(pool.prefix_len(), 24);
}

#[test]
fn lease_names_are_distinct_valid_and_bounded() {
    let v4: IpAddr = "192.168.100.10".parse().expect("ip");
    let v6: IpAddr = "2001:db8::a".parse().expect("ip");
    assert_eq!(pool_lease_name("vlan100", v4), "vlan100.192-168-100-10");
    assert_eq!(address_label(v6), "2001-0db8-0000-0000-0000-0000-0000-000a");
    // Pools with dots stay apart: the address never contains a dot.
    assert_ne!(pool_lease_name("a.b", v4), pool_lease_name("a", v4));
    let long = "p".repeat(250);
    let bounded = pool_lease_name(&long, v6);
    assert!(bounded.len() <= 253 && bounded.starts_with("lease-"), "{bounded}");
    assert_ne!(bounded, pool_lease_name(&long, "2001:db8::b".parse().expect("ip")));
    let bridge = Network { name: "n".into(), network_type: NetworkType::Vlan, vlan_id: Some(100), ..Network::default() };
    let other_vlan = Network { vlan_id: Some(101), ..bridge.clone() };
    assert_eq!(segment(&bridge), "vlan/br0/100");
    assert_ne!(segment_lease_name(&segment(&bridge), v4), segment_lease_name(&segment(&other_vlan), v4));
    let sriov = Network {
        name: "n".into(),
        network_type: NetworkType::Sriov,
        resource_name: Some("intel.com/vf".into()),
        vlan_id: Some(100),
        ..Network::default()
    };
    assert_eq!(segment(&sriov), "sriov/intel.com/vf/100");
    assert_eq!(label_value("vlan100"), "vlan100");
    let hashed = label_value(&"x".repeat(64));
    assert!(hashed.starts_with("h_") && hashed.len() == 42, "{hashed}");
}
