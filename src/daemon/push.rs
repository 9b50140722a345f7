//! The push loop: drains the outbox on `push_interval`, one drain at a time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::store::Store;

use super::platform::Platforms;

/// Drains the outbox every `push_interval`. One loop, so drains never overlap; a drain that
/// runs long simply delays the next tick (missed ticks are skipped, not bunched).
pub(super) async fn push_loop(
    store: Store,
    platforms: tokio::sync::watch::Receiver<Platforms>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        // Entries a killed `ordersync push` left in flight come back here, not only at start.
        if let Err(e) = store.recover_in_flight(chrono::Utc::now()).await {
            warn!(error = %e, "recovering outbox entries");
        }
        let current = platforms.borrow().clone();
        match crate::outbox::drain_once(&store, &current, chrono::Utc::now()).await {
            Ok(r) if r.sent + r.already_applied + r.failed > 0 => {
                info!(
                    sent = r.sent,
                    done = r.done,
                    already_applied = r.already_applied,
                    retried = r.retried,
                    failed = r.failed,
                    "outbox drained"
                );
            }
            Ok(_) => {}
            Err(e) => error!(error = %e, "outbox drain failed; will try again"),
        }
    }
}
