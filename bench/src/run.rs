//! One benchmark run against a cluster.
//!
//! In: a client configuration and [`BenchOptions`]. Out: the [`Report`].
//! Steps: start the operator (optional) and wait for its metrics; create a
//! fresh namespace; start the stand-in (optional) on a client that counts its
//! requests; create the Wukongs (all at once or at a rate); record when each
//! shows a converged status (observedGeneration equals generation, the
//! expected phase, Synced) and wait until, after every one did, the operator
//! writes nothing for the quiet period; count the operator's and the
//! stand-in's requests up to its last write; check every child exists; delete
//! everything and wait until nothing is left; time the floors, a plain
//! parallel client creating as many objects as the run wrote and deleting as
//! many as its delete removed; and, when the control plane runs on this
//! machine, read its CPU during the converge and during the floor's creates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::Mutex;

use wukong::api::Wukong;
use wukong::controller::wukong_resource;

use crate::BenchOptions;
use crate::count::RequestCounter;
use crate::floor::FloorWork;
use crate::objects::{count_children, count_claims, created_objects, object_bytes};
use crate::operator::{Operator, STOP_GRACE, wukong_binary};
use crate::report::{Latency, Report, percentile, ratio};
use crate::scrape::{Sample, ScrapeError, scrape};
use crate::settle::{Quiet, settle};
use crate::shape::wukong;
use crate::writes::{WriteSplit, child_plurals, total_writes};

/// Errors that stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An API call failed.
    #[error("failed to {action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The operator's metrics could not be read.
    #[error(transparent)]
    Scrape(#[from] ScrapeError),
    /// The operator command could not start.
    #[error("failed to start the operator command \"{command}\": {source}")]
    Operator {
        /// The command.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The operator command exited (unsuccessfully) before serving metrics.
    #[error("failed to keep the operator command \"{command}\" running: it exited with {status} before serving metrics")]
    OperatorExited {
        /// The command.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// The `wukong` binary `--in-memory` starts is not where cargo builds it.
    #[error(
        "failed to find the wukong binary at \"{}\": build it next to wukong-bench (`cargo build --release -p wukong`; for tests `cargo nextest run --workspace` builds it), or pass --operator-cmd",
        path.display()
    )]
    OperatorBinary {
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
    /// Something did not happen in time.
    #[error("failed to {0} within the timeout")]
    Timeout(String),
    /// The in-memory API server could not start.
    #[error("failed to start the in-memory API server: {0}")]
    InMemory(#[source] std::io::Error),
    /// No client could be built from the configuration.
    #[error("failed to build a client for \"{url}\": {source}")]
    Client {
        /// The API server's URL.
        url: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// A file removed when dropped (the kubeconfig of `--in-memory`).
pub mod tempfile_path {
    use std::path::{Path, PathBuf};

    /// A path to a file this process wrote and removes on drop.
    pub struct TempPath(PathBuf);

    impl TempPath {
        /// Writes `contents` to a new file in the temporary directory.
        pub fn write(contents: &str) -> std::io::Result<TempPath> {
            let path = std::env::temp_dir().join(format!(
                "wukong-bench-{}-{}.kubeconfig",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
            ));
            std::fs::write(&path, contents)?;
            Ok(TempPath(path))
        }

        /// The path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Wraps a failed API call made to `action`.
pub(crate) fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> BenchError {
    let action = action.into();
    move |source| BenchError::Api { action, source }
}

/// An in-memory API server for `--in-memory`: its client configuration and
/// the kubeconfig file the operator is started with.
pub struct InMemory {
    /// Client configuration of the in-memory server.
    pub config: kube::Config,
    /// Kubeconfig file pointing at it (removed on drop).
    pub kubeconfig: tempfile_path::TempPath,
}

/// Starts fake-apiserver on a free loopback port.
pub async fn start_in_memory() -> Result<InMemory, BenchError> {
    let io = |source| BenchError::InMemory(source);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let address = listener.local_addr().map_err(io)?;
    tokio::spawn(fake_apiserver::serve(fake_apiserver::FakeApi::new(), listener));
    let text = fake_apiserver::kubeconfig(&format!("http://{address}"));
    let kubeconfig = tempfile_path::TempPath::write(&text).map_err(io)?;
    // Over HTTP like the operator, so the floors and the operator pay the same transport.
    let parsed = kube::config::Kubeconfig::from_yaml(&text).map_err(|error| BenchError::InMemory(std::io::Error::other(error)))?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|error| BenchError::InMemory(std::io::Error::other(error)))?;
    Ok(InMemory { config, kubeconfig })
}

/// The command that starts the operator: `--operator-cmd`, or with
/// `--in-memory` the `wukong` binary next to this one serving metrics where
/// `--operator-metrics` points.
fn operator_command(options: &BenchOptions) -> Result<Option<String>, BenchError> {
    if let Some(command) = &options.operator_cmd {
        return Ok(Some(command.clone()));
    }
    if !options.in_memory {
        return Ok(None);
    }
    let metrics = &options.operator_metrics;
    let address =
        metrics.strip_prefix("http://").and_then(|rest| rest.split('/').next()).ok_or_else(|| ScrapeError::Url(metrics.clone()))?;
    let binary = wukong_binary()?;
    Ok(Some(format!("exec '{}' run --metrics-addr {address} --concurrency 16", binary.display())))
}

/// Runs the benchmark against the API server of `config`; `kubeconfig` is
/// the file the operator it starts is given (`--in-memory`).
pub async fn run(config: kube::Config, options: &BenchOptions, kubeconfig: Option<&std::path::Path>) -> Result<Report, BenchError> {
    let client_error = |source| BenchError::Client { url: config.cluster_url.to_string(), source };
    let client = Client::try_from(config.clone()).map_err(client_error)?;
    let stand_in = RequestCounter::default();
    let stand_in_client = stand_in.client(config.clone()).map_err(client_error)?;
    // Dropped on an early return, which kills the operator's whole process group.
    let mut operator = match operator_command(options)? {
        Some(command) => Some(Operator::start(&command, kubeconfig)?),
        None => None,
    };
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let before = loop {
        match scrape(&options.operator_metrics).await {
            Ok(sample) => break sample,
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => {
                if let Some(operator) = operator.as_mut() {
                    operator.check_running()?;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let peak = Arc::new(AtomicU64::new(before.resident_bytes.unwrap_or(0.0) as u64));
    let sampler = tokio::spawn(sample_memory(options.operator_metrics.clone(), peak.clone()));

    let namespace = format!("wukong-bench-{}", chrono::Utc::now().timestamp());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = Namespace { metadata: ObjectMeta { name: Some(namespace.clone()), ..ObjectMeta::default() }, ..Namespace::default() };
    namespaces.create(&PostParams::default(), &object).await.map_err(api_error(format!("create namespace \"{namespace}\"")))?;
    let fake = options.fake_kubevirt.then(|| tokio::spawn(crate::fake_kubevirt::run(stand_in_client, namespace.clone())));
    let stand_in = options.fake_kubevirt.then_some(&stand_in);

    let stand_in_task = fake.as_ref().map(tokio::task::JoinHandle::abort_handle);
    let start = Start { operator: &before, stand_in, stand_in_task };
    let result = measure(client.clone(), options, &namespace, start, &peak).await;

    if let Some(fake) = fake {
        fake.abort();
    }
    sampler.abort();
    let _ = namespaces.delete(&namespace, &DeleteParams::background()).await;
    if let Some(operator) = operator {
        // SIGTERM first, so the operator stops cleanly (and releases a lease it holds).
        operator.stop(STOP_GRACE).await;
    }
    result
}

/// The counters at the start: the operator's metrics and the stand-in's
/// counter and task (when it runs).
struct Start<'a> {
    operator: &'a Sample,
    stand_in: Option<&'a RequestCounter>,
    /// Stopped once the delete is done, so it writes nothing during the floors.
    stand_in_task: Option<tokio::task::AbortHandle>,
}

async fn measure(
    client: Client,
    options: &BenchOptions,
    namespace: &str,
    start: Start<'_>,
    peak: &AtomicU64,
) -> Result<Report, BenchError> {
    let expected = if options.fake_kubevirt { "Running" } else { "Creating" };
    let converged: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let watch = tokio::spawn(watch_convergence(client.clone(), namespace.to_string(), expected, converged.clone()));
    let stand_in_before = start.stand_in.map(RequestCounter::sample).unwrap_or_default();

    // In memory, a control plane on this machine is not the one measured.
    let control_plane = (!options.in_memory).then(crate::cpu::Recorder::start);
    let started = Instant::now();
    let created = create_all(&client, options, namespace).await?;
    let quiet =
        Quiet { period: Duration::from_secs(options.idle_seconds), status_deadline: Instant::now() + Duration::from_secs(options.timeout) };
    let settled = settle(&options.operator_metrics, start.operator, start.stand_in, &converged, created.len(), quiet).await?;
    watch.abort();
    let done = converged.lock().await.clone();
    let latencies: Vec<f64> = created
        .iter()
        .filter_map(|(name, created_at)| done.get(name).map(|at| at.saturating_duration_since(*created_at).as_secs_f64()))
        .collect();
    let statuses_done = done.values().max().copied().unwrap_or(started);
    let converged_at = settled.last_write.max(statuses_done);
    let converge_seconds = converged_at.saturating_duration_since(started).as_secs_f64();
    let converge_cpu = control_plane.as_ref().and_then(|recorder| recorder.between(started, converged_at));
    let after = &settled.operator;
    let count = created.len().max(1) as f64;
    let writes = WriteSplit::between(start.operator, after, &child_plurals());
    let stand_in_writes = total_writes(&stand_in_before, &settled.stand_in);
    let missing = options.shape.children() * created.len();
    let missing = missing.saturating_sub(count_children(&client, namespace).await?);
    let delete_objects = created_objects(&client, namespace).await?;
    let delete_claims = count_claims(&client, namespace).await?;
    let object_bytes = object_bytes(&client, namespace).await?;

    let delete_started = Instant::now();
    delete_all(&client, options, namespace).await?;
    let emptied = wait_until_empty(&client, namespace, Duration::from_secs(options.timeout)).await?;
    let delete_seconds = delete_started.elapsed().as_secs_f64();
    let delete_wukongs_seconds = emptied.wukongs_gone.saturating_duration_since(delete_started).as_secs_f64();

    if let Some(task) = &start.stand_in_task {
        task.abort();
    }
    let floor_writes = (writes.total() + stand_in_writes).round() as usize;
    let work =
        FloorWork { writes: floor_writes, deletes: delete_objects, claims: delete_claims, object_bytes, parallelism: options.parallelism };
    let floor_started = Instant::now();
    let floors = crate::floor::measure(&client, namespace, work).await?;
    let floor_ended = floor_started + Duration::from_secs_f64(floors.create_seconds);
    let floor_cpu = control_plane.as_ref().and_then(|recorder| recorder.between(floor_started, floor_ended));
    let control_plane_cpu_seconds = converge_cpu.map(|cpu| cpu.control_plane);
    let floor_control_plane_cpu_seconds = floor_cpu.map(|cpu| cpu.control_plane);
    Ok(Report {
        count: created.len(),
        converge_seconds,
        status_converge_seconds: statuses_done.saturating_duration_since(started).as_secs_f64(),
        latency_seconds: Latency { p50: percentile(&latencies, 0.5), p95: percentile(&latencies, 0.95), p99: percentile(&latencies, 0.99) },
        writes_per_wukong: writes.objects() / count,
        operator_writes_per_wukong: writes.per(count),
        reads_per_wukong: after.reads_since(start.operator) / count,
        events_per_wukong: writes.events / count,
        stand_in_writes_per_wukong: stand_in_writes / count,
        late_writes: settled.writes_at_status.map_or(0.0, |at_status| total_writes(start.operator, after) - at_status),
        idle_writes: settled.idle_writes,
        idle_seconds: options.idle_seconds as f64,
        quiet: settled.quiet,
        peak_rss_bytes: peak.load(Ordering::Relaxed) as f64,
        operator_cpu_seconds: after.cpu_seconds.unwrap_or(0.0) - start.operator.cpu_seconds.unwrap_or(0.0),
        delete_seconds,
        delete_wukongs_seconds,
        leftover_children: emptied.leftover,
        missing_children: missing,
        unconverged: created.len() - done.len().min(created.len()),
        floor_writes,
        floor_object_bytes: object_bytes,
        floor_seconds: floors.create_seconds,
        ratio: ratio(converge_seconds, floors.create_seconds),
        delete_objects,
        delete_claims,
        delete_floor_seconds: floors.delete_seconds,
        delete_ratio: ratio(delete_seconds, floors.delete_seconds),
        control_plane_cpu_seconds,
        idle_cores: converge_cpu.and_then(|cpu| (converge_seconds > 0.0).then(|| cpu.idle / converge_seconds)),
        floor_control_plane_cpu_seconds,
        work_ratio: control_plane_cpu_seconds.zip(floor_control_plane_cpu_seconds).and_then(|(run, floor)| ratio(run, floor)),
    })
}

async fn sample_memory(url: String, peak: Arc<AtomicU64>) {
    loop {
        if let Ok(sample) = scrape(&url).await
            && let Some(bytes) = sample.resident_bytes
        {
            peak.fetch_max(bytes as u64, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates the Wukongs; returns each name with its creation time.
async fn create_all(client: &Client, options: &BenchOptions, namespace: &str) -> Result<Vec<(String, Instant)>, BenchError> {
    let api: Api<Wukong> = Api::namespaced(client.clone(), namespace);
    let interval = options.rate.filter(|rate| *rate > 0.0).map(|rate| Duration::from_secs_f64(1.0 / rate));
    let start = Instant::now();
    let results: Vec<Result<(String, Instant), BenchError>> = stream::iter(0..options.count)
        .map(|index| {
            let api = api.clone();
            let object = wukong(options.shape, namespace, index);
            async move {
                if let Some(interval) = interval {
                    tokio::time::sleep_until((start + interval * index as u32).into()).await;
                }
                let name = object.name_any();
                let at = Instant::now();
                api.create(&PostParams::default(), &object).await.map_err(api_error(format!("create Wukong \"{name}\"")))?;
                Ok((name, at))
            }
        })
        .buffer_unordered(if interval.is_some() { options.count.max(1) } else { options.parallelism.max(1) })
        .collect()
        .await;
    results.into_iter().collect()
}

/// Records when each Wukong first shows a converged status.
async fn watch_convergence(client: Client, namespace: String, expected: &'static str, converged: Arc<Mutex<BTreeMap<String, Instant>>>) {
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &wukong_resource());
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let Ok(Event::Apply(object) | Event::InitApply(object)) = event else { continue };
        if is_converged(&object, expected) {
            converged.lock().await.entry(object.name_any()).or_insert_with(Instant::now);
        }
    }
}

/// observedGeneration equals generation, the phase is `expected`, Synced is True.
pub fn is_converged(object: &DynamicObject, expected: &str) -> bool {
    let status = object.data.get("status");
    let observed = status.and_then(|status| status.get("observedGeneration")).and_then(serde_json::Value::as_i64);
    let phase = status.and_then(|status| status.get("phase")).and_then(serde_json::Value::as_str);
    let synced = status.and_then(|status| status.get("conditions")).and_then(serde_json::Value::as_array).is_some_and(|conditions| {
        conditions.iter().any(|condition| {
            condition.get("type").and_then(serde_json::Value::as_str) == Some("Synced")
                && condition.get("status").and_then(serde_json::Value::as_str) == Some("True")
        })
    });
    observed.is_some() && observed == object.metadata.generation && phase == Some(expected) && synced
}

async fn delete_all(client: &Client, options: &BenchOptions, namespace: &str) -> Result<(), BenchError> {
    let api: Api<Wukong> = Api::namespaced(client.clone(), namespace);
    let names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(api_error("list Wukongs"))?
        .items
        .iter()
        .map(|item| item.name_any())
        .collect();
    let results: Vec<Result<(), BenchError>> = stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    Err(source) => Err(BenchError::Api { action: format!("delete Wukong \"{name}\""), source }),
                }
            }
        })
        .buffer_unordered(options.parallelism.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// When a delete ended: the last Wukong gone (the operator's part done), and
/// everything the run made gone (claims wait for kube-controller-manager to
/// remove their protection finalizer).
struct Emptied {
    /// When the last Wukong was seen gone.
    wukongs_gone: Instant,
    /// Labelled children left at the timeout (0 when everything went).
    leftover: usize,
}

/// Waits until nothing the run made is left: no Wukong, no object of a child
/// kind (labelled or not) and no instance.
async fn wait_until_empty(client: &Client, namespace: &str, timeout: Duration) -> Result<Emptied, BenchError> {
    let wukongs: Api<Wukong> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut wukongs_gone = None;
    loop {
        if wukongs_gone.is_none()
            && wukongs.list_metadata(&ListParams::default()).await.map_err(api_error("list Wukongs"))?.items.is_empty()
        {
            wukongs_gone = Some(Instant::now());
        }
        let left = created_objects(client, namespace).await?;
        if let Some(wukongs_gone) = wukongs_gone.filter(|_| left == 0) {
            return Ok(Emptied { wukongs_gone, leftover: 0 });
        }
        if Instant::now() > deadline {
            return Ok(Emptied {
                wukongs_gone: wukongs_gone.unwrap_or_else(Instant::now),
                leftover: count_children(client, namespace).await?,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
