//! The real `wukong run` process against the fake API server over HTTP on loopback, for the process-level suites
//! (`tests/operator_process.rs`, `tests/operator_restart.rs`).
//!
//! In: a name and extra `wukong run` arguments. Out: a [`Scenario`]: the fake (namespace `default`, no StorageClass,
//! no CRDs) served in process, its kubeconfig in a temp file, the operator started with `KUBECONFIG` pointing at it,
//! bounded waits that fail with the operator's log and the fake's requests, plain-HTTP reads of the operator's
//! endpoints, and the warnings and errors of its log when it stops.

#![allow(dead_code, reason = "each suite uses its own part")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_apiserver::{FakeApi, kubeconfig, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fake, served over HTTP, and the operator process using it.
pub struct Scenario {
    /// The in-memory API server.
    pub fake: FakeApi,
    operator: tokio::process::Child,
    /// Where the operator serves `/healthz`, `/readyz` and `/metrics`.
    pub metrics: SocketAddr,
    log: PathBuf,
    kubeconfig: PathBuf,
}

impl Scenario {
    /// Serves a fake with namespace `default` and starts `wukong run --metrics-addr ... --concurrency 4 <extra>`.
    pub async fn start(name: &str, extra: &[&str]) -> Scenario {
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

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` every 50 ms until it answers `Some` or `seconds` pass (then fails with the operator's log).
    pub async fn wait<T>(&self, what: &str, seconds: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        self.wait_seeing(what, seconds, async || check().await.ok_or_else(|| "not yet".to_owned())).await
    }

    /// Polls `check` every 50 ms until it answers `Ok` or `seconds` pass, then fails with what it saw last (the
    /// `Err`), the operator's log and the fake's requests.
    pub async fn wait_seeing<T>(&self, what: &str, seconds: u64, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let seen = match check().await {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            if Instant::now() > deadline {
                let requests: Vec<String> =
                    self.fake.requests().iter().map(|request| format!("{} {} {:?}", request.verb, request.path, request.query)).collect();
                panic!(
                    "timed out after {seconds} s waiting until {what}; last seen: {seen}\nthe operator's log:\n{}\nthe requests the fake received:\n{}",
                    self.log(),
                    requests.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The stored object `(apiVersion, plural)` `default/name`.
    pub fn get(&self, (api_version, plural): (&str, &str), name: &str) -> Option<Value> {
        self.fake.get(api_version, plural, Some("default"), name)
    }

    /// Stops the operator and prints the warnings and errors of its log.
    pub async fn stop(mut self) -> Vec<String> {
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
pub async fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}
