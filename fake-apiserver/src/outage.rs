//! Outages: the fake goes down and comes back like a killed and restarted kube-apiserver.
//!
//! In: [`FakeApi::go_down`], [`FakeApi::come_back`] (or both with [`FakeApi::restart`]). Out: while down, every
//! open watch has ended, in-process requests answer `503 ServiceUnavailable`, and [`crate::serve`] has closed its
//! connections and its listening socket (connection refused); once back, the same address answers again and the
//! watch history is forgotten, so a watch resuming from an older `resourceVersion` gets `410 Expired` and relists.
//! The stored objects survive (they live in etcd), and [`FakeApi::insert`] works while down, as the writes another
//! API server replica takes would.

use std::time::Duration;

use crate::FakeApi;

impl FakeApi {
    /// Takes the fake down: every open watch stream ends, HTTP connections close, the listener stops accepting, and
    /// requests fail until [`FakeApi::come_back`]. Requests made while down are not logged. Does nothing when down.
    pub fn go_down(&self) {
        let mut state = self.lock();
        state.watches.end_all();
        self.down.send_replace(true);
    }

    /// Brings the fake back after [`FakeApi::go_down`], with the watch history forgotten. The global
    /// `resourceVersion` goes up by one, as a starting API server's own writes (its identity Lease) move etcd's
    /// revision: every watch from a version seen before the restart gets `410 Expired`, and a client must list
    /// again. Does nothing when up.
    pub fn come_back(&self) {
        let mut state = self.lock();
        if !*self.down.borrow() {
            return;
        }
        state.resource_version += 1;
        let version = state.resource_version;
        state.watches.restart(version);
        self.down.send_replace(false);
    }

    /// Goes down, stays down for `down_for`, and comes back. Give it a few milliseconds at least: [`crate::serve`]
    /// closes its connections and listener when it sees the fake down, and may miss a shorter outage.
    pub async fn restart(&self, down_for: Duration) {
        self.go_down();
        tokio::time::sleep(down_for).await;
        self.come_back();
    }

    /// Whether the fake is down.
    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// A receiver of the down switch, for the HTTP server.
    pub(crate) fn outages(&self) -> tokio::sync::watch::Receiver<bool> {
        self.down.subscribe()
    }
}
