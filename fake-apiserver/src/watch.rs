//! Watch: the event history per resource, the open watches, and the streaming body they read.
//!
//! In: every change to a stored object ([`Watches::record`], with the object before and after), and watch requests
//! ([`Watches::subscribe`]: resource, namespace, selectors, starting `resourceVersion`, timeout).
//! Out: per watch, a [`WatchBody`] streaming JSON lines `{"type":"ADDED|MODIFIED|DELETED","object":{...}}`: the
//! remembered events after the starting version (or synthetic ADDED events for the current objects when it is absent
//! or `0`), then live events, until the timeout. An object that stops matching a label selector yields DELETED, one
//! that starts matching yields ADDED. A start older than the bounded history answers one `ERROR` event carrying a
//! `410 Expired` Status and ends, so kube's watcher relists. [`Watches::restart`] ends every open watch and forgets
//! the history, as a restarted API server's empty watch cache does.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::DEFAULT_WATCH_HISTORY;
use crate::request::Selectors;

/// A resource: (`apiVersion`, plural).
type Resource = (String, String);

/// One change to one object, as remembered for watches.
struct Change {
    /// The global `resourceVersion` after the change.
    version: u64,
    namespace: Option<String>,
    /// The object before the change; `None` when it was created.
    before: Option<Arc<Value>>,
    /// The object after the change; `None` when it was deleted.
    after: Option<Arc<Value>>,
}

/// What a watch wants to see.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    /// Only this namespace; every namespace when `None`.
    pub namespace: Option<String>,
    pub selectors: Selectors,
}

impl Filter {
    fn covers(&self, namespace: Option<&str>, object: &Value) -> bool {
        (self.namespace.is_none() || self.namespace.as_deref() == namespace) && self.selectors.matches(object)
    }

    /// The event line this watch sees for a change, if any.
    fn line(&self, change: &Change) -> Option<Bytes> {
        let namespace = change.namespace.as_deref();
        let was = change.before.as_deref().is_some_and(|before| self.covers(namespace, before));
        let is = change.after.as_deref().is_some_and(|after| self.covers(namespace, after));
        match (was, is, &change.after, &change.before) {
            (false, true, Some(after), _) => Some(line("ADDED", after)),
            (true, true, Some(after), _) => Some(line("MODIFIED", after)),
            (true, false, _, Some(before)) => {
                // Like the API server: the last state the watch saw, at the version of the change.
                let mut gone = before.as_ref().clone();
                gone["metadata"]["resourceVersion"] = json!(change.version.to_string());
                Some(line("DELETED", &gone))
            }
            _ => None,
        }
    }
}

/// The remembered events and the open watches of one resource.
#[derive(Default)]
struct Channel {
    history: VecDeque<Change>,
    /// The version of the newest change forgotten: a watch must start at or after it.
    forgotten: u64,
    watchers: Vec<(Filter, UnboundedSender<Bytes>)>,
}

/// The watch state of the whole fake.
pub(crate) struct Watches {
    channels: BTreeMap<Resource, Channel>,
    limit: usize,
    /// The version of the last restart: a watch of any resource must start at or after it.
    restarted: u64,
}

impl Default for Watches {
    fn default() -> Self {
        Watches { channels: BTreeMap::new(), limit: DEFAULT_WATCH_HISTORY, restarted: 0 }
    }
}

/// Where a new watch starts.
pub(crate) enum Start<'a> {
    /// Synthetic ADDED events for these current objects (namespace, object), then live events; with a bookmark
    /// marking the end of the initial events at `version` when `bookmark` is set (`sendInitialEvents=true`).
    Current { objects: Vec<(Option<&'a str>, &'a Value)>, bookmark: Option<(u64, &'a str)> },
    /// The remembered events after this version, then live events.
    After(u64),
}

impl Watches {
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        for channel in self.channels.values_mut() {
            channel.trim(limit);
        }
    }

    /// Ends every open watch, as a dying API server's connections do.
    pub fn end_all(&mut self) {
        for channel in self.channels.values_mut() {
            channel.watchers.clear();
        }
    }

    /// Ends every open watch and forgets every remembered event, as a restarted API server whose watch cache starts
    /// at the current `version`: a watch from an older version gets `410 Expired`.
    pub fn restart(&mut self, version: u64) {
        self.restarted = version;
        for channel in self.channels.values_mut() {
            channel.watchers.clear();
            channel.history.clear();
            channel.forgotten = channel.forgotten.max(version);
        }
    }

    /// Remembers a change and sends it to the open watches that see it.
    pub fn record(&mut self, api_version: &str, plural: &str, version: u64, before: Option<Value>, after: Option<&Value>) {
        let namespace = after.or(before.as_ref()).and_then(|object| object["metadata"]["namespace"].as_str()).map(str::to_owned);
        let change = Change { version, namespace, before: before.map(Arc::new), after: after.map(|after| Arc::new(after.clone())) };
        let channel = self.channels.entry((api_version.to_owned(), plural.to_owned())).or_default();
        channel.watchers.retain(|(filter, sender)| match filter.line(&change) {
            Some(line) => sender.send(line).is_ok(),
            None => !sender.is_closed(),
        });
        channel.history.push_back(change);
        channel.trim(self.limit);
    }

    /// Opens a watch. Call with the state locked, so no change falls between the start and the live events.
    pub fn subscribe(&mut self, api_version: &str, plural: &str, filter: Filter, start: Start<'_>, timeout: Duration) -> WatchBody {
        let channel = self.channels.entry((api_version.to_owned(), plural.to_owned())).or_default();
        let mut pending = VecDeque::new();
        match start {
            Start::Current { objects, bookmark } => {
                let objects = objects.into_iter().filter(|(namespace, object)| filter.covers(*namespace, object));
                pending.extend(objects.map(|(_, object)| line("ADDED", object)));
                if let Some((version, kind)) = bookmark {
                    let marker = json!({"apiVersion": api_version, "kind": kind, "metadata": {
                        "resourceVersion": version.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    pending.push_back(line("BOOKMARK", &marker));
                }
            }
            Start::After(version) if version < channel.forgotten.max(self.restarted) => {
                let message = format!("too old resource version: {version} ({})", channel.forgotten.max(self.restarted));
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": message, "reason": "Expired", "code": 410});
                pending.push_back(line("ERROR", &status));
                return WatchBody::new(pending, None, timeout);
            }
            Start::After(version) => {
                let remembered = channel.history.iter().filter(|change| change.version > version);
                pending.extend(remembered.filter_map(|change| filter.line(change)));
            }
        }
        let (sender, receiver) = unbounded_channel();
        channel.watchers.retain(|(_, sender)| !sender.is_closed());
        channel.watchers.push((filter, sender));
        WatchBody::new(pending, Some(receiver), timeout)
    }
}

impl Channel {
    fn trim(&mut self, limit: usize) {
        while self.history.len() > limit {
            if let Some(change) = self.history.pop_front() {
                self.forgotten = change.version;
            }
        }
    }
}

/// One line of a watch stream.
fn line(kind: &str, object: &Value) -> Bytes {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    // Serialising a `Value` into memory cannot fail: its map keys are strings.
    let mut bytes = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// The streaming body of a watch response: pending lines, then live ones, until the timeout or until the fake
/// stops sending (an expired start).
pub(crate) struct WatchBody {
    pending: VecDeque<Bytes>,
    live: Option<UnboundedReceiver<Bytes>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl WatchBody {
    /// Needs a Tokio runtime with the timer enabled.
    fn new(pending: VecDeque<Bytes>, live: Option<UnboundedReceiver<Bytes>>, timeout: Duration) -> Self {
        WatchBody { pending, live, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(line) = self.pending.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(line))));
        }
        if self.deadline.as_mut().poll(context).is_ready() {
            self.live = None;
            return Poll::Ready(None);
        }
        let Some(live) = self.live.as_mut() else { return Poll::Ready(None) };
        match live.poll_recv(context) {
            Poll::Ready(Some(line)) => Poll::Ready(Some(Ok(Frame::data(line)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.live.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
