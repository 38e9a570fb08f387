//! Prometheus metrics of the operator.
//!
//! In: reconcile outcomes and durations, every request the kube client sends,
//! the Wukong cache at scrape time, the IPPools' addresses. Out: the text exposition served on
//! `/metrics`, with the process collector's `process_resident_memory_bytes` and
//! `process_cpu_seconds_total`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Request;
use kube::runtime::reflector::Store;

use crate::api::GuardedWukong;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciliations: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    requests: IntCounterVec,
    wukongs: IntGaugeVec,
    pools: IntGaugeVec,
}

/// Errors building the metrics (only a duplicate registration, a programming error).
#[derive(Debug, thiserror::Error)]
#[error("failed to register metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(Opts::new("wukong_reconciliations_total", "Reconciliations by result."), &["result"])?;
        let errors = IntCounterVec::new(
            Opts::new("wukong_reconcile_errors_total", "Failed reconcile steps, by step and reason (refusals included)."),
            &["step", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("wukong_reconcile_duration_seconds", "Duration of one reconciliation.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &[],
        )?;
        let requests = IntCounterVec::new(Opts::new("wukong_kube_requests_total", "Requests sent to the API server."), &["verb", "kind"])?;
        let wukongs = IntGaugeVec::new(Opts::new("wukong_wukongs", "Wukongs by phase."), &["phase"])?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(wukongs.clone()))?;
        let pools = IntGaugeVec::new(Opts::new("wukong_ippool_addresses", "Addresses of each IPPool by state."), &["pool", "state"])?;
        registry.register(Box::new(pools.clone()))?;
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Metrics { registry, reconciliations, errors, duration, requests, wukongs, pools })
    }

    /// Records one reconciliation.
    pub fn reconciled(&self, success: bool, elapsed: Duration) {
        self.reconciliations.with_label_values(&[if success { "success" } else { "error" }]).inc();
        self.duration.with_label_values::<&str>(&[]).observe(elapsed.as_secs_f64());
    }

    /// Counts one failed step: `step` is `finalizer`, `resolve`, `validate`,
    /// `apply`, `status` or `cleanup`; `reason` is the refusal's reason or the
    /// API server's (`Conflict`, `InternalError`, ...), `Unreachable` when no
    /// answer came.
    pub fn step_failed(&self, step: &str, reason: &str) {
        self.errors.with_label_values(&[step, reason]).inc();
    }

    /// Sets the addresses of pool `pool`: `allocated` (leased) and `free`.
    pub fn pool_addresses(&self, pool: &str, allocated: i64, free: i64) {
        self.pools.with_label_values(&[pool, "allocated"]).set(allocated);
        self.pools.with_label_values(&[pool, "free"]).set(free);
    }

    /// Removes the series of a pool that is gone.
    pub fn forget_pool(&self, pool: &str) {
        for state in ["allocated", "free"] {
            let _ = self.pools.remove_label_values(&[pool, state]);
        }
    }

    /// Counts one request by verb and resource kind (the URL's resource plural).
    pub fn count_request<B>(&self, request: &Request<B>) {
        let (verb, kind) = classify(request.method().as_str(), request.uri().path(), request.uri().query().unwrap_or_default());
        self.requests.with_label_values(&[verb, &kind]).inc();
    }

    /// The text exposition, counting the cached Wukongs by phase first.
    pub fn render(&self, wukongs: Option<&Store<GuardedWukong>>) -> String {
        if let Some(store) = wukongs {
            let mut phases: BTreeMap<String, i64> =
                ["Pending", "Creating", "Running", "Stopped", "Error"].iter().map(|phase| (phase.to_string(), 0)).collect();
            for wukong in store.state() {
                let phase = wukong.status().and_then(|status| status.phase).map_or("Pending", |phase| phase.as_str());
                *phases.entry(phase.to_string()).or_default() += 1;
            }
            for (phase, count) in phases {
                self.wukongs.with_label_values(&[phase.as_str()]).set(count);
            }
        }
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "failed to encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// Turns a request into (verb, kind): `GET /apis/kubevirt.io/v1/namespaces/a/virtualmachines/b`
/// is ("get", "virtualmachines"); a collection GET is "list", or "watch" with `watch=true`.
pub fn classify(method: &str, path: &str, query: &str) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => &[],
    };
    let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 { &rest[2..] } else { rest };
    let kind = match rest {
        [plural] | [plural, _] => plural.to_string(),
        [plural, _, subresource, ..] => format!("{plural}/{subresource}"),
        [] => "other".to_string(),
    };
    let collection = rest.len() <= 1;
    let verb = match method {
        "GET" if query.split('&').any(|pair| pair == "watch=true" || pair == "watch=1") => "watch",
        "GET" if collection => "list",
        "GET" => "get",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => "other",
    };
    (verb, kind)
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn classifies_requests_by_verb_and_resource() {
        assert_eq!(classify("GET", "/apis/kubevirt.io/v1/namespaces/a/virtualmachines/b", ""), ("get", "virtualmachines".to_string()));
        assert_eq!(
            classify("GET", "/apis/kubevirt.io/v1/virtualmachines", "watch=true&resourceVersion=1"),
            ("watch", "virtualmachines".to_string())
        );
        assert_eq!(classify("GET", "/api/v1/persistentvolumeclaims", "limit=500"), ("list", "persistentvolumeclaims".to_string()));
        assert_eq!(
            classify("PATCH", "/apis/vm.novasphere.dev/v1alpha1/namespaces/a/wukongs/w/status", ""),
            ("patch", "wukongs/status".to_string())
        );
        assert_eq!(classify("POST", "/apis/events.k8s.io/v1/namespaces/a/events", ""), ("create", "events".to_string()));
        assert_eq!(classify("DELETE", "/api/v1/namespaces/a/secrets/s", ""), ("delete", "secrets".to_string()));
    }

    #[test]
    fn renders_the_required_series() {
        let metrics = super::Metrics::new().expect("metrics");
        metrics.reconciled(true, std::time::Duration::from_millis(3));
        metrics.count_request(&http::Request::get("/api/v1/namespaces/a/secrets/s").body(()).expect("request"));
        let text = metrics.render(None);
        for series in [
            "wukong_reconciliations_total{result=\"success\"} 1",
            "wukong_reconcile_duration_seconds_count 1",
            "wukong_kube_requests_total{kind=\"secrets\",verb=\"get\"} 1",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }
}
