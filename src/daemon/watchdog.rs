//! The systemd watchdog and the scheduler heartbeat it checks: the daemon pings systemd only
//! while its timetable ticks and its database writer finishes jobs.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::Store;

/// Unix seconds of the scheduler's last tick of its heartbeat job: the watchdog's proof that the
/// timetable itself is alive, not only the process.
#[derive(Clone)]
pub(super) struct Heartbeat(Arc<std::sync::atomic::AtomicI64>);

impl Heartbeat {
    pub(super) const EVERY: &'static str = "*/10 * * * * *";
    /// Three missed beats: the scheduler is stuck.
    const STALE_AFTER_SECS: i64 = 35;

    pub(super) fn new() -> Heartbeat {
        Heartbeat(Arc::new(std::sync::atomic::AtomicI64::new(
            chrono::Utc::now().timestamp(),
        )))
    }

    pub(super) fn beat(&self) {
        self.0.store(
            chrono::Utc::now().timestamp(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn age_secs(&self) -> i64 {
        chrono::Utc::now().timestamp() - self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Pings systemd's watchdog at half its interval, but only while the timetable ticks and
/// the database writer is alive: a stuck timetable or a wedged writer (disk gone, a syscall that
/// never returns) stops the pings and systemd restarts us. A writer that answers with errors
/// (read-only file, full disk, another program's lock) is alive: a restart would not fix any of
/// those, and the daemon recovers by itself when they clear.
pub(super) async fn watchdog(
    interval: Duration,
    store: Store,
    heartbeat: Heartbeat,
    cancel: CancellationToken,
) {
    let period = interval / 2;
    // A job waiting out another program's lock takes up to busy_timeout: finishing jobs at that
    // pace is still progress.
    let progress_window = period + store.busy_timeout();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        if heartbeat.age_secs() > Heartbeat::STALE_AFTER_SECS {
            warn!(
                "the scheduler has not ticked for {} s; withholding the watchdog ping",
                heartbeat.age_secs()
            );
            continue;
        }
        let answered = matches!(tokio::time::timeout(period, store.ping()).await, Ok(Ok(())));
        let progressing = (chrono::Utc::now() - store.last_progress())
            .to_std()
            .is_ok_and(|age| age < progress_window);
        if answered || progressing {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            warn!(
                "database writer has finished no job for {progress_window:?}; withholding the watchdog ping"
            );
        }
    }
}
