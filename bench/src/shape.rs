//! The Wukongs a benchmark creates.
//!
//! In: a shape name, a namespace and an index. Out: a Wukong of that shape and
//! the number of children the operator makes for it.

use wukong::api::{CloudInit, Disk, IpConfig, IpMode, Network, NetworkType, User, Wukong, WukongSpec};

/// Shapes of benchmark Wukongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Pod network + a VLAN network with a static IP, an image disk, a blank
    /// disk, cloud-init users: NAD, Secret, PVC, DataVolume, VM.
    Default,
    /// The pod network and one blank disk, no cloud-init: PVC and VM.
    Minimal,
}

impl Shape {
    /// Children the operator creates for one Wukong of this shape.
    pub fn children(self) -> usize {
        match self {
            Self::Default => 5,
            Self::Minimal => 2,
        }
    }
}

/// The `index`-th Wukong of a shape in `namespace`.
pub fn wukong(shape: Shape, namespace: &str, index: usize) -> Wukong {
    let name = format!("bench-{index:05}");
    let pod = Network { name: "default".to_string(), network_type: NetworkType::Pod, ..Network::default() };
    let blank = Disk { name: "data".to_string(), size: Some("10Gi".to_string()), ..Disk::default() };
    let spec = match shape {
        Shape::Minimal => {
            WukongSpec { cpu: 1, memory: "1Gi".to_string(), networks: vec![pod], disks: vec![blank], ..WukongSpec::default() }
        }
        Shape::Default => {
            let third = (index / 250) % 250;
            let fourth = index % 250 + 2;
            let vlan = Network {
                name: "mgmt".to_string(),
                network_type: NetworkType::Vlan,
                bridge: Some("br-mgmt".to_string()),
                vlan_id: Some(100),
                ip_config: Some(IpConfig {
                    mode: IpMode::Static,
                    address: Some(format!("10.100.{third}.{fourth}/16")),
                    gateway: Some("10.100.255.254".to_string()),
                    dns: vec!["10.100.255.253".to_string()],
                    pool: None,
                }),
                ..Network::default()
            };
            let system = Disk {
                name: "system".to_string(),
                size: Some("20Gi".to_string()),
                boot: Some(true),
                image: Some("docker://quay.io/containerdisks/fedora:40".to_string()),
                ..Disk::default()
            };
            let users = vec![User {
                name: "ops".to_string(),
                ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKey ops@bench".to_string()],
                sudo: Some(true),
                ..User::default()
            }];
            WukongSpec {
                cpu: 2,
                memory: "2Gi".to_string(),
                networks: vec![pod, vlan],
                disks: vec![system, blank],
                cloud_init: Some(CloudInit { users, user_data: None }),
                ..WukongSpec::default()
            }
        }
    };
    let mut wukong = Wukong::new(&name, spec);
    wukong.metadata.namespace = Some(namespace.to_string());
    wukong
}

#[cfg(test)]
mod tests {
    use wukong::children::plan;
    use wukong::validate::validate;

    use super::{Shape, wukong};

    #[test]
    fn shapes_are_valid_and_have_the_children_they_claim() {
        for shape in [Shape::Default, Shape::Minimal] {
            for index in [0, 1, 999, 70_000] {
                let valid = validate(&wukong(shape, "bench", index)).expect("valid benchmark wukong");
                assert_eq!(plan(&valid).children.len(), shape.children(), "{shape:?}");
            }
        }
    }
}
