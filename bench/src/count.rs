//! Counting the requests of a client the bench itself runs (the stand-in for
//! KubeVirt, CDI and storage).
//!
//! In: a `kube::Config`. Out: a client whose every request is counted by
//! (verb, kind) exactly as the operator counts its own
//! (`wukong::controller::metrics::classify`), and a [`Sample`] of the counts
//! at any moment, so the stand-in's writes are compared with the operator's
//! by the same code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Client;
use kube::client::ClientBuilder;
use wukong::controller::metrics::classify;

use crate::scrape::Sample;

/// Requests sent by the clients made with [`RequestCounter::client`], by (verb, kind).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounter {
    /// A client of `config` that counts its requests here.
    pub fn client(&self, config: kube::Config) -> Result<Client, kube::Error> {
        let counter = self.clone();
        let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            counter.count(&request);
            request
        });
        Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
    }

    /// Counts one request.
    pub fn count<B>(&self, request: &http::Request<B>) {
        let (verb, kind) = classify(request.method().as_str(), request.uri().path(), request.uri().query().unwrap_or_default());
        // A poisoned lock only means a panic elsewhere while counting; the counts stay usable.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((verb.to_string(), kind)).or_default() += 1;
    }

    /// The counts so far, as a [`Sample`] (no memory or CPU figures).
    pub fn sample(&self) -> Sample {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let requests = counts.iter().map(|(key, count)| (key.clone(), *count as f64)).collect();
        Sample { requests, ..Sample::default() }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, reason = "a failed expectation is a failed test")]

    use super::RequestCounter;
    use crate::writes::total_writes;

    #[test]
    fn counts_requests_like_the_operator_does() {
        let counter = RequestCounter::default();
        let request = |method: &str, path: &str| http::Request::builder().method(method).uri(path).body(()).expect("request");
        counter.count(&request("POST", "/apis/kubevirt.io/v1/namespaces/a/virtualmachineinstances"));
        counter.count(&request("PATCH", "/api/v1/namespaces/a/persistentvolumeclaims/c/status"));
        counter.count(&request("PATCH", "/api/v1/namespaces/a/persistentvolumeclaims/d/status"));
        counter.count(&request("GET", "/api/v1/namespaces/a/persistentvolumeclaims?watch=true"));
        let sample = counter.sample();
        assert_eq!(sample.requests.get(&("create".to_string(), "virtualmachineinstances".to_string())), Some(&1.0));
        assert_eq!(sample.requests.get(&("patch".to_string(), "persistentvolumeclaims/status".to_string())), Some(&2.0));
        assert_eq!(total_writes(&Default::default(), &sample), 3.0);
    }
}
