//! The operator's HTTP endpoints on `--metrics-addr`.
//!
//! In: the shared [`Health`]. Out: `/healthz` (the process serves requests),
//! `/readyz` (the watch caches have synced, or this replica is a standby
//! waiting for the lease) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;

use crate::controller::metrics::Metrics;

/// What the endpoints report.
pub struct Health {
    /// Every watch cache has finished its first list.
    pub caches_ready: AtomicBool,
    /// This replica waits for the leader lease and reconciles nothing.
    pub standby: AtomicBool,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The Wukong cache, once the controller runs (for `wukong_wukongs{phase}`).
    pub wukongs: OnceLock<Store<crate::api::GuardedWukong>>,
}

impl Health {
    /// Fresh state: not ready, not standby.
    pub fn new(metrics: Metrics) -> Health {
        Health { caches_ready: AtomicBool::new(false), standby: AtomicBool::new(false), metrics, wukongs: OnceLock::new() }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.caches_ready.load(Ordering::Relaxed) || self.standby.load(Ordering::Relaxed)
    }
}

/// The router of the endpoints.
pub fn router(health: Arc<Health>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(health)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "watch caches are not synced yet") }
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let body = health.metrics.render(health.wukongs.get());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Errors of the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the address failed.
    #[error("failed to listen on \"{address}\": {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("failed to serve HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// Binds the endpoints' address, so a taken port fails the start.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(address).await.map_err(|source| ServeError::Bind { address, source })
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>) -> Result<(), ServeError> {
    axum::serve(listener, router(health)).await.map_err(ServeError::Serve)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::{Health, bind, serve};
    use crate::controller::metrics::Metrics;

    async fn fetch(address: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let code = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        (code, response)
    }

    #[tokio::test]
    async fn endpoints_answer_on_loopback() {
        let listener = bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
        let address = listener.local_addr().expect("address");
        let health = Arc::new(Health::new(Metrics::new().expect("metrics")));
        let server = tokio::spawn(serve(listener, health.clone()));
        assert_eq!(fetch(address, "/healthz").await.0, 200);
        assert_eq!(fetch(address, "/readyz").await.0, 503, "not ready before the caches sync");
        health.caches_ready.store(true, Ordering::Relaxed);
        assert_eq!(fetch(address, "/readyz").await.0, 200);
        let (code, body) = fetch(address, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("process_resident_memory_bytes"), "{body}");
        server.abort();
    }
}
