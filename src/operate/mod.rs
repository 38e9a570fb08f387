//! Running the operator in production: metrics, health endpoints and leader
//! election around the controller.
//!
//! In: [`RunOptions`] (the flags of `wukong run`). Out: an operator process that serves
//! `/healthz`, `/readyz` and `/metrics`, reconciles only while it holds the
//! leader lease (when `--leader-elect` is set), and releases the lease at once
//! on SIGTERM.

pub mod http;
pub mod leader;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kube::client::ClientBuilder;
use tracing::{error, info};

use crate::controller::health::Health;
use crate::controller::metrics::{Metrics, MetricsError};
use crate::controller::status::pacing::Pacing;
use crate::controller::{Settings, run_until};
use http::{ServeError, bind, serve};
use leader::{LeaderError, Leadership};

/// Options of `wukong run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunOptions {
    /// How many Wukongs are reconciled at the same time.
    #[arg(long, default_value_t = 16, env = "WUKONG_CONCURRENCY")]
    pub concurrency: u16,
    /// Log format: `text` or `json`. The level comes from RUST_LOG (default info).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Reconcile only while holding the leader Lease, so several replicas can run.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease; the pod's namespace (POD_NAMESPACE) by default.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_elect_namespace: String,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Milliseconds to gather the watch events of one Wukong (its children
    /// settling) into one reconcile, so a burst of changes costs one status write.
    #[arg(long, default_value_t = 250, env = "WUKONG_DEBOUNCE_MS")]
    pub debounce_ms: u64,
    /// Seconds after its VM was built (its creation while it has none) during which a converging Wukong's
    /// intermediate statuses are held, so it usually costs one status write
    /// (0: every change is written at once).
    #[arg(long, default_value_t = 60, env = "WUKONG_STATUS_SETTLE_SECONDS")]
    pub status_settle_seconds: u64,
    /// Seconds between writes of a changed import progress alone.
    #[arg(long, default_value_t = 5, env = "WUKONG_PROGRESS_INTERVAL_SECONDS")]
    pub progress_interval_seconds: u64,
    // Health of the watches (see watch_health.rs and operate/http.rs).
    /// Seconds a watch may keep failing (API server unreachable) before
    /// /readyz answers 503.
    #[arg(long, default_value_t = 5, env = "WUKONG_READINESS_GRACE_SECONDS")]
    pub readiness_grace_seconds: u64,
    /// Seconds a watch may keep failing before /healthz answers 503, so the
    /// liveness probe restarts an operator that cannot recover by itself.
    #[arg(long, default_value_t = 300, env = "WUKONG_LIVENESS_GRACE_SECONDS")]
    pub liveness_grace_seconds: u64,
}

impl RunOptions {
    /// The health endpoints' state for these options.
    pub fn health(&self, metrics: Metrics) -> Health {
        Health::new(metrics).with_grace(Duration::from_secs(self.readiness_grace_seconds), Duration::from_secs(self.liveness_grace_seconds))
    }

    /// The controller's settings for these options.
    pub fn settings(&self) -> Settings {
        Settings {
            concurrency: self.concurrency,
            debounce: Duration::from_millis(self.debounce_ms),
            pacing: Pacing {
                settle: Duration::from_secs(self.status_settle_seconds),
                progress_interval: Duration::from_secs(self.progress_interval_seconds),
            },
        }
    }
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub fn main(options: RunOptions) -> ExitCode {
    init_logging(&options.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(%error, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match operate(options).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                error!(%error, "the operator stopped");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if format == "json" { builder.json().try_init() } else { builder.try_init() };
    if let Err(error) = result {
        eprintln!("failed to initialise logging: {error}");
    }
}

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// Metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// No client could be built.
    #[error("failed to build a Kubernetes client from KUBECONFIG, ~/.kube/config or the pod's service account: {0}")]
    Client(#[source] kube::Error),
    /// The HTTP endpoints could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Runs the operator: endpoints, optional leader election, the controller.
pub async fn operate(options: RunOptions) -> Result<(), OperateError> {
    let metrics = Metrics::new()?;
    let config = kube::Config::infer().await.map_err(|error| OperateError::Client(kube::Error::InferConfig(error)))?;
    let counting = metrics.clone();
    let layer = tower::util::MapRequestLayer::new(move |request: ::http::Request<kube::client::Body>| {
        counting.count_request(&request);
        request
    });
    let client = ClientBuilder::try_from(config).map_err(OperateError::Client)?.with_layer(&layer).build();
    let health = Arc::new(options.health(metrics));
    let listener = bind(options.metrics_addr).await?;
    let server_health = health.clone();
    tokio::spawn(async move {
        if let Err(error) = serve(listener, server_health).await {
            tracing::error!(%error, "the HTTP endpoints stopped");
        }
    });

    if !options.leader_elect {
        run_until(client, options.settings(), health, futures::future::pending()).await;
        return Ok(());
    }
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("wukong-{}", std::process::id()));
    let mut leadership = Leadership::join(client.clone(), &options.leader_elect_namespace, &identity).await?;
    health.standby.store(true, std::sync::atomic::Ordering::Relaxed);
    info!(%identity, namespace = %options.leader_elect_namespace, "waiting for the leader lease");
    let acquired = tokio::select! {
        acquired = leadership.acquired() => acquired,
        () = shutdown_signal() => false,
    };
    health.standby.store(false, std::sync::atomic::Ordering::Relaxed);
    if acquired {
        info!(%identity, "leading: starting the controller");
        let (lost_sender, lost_receiver) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = lost_receiver.await;
        };
        let controller = tokio::spawn(run_until(client, options.settings(), health, stop));
        tokio::select! {
            () = leadership.lost() => tracing::warn!("lost the leader lease: stopping the controller"),
            _ = shutdown_signal() => info!("shutting down"),
        }
        let _ = lost_sender.send(());
        let _ = controller.await;
    }
    leadership.release().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
