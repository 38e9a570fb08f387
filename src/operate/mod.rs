//! Running the operator in production: metrics, health endpoints and leader
//! election around the controller.
//!
//! In: [`crate::controller::RunOptions`]. Out: an operator process that serves
//! `/healthz`, `/readyz` and `/metrics`, reconciles only while it holds the
//! leader lease (when `--leader-elect` is set), and releases the lease at once
//! on SIGTERM.

pub mod http;
pub mod leader;
pub mod metrics;

use std::sync::Arc;

use kube::client::ClientBuilder;
use tracing::info;

use crate::controller::{RunOptions, run_until};
use http::{ServeError, bind, serve};
use leader::{LeaderError, Leadership};
use metrics::{Metrics, MetricsError};

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
        run_until(client, options, health, futures::future::pending()).await;
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
        let controller = tokio::spawn(run_until(client, options, health, stop));
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
