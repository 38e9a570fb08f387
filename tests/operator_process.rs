//! The real `wukong run` process against the fake API server over HTTP on loopback.
//!
//! In: a fake cluster (namespace `default`, no StorageClass, no CRDs) served in process, its kubeconfig in a temp
//! file, and the `wukong` binary started with `KUBECONFIG` pointing at it. Out: proof that the real reflectors,
//! mappers, finalizer, status writes, metrics, readiness, cleanup and (with `--leader-elect`) the lease work: the
//! operator creates the children of `examples/empty-vm.yaml`, reports it Stopped, serves `/metrics` and `/readyz`,
//! and removes everything when the Wukong is deleted. Warnings and errors in the operator's log are printed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_apiserver::{FakeApi, kubeconfig, serve};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wukong::controller::wukong_resource;

const WUKONG: (&str, &str) = ("vm.novasphere.dev/v1alpha1", "wukongs");
const VM: (&str, &str) = ("kubevirt.io/v1", "virtualmachines");
const CLAIMS: (&str, &str) = ("v1", "persistentvolumeclaims");
const CHILD_CLAIMS: [&str; 2] = ["empty-vm-data1", "empty-vm-data2"];

/// The fake, served over HTTP, and the operator process using it.
struct Scenario {
    fake: FakeApi,
    operator: tokio::process::Child,
    metrics: SocketAddr,
    log: PathBuf,
    kubeconfig: PathBuf,
}

impl Scenario {
    /// Serves a fake with namespace `default` and starts `wukong run --metrics-addr ... --concurrency 4 <extra>`.
    async fn start(name: &str, extra: &[&str]) -> Scenario {
        let fake = FakeApi::new();
        fake.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(fake.clone(), listener));

        let prefix = std::env::temp_dir().join(format!("wukong-{name}-{}", std::process::id()));
        let kubeconfig_path = prefix.with_extension("kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig(&url)).unwrap();
        let log = prefix.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let metrics = free_address();
        let operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_wukong"))
            .args(["run", "--metrics-addr", &metrics.to_string(), "--concurrency", "4"])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig_path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Scenario { fake, operator, metrics, log, kubeconfig: kubeconfig_path }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` every 50 ms until it answers `Some` or `seconds` pass (then fails with the operator's log).
    async fn wait<T>(&self, what: &str, seconds: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                let requests: Vec<String> =
                    self.fake.requests().iter().map(|request| format!("{} {} {:?}", request.verb, request.path, request.query)).collect();
                panic!(
                    "timed out waiting until {what}; the operator's log:\n{}\nthe requests the fake received:\n{}",
                    self.log(),
                    requests.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn get(&self, (api_version, plural): (&str, &str), name: &str) -> Option<Value> {
        self.fake.get(api_version, plural, Some("default"), name)
    }

    /// Creates the Wukong of `examples/empty-vm.yaml` and waits for its children, status and finalizer.
    async fn converge_empty_vm(&self) {
        let wukong: DynamicObject = wukong::yaml::from_str(include_str!("../examples/empty-vm.yaml")).unwrap();
        let wukongs: Api<DynamicObject> = Api::namespaced_with(self.fake.client(), "default", &wukong_resource());
        wukongs.create(&PostParams::default(), &wukong).await.unwrap();
        self.wait("the operator creates the VirtualMachine, the claims, the status and the finalizer", 30, async || {
            let wukong = self.get(WUKONG, "empty-vm")?;
            let children = self.get(VM, "empty-vm-vm").is_some() && CHILD_CLAIMS.iter().all(|claim| self.get(CLAIMS, claim).is_some());
            let finalized = wukong["metadata"]["finalizers"].as_array().is_some_and(|finalizers| !finalizers.is_empty());
            (children && finalized && wukong["status"]["phase"] == "Stopped").then_some(())
        })
        .await;
    }

    /// Checks `/readyz` and the operator's counters on `/metrics`.
    async fn check_endpoints(&self) {
        let (code, _) = http_get(self.metrics, "/readyz").await.expect("/readyz answers");
        assert_eq!(code, 200);
        let (code, metrics) = http_get(self.metrics, "/metrics").await.expect("/metrics answers");
        assert_eq!(code, 200);
        for name in ["wukong_reconciliations_total", "wukong_kube_requests_total"] {
            assert!(metrics.lines().any(|line| line.starts_with(name)), "{name} missing from /metrics:\n{metrics}");
        }
    }

    /// Deletes the Wukong and waits until it and its children are gone.
    async fn delete_empty_vm(&self) {
        let wukongs: Api<DynamicObject> = Api::namespaced_with(self.fake.client(), "default", &wukong_resource());
        wukongs.delete("empty-vm", &DeleteParams::default()).await.unwrap();
        self.wait("the Wukong and its children are gone", 30, async || {
            let left = self.get(WUKONG, "empty-vm").is_some()
                || self.get(VM, "empty-vm-vm").is_some()
                || CHILD_CLAIMS.iter().any(|claim| self.get(CLAIMS, claim).is_some());
            (!left).then_some(())
        })
        .await;
    }

    /// Stops the operator and prints the warnings and errors of its log.
    async fn stop(mut self) -> Vec<String> {
        self.operator.kill().await.unwrap();
        let log = self.log();
        let problems: Vec<String> =
            log.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).map(str::to_owned).collect();
        for line in &problems {
            eprintln!("operator: {line}");
        }
        remove(&self.log);
        remove(&self.kubeconfig);
        problems
    }
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// A loopback address with a port free a moment ago.
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `GET path` over plain HTTP/1.0; the status code and body, or `None` when nothing listens yet.
async fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

#[tokio::test]
async fn the_operator_converges_and_cleans_up_a_wukong_over_http() {
    let scenario = Scenario::start("operator-process", &[]).await;
    scenario.wait("/readyz answers 200", 20, async || http_get(scenario.metrics, "/readyz").await.filter(|(code, _)| *code == 200)).await;
    scenario.converge_empty_vm().await;
    scenario.check_endpoints().await;
    scenario.delete_empty_vm().await;
    // Logged right after the finalizer is removed, so possibly after the Wukong is seen gone.
    let finished = scenario
        .wait("the operator logs the finished cleanup", 10, async || {
            scenario.log().lines().find(|line| line.contains("cleanup finished")).map(str::to_owned)
        })
        .await;
    for field in ["reconcile{", "namespace=", "name=empty-vm", "trace_id="] {
        assert!(finished.contains(field), "the reconcile span carries {field}: {finished}");
    }
    let problems = scenario.stop().await;
    assert!(problems.iter().all(|line| !line.contains(" ERROR ")), "the operator logged errors: {problems:#?}");
}

#[tokio::test]
async fn the_operator_takes_the_leader_lease_then_reconciles() {
    let scenario = Scenario::start("operator-leader", &["--leader-elect", "--leader-elect-namespace", "default"]).await;
    let holder = scenario
        .wait("the Lease wukong-operator is held", 20, async || {
            let lease = scenario.fake.get("coordination.k8s.io/v1", "leases", Some("default"), "wukong-operator")?;
            lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
        })
        .await;
    assert!(holder.starts_with("wukong-"), "unexpected holder {holder}");
    scenario.converge_empty_vm().await;
    scenario.check_endpoints().await;
    scenario.delete_empty_vm().await;
    let problems = scenario.stop().await;
    assert!(problems.iter().all(|line| !line.contains(" ERROR ")), "the operator logged errors: {problems:#?}");
}
