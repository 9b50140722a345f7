//! The daemon's timetable: one cron job per enabled platform for the incremental pass and one
//! for its reconcile pass, built on tokio-cron-scheduler. That crate neither stops a job from
//! overlapping itself nor waits for running jobs at shutdown, so this module adds both: a
//! per-platform lock taken with `try_lock` (a run still going when the next is due is skipped
//! and logged; sync and reconcile of one platform never overlap), and a task tracker that
//! shutdown drains within `shutdown_grace`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{Config, PlatformConfig};
use crate::http::Redactor;
use crate::platforms::{Connector, Reconcile, Source};
use crate::store::Store;
use crate::sync::{Engine, PassKind, PassOptions, PassReport, Progress, SyncError};
use crate::with_source;

/// After the platform refuses our credentials, scheduled runs pause this long: repeated bad
/// attempts get accounts locked (MerchantPro answers 403), and the fix is the operator's.
const AUTH_HOLD: Duration = Duration::from_secs(30 * 60);

/// One configured platform, with what keeps its runs apart.
pub struct Platform {
    pub cfg: PlatformConfig,
    pub connector: Connector,
    run_lock: Arc<tokio::sync::Mutex<()>>,
    auth_hold_until: Mutex<Option<Instant>>,
}

impl Platform {
    pub fn new(
        cfg: PlatformConfig,
        redactor: &Redactor,
        cancel: &CancellationToken,
    ) -> Result<Platform, crate::platforms::ConnectorError> {
        let connector = Connector::new(&cfg, redactor, cancel.clone())?;
        Ok(Platform {
            cfg,
            connector,
            run_lock: Arc::new(tokio::sync::Mutex::new(())),
            auth_hold_until: Mutex::new(None),
        })
    }

    /// Whether this kind needs reconcile passes at all.
    pub fn needs_reconcile(&self) -> bool {
        with_source!(&self.connector, s => s.reconcile()) != Reconcile::NotNeeded
    }

    /// Runs one pass, waiting for the platform's lock (the CLI's `sync` wants the work done).
    pub async fn run_pass(
        &self,
        kind: PassKind,
        opts: PassOptions,
        store: &Store,
        cancel: &CancellationToken,
        progress: Option<&dyn Progress>,
    ) -> Result<PassReport, SyncError> {
        let _guard = self.run_lock.lock().await;
        self.pass_locked(kind, opts, store, cancel, progress).await
    }

    async fn pass_locked(
        &self,
        kind: PassKind,
        opts: PassOptions,
        store: &Store,
        cancel: &CancellationToken,
        progress: Option<&dyn Progress>,
    ) -> Result<PassReport, SyncError> {
        let engine = Engine {
            cfg: &self.cfg,
            store,
            cancel,
            progress,
        };
        let result = with_source!(&self.connector, s => match kind {
            PassKind::Incremental => engine.incremental(s, opts).await,
            PassKind::Reconcile => engine.reconcile(s).await,
        });
        if let Err(e) = &result
            && e.is_unauthorized()
        {
            *self
                .auth_hold_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + AUTH_HOLD);
            warn!(platform = %self.cfg.name, hold_minutes = AUTH_HOLD.as_secs() / 60,
                  "credentials refused: scheduled runs pause so the account is not locked; fix the auth keys and reload");
        }
        result
    }

    /// A scheduled tick: skipped (and logged) if a run of this platform is still going.
    fn trigger(
        self: &Arc<Self>,
        kind: PassKind,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if cancel.is_cancelled() {
            return;
        }
        if let Some(until) = *self
            .auth_hold_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            && Instant::now() < until
        {
            info!(platform = %self.cfg.name, run = kind.as_str(), "skipped: credentials were refused recently");
            return;
        }
        let Ok(guard) = self.run_lock.clone().try_lock_owned() else {
            warn!(platform = %self.cfg.name, run = kind.as_str(),
                  "skipped: the previous run of this platform is still going");
            return;
        };
        let me = self.clone();
        let store = store.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _guard = guard;
            // The engine logs the outcome; the error needs no second line here.
            let _ = me
                .pass_locked(kind, PassOptions::default(), &store, &cancel, None)
                .await;
        });
    }
}

/// Builds the platforms of a config; a platform that cannot be set up is logged and left out,
/// never stopping the others.
pub fn build_platforms(
    config: &Config,
    redactor: &Redactor,
    cancel: &CancellationToken,
) -> BTreeMap<String, Arc<Platform>> {
    let mut out = BTreeMap::new();
    for cfg in config.enabled_platforms() {
        if cfg.base_url.scheme() == "http" && !is_loopback(&cfg.base_url) {
            warn!(platform = %cfg.name, url = %cfg.base_url,
                  "plain http:// base URL: credentials and orders cross the network unencrypted");
        }
        match Platform::new(cfg.clone(), redactor, cancel) {
            Ok(p) => {
                out.insert(cfg.name.clone(), Arc::new(p));
            }
            Err(e) => error!(platform = %cfg.name, file = %cfg.file.display(), error = %e,
                             "platform cannot run; the others continue"),
        }
    }
    out
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Stop when this is cancelled (the demo's timer); signals always stop the daemon too.
    pub stop: Option<CancellationToken>,
}

/// `ordersync run`: schedules every enabled platform until SIGTERM/SIGINT, then stops taking
/// new work, lets the pages in flight commit and returns within `shutdown_grace`.
pub async fn run(config: Config, opts: DaemonOptions) -> anyhow::Result<()> {
    let store = Store::open(&config.daemon.database).with_context(|| {
        format!(
            "opening the database named by daemon.database in {}",
            config.main_file.display()
        )
    })?;
    let cancel = opts.stop.clone().unwrap_or_default();
    let redactor = Redactor::default();
    let tracker = TaskTracker::new();
    let platforms = build_platforms(&config, &redactor, &cancel);

    let mut sched = JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    for p in platforms.values() {
        add_job(
            &mut sched,
            p,
            PassKind::Incremental,
            &p.cfg.schedule,
            &store,
            &cancel,
            &tracker,
        )
        .await?;
        if let Some(rs) = &p.cfg.reconcile_schedule
            && p.needs_reconcile()
        {
            add_job(
                &mut sched,
                p,
                PassKind::Reconcile,
                rs,
                &store,
                &cancel,
                &tracker,
            )
            .await?;
        }
    }
    sched.start().await.context("starting the scheduler")?;
    info!(platforms = platforms.len(), database = %config.daemon.database.display(), "ordersync running");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);

    store
        .write(|c| crate::outbox::recover_in_flight(c, chrono::Utc::now()))
        .await
        .context("recovering outbox entries left in flight")?;
    tracker.spawn(push_loop(
        store.clone(),
        platforms.clone(),
        config.daemon.push_interval,
        cancel.clone(),
    ));

    let watchdog = sd_notify::watchdog_enabled()
        .map(|interval| tokio::spawn(watchdog(interval, store.clone(), cancel.clone())));

    // Catch up at start instead of waiting for the first tick: a pass interrupted by a crash or
    // a restart resumes now.
    for p in platforms.values() {
        p.trigger(PassKind::Incremental, &store, &cancel, &tracker);
    }

    wait_for_stop(&cancel).await;
    info!("stopping: no new runs; letting the pages in flight commit");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    cancel.cancel();
    if let Err(e) = sched.shutdown().await {
        warn!(error = %e, "scheduler shutdown");
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    tracker.close();
    if tokio::time::timeout(config.daemon.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(grace = ?config.daemon.shutdown_grace,
              "runs still going after shutdown_grace; exiting anyway (their last committed page is kept)");
    }
    // Let queued writes drain: the writer thread finishes its queue once every handle is gone.
    drop(platforms);
    let final_write = store.write(|_| Ok(())).await;
    if let Err(e) = final_write {
        warn!(error = %e, "database writer");
    }
    info!("stopped");
    Ok(())
}

async fn add_job(
    sched: &mut JobScheduler,
    p: &Arc<Platform>,
    kind: PassKind,
    schedule: &str,
    store: &Store,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let (p2, store, cancel, tracker) = (p.clone(), store.clone(), cancel.clone(), tracker.clone());
    let job = Job::new_async(schedule, move |_id, _lock| {
        p2.trigger(kind, &store, &cancel, &tracker);
        Box::pin(async {})
    })
    .with_context(|| {
        format!(
            "platform {}: schedule {schedule:?} in {}",
            p.cfg.name,
            p.cfg.file.display()
        )
    })?;
    sched
        .add(job)
        .await
        .context("adding a job to the scheduler")?;
    Ok(())
}

/// Drains the outbox every `push_interval`. One loop, so drains never overlap; a drain that
/// runs long simply delays the next tick (missed ticks are skipped, not bunched).
async fn push_loop(
    store: Store,
    platforms: BTreeMap<String, Arc<Platform>>,
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
        match crate::outbox::drain_once(&store, &platforms, chrono::Utc::now()).await {
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

/// Pings systemd's watchdog at half its interval, but only while the database writer answers: a
/// wedged writer (disk gone, lock held forever) stops the pings and systemd restarts us.
async fn watchdog(interval: Duration, store: Store, cancel: CancellationToken) {
    let period = interval / 2;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        match tokio::time::timeout(period, store.write(|_| Ok(()))).await {
            Ok(Ok(())) => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            _ => warn!(
                "database writer did not answer within {period:?}; withholding the watchdog ping"
            ),
        }
    }
}

async fn wait_for_stop(cancel: &CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        cancel.cancelled().await;
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = term.recv() => { info!("SIGTERM received"); return }
            _ = int.recv() => { info!("SIGINT received"); return }
            _ = hup.recv() => {
                warn!("SIGHUP received: configuration reload is not available in this version; restart the service to apply changes");
            }
        }
    }
}
