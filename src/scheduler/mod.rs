//! The daemon: its timetable (one cron job per enabled platform for the incremental pass and
//! one for its reconcile pass, on tokio-cron-scheduler, see [`Timetable`]), the signals that reload or stop it, the outbox push
//! loop, and what keeps runs apart. Sync and reconcile of one platform never overlap: a run due
//! while the other kind is going waits for it and then runs; a run due while one of its own kind
//! is still going (or already waiting) is skipped and logged, so ticks never pile up. Runs go
//! to a task tracker that shutdown drains within `shutdown_grace`, and one daemon holds a
//! database at a time ([`daemon_lock`]).

mod daemon_lock;
pub(crate) mod flock;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use uuid::Uuid;

pub use daemon_lock::{DaemonLock, DaemonLockError};

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
    slot: Arc<RunSlot>,
    auth_hold_until: Mutex<Option<Instant>>,
}

impl Platform {
    pub fn new(
        cfg: PlatformConfig,
        redactor: &Redactor,
        cancel: &CancellationToken,
        locks: &RunLocks,
    ) -> Result<Platform, crate::platforms::ConnectorError> {
        let connector = Connector::new(&cfg, redactor, cancel.clone())?;
        Ok(Platform {
            slot: locks.get(&cfg.name),
            cfg,
            connector,
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
        let _guard = self.slot.lock.lock().await;
        let _file_lock = match flock::PlatformLock::try_acquire(store.path(), &self.cfg.name) {
            Ok(Some(l)) => Some(l),
            Ok(None) => {
                info!(platform = %self.cfg.name, "another ordersync process is syncing this platform; waiting for it");
                flock::PlatformLock::acquire(store.path(), &self.cfg.name)
                    .await
                    .ok()
            }
            Err(e) => {
                warn!(platform = %self.cfg.name, error = %e, "cannot take the platform's lock file; running without it");
                None
            }
        };
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
                  "credentials refused: scheduled runs pause so the account is not locked; {}", self.cfg.auth_fix_advice());
        }
        result
    }

    /// Whether scheduled runs are paused after refused credentials (logged when they are).
    fn auth_held(&self, kind: PassKind) -> bool {
        let held = self
            .auth_hold_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until);
        if held {
            info!(platform = %self.cfg.name, run = kind.as_str(), "skipped: credentials were refused recently");
        }
        held
    }

    /// A scheduled tick. Skipped (and logged) if a run of the same kind is going or waiting;
    /// if the other kind is going, this run waits for it, then runs.
    fn trigger(
        self: &Arc<Self>,
        kind: PassKind,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if cancel.is_cancelled() || self.auth_held(kind) {
            return;
        }
        let Some(claim) = Claim::take(&self.slot, kind) else {
            warn!(platform = %self.cfg.name, run = kind.as_str(),
                  "skipped: the previous run of this kind is still going or waiting its turn");
            return;
        };
        let me = self.clone();
        let store = store.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _claim = claim;
            let _guard = match me.slot.lock.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    info!(platform = %me.cfg.name, run = kind.as_str(),
                          "waiting for the {} run of this platform to finish", other(kind).as_str());
                    tokio::select! {
                        g = me.slot.lock.lock() => g,
                        _ = cancel.cancelled() => return,
                    }
                }
            };
            // The run waited for may have been told the credentials are wrong, or shutdown
            // may have begun meanwhile.
            if cancel.is_cancelled() || me.auth_held(kind) {
                return;
            }
            let _file_lock = match flock::PlatformLock::try_acquire(store.path(), &me.cfg.name) {
                Ok(Some(l)) => Some(l),
                Ok(None) => {
                    warn!(platform = %me.cfg.name, run = kind.as_str(),
                          "skipped: a manual `ordersync sync` is syncing this platform");
                    return;
                }
                Err(e) => {
                    warn!(platform = %me.cfg.name, error = %e, "cannot take the platform's lock file; running without it");
                    None
                }
            };
            // The engine logs the outcome; the error needs no second line here.
            let _ = me
                .pass_locked(kind, PassOptions::default(), &store, &cancel, None)
                .await;
        });
    }
}

impl Platform {
    /// A scheduled verify (`verify_schedule`): compares the store with the platform, repairing
    /// only when `verify_repair` says so. Skipped while the previous one is still going; it
    /// waits for a sync or reconcile of the platform to end (they share the lock file).
    fn trigger_verify(
        self: &Arc<Self>,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if cancel.is_cancelled() || self.auth_held(PassKind::Incremental) {
            return;
        }
        if self
            .slot
            .verifying
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            warn!(platform = %self.cfg.name, run = "verify", "skipped: the previous verify of this platform is still going");
            return;
        }
        let (me, store, cancel) = (self.clone(), store.clone(), cancel.clone());
        tracker.spawn(async move {
            let opts = crate::verify::VerifyOptions {
                repair: me.cfg.verify_repair,
            };
            // The verify logs its own outcome and sets the drift gauges /health reads.
            if let Err(e) =
                crate::verify::verify_locked(&me.cfg, &me.connector, &store, opts, &cancel, None)
                    .await
            {
                warn!(platform = %me.cfg.name, run = "verify", error = %e, "verify could not finish");
            }
            me.slot.verifying.store(false, Ordering::Release);
        });
    }
}

fn other(kind: PassKind) -> PassKind {
    match kind {
        PassKind::Incremental => PassKind::Reconcile,
        PassKind::Reconcile => PassKind::Incremental,
    }
}

/// What keeps the runs of one platform apart. Shared by every `Platform` of that name across
/// reloads (see [`RunLocks`]).
#[derive(Default)]
struct RunSlot {
    /// Held for the whole of a run.
    lock: tokio::sync::Mutex<()>,
    /// Per kind (incremental, reconcile): a run of that kind is going or waiting for `lock`.
    claimed: [AtomicBool; 2],
    /// A scheduled verify is going (or waiting for the platform's lock file).
    verifying: AtomicBool,
}

/// A run of one kind, going or waiting, from its tick until it ends.
struct Claim {
    slot: Arc<RunSlot>,
    kind: usize,
}

impl Claim {
    fn take(slot: &Arc<RunSlot>, kind: PassKind) -> Option<Claim> {
        let kind = match kind {
            PassKind::Incremental => 0,
            PassKind::Reconcile => 1,
        };
        slot.claimed[kind]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Claim {
                slot: slot.clone(),
                kind,
            })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.slot.claimed[self.kind].store(false, Ordering::Release);
    }
}

/// Builds the platforms of a config; a platform that cannot be set up is logged and left out,
/// never stopping the others.
pub fn build_platforms(
    config: &Config,
    redactor: &Redactor,
    cancel: &CancellationToken,
    locks: &RunLocks,
) -> BTreeMap<String, Arc<Platform>> {
    let mut out = BTreeMap::new();
    for cfg in config.enabled_platforms() {
        if cfg.base_url.scheme() == "http" && !is_loopback(&cfg.base_url) {
            warn!(platform = %cfg.name, url = %cfg.base_url,
                  "plain http:// base URL: credentials and orders cross the network unencrypted");
        }
        match Platform::new(cfg.clone(), redactor, cancel, locks) {
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

/// Per-platform run locks that outlive a reload: a platform kept across a reload keeps its lock,
/// so a run started (or waiting) before the reload and one scheduled after it still never
/// overlap.
#[derive(Clone, Default)]
pub struct RunLocks(Arc<Mutex<BTreeMap<String, Arc<RunSlot>>>>);

impl RunLocks {
    fn get(&self, name: &str) -> Arc<RunSlot> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

type Platforms = BTreeMap<String, Arc<Platform>>;

/// Unix seconds of the scheduler's last tick of its heartbeat job: the watchdog's proof that the
/// timetable itself is alive, not only the process.
#[derive(Clone)]
struct Heartbeat(Arc<std::sync::atomic::AtomicI64>);

impl Heartbeat {
    const EVERY: &'static str = "*/10 * * * * *";
    /// Three missed beats: the scheduler is stuck.
    const STALE_AFTER_SECS: i64 = 35;

    fn new() -> Heartbeat {
        Heartbeat(Arc::new(std::sync::atomic::AtomicI64::new(
            chrono::Utc::now().timestamp(),
        )))
    }

    fn beat(&self) {
        self.0.store(
            chrono::Utc::now().timestamp(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn age_secs(&self) -> i64 {
        chrono::Utc::now().timestamp() - self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The scheduler's broadcast channels need room for a few events per job: with hundreds of
/// platforms due in the same second a smaller one makes its listeners lag (an activation lost
/// that way is a skipped run).
fn channel_size(platforms: usize) -> usize {
    (platforms * 8).max(200)
}

/// The daemon's timetable: one `JobScheduler` for the daemon's whole life, holding the heartbeat
/// and the current configuration's jobs. A reload swaps the jobs, never the scheduler: the
/// crate's `shutdown()` only stops its ticker and leaves its worker tasks (and through them
/// every job's closure, so every platform's HTTP client) waiting forever on channels their own
/// context keeps open, so a scheduler per configuration leaked a few hundred KiB per reload.
/// `remove()` takes a job out of the in-memory stores and drops its closure, which holds the
/// only scheduler-side reference to its `Platform`.
struct Timetable {
    sched: JobScheduler,
    /// What the channels were sized for at start; they cannot grow afterwards.
    channel: usize,
    platforms: Platforms,
    /// The current configuration's jobs (not the heartbeat, which lives as long as `sched`).
    jobs: Vec<Uuid>,
}

impl Timetable {
    /// Starts the scheduler with the heartbeat and `platforms`' jobs.
    async fn start(
        platforms: Platforms,
        heartbeat: &Heartbeat,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Timetable> {
        let channel = channel_size(platforms.len());
        let sched = JobScheduler::new_with_channel_size(channel)
            .await
            .context("starting the scheduler")?;
        let hb = heartbeat.clone();
        sched
            .add(
                Job::new_async(Heartbeat::EVERY, move |_id, _sched| {
                    hb.beat();
                    Box::pin(async {})
                })
                .context("the scheduler's heartbeat job")?,
            )
            .await
            .context("adding the heartbeat job")?;
        heartbeat.beat();
        let mut table = Timetable {
            sched,
            channel,
            platforms: Platforms::new(),
            jobs: Vec::new(),
        };
        table.add_jobs(platforms, store, cancel, tracker).await;
        table
            .sched
            .start()
            .await
            .context("starting the scheduler")?;
        Ok(table)
    }

    /// Puts `platforms` in place of the current configuration and returns the old one. The old
    /// jobs are removed before the new ones are added, and a new job's first fire time is the
    /// first after it is added: across a reload no fire time runs twice.
    async fn replace(
        &mut self,
        platforms: Platforms,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Platforms {
        for id in std::mem::take(&mut self.jobs) {
            if let Err(e) = self.sched.remove(&id).await {
                error!(job = %id, error = ?e, "removing a job of the previous configuration from the scheduler");
            }
        }
        let old = std::mem::take(&mut self.platforms);
        let wanted = channel_size(platforms.len());
        if wanted > self.channel {
            warn!(
                platforms = platforms.len(),
                channel = self.channel,
                wanted,
                "the scheduler's channels were sized for fewer platforms at start; restart the daemon to resize them (until then, platforms due in the same second may see runs skipped)"
            );
        }
        self.add_jobs(platforms, store, cancel, tracker).await;
        old
    }

    async fn add_jobs(
        &mut self,
        platforms: Platforms,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        for p in platforms.values() {
            let mut kinds = vec![(PassKind::Incremental, p.cfg.schedule.as_str())];
            if let Some(rs) = &p.cfg.reconcile_schedule
                && p.needs_reconcile()
            {
                kinds.push((PassKind::Reconcile, rs.as_str()));
            }
            if let Some(expr) = p.cfg.verify_schedule.as_deref() {
                let (p2, store, cancel, tracker) =
                    (p.clone(), store.clone(), cancel.clone(), tracker.clone());
                match Job::new_async(expr, move |_id, _sched| {
                    p2.trigger_verify(&store, &cancel, &tracker);
                    Box::pin(async {})
                }) {
                    Ok(job) => {
                        if let Err(e) = self.add(job).await {
                            error!(platform = %p.cfg.name, run = "verify", error = ?e,
                                   "the scheduler refused the job: verify is not scheduled");
                        }
                    }
                    Err(e) => {
                        error!(platform = %p.cfg.name, file = %p.cfg.file.display(), run = "verify",
                                     error = ?e, "invalid verify_schedule {expr:?}: verify is not scheduled")
                    }
                }
            }
            for (kind, expr) in kinds {
                let (p2, store, cancel, tracker) =
                    (p.clone(), store.clone(), cancel.clone(), tracker.clone());
                // Validation parses schedules the same way; this is only a second line of
                // defence, and like any platform that cannot be set up it stops no other.
                let job = match Job::new_async(expr, move |_id, _sched| {
                    p2.trigger(kind, &store, &cancel, &tracker);
                    Box::pin(async {})
                }) {
                    Ok(job) => job,
                    Err(e) => {
                        error!(platform = %p.cfg.name, file = %p.cfg.file.display(), run = kind.as_str(),
                               error = ?e, "invalid schedule {expr:?}: this run is not scheduled");
                        continue;
                    }
                };
                if let Err(e) = self.add(job).await {
                    error!(platform = %p.cfg.name, run = kind.as_str(), error = ?e,
                           "the scheduler refused the job: this run is not scheduled");
                }
            }
        }
        crate::telemetry::metrics::metrics().watch_platforms(platforms.keys().map(String::as_str));
        self.platforms = platforms;
    }

    /// Adds a job of the current configuration (removed at the next `replace`).
    async fn add(&mut self, job: Job) -> Result<(), tokio_cron_scheduler::JobSchedulerError> {
        self.jobs.push(self.sched.add(job).await?);
        Ok(())
    }

    /// Stops scheduling; runs already started finish under the task tracker.
    async fn stop(mut self) {
        if let Err(e) = self.sched.shutdown().await {
            warn!(error = ?e, "scheduler shutdown");
        }
    }
}

/// `ordersync run`: schedules every enabled platform until SIGTERM/SIGINT, then stops taking
/// new work, lets the pages in flight commit and returns within `shutdown_grace`. SIGHUP
/// re-reads the configuration: a valid one replaces the timetable without a restart, an
/// invalid one is logged (file and key) and the old one stays in force.
pub async fn run(config: Config, opts: DaemonOptions) -> anyhow::Result<()> {
    let store = Store::open_with(&config.daemon.database, config.daemon.busy_timeout)
        .with_context(|| {
            format!(
                "opening the database named by daemon.database in {}",
                config.main_file.display()
            )
        })?;
    // Before anything touches the database's work (the outbox recovery below would reset the
    // other daemon's pushes in flight).
    let _daemon_lock = DaemonLock::acquire(store.path())?;
    let cancel = opts.stop.clone().unwrap_or_default();
    let redactor = Redactor::default();
    let tracker = TaskTracker::new();
    let locks = RunLocks::default();

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
        crate::telemetry::metrics::serve(
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
    info!(platforms = table.platforms.len(), database = %config.daemon.database.display(), "ordersync running");
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
                match crate::config::load(&current.main_file) {
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

/// Daemon-wide settings are bound at start (the open database, the listening socket).
fn warn_daemon_changes(old: &Config, new: &Config) {
    let (a, b) = (&old.daemon, &new.daemon);
    for (key, changed) in [
        ("database", a.database != b.database),
        ("metrics_listen", a.metrics_listen != b.metrics_listen),
        ("push_interval", a.push_interval != b.push_interval),
        ("log_level", a.log_level != b.log_level),
        ("log_format", a.log_format != b.log_format),
    ] {
        if changed {
            warn!(key = %format!("daemon.{key}"), file = %new.main_file.display(),
                  "changed, but takes effect only at the next restart");
        }
    }
}

enum Signal {
    Stop,
    Reload,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn next(&mut self, cancel: &CancellationToken) -> Signal {
        tokio::select! {
            _ = cancel.cancelled() => Signal::Stop,
            _ = self.term.recv() => { info!("SIGTERM received"); Signal::Stop }
            _ = self.int.recv() => { info!("SIGINT received"); Signal::Stop }
            _ = self.hup.recv() => { info!("SIGHUP received: reloading the configuration"); Signal::Reload }
        }
    }
}

/// Drains the outbox every `push_interval`. One loop, so drains never overlap; a drain that
/// runs long simply delays the next tick (missed ticks are skipped, not bunched).
async fn push_loop(
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

/// Pings systemd's watchdog at half its interval, but only while the timetable ticks and
/// the database writer is alive: a stuck timetable or a wedged writer (disk gone, a syscall that
/// never returns) stops the pings and systemd restarts us. A writer that answers with errors
/// (read-only file, full disk, another program's lock) is alive: a restart would not fix any of
/// those, and the daemon recovers by itself when they clear.
async fn watchdog(
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

/// The outbox drains through the daemon's platforms.
impl crate::outbox::Pusher for Platform {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    fn retry(&self) -> &crate::config::RetryConfig {
        &self.cfg.retry
    }

    async fn push(
        &self,
        entries: &[crate::model::Entry],
    ) -> Option<Vec<crate::platforms::PushOutcome>> {
        self.connector.push(entries).await
    }

    async fn already_applied(
        &self,
        entry: &crate::model::Entry,
    ) -> Option<Result<bool, crate::http::HttpError>> {
        self.connector.already_applied(entry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_drops_the_previous_configurations_jobs_and_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let mut table = Timetable::start(
            Platforms::new(),
            &Heartbeat::new(),
            &store,
            &cancel,
            &tracker,
        )
        .await
        .unwrap();
        // Stands for the Platform (and its HTTP client) a job's closure holds.
        let held = Arc::new(());
        let watch = Arc::downgrade(&held);
        let job = Job::new_async("0 0 3 * * *", move |_id, _sched| {
            let _ = &held;
            Box::pin(async {})
        })
        .unwrap();
        table.add(job).await.unwrap();
        assert!(watch.upgrade().is_some(), "the scheduler holds the job");

        table
            .replace(Platforms::new(), &store, &cancel, &tracker)
            .await;
        // The scheduler's stores forget a removed job on their own tasks, a moment after
        // `remove` returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.upgrade().is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            watch.strong_count(),
            0,
            "the previous configuration's job closure is still held after the reload"
        );
        assert!(table.jobs.is_empty());
        table.stop().await;
    }
}
