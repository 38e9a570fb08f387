//! Volumes: CDI DataVolumes for imported (and cross-namespace cloned) disks and
//! PersistentVolumeClaims for blank disks. Existing claims in the Wukong's own
//! namespace are only referenced, never built.
//!
//! In: a validated Wukong. Out: the DataVolumes and claims to apply, and for
//! every disk the source the VirtualMachine mounts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use wukong_models::datavolume::{
    DataVolume, DataVolumeSource, DataVolumeSourceHttp, DataVolumeSourcePvc, DataVolumeSourceRegistry, DataVolumeSpec, DataVolumeStorage,
    DataVolumeStorageResources,
};

use super::meta::{DELETION_POLICY_ANNOTATION, object_meta};
use super::naming::child_name;
use crate::api::{AccessMode, DeletionPolicy, Disk};
use crate::validate::ValidWukong;

/// Where a disk's data comes from, as the VirtualMachine mounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskSource {
    /// A DataVolume the operator creates (imported image, or a granted clone).
    DataVolume(String),
    /// A claim: one the operator creates (blank) or an existing one.
    Claim {
        /// Claim name.
        name: String,
        /// Whether the claim is mounted read-only.
        read_only: bool,
        /// Whether the operator created (and owns) it.
        owned: bool,
    },
}

/// How a disk's volume is provided.
pub fn disk_source(wukong: &ValidWukong, disk: &Disk) -> DiskSource {
    let read_only = disk.existing_pvc.as_ref().and_then(|existing| existing.read_only).unwrap_or(false);
    match &disk.existing_pvc {
        Some(existing) if existing.namespace.as_deref().is_none_or(|namespace| namespace == wukong.namespace) => {
            DiskSource::Claim { name: existing.name.clone(), read_only, owned: false }
        }
        Some(_) => DiskSource::DataVolume(volume_name(&wukong.name, disk)),
        None if disk.image.is_some() => DiskSource::DataVolume(volume_name(&wukong.name, disk)),
        None => DiskSource::Claim { name: volume_name(&wukong.name, disk), read_only: false, owned: true },
    }
}

/// Name of the volume the operator creates for a disk: `<wukong>-<disk>`.
pub fn volume_name(wukong: &str, disk: &Disk) -> String {
    child_name(wukong, &disk.name)
}

/// The DataVolumes: one per image disk and per granted cross-namespace claim.
pub fn data_volumes(wukong: &ValidWukong) -> Vec<DataVolume> {
    wukong.spec.disks.iter().filter_map(|disk| data_volume(wukong, disk)).collect()
}

fn data_volume(wukong: &ValidWukong, disk: &Disk) -> Option<DataVolume> {
    let DiskSource::DataVolume(name) = disk_source(wukong, disk) else {
        return None;
    };
    let source = match (&disk.image, &disk.existing_pvc) {
        (Some(image), _) => image_source(image),
        (None, Some(existing)) => DataVolumeSource {
            pvc: Some(DataVolumeSourcePvc { name: existing.name.clone(), namespace: existing.namespace.clone().unwrap_or_default() }),
            ..DataVolumeSource::default()
        },
        (None, None) => return None,
    };
    let storage = DataVolumeStorage {
        access_modes: disk.access_mode.map(|mode| vec![mode.as_str().to_string()]),
        resources: disk.size.as_ref().map(|size| DataVolumeStorageResources {
            requests: Some(BTreeMap::from([("storage".to_string(), size_value(size))])),
            limits: None,
        }),
        storage_class_name: disk.storage_class_name.clone(),
        volume_mode: disk.volume_mode.map(|mode| mode.as_str().to_string()),
        ..DataVolumeStorage::default()
    };
    Some(DataVolume {
        metadata: volume_meta(wukong, disk, name),
        spec: DataVolumeSpec { source: Some(source), storage: Some(storage), ..DataVolumeSpec::default() },
        status: None,
    })
}

fn image_source(image: &str) -> DataVolumeSource {
    if image.starts_with("docker://") {
        DataVolumeSource {
            registry: Some(DataVolumeSourceRegistry { url: Some(image.to_string()), ..Default::default() }),
            ..Default::default()
        }
    } else {
        DataVolumeSource { http: Some(DataVolumeSourceHttp { url: image.to_string(), ..Default::default() }), ..Default::default() }
    }
}

fn size_value(size: &str) -> k8s_openapi::apimachinery::pkg::util::intstr::IntOrString {
    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(size.to_string())
}

/// The blank claims: one per disk with only a size.
pub fn claims(wukong: &ValidWukong) -> Vec<PersistentVolumeClaim> {
    wukong
        .spec
        .disks
        .iter()
        .filter(|disk| disk.existing_pvc.is_none() && disk.image.is_none())
        .map(|disk| PersistentVolumeClaim {
            metadata: volume_meta(wukong, disk, volume_name(&wukong.name, disk)),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![disk.access_mode.unwrap_or(AccessMode::ReadWriteOnce).as_str().to_string()]),
                resources: disk.size.as_ref().map(|size| VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.clone()))])),
                    limits: None,
                }),
                storage_class_name: disk.storage_class_name.clone(),
                volume_mode: disk.volume_mode.map(|mode| mode.as_str().to_string()),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        })
        .collect()
}

/// Metadata of a volume: the child metadata plus the deletion-policy annotation
/// on volumes the user asked to retain.
fn volume_meta(wukong: &ValidWukong, disk: &Disk, name: String) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut metadata = object_meta(wukong, name);
    if disk.deletion_policy == Some(DeletionPolicy::Retain) {
        metadata.annotations = Some(BTreeMap::from([(DELETION_POLICY_ANNOTATION.to_string(), "Retain".to_string())]));
    }
    metadata
}
