//! What the operator's writes touched.
//!
//! In: two [`Sample`]s of request counters (the operator's or the stand-in's)
//! and the child kinds' resource plurals. Out: the writes (create, patch,
//! update, delete) between them, in total and split into children, finalizer,
//! status, Events, address leases and other. Leases are left out everywhere: leader election
//! renews its Lease every few seconds whatever the fleet does, so counting it
//! would make a converged operator look busy.

use std::collections::BTreeSet;

use serde::Serialize;
use wukong::children::{ChildKind, EachKind, for_each_kind};

use crate::scrape::Sample;

/// The verbs that write.
pub const WRITE_VERBS: &[&str] = &["create", "patch", "update", "delete"];

/// The resource of leader election's Lease, never counted as a write here.
const LEASES: &str = "leases";

/// Writes split by what they touched.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WriteSplit {
    /// Writes to a child kind's resource (`virtualmachines`, `secrets`, ...).
    pub children: f64,
    /// Writes to `wukongs` itself, not its status: the finalizer's patches.
    pub finalizer: f64,
    /// Writes to `wukongs/status`.
    pub status: f64,
    /// Events written (`events`).
    pub events: f64,
    /// Address leases written (`ipleases`): one per static or pool address.
    pub addresses: f64,
    /// Any other resource.
    pub other: f64,
}

impl WriteSplit {
    /// The writes of `after` since `before`; `children` holds the child kinds' plurals.
    pub fn between(before: &Sample, after: &Sample, children: &BTreeSet<String>) -> WriteSplit {
        let mut split = WriteSplit::default();
        for (kind, writes) in write_deltas(before, after) {
            let resource = kind.split('/').next().unwrap_or_default();
            let part = match kind.as_str() {
                "wukongs" => &mut split.finalizer,
                "wukongs/status" => &mut split.status,
                "events" => &mut split.events,
                "ipleases" => &mut split.addresses,
                _ if children.contains(resource) => &mut split.children,
                _ => &mut split.other,
            };
            *part += writes;
        }
        split
    }

    /// Every write of the split.
    pub fn total(&self) -> f64 {
        self.children + self.finalizer + self.status + self.events + self.addresses + self.other
    }

    /// Writes to objects: everything but Events.
    pub fn objects(&self) -> f64 {
        self.total() - self.events
    }

    /// Each part divided by `count` (per Wukong).
    pub fn per(&self, count: f64) -> WriteSplit {
        WriteSplit {
            children: self.children / count,
            finalizer: self.finalizer / count,
            status: self.status / count,
            events: self.events / count,
            addresses: self.addresses / count,
            other: self.other / count,
        }
    }
}

/// Writes of `after` since `before` by kind, Leases left out.
fn write_deltas<'a>(before: &'a Sample, after: &'a Sample) -> impl Iterator<Item = (&'a String, f64)> + 'a {
    after
        .requests
        .iter()
        .filter(|((verb, kind), _)| WRITE_VERBS.contains(&verb.as_str()) && kind != LEASES)
        .map(|(key, value)| (&key.1, value - before.requests.get(key).copied().unwrap_or(0.0)))
}

/// Every write of `after` since `before` (Events included, Leases left out).
pub fn total_writes(before: &Sample, after: &Sample) -> f64 {
    // A fold from +0.0: an empty `sum` of floats is -0.0.
    write_deltas(before, after).fold(0.0, |total, (_, writes)| total + writes)
}

/// The resource plural of every registered child kind.
pub fn child_plurals() -> BTreeSet<String> {
    struct Plurals(BTreeSet<String>);
    impl EachKind for Plurals {
        fn kind<K: ChildKind>(&mut self) {
            self.0.insert(K::plural(&()).into_owned());
        }
    }
    let mut plurals = Plurals(BTreeSet::new());
    for_each_kind(&mut plurals);
    plurals.0
}

#[cfg(test)]
mod tests {
    use super::{WriteSplit, child_plurals, total_writes};
    use crate::scrape::parse;

    #[test]
    fn splits_writes_by_what_they_touched() {
        let before = parse("wukong_kube_requests_total{kind=\"wukongs\",verb=\"patch\"} 1\n");
        let after = parse(
            "wukong_kube_requests_total{kind=\"wukongs\",verb=\"patch\"} 3\n\
             wukong_kube_requests_total{kind=\"wukongs/status\",verb=\"patch\"} 4\n\
             wukong_kube_requests_total{kind=\"wukongs\",verb=\"get\"} 9\n\
             wukong_kube_requests_total{kind=\"virtualmachines\",verb=\"patch\"} 5\n\
             wukong_kube_requests_total{kind=\"persistentvolumeclaims\",verb=\"delete\"} 1\n\
             wukong_kube_requests_total{kind=\"events\",verb=\"create\"} 6\n\
             wukong_kube_requests_total{kind=\"configmaps\",verb=\"create\"} 7\n\
             wukong_kube_requests_total{kind=\"leases\",verb=\"update\"} 8\n",
        );
        let split = WriteSplit::between(&before, &after, &child_plurals());
        assert_eq!(split, WriteSplit { children: 6.0, finalizer: 2.0, status: 4.0, events: 6.0, addresses: 0.0, other: 7.0 });
        assert_eq!(split.total(), 25.0);
        assert_eq!(split.objects(), 19.0);
        assert_eq!(total_writes(&before, &after), 25.0, "leases and reads are not writes here");
        assert_eq!(split.per(2.0).status, 2.0);
    }

    #[test]
    fn no_writes_is_positive_zero() {
        let none = total_writes(&Default::default(), &Default::default());
        assert!(none == 0.0 && none.is_sign_positive(), "{none} prints as -0.00 otherwise");
    }

    #[test]
    fn child_plurals_are_the_registered_kinds() {
        let plurals = child_plurals();
        for plural in ["network-attachment-definitions", "secrets", "persistentvolumeclaims", "datavolumes", "virtualmachines"] {
            assert!(plurals.contains(plural), "{plural} in {plurals:?}");
        }
    }
}
