//! The KubeVirt VirtualMachineInstanceMigration of a live-migration request.
//!
//! In: a validated Wukong whose status acknowledged its current
//! `spec.migration` token (and the plan). Out: one migration named
//! `<wukong>-migration-<hash of the token>` for the VM's instance, with the
//! request's node selector as KubeVirt's `addedNodeSelector`. Planned only
//! while that migration is not finished: a finished one (or one of an older
//! token) is no longer planned, so the generic orphan removal deletes it at
//! the next change of the spec, and the Wukong's cleanup deletes it with the rest.

use kube::Resource;
use wukong_models::virtualmachineinstancemigration::{VirtualMachineInstanceMigration, VirtualMachineInstanceMigrationSpec};

use super::kind::{BuildInputs, ChildKind, Permission, Planned};
use super::meta::{MANAGED_BY_LABEL, MANAGER, object_meta};
use super::plan::Plan;
use crate::api::Wukong;
use crate::validate::ValidWukong;

impl ChildKind for VirtualMachineInstanceMigration {
    const PERMISSIONS: &'static [Permission] = &[Permission {
        group: "kubevirt.io",
        resource: "virtualmachineinstancemigrations",
        // Created with server-side apply and never changed (the spec is immutable).
        verbs: &["list", "watch", "create", "patch", "delete"],
    }];
    const RETAINABLE: bool = false;
    const REFERENCED: bool = false;
    // A migration names the running instance: after the VirtualMachine.
    const WAVE: u8 = 2;

    fn is_referenced_by(&self, _: &Wukong) -> bool {
        false
    }

    fn cache_selector() -> Option<String> {
        // Only the operator's own migrations: others are none of its business.
        Some(format!("{MANAGED_BY_LABEL}={MANAGER}"))
    }

    fn plan(wukong: &ValidWukong, _: &Plan) -> Vec<Planned> {
        let name = wukong.migration_in_progress.clone();
        name.map(|name| Planned { kind: Self::kind(&()).into_owned(), name, retain: false }).into_iter().collect()
    }

    fn build(wukong: &ValidWukong, plan: &Plan, _: &BuildInputs) -> Vec<Self> {
        let Some(name) = plan.names::<Self>().next() else { return Vec::new() };
        let node_selector = wukong.spec.migration.as_ref().map(|migration| migration.node_selector.clone()).unwrap_or_default();
        vec![VirtualMachineInstanceMigration {
            metadata: object_meta(wukong, name.to_string()),
            spec: VirtualMachineInstanceMigrationSpec {
                vmi_name: Some(plan.virtual_machine.clone()),
                added_node_selector: (!node_selector.is_empty()).then_some(node_selector),
                ..VirtualMachineInstanceMigrationSpec::default()
            },
            status: None,
        }]
    }

    fn prepare(desired: &mut Self, current: &Self) {
        // KubeVirt refuses changes of a migration's spec: a node selector edited
        // under the same token does not touch the running migration.
        desired.spec = current.spec.clone();
    }

    fn trim(&mut self) {}
}
