//! The shipped `wukong` binary carries no test machinery.
//!
//! In: the workspace's manifests and lock file, through `cargo tree` (offline,
//! locked: it reads, never resolves anew nor downloads). Out: proof that the
//! in-memory API server (`fake-apiserver`) is not among the `wukong` package's
//! normal dependencies, direct or transitive; it is a dev-dependency for the
//! tests and a dependency of the separate `wukong-bench` crate only.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

use std::process::Command;

/// Crates only tests and the benchmark may use.
const TEST_ONLY: &[&str] = &["fake-apiserver", "wukong-bench"];

#[test]
fn the_wukong_package_has_no_test_only_crate_among_its_normal_dependencies() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "--manifest-path", manifest, "-p", "wukong", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&output.stderr));
    // One package per line, "name vX.Y.Z (path)": the names of the whole normal dependency tree.
    let names: Vec<&str> = stdout.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(names.contains(&"wukong-models") && names.contains(&"kube"), "not the tree of wukong:\n{stdout}");
    for crate_name in TEST_ONLY {
        assert!(!names.contains(crate_name), "{crate_name} is a normal dependency of wukong:\n{stdout}");
    }
}
