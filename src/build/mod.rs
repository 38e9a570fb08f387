//! Pure builders: a validated Wukong in, the typed child objects out.
//!
//! One add-on per file: [`network`] (Multus), [`storage`] (CDI and claims),
//! [`cloudinit`] (the Secret), [`kubevirt`] (the VirtualMachine), with [`meta`]
//! and [`naming`] shared. No client, no clock, no randomness: the same input
//! always gives the same objects, which is what `wukong render` prints and what
//! the controller applies.

pub mod cloudinit;
pub mod kubevirt;
pub mod meta;
pub mod naming;
pub mod network;
pub mod storage;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use wukong_models::datavolume::DataVolume;
use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;
use wukong_models::virtualmachine::VirtualMachine;

use crate::validate::ValidWukong;

/// Every child of one Wukong, in the order they are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// One NetworkAttachmentDefinition per non-pod network.
    pub attachments: Vec<NetworkAttachmentDefinition>,
    /// The cloud-init Secret, when the Wukong has cloud-init or addresses.
    pub cloud_init: Option<Secret>,
    /// Blank claims.
    pub claims: Vec<PersistentVolumeClaim>,
    /// Imported and cloned volumes.
    pub data_volumes: Vec<DataVolume>,
    /// The VirtualMachine.
    pub virtual_machine: VirtualMachine,
}

/// Builds every child. `passwords` maps user names to the passwords the
/// controller read from their Secrets; users missing from it get a locked password.
pub fn build(wukong: &ValidWukong, passwords: &BTreeMap<String, String>) -> Children {
    Children {
        attachments: network::attachments(wukong),
        cloud_init: cloudinit::secret(wukong, passwords),
        claims: storage::claims(wukong),
        data_volumes: storage::data_volumes(wukong),
        virtual_machine: kubevirt::virtual_machine(wukong),
    }
}
