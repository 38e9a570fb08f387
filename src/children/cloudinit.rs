//! The cloud-init Secret: user data (users, SSH keys, sudo, passwords, merged
//! with the user's own `#cloud-config`) and netplan v2 network data that
//! configures each NIC, matched by MAC.
//!
//! In: a validated Wukong, its plan and the passwords the controller read from
//! Secrets (user name -> value). Out: the Secret `<wukong>-cloudinit`, or none
//! when the plan has no cloud-init, and the kind's duties.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::kind::{BuildInputs, ChildKind, LeasedAddress, Permission, Planned};
use super::meta::{MANAGED_BY_LABEL, MANAGER, object_meta};
use super::plan::Plan;
use crate::api::{IpMode, NetworkType, User, Wukong};
use crate::validate::{ParsedNetwork, ValidWukong};
use crate::yaml::{self, Mapping, Value};

/// Key of the user data in the Secret (read by KubeVirt's NoCloud source).
pub const USER_DATA_KEY: &str = "userdata";
/// Key of the network data in the Secret.
pub const NETWORK_DATA_KEY: &str = "networkdata";
/// The sudo rule for `sudo: true`.
const SUDO_RULE: &str = "ALL=(ALL) NOPASSWD:ALL";

impl ChildKind for Secret {
    // The password Secrets users reference are read with a GET.
    const PERMISSIONS: &'static [Permission] =
        &[Permission { group: "", resource: "secrets", verbs: &["get", "list", "watch", "create", "patch", "delete"] }];
    const RETAINABLE: bool = false;
    const REFERENCED: bool = false;
    const WAVE: u8 = 0;

    fn is_referenced_by(&self, _: &Wukong) -> bool {
        false
    }

    fn cache_selector() -> Option<String> {
        // Only the operator's own Secrets are cached: other Secrets are none of its business.
        Some(format!("{MANAGED_BY_LABEL}={MANAGER}"))
    }

    fn plan(_: &ValidWukong, plan: &Plan) -> Vec<Planned> {
        let name = plan.cloud_init_secret.clone();
        name.map(|name| Planned { kind: Self::kind(&()).into_owned(), name, retain: false }).into_iter().collect()
    }

    fn build(wukong: &ValidWukong, plan: &Plan, inputs: &BuildInputs) -> Vec<Self> {
        secret(wukong, plan, inputs).into_iter().collect()
    }

    fn prepare(_: &mut Self, _: &Self) {}

    /// The data is only compared, never read: the cache keeps a fingerprint of each value (a cloud-init user data
    /// is kilobytes; 10,000 of them were a tenth of the operator's heap). Trimming twice changes nothing.
    fn trim(&mut self) {
        for value in self.data.iter_mut().flat_map(|data| data.values_mut()) {
            if !value.0.starts_with(FINGERPRINT.as_bytes()) {
                let digest = Sha256::digest(&value.0);
                let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                *value = ByteString(format!("{FINGERPRINT}{hex}").into_bytes());
            }
        }
    }
}

/// How a cached Secret value starts once it is replaced by its fingerprint.
const FINGERPRINT: &str = "wukong-sha256:";

/// The cloud-init Secret, when the plan calls for one.
pub fn secret(wukong: &ValidWukong, plan: &Plan, inputs: &BuildInputs) -> Option<Secret> {
    let name = plan.cloud_init_secret.clone()?;
    let mut data = BTreeMap::from([(USER_DATA_KEY.to_string(), ByteString(user_data(wukong, &inputs.passwords).into_bytes()))]);
    if let Some(network) = network_data(wukong, &inputs.addresses) {
        data.insert(NETWORK_DATA_KEY.to_string(), ByteString(network.into_bytes()));
    }
    Some(Secret { metadata: object_meta(wukong, name), data: Some(data), type_: Some("Opaque".to_string()), ..Secret::default() })
}

/// The user data: the user's `#cloud-config` with the declared users appended
/// to its `users`, or the user's own non-cloud-config data as is.
pub fn user_data(wukong: &ValidWukong, passwords: &BTreeMap<String, String>) -> String {
    let cloud_init = wukong.spec.cloud_init.clone().unwrap_or_default();
    let mut document = Mapping::new();
    if let Some(own) = &cloud_init.user_data {
        if !own.starts_with("#cloud-config") {
            return own.clone();
        }
        // Validation has parsed this document already; a failure here means it is empty.
        if let Ok(Value::Mapping(mapping)) = yaml::from_str::<Value>(own) {
            document = mapping;
        }
    }
    if !cloud_init.users.is_empty() {
        let mut users = match document.swap_remove("users") {
            Some(Value::Sequence(existing)) => existing,
            _ => Vec::new(),
        };
        users.extend(cloud_init.users.iter().map(|user| user_entry(user, passwords.get(&user.name))));
        document.insert("users".into(), Value::Sequence(users));
    }
    if document.is_empty() {
        return "#cloud-config\n".to_string();
    }
    // As spelled: the user's plain scalars mean to cloud-init what they meant in the input.
    let body = yaml::to_string_as_spelled(&Value::Mapping(document)).unwrap_or_default();
    format!("#cloud-config\n{body}")
}

fn user_entry(user: &User, password: Option<&String>) -> Value {
    let mut entry = Mapping::new();
    entry.insert("name".into(), user.name.clone().into());
    entry.insert("shell".into(), "/bin/bash".into());
    if !user.ssh_authorized_keys.is_empty() {
        let keys = user.ssh_authorized_keys.iter().cloned().map(Value::from).collect();
        entry.insert("ssh_authorized_keys".into(), Value::Sequence(keys));
    }
    if user.sudo == Some(true) {
        entry.insert("sudo".into(), SUDO_RULE.into());
    }
    match password {
        Some(hash) if hash.starts_with('$') => {
            entry.insert("lock_passwd".into(), false.into());
            entry.insert("passwd".into(), hash.clone().into());
        }
        Some(plain) => {
            entry.insert("lock_passwd".into(), false.into());
            entry.insert("plain_text_passwd".into(), plain.clone().into());
        }
        None => {
            entry.insert("lock_passwd".into(), true.into());
        }
    }
    Value::Mapping(entry)
}

/// Netplan v2 network configuration.
#[derive(Serialize)]
struct NetworkConfig {
    version: u8,
    ethernets: BTreeMap<String, Ethernet>,
}

/// One NIC, matched by MAC.
#[derive(Serialize)]
struct Ethernet {
    #[serde(rename = "match")]
    matching: MacMatch,
    dhcp4: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nameservers: Option<Nameservers>,
}

#[derive(Serialize)]
struct MacMatch {
    macaddress: String,
}

#[derive(Serialize)]
struct Route {
    to: &'static str,
    via: String,
}

#[derive(Serialize)]
struct Nameservers {
    addresses: Vec<String>,
}

/// Whether the Wukong has network data: some network has an `ipConfig`.
pub fn has_network_data(wukong: &ValidWukong) -> bool {
    wukong.networks.iter().any(|parsed| parsed.network.ip_config.is_some())
}

/// The network data, when any network has an `ipConfig`: every such NIC, plus
/// the pod network (always DHCP), keyed by network name and matched by MAC.
/// A `pool` network gets its leased address from `addresses` with the pool's
/// prefix and DNS, and the pool's gateway as the default route unless a
/// static network or an earlier pool network sets one.
pub fn network_data(wukong: &ValidWukong, addresses: &BTreeMap<String, LeasedAddress>) -> Option<String> {
    if !has_network_data(wukong) {
        return None;
    }
    let mut default_route = wukong.networks.iter().any(|parsed| parsed.address.as_ref().is_some_and(|address| address.gateway.is_some()));
    let ethernets = wukong
        .networks
        .iter()
        .filter(|parsed| parsed.network.ip_config.is_some() || parsed.network.network_type == NetworkType::Pod)
        .map(|parsed| (parsed.network.name.clone(), ethernet(parsed, addresses.get(&parsed.network.name), &mut default_route)))
        .collect();
    yaml::to_string(&NetworkConfig { version: 2, ethernets }).ok()
}

fn ethernet(parsed: &ParsedNetwork, leased: Option<&LeasedAddress>, default_route: &mut bool) -> Ethernet {
    let mode = parsed.network.ip_config.as_ref().map_or(IpMode::Dhcp, |config| config.mode);
    if mode == IpMode::Pool {
        let leased = leased.cloned();
        let gateway = leased.as_ref().and_then(|leased| leased.gateway).filter(|_| !*default_route);
        *default_route |= gateway.is_some();
        let dns =
            if parsed.dns.is_empty() { leased.as_ref().map(|leased| leased.dns.clone()).unwrap_or_default() } else { parsed.dns.clone() };
        return Ethernet {
            matching: MacMatch { macaddress: parsed.mac.clone() },
            dhcp4: false,
            addresses: leased.iter().map(|leased| format!("{}/{}", leased.address, leased.prefix_len)).collect(),
            routes: gateway.map(|gateway| vec![Route { to: "default", via: gateway.to_string() }]).unwrap_or_default(),
            nameservers: (!dns.is_empty()).then(|| Nameservers { addresses: dns.iter().map(ToString::to_string).collect() }),
        };
    }
    let address = parsed.address.as_ref().filter(|_| mode == IpMode::Static);
    Ethernet {
        matching: MacMatch { macaddress: parsed.mac.clone() },
        dhcp4: mode == IpMode::Dhcp,
        addresses: address.map(|address| vec![address.cidr.to_string()]).unwrap_or_default(),
        routes: address
            .and_then(|address| address.gateway)
            .map(|gateway| vec![Route { to: "default", via: gateway.to_string() }])
            .unwrap_or_default(),
        nameservers: (!parsed.dns.is_empty()).then(|| Nameservers { addresses: parsed.dns.iter().map(ToString::to_string).collect() }),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "a failed expectation is a failed test")]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    use crate::children::ChildKind;
    use crate::controller::diff::holds;

    fn secret(user_data: &str) -> Secret {
        Secret { data: Some(BTreeMap::from([("userdata".to_string(), ByteString(user_data.as_bytes().to_vec()))])), ..Secret::default() }
    }

    #[test]
    fn a_cached_secret_keeps_fingerprints_that_still_tell_drift() {
        let desired = secret("#cloud-config\nusers: [alice]\n");
        let mut cached = desired.clone();
        cached.trim();
        let kept = cached.data.as_ref().expect("data")["userdata"].0.clone();
        assert!(kept.starts_with(b"wukong-sha256:") && kept.len() == "wukong-sha256:".len() + 64, "{kept:?}");
        let mut again = cached.clone();
        again.trim();
        assert_eq!(again, cached, "trimming twice changes nothing");
        assert!(holds(&desired, &cached), "the same data holds");
        assert!(!holds(&secret("#cloud-config\nusers: [mallory]\n"), &cached), "changed data is drift");
    }
}
