//! Multus NetworkAttachmentDefinitions, one per non-pod network.
//!
//! In: a validated Wukong. Out: the NADs, each with a typed CNI config: the
//! `bridge` plugin (host bridge, optional VLAN, no IPAM: the guest configures its
//! own address) or the `sriov` plugin with the device plugin's resource name
//! annotation. Also the design notes' Multus networks annotation for the VM.

use std::collections::BTreeMap;

use serde::Serialize;
use wukong_models::network_attachment_definition::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};

use super::meta::object_meta;
use super::naming::child_name;
use crate::api::{Network, NetworkType};
use crate::validate::ValidWukong;

/// Host bridge used when a bridge or vlan network names none.
pub const DEFAULT_BRIDGE: &str = "br0";
/// Annotation through which SR-IOV device plugins inject the virtual function.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";
/// Multus annotation listing the secondary networks of a pod.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// CNI spec version of the generated configs.
const CNI_VERSION: &str = "0.3.1";

/// The CNI configuration stored in `spec.config`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CniConfig<'a> {
    cni_version: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    plugin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preserve_default_vlan: Option<bool>,
    ipam: Ipam,
}

/// Empty IPAM: with KubeVirt's bridge and sriov bindings the guest owns the address.
#[derive(Serialize)]
struct Ipam {}

/// One entry of the Multus networks annotation.
#[derive(Serialize)]
struct NetworkSelection {
    name: String,
    interface: String,
}

/// Whether a network needs a NetworkAttachmentDefinition.
pub fn has_attachment(network: &Network) -> bool {
    network.network_type != NetworkType::Pod
}

/// Name of the NAD of a network: `<wukong>-<network>`.
pub fn attachment_name(wukong: &str, network: &Network) -> String {
    child_name(wukong, &network.name)
}

/// The NADs of every non-pod network, in spec order.
pub fn attachments(wukong: &ValidWukong) -> Vec<NetworkAttachmentDefinition> {
    wukong.spec.networks.iter().filter(|network| has_attachment(network)).map(|network| attachment(wukong, network)).collect()
}

fn attachment(wukong: &ValidWukong, network: &Network) -> NetworkAttachmentDefinition {
    let name = attachment_name(&wukong.name, network);
    let mut metadata = object_meta(wukong, name.clone());
    let config = match network.network_type {
        NetworkType::Sriov => {
            if let Some(resource) = &network.resource_name {
                metadata.annotations = Some(BTreeMap::from([(RESOURCE_NAME_ANNOTATION.to_string(), resource.clone())]));
            }
            CniConfig {
                cni_version: CNI_VERSION,
                name: &name,
                plugin: "sriov",
                bridge: None,
                vlan: network.vlan_id,
                preserve_default_vlan: None,
                ipam: Ipam {},
            }
        }
        NetworkType::Bridge | NetworkType::Vlan | NetworkType::Pod => CniConfig {
            cni_version: CNI_VERSION,
            name: &name,
            plugin: "bridge",
            bridge: Some(network.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)),
            vlan: network.vlan_id,
            preserve_default_vlan: network.vlan_id.map(|_| false),
            ipam: Ipam {},
        },
    };
    NetworkAttachmentDefinition {
        metadata,
        // Serialising a struct of strings and integers cannot fail.
        spec: NetworkAttachmentDefinitionSpec { config: serde_json::to_string(&config).ok() },
    }
}

/// The Multus networks annotation of the design notes: `[{name, interface: netN}]`
/// for every NAD, numbered from net1 in spec order. `None` without NADs.
pub fn networks_annotation(wukong: &ValidWukong) -> Option<String> {
    let selections: Vec<NetworkSelection> = wukong
        .spec
        .networks
        .iter()
        .filter(|network| has_attachment(network))
        .enumerate()
        .map(|(index, network)| NetworkSelection { name: attachment_name(&wukong.name, network), interface: format!("net{}", index + 1) })
        .collect();
    if selections.is_empty() { None } else { serde_json::to_string(&selections).ok() }
}
