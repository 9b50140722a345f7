//! Holding a lease of the shared database while work runs under it: taken before the work,
//! renewed while it runs, and given back after. Losing it (the database handed it to another
//! process after this one failed to renew in time) cancels the work, and the fenced store
//! refuses the work's writes from then on. Also how `daemon.lease_period` divides into the
//! lease's expiry, its renewals and the others' looks for abandoned work ([`LeaseTimes`]).

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::store::{Lease, Store};

/// `daemon.lease_period` is the operator's promise: work a daemon holds when it dies is taken
/// over by another daemon within that period. Its parts:
///
/// - each renewal writes an expiry 0.6 of a period ahead ([`LeaseTimes::expiry`]);
/// - the holder renews every tenth of a period, so two may fail without consequence;
/// - a holder with no renewal confirmed for 0.3 of a period stops its work, 0.3 of a period
///   before the lease can run out under it: the margin for the page in flight to end and for
///   a loaded machine to get round to it (at 0.5 s of a 3 s period, the three-daemon test saw
///   two list requests of one shop overlap on a loaded machine);
/// - every daemon looks for abandoned leases every eighth of a period
///   ([`LeaseTimes::look_every`]).
///
/// A daemon killed just after a renewal leaves a lease that runs out 0.6 of a period later, and
/// is found at the latest an eighth of a period after that, leaving over a quarter of it for
/// the takeover run to start.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseTimes {
    period: Duration,
}

impl LeaseTimes {
    pub(super) fn new(period: Duration) -> LeaseTimes {
        LeaseTimes { period }
    }

    /// How far ahead each take or renewal sets the expiry.
    pub(super) fn expiry(self) -> Duration {
        self.period * 3 / 5
    }

    fn renew_every(self) -> Duration {
        self.period / 10
    }

    /// The longest the holder works without a confirmed renewal.
    fn give_up_after(self) -> Duration {
        self.period * 3 / 10
    }

    /// How often a daemon looks for leases another daemon abandoned.
    pub(super) fn look_every(self) -> Duration {
        self.period / 8
    }
}

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
        times: LeaseTimes,
        parent: &CancellationToken,
    ) -> Option<Held> {
        // The expiry counts from when the database took the lease, so the holder's deadlines
        // count from before the request: a slow answer must not stretch them past it.
        let sent = tokio::time::Instant::now();
        let lease = match store.take_lease(name, times.expiry()).await {
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
            times,
            sent,
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

    /// Gives the lease back: done if the work ran to its end, otherwise (cut short by shutdown,
    /// or by renewals that did not come through, both of which cancel `self.cancel`) given back
    /// unfinished, for a daemon to take over now rather than at its next scheduled time. Given
    /// back as done after lost renewals, a platform waited for its next scheduled run with its
    /// pass half done (seen on a loaded test machine).
    pub(super) async fn release(self) {
        let done = !self.cancel.is_cancelled();
        self.renew.abort();
        if let Err(e) = self.store.release_lease(&self.lease, done).await {
            warn!(lease = %self.lease.name, error = %e,
                  "cannot give the lease back; it frees itself when it expires");
        }
    }
}

/// Renews until cancelled. A renewal the database refuses (lost) cancels the work; so does
/// going too long without a renewal confirmed (see [`LeaseTimes`]): the work must stop before
/// the lease runs out and another daemon may take it. Times count from when a renewal was
/// sent, so its round trip is on our side.
async fn keep_renewed(
    store: Store,
    lease: Lease,
    times: LeaseTimes,
    taken: tokio::time::Instant,
    cancel: CancellationToken,
) {
    let mut confirmed = taken;
    loop {
        // The deadline is watched while waiting to renew too: a renewal that failed fast must
        // not leave the work going past it until the next try.
        let deadline = tokio::time::sleep_until(confirmed + times.give_up_after());
        tokio::pin!(deadline);
        tokio::select! {
            _ = tokio::time::sleep(times.renew_every()) => {}
            _ = &mut deadline => return give_up(&lease, &cancel),
            _ = cancel.cancelled() => return,
        }
        let sent = tokio::time::Instant::now();
        let renewed = tokio::select! {
            r = store.renew_lease(&lease, times.expiry()) => r,
            _ = &mut deadline => return give_up(&lease, &cancel),
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
            // The deadline stops the work if the next tries fail too.
            Err(e) => warn!(lease = %lease.name, error = %e, "renewing the lease; trying again"),
        }
    }
}

fn give_up(lease: &Lease, cancel: &CancellationToken) {
    warn!(lease = %lease.name, "no renewal of the lease confirmed in 0.3 of daemon.lease_period; stopping this work before it can run out");
    cancel.cancel();
}
