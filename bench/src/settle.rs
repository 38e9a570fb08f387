//! Waiting until the operator's writes are final.
//!
//! In: the operator's metrics URL, the stand-in's request counter, the
//! instants at which each Wukong first showed its converged status, and a
//! [`Quiet`] (how long, until when). Out: [`Settled`]: when the operator's
//! write counters (Events included, Leases left out) last moved before a
//! quiet period with no operator write, the operator's and the stand-in's
//! counts at that moment, and the writes seen after every status converged
//! and during the quiet period. The metrics are polled every [`POLL`], so the
//! last write is known to within one poll; the poll that saw it is taken (an
//! upper bound).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::count::RequestCounter;
use crate::scrape::{Sample, ScrapeError, scrape};
use crate::writes::total_writes;

/// How often the operator's metrics are read.
pub const POLL: Duration = Duration::from_millis(250);

/// The quiet period to wait for, and the deadlines.
#[derive(Clone, Copy, Debug)]
pub struct Quiet {
    /// How long the operator must write nothing once every Wukong converged.
    pub period: Duration,
    /// When to stop waiting for every Wukong to show its converged status.
    pub status_deadline: Instant,
}

/// What the operator (and the stand-in) had written when the writes stopped.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The poll that first saw the operator's last write (the start when it never wrote).
    pub last_write: Instant,
    /// The operator's metrics at that poll.
    pub operator: Sample,
    /// The stand-in's counts at that poll.
    pub stand_in: Sample,
    /// Operator writes since the start at the first poll that found every
    /// Wukong converged; `None` when they never all converged.
    pub writes_at_status: Option<f64>,
    /// Operator writes during the last quiet period watched: 0 when the
    /// operator went quiet, more when the wait ended at the deadline instead.
    pub idle_writes: f64,
    /// Whether the operator wrote nothing for the whole quiet period after every Wukong converged.
    pub quiet: bool,
}

/// Polls until every one of `expected` Wukongs is in `converged` and the
/// operator then writes nothing for `quiet.period`, or until the deadlines
/// pass (`status_deadline` for the statuses, `status_deadline + period` for
/// the quiet). `before` is the operator's metrics at the start, `stand_in`
/// counts the stand-in's requests when it runs.
pub async fn settle(
    metrics: &str,
    before: &Sample,
    stand_in: Option<&RequestCounter>,
    converged: &Arc<Mutex<BTreeMap<String, Instant>>>,
    expected: usize,
    quiet: Quiet,
) -> Result<Settled, ScrapeError> {
    let stand_in_sample = || stand_in.map(RequestCounter::sample).unwrap_or_default();
    let mut settled = Settled {
        last_write: Instant::now(),
        operator: before.clone(),
        stand_in: stand_in_sample(),
        writes_at_status: None,
        idle_writes: 0.0,
        quiet: false,
    };
    let mut written = 0.0;
    // Operator writes seen at each poll of the last quiet period, oldest first.
    let mut history: VecDeque<(Instant, f64)> = VecDeque::from([(settled.last_write, written)]);
    loop {
        tokio::time::sleep(POLL).await;
        let sample = scrape(metrics).await?;
        let now = Instant::now();
        let total = total_writes(before, &sample);
        if total != written {
            written = total;
            settled = Settled { last_write: now, operator: sample, stand_in: stand_in_sample(), ..settled };
        }
        history.push_back((now, total));
        while history.get(1).is_some_and(|(at, _)| now.saturating_duration_since(*at) >= quiet.period) {
            history.pop_front();
        }
        let all = converged.lock().await.len() >= expected;
        if all && settled.writes_at_status.is_none() {
            settled.writes_at_status = Some(total);
        }
        if all && now.saturating_duration_since(settled.last_write) >= quiet.period {
            settled.quiet = true;
            return Ok(settled);
        }
        if (!all && now > quiet.status_deadline) || now > quiet.status_deadline + quiet.period {
            settled.idle_writes = history.front().map_or(0.0, |(_, then)| total - then);
            return Ok(settled);
        }
    }
}
