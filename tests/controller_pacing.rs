//! Status pacing through the controller: how long a converging Wukong's
//! intermediate statuses are held is counted from when its VM was built, so a
//! Wukong the operator reaches late (a burst, a loaded API server) still gets
//! its window.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::time::Duration;

use common::fixtures::{DATA_PVC, WEB};
use common::harness::Harness;
use serde_json::Value;
use wukong::controller::status::pacing::Pacing;

const PACING: Pacing = Pacing { settle: Duration::from_secs(60), progress_interval: Duration::from_secs(5) };

/// The Wukong, created long before the operator reaches it.
fn old_web() -> String {
    WEB.replacen("metadata:\n", "metadata:\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n", 1)
}

/// A harness whose clock reads `seconds` after the VM's creation, after the pass that built the children.
async fn built(seconds: i64) -> Harness {
    let harness = Harness::with_pacing(PACING);
    harness.create(DATA_PVC);
    harness.create_wukong(&old_web());
    harness.reconcile("prod", "web-server-01").await.expect("the pass that builds the children");
    let vm: Value = harness.api.get("kubevirt.io/v1", "virtualmachines", Some("prod"), "web-server-01-vm").expect("vm");
    let created = vm["metadata"]["creationTimestamp"].as_str().expect("creation time");
    let created = chrono::DateTime::parse_from_rfc3339(created).expect("rfc 3339");
    harness.set_time(&(created + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    harness.api.clear_requests();
    harness
}

fn status_writes(harness: &Harness) -> usize {
    harness.write_summary().iter().filter(|write| write.contains("wukongs/web-server-01/status")).count()
}

#[tokio::test]
async fn a_wukong_reached_late_still_holds_its_intermediate_status_after_its_vm_is_built() {
    let harness = built(10).await;
    assert_eq!(harness.wukong("prod", "web-server-01").expect("wukong")["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    harness.reconcile("prod", "web-server-01").await.expect("a pass while the VM has no instance yet");
    assert_eq!(status_writes(&harness), 0, "held: {:?}", harness.write_summary());
}

#[tokio::test]
async fn the_window_ends_a_settle_period_after_the_vm_was_built() {
    let harness = built(61).await;
    harness.reconcile("prod", "web-server-01").await.expect("a pass while the VM has no instance yet");
    assert_eq!(status_writes(&harness), 1, "written: {:?}", harness.write_summary());
    assert_eq!(harness.status("prod", "web-server-01").phase.map(|phase| phase.as_str()), Some("Creating"));
}
