//! Holding a lease of the shared database while work runs under it: taken before the work,
//! renewed every third of `daemon.lease_period`, and given back after. Losing it (the database
//! handed it to another process after this one failed to renew in time) cancels the work, and
//! the fenced store refuses the work's writes from then on.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::store::{Lease, Store};

pub(super) struct Held {
    lease: Lease,
    store: Store,
    /// Cancelled when the lease is lost or the daemon stops.
    pub(super) cancel: CancellationToken,
    renew: JoinHandle<()>,
}

impl Held {
    /// Takes `name` if no other work holds it. `None`: other work does, here or in another
    /// process (or the database cannot be reached: the work waits for its next turn either
    /// way).
    pub(super) async fn take(
        store: &Store,
        name: &str,
        period: Duration,
        parent: &CancellationToken,
    ) -> Option<Held> {
        let lease = match store.take_lease(name, period).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                debug!(
                    lease = name,
                    "held by another run, of this or another ordersync process"
                );
                return None;
            }
            Err(e) => {
                warn!(lease = name, error = %e, "cannot take the lease; trying again at the next turn");
                return None;
            }
        };
        let cancel = parent.child_token();
        let renew = tokio::spawn(keep_renewed(
            store.clone(),
            lease.clone(),
            period,
            cancel.clone(),
        ));
        Some(Held {
            store: store.fenced(&lease),
            lease,
            cancel,
            renew,
        })
    }

    /// The store whose writes stop once the lease is lost.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Gives the lease back. `done`: the work finished; otherwise (stopped by shutdown) another
    /// process takes it over at once.
    pub(super) async fn release(self, done: bool) {
        self.renew.abort();
        if let Err(e) = self.store.release_lease(&self.lease, done).await {
            warn!(lease = %self.lease.name, error = %e,
                  "cannot give the lease back; it frees itself when it expires");
        }
    }
}

/// Renews until cancelled. A renewal the database refuses (lost) cancels the work; so does
/// going two thirds of a period without a renewal confirmed: the lease runs out a period after
/// the last renewal that reached the database, and the work must stop before another daemon
/// may take it. Times count from when a renewal was sent, so its round trip is on our side.
async fn keep_renewed(store: Store, lease: Lease, period: Duration, cancel: CancellationToken) {
    let mut confirmed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period / 3) => {}
            _ = cancel.cancelled() => return,
        }
        let sent = tokio::time::Instant::now();
        let renewed = tokio::select! {
            r = store.renew_lease(&lease, period) => r,
            _ = tokio::time::sleep_until(confirmed + period * 2 / 3) => {
                warn!(lease = %lease.name, "no renewal of the lease confirmed in two thirds of daemon.lease_period; stopping this work before it can run out");
                cancel.cancel();
                return;
            }
            _ = cancel.cancelled() => return,
        };
        match renewed {
            Ok(true) => confirmed = sent,
            Ok(false) => {
                warn!(lease = %lease.name, token = lease.token,
                      "lease taken over by another ordersync process; stopping this work");
                cancel.cancel();
                return;
            }
            // The deadline above stops the work if the next tries fail too.
            Err(e) => warn!(lease = %lease.name, error = %e, "renewing the lease; trying again"),
        }
    }
}
