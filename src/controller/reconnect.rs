//! Reconnecting a kube-runtime watcher after an API server outage, promptly and without surfacing errors.
//!
//! In: a way to make a fresh `watcher` stream of one kind, and its [`WatchReporter`]. Out: the same events, never an
//! error: a failed request is reported, logged (once per failure, not per retry) and retried after a
//! [`ReconnectBackoff`] delay (0.5 s doubling to at most 5 s, reset by a success); an expired `resourceVersion`
//! (410 Gone) re-lists at once. The Controller never sees an error, so its own trigger backoff (which pauses every
//! trigger stream together) never starts.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use tracing::{debug, info, warn};

use super::watch_health::WatchReporter;

/// The delay before the first retry of a failing watch.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between retries: the most a watch waits after its API server is back.
pub const LONGEST_DELAY: Duration = Duration::from_secs(5);

/// Retry delays of a failing watch: [`FIRST_DELAY`], doubling up to [`LONGEST_DELAY`], each with up to a quarter
/// more at random so many watches do not retry in step. [`Backoff::reset`] starts over.
#[derive(Clone, Debug, Default)]
pub struct ReconnectBackoff {
    attempts: u32,
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let doubled = FIRST_DELAY.saturating_mul(1u32.checked_shl(self.attempts).unwrap_or(u32::MAX));
        self.attempts = self.attempts.saturating_add(1);
        let delay = doubled.min(LONGEST_DELAY);
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(self.attempts);
        let quarter = delay / 4;
        let jitter = quarter.mul_f64((random.finish() % 1024) as f64 / 1024.0);
        Some(delay + jitter)
    }
}

impl Backoff for ReconnectBackoff {
    fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// How a watcher error is handled.
#[derive(Debug, PartialEq, Eq)]
enum Recovery {
    /// The watcher re-lists by itself on its next poll (a 410 in the stream or on a list): poll at once.
    RelistNow,
    /// The resumed watch was refused with 410 before it started: kube's watcher would retry the same version
    /// forever, so a fresh watcher (which lists first) replaces it.
    Restart,
    /// Anything else: retry after the backoff.
    Retry,
}

fn recovery(error: &watcher::Error) -> Recovery {
    match error {
        watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410 => Recovery::Restart,
        watcher::Error::WatchError(status) if status.code == 410 => Recovery::RelistNow,
        watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 410 => Recovery::RelistNow,
        _ => Recovery::Retry,
    }
}

/// The state of one reconnecting watch.
struct Reconnecting<K, W> {
    events: BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    watch: W,
    reporter: WatchReporter,
    backoff: ReconnectBackoff,
    /// An expired version is being re-listed and no object has arrived since: a second expiry now is retried after
    /// the backoff, so an API server answering 410 to everything is not asked again in a tight loop.
    relisting: bool,
}

/// The events of the watchers `watch` makes (one at first, another after a refused resume), with every error
/// handled as the module says; `reporter` learns of the failures.
pub fn reconnecting<K, W>(watch: W, reporter: WatchReporter) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Send + 'static,
    W: Fn() -> BoxStream<'static, watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    let state = Reconnecting { events: watch(), watch, reporter, backoff: ReconnectBackoff::default(), relisting: false };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            let error = match state.events.next().await {
                Some(Ok(event)) => {
                    state.relisting &= matches!(event, watcher::Event::Init);
                    return Some((Ok(event), state));
                }
                Some(Err(error)) => error,
                // kube's watcher never ends; should one, a fresh one lists again.
                None => {
                    state.events = (state.watch)();
                    continue;
                }
            };
            state.handle(&error).await;
        }
    })
}

impl<K, W> Reconnecting<K, W>
where
    W: Fn() -> BoxStream<'static, watcher::Result<watcher::Event<K>>>,
{
    /// Reports, logs and recovers from one error; returns when the watcher may be polled again.
    async fn handle(&mut self, error: &watcher::Error) {
        let name = self.reporter.name();
        match recovery(error) {
            Recovery::RelistNow | Recovery::Restart if !self.relisting => {
                info!(watch = name, %error, "the watch's resourceVersion expired: re-listing now");
                self.relisting = true;
                if recovery(error) == Recovery::Restart {
                    self.events = (self.watch)();
                }
            }
            recovery => {
                if self.reporter.failed(error) {
                    self.backoff.reset();
                    warn!(watch = name, %error, "the watch is failing; retrying until the API server answers");
                } else {
                    debug!(watch = name, %error, "the watch is still failing");
                }
                if recovery == Recovery::Restart {
                    self.events = (self.watch)();
                }
                tokio::time::sleep(self.backoff.next().unwrap_or(LONGEST_DELAY)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use kube::core::Status;
    use kube::runtime::utils::Backoff;
    use kube::runtime::watcher;

    use super::{FIRST_DELAY, LONGEST_DELAY, ReconnectBackoff, Recovery, reconnecting, recovery};
    use crate::controller::watch_health::WatchHealth;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("too old resource version: 407 (413)", "Expired").with_code(code))
    }

    #[test]
    fn delays_grow_to_a_small_cap_and_reset() {
        let mut backoff = ReconnectBackoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(8).collect();
        assert!(delays[0] >= FIRST_DELAY && delays[0] <= FIRST_DELAY * 5 / 4, "{delays:?}");
        assert!(delays[1] >= FIRST_DELAY * 2, "{delays:?}");
        assert!(delays.iter().all(|delay| *delay <= LONGEST_DELAY * 5 / 4), "{delays:?}");
        assert!(delays[7] >= LONGEST_DELAY, "{delays:?}");
        backoff.reset();
        assert!(backoff.next().is_some_and(|delay| delay <= FIRST_DELAY * 5 / 4));
    }

    #[test]
    fn an_expired_version_relists_at_once() {
        assert_eq!(recovery(&watcher::Error::WatchError(status(410))), Recovery::RelistNow);
        assert_eq!(recovery(&watcher::Error::WatchStartFailed(kube::Error::Api(status(410)))), Recovery::Restart);
        assert_eq!(recovery(&watcher::Error::WatchStartFailed(kube::Error::Api(status(503)))), Recovery::Retry);
        assert_eq!(recovery(&watcher::Error::WatchError(status(500))), Recovery::Retry);
    }

    #[tokio::test]
    async fn errors_are_reported_and_retried_never_passed_on() {
        let health = WatchHealth::new();
        let reporter = health.register("VirtualMachine");
        let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let watch = move || {
            let first = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let events: Vec<watcher::Result<watcher::Event<String>>> = if first {
                vec![
                    Err(watcher::Error::WatchStartFailed(kube::Error::Api(status(503)))),
                    Err(watcher::Error::WatchStartFailed(kube::Error::Api(status(410)))),
                ]
            } else {
                vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)]
            };
            futures::stream::iter(events).chain(futures::stream::pending()).boxed()
        };
        let mut events = reconnecting(watch, reporter).boxed();
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("an event after the retry");
        assert!(matches!(first, Some(Ok(watcher::Event::Init))), "{first:?}");
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 2, "a refused resume makes a fresh watcher");
        let failing = health.failing_longer_than(Duration::ZERO, std::time::Instant::now() + Duration::from_secs(1));
        assert_eq!(failing.len(), 1, "the 503 is reported, the 410 is not: {failing:?}");
    }

    #[tokio::test]
    async fn a_second_expiry_without_progress_is_a_failure() {
        let health = WatchHealth::new();
        let reporter = health.register("Wukong");
        let watch = || {
            let events: Vec<watcher::Result<watcher::Event<String>>> = vec![
                Err(watcher::Error::WatchError(status(410))),
                Ok(watcher::Event::Init),
                Err(watcher::Error::WatchError(status(410))),
                Ok(watcher::Event::Init),
                Ok(watcher::Event::InitDone),
            ];
            futures::stream::iter(events).chain(futures::stream::pending()).boxed()
        };
        let mut events = reconnecting(watch, reporter).boxed();
        let now = std::time::Instant::now;
        assert!(matches!(events.next().await, Some(Ok(watcher::Event::Init))));
        assert!(health.failing_longer_than(Duration::ZERO, now() + Duration::from_secs(1)).is_empty(), "one expiry is no failure");
        assert!(matches!(events.next().await, Some(Ok(watcher::Event::Init))));
        let failing = health.failing_longer_than(Duration::ZERO, now() + Duration::from_secs(1));
        assert_eq!(failing.len(), 1, "a second expiry before any object is: {failing:?}");
        assert!(matches!(events.next().await, Some(Ok(watcher::Event::InitDone))));
    }
}
