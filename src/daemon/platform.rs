//! One configured platform as the daemon runs it ([`Platform`]): its connector, the lock and
//! claims that keep its sync and reconcile runs apart (a run due while the other kind is going
//! waits for it; a run due while one of its own kind is going or waiting is skipped and
//! logged), the pause after refused credentials, and the run locks that outlive a reload.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{Config, PlatformConfig};
use crate::http::Redactor;
use crate::platforms::{Connector, Reconcile, Source};
use crate::store::lock::PlatformLock;
use crate::store::{Lease, Store};
use crate::sync::{Engine, PassKind, PassOptions, PassReport, Progress, SyncError};

use super::lease::{Held, LeaseTimes};

/// After the platform refuses our credentials, scheduled runs pause this long: repeated bad
/// attempts get accounts locked (MerchantPro answers 403), and the fix is the operator's.
const AUTH_HOLD: Duration = Duration::from_secs(30 * 60);

/// One configured platform, with what keeps its runs apart.
pub struct Platform {
    pub cfg: PlatformConfig,
    pub connector: Connector,
    slot: Arc<RunSlot>,
    turns: Turns,
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
            turns: locks.turns.clone(),
            cfg,
            connector,
            auth_hold_until: Mutex::new(None),
        })
    }

    /// How `daemon.lease_period` divides, for the platform's lease on a shared database.
    pub(super) fn lease_times(&self) -> LeaseTimes {
        self.turns.lease
    }

    /// Whether this kind needs reconcile passes at all.
    pub fn needs_reconcile(&self) -> bool {
        self.connector.reconcile() != Reconcile::NotNeeded
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
        let _file_lock = PlatformLock::take_or_wait_for(
            store,
            &self.cfg.name,
            "another ordersync process is syncing this platform",
        )
        .await;
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
        let s = &self.connector;
        let result = match kind {
            PassKind::Incremental => engine.incremental(s, opts).await,
            PassKind::Reconcile => engine.reconcile(s).await,
        };
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

    /// A takeover of a platform a stopped daemon left mid-run (on a shared database): an
    /// incremental run now, without waiting for a turn (see [`Turns`]) so it does not queue
    /// behind this daemon's own runs. If an incremental run of the platform is already waiting
    /// for a turn here, that run goes at once instead. `false` when a run was already going or
    /// waiting.
    pub(super) fn take_over(
        self: &Arc<Self>,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> bool {
        self.slot.takeover.store(true, Ordering::Release);
        self.slot.takeover_wanted.notify_waiters();
        if self.slot.claimed[0].load(Ordering::Acquire) {
            return false;
        }
        self.trigger(PassKind::Incremental, store, cancel, tracker);
        true
    }

    /// A scheduled tick. Skipped (and logged) if a run of the same kind is going or waiting;
    /// if the other kind is going, this run waits for it, then runs.
    pub(super) fn trigger(
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
            // After the platform's own lock, so a run holding a turn never waits on another
            // run of its platform that is waiting for a turn.
            // Only an incremental run resumes a pass another daemon cut short.
            let turn = match kind {
                PassKind::Incremental => me.turns.wait_run(&me.slot, &cancel).await,
                PassKind::Reconcile => me.turns.wait(&cancel).await.map(Some),
            };
            let Some(_turn) = turn else {
                return;
            };
            // The run waited for may have been told the credentials are wrong, or shutdown
            // may have begun meanwhile.
            if cancel.is_cancelled() || me.auth_held(kind) {
                return;
            }
            let _file_lock = match PlatformLock::try_acquire_for(&store, &me.cfg.name) {
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
            let Some(held) = me.hold(&store, &cancel).await else {
                return;
            };
            let (run_store, run_cancel) = match &held {
                Some(h) => (h.store(), &h.cancel),
                None => (&store, &cancel),
            };
            // The engine logs the outcome; the error needs no second line here.
            let _ = me
                .pass_locked(kind, PassOptions::default(), run_store, run_cancel, None)
                .await;
            if let Some(h) = held {
                h.release().await;
            }
        });
    }
}

impl Platform {
    /// A scheduled verify (`verify_schedule`): compares the store with the platform, repairing
    /// only when `verify_repair` says so. Skipped while the previous one is still going; it
    /// waits for a sync or reconcile of the platform to end (they share the lock file).
    pub(super) fn trigger_verify(
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
            let Some(_turn) = me.turns.wait(&cancel).await else {
                me.slot.verifying.store(false, Ordering::Release);
                return;
            };
            let opts = crate::verify::VerifyOptions {
                repair: me.cfg.verify_repair,
            };
            if let Some(held) = me.hold(&store, &cancel).await {
                let (run_store, run_cancel) = match &held {
                    Some(h) => (h.store(), &h.cancel),
                    None => (&store, &cancel),
                };
                // The verify logs its own outcome and sets the drift gauges /health reads.
                if let Err(e) = crate::verify::verify_locked(
                    &me.cfg,
                    &me.connector,
                    run_store,
                    opts,
                    run_cancel,
                    None,
                )
                .await
                {
                    warn!(platform = %me.cfg.name, run = "verify", error = %e, "verify could not finish");
                }
                if let Some(h) = held {
                    h.release().await;
                }
            }
            me.slot.verifying.store(false, Ordering::Release);
        });
    }
}

impl Platform {
    /// On a database several daemons share, the platform's lease for the run about to start:
    /// `None` when another daemon holds it (that one is running the platform), `Some(None)`
    /// where there is nothing to share.
    async fn hold(&self, store: &Store, cancel: &CancellationToken) -> Option<Option<Held>> {
        if !store.shares_work() {
            return Some(None);
        }
        Held::take(
            store,
            &Lease::platform(&self.cfg.name),
            self.turns.lease,
            cancel,
        )
        .await
        .map(Some)
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
    /// Another daemon abandoned the platform mid-run: the next incremental run to wait for a
    /// turn goes without one. Set before `takeover_wanted` wakes a run already waiting.
    takeover: AtomicBool,
    takeover_wanted: tokio::sync::Notify,
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

/// Per-platform run locks that outlive a reload: a platform kept across a reload keeps its lock,
/// so a run started (or waiting) before the reload and one scheduled after it still never
/// overlap. Also the daemon's turns ([`Turns`]), which outlive reloads too.
#[derive(Clone)]
pub struct RunLocks {
    slots: Arc<Mutex<BTreeMap<String, Arc<RunSlot>>>>,
    turns: Turns,
}

impl RunLocks {
    /// Read once from `[daemon]`: a reload that changes them takes effect at restart.
    pub fn new(max_concurrent_runs: usize, lease_period: Duration) -> RunLocks {
        RunLocks {
            slots: Arc::default(),
            turns: Turns {
                runs: Arc::new(tokio::sync::Semaphore::new(max_concurrent_runs.max(1))),
                lease: LeaseTimes::new(lease_period),
            },
        }
    }

    fn get(&self, name: &str) -> Arc<RunSlot> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

impl Default for RunLocks {
    fn default() -> RunLocks {
        let d = crate::config::DaemonConfig::default();
        RunLocks::new(d.max_concurrent_runs, d.lease_period)
    }
}

/// Turns for scheduled runs across every platform (`daemon.max_concurrent_runs`). A tick of
/// thousands of platforms due in the same second would otherwise start every run at once, each
/// holding a page, a connection and its buffers: a heap profile of 3,000 platforms measured
/// over 1 GiB during the first backfill. A run waiting for its turn keeps its claim, so a run
/// still waiting when its next tick comes is skipped and logged like one still going.
///
/// Takeovers of platforms another daemon abandoned mid-run go without a turn: queued behind
/// this daemon's runs they could wait far longer than the lease period promises. They cannot
/// pile up: each is a lease a lost daemon held, one per run it had going, so the extra runs
/// are at most the runs the lost daemons had going (a test that lost two daemons of ten turns
/// each measured the second one's takeovers 9 s late when they shared ten takeover turns).
#[derive(Clone)]
struct Turns {
    runs: Arc<tokio::sync::Semaphore>,
    /// `daemon.lease_period`, for the platform leases of a shared database.
    lease: LeaseTimes,
}

impl Turns {
    /// `None` once shutdown has begun.
    async fn wait(&self, cancel: &CancellationToken) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::select! {
            permit = self.runs.clone().acquire_owned() => permit.ok(),
            _ = cancel.cancelled() => None,
        }
    }

    /// A turn for an incremental run of the platform of `slot`, or none needed if the platform
    /// is wanted for a takeover, now or while the run waits (`Some(None)`).
    async fn wait_run(
        &self,
        slot: &RunSlot,
        cancel: &CancellationToken,
    ) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        let wanted = slot.takeover_wanted.notified();
        tokio::pin!(wanted);
        // Registered before the flag is read, so a takeover between the two still wakes it.
        wanted.as_mut().enable();
        if !slot.takeover.load(Ordering::Acquire) {
            tokio::select! {
                permit = self.runs.clone().acquire_owned() => return permit.ok().map(Some),
                _ = &mut wanted => {}
                _ = cancel.cancelled() => return None,
            }
        }
        slot.takeover.store(false, Ordering::Release);
        Some(None)
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

pub(super) type Platforms = BTreeMap<String, Arc<Platform>>;
