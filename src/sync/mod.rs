//! The sync engine: one incremental pass or one reconcile pass of one platform. It owns the
//! window rule (docs/contract.md §6: `[cursor − lookback, pass start]`, the upper bound frozen when
//! the pass starts), streams the platform page by page (memory stays flat however large the
//! shop), and commits each page with its events and the advanced checkpoint in one transaction,
//! so a pass killed at any instant resumes where its last commit left it.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::PlatformConfig;
use crate::http::HttpError;
use crate::model::RunRecord;
use crate::platforms::{Page, PassCtx, Reconcile, Source, Window};
use crate::store::{self, PageOutcome, PageWrite, PassProgress, PassState, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    Incremental,
    Reconcile,
}

impl PassKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PassKind::Incremental => "sync",
            PassKind::Reconcile => "reconcile",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PassOptions {
    /// Ignore the cursor and read from `backfill_from` (`sync --full`).
    pub full: bool,
}

/// What a pass did, for the log line, `sync`'s exit code and the metrics.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub fetched: u64,
    pub pages: u64,
    pub outcome: PageOutcome,
    pub took: Duration,
    /// True when shutdown stopped the pass between pages (its progress is committed).
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("platform {platform}: {source}{hint}")]
    Http {
        platform: String,
        hint: String,
        #[source]
        source: HttpError,
    },
    #[error(
        "platform {platform}: the platform sent a page link already read in this pass ({token}); stopping instead of looping"
    )]
    PageLoop { platform: String, token: String },
    #[error(
        "platform {platform}: page {page} of this pass held only orders already read in this \
         pass ({orders} of them), with a link to yet another page: the platform is not moving \
         through its listing (does it ignore its paging parameter?), so the pass stops here \
         after {page} requests instead of looping"
    )]
    NoProgress {
        platform: String,
        page: u64,
        orders: usize,
    },
    #[error("platform {platform}: {source}")]
    Store {
        platform: String,
        #[source]
        source: StoreError,
    },
}

impl SyncError {
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            SyncError::Http {
                source: HttpError::Unauthorized { .. },
                ..
            }
        )
    }
}

/// Progress callback: pages fetched so far and the platform's total, when it tells one.
pub trait Progress: Send + Sync {
    fn page(&self, platform: &str, fetched: u64, total: Option<u64>);
}

pub struct Engine<'a> {
    pub cfg: &'a PlatformConfig,
    pub store: &'a Store,
    pub cancel: &'a CancellationToken,
    pub progress: Option<&'a dyn Progress>,
}

impl Engine<'_> {
    fn http_error(&self, source: HttpError) -> SyncError {
        let hint = match &source {
            HttpError::Unauthorized { .. } => format!(" ({})", self.cfg.auth_source()),
            _ => String::new(),
        };
        SyncError::Http {
            platform: self.cfg.name.clone(),
            hint,
            source,
        }
    }

    fn store_error(&self, source: StoreError) -> SyncError {
        SyncError::Store {
            platform: self.cfg.name.clone(),
            source,
        }
    }

    /// One incremental pass, recorded in `sync_runs` and logged as one line.
    pub async fn incremental<S: Source>(
        &self,
        src: &S,
        opts: PassOptions,
    ) -> Result<PassReport, SyncError> {
        self.recorded(PassKind::Incremental, self.run_incremental(src, opts))
            .await
    }

    /// One reconcile pass over the stored open orders, recorded and logged likewise.
    pub async fn reconcile<S: Source>(&self, src: &S) -> Result<PassReport, SyncError> {
        self.recorded(PassKind::Reconcile, self.run_reconcile(src))
            .await
    }

    async fn recorded(
        &self,
        kind: PassKind,
        pass: impl Future<Output = Result<PassReport, SyncError>>,
    ) -> Result<PassReport, SyncError> {
        let started = Utc::now();
        let file_changes = self.store.file_changes();
        let run_id = match self
            .store
            .start_run(&self.cfg.name, kind.as_str(), started)
            .await
        {
            Ok(id) => id,
            // The run cannot even be recorded (the database refuses writes): it still counts
            // as a failed run, in the log and the metrics, or the fault would be silent.
            Err(e) => {
                let e = self.store_error(e);
                tracing::error!(platform = %self.cfg.name, run = kind.as_str(), error = %e, "run failed");
                let rec = RunRecord {
                    kind: kind.as_str().into(),
                    outcome: "failed".into(),
                    error: Some(e.to_string()),
                    ..RunRecord::default()
                };
                crate::telemetry::metrics::metrics().run_finished(
                    &self.cfg.name,
                    &rec,
                    Duration::ZERO,
                );
                return Err(e);
            }
        };
        let result = match pass.await {
            // Shutdown interrupting a wait is not a failure: the committed pages stand and the
            // checkpoint says where to resume.
            Err(SyncError::Http {
                source: HttpError::Cancelled,
                ..
            }) => Ok(PassReport {
                interrupted: true,
                ..PassReport::default()
            }),
            // Pages committed before the database file was swapped went into the old file: the
            // run did not bring the store up to date, whatever its pages said.
            Ok(_) if self.store.file_changes() != file_changes => {
                Err(self.store_error(StoreError::Replaced {
                    path: self
                        .store
                        .sqlite_path()
                        .unwrap_or(Path::new(""))
                        .to_path_buf(),
                }))
            }
            other => other,
        };
        let mut rec = RunRecord {
            kind: kind.as_str().into(),
            finished_at: Some(store::ts(Utc::now())),
            ..RunRecord::default()
        };
        match &result {
            Ok(r) => {
                rec.outcome = if r.interrupted { "interrupted" } else { "ok" }.into();
                rec.fetched = r.fetched;
                rec.created = r.outcome.created;
                rec.changed = r.outcome.changed;
                rec.rejected = r.outcome.rejected;
                info!(platform = %self.cfg.name, run = kind.as_str(), fetched = r.fetched,
                      created = r.outcome.created, changed = r.outcome.changed,
                      status_changed = r.outcome.status_changed, push_confirmed = r.outcome.confirmed,
                      rejected = r.outcome.rejected,
                      took = %format!("{:.1?}", r.took),
                      interrupted = r.interrupted, "run finished");
            }
            Err(e) => {
                rec.outcome = "failed".into();
                rec.error = Some(e.to_string());
                tracing::error!(platform = %self.cfg.name, run = kind.as_str(), error = %e, "run failed");
            }
        }
        let took = result.as_ref().map_or(Duration::ZERO, |r| r.took);
        crate::telemetry::metrics::metrics().run_finished(&self.cfg.name, &rec, took);
        // Recording the outcome must not mask the pass's own result.
        if let Err(e) = self.store.finish_run(run_id, rec).await {
            warn!(platform = %self.cfg.name, error = %e, "could not record the run's outcome");
        }
        result
    }

    async fn run_incremental<S: Source>(
        &self,
        src: &S,
        opts: PassOptions,
    ) -> Result<PassReport, SyncError> {
        let started = Instant::now();
        let (mut report, resumed) = self.one_pass(src, opts).await?;
        // A resumed pass ends at its old frozen bound: follow it with a fresh pass, so a run
        // after a crash still brings the store up to now.
        if resumed && !report.interrupted {
            let (fresh, _) = self.one_pass(src, opts).await?;
            report.fetched += fresh.fetched;
            report.pages += fresh.pages;
            report.outcome.add(fresh.outcome);
            report.interrupted = fresh.interrupted;
        }
        report.took = started.elapsed();
        Ok(report)
    }

    /// One pass: the interrupted one if there is one (and `full` is not asked), else a new one.
    /// Also says whether it was a resumed pass.
    async fn one_pass<S: Source>(
        &self,
        src: &S,
        opts: PassOptions,
    ) -> Result<(PassReport, bool), SyncError> {
        let mut state = self
            .store
            .load_pass_state(&self.cfg.name)
            .await
            .map_err(|e| self.store_error(e))?;
        if !opts.full
            && let Some(p) = &state.pass
            && let Err(why) = src.check_token(&p.resume)
        {
            // A resume point that cannot be used would fail every run before a request, until
            // `sync --full`: drop it and read the interrupted pass's window again.
            warn!(platform = %self.cfg.name, resume = %p.resume, error = %why,
                  "the saved resume point of an interrupted pass cannot be used; reading its window again from the start");
            state.pass = None;
            self.store
                .save_pass_state(&self.cfg.name, state.clone())
                .await
                .map_err(|e| self.store_error(e))?;
        }
        let resumed = state.pass.is_some() && !opts.full;
        let (window, started_at, token) = match (&state.pass, opts.full) {
            // A pass that was interrupted resumes with its own frozen window and next page.
            (Some(p), false) => {
                info!(platform = %self.cfg.name, from = %p.from, to = %p.to, "resuming an interrupted pass");
                (
                    Window {
                        from: p.from,
                        to: p.to,
                    },
                    p.started_at,
                    p.resume.clone(),
                )
            }
            _ => {
                let now = Utc::now();
                let from = match (state.cursor, opts.full) {
                    (Some(c), false) => c
                        .checked_sub_signed(lookback(self.cfg.lookback))
                        .unwrap_or(self.cfg.backfill_from)
                        .max(self.cfg.backfill_from),
                    _ => self.cfg.backfill_from,
                };
                let w = Window { from, to: now };
                (w, now, src.first_token(&w))
            }
        };
        let ctx = PassCtx {
            platform: &self.cfg.name,
            window,
            store: self.store,
            exhaustive: false,
        };
        let mut report = PassReport::default();
        let mut seen = std::collections::HashSet::from([token.clone()]);
        let mut read = ReadInPass::default();
        let mut page = match src.fetch_page(&ctx, &token).await {
            Ok(page) => page,
            // The platform refuses the page a crash left us at (an expired cursor, a link it
            // no longer serves): keeping it would fail every run the same way.
            Err(e @ (HttpError::Permanent { .. } | HttpError::NotSent { .. })) if resumed => {
                warn!(platform = %self.cfg.name, resume = %token, error = %e,
                      "the interrupted pass cannot be resumed where it stopped; the next run reads its window again from the start");
                let (platform, cleared) = (
                    self.cfg.name.clone(),
                    PassState {
                        cursor: state.cursor,
                        pass: None,
                    },
                );
                self.store
                    .save_pass_state(&platform, cleared)
                    .await
                    .map_err(|e| self.store_error(e))?;
                return Err(self.http_error(e));
            }
            Err(e) => return Err(self.http_error(e)),
        };
        let mut current = token;
        let mut saw_rejects = false;
        loop {
            report.pages += 1;
            report.fetched += page.orders.len() as u64;
            read.check(src.listing(&current), &page, report.pages, &self.cfg.name)
                .map_err(|e| *e)?;
            let next = page.next.take();
            let checkpoint = match &next {
                Some(n) => PassState {
                    cursor: state.cursor,
                    pass: Some(PassProgress {
                        started_at,
                        from: window.from,
                        to: window.to,
                        resume: n.clone(),
                    }),
                },
                None => PassState {
                    cursor: Some(self.next_cursor(
                        window,
                        started_at,
                        saw_rejects || !page.rejects.is_empty(),
                    )),
                    pass: None,
                },
            };
            saw_rejects |= !page.rejects.is_empty();
            if let Some(p) = self.progress {
                p.page(&self.cfg.name, report.fetched, page.total);
            }
            let write = self.commit(page, Some(checkpoint));
            let Some(next) = next else {
                report.outcome.add(write.await?);
                break;
            };
            // A platform that ignores its own paging would otherwise keep a pass (and the
            // platform's run lock) busy forever.
            if !seen.insert(next.clone()) {
                write.await?;
                return Err(SyncError::PageLoop {
                    platform: self.cfg.name.clone(),
                    token: next,
                });
            }
            if self.cancel.is_cancelled() {
                report.outcome.add(write.await?);
                report.interrupted = true;
                break;
            }
            // The next page is fetched while this one commits: one list request in flight, and
            // the store and the network overlap instead of taking turns.
            let (written, fetched) = tokio::join!(write, src.fetch_page(&ctx, &next));
            report.outcome.add(written?);
            page = fetched.map_err(|e| self.http_error(e))?;
            current = next;
        }
        Ok((report, resumed))
    }

    /// Where the next pass starts. A pass that stored rejects holds its own start, so the
    /// rejected records are read again when the platform fixes them; but never further back
    /// than `reject_hold` before this pass, or one record that stays bad would make every pass
    /// re-read more and more. A record older than that stays in `rejects`, and the log says
    /// so once the window moves past it.
    fn next_cursor(
        &self,
        window: Window,
        started_at: DateTime<Utc>,
        saw_rejects: bool,
    ) -> DateTime<Utc> {
        if !saw_rejects {
            return window.to;
        }
        let held = window
            .from
            .checked_add_signed(lookback(self.cfg.lookback))
            .unwrap_or(window.to);
        let bound = started_at
            .checked_sub_signed(lookback(self.cfg.reject_hold))
            .unwrap_or(window.from);
        if held < bound {
            warn!(platform = %self.cfg.name, reject_hold = ?self.cfg.reject_hold,
                  "records rejected for longer than reject_hold are no longer read again; they stay in `ordersync rejects` until they change on the platform");
        } else {
            info!(platform = %self.cfg.name,
                  "the pass stored rejected records: the next pass reads this window again, so they are stored once the platform fixes them");
        }
        held.max(bound).min(window.to)
    }

    async fn run_reconcile<S: Source>(&self, src: &S) -> Result<PassReport, SyncError> {
        let started = Instant::now();
        let mut report = PassReport::default();
        let how = src.reconcile();
        if how == Reconcile::NotNeeded {
            return Ok(report);
        }
        if let Reconcile::ByNumber {
            platform_status,
            per_pass,
        } = how
        {
            self.by_number(src, platform_status, per_pass, &mut report)
                .await?;
            report.took = started.elapsed();
            return Ok(report);
        }
        let watched = self.watched().await?;
        if watched.beyond_cap > 0 {
            warn!(platform = %self.cfg.name, orders = watched.beyond_cap,
                  "open orders placed before reconcile_horizon are not re-read: a change to them is not seen until the cap is raised or removed in {}",
                  self.cfg.file.display());
        }
        crate::telemetry::metrics::metrics().unwatched_orders(&self.cfg.name, watched.beyond_cap);
        let orders = watched.orders;
        match how {
            Reconcile::NotNeeded | Reconcile::ByNumber { .. } => {}
            Reconcile::ByIds { batch } => {
                let ids: Vec<String> = orders.into_iter().map(|o| o.order_id).collect();
                for chunk in ids.chunks(batch.max(1)) {
                    if self.cancel.is_cancelled() {
                        report.interrupted = true;
                        break;
                    }
                    let page = src.fetch_ids(chunk).await.map_err(|e| self.http_error(e))?;
                    report.pages += 1;
                    report.fetched += page.orders.len() as u64;
                    if let Some(p) = self.progress {
                        p.page(&self.cfg.name, report.fetched, Some(ids.len() as u64));
                    }
                    report.outcome.add(self.commit(page, None).await?);
                }
            }
            Reconcile::Windows { per_page } => {
                let listing = self
                    .store
                    .placed_times(&self.cfg.name)
                    .await
                    .map_err(|e| self.store_error(e))?;
                let placed: Vec<DateTime<Utc>> =
                    orders.iter().filter_map(|o| o.placed_at).collect();
                let undated = orders.len() - placed.len();
                if undated > 0 {
                    warn!(platform = %self.cfg.name, orders = undated,
                          "watched orders without a placing time cannot be looked for in the date-filtered listing");
                }
                for window in reconcile_windows(&placed, &listing, per_page) {
                    if self.cancel.is_cancelled() {
                        report.interrupted = true;
                        break;
                    }
                    self.rescan(src, window, &mut report).await?;
                }
            }
        }
        report.took = started.elapsed();
        Ok(report)
    }

    /// Looks up the orders that entered `platform_status` within `final_watch` one by one, for
    /// kinds whose passes stop reading orders in that status once they are known.
    async fn by_number<S: Source>(
        &self,
        src: &S,
        platform_status: &'static str,
        per_pass: usize,
        report: &mut PassReport,
    ) -> Result<(), SyncError> {
        if self.cfg.final_watch.is_zero() {
            return Ok(());
        }
        let since = Utc::now()
            .checked_sub_signed(lookback(self.cfg.final_watch))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let finals = self
            .store
            .watched_in_status(&self.cfg.name, platform_status, since, per_pass)
            .await
            .map_err(|e| self.store_error(e))?;
        let total = finals.len() as u64;
        for (order_id, number) in finals {
            if self.cancel.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let page = src
                .fetch_by_number(&order_id, &number)
                .await
                .map_err(|e| self.http_error(e))?;
            report.pages += 1;
            report.fetched += page.orders.len() as u64;
            if let Some(p) = self.progress {
                p.page(&self.cfg.name, report.fetched, Some(total));
            }
            report.outcome.add(self.commit(page, None).await?);
        }
        Ok(())
    }

    /// The orders reconcile re-reads, and how many the optional cap leaves out.
    async fn watched(&self) -> Result<store::Watched, SyncError> {
        let now = Utc::now();
        let finals_since = (!self.cfg.final_watch.is_zero())
            .then(|| now.checked_sub_signed(lookback(self.cfg.final_watch)))
            .flatten();
        let cap = self
            .cfg
            .reconcile_horizon
            .and_then(|h| now.checked_sub_signed(lookback(h)));
        self.store
            .watched_orders(&self.cfg.name, finals_since, cap)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// A reconcile pass that re-reads a whole window. Not checkpointed: an interrupted rescan
    /// simply runs again from its start next time.
    async fn rescan<S: Source>(
        &self,
        src: &S,
        window: Window,
        report: &mut PassReport,
    ) -> Result<(), SyncError> {
        let ctx = PassCtx {
            platform: &self.cfg.name,
            window,
            store: self.store,
            exhaustive: false,
        };
        let mut token = src.first_token(&window);
        let mut seen = std::collections::HashSet::from([token.clone()]);
        let mut read = ReadInPass::default();
        loop {
            if self.cancel.is_cancelled() {
                report.interrupted = true;
                return Ok(());
            }
            let mut page = src
                .fetch_page(&ctx, &token)
                .await
                .map_err(|e| self.http_error(e))?;
            report.pages += 1;
            report.fetched += page.orders.len() as u64;
            read.check(src.listing(&token), &page, report.pages, &self.cfg.name)
                .map_err(|e| *e)?;
            if let Some(p) = self.progress {
                p.page(&self.cfg.name, report.fetched, page.total);
            }
            let next = page.next.take();
            report.outcome.add(self.commit(page, None).await?);
            match next {
                Some(n) if !seen.insert(n.clone()) => {
                    return Err(SyncError::PageLoop {
                        platform: self.cfg.name.clone(),
                        token: n,
                    });
                }
                Some(n) => token = n,
                None => return Ok(()),
            }
        }
    }

    async fn commit(
        &self,
        page: Page,
        checkpoint: Option<PassState>,
    ) -> Result<PageOutcome, SyncError> {
        let write = PageWrite {
            platform: self.cfg.name.clone(),
            orders: page.orders,
            rejects: page.rejects,
            checkpoint,
        };
        self.store
            .apply_page(write)
            .await
            .map_err(|e| self.store_error(e))
    }
}

/// How far either side of a watched order's placing time its reconcile window reaches: the
/// listing filters on that very time, so a margin only absorbs the rounding of the bounds.
const WINDOW_MARGIN: TimeDelta = TimeDelta::minutes(2);

/// Two reconcile windows further apart than this stay apart even when one page would hold
/// both: a window should say where the watched orders are, not read days of other orders.
const WINDOW_MERGE_GAP: TimeDelta = TimeDelta::hours(1);

/// Windows of the listing that cover every time in `watched` (ascending), each widened by
/// [`WINDOW_MARGIN`]. Neighbouring windows are merged when they overlap, or when they are
/// close ([`WINDOW_MERGE_GAP`]) and the stored orders of the merged span (`listing`,
/// ascending: the store mirrors the listing) still fit in one page, so a merge saves a
/// request without reading more pages.
fn reconcile_windows(
    watched: &[DateTime<Utc>],
    listing: &[DateTime<Utc>],
    per_page: usize,
) -> Vec<Window> {
    let orders_in = |from: DateTime<Utc>, to: DateTime<Utc>| {
        listing.partition_point(|t| *t <= to) - listing.partition_point(|t| *t < from)
    };
    let mut windows: Vec<Window> = Vec::new();
    for &t in watched {
        let w = Window {
            from: t - WINDOW_MARGIN,
            to: t + WINDOW_MARGIN,
        };
        match windows.last_mut() {
            Some(last)
                if w.from <= last.to
                    || (w.from - last.to <= WINDOW_MERGE_GAP
                        && orders_in(last.from, w.to) <= per_page.max(1)) =>
            {
                last.to = last.to.max(w.to);
            }
            _ => windows.push(w),
        }
    }
    windows
}

/// The orders a pass has read so far, as 64-bit hashes of their ids (8 bytes an order, so a
/// pass over a large shop stays small). A platform that ignores its paging parameter answers
/// every page with the same orders and fresh links; the link guard alone never sees a repeat.
#[derive(Default)]
struct ReadInPass {
    listing: String,
    ids: std::collections::HashSet<u64>,
}

impl ReadInPass {
    /// Fails a page that links onwards while holding nothing new. Repeats on a page with new
    /// orders are normal for offset paging (an order placed meanwhile shifts the pages by one).
    fn check(
        &mut self,
        listing: String,
        page: &Page,
        number: u64,
        platform: &str,
    ) -> Result<(), Box<SyncError>> {
        if listing != self.listing {
            self.listing = listing;
            self.ids.clear();
        }
        let mut new = false;
        for o in &page.orders {
            new |= self
                .ids
                .insert(xxhash_rust::xxh3::xxh3_64(o.order.order_id.as_bytes()));
        }
        if page.next.is_some() && !page.orders.is_empty() && !new {
            return Err(Box::new(SyncError::NoProgress {
                platform: platform.to_string(),
                page: number,
                orders: page.orders.len(),
            }));
        }
        Ok(())
    }
}

fn lookback(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
