//! Volumes: CDI DataVolumes for imported (and cross-namespace cloned) disks and
//! PersistentVolumeClaims for blank disks, with both kinds' duties. Existing
//! claims in the Wukong's own namespace are only referenced, never built.
//!
//! In: a validated Wukong and its plan (which disk becomes which kind is the
//! plan's decision). Out: the DataVolumes and claims to apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource;
use wukong_models::datavolume::{
    DataVolume, DataVolumeSource, DataVolumeSourceHttp, DataVolumeSourcePvc, DataVolumeSourceRegistry, DataVolumeSpec, DataVolumeStatus,
    DataVolumeStorage, DataVolumeStorageResources,
};

use super::kind::{BuildInputs, ChildKind, MANAGE, Permission, Planned};
use super::meta::{DELETION_POLICY_ANNOTATION, object_meta};
use super::plan::{DiskPlan, Plan, Volume};
use crate::api::{AccessMode, Disk, Wukong};
use crate::validate::ValidWukong;

impl ChildKind for PersistentVolumeClaim {
    const PERMISSIONS: &'static [Permission] = &[Permission { group: "", resource: "persistentvolumeclaims", verbs: MANAGE }];
    const RETAINABLE: bool = true;
    const REFERENCED: bool = true;
    const WAVE: u8 = 0;

    fn is_referenced_by(&self, wukong: &Wukong) -> bool {
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        references_claim(wukong, namespace, self.metadata.name.as_deref().unwrap_or_default(), true)
    }

    fn cache_selector() -> Option<String> {
        // Every claim: existing claims are referenced, and CDI makes the claims of DataVolumes.
        None
    }

    fn plan(_: &ValidWukong, plan: &Plan) -> Vec<Planned> {
        let blank = plan.disks.iter().filter(|disk| matches!(disk.volume, Volume::BlankClaim(_)));
        blank
            .map(|disk| Planned { kind: Self::kind(&()).into_owned(), name: disk.volume.name().to_string(), retain: disk.retain })
            .collect()
    }

    fn build(wukong: &ValidWukong, plan: &Plan, _: &BuildInputs) -> Vec<Self> {
        claims(wukong, plan)
    }

    fn prepare(_: &mut Self, _: &Self) {}

    /// Of the status, only the phase and the capacity are read; the binder's conditions and the rest are dropped.
    /// The operator sets no status, so no apply compares against what is dropped.
    fn trim(&mut self) {
        if let Some(status) = self.status.as_mut() {
            *status = PersistentVolumeClaimStatus { phase: status.phase.take(), capacity: status.capacity.take(), ..Default::default() };
        }
    }
}

impl ChildKind for DataVolume {
    // CDI authorises a cross-namespace clone by the creator's right to create
    // this subresource in the source namespace; the operator checks the grant first.
    const PERMISSIONS: &'static [Permission] = &[
        Permission { group: "cdi.kubevirt.io", resource: "datavolumes", verbs: MANAGE },
        Permission { group: "cdi.kubevirt.io", resource: "datavolumes/source", verbs: &["create"] },
    ];
    const RETAINABLE: bool = true;
    const REFERENCED: bool = false;
    const WAVE: u8 = 0;

    fn is_referenced_by(&self, _: &Wukong) -> bool {
        false
    }

    fn cache_selector() -> Option<String> {
        // Every DataVolume: the claims CDI makes are traced back through them.
        None
    }

    fn plan(_: &ValidWukong, plan: &Plan) -> Vec<Planned> {
        let imported = plan.disks.iter().filter(|disk| matches!(disk.volume, Volume::DataVolume(_)));
        imported
            .map(|disk| Planned { kind: Self::kind(&()).into_owned(), name: disk.volume.name().to_string(), retain: disk.retain })
            .collect()
    }

    fn build(wukong: &ValidWukong, plan: &Plan, _: &BuildInputs) -> Vec<Self> {
        data_volumes(wukong, plan)
    }

    /// A DataVolume's spec is immutable once created: keep it, reconcile only metadata.
    fn prepare(desired: &mut Self, current: &Self) {
        desired.spec = current.spec.clone();
    }

    /// Of the status, only the phase and the import progress are read; CDI's conditions and the rest are dropped.
    fn trim(&mut self) {
        if let Some(status) = self.status.as_mut() {
            *status = DataVolumeStatus { phase: status.phase.take(), progress: status.progress.take(), ..Default::default() };
        }
    }
}

/// The disks with their plans, in spec order.
fn planned_disks<'a>(wukong: &'a ValidWukong, plan: &'a Plan) -> impl Iterator<Item = (&'a Disk, &'a DiskPlan)> {
    wukong.spec.disks.iter().zip(&plan.disks)
}

/// The DataVolumes: one per image disk and per granted cross-namespace claim.
pub fn data_volumes(wukong: &ValidWukong, plan: &Plan) -> Vec<DataVolume> {
    planned_disks(wukong, plan).filter_map(|(disk, planned)| data_volume(wukong, disk, planned)).collect()
}

fn data_volume(wukong: &ValidWukong, disk: &Disk, planned: &DiskPlan) -> Option<DataVolume> {
    let Volume::DataVolume(name) = &planned.volume else {
        return None;
    };
    let source = match (&disk.image, &planned.existing) {
        (Some(image), _) => image_source(image),
        (None, Some(existing)) => DataVolumeSource {
            pvc: Some(Box::new(DataVolumeSourcePvc { name: existing.name.clone(), namespace: existing.namespace.clone() })),
            ..DataVolumeSource::default()
        },
        (None, None) => return None,
    };
    let storage = DataVolumeStorage {
        access_modes: disk.access_mode.map(|mode| vec![mode.as_str().to_string()]),
        resources: disk.size.as_ref().map(|size| {
            Box::new(DataVolumeStorageResources {
                requests: Some(BTreeMap::from([("storage".to_string(), size_value(size))])),
                limits: None,
            })
        }),
        storage_class_name: disk.storage_class_name.clone(),
        volume_mode: disk.volume_mode.map(|mode| mode.as_str().to_string()),
        ..DataVolumeStorage::default()
    };
    Some(DataVolume {
        metadata: volume_meta(wukong, planned, name.clone()),
        spec: DataVolumeSpec { source: Some(Box::new(source)), storage: Some(Box::new(storage)), ..DataVolumeSpec::default() },
        status: None,
    })
}

fn image_source(image: &str) -> DataVolumeSource {
    if image.starts_with("docker://") {
        DataVolumeSource {
            registry: Some(Box::new(DataVolumeSourceRegistry { url: Some(image.to_string()), ..Default::default() })),
            ..Default::default()
        }
    } else {
        DataVolumeSource {
            http: Some(Box::new(DataVolumeSourceHttp { url: image.to_string(), ..Default::default() })),
            ..Default::default()
        }
    }
}

fn size_value(size: &str) -> k8s_openapi::apimachinery::pkg::util::intstr::IntOrString {
    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(size.to_string())
}

/// The blank claims: one per disk with only a size.
pub fn claims(wukong: &ValidWukong, plan: &Plan) -> Vec<PersistentVolumeClaim> {
    planned_disks(wukong, plan)
        .filter_map(|(disk, planned)| match &planned.volume {
            Volume::BlankClaim(name) => Some(PersistentVolumeClaim {
                metadata: volume_meta(wukong, planned, name.clone()),
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
            }),
            Volume::DataVolume(_) | Volume::ExistingClaim(_) => None,
        })
        .collect()
}

/// Metadata of a volume: the child metadata plus the deletion-policy annotation
/// on volumes the user asked to retain.
fn volume_meta(wukong: &ValidWukong, planned: &DiskPlan, name: String) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut metadata = object_meta(wukong, name);
    if planned.retain {
        metadata.annotations = Some(BTreeMap::from([(DELETION_POLICY_ANNOTATION.to_string(), "Retain".to_string())]));
    }
    metadata
}

/// Whether `wukong` references the existing claim `namespace/claim` (any
/// reference, or only read-write ones when `read_only_counts` is false).
pub fn references_claim(wukong: &Wukong, namespace: &str, claim: &str, read_only_counts: bool) -> bool {
    let own_namespace = wukong.metadata.namespace.as_deref().unwrap_or_default();
    wukong.spec.disks.iter().filter_map(|disk| disk.existing_pvc.as_ref()).any(|existing| {
        existing.name == claim
            && existing.namespace.as_deref().unwrap_or(own_namespace) == namespace
            && (read_only_counts || existing.read_only != Some(true))
    })
}
