//! Delivering the change feed to the configured sinks (`[sinks.<name>]`): signed webhooks and
//! NATS JetStream. Each sink is one [`run`] task with its own cursor in the database:
//!
//! - **At least once, never lost.** A batch of events after the cursor is read and delivered;
//!   the cursor moves only over events the receiver acknowledged, and only as far as every
//!   earlier event of the batch is acknowledged too. A background writer records it (at most
//!   ten times a second), so delivery never waits for the database's writer, which may be busy
//!   with the platforms' pages. A crash, a restart or a reload delivers the events after
//!   the cursor again, with the same message ids, which is what receivers de-duplicate by; a
//!   slow receiver that sees crashes still makes progress inside a batch.
//! - **In order per order.** A batch is split into one chain per order; a chain's events go one
//!   after another, each retried until acknowledged before the next is sent. Chains of
//!   different orders go in parallel (`max_in_flight`), and the next batch starts only when the
//!   whole batch is acknowledged.
//! - **Nothing dropped.** Every failure but a webhook's 410 is retried with jittered
//!   exponential backoff (`Retry-After` honoured, capped), for as long as it takes: a dead
//!   receiver holds its backlog in the database and gets it when it comes back. A 410 disables
//!   the sink until an operator resumes it.
//! - **Out of everyone's way.** A sink only reads the store and writes its own row; it shares
//!   nothing with the platforms' runs, the outbox or another sink but the database.

mod nats;
mod payload;
mod webhook;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backoff::backoff::Backoff as _;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use payload::{Prepared, message_id, prepare};
pub use webhook::Webhook;

use crate::config::{SinkConfig, SinkStartAt, SinkTarget};
use crate::model::FeedBatch;
use crate::store::{SinkStart, Store};
use crate::telemetry::metrics::metrics;

/// Events read from the store per batch.
const BATCH: usize = 1000;
/// How often an idle sink looks for events another process committed (this process's own wake
/// it at once), and for an operator's pause, resume or replay.
const POLL: Duration = Duration::from_millis(500);
/// How often the lag gauges are brought up to date: counting the backlog reads it.
const LAG_EVERY: Duration = Duration::from_secs(2);
/// How often failed attempts are written to the sink's row (and its state read back for a
/// pause or replay): hundreds of deliveries failing at once against a dead receiver must not
/// queue hundreds of writes a second in front of the platforms' pages.
const RECORD_FAILURES_EVERY: Duration = Duration::from_secs(1);

/// Why a delivery attempt did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Try again later (after `retry_after` when the receiver said so).
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The receiver asked never to be called again (HTTP 410).
    Gone { reason: String },
}

impl Failure {
    fn retry(reason: String) -> Failure {
        Failure::Retry {
            reason,
            retry_after: None,
        }
    }
}

enum Transport {
    Webhook(Webhook),
    Nats(nats::Nats),
}

impl Transport {
    async fn connect(cfg: &SinkConfig) -> Result<Transport, String> {
        match &cfg.target {
            SinkTarget::Webhook { url, secrets } => Ok(Transport::Webhook(Webhook::new(
                url,
                secrets,
                cfg.timeout,
                cfg.max_in_flight,
            )?)),
            SinkTarget::Nats { .. } => Ok(Transport::Nats(nats::Nats::connect(cfg).await?)),
        }
    }

    async fn send(&self, p: &Prepared) -> Result<(), Failure> {
        match self {
            Transport::Webhook(w) => w.send(p).await,
            Transport::Nats(n) => n.send(p).await,
        }
    }
}

/// Where a sink seen for the first time starts, in the store's terms.
pub fn start_of(cfg: &SinkConfig) -> SinkStart {
    match cfg.start {
        SinkStartAt::Now => SinkStart::Now,
        SinkStartAt::Beginning => SinkStart::Beginning,
    }
}

fn policy(cfg: &SinkConfig) -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(cfg.initial_retry_interval)
        .with_max_interval(cfg.max_retry_interval)
        .with_multiplier(2.0)
        .with_randomization_factor(0.5)
        .with_max_elapsed_time(None)
        .build()
}

/// Sleeps `d`, or less when `cancel` fires; whether it fired.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

/// How a batch's delivery ended.
enum Outcome {
    Delivered,
    /// Cancelled, paused or replayed under way: read the state again.
    Stopped,
    Gone(String),
}

/// Where the sink stands, as the background writer is asked to record it: everything up to
/// `to` acknowledged, `delivered` events acknowledged since the task started, in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    epoch: i64,
    to: i64,
    delivered: u64,
}

/// How often, at most, the background writer records the cursor.
const CURSOR_WRITE_EVERY: Duration = Duration::from_millis(100);

/// Records the newest [`Mark`] on the sink's row, in the background, until the sender is
/// dropped (then once more, if the last mark was not yet written). Delivery never waits for
/// the database's writer, which may be busy with the platforms' pages; a crash loses at most
/// the last moment's marks, which means a repeat with the same ids, never a loss. A mark of an
/// epoch a replay has ended matches no row and moves nothing.
async fn write_cursor(store: Store, name: String, mut marks: tokio::sync::watch::Receiver<Mark>) {
    let mut written = *marks.borrow();
    loop {
        let closed = marks.changed().await.is_err();
        let m = *marks.borrow_and_update();
        if m != written {
            let delivered = m.delivered.saturating_sub(written.delivered);
            match store.sink_advance(&name, m.epoch, m.to, delivered).await {
                Ok(_) => written = m,
                Err(e) => warn!(sink = %name, error = %e, "recording delivered events; retrying"),
            }
        }
        if closed {
            return;
        }
        tokio::time::sleep(CURSOR_WRITE_EVERY).await;
    }
}

/// One sink's delivery, until `cancel`. It never gives up: every error is logged, counted,
/// recorded on the sink's row and retried.
pub async fn run(cfg: SinkConfig, store: Store, cancel: CancellationToken) {
    let name = cfg.name.clone();
    let mut retry = policy(&cfg);
    let opened = async {
        Ok::<_, crate::store::StoreError>((
            store.instance_id().await?,
            store.open_sink(&name, start_of(&cfg)).await?,
        ))
    };
    let (instance, state) = match opened.await {
        Ok(v) => v,
        Err(e) => loop {
            error!(sink = %name, error = %e, "cannot open the sink's row in the database; retrying");
            if pause(retry.next_backoff().unwrap_or(POLL), &cancel).await {
                return;
            }
            if let (Ok(i), Ok(s)) = (
                store.instance_id().await,
                store.open_sink(&name, start_of(&cfg)).await,
            ) {
                break (i, s);
            }
        },
    };
    info!(sink = %name, kind = cfg.kind(), to = %cfg.destination(), cursor = state.cursor, "sink started");
    let (marks, rx) = tokio::sync::watch::channel(Mark {
        epoch: state.epoch,
        to: state.cursor,
        delivered: 0,
    });
    let writer = tokio::spawn(write_cursor(store.clone(), name.clone(), rx));
    deliver_until_cancelled(&cfg, &store, &instance, state, &marks, &cancel).await;
    // The last marks are written before the task ends: a restart then repeats nothing.
    drop(marks);
    let _ = writer.await;
}

async fn deliver_until_cancelled(
    cfg: &SinkConfig,
    store: &Store,
    instance: &str,
    mut state: crate::model::SinkRecord,
    marks: &tokio::sync::watch::Sender<Mark>,
    cancel: &CancellationToken,
) {
    let name = &cfg.name;
    let filter = cfg.filter();
    let mut feed = store.feed_changes();
    let mut retry = policy(cfg);
    let mut transport: Option<Transport> = None;
    let mut lag_at: Option<Instant> = None;
    // Where delivery stands: ahead of the row's cursor while the writer catches up.
    let mut epoch = state.epoch;
    let mut position = state.cursor;
    // The batch after the one being delivered, read meanwhile while there is a backlog:
    // (the position it follows, the batch).
    let mut ahead: Option<(i64, FeedBatch)> = None;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        match store.sink(name).await {
            Ok(Some(s)) => state = s,
            Ok(None) => {
                // Deleted by hand under a running daemon: start it again where configured.
                match store.open_sink(name, start_of(cfg)).await {
                    Ok(s) => {
                        state = s;
                        epoch = i64::MIN;
                    }
                    Err(e) => warn!(sink = %name, error = %e, "re-creating the sink's row"),
                }
            }
            Err(e) => {
                warn!(sink = %name, error = %e, "reading the sink's state; retrying");
                if pause(POLL, cancel).await {
                    return;
                }
                continue;
            }
        }
        if state.epoch != epoch {
            // A replay (or a re-created row): start from the row's cursor, in its epoch.
            info!(sink = %name, from = state.cursor + 1, "delivering from the sink's new cursor");
            epoch = state.epoch;
            position = state.cursor;
            ahead = None;
            let delivered = marks.borrow().delivered;
            marks.send_replace(Mark {
                epoch,
                to: position,
                delivered,
            });
        }
        metrics().sink_state(name, state.paused, state.disabled.as_deref());
        if lag_at.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
            if let Ok(lag) = store.sink_lag(position, &filter).await {
                metrics().sink_lag(name, lag);
            }
            lag_at = Some(Instant::now());
        }
        if state.paused || state.disabled.is_some() {
            if wait_for_events(&mut feed, cancel).await {
                return;
            }
            continue;
        }
        let Some(t) = transport.as_ref() else {
            match Transport::connect(cfg).await {
                Ok(t) => {
                    transport = Some(t);
                    retry.reset();
                }
                Err(reason) => {
                    let delay = retry.next_backoff().unwrap_or(cfg.max_retry_interval);
                    warn!(sink = %name, retry_in = %humantime::format_duration(round(delay)), "{reason}");
                    metrics().sink_failed_attempt(name);
                    let _ = store.sink_failed(name, &reason, 1).await;
                    if pause(delay, cancel).await {
                        return;
                    }
                }
            }
            continue;
        };
        let read = match ahead.take() {
            Some((after, b)) if after == position => Ok(b),
            _ => store.feed_batch(position, BATCH, &filter).await,
        };
        let batch = match read {
            Ok(b) => b,
            Err(e) => {
                warn!(sink = %name, error = %e, "reading the change feed; retrying");
                if pause(POLL, cancel).await {
                    return;
                }
                continue;
            }
        };
        if batch.items.is_empty() {
            if batch.up_to > position {
                // Only events the filter leaves out: pass over them.
                position = batch.up_to;
                marks.send_modify(|m| m.to = m.to.max(position));
            } else {
                metrics().sink_lag(name, Default::default());
                if wait_for_events(&mut feed, cancel).await {
                    return;
                }
            }
            continue;
        }
        let prepared: Vec<Prepared> = batch.items.iter().map(|i| prepare(instance, i)).collect();
        let ctx = Ctx {
            cfg,
            store,
            transport: t,
            epoch,
            failures: Mutex::default(),
            marks,
        };
        // A full batch means more is waiting: read it while this one goes out, so the
        // receiver is not left idle between batches.
        let backlog = batch.items.len() == BATCH;
        let (outcome, next) = tokio::join!(deliver(&ctx, &prepared, cancel), async {
            if backlog {
                store.feed_batch(batch.up_to, BATCH, &filter).await.ok()
            } else {
                None
            }
        });
        match outcome {
            Outcome::Delivered => {
                position = batch.up_to;
                marks.send_modify(|m| m.to = m.to.max(position));
                ahead = next.map(|n| (position, n));
            }
            Outcome::Stopped => {}
            Outcome::Gone(reason) => {
                error!(sink = %name, "{reason}: the receiver asked to stop (HTTP 410 Gone); the sink is disabled and holds its backlog; `ordersync sinks resume {name}` delivers again");
                if let Err(e) = store.sink_disable(name, &reason).await {
                    error!(sink = %name, error = %e, "recording that the sink is disabled");
                }
            }
        }
    }
}

/// Waits for this process's next events, an idle poll, or `cancel` (whether it fired).
async fn wait_for_events(
    feed: &mut tokio::sync::watch::Receiver<u64>,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = feed.changed() => false,
        _ = tokio::time::sleep(POLL) => false,
        _ = cancel.cancelled() => true,
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

struct Ctx<'a> {
    cfg: &'a SinkConfig,
    store: &'a Store,
    transport: &'a Transport,
    epoch: i64,
    failures: Mutex<Unrecorded>,
    /// Where the acknowledged start of the batch reaches, for the background writer.
    marks: &'a tokio::sync::watch::Sender<Mark>,
}

/// Failed attempts not yet written to the sink's row.
#[derive(Default)]
struct Unrecorded {
    attempts: u64,
    last_error: String,
    written_at: Option<Instant>,
}

impl Ctx<'_> {
    /// Counts a failed attempt; writes the count (and reads the sink's state) at most once per
    /// [`RECORD_FAILURES_EVERY`]. Whether the sink must stop: an operator paused it or asked for
    /// a replay.
    async fn failed(&self, reason: &str) -> bool {
        let due = {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            f.attempts += 1;
            f.last_error = reason.to_string();
            if f.written_at
                .is_none_or(|t| t.elapsed() >= RECORD_FAILURES_EVERY)
            {
                f.written_at = Some(Instant::now());
                Some(std::mem::take(&mut f.attempts))
            } else {
                None
            }
        };
        let Some(attempts) = due else {
            return false;
        };
        let _ = self
            .store
            .sink_failed(&self.cfg.name, reason, attempts)
            .await;
        matches!(self.store.sink(&self.cfg.name).await,
            Ok(Some(s)) if s.paused || s.disabled.is_some() || s.epoch != self.epoch)
    }

    /// Writes the failed attempts still counted only in memory.
    async fn flush_failures(&self) {
        let (attempts, reason) = {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut f.attempts), f.last_error.clone())
        };
        if attempts > 0 {
            let _ = self
                .store
                .sink_failed(&self.cfg.name, &reason, attempts)
                .await;
        }
    }
}

/// Which events of a batch are acknowledged.
struct Progress {
    acked: Vec<bool>,
    /// Events `..prefix` are all acknowledged.
    prefix: usize,
}

/// Delivers a batch: one chain per order, chains in parallel. Whenever the acknowledged start
/// of the batch grows, the background writer is told, so a crash repeats little of it.
async fn deliver(ctx: &Ctx<'_>, batch: &[Prepared], cancel: &CancellationToken) -> Outcome {
    let mut by_order: HashMap<(&str, &str), usize> = HashMap::new();
    // Positions, not references: a stream of borrowed chains trips the compiler's
    // higher-ranked lifetime check for a spawned task.
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (at, p) in batch.iter().enumerate() {
        let i = *by_order
            .entry((p.platform.as_str(), p.order_id.as_str()))
            .or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
        chains[i].push(at);
    }
    let stop = cancel.child_token();
    let gone = Mutex::new(None);
    let progress = Mutex::new(Progress {
        acked: vec![false; batch.len()],
        prefix: 0,
    });
    let all_done = futures_util::stream::iter(chains)
        .map(|chain| deliver_chain(ctx, batch, chain, &stop, &gone, &progress))
        .buffer_unordered(ctx.cfg.max_in_flight)
        .fold(true, |acc, ok| async move { acc && ok })
        .await;
    ctx.flush_failures().await;
    if let Some(reason) = gone.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Outcome::Gone(reason);
    }
    if all_done {
        Outcome::Delivered
    } else {
        Outcome::Stopped
    }
}

async fn deliver_chain(
    ctx: &Ctx<'_>,
    batch: &[Prepared],
    chain: Vec<usize>,
    stop: &CancellationToken,
    gone: &Mutex<Option<String>>,
    progress: &Mutex<Progress>,
) -> bool {
    for at in chain {
        if !deliver_one(ctx, &batch[at], stop, gone).await {
            return false;
        }
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        p.acked[at] = true;
        let before = p.prefix;
        while p.prefix < p.acked.len() && p.acked[p.prefix] {
            p.prefix += 1;
        }
        let (grown, to) = (
            p.prefix - before,
            p.prefix.checked_sub(1).map(|i| batch[i].event_id),
        );
        drop(p);
        if let Some(to) = to.filter(|_| grown > 0) {
            ctx.marks.send_modify(|m| {
                if m.epoch == ctx.epoch {
                    m.to = m.to.max(to);
                    m.delivered += grown as u64;
                }
            });
        }
    }
    true
}

/// One event, retried until acknowledged; false when delivery must stop (cancel, pause,
/// replay, 410).
async fn deliver_one(
    ctx: &Ctx<'_>,
    p: &Prepared,
    stop: &CancellationToken,
    gone: &Mutex<Option<String>>,
) -> bool {
    let name = &ctx.cfg.name;
    let mut retry = policy(ctx.cfg);
    loop {
        let result = tokio::select! {
            r = ctx.transport.send(p) => r,
            _ = stop.cancelled() => return false,
        };
        match result {
            Ok(()) => {
                let lag = p
                    .observed_at
                    .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
                metrics().sink_delivered(name, lag);
                return true;
            }
            Err(Failure::Gone { reason }) => {
                *gone.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                stop.cancel();
                return false;
            }
            Err(Failure::Retry {
                reason,
                retry_after,
            }) => {
                metrics().sink_failed_attempt(name);
                let delay = match retry_after {
                    Some(d) => d.min(ctx.cfg.max_retry_interval),
                    None => retry.next_backoff().unwrap_or(ctx.cfg.max_retry_interval),
                };
                warn!(sink = %name, event = p.event_id, id = %p.message_id,
                      retry_in = %humantime::format_duration(round(delay)), "{reason}");
                // An operator may have paused, or asked for a replay, while this one failed.
                if ctx.failed(&reason).await {
                    stop.cancel();
                    return false;
                }
                if pause(delay, stop).await {
                    return false;
                }
            }
        }
    }
}
