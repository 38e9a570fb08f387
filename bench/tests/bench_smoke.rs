//! A tiny smoke run of `wukong-bench --in-memory`: the real operator binary
//! against the in-memory API server over HTTP, five Wukongs created, converged
//! and deleted. No timing is asserted; the counts are.

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
    let writes = report["writes_per_wukong"].as_f64().expect("writes_per_wukong");
    assert!(writes >= 7.0, "at least the finalizer, five children and one status: {writes}");
    for key in ["converge_seconds", "latency_seconds", "reads_per_wukong", "peak_rss_bytes", "delete_seconds"] {
        assert!(!report[key].is_null(), "missing {key} in {report}");
    }
    assert!(stdout.contains("writes per wukong"), "{stdout}");
}
