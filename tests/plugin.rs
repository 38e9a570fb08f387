//! The `kubectl-wukong` binary against the in-memory API server over HTTP:
//! each command patches the Wukong with server-side apply under its own field
//! manager, `--wait` follows the status until the operation ends (the test
//! plays the operator's part by writing the status), failures are one line,
//! and `status` prints the summary.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use fake_apiserver::{FakeApi, kubeconfig, serve};
use serde_json::{Value, json};

const EMPTY_VM: &str = include_str!("../examples/empty-vm.yaml");

/// A served fake holding `examples/empty-vm.yaml` (namespace `default`), and its kubeconfig.
struct Cluster {
    fake: FakeApi,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start(name: &str) -> Cluster {
        let fake = FakeApi::new();
        fake.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}));
        fake.insert(wukong::yaml::from_str::<Value>(EMPTY_VM).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(fake.clone(), listener));
        let kubeconfig_path = std::env::temp_dir().join(format!("wukong-plugin-{name}-{}.kubeconfig", std::process::id()));
        std::fs::write(&kubeconfig_path, kubeconfig(&url)).unwrap();
        Cluster { fake, kubeconfig: kubeconfig_path }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-wukong"));
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    fn wukong(&self) -> Value {
        self.fake.get("vm.novasphere.dev/v1alpha1", "wukongs", Some("default"), "empty-vm").unwrap()
    }

    /// Plays the operator: writes `status` into the stored Wukong.
    fn set_status(&self, status: Value) {
        let mut wukong = self.wukong();
        wukong["status"] = status;
        self.fake.insert(wukong);
    }

    /// Runs the plugin with `--wait` while `operator` answers each new token it sees in the spec.
    async fn run_waiting(&self, args: &[&str], operator: impl Fn(&Cluster, &Value) -> bool) -> Output {
        let child = self.command(args).spawn().unwrap();
        let output = tokio::spawn(child.wait_with_output());
        let mut answered = false;
        for _ in 0..600 {
            if output.is_finished() {
                break;
            }
            if !answered {
                answered = operator(self, &self.wukong()["spec"]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        output.await.unwrap().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn restart_patches_the_token_with_its_own_field_manager_and_waits_for_success() {
    let cluster = Cluster::start("restart").await;
    let output = cluster
        .run_waiting(&["restart", "empty-vm", "--timeout", "30"], |cluster, spec| {
            let Some(token) = spec["restartRequestedAt"].as_str() else { return false };
            cluster
                .set_status(json!({"phase": "Running", "restart": {"requestedAt": token, "phase": "Succeeded", "message": "restarted"}}));
            true
        })
        .await;
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("restart Succeeded: restarted"), "{}", stdout(&output));
    let apply = cluster.fake.requests().into_iter().find(|request| request.verb == "patch").expect("a patch");
    assert_eq!(apply.content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(apply.query.get("fieldManager").map(String::as_str), Some("kubectl-wukong"));
    let body = apply.body.expect("body");
    assert_eq!(body["spec"].as_object().map(|spec| spec.keys().cloned().collect::<Vec<_>>()), Some(vec!["restartRequestedAt".to_string()]));
    assert_eq!(cluster.wukong()["spec"]["cpu"], 2, "the rest of the spec is kept");
}

#[tokio::test]
async fn a_skipped_operation_fails_with_its_reason_on_one_line() {
    let cluster = Cluster::start("skipped").await;
    let output = cluster
        .run_waiting(&["migrate", "empty-vm", "--node-selector", "zone=b", "--timeout", "30"], |cluster, spec| {
            let Some(token) = spec["migration"]["requestedAt"].as_str() else { return false };
            assert_eq!(spec["migration"]["nodeSelector"], json!({"zone": "b"}));
            let migration = json!({"requestedAt": token, "phase": "Skipped", "message": "not migrated: the VM has no running instance"});
            cluster.set_status(json!({"phase": "Stopped", "migration": migration}));
            true
        })
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: migration Skipped: not migrated: the VM has no running instance\n");
}

#[tokio::test]
async fn start_and_stop_set_the_run_strategy() {
    let cluster = Cluster::start("start").await;
    let output = cluster.run(&["start", "empty-vm", "--wait=false"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(cluster.wukong()["spec"]["runStrategy"], "Always");
    let output = cluster.run(&["-n", "default", "stop", "empty-vm", "--wait", "false"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(cluster.wukong()["spec"]["runStrategy"], "Halted");
}

#[tokio::test]
async fn errors_are_one_clear_line() {
    let cluster = Cluster::start("errors").await;
    let output = cluster.run(&["restart", "nope"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: Wukong \"default/nope\" not found\n");

    cluster.fake.fail_next(|request| request.verb == "patch", 403, "Forbidden");
    let output = cluster.run(&["migrate", "empty-vm"]).await;
    assert_eq!(output.status.code(), Some(1));
    let line = stderr(&output);
    assert!(line.starts_with("error: forbidden: ") && line.lines().count() == 1, "{line}");
}

#[tokio::test]
async fn status_prints_the_summary() {
    let cluster = Cluster::start("status").await;
    cluster.set_status(json!({
        "phase": "Stopped", "observedGeneration": 1, "vmName": "empty-vm-vm",
        "conditions": [{"type": "Ready", "status": "False", "reason": "VMStopped", "message": "the VM is stopped", "lastTransitionTime": "t"}],
    }));
    let output = cluster.run(&["status", "empty-vm"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("Wukong default/empty-vm: Stopped\n"), "{text}");
    assert!(text.contains("  VirtualMachine empty-vm-vm\n"), "{text}");
    assert!(text.ends_with("Not ready: Ready VMStopped: the VM is stopped\n"), "{text}");
}
