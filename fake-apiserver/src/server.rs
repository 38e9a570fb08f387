//! Answering requests: in process for [`FakeApi::client`], and over HTTP/1.1 with [`serve`].
//!
//! In: HTTP requests (a `kube::Client`'s, or any HTTP client's on the listener given to [`serve`]). Out: responses
//! with JSON bodies, or streamed JSON lines for watches, and a kubeconfig ([`kubeconfig`]) pointing a client at the
//! server. Besides the resource paths, `/version`, `/api`, `/apis`, `/healthz`, `/livez` and `/readyz` answer (not
//! logged as requests). While the fake is down ([`FakeApi::go_down`]) in-process requests answer 503 and [`serve`]
//! refuses connections.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::request::{parse_body, parse_path, parse_query, verb_of};
use crate::state::{Failure, Reply};
use crate::watch::WatchBody;
use crate::{FakeApi, Request};

/// The body of a response: all at once, or a watch stream.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Watch(Box<WatchBody>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            ResponseBody::Watch(watch) => Pin::new(watch.as_mut()).poll_frame(context),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Watch(watch) => watch.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64)),
            ResponseBody::Watch(watch) => watch.size_hint(),
        }
    }
}

impl FakeApi {
    /// Answers one request whose body has been read.
    fn respond(&self, parts: &http::request::Parts, body: &[u8]) -> http::Response<ResponseBody> {
        if self.is_down() {
            let failure = Failure::new(503, "ServiceUnavailable", "the fake API server is down (FakeApi::go_down)");
            return json_response(failure.code, &failure.into_status());
        }
        if let Some(answer) = self.answer_discovery(parts) {
            return json_response(200, &answer);
        }
        let query = parse_query(parts.uri.query().unwrap_or(""));
        let target = parse_path(parts.uri.path());
        let has_name = target.as_ref().is_some_and(|target| target.name.is_some());
        let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let request = Request {
            verb: verb_of(&parts.method, has_name, &query),
            path: parts.uri.path().to_owned(),
            body: parse_body(body, content_type.as_deref()),
            query,
            content_type,
        };
        let mut state = self.lock();
        // Checked again under the lock, which `go_down` holds while ending the watches: no watch opens after that.
        if self.is_down() {
            drop(state);
            let failure = Failure::new(503, "ServiceUnavailable", "the fake API server is down (FakeApi::go_down)");
            return json_response(failure.code, &failure.into_status());
        }
        state.requests.push(request.clone());
        let reply = match state.faults.iter().position(|fault| (fault.matcher)(&request)) {
            Some(index) => {
                let fault = state.faults.remove(index);
                Err(Failure::new(fault.code, &fault.reason, "injected by FakeApi::fail_next"))
            }
            None => state.dispatch(&request, target),
        };
        drop(state);
        match reply {
            Ok(Reply::Json(code, value)) => json_response(code, &value),
            Ok(Reply::Watch(watch)) => response(200, ResponseBody::Watch(Box::new(watch))),
            Err(failure) => json_response(failure.code, &failure.into_status()),
        }
    }

    /// The answer to `GET /version`, `/api`, `/apis` and the health paths; `None` for any other request.
    fn answer_discovery(&self, parts: &http::request::Parts) -> Option<Value> {
        if parts.method != http::Method::GET {
            return None;
        }
        let answer = match parts.uri.path().trim_end_matches('/') {
            "/version" => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "", "gitTreeState": "clean",
                                 "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
            "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            "/apis" => self.api_groups(),
            "/healthz" | "/livez" | "/readyz" => Value::String("ok".to_owned()),
            _ => return None,
        };
        Some(answer)
    }

    /// An `APIGroupList` of the groups of the stored objects, plus `coordination.k8s.io/v1`.
    fn api_groups(&self) -> Value {
        let state = self.lock();
        let mut group_versions: BTreeSet<&str> = state.objects.keys().map(|key| key.api_version.as_str()).collect();
        group_versions.insert("coordination.k8s.io/v1");
        let groups: Vec<Value> = group_versions
            .into_iter()
            .filter_map(|group_version| group_version.split_once('/'))
            .map(|(group, version)| {
                let version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
                json!({"name": group, "versions": [version.clone()], "preferredVersion": version})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }
}

fn response(code: u16, body: ResponseBody) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn json_response(code: u16, value: &Value) -> http::Response<ResponseBody> {
    response(code, ResponseBody::Full(Some(Bytes::from(value.to_string()))))
}

/// Adapts [`FakeApi`] to the `tower::Service` that [`kube::Client::new`] needs.
#[derive(Clone)]
pub(crate) struct FakeService {
    api: FakeApi,
}

impl FakeService {
    pub fn new(api: FakeApi) -> Self {
        FakeService { api }
    }
}

impl tower::Service<http::Request<kube::client::Body>> for FakeService {
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let api = self.api.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.map(|bytes| bytes.to_vec()).unwrap_or_default();
            Ok(api.respond(&parts, &body))
        })
    }
}

/// Serves `api` over HTTP/1.1 on `listener` (bind it to loopback, e.g. `127.0.0.1:0`) until the returned future is
/// dropped or its task aborted. Each connection runs on its own task; watch responses stream with chunked encoding.
/// While `api` is down ([`FakeApi::go_down`]) every connection is closed and the listening socket too (connections
/// are refused); when it comes back, the same address is bound again. Needs a Tokio runtime with IO and time enabled.
pub async fn serve(api: FakeApi, listener: TcpListener) {
    let address = listener.local_addr().ok();
    let mut outages = api.outages();
    let mut listener = Some(listener);
    loop {
        let Some(current) = listener.as_ref() else {
            if !until(&mut outages, false).await {
                return;
            }
            // `address` is known here: the listener is only dropped when it is.
            listener = match address {
                Some(address) => Some(rebind(address).await),
                None => return,
            };
            continue;
        };
        let stream = tokio::select! {
            accepted = current.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Accept fails on transient conditions (e.g. too many open files): wait a little and go on.
                    tracing::warn!(%error, "fake-apiserver: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            down = until(&mut outages, true) => {
                if !down {
                    return;
                }
                if address.is_some() {
                    listener = None;
                } else if !until(&mut outages, false).await {
                    // Without a known address the socket could not be bound again: it stays open, accepting nothing.
                    return;
                }
                continue;
            }
        };
        tokio::spawn(serve_connection(api.clone(), stream));
    }
}

/// Serves one connection until it ends or the fake goes down.
async fn serve_connection(api: FakeApi, stream: tokio::net::TcpStream) {
    let mut outages = api.outages();
    let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let api = api.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
            Ok::<_, Infallible>(api.respond(&parts, &body))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let outage = async move {
        if !until(&mut outages, true).await {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "fake-apiserver: connection ended");
            }
        }
        () = outage => tracing::debug!("fake-apiserver: connection closed by an outage"),
    }
}

/// Waits until the fake's down switch is `down`; false when the switch is gone (the fake dropped).
async fn until(outages: &mut tokio::sync::watch::Receiver<bool>, down: bool) -> bool {
    outages.wait_for(|value| *value == down).await.is_ok()
}

/// Binds `address` again after an outage, retrying while the port is not free yet.
async fn rebind(address: std::net::SocketAddr) -> TcpListener {
    let mut warned = false;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(error) => {
                if !warned {
                    tracing::warn!(%error, %address, "fake-apiserver: failed to listen again after an outage; retrying");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A kubeconfig YAML for a client of the fake at `server_url` (e.g. `http://127.0.0.1:PORT`): cluster `fake`, a user
/// `fake` without credentials, context `fake` (current) with namespace `default`. `kube::Config::infer` accepts it
/// through `KUBECONFIG`, `kube::Config::from_custom_kubeconfig` after `kube::config::Kubeconfig::from_yaml`.
pub fn kubeconfig(server_url: &str) -> String {
    let server = serde_json::to_string(server_url).unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: {server}
users:
  - name: fake
    user: {{}}
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
      namespace: default
current-context: fake
preferences: {{}}
"
    )
}
