//! Validation of `spec.disks`.
//!
//! In: the disks of a spec. Out: the requested size of each disk in bytes and
//! problems for names, sources, sizes, image URLs and existing-claim references.

use std::collections::BTreeSet;

use super::Collector;
use super::names::{is_dns_label, is_dns_subdomain};
use super::quantity;
use crate::api::{DeletionPolicy, Disk};
use crate::naming::CLOUD_INIT_DISK;

pub(crate) fn check(collector: &mut Collector, disks: &[Disk]) -> Vec<Option<u128>> {
    let mut names = BTreeSet::new();
    let mut boot_disks = 0;
    let mut sizes = Vec::with_capacity(disks.len());
    for (index, disk) in disks.iter().enumerate() {
        let path = format!("spec.disks[{index}]");
        if !is_dns_label(&disk.name) {
            collector.push(
                format!("{path}.name"),
                format!("\"{}\" is not a DNS label (lowercase letters, digits and '-', at most 63 characters)", disk.name),
            );
        } else if disk.name == CLOUD_INIT_DISK {
            collector.push(format!("{path}.name"), format!("\"{CLOUD_INIT_DISK}\" is reserved for the cloud-init disk"));
        } else if !names.insert(disk.name.as_str()) {
            collector.push(format!("{path}.name"), format!("\"{}\" is used by another disk", disk.name));
        }
        if disk.boot == Some(true) {
            boot_disks += 1;
            if boot_disks == 2 {
                collector.push(format!("{path}.boot"), "at most one disk may be the boot disk");
            }
        }
        sizes.push(check_source(collector, &path, disk));
    }
    sizes
}

fn check_source(collector: &mut Collector, path: &str, disk: &Disk) -> Option<u128> {
    if let Some(existing) = &disk.existing_pvc {
        for (field, set) in
            [("image", disk.image.is_some()), ("size", disk.size.is_some()), ("storageClassName", disk.storage_class_name.is_some())]
        {
            if set {
                collector.push(format!("{path}.{field}"), "a disk with existingPVC takes no image, size or storageClassName");
            }
        }
        if disk.deletion_policy == Some(DeletionPolicy::Delete) {
            collector.push(format!("{path}.deletionPolicy"), "an existingPVC is never deleted; deletionPolicy Delete does not apply to it");
        }
        if !is_dns_subdomain(&existing.name) {
            collector.push(format!("{path}.existingPVC.name"), format!("\"{}\" is not a valid claim name", existing.name));
        }
        if let Some(namespace) = &existing.namespace
            && !is_dns_label(namespace)
        {
            collector.push(format!("{path}.existingPVC.namespace"), format!("\"{namespace}\" is not a valid namespace name"));
        }
        return None;
    }
    let size = match &disk.size {
        Some(size) => quantity::check_positive(collector, &format!("{path}.size"), size),
        None => {
            let what = if disk.image.is_some() {
                "an image disk needs the size of the volume to import into"
            } else {
                "is required: a disk needs existingPVC, image with size, or size for a blank volume"
            };
            collector.push(format!("{path}.size"), what);
            None
        }
    };
    if let Some(image) = &disk.image
        && let Err(message) = check_image(image)
    {
        collector.push(format!("{path}.image"), message);
    }
    if let Some(class) = &disk.storage_class_name
        && !is_dns_subdomain(class)
    {
        collector.push(format!("{path}.storageClassName"), format!("\"{class}\" is not a valid StorageClass name"));
    }
    size
}

/// An image is `docker://<reference>` or an `http://`/`https://` URL with a host.
fn check_image(image: &str) -> Result<(), String> {
    if image.chars().any(|character| character.is_whitespace() || character.is_control()) {
        return Err(format!("\"{image}\" contains white space"));
    }
    if let Some(reference) = image.strip_prefix("docker://") {
        let valid = !reference.is_empty()
            && !reference.starts_with(['/', ':', '@', '.'])
            && reference.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-/:@".contains(&byte));
        return if valid { Ok(()) } else { Err(format!("\"{image}\" is not a valid container image reference after docker://")) };
    }
    let rest = image.strip_prefix("https://").or_else(|| image.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
            if host.is_empty() || host.starts_with(':') { Err(format!("\"{image}\" has no host")) } else { Ok(()) }
        }
        None => Err(format!("\"{image}\" must start with docker://, http:// or https://")),
    }
}

#[cfg(test)]
mod tests {
    use super::check_image;

    #[test]
    fn image_schemes() {
        assert!(check_image("docker://quay.io/containerdisks/ubuntu:22.04").is_ok());
        assert!(check_image("https://cloud-images.ubuntu.com/jammy.img").is_ok());
        assert!(check_image("http://10.0.0.1:8080/disk.qcow2").is_ok());
        assert!(check_image("s3://bucket/disk.img").is_err());
        assert!(check_image("docker://").is_err());
        assert!(check_image("https:///disk.img").is_err());
        assert!(check_image("quay.io/containerdisks/ubuntu").is_err());
        assert!(check_image("docker://quay.io/a b").is_err());
    }
}
