//! `--operator-cmd` with a shell that wraps the operator instead of `exec`ing
//! it: when the bench ends, nothing the command started is left running.
//!
//! In: `wukong-bench --in-memory` (one Wukong) with the operator command
//! `sh -c '<wukong> run ... & echo $$ $! > <file>; wait'`, so a shell sits
//! between the bench and the real operator. Out: proof that the shell and the
//! operator are both gone when the bench exits and the metrics port is free
//! (SIGTERM to the shell alone left the operator running, serving the next
//! run's metrics port).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

mod common;

use std::fs::File;
use std::process::{Command, Stdio};

/// Whether `pid` runs (a zombie, dead but not reaped, does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X', 'x'])))
}

#[test]
fn a_shell_wrapping_the_operator_leaves_no_process_behind() {
    let wukong = common::wukong_binary();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
    let pids = std::env::temp_dir().join(format!("wukong-bench-wrapped-{}.pids", std::process::id()));
    let command =
        format!("'{}' run --metrics-addr 127.0.0.1:{port} --concurrency 4 & echo $$ $! > '{}'; wait", wukong.display(), pids.display());
    // Output to files, not pipes: a surviving operator would hold a pipe open
    // and keep the test waiting for its end instead of failing.
    let log = |stream: &str| std::env::temp_dir().join(format!("wukong-bench-wrapped-{}.{stream}", std::process::id()));
    let (stdout, stderr) = (log("stdout"), log("stderr"));
    let status = Command::new(env!("CARGO_BIN_EXE_wukong-bench"))
        .args(["--in-memory", "--fake-kubevirt", "--count", "1", "--idle-seconds", "0", "--timeout", "60"])
        .arg("--operator-metrics")
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .arg("--operator-cmd")
        .arg(&command)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).expect("stdout file"))
        .stderr(File::create(&stderr).expect("stderr file"))
        .status()
        .expect("run wukong-bench");
    let output = [&stdout, &stderr].map(|path| std::fs::read_to_string(path).unwrap_or_default());
    let _ = [&stdout, &stderr].map(std::fs::remove_file);
    assert!(status.success(), "wukong-bench failed:\n{}\n{}", output[0], output[1]);

    let text = std::fs::read_to_string(&pids).expect("the command wrote its pids");
    let _ = std::fs::remove_file(&pids);
    let [shell, operator] = text.split_whitespace().map(|pid| pid.parse::<i32>().expect("a pid")).collect::<Vec<_>>()[..] else {
        panic!("two pids in {text:?}")
    };
    let left: Vec<i32> = [shell, operator].into_iter().filter(|pid| running(*pid)).collect();
    // A failed test leaves nothing running either.
    for pid in &left {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_raw(*pid).unwrap(), rustix::process::Signal::KILL);
    }
    assert!(left.is_empty(), "outlived the bench: {left:?} (the shell is {shell}, the operator {operator})");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "something still serves the metrics port {port}");
}
