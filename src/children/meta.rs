//! Metadata every child carries: name, namespace, labels and the controller
//! owner reference.
//!
//! In: a validated Wukong and a child name. Out: the child's `ObjectMeta`. The
//! owner reference is left out when the Wukong's UID is unknown (offline render).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::GROUP;
use crate::validate::ValidWukong;

/// `app.kubernetes.io/name` of every child.
pub const APP_NAME: &str = "wukong";
/// `app.kubernetes.io/managed-by` of every child; also the field manager.
pub const MANAGER: &str = "wukong-operator";
/// Label key carrying the Wukong's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label key marking objects this operator manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Label key of the application name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// The operator's labels for the children of one Wukong.
pub fn labels(wukong: &ValidWukong) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), wukong.name.clone()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
    ])
}

/// The controller owner reference to the Wukong, when its UID is known.
pub fn owner_reference(wukong: &ValidWukong) -> Option<OwnerReference> {
    wukong.uid.as_ref().map(|uid| OwnerReference {
        api_version: format!("{GROUP}/v1alpha1"),
        kind: "Wukong".to_string(),
        name: wukong.name.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Metadata of a child named `name`.
pub fn object_meta(wukong: &ValidWukong, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(wukong.namespace.clone()),
        labels: Some(labels(wukong)),
        owner_references: owner_reference(wukong).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// Annotation on operator-created volumes recording the disk's deletion policy
/// when it is `Retain`, so a volume whose disk left the spec is still kept.
pub const DELETION_POLICY_ANNOTATION: &str = "vm.novasphere.dev/deletion-policy";
