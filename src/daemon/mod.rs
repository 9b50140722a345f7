//! The daemon (`ordersync run`): it opens the store, takes the database's daemon lock, builds
//! the platforms, and then lives in [`run`]'s loop until a signal stops it. Its parts, one file
//! each: [`platform`] (one platform's runs and what keeps them apart), [`timetable`] (the cron
//! jobs), [`signals`] (stop and reload), [`push`] (the outbox loop), [`watchdog`] (systemd's
//! watchdog and the scheduler heartbeat), [`daemon_lock`] (one daemon per database), [`health`]
//! (`/metrics` and `/health`), [`sinks`] (the change feed's delivery tasks). Runs go to a task
//! tracker that shutdown drains within `shutdown_grace`.

mod daemon_lock;
mod health;
mod lease;
pub mod memory;
mod platform;
mod push;
mod signals;
mod sinks;
mod timetable;
mod watchdog;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use daemon_lock::{DaemonLock, DaemonLockError};

use crate::config::Config;
use crate::http::Redactor;
use crate::store::Store;
use crate::sync::PassKind;

pub use platform::{Platform, RunLocks, build_platforms};

use push::push_loop;
use signals::{Signal, Signals, warn_daemon_changes};
use timetable::Timetable;
use watchdog::{Heartbeat, watchdog};

#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Stop when this is cancelled (the demo's timer); signals always stop the daemon too.
    pub stop: Option<CancellationToken>,
}

/// `ordersync run`: schedules every enabled platform until SIGTERM/SIGINT, then stops taking
/// new work, lets the pages in flight commit and returns within `shutdown_grace`. SIGHUP
/// re-reads the configuration: a valid one replaces the timetable without a restart, an
/// invalid one is logged (file and key) and the old one stays in force.
pub async fn run(config: Config, opts: DaemonOptions) -> anyhow::Result<()> {
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout)
        .await
        .with_context(|| {
            // Waiting here would hold up systemd's start (and its timeout); the shipped unit's
            // Restart=on-failure is the retry, and says so.
            format!(
                "opening the database named by daemon.database in {} (the daemon exits; the \
                 shipped systemd unit starts it again every 5 s until the database answers)",
                config.main_file.display()
            )
        })?;
    // Before anything touches the database's work (the outbox recovery below would reset the
    // other daemon's pushes in flight).
    // On PostgreSQL there is no file to lock (daemons on several machines share the database):
    // this is the hook where a database lease belongs.
    let _daemon_lock = match store.file_lock_base() {
        Some(database) => DaemonLock::acquire(database)?,
        None => None,
    };
    let cancel = opts.stop.clone().unwrap_or_default();
    let redactor = Redactor::default();
    let tracker = TaskTracker::new();
    let locks = RunLocks::new(
        config.daemon.max_concurrent_runs,
        config.daemon.lease_period,
    );

    // A database that refuses writes right now (locked, full, read-only) must not stop the
    // daemon: the push loop recovers these entries on every tick once writes succeed.
    if let Err(e) = store.recover_in_flight(chrono::Utc::now()).await {
        error!(error = %e, "recovering outbox entries left in flight; will try again");
    }
    let heartbeat = Heartbeat::new();
    let mut table = Timetable::start(
        build_platforms(&config, &redactor, &cancel, &locks),
        &heartbeat,
        &store,
        &cancel,
        &tracker,
    )
    .await?;
    let (platforms_tx, platforms_rx) = tokio::sync::watch::channel(table.platforms.clone());
    if let Some(addr) = config.daemon.metrics_listen {
        health::serve(
            addr,
            store.clone(),
            config.daemon.health_max_age,
            cancel.clone(),
        )
        .await
        .with_context(|| {
            format!(
                "listening on {addr} (daemon.metrics_listen in {})",
                config.main_file.display()
            )
        })?;
    }
    tracker.spawn(push_loop(
        store.clone(),
        platforms_rx,
        config.daemon.push_interval,
        cancel.clone(),
    ));
    let mut sinks = sinks::Sinks::new(config.daemon.lease_period);
    sinks.apply(&config.sinks, &store, &cancel).await;
    let watchdog = sd_notify::watchdog_enabled().map(|interval| {
        tokio::spawn(watchdog(
            interval,
            store.clone(),
            heartbeat.clone(),
            cancel.clone(),
        ))
    });
    // Handlers before READY: a `systemctl reload` right after start must not meet SIGHUP's
    // default action (terminate).
    let mut signals = Signals::new()?;
    info!(platforms = table.platforms.len(), sinks = config.sinks.len(), database = %config.daemon.database, "ordersync running");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    // Catch up at start instead of waiting for the first tick: a pass interrupted by a crash or
    // a restart resumes now.
    for p in table.platforms.values() {
        p.trigger(PassKind::Incremental, &store, &cancel, &tracker);
    }

    let mut current = config;
    loop {
        match signals.next(&cancel).await {
            Signal::Stop => break,
            Signal::Reload => {
                let _ = sd_notify::notify(&[
                    sd_notify::NotifyState::Reloading,
                    sd_notify::NotifyState::monotonic_usec_now()
                        .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
                ]);
                match crate::config::load(&current.main_file, crate::platforms::kinds()) {
                    Err(errors) => {
                        for e in &errors.0 {
                            error!(file = %e.file, key = %e.key, "{}", e.message);
                        }
                        error!(
                            errors = errors.0.len(),
                            "reload refused: the configuration has errors; the previous configuration stays in force"
                        );
                    }
                    Ok(new) => {
                        warn_daemon_changes(&current, &new);
                        let platforms = build_platforms(&new, &redactor, &cancel, &locks);
                        let old = table.replace(platforms, &store, &cancel, &tracker).await;
                        let added: Vec<&String> = table
                            .platforms
                            .keys()
                            .filter(|k| !old.contains_key(*k))
                            .collect();
                        let removed: Vec<&String> = old
                            .keys()
                            .filter(|k| !table.platforms.contains_key(*k))
                            .collect();
                        info!(platforms = table.platforms.len(), added = ?added, removed = ?removed,
                              "configuration reloaded");
                        for name in &added {
                            table.platforms[*name].trigger(
                                PassKind::Incremental,
                                &store,
                                &cancel,
                                &tracker,
                            );
                        }
                        let _ = platforms_tx.send(table.platforms.clone());
                        sinks.apply(&new.sinks, &store, &cancel).await;
                        current = new;
                    }
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }

    info!("stopping: no new runs; letting the pages in flight commit");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    cancel.cancel();
    table.stop().await;
    sinks.stop().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    tracker.close();
    if tokio::time::timeout(current.daemon.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(grace = ?current.daemon.shutdown_grace,
              "runs still going after shutdown_grace; exiting anyway (their last committed page is kept)");
    }
    drop(platforms_tx);
    // Let queued writes drain: the writer thread finishes its queue once every handle is gone.
    if let Err(e) = store.ping().await {
        warn!(error = %e, "database writer");
    }
    info!("stopped");
    Ok(())
}
