//! Multus NetworkAttachmentDefinitions, one per non-pod network.
//!
//! In: a validated Wukong and its plan. Out: the NADs, each with a typed CNI
//! config: the `bridge` plugin (host bridge, optional VLAN, no IPAM: the guest
//! configures its own address) or the `sriov` plugin with the device plugin's
//! resource name annotation; the kind's duties; and the design notes' Multus
//! networks annotation for the VM.

use std::collections::BTreeMap;

use kube::Resource;
use serde::Serialize;
use wukong_models::network_attachment_definition::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};

use super::kind::{BuildInputs, ChildKind, MANAGE, Permission, Planned};
use super::meta::object_meta;
use super::plan::Plan;
use crate::api::{Network, NetworkType, Wukong};
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

impl ChildKind for NetworkAttachmentDefinition {
    const PERMISSIONS: &'static [Permission] =
        &[Permission { group: "k8s.cni.cncf.io", resource: "network-attachment-definitions", verbs: MANAGE }];
    const RETAINABLE: bool = false;
    const REFERENCED: bool = false;
    const WAVE: u8 = 0;

    fn is_referenced_by(&self, _: &Wukong) -> bool {
        false
    }

    fn cache_selector() -> Option<String> {
        // Every NAD: one with a child's name that is not ours is a name conflict.
        None
    }

    fn plan(_: &ValidWukong, plan: &Plan) -> Vec<Planned> {
        let names = plan.networks.iter().filter_map(|network| network.attachment.clone());
        names.map(|name| Planned { kind: Self::kind(&()).into_owned(), name, retain: false }).collect()
    }

    fn build(wukong: &ValidWukong, plan: &Plan, _: &BuildInputs) -> Vec<Self> {
        attachments(wukong, plan)
    }

    fn prepare(_: &mut Self, _: &Self) {}

    fn trim(&mut self) {}
}

/// The NADs of every network that has one, in spec order.
pub fn attachments(wukong: &ValidWukong, plan: &Plan) -> Vec<NetworkAttachmentDefinition> {
    let planned = wukong.spec.networks.iter().zip(&plan.networks);
    planned.filter_map(|(network, planned)| Some(attachment(wukong, network, planned.attachment.clone()?))).collect()
}

fn attachment(wukong: &ValidWukong, network: &Network, name: String) -> NetworkAttachmentDefinition {
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
pub fn networks_annotation(plan: &Plan) -> Option<String> {
    let selections: Vec<NetworkSelection> = plan
        .networks
        .iter()
        .filter_map(|network| network.attachment.clone())
        .enumerate()
        .map(|(index, name)| NetworkSelection { name, interface: format!("net{}", index + 1) })
        .collect();
    if selections.is_empty() { None } else { serde_json::to_string(&selections).ok() }
}
