//! A tiny smoke run of `wukong-bench --in-memory`: the real operator binary
//! against the in-memory API server over HTTP, five Wukongs created, converged
//! and deleted. No timing is asserted; the counts are: the operator's writes
//! by what they touched, the stand-in's, the floor's and the delete's.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::process::Command;

#[test]
fn a_small_fleet_converges_with_no_idle_writes_and_nothing_left() {
    // The bench fails at once without it too; this says how to build it.
    common::wukong_binary();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
    let out = std::env::temp_dir().join(format!("wukong-bench-smoke-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_wukong-bench"))
        .args(["--in-memory", "--fake-kubevirt", "--count", "5", "--idle-seconds", "1", "--timeout", "60"])
        .arg("--operator-metrics")
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run wukong-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wukong-bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("report file")).expect("json report");
    let _ = std::fs::remove_file(&out);
    assert_eq!(report["count"], 5);
    assert_eq!(report["unconverged"], 0);
    assert_eq!(report["missing_children"], 0);
    assert_eq!(report["leftover_children"], 0);
    assert_eq!(report["idle_writes"], 0.0, "a converged fleet writes nothing");
    assert_eq!(report["quiet"], true, "the operator went quiet");

    let number = |value: &serde_json::Value, key: &str| value[key].as_f64().unwrap_or_else(|| panic!("missing {key} in {value}"));
    let split = &report["operator_writes_per_wukong"];
    assert_eq!(number(split, "children"), 5.0, "each of the five children written once: {split}");
    assert_eq!(number(split, "finalizer"), 1.0, "one finalizer patch per Wukong: {split}");
    assert!(number(split, "status") >= 1.0, "at least one status write per Wukong: {split}");
    assert_eq!(number(split, "other"), 0.0, "nothing but children, Wukongs and Events: {split}");
    assert_eq!(number(split, "addresses"), 1.0, "one lease per Wukong for its static address: {split}");
    let objects = number(split, "children") + number(split, "finalizer") + number(split, "status") + number(split, "addresses");
    assert_eq!(number(&report, "writes_per_wukong"), objects, "writes_per_wukong is the split without Events");
    assert_eq!(number(&report, "events_per_wukong"), number(split, "events"));
    let stand_in = number(&report, "stand_in_writes_per_wukong");
    assert!(stand_in >= 5.0, "an instance, an import's claim and status, two claims bound: {stand_in}");

    let run_writes = 5.0 * (objects + number(split, "events") + stand_in);
    assert_eq!(number(&report, "floor_writes"), run_writes.round(), "the floor writes what the operator and the stand-in wrote");
    assert!(number(&report, "floor_object_bytes") > 0.0);
    assert_eq!(report["delete_objects"], 5 * 8, "each Wukong, its five children, its instance and its import's claim");
    for key in ["converge_seconds", "status_converge_seconds", "latency_seconds", "reads_per_wukong", "peak_rss_bytes", "delete_seconds"] {
        assert!(!report[key].is_null(), "missing {key} in {report}");
    }
    for key in ["floor_seconds", "ratio", "delete_floor_seconds", "delete_ratio"] {
        assert!(report[key].as_f64().is_some(), "missing {key} in {report}");
    }
    for row in ["children / finalizer / status", "stand-in writes per wukong", "floor", "delete floor"] {
        assert!(stdout.contains(row), "no {row} row in {stdout}");
    }
}
