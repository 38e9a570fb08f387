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

/// The events of the watchers `watch` makes (one at first, another after a refused resume), with every error
/// handled as the module says; `reporter` learns of the failures.
pub fn reconnecting<K: Send + 'static>(
    watch: impl Fn() -> BoxStream<'static, watcher::Result<watcher::Event<K>>> + Send + 'static,
    reporter: WatchReporter,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static {
    let events = watch();
    let state = (events, watch, reporter, ReconnectBackoff::default());
    futures::stream::unfold(state, |(mut events, watch, reporter, mut backoff)| async move {
        loop {
            let error = match events.next().await {
                Some(Ok(event)) => return Some((Ok(event), (events, watch, reporter, backoff))),
                Some(Err(error)) => error,
                // kube's watcher never ends; should one, a fresh one lists again.
                None => {
                    events = watch();
                    continue;
                }
            };
            let name = reporter.name();
            match recovery(&error) {
                Recovery::RelistNow => info!(watch = name, %error, "the watch's resourceVersion expired: re-listing now"),
                Recovery::Restart => {
                    info!(watch = name, %error, "the watch's resourceVersion expired: re-listing now");
                    events = watch();
                }
                Recovery::Retry => {
                    if reporter.failed(&error) {
                        backoff.reset();
                        warn!(watch = name, %error, "the watch is failing; retrying until the API server answers");
                    } else {
                        debug!(watch = name, %error, "the watch is still failing");
                    }
                    let delay = backoff.next().unwrap_or(LONGEST_DELAY);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    })
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
}
