//! Publishing Kubernetes Events (`events.k8s.io/v1`), with repeats folded
//! into a series.
//!
//! In: an [`Event`] (type, reason, note, action) and the object it regards.
//! Out: a created Event, or, when the same event (type, action, reason,
//! note, object) was published in the last [`SERIES_WINDOW`], a merge patch of that
//! Event's `series` (count and last time) — what kube's recorder does, while
//! remembering only the name, count and time of each recent Event instead of
//! the whole object: a burst of 10,000 Wukongs publishes 10,000 Events, and a
//! copy of each (about 4 KiB) kept for the window was a tenth of the
//! operator's heap.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};
use serde::Serialize;

/// How long a published Event takes repeats into its series.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// One recently published Event.
struct Published {
    /// Its name, for the series patch (its namespace is the regarded object's, part of the key).
    name: String,
    /// How often it happened so far.
    count: i32,
    /// When it was last published.
    last: Instant,
}

/// Publishes Events as one reporting controller.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    /// Recently published Events by a hash of (type, action, reason, note, regarded object, related object).
    published: Arc<Mutex<HashMap<u64, Published>>>,
}

/// The merge patch that extends an Event's series.
#[derive(Serialize, Debug)]
struct SeriesPatch {
    series: EventSeries,
}

fn key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    matches!(event.type_, EventType::Warning).hash(&mut hasher);
    (&event.action, &event.reason, &event.note).hash(&mut hasher);
    for reference in std::iter::once(Some(regarding)).chain(std::iter::once(event.secondary.as_ref())).flatten() {
        (&reference.api_version, &reference.kind, &reference.namespace, &reference.name, &reference.uid).hash(&mut hasher);
    }
    hasher.finish()
}

impl Recorder {
    /// A recorder reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder { client, reporter, published: Arc::default() }
    }

    /// How many published Events are remembered for their series.
    pub fn remembered(&self) -> usize {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Publishes `event` about `regarding` (cluster-scoped objects' Events go to `default`).
    ///
    /// # Errors
    /// The API server's answer when it refuses the create or the patch.
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_string());
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let key = key(event, regarding);
        let now = Instant::now();
        let repeat = {
            let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
            published.retain(|_, entry| now.duration_since(entry.last) < SERIES_WINDOW);
            published.get(&key).map(|entry| (entry.name.clone(), entry.count + 1))
        };
        if let Some((name, count)) = repeat {
            let patch = SeriesPatch { series: EventSeries { count, last_observed_time: MicroTime(Timestamp::now()) } };
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.remember(key, Published { name, count, last: now });
                    return Ok(());
                }
                // The Event expired (the API server keeps them an hour by default): a new one starts.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let created = api.create(&PostParams::default(), &self.event(event, regarding, &namespace)).await?;
        let name = created.metadata.name.unwrap_or_default();
        self.remember(key, Published { name, count: 1, last: now });
        Ok(())
    }

    fn remember(&self, key: u64, entry: Published) {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).insert(key, entry);
    }

    fn event(&self, event: &Event, regarding: &ObjectReference, namespace: &str) -> KubeEvent {
        let now = Timestamp::now();
        let subject = regarding.name.as_deref().unwrap_or(&self.reporter.controller);
        KubeEvent {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(format!("{subject}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone())),
            type_: Some(if matches!(event.type_, EventType::Warning) { "Warning" } else { "Normal" }.to_string()),
            ..KubeEvent::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "a failed expectation is a failed test")]
mod tests {
    use fake_apiserver::FakeApi;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event as KubeEvent;

    use super::{Event, EventType, Recorder, Reporter};

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(note.to_string()),
            action: "Reconcile".to_string(),
            secondary: None,
        }
    }

    fn wukong(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("vm.novasphere.dev/v1alpha1".to_string()),
            kind: Some("Wukong".to_string()),
            namespace: Some("prod".to_string()),
            name: Some(name.to_string()),
            uid: Some(format!("{name}-uid")),
            ..ObjectReference::default()
        }
    }

    #[tokio::test]
    async fn repeats_extend_a_series_and_other_events_stand_alone() {
        let fake = FakeApi::new();
        let recorder = Recorder::new(fake.client(), Reporter { controller: "wukong-operator".to_string(), instance: None });
        for _ in 0..3 {
            recorder.publish(&event("ApplyFailed", "failed to apply"), &wukong("web")).await.expect("publish");
        }
        recorder.publish(&event("StatusFailed", "failed to write"), &wukong("web")).await.expect("publish");
        recorder.publish(&event("ApplyFailed", "failed to apply"), &wukong("db")).await.expect("publish");

        let events = fake.list_typed::<KubeEvent>();
        assert_eq!(events.len(), 3, "one Event per reason and object");
        let repeated = events
            .iter()
            .find(|event| {
                event.reason.as_deref() == Some("ApplyFailed") && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web")
            })
            .expect("the repeated Event");
        assert_eq!(repeated.series.as_ref().map(|series| series.count), Some(3));
        assert_eq!(repeated.reporting_controller.as_deref(), Some("wukong-operator"));
        assert_eq!(repeated.type_.as_deref(), Some("Warning"));
        assert_eq!(recorder.remembered(), 3);
    }

    #[tokio::test]
    async fn an_expired_event_starts_a_new_one() {
        let fake = FakeApi::new();
        let recorder = Recorder::new(fake.client(), Reporter { controller: "wukong-operator".to_string(), instance: None });
        recorder.publish(&event("ApplyFailed", "failed"), &wukong("web")).await.expect("publish");
        for listed in fake.list("events.k8s.io/v1", "events") {
            let name = listed["metadata"]["name"].as_str().expect("a name").to_string();
            let api: kube::Api<KubeEvent> = kube::Api::namespaced(fake.client(), "prod");
            api.delete(&name, &Default::default()).await.expect("the API server expires it");
        }
        recorder.publish(&event("ApplyFailed", "failed"), &wukong("web")).await.expect("publish after expiry");
        let events = fake.list_typed::<KubeEvent>();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].series, None, "a fresh Event, not a series of a gone one");
    }
}
