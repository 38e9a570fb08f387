//! Validation of `spec.highAvailability`.
//!
//! In: the placement section (and the migration's node selector). Out:
//! problems for node selector labels, tolerations and the anti-affinity group.

use super::Collector;
use super::names::{is_label_key, is_label_value};
use crate::api::{HighAvailability, TaintEffect, TolerationOperator};

pub(crate) fn check(collector: &mut Collector, high_availability: &HighAvailability) {
    let path = "spec.highAvailability";
    check_node_selector(collector, &format!("{path}.nodeSelector"), &high_availability.node_selector);
    for (index, toleration) in high_availability.tolerations.iter().enumerate() {
        let field = format!("{path}.tolerations[{index}]");
        if let Some(key) = &toleration.key
            && !key.is_empty()
            && !is_label_key(key)
        {
            collector.push(format!("{field}.key"), format!("\"{key}\" is not a valid taint key"));
        }
        let exists = toleration.operator == Some(TolerationOperator::Exists);
        // Even an empty value: the CRD rule is `!has(self.value)`.
        if exists && toleration.value.is_some() {
            collector.push(format!("{field}.value"), "an Exists toleration takes no value");
        }
        if !exists && toleration.key.as_deref().unwrap_or_default().is_empty() {
            collector.push(format!("{field}.key"), "is required unless operator is Exists");
        }
        if let Some(value) = &toleration.value
            && !is_label_value(value)
        {
            collector.push(format!("{field}.value"), format!("\"{value}\" is not a valid taint value"));
        }
        // The API server refuses the launcher pod otherwise.
        if toleration.toleration_seconds.is_some() && toleration.effect != Some(TaintEffect::NoExecute) {
            collector.push(format!("{field}.tolerationSeconds"), "applies only to effect NoExecute");
        }
    }
    if let Some(anti_affinity) = &high_availability.anti_affinity {
        if anti_affinity.group.is_empty() || !is_label_value(&anti_affinity.group) {
            collector.push(format!("{path}.antiAffinity.group"), format!("\"{}\" is not a valid label value", anti_affinity.group));
        }
        if let Some(topology) = &anti_affinity.topology_key
            && !is_label_key(topology)
        {
            collector.push(format!("{path}.antiAffinity.topologyKey"), format!("\"{topology}\" is not a valid label key"));
        }
    }
}

/// Checks the labels of a node selector at `path`.
pub(crate) fn check_node_selector(collector: &mut Collector, path: &str, selector: &std::collections::BTreeMap<String, String>) {
    for (key, value) in selector {
        if !is_label_key(key) {
            collector.push(path, format!("\"{key}\" is not a valid label key"));
        }
        if !is_label_value(value) {
            collector.push(format!("{path}.{key}"), format!("\"{value}\" is not a valid label value"));
        }
    }
}
