//! The per-network and per-disk parts of the status.
//!
//! In: the status inputs. Out: for each network its attachment, whether it
//! exists, its MAC and the addresses the guest reports (else the leased one); for each disk its
//! claim, whether it is bound (or waits for its first consumer), its size,
//! the DataVolume's (else the claim's) phase and the import progress.

use wukong_models::network_attachment_definition::NetworkAttachmentDefinition;

use super::Inputs;
use crate::api::{NetworkStatus, VolumeStatus};
use crate::children::plan::Volume;
use crate::controller::observe::ReferencedClaim;
use crate::naming::derived_mac;

/// The status of every network, in spec order.
pub fn networks(inputs: &Inputs<'_>) -> Vec<NetworkStatus> {
    let interfaces =
        inputs.observed.instance.as_ref().and_then(|instance| instance.status.as_ref()).and_then(|status| status.interfaces.as_ref());
    inputs
        .spec
        .networks
        .iter()
        .zip(&inputs.plan.networks)
        .map(|(network, planned)| {
            let exists =
                planned.attachment.as_ref().is_none_or(|name| inputs.observed.named::<NetworkAttachmentDefinition>(name).is_some());
            let reported =
                interfaces.and_then(|interfaces| interfaces.iter().find(|nic| nic.name.as_deref() == Some(network.name.as_str())));
            let mac = reported
                .and_then(|nic| nic.mac.clone())
                .or_else(|| network.mac_address.clone().map(|mac| mac.to_ascii_lowercase()))
                .unwrap_or_else(|| derived_mac(&inputs.plan.namespace, &inputs.plan.wukong, &network.name));
            let mut ip_addresses: Vec<String> = reported
                .and_then(|nic| nic.ip_addresses.clone().or_else(|| nic.ip_address.clone().map(|address| vec![address])))
                .unwrap_or_default()
                .into_iter()
                .map(|address| address.split('/').next().unwrap_or_default().to_string())
                .collect();
            // A leased address is shown as soon as it is leased, before the guest reports it.
            if ip_addresses.is_empty()
                && let Some(leased) = inputs.observed.leased.get(&network.name)
            {
                ip_addresses.push(leased.clone());
            }
            NetworkStatus { name: network.name.clone(), nad_name: planned.attachment.clone(), ready: exists, mac: Some(mac), ip_addresses }
        })
        .collect()
}

/// The status of every disk, in spec order.
pub fn volumes(inputs: &Inputs<'_>) -> Vec<VolumeStatus> {
    let observed = inputs.observed;
    let disks = inputs.spec.disks.iter().zip(&inputs.plan.disks).enumerate();
    disks
        .map(|(index, (disk, planned))| {
            if let (Volume::ExistingClaim(_), Some(reference)) = (&planned.volume, observed.existing_claims.get(&index)) {
                return existing_volume(&disk.name, reference);
            }
            let claim_name = planned.volume.name();
            let claim = observed.volume_claim(claim_name);
            let data_volume = observed.data_volume(claim_name);
            let claim_phase = claim.and_then(|claim| claim.status.as_ref()).and_then(|status| status.phase.clone());
            let class = disk.storage_class_name.clone().unwrap_or_default();
            let waits = observed.wait_for_first_consumer.get(&class).copied().unwrap_or(false);
            let data_volume_status = data_volume.and_then(|volume| volume.status.as_ref());
            let data_volume_phase = data_volume_status.and_then(|status| status.phase.clone());
            let bound = match claim_phase.as_deref() {
                Some("Bound") => true,
                Some("Pending") => waits || data_volume_phase.as_deref() == Some("WaitForFirstConsumer"),
                _ => false,
            };
            let capacity = claim
                .and_then(|claim| claim.status.as_ref())
                .and_then(|status| status.capacity.as_ref())
                .and_then(|capacity| capacity.get("storage"));
            VolumeStatus {
                name: disk.name.clone(),
                pvc_name: Some(claim_name.to_string()),
                bound,
                size: capacity.map(|quantity| quantity.0.clone()).or_else(|| disk.size.clone()),
                phase: data_volume_phase.or(claim_phase),
                progress: data_volume_status.and_then(|status| status.progress.clone()).filter(|progress| progress != "N/A"),
            }
        })
        .collect()
}

fn existing_volume(disk: &str, reference: &ReferencedClaim) -> VolumeStatus {
    let status = reference.claim.as_ref().and_then(|claim| claim.status.as_ref());
    let phase = status.and_then(|status| status.phase.clone());
    VolumeStatus {
        name: disk.to_string(),
        pvc_name: Some(reference.name.clone()),
        bound: phase.as_deref() == Some("Bound"),
        size: status
            .and_then(|status| status.capacity.as_ref())
            .and_then(|capacity| capacity.get("storage"))
            .map(|quantity| quantity.0.clone()),
        phase: phase.or_else(|| reference.claim.is_none().then(|| "Missing".to_string())),
        progress: None,
    }
}
