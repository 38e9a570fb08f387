//! What the bench's tests share: the `wukong` binary they run.
//!
//! In: the `wukong-bench` binary cargo built for the test. Out: the sibling
//! `wukong` binary, or a failed test that says how to build it.

use std::path::PathBuf;

/// The `wukong` binary next to `wukong-bench`, where `cargo nextest run
/// --workspace` builds it. `cargo nextest run -p wukong-bench` alone does not
/// build (nor rebuild) it, so the test fails saying so rather than running
/// without an operator.
pub fn wukong_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_wukong-bench"));
    let binary = bench.with_file_name(format!("wukong{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the wukong binary \"{}\" is missing: the bench starts it. Run `cargo nextest run --workspace` (it builds every binary), \
         or `cargo build -p wukong` before `cargo nextest run -p wukong-bench`",
        binary.display()
    );
    binary
}
