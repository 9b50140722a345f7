//! The daemon's timetable: one tokio-cron-scheduler `JobScheduler` for the daemon's whole life,
//! holding the heartbeat job, the memory job and one job per enabled platform for each of its
//! schedules.

use anyhow::Context as _;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::store::Store;
use crate::sync::PassKind;

use super::platform::Platforms;
use super::watchdog::Heartbeat;

/// How often the pages freed by the runs since go back to the system: often enough that a
/// burst of runs at one tick is returned before the next, off the ticks most schedules use.
const RELEASE_MEMORY_EVERY: &str = "20 * * * * *";

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
pub(super) struct Timetable {
    sched: JobScheduler,
    /// What the channels were sized for at start; they cannot grow afterwards.
    channel: usize,
    pub(super) platforms: Platforms,
    /// The current configuration's jobs (not the heartbeat, which lives as long as `sched`).
    jobs: Vec<Uuid>,
    /// The current configuration's look for abandoned platforms, on a shared database.
    takeovers: Option<tokio::task::JoinHandle<()>>,
}

impl Timetable {
    /// Starts the scheduler with the heartbeat and `platforms`' jobs.
    pub(super) async fn start(
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
        sched
            .add(
                Job::new_async(RELEASE_MEMORY_EVERY, |_id, _sched| {
                    Box::pin(async {
                        let _ =
                            tokio::task::spawn_blocking(super::memory::release_free_pages).await;
                    })
                })
                .context("the scheduler's memory job")?,
            )
            .await
            .context("adding the memory job")?;
        heartbeat.beat();
        let mut table = Timetable {
            sched,
            channel,
            platforms: Platforms::new(),
            jobs: Vec::new(),
            takeovers: None,
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
    pub(super) async fn replace(
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
        if let Some(t) = self.takeovers.take() {
            t.abort();
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
        if store.shares_work() {
            self.start_takeovers(&platforms, store, cancel, tracker);
        }
        crate::telemetry::metrics::metrics().watch_platforms(platforms.keys().map(String::as_str));
        self.platforms = platforms;
    }

    /// On a database several daemons share: every eighth of a lease period, takes over the
    /// platforms whose daemon stopped renewing their lease in the middle of a run (killed, or
    /// stopped with SIGTERM) at once, instead of at their next scheduled time. Every daemon
    /// looks; the lease lets one of them run it. A task of its own rather than a scheduler
    /// job: the scheduler fires at most every half second, a large part of a short lease.
    fn start_takeovers(
        &mut self,
        platforms: &Platforms,
        store: &Store,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let Some(every) = platforms
            .values()
            .next()
            .map(|p| p.lease_times().look_every())
        else {
            return;
        };
        let platforms = platforms.clone();
        let (store, cancel, tracker) = (store.clone(), cancel.clone(), tracker.clone());
        self.takeovers = Some(tokio::spawn(async move {
            let mut look = tokio::time::interval(every);
            look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = look.tick() => {}
                    _ = cancel.cancelled() => return,
                }
                let names = match store.abandoned_leases("platform:").await {
                    Ok(n) => n,
                    Err(e) => {
                        warn!(error = %e, "cannot look for platforms left mid-run by a stopped daemon; looking again shortly");
                        continue;
                    }
                };
                for name in names {
                    if let Some(p) = name
                        .strip_prefix("platform:")
                        .and_then(|n| platforms.get(n))
                        && p.take_over(&store, &cancel, &tracker)
                    {
                        info!(platform = %p.cfg.name, "taking over: the daemon running this platform stopped in the middle of a run");
                    }
                }
            }
        }));
    }

    /// Adds a job of the current configuration (removed at the next `replace`).
    async fn add(&mut self, job: Job) -> Result<(), tokio_cron_scheduler::JobSchedulerError> {
        self.jobs.push(self.sched.add(job).await?);
        Ok(())
    }

    /// Stops scheduling; runs already started finish under the task tracker.
    pub(super) async fn stop(mut self) {
        if let Some(t) = self.takeovers.take() {
            t.abort();
        }
        if let Err(e) = self.sched.shutdown().await {
            warn!(error = ?e, "scheduler shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokio_cron_scheduler::Job;

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
