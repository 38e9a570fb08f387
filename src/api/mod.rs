//! The `Wukong` API (`vm.novasphere.dev/v1alpha1`): spec, status and the CRD.
//!
//! In: nothing. Out: the Rust types and [`crd`], the CustomResourceDefinition that
//! `wukong crd` prints and the deploy folder carries.

mod guard;
mod ippool;
mod spec;
mod status;

pub use guard::*;
pub use ippool::*;
pub use spec::*;
pub use status::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// A Kubernetes quantity (the API server's own grammar).
pub const QUANTITY_PATTERN: &str =
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// An RFC 1123 DNS label.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An RFC 1123 DNS subdomain.
pub const DNS_SUBDOMAIN_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// API group of the Wukong kind.
pub const GROUP: &str = "vm.novasphere.dev";

/// The CustomResourceDefinition of the Wukong kind.
pub fn crd() -> CustomResourceDefinition {
    Wukong::crd()
}

/// The CRD as YAML, exactly as `wukong crd` prints it.
pub fn crd_yaml() -> Result<String, crate::yaml::SerializeError> {
    crate::yaml::to_string(&crd())
}

/// Every CRD the operator serves, by the file name its copies carry
/// (`config/crd/` and the Helm chart's `crds/`): Wukong, IPPool, IPLease.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("wukongs.vm.novasphere.dev.yaml", Wukong::crd()),
        ("ippools.vm.novasphere.dev.yaml", IPPool::crd()),
        ("ipleases.vm.novasphere.dev.yaml", IPLease::crd()),
    ]
}

/// The YAML of the CRD whose file name is `file` (see [`crds`]), as `wukong crd --kind` prints it.
pub fn crd_yaml_of(file: &str) -> Option<Result<String, crate::yaml::SerializeError>> {
    crds().into_iter().find(|(name, _)| *name == file).map(|(_, crd)| crate::yaml::to_string(&crd))
}
