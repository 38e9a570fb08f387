//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager).
//!
//! In: a client, the lease's namespace and this replica's identity. Out: a
//! [`Leadership`] that resolves when this replica leads, resolves again when it
//! loses the lease, and releases the lease at once when dropped by
//! [`Leadership::release`] (so a graceful SIGTERM hands over immediately).

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Name of the Lease.
pub const LEASE_NAME: &str = "wukong-operator";
/// How long a lease is valid after its last renewal; a standby takes over at
/// most this long after the leader dies.
pub const LEASE_SECONDS: u64 = 15;
/// How long before expiry the leader renews.
pub const RENEW_BEFORE_SECONDS: u64 = 5;

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Creating the lease manager failed.
    #[error("failed to set up the lease \"{namespace}/{LEASE_NAME}\": {source}")]
    Setup {
        /// Namespace of the lease.
        namespace: String,
        /// The error.
        #[source]
        source: LeaseManagerError,
    },
}

/// This replica's part in the election.
pub struct Leadership {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Joins the election for the lease in `namespace` as `identity`.
    pub async fn join(client: Client, namespace: &str, identity: &str) -> Result<Leadership, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(RENEW_BEFORE_SECONDS)
            .build()
            .await
            .map_err(|source| LeaderError::Setup { namespace: namespace.to_string(), source })?;
        let (state, task) = manager.watch().await;
        Ok(Leadership { state, task })
    }

    /// Waits until this replica holds the lease. Returns false if the election ended.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|leader| *leader).await.is_ok()
    }

    /// Waits until this replica no longer holds the lease.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leader| !*leader).await;
    }

    /// Leaves the election, releasing the lease if held.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => info!("released the leader lease"),
            Ok(Err(error)) => warn!(%error, "failed to release the leader lease"),
            Err(error) => warn!(%error, "the lease task failed"),
        }
    }
}
