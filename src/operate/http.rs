//! The operator's HTTP endpoints on `--metrics-addr`.
//!
//! In: the shared [`Health`] (`controller::health`). Out: `/readyz`,
//! `/healthz` and `/metrics` (Prometheus text format).
//!
//! `/readyz` answers 200 when this replica is a standby waiting for the
//! lease, or when every watch cache has synced and no watch has been failing
//! for longer than the readiness grace (`--readiness-grace-seconds`, 5 s);
//! otherwise 503, naming the unsynced or failing watches. `/healthz` (the
//! liveness probe) answers 503 only when a watch has been failing without a
//! break for longer than the liveness grace (`--liveness-grace-seconds`, 300
//! s): an operator that cannot recover by itself is restarted, a short API
//! server outage restarts nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use crate::controller::health::Health;

/// The router of the endpoints.
pub fn router(health: Arc<Health>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(health)
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.liveness(Instant::now()))
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.readiness(Instant::now()))
}

fn answer(verdict: Result<(), String>) -> (StatusCode, String) {
    match verdict {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
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
    use std::time::{Duration, Instant};

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
        let health = Arc::new(Health::new(Metrics::new().expect("metrics")).with_grace(Duration::ZERO, Duration::from_secs(300)));
        let server = tokio::spawn(serve(listener, health.clone()));
        assert_eq!(fetch(address, "/healthz").await.0, 200);
        assert_eq!(fetch(address, "/readyz").await.0, 503, "not ready before the caches sync");
        let wukongs = health.watches.register("Wukong");
        let (code, body) = fetch(address, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.ends_with("watch caches not synced yet: Wukong"), "{body}");
        wukongs.listed();
        assert_eq!(fetch(address, "/readyz").await.0, 200);
        wukongs.failed(&"failed to start watching object: client error (Connect)");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (code, body) = fetch(address, "/readyz").await;
        assert_eq!(code, 503, "a failing watch makes the operator unready after the grace");
        assert!(body.contains("Wukong failing for 0 s: failed to start watching object: client error (Connect)"), "{body}");
        assert_eq!(fetch(address, "/healthz").await.0, 200, "but alive");
        let (code, body) = fetch(address, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("process_resident_memory_bytes"), "{body}");
        server.abort();
    }

    #[test]
    fn a_short_outage_makes_unready_a_long_one_dead_and_a_standby_stays_ready() {
        let health = Health::new(Metrics::new().expect("metrics"));
        let machines = health.watches.register("VirtualMachine");
        machines.listed();
        assert_eq!(health.readiness(Instant::now()), Ok(()));
        machines.failed(&"failed to start watching object: client error (Connect)");
        let now = Instant::now();
        assert_eq!(health.readiness(now + Duration::from_secs(2)), Ok(()), "within the readiness grace");
        let unready = health.readiness(now + Duration::from_secs(10)).expect_err("past the readiness grace");
        assert!(unready.starts_with("watches failing: VirtualMachine failing for 10 s: failed to start"), "{unready}");
        assert_eq!(health.liveness(now + Duration::from_secs(10)), Ok(()), "a short outage must not restart the operator");
        let dead = health.liveness(now + Duration::from_secs(301)).expect_err("past the liveness grace");
        assert!(dead.contains("VirtualMachine failing for 301 s"), "{dead}");

        health.standby.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness(now + Duration::from_secs(301)), Ok(()), "a standby stays ready");
        assert_eq!(health.liveness(now + Duration::from_secs(301)), Ok(()));
        health.standby.store(false, Ordering::Relaxed);
        machines.succeeded();
        assert_eq!((health.readiness(now + Duration::from_secs(301)), health.liveness(now + Duration::from_secs(301))), (Ok(()), Ok(())));
    }
}
