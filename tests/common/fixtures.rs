//! Objects the controller tests share.
//!
//! In: nothing. Out: the web-server-01 example, the existing claim it
//! references, and a Wukong with one retained disk, as YAML.

#![allow(dead_code)]

/// The SPEC's web server: VLAN with a static address, imported, existing and blank disks.
pub const WEB: &str = include_str!("../../examples/web-server-01.yaml");

/// The existing claim web-server-01's `data` disk references, Bound.
pub const DATA_PVC: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-pvc, namespace: prod}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 20Gi}}
status: {phase: Bound, capacity: {storage: 20Gi}}
"#;

/// Two blank disks, the second one retained when it (or the Wukong) goes.
pub const RETAINING: &str = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {name: keeper, namespace: default}
spec:
  cpu: 2
  memory: 4Gi
  networks: [{name: default, type: pod}]
  disks:
    - {name: scratch, size: 10Gi}
    - {name: archive, size: 20Gi, deletionPolicy: Retain}
"#;

/// A static lease the operator made (by its label) an hour before the tests' clock, for a holder in `prod` on
/// network `mgmt`: what the sweep looks at.
pub fn operator_lease(name: &str, address: &str, holder: &str, holder_uid: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "IPLease",
        "metadata": {"name": name, "creationTimestamp": "2026-11-22T08:00:00Z",
                     "labels": {"app.kubernetes.io/managed-by": "wukong-operator"}},
        "spec": {"segment": "vlan-100", "address": address, "mode": "static",
                 "holder": {"namespace": "prod", "name": holder, "uid": holder_uid, "network": "mgmt",
                            "creationTimestamp": "2026-11-22T08:00:00Z"}}
    })
}
