//! The KubeVirt VirtualMachine `<wukong>-vm`.
//!
//! In: a validated Wukong and its plan. Out: the VirtualMachine with its run strategy, CPU
//! and memory, one disk and volume per Wukong disk, one interface and network
//! per Wukong network (stable MACs), the cloud-init NoCloud volume referencing
//! the Secret, scheduling (node selector, tolerations, anti-affinity on a group
//! label the template carries) and the Multus networks annotation.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde_json::Value;
use wukong_models::virtualmachine::*;

use super::kind::{BuildInputs, ChildKind, MANAGE, Permission, Planned};
use super::meta::{labels, object_meta};
use super::network::{NETWORKS_ANNOTATION, networks_annotation};
use super::plan::{Plan, Volume};
use crate::api::{AntiAffinityMode, DiskBus, HighAvailability, NetworkType, Wukong};
use crate::naming::CLOUD_INIT_DISK;
use crate::validate::{ParsedNetwork, ValidWukong};

/// Label on the VM template naming its anti-affinity group.
pub const HA_GROUP_LABEL: &str = "vm.novasphere.dev/ha-group";
/// Topology key of the anti-affinity when none is given.
pub const DEFAULT_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

impl ChildKind for VirtualMachine {
    const PERMISSIONS: &'static [Permission] = &[Permission { group: "kubevirt.io", resource: "virtualmachines", verbs: MANAGE }];
    const RETAINABLE: bool = false;
    const REFERENCED: bool = false;
    const WAVE: u8 = 1;

    fn is_referenced_by(&self, _: &Wukong) -> bool {
        false
    }

    fn cache_selector() -> Option<String> {
        // Every VM: another VM using an existing claim read-write is a conflict.
        None
    }

    fn plan(_: &ValidWukong, plan: &Plan) -> Vec<Planned> {
        vec![Planned { kind: Self::kind(&()).into_owned(), name: plan.virtual_machine.clone(), retain: false }]
    }

    fn build(wukong: &ValidWukong, plan: &Plan, _: &BuildInputs) -> Vec<Self> {
        vec![virtual_machine(wukong, plan)]
    }

    fn prepare(_: &mut Self, _: &Self) {}

    /// Of the status, only the conditions (RestartRequired) are read; KubeVirt's volume, snapshot and
    /// request lists are dropped. The operator sets no status, so no apply compares against them.
    fn trim(&mut self) {
        if let Some(status) = self.status.as_mut() {
            *status = VirtualMachineStatus { conditions: status.conditions.take(), ..Default::default() };
        }
    }
}

/// The VirtualMachine.
pub fn virtual_machine(wukong: &ValidWukong, plan: &Plan) -> VirtualMachine {
    let mut metadata = object_meta(wukong, plan.virtual_machine.clone());
    if let Some(annotation) = networks_annotation(plan) {
        metadata.annotations = Some(BTreeMap::from([(NETWORKS_ANNOTATION.to_string(), annotation)]));
    }
    let (disks, volumes) = disks_and_volumes(wukong, plan);
    let (interfaces, networks) = interfaces_and_networks(wukong, plan);
    let high_availability = wukong.spec.high_availability.clone().unwrap_or_default();
    let mut template_labels = labels(wukong);
    if let Some(anti_affinity) = &high_availability.anti_affinity {
        template_labels.insert(HA_GROUP_LABEL.to_string(), anti_affinity.group.clone());
    }
    let template_metadata = BTreeMap::from([("labels".to_string(), serde_json::to_value(template_labels).unwrap_or(Value::Null))]);
    VirtualMachine {
        metadata,
        spec: VirtualMachineSpec {
            run_strategy: Some(wukong.run_strategy.as_str().to_string()),
            template: VirtualMachineTemplate {
                metadata: Some(template_metadata),
                spec: Some(Box::new(VirtualMachineTemplateSpec {
                    domain: VirtualMachineTemplateSpecDomain {
                        cpu: Some(Box::new(VirtualMachineTemplateSpecDomainCpu {
                            cores: Some(wukong.spec.cpu as i32),
                            ..Default::default()
                        })),
                        memory: Some(Box::new(VirtualMachineTemplateSpecDomainMemory {
                            guest: Some(IntOrString::String(wukong.spec.memory.clone())),
                            ..Default::default()
                        })),
                        devices: VirtualMachineTemplateSpecDomainDevices {
                            disks: Some(disks),
                            interfaces: Some(interfaces),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                    networks: Some(networks),
                    volumes: Some(volumes),
                    node_selector: (!high_availability.node_selector.is_empty()).then(|| high_availability.node_selector.clone()),
                    tolerations: tolerations(&high_availability),
                    affinity: affinity(&high_availability),
                    eviction_strategy: wukong.spec.eviction_strategy.map(|strategy| strategy.as_str().to_string()),
                    ..Default::default()
                })),
            },
            ..Default::default()
        },
        status: None,
    }
}

fn disks_and_volumes(
    wukong: &ValidWukong,
    plan: &Plan,
) -> (Vec<VirtualMachineTemplateSpecDomainDevicesDisks>, Vec<VirtualMachineTemplateSpecVolumes>) {
    let mut disks = Vec::new();
    let mut volumes = Vec::new();
    for (disk, planned) in wukong.spec.disks.iter().zip(&plan.disks) {
        // Honoured for every existing claim, also one cloned from another namespace.
        let read_only = planned.existing.as_ref().is_some_and(|existing| existing.read_only);
        disks.push(VirtualMachineTemplateSpecDomainDevicesDisks {
            name: disk.name.clone(),
            boot_order: (disk.boot == Some(true)).then_some(1),
            disk: Some(Box::new(VirtualMachineTemplateSpecDomainDevicesDisksDisk {
                bus: Some(disk.bus.unwrap_or(DiskBus::Virtio).as_str().to_string()),
                readonly: read_only.then_some(true),
                ..Default::default()
            })),
            ..Default::default()
        });
        let mut volume = VirtualMachineTemplateSpecVolumes { name: disk.name.clone(), ..Default::default() };
        match &planned.volume {
            Volume::DataVolume(name) => {
                volume.data_volume =
                    Some(Box::new(VirtualMachineTemplateSpecVolumesDataVolume { name: name.clone(), ..Default::default() }));
            }
            Volume::BlankClaim(name) | Volume::ExistingClaim(name) => {
                volume.persistent_volume_claim = Some(Box::new(VirtualMachineTemplateSpecVolumesPersistentVolumeClaim {
                    claim_name: name.clone(),
                    read_only: read_only.then_some(true),
                    ..Default::default()
                }));
            }
        }
        volumes.push(volume);
    }
    if let Some(secret) = plan.cloud_init_secret.clone() {
        disks.push(VirtualMachineTemplateSpecDomainDevicesDisks {
            name: CLOUD_INIT_DISK.to_string(),
            disk: Some(Box::new(VirtualMachineTemplateSpecDomainDevicesDisksDisk {
                bus: Some(DiskBus::Virtio.as_str().to_string()),
                ..Default::default()
            })),
            ..Default::default()
        });
        volumes.push(VirtualMachineTemplateSpecVolumes {
            name: CLOUD_INIT_DISK.to_string(),
            cloud_init_no_cloud: Some(Box::new(VirtualMachineTemplateSpecVolumesCloudInitNoCloud {
                secret_ref: Some(Box::new(VirtualMachineTemplateSpecVolumesCloudInitNoCloudSecretRef { name: Some(secret.clone()) })),
                network_data_secret_ref: super::cloudinit::has_network_data(wukong)
                    .then(|| Box::new(VirtualMachineTemplateSpecVolumesCloudInitNoCloudNetworkDataSecretRef { name: Some(secret) })),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    (disks, volumes)
}

fn interfaces_and_networks(
    wukong: &ValidWukong,
    plan: &Plan,
) -> (Vec<VirtualMachineTemplateSpecDomainDevicesInterfaces>, Vec<VirtualMachineTemplateSpecNetworks>) {
    let planned = wukong.networks.iter().zip(&plan.networks);
    planned.map(|(parsed, planned)| (interface(parsed), network(wukong, parsed, planned.attachment.as_deref()))).unzip()
}

fn interface(parsed: &ParsedNetwork) -> VirtualMachineTemplateSpecDomainDevicesInterfaces {
    let mut interface = VirtualMachineTemplateSpecDomainDevicesInterfaces {
        name: parsed.network.name.clone(),
        mac_address: Some(parsed.mac.clone()),
        ..Default::default()
    };
    match parsed.network.network_type {
        NetworkType::Pod => interface.masquerade = Some(Box::new(VirtualMachineTemplateSpecDomainDevicesInterfacesMasquerade {})),
        NetworkType::Sriov => interface.sriov = Some(Box::new(VirtualMachineTemplateSpecDomainDevicesInterfacesSriov {})),
        NetworkType::Bridge | NetworkType::Vlan => {
            interface.bridge = Some(Box::new(VirtualMachineTemplateSpecDomainDevicesInterfacesBridge {}))
        }
    }
    interface
}

fn network(wukong: &ValidWukong, parsed: &ParsedNetwork, attachment: Option<&str>) -> VirtualMachineTemplateSpecNetworks {
    let mut network = VirtualMachineTemplateSpecNetworks { name: parsed.network.name.clone(), ..Default::default() };
    if let Some(attachment) = attachment {
        network.multus = Some(Box::new(VirtualMachineTemplateSpecNetworksMultus {
            network_name: format!("{}/{attachment}", wukong.namespace),
            ..Default::default()
        }));
    } else {
        network.pod = Some(Box::default());
    }
    network
}

fn tolerations(high_availability: &HighAvailability) -> Option<Vec<VirtualMachineTemplateSpecTolerations>> {
    if high_availability.tolerations.is_empty() {
        return None;
    }
    Some(
        high_availability
            .tolerations
            .iter()
            .map(|toleration| VirtualMachineTemplateSpecTolerations {
                key: toleration.key.clone(),
                operator: toleration.operator.map(|operator| operator.as_str().to_string()),
                value: toleration.value.clone(),
                effect: toleration.effect.map(|effect| effect.as_str().to_string()),
                toleration_seconds: toleration.toleration_seconds,
            })
            .collect(),
    )
}

fn affinity(high_availability: &HighAvailability) -> Option<Box<VirtualMachineTemplateSpecAffinity>> {
    let anti_affinity = high_availability.anti_affinity.as_ref()?;
    let topology_key = anti_affinity.topology_key.clone().unwrap_or_else(|| DEFAULT_TOPOLOGY_KEY.to_string());
    let match_labels = Some(BTreeMap::from([(HA_GROUP_LABEL.to_string(), anti_affinity.group.clone())]));
    let pod_anti_affinity = match anti_affinity.mode {
        AntiAffinityMode::Required => VirtualMachineTemplateSpecAffinityPodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![
                VirtualMachineTemplateSpecAffinityPodAntiAffinityRequiredDuringSchedulingIgnoredDuringExecution {
                    label_selector: Some(Box::new(VirtualMachineTemplateSpecAffinityPodAntiAffinityRequiredDuringSchedulingIgnoredDuringExecutionLabelSelector {
                        match_labels,
                        ..Default::default()
                    })),
                    topology_key,
                    ..Default::default()
                },
            ]),
            ..Default::default()
        },
        AntiAffinityMode::Preferred => VirtualMachineTemplateSpecAffinityPodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                VirtualMachineTemplateSpecAffinityPodAntiAffinityPreferredDuringSchedulingIgnoredDuringExecution {
                    pod_affinity_term: VirtualMachineTemplateSpecAffinityPodAntiAffinityPreferredDuringSchedulingIgnoredDuringExecutionPodAffinityTerm {
                        label_selector: Some(Box::new(
                            VirtualMachineTemplateSpecAffinityPodAntiAffinityPreferredDuringSchedulingIgnoredDuringExecutionPodAffinityTermLabelSelector {
                                match_labels,
                                ..Default::default()
                            },
                        )),
                        topology_key,
                        ..Default::default()
                    },
                    weight: 100,
                },
            ]),
            ..Default::default()
        },
    };
    Some(Box::new(VirtualMachineTemplateSpecAffinity { pod_anti_affinity: Some(Box::new(pod_anti_affinity)), ..Default::default() }))
}
