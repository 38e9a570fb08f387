//! Deterministic names of the children and stable derived MAC addresses.
//!
//! In: the Wukong's namespace and name and a network or disk name. Out: child
//! names that are always valid DNS labels (at most 63 characters, shortened with
//! a stable hash suffix when needed) and locally administered MACs.

use sha2::{Digest, Sha256};

/// Name of the cloud-init disk and volume in the VirtualMachine.
pub const CLOUD_INIT_DISK: &str = "cloudinitdisk";

/// Longest name a child may have: a DNS label, because the VM's name becomes the
/// guest hostname and the launcher pod's name, and volume names end up in pods.
pub const MAX_NAME_LENGTH: usize = 63;

/// `<wukong>-<suffix>`, shortened with a stable hash suffix when longer than 63.
pub fn child_name(wukong: &str, suffix: &str) -> String {
    shorten(&format!("{wukong}-{suffix}"))
}

/// Name of the VirtualMachine: `<wukong>-vm`.
pub fn vm_name(wukong: &str) -> String {
    child_name(wukong, "vm")
}

/// Name of the volume (claim or DataVolume) the operator makes for a disk: `<wukong>-<disk>`.
pub fn volume_name(wukong: &str, disk: &str) -> String {
    child_name(wukong, disk)
}

/// Name of the NetworkAttachmentDefinition of a network: `<wukong>-<network>`.
pub fn attachment_name(wukong: &str, network: &str) -> String {
    child_name(wukong, network)
}

/// Name of the cloud-init Secret: `<wukong>-cloudinit`.
pub fn cloud_init_secret_name(wukong: &str) -> String {
    child_name(wukong, "cloudinit")
}

/// Name of the VirtualMachineInstanceMigration of one migration request:
/// `<wukong>-migration-<8 hex digits of the token's SHA-256>`.
pub fn migration_name(wukong: &str, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hash: String = digest.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    child_name(wukong, &format!("migration-{hash}"))
}

/// Shortens a name to 63 characters: the first 54, a '-', and 8 hex digits of its
/// SHA-256. Names that fit are returned unchanged.
pub fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_LENGTH {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    let keep = MAX_NAME_LENGTH - hash.len() - 1;
    let prefix = name[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// A stable, locally administered, unicast MAC for one interface, derived from
/// namespace, Wukong name and network name (so cloud-init can match NICs by MAC
/// and the address survives re-creation of the VM).
pub fn derived_mac(namespace: &str, wukong: &str, network: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{wukong}/{network}").as_bytes());
    let mut octets = [0u8; 6];
    octets[0] = 0x02;
    octets[1..].copy_from_slice(&digest[..5]);
    octets.iter().map(|octet| format!("{octet:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::is_dns_label;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(child_name("web-server-01", "mgmt"), "web-server-01-mgmt");
        assert_eq!(vm_name("web-server-01"), "web-server-01-vm");
    }

    #[test]
    fn long_names_are_shortened_stably_and_stay_labels() {
        let wukong = "a".repeat(63);
        let first = vm_name(&wukong);
        assert_eq!(first, vm_name(&wukong));
        assert_eq!(first.len(), 63);
        assert!(is_dns_label(&first));
        assert_ne!(child_name(&wukong, "data"), child_name(&wukong, "date"));
        let dashed = format!("{}-x", "b".repeat(53));
        assert!(is_dns_label(&child_name(&dashed, "some-long-disk-name")));
    }

    #[test]
    fn derived_macs_are_stable_local_unicast_and_distinct() {
        let mac = derived_mac("prod", "web", "mgmt");
        assert_eq!(mac, derived_mac("prod", "web", "mgmt"));
        assert!(mac.starts_with("02:"));
        assert_eq!(mac.len(), 17);
        assert_ne!(mac, derived_mac("prod", "web", "data"));
        assert_ne!(mac, derived_mac("dev", "web", "mgmt"));
    }
}
