//! The operator process a benchmark starts and stops, and the `wukong` binary
//! `--in-memory` starts.
//!
//! In: a shell command (run with `sh -c`) and the kubeconfig to give it. Out:
//! an [`Operator`], the command running in a process group of its own, and
//! [`Operator::stop`]: SIGTERM to the whole group, then SIGKILL to it after a
//! grace period. A command that does not `exec` the operator leaves a shell
//! between the bench and the operator; signalling the group, not the shell, is
//! what reaches the operator. Only that group is ever signalled, never the
//! bench's own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::run::BenchError;

/// How long [`Operator::stop`] gives the operator to stop after SIGTERM (it
/// releases a lease it holds) before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long [`Operator::stop`] waits for the group to be gone after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How often [`Operator::stop`] looks whether the group is gone.
const POLL: Duration = Duration::from_millis(50);

/// The `wukong` binary next to this executable: cargo builds every binary of
/// the workspace into one directory (`target/<profile>/`). From a test binary
/// (in `target/<profile>/deps/`) the one a directory up is also accepted.
pub fn wukong_binary() -> Result<PathBuf, BenchError> {
    let name = format!("wukong{}", std::env::consts::EXE_SUFFIX);
    let directory = std::env::current_exe().ok().and_then(|executable| executable.parent().map(Path::to_path_buf)).unwrap_or_default();
    let mut candidates = vec![directory.join(&name)];
    if directory.ends_with("deps")
        && let Some(parent) = directory.parent()
    {
        candidates.push(parent.join(&name));
    }
    match candidates.iter().find(|candidate| candidate.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(BenchError::OperatorBinary { path: candidates.swap_remove(0) }),
    }
}

/// The operator command, running in a process group of its own.
pub struct Operator {
    /// The command, for errors.
    command: String,
    /// The shell running the command; it leads the group.
    shell: tokio::process::Child,
    /// The process group (the shell's pid); `None` once stopped.
    group: Option<Pid>,
}

impl Operator {
    /// Starts `sh -c command` as the leader of a new process group, with
    /// `KUBECONFIG` set to `kubeconfig` when given. Its standard output goes to
    /// the bench's standard error (standard output is the report).
    pub fn start(command: &str, kubeconfig: Option<&Path>) -> Result<Operator, BenchError> {
        let mut process = tokio::process::Command::new("sh");
        process.arg("-c").arg(command).process_group(0).kill_on_drop(true);
        process.stdout(Stdio::from(std::io::stderr()));
        if let Some(path) = kubeconfig {
            process.env("KUBECONFIG", path);
        }
        let shell = process.spawn().map_err(|source| BenchError::Operator { command: command.to_string(), source })?;
        // A fresh child always has an id; it is only gone once the child is reaped.
        let group = shell.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        Ok(Operator { command: command.to_string(), shell, group })
    }

    /// The process group, until stopped.
    pub fn group(&self) -> Option<Pid> {
        self.group
    }

    /// Fails when the command has already exited unsuccessfully: the operator
    /// cannot come to serve metrics then (a command that puts the operator in
    /// the background and exits 0 passes).
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.shell.try_wait() {
            Ok(Some(status)) if !status.success() => Err(BenchError::OperatorExited { command: self.command.clone(), status }),
            _ => Ok(()),
        }
    }

    /// Stops every process of the group: SIGTERM, up to `grace` for all of
    /// them to exit, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        let Some(group) = self.group.take() else { return };
        signal_group(group, Signal::TERM);
        if self.wait_until_gone(group, grace).await {
            return;
        }
        signal_group(group, Signal::KILL);
        self.wait_until_gone(group, KILL_WAIT).await;
    }

    /// Waits up to `timeout` until no process of `group` runs; reaps the
    /// shell on the way. Answers whether the group is gone.
    async fn wait_until_gone(&mut self, group: Pid, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            // The shell is our child: until reaped it stays in the group as a zombie.
            let _ = self.shell.try_wait();
            if !group_running(group) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Operator {
    /// An operator that was not stopped (an error ended the run) is killed,
    /// its whole group with it.
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            signal_group(group, Signal::KILL);
        }
    }
}

/// Sends `signal` to every process of `group`. Never to the bench's own group,
/// nor to group 1 (`kill(-1)` would reach every process it may signal).
fn signal_group(group: Pid, signal: Signal) {
    if group == Pid::INIT || group == rustix::process::getpgrp() {
        return;
    }
    // ESRCH (the group is already gone) is the only expected error.
    let _ = rustix::process::kill_process_group(group, signal);
}

/// Whether a process of `group` still runs. Zombies do not count: an orphan
/// is reparented to init, and an init that does not reap (as in some
/// containers) would otherwise keep the group alive forever.
fn group_running(group: Pid) -> bool {
    if rustix::process::test_kill_process_group(group) == Err(rustix::io::Errno::SRCH) {
        return false;
    }
    running_members(group).is_none_or(|count| count > 0)
}

/// How many processes of `group` run (neither zombie nor dead), from `/proc`;
/// `None` where `/proc` cannot be read.
fn running_members(group: Pid) -> Option<usize> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let count = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|byte| byte.is_ascii_digit())))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| is_running_member(stat, group))
        .count();
    Some(count)
}

/// Whether a `/proc/<pid>/stat` line is of a process in `group` that is
/// neither a zombie nor dead.
fn is_running_member(stat: &str, group: Pid) -> bool {
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let process_group = fields.nth(1).and_then(|field| field.parse::<i32>().ok());
    process_group == Some(group.as_raw_pid()) && !matches!(state, Some("Z" | "X" | "x"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::{Operator, is_running_member, running_members};

    /// A file name of its own for each test.
    fn pid_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wukong-bench-{name}-{}.pids", std::process::id()))
    }

    /// The pids the command wrote (the shell's and its child's), waiting for them to be written.
    async fn read_pids(path: &Path) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.ends_with('\n') {
                let _ = std::fs::remove_file(path);
                return text.split_whitespace().map(|pid| pid.parse().expect("a pid")).collect();
            }
            assert!(Instant::now() < deadline, "the command did not write its pids to \"{}\"", path.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `pid` runs (a zombie does not).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X', 'x'])))
    }

    /// A shell that runs a long child and waits for it, as a command without `exec` does.
    fn wrapping_shell(pids: &Path, prologue: &str) -> String {
        format!("{prologue}sleep 300 & echo $$ $! > '{}'; wait", pids.display())
    }

    #[tokio::test]
    async fn stopping_a_shell_that_wraps_a_long_running_child_leaves_nothing_behind() {
        let pids = pid_file("wrapped");
        let operator = Operator::start(&wrapping_shell(&pids, ""), None).expect("start");
        let group = operator.group().expect("a group");
        let [shell, child] = read_pids(&pids).await[..] else { panic!("two pids") };
        assert_eq!(shell, group.as_raw_pid(), "the shell leads the group");
        assert!(running(child), "the child runs");
        assert_eq!(running_members(group), Some(2));

        operator.stop(Duration::from_secs(30)).await;
        assert!(!running(shell), "the shell is gone");
        assert!(!running(child), "the shell's child is gone too");
        assert_eq!(running_members(group), Some(0));
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let pids = pid_file("stubborn");
        // Ignored signals stay ignored in the child.
        let operator = Operator::start(&wrapping_shell(&pids, "trap '' TERM; "), None).expect("start");
        let [shell, child] = read_pids(&pids).await[..] else { panic!("two pids") };

        operator.stop(Duration::from_millis(200)).await;
        assert!(!running(shell), "the shell is gone");
        assert!(!running(child), "the shell's child is gone too");
    }

    #[tokio::test]
    async fn dropping_an_operator_that_was_not_stopped_kills_its_group() {
        let pids = pid_file("dropped");
        let operator = Operator::start(&wrapping_shell(&pids, ""), None).expect("start");
        let group = operator.group().expect("a group");
        let [_, child] = read_pids(&pids).await[..] else { panic!("two pids") };

        drop(operator);
        let deadline = Instant::now() + Duration::from_secs(30);
        while running(child) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!running(child), "the shell's child is gone");
        assert_eq!(running_members(group), Some(0));
    }

    #[test]
    fn reads_state_and_group_from_proc_stat() {
        let group = rustix::process::Pid::from_raw(4242).expect("a pid");
        assert!(is_running_member("4243 (sleep) S 4242 4242 4242 0 -1 4194304", group));
        assert!(is_running_member("4243 (a) b (c)) R 1 4242 4242 0 -1", group), "comm with spaces and parentheses");
        assert!(!is_running_member("4243 (sleep) Z 1 4242 4242 0 -1", group), "a zombie");
        assert!(!is_running_member("4243 (sleep) S 4242 4243 4242 0 -1", group), "another group");
        assert!(!is_running_member("garbage", group));
    }
}
