//! The validate step: decide whether the Wukong can be built.
//!
//! In: the Wukong; once its spec is valid, its plan, what the caches show and
//! what was resolved. Out: the validated Wukong ([`validate_spec`]), then the
//! inputs of the builders ([`check`]), or why not: an invalid spec, or refusals
//! that name the object at fault (a missing or unusable claim, a claim in use,
//! an ungranted cross-namespace reference, a missing password Secret, a name
//! taken by someone else, a disk that would shrink or change its image).
//! Pure: no client, no clock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use wukong_models::datavolume::DataVolume;

use super::observe::Observed;
use super::resolve::{PasswordLookup, Resolved};
use crate::api::Wukong;
use crate::children::BuildInputs;
use crate::children::plan::{Plan, Volume};
use crate::validate::{Problem, Problems, ValidWukong, quantity, validate};

/// Annotation a claim's owner sets to let Wukongs in other namespaces clone it:
/// a comma-separated list of namespaces, or `*`.
pub const CLONE_GRANT_ANNOTATION: &str = "vm.novasphere.dev/clone-to-namespaces";

/// A reason the cluster keeps the Wukong from being built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason for the condition and Event.
    pub reason: &'static str,
    /// The field and what is wrong.
    pub problem: Problem,
}

/// Errors of the validate step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// The spec itself is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(Problems),
    /// The spec is valid but the cluster does not allow building it yet.
    #[error("{}", describe(.0))]
    Refused(Vec<Refusal>),
}

fn describe(refusals: &[Refusal]) -> String {
    refusals.iter().map(|refusal| refusal.problem.to_string()).collect::<Vec<_>>().join("; ")
}

impl ValidateError {
    /// The condition reason: `InvalidSpec`, or the first refusal's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Refused(refusals) => refusals.first().map_or("Refused", |refusal| refusal.reason),
        }
    }
}

/// Validates the spec itself.
pub fn validate_spec(wukong: &Wukong) -> Result<ValidWukong, ValidateError> {
    validate(wukong).map_err(ValidateError::InvalidSpec)
}

/// Checks the facts the valid Wukong depends on; returns what the builders need.
pub fn check(valid: &ValidWukong, plan: &Plan, observed: &Observed, resolved: &Resolved) -> Result<BuildInputs, ValidateError> {
    let mut refusals = Vec::new();
    check_claims(valid, plan, observed, &mut refusals);
    check_owned_volumes(valid, plan, observed, &mut refusals);
    for (kind, name) in &observed.foreign {
        refusals.push(refusal(
            "NameConflict",
            "metadata.name",
            format!(
                "{kind} \"{}/{name}\" already exists and is not managed by this Wukong; rename the Wukong or remove it",
                valid.namespace
            ),
        ));
    }
    let passwords = passwords(valid, resolved, &mut refusals);
    if !refusals.is_empty() {
        return Err(ValidateError::Refused(refusals));
    }
    Ok(BuildInputs { passwords, addresses: BTreeMap::new() })
}

fn refusal(reason: &'static str, field: impl Into<String>, message: String) -> Refusal {
    Refusal { reason, problem: Problem { field: field.into(), message } }
}

fn check_claims(valid: &ValidWukong, plan: &Plan, observed: &Observed, refusals: &mut Vec<Refusal>) {
    for (index, reference) in &observed.existing_claims {
        let field = format!("spec.disks[{index}].existingPVC");
        let read_only =
            valid.spec.disks.get(*index).and_then(|disk| disk.existing_pvc.as_ref()).and_then(|existing| existing.read_only) == Some(true);
        let shown = format!("\"{}/{}\"", reference.namespace, reference.name);
        if reference.namespace != valid.namespace && has_clone(plan, observed, *index) {
            // The clone exists: the VM runs from its own copy, whatever became of the source or its grant.
            continue;
        }
        let Some(claim) = &reference.claim else {
            refusals.push(refusal("ClaimNotFound", field, format!("PersistentVolumeClaim {shown} does not exist")));
            continue;
        };
        let phase = claim.status.as_ref().and_then(|status| status.phase.clone()).unwrap_or_else(|| "Pending".to_string());
        if phase != "Bound" && !(phase == "Pending" && reference.waits_for_first_consumer && reference.namespace == valid.namespace) {
            refusals.push(refusal("ClaimNotBound", field.clone(), format!("PersistentVolumeClaim {shown} is {phase}, not Bound")));
        }
        let modes = access_modes(claim);
        let usable = modes.iter().any(|mode| mode == "ReadWriteOnce" || mode == "ReadWriteMany" || mode == "ReadWriteOncePod")
            || (read_only && modes.iter().any(|mode| mode == "ReadOnlyMany"));
        if !usable {
            refusals.push(refusal(
                "ClaimAccessMode",
                field.clone(),
                format!("PersistentVolumeClaim {shown} has access modes [{}]; a VM needs ReadWriteOnce or ReadWriteMany", modes.join(", ")),
            ));
        }
        if reference.namespace != valid.namespace && !is_granted(claim, &valid.namespace) {
            refusals.push(refusal(
                "CrossNamespaceNotGranted",
                field.clone(),
                format!(
                    "PersistentVolumeClaim {shown} is in another namespace and does not grant namespace \"{}\" (annotation {CLONE_GRANT_ANNOTATION})",
                    valid.namespace
                ),
            ));
        }
        if !read_only && !reference.read_write_users.is_empty() {
            refusals.push(refusal(
                "ClaimInUse",
                field,
                format!(
                    "PersistentVolumeClaim {shown} is used read-write by {}; attach it with readOnly: true",
                    reference.read_write_users.join(", ")
                ),
            ));
        }
    }
}

/// Whether the clone DataVolume of the cross-namespace disk at `index` exists.
fn has_clone(plan: &Plan, observed: &Observed, index: usize) -> bool {
    plan.disks.get(index).is_some_and(|disk| matches!(&disk.volume, Volume::DataVolume(name) if observed.data_volume(name).is_some()))
}

fn access_modes(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim.spec.as_ref().and_then(|spec| spec.access_modes.clone()).unwrap_or_default()
}

/// Whether the claim's namespace granted clones into `namespace`.
pub fn is_granted(claim: &PersistentVolumeClaim, namespace: &str) -> bool {
    let grant = claim.metadata.annotations.as_ref().and_then(|annotations| annotations.get(CLONE_GRANT_ANNOTATION));
    grant.is_some_and(|list| list.split(',').map(str::trim).any(|entry| entry == "*" || entry == namespace))
}

/// Volumes the operator made: no shrinking, no new image for an imported disk.
fn check_owned_volumes(valid: &ValidWukong, plan: &Plan, observed: &Observed, refusals: &mut Vec<Refusal>) {
    for (index, (disk, planned)) in valid.spec.disks.iter().zip(&plan.disks).enumerate() {
        if planned.existing.is_some() {
            continue;
        }
        let name = planned.volume.name();
        let claim = observed.volume_claim(name);
        let data_volume = observed.data_volume(name);
        match (&disk.image, data_volume, claim) {
            (Some(_), None, Some(_)) => refusals.push(refusal(
                "SourceChangeRefused",
                format!("spec.disks[{index}].image"),
                format!("the disk is a blank volume \"{name}\"; it cannot become an imported disk without losing its data (add a new disk instead)"),
            )),
            (None, Some(_), _) => refusals.push(refusal(
                "SourceChangeRefused",
                format!("spec.disks[{index}].image"),
                format!("the disk \"{name}\" was imported from an image; it cannot become a blank volume without losing its data (add a new disk instead)"),
            )),
            _ => {}
        }
        let claim_request = claim
            .and_then(|claim| claim.spec.as_ref())
            .and_then(|spec| spec.resources.as_ref())
            .and_then(|resources| resources.requests.as_ref())
            .and_then(|requests| requests.get("storage"))
            .map(|quantity| quantity.0.clone());
        // A DataVolume's own request is the size the disk was given: CDI makes
        // its claim larger than that (filesystem overhead), which is no shrink.
        let current = match data_volume {
            Some(data_volume) => data_volume_request(data_volume),
            None => claim_request,
        };
        if let (Some(current), Some(wanted)) = (current, valid.disk_sizes.get(index).copied().flatten())
            && quantity::parse(&current).is_ok_and(|bytes| wanted < bytes)
        {
            refusals.push(refusal(
                "DiskShrinkRefused",
                format!("spec.disks[{index}].size"),
                format!(
                    "\"{}\" is smaller than the volume's current \"{current}\"; volumes can grow but never shrink",
                    disk.size.clone().unwrap_or_default()
                ),
            ));
        }
        if let (Some(data_volume), Some(image)) = (data_volume, &disk.image) {
            let source = data_volume.spec.source.as_ref();
            let imported = source.and_then(|source| {
                source.registry.as_ref().and_then(|registry| registry.url.clone()).or(source.http.as_ref().map(|http| http.url.clone()))
            });
            if let Some(imported) = imported
                && &imported != image
            {
                refusals.push(refusal(
                    "ImageChangeRefused",
                    format!("spec.disks[{index}].image"),
                    format!("the disk was imported from \"{imported}\"; it cannot be re-imported from \"{image}\" without losing its data (add a new disk instead)"),
                ));
            }
        }
    }
}

/// The storage a DataVolume asks for (`spec.storage` or `spec.pvc`).
fn data_volume_request(data_volume: &DataVolume) -> Option<String> {
    let from_storage =
        data_volume.spec.storage.as_ref().and_then(|storage| storage.resources.as_ref()).and_then(|resources| resources.requests.as_ref());
    let from_claim = data_volume.spec.pvc.as_ref().and_then(|pvc| pvc.resources.as_ref()).and_then(|resources| resources.requests.as_ref());
    let request = from_storage.or(from_claim)?.get("storage")?;
    Some(match request {
        IntOrString::Int(bytes) => bytes.to_string(),
        IntOrString::String(quantity) => quantity.clone(),
    })
}

fn passwords(valid: &ValidWukong, resolved: &Resolved, refusals: &mut Vec<Refusal>) -> BTreeMap<String, String> {
    let mut passwords = BTreeMap::new();
    let users = valid.spec.cloud_init.as_ref().map(|cloud_init| cloud_init.users.as_slice()).unwrap_or_default();
    for (index, user) in users.iter().enumerate() {
        let Some(reference) = &user.password_secret_ref else { continue };
        let field = format!("spec.cloudInit.users[{index}].passwordSecretRef");
        match resolved.passwords.get(&index) {
            Some(PasswordLookup::Found(value)) => {
                passwords.insert(user.name.clone(), value.clone());
            }
            Some(PasswordLookup::KeyMissing) => refusals.push(refusal(
                "SecretKeyNotFound",
                field,
                format!("Secret \"{}/{}\" has no key \"{}\"", valid.namespace, reference.name, reference.key),
            )),
            Some(PasswordLookup::SecretMissing) | None => {
                refusals.push(refusal("SecretNotFound", field, format!("Secret \"{}/{}\" does not exist", valid.namespace, reference.name)))
            }
        }
    }
    passwords
}
