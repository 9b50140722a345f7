//! The write side: status transitions queued in the `outbox` table and delivered to the
//! platforms. The table is the whole state — a row is written before any request, its retry
//! schedule (`attempts`, `next_attempt_at`) lives in it, and so does the fact that an attempt's
//! outcome is unknown — so delivery survives restarts and crashes. A claimed entry is held under
//! a lease its drain renews while it works: another process never takes live work, and a stopped
//! process's entries come back once its lease runs out. [`drain_once`] is the worker
//! as one step function: the daemon calls it every `push_interval`, `ordersync push` once, and
//! tests call it with the clock they choose.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tracing::{error, info, warn};

pub use crate::model::{Action, Entry, OrderSnapshot, Params};
pub use crate::platforms::PushOutcome;

use crate::config::{PlatformConfig, RetryConfig};
use crate::daemon::Platform;
use crate::http::HttpError;
use crate::model::Status;
use crate::model::{StoredItem, StoredOrder};
use crate::platforms;
use crate::store::{Store, StoreError, ts};

/// Why `transition` refused. Nothing was queued.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "no order `{order}` is stored for platform `{platform}` (by id or number): run `ordersync sync {platform}` first"
    )]
    UnknownOrder { platform: String, order: String },
    #[error(
        "platform `{platform}` ({kind}) is read-only: ordersync cannot push status changes to it"
    )]
    ReadOnly {
        platform: String,
        kind: &'static str,
    },
    #[error("platform `{platform}` ({kind}) cannot be asked for `{action}` (it can do: {can})")]
    Unsupported {
        platform: String,
        kind: &'static str,
        action: Action,
        can: String,
    },
    #[error(
        "order {order} is `{from}`; the state machine does not allow `{from}` -> `{to}` (--force overrides)"
    )]
    Forbidden {
        order: String,
        from: Status,
        to: Status,
    },
    #[error("{0}")]
    Params(String),
    #[error("order {order} already has entry #{id} queued for `{action}` (state {state})")]
    Duplicate {
        order: String,
        id: i64,
        action: Action,
        state: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates a transition against the stored order, the platform's abilities and the state
/// machine, then queues it. Returns the new row's id.
pub fn enqueue(
    conn: &mut Connection,
    cfg: &PlatformConfig,
    order: &str,
    action: Action,
    params: &Params,
    force: bool,
    now: DateTime<Utc>,
) -> Result<i64, Refusal> {
    let actions = platforms::push_actions(cfg.kind);
    if actions.is_empty() {
        return Err(Refusal::ReadOnly {
            platform: cfg.name.clone(),
            kind: cfg.kind.as_str(),
        });
    }
    if !actions.contains(&action.as_str()) {
        return Err(Refusal::Unsupported {
            platform: cfg.name.clone(),
            kind: cfg.kind.as_str(),
            action,
            can: actions.join(", "),
        });
    }
    platforms::check_push_params(cfg.kind, action, params).map_err(Refusal::Params)?;
    // IMMEDIATE: this transaction reads, then writes; in WAL a deferred one cannot wait for a
    // busy writer at the upgrade and fails at once instead.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let Some(stored) = StoredOrder::find(&tx, &cfg.name, order)? else {
        return Err(Refusal::UnknownOrder {
            platform: cfg.name.clone(),
            order: order.to_string(),
        });
    };
    if let Action::Status(to) = action {
        let from: Status = stored.status.parse().unwrap_or(Status::Unknown);
        if !force && !from.can_transition_to(to) {
            return Err(Refusal::Forbidden {
                order: stored.order_id.clone(),
                from,
                to,
            });
        }
    }
    if !params.items.is_empty() {
        let known: Vec<String> = stored.items(&tx)?.into_iter().map(|i| i.item_id).collect();
        if let Some(bad) = params.items.iter().find(|i| !known.contains(i)) {
            return Err(Refusal::Params(format!(
                "order {} has no item `{bad}` (items: {})",
                stored.order_id,
                known.join(", ")
            )));
        }
    }
    let active: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, state FROM outbox WHERE platform = ?1 AND order_id = ?2 AND action = ?3
             AND state IN ('pending', 'in_flight') LIMIT 1",
            params![cfg.name, stored.order_id, action.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::from)?;
    if let Some((id, state)) = active {
        return Err(Refusal::Duplicate {
            order: stored.order_id,
            id,
            action,
            state,
        });
    }
    let now = ts(now);
    tx.execute(
        "INSERT INTO outbox (platform, order_id, action, params, state, attempts, next_attempt_at,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
        params![
            cfg.name,
            stored.order_id,
            action.as_str(),
            serde_json::to_string(params).expect("params serialize"),
            now
        ],
    )
    .map_err(StoreError::from)?;
    let id = tx.last_insert_rowid();
    tx.commit().map_err(StoreError::from)?;
    Ok(id)
}

/// One row as `outbox` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub platform: String,
    pub order_id: String,
    pub action: String,
    pub params: serde_json::Value,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn list(conn: &Connection, state: Option<&str>) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, platform, order_id, action, params, state, attempts, next_attempt_at,
                last_error, created_at, updated_at
         FROM outbox WHERE (?1 IS NULL OR state = ?1) ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![state], |r| {
            Ok(Row {
                id: r.get(0)?,
                platform: r.get(1)?,
                order_id: r.get(2)?,
                action: r.get(3)?,
                params: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                state: r.get(5)?,
                attempts: r.get(6)?,
                next_attempt_at: r.get(7)?,
                last_error: r.get(8)?,
                created_at: r.get(9)?,
                updated_at: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `outbox retry ID`: a failed or cancelled entry goes back in the queue with a fresh budget.
pub fn retry(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<(), String> {
    let changed = conn
        .execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                 updated_at = ?2
             WHERE id = ?1 AND state IN ('failed', 'cancelled')",
            params![id, ts(now)],
        )
        .map_err(|e| e.to_string())?;
    if changed == 1 {
        Ok(())
    } else {
        Err(explain_state(
            conn,
            id,
            "only failed or cancelled entries can be retried",
        ))
    }
}

/// `outbox cancel ID`: a pending or failed entry will not be sent.
pub fn cancel(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<(), String> {
    let changed = conn
        .execute(
            "UPDATE outbox SET state = 'cancelled', updated_at = ?2
             WHERE id = ?1 AND state IN ('pending', 'failed')",
            params![id, ts(now)],
        )
        .map_err(|e| e.to_string())?;
    if changed == 1 {
        Ok(())
    } else {
        Err(explain_state(
            conn,
            id,
            "only pending or failed entries can be cancelled (an in-flight one may already have reached the platform)",
        ))
    }
}

fn explain_state(conn: &Connection, id: i64, rule: &str) -> String {
    match conn
        .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    {
        Ok(Some(state)) => format!("entry #{id} is {state}: {rule}"),
        Ok(None) => format!("no outbox entry #{id}"),
        Err(e) => e.to_string(),
    }
}

/// Entries left `in_flight` by a holder that is gone (killed mid-push): whether they reached
/// the platform is unknown, so they go back to the queue marked for a read-back before any
/// resend. A holder is gone when its lease ran out: a live one renews its lease while it works
/// (the daemon while `ordersync push` runs, or the other way round), so its entries are left to
/// it, whatever its pid. A pid proves nothing here: a restarted container's daemon is PID 1 like
/// the one killed before it, and another container's processes have pids of their own.
pub fn recover_in_flight(conn: &Connection, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut n = conn.execute(
        "UPDATE outbox SET state = 'pending', outcome_unknown = 1, next_attempt_at = ?1,
             updated_at = ?1, claimed_by = NULL, claim_token = NULL, claimed_until = NULL
         WHERE state = 'in_flight' AND claim_token IS NOT NULL
           AND (claimed_until IS NULL OR claimed_until <= ?2)",
        params![ts(now), lease_ts(now)],
    )?;
    // Claims an ordersync without leases made (before an upgrade): a pid is all they carry. Ours
    // cannot be one (this process claims with its token), so under our pid it is a
    // predecessor's.
    let holders: Vec<Option<i64>> = conn
        .prepare(
            "SELECT DISTINCT claimed_by FROM outbox
             WHERE state = 'in_flight' AND claim_token IS NULL",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for holder in holders {
        if holder.is_some_and(other_process_alive) {
            continue;
        }
        n += conn.execute(
            "UPDATE outbox SET state = 'pending', outcome_unknown = 1, next_attempt_at = ?1,
                 updated_at = ?1, claimed_by = NULL, claimed_until = NULL
             WHERE state = 'in_flight' AND claim_token IS NULL AND claimed_by IS ?2",
            params![ts(now), holder],
        )?;
    }
    if n > 0 {
        warn!(
            entries = n,
            "outbox entries were in flight in a process that stopped; they will be read back before any resend"
        );
    }
    Ok(n)
}

fn other_process_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This process's claim token, drawn once: 128 random bits, so no two processes share one,
/// however their pids are reused.
fn claim_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{:032x}", rand::random::<u128>()))
}

/// How long a claim holds without renewal: one push request to its timeout, as long again for
/// its wait on the rate limit and the read-back before it, and a write waiting out another
/// program's lock. A drain renews its claims every third of this while it works, so the lease
/// bounds only how long a stopped holder's entries wait, not how long a drain may take.
pub fn lease(timeout: Duration, busy_timeout: Duration) -> Duration {
    timeout * 2 + busy_timeout
}

/// Lease times in one fixed-width form, so SQLite compares them as text in time order (`ts`
/// drops whole-second milliseconds, and `…05Z` sorts after `…05.500Z`).
fn lease_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One drain's claims on one platform: renewed while the drain works, and checked before it
/// sends, so an entry taken over after a stall (a suspended process, a lease run out) is not
/// sent by both holders.
struct Claims<'a> {
    store: &'a Store,
    platform: String,
    /// The drain's clock (`now` of [`drain_once`]) when it claimed, and the monotonic instant
    /// then: later lease ends are on the drain's clock, which tests choose.
    claimed_at: DateTime<Utc>,
    started: tokio::time::Instant,
    lease: Duration,
}

impl Claims<'_> {
    /// Extends the lease of every entry of the platform this process holds; returns their ids.
    async fn renew(&self) -> Result<HashSet<i64>, StoreError> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        let lease = TimeDelta::from_std(self.lease).unwrap_or(TimeDelta::MAX);
        let until = lease_ts(self.claimed_at + elapsed + lease);
        let platform = self.platform.clone();
        self.store
            .write(move |c| {
                let held = c
                    .prepare_cached(
                        "UPDATE outbox SET claimed_until = ?3
                         WHERE platform = ?1 AND state = 'in_flight' AND claim_token = ?2
                         RETURNING id",
                    )?
                    .query_map(params![platform, claim_token(), until], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(held)
            })
            .await
    }

    /// Renews every third of the lease, for as long as the drain runs (it is dropped with it).
    async fn keep(&self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            if let Err(e) = self.renew().await {
                warn!(platform = %self.platform, error = %e,
                      "cannot renew the lease on outbox entries being pushed; will try again");
            }
        }
    }
}

/// The delay before attempt `attempts + 1`, after `attempts` failures: jittered exponential
/// from the platform's `[retry]`, and never sooner than a `Retry-After` (itself capped at
/// `max_interval`, so a platform cannot park an entry for a day).
pub fn retry_delay(retry: &RetryConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let mut policy = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(retry.initial_interval)
        .with_max_interval(retry.max_interval)
        .with_multiplier(2.0)
        .with_randomization_factor(0.5)
        .with_max_elapsed_time(None)
        .build();
    let mut delay = retry.initial_interval;
    for _ in 0..attempts.max(1) {
        delay = policy.next_backoff().unwrap_or(retry.max_interval);
    }
    match retry_after {
        Some(asked) => delay.max(asked.min(retry.max_interval)),
        None => delay,
    }
}

/// What one drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: u64,
    pub done: u64,
    pub already_applied: u64,
    pub retried: u64,
    pub failed: u64,
}

impl DrainReport {
    fn add(&mut self, o: DrainReport) {
        self.sent += o.sent;
        self.done += o.done;
        self.already_applied += o.already_applied;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

/// Most entries claimed per platform per drain: bounds one drain's memory and request.
const BATCH: usize = 1000;

/// Sends every due entry of the given platforms once. Platforms drain concurrently; within one,
/// an order's entries go out in the order they were queued (an entry waits while an earlier one
/// for the same order is pending, in flight or failed).
pub async fn drain_once(
    store: &Store,
    platforms: &BTreeMap<String, Arc<Platform>>,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let mut tasks = tokio::task::JoinSet::new();
    for p in platforms.values() {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move { drain_platform(&store, &p, now).await });
    }
    // Every platform's drain runs to its end: returning early would abort the others
    // mid-push and leave their entries in flight.
    let mut total = DrainReport::default();
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(r)) => total.add(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(StoreError::Other(format!("push task failed: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn drain_platform(
    store: &Store,
    p: &Platform,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let name = p.cfg.name.clone();
    let lease = lease(p.cfg.timeout, store.busy_timeout());
    let entries = store
        .write(move |c| claim_due(c, &name, now, lease))
        .await?;
    if entries.is_empty() {
        return Ok(DrainReport::default());
    }
    let claims = Claims {
        store,
        platform: p.cfg.name.clone(),
        claimed_at: now,
        started: tokio::time::Instant::now(),
        lease,
    };
    tokio::select! {
        r = push_claimed(store, p, entries, &claims, now) => r,
        never = claims.keep() => match never {},
    }
}

async fn push_claimed(
    store: &Store,
    p: &Platform,
    entries: Vec<Entry>,
    claims: &Claims<'_>,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let mut report = DrainReport::default();
    let mut to_send = Vec::with_capacity(entries.len());
    for e in entries {
        if !e.outcome_unknown {
            to_send.push(e);
            continue;
        }
        match p.connector.already_applied(&e).await {
            Some(Ok(true)) => {
                info!(platform = %e.platform, order = %e.order_id, action = %e.action,
                      "already applied on the platform; not sending again");
                report.already_applied += 1;
                finish(store, &e, PushOutcome::Done, &p.cfg.retry, now, &mut report).await?;
            }
            Some(Ok(false)) | None => to_send.push(e),
            // The read-back itself failed: whether the first attempt landed is still unknown, so
            // the entry stays marked for a read-back.
            Some(Err(err)) => {
                let err = match err {
                    HttpError::OutcomeUnknown { .. } => err,
                    other => HttpError::OutcomeUnknown {
                        reason: format!("reading the order back failed: {other}"),
                    },
                };
                finish(
                    store,
                    &e,
                    PushOutcome::Retry(err),
                    &p.cfg.retry,
                    now,
                    &mut report,
                )
                .await?
            }
        }
    }
    if to_send.is_empty() {
        return Ok(report);
    }
    // The read-backs may have taken long: send only what is still ours.
    let held = claims.renew().await?;
    to_send.retain(|e| {
        let ours = held.contains(&e.id);
        if !ours {
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, entry = e.id,
                  "not sending: this process's lease on the entry ran out and another process took it over");
        }
        ours
    });
    if to_send.is_empty() {
        return Ok(report);
    }
    crash_point("before_send");
    let outcomes = match p.connector.push(&to_send).await {
        Some(o) => o,
        None => to_send
            .iter()
            .map(|_| PushOutcome::Failed(format!("platform {} is read-only", p.cfg.name)))
            .collect(),
    };
    report.sent += to_send.len() as u64;
    crash_point("after_send");
    for (e, o) in to_send.iter().zip(outcomes) {
        finish(store, e, o, &p.cfg.retry, now, &mut report).await?;
    }
    Ok(report)
}

/// Claims (marks `in_flight`, committed) the due entries of one platform, oldest first, at
/// most one per order. The claim is what makes a crash after sending detectable. An entry waits
/// behind every earlier unfinished entry of its order, a failed one included: `delivered` must
/// never reach a platform before the `shipped` it follows, so a failed entry holds the order's
/// later ones until the operator retries or cancels it.
fn claim_due(
    conn: &mut Connection,
    platform: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Vec<Entry>, StoreError> {
    let until = lease_ts(now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX));
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now_s = ts(now);
    let rows: Vec<(i64, String, String, String, u32, bool)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, order_id, action, params, attempts, outcome_unknown FROM outbox o
             WHERE platform = ?1 AND state = 'pending' AND next_attempt_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.platform = o.platform
                   AND e.order_id = o.order_id AND e.id < o.id
                   AND e.state IN ('pending', 'in_flight', 'failed'))
             ORDER BY id LIMIT ?3",
        )?;
        stmt.query_map(params![platform, now_s, BATCH as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut entries = Vec::with_capacity(rows.len());
    for (id, order_id, action, params_json, attempts, outcome_unknown) in rows {
        let action: Action = match action.parse() {
            Ok(a) => a,
            Err(e) => {
                // Rows may come from other programs: a bad one fails alone, with the reason.
                fail_row(&tx, id, &format!("unknown action `{action}`: {e}"), &now_s)?;
                continue;
            }
        };
        let params: Params = match serde_json::from_str(&params_json) {
            Ok(p) => p,
            Err(e) => {
                fail_row(&tx, id, &format!("params are not valid: {e}"), &now_s)?;
                continue;
            }
        };
        let Some(order) = StoredOrder::find(&tx, platform, &order_id)? else {
            fail_row(
                &tx,
                id,
                &format!("order {order_id} is not stored for {platform}"),
                &now_s,
            )?;
            continue;
        };
        let raw: String = tx.query_row(
            "SELECT raw FROM orders WHERE platform = ?1 AND order_id = ?2",
            params![platform, order.order_id],
            |r| r.get(0),
        )?;
        let items: Vec<StoredItem> = order.items(&tx)?;
        // `claimed_by` only informs people reading the table; the token and the lease decide.
        tx.execute(
            "UPDATE outbox SET state = 'in_flight', updated_at = ?2, claimed_by = ?3,
                 claim_token = ?4, claimed_until = ?5
             WHERE id = ?1",
            params![id, now_s, std::process::id(), claim_token(), until],
        )?;
        entries.push(Entry {
            id,
            platform: platform.to_string(),
            order_id: order.order_id.clone(),
            action,
            params,
            attempts,
            outcome_unknown,
            order: OrderSnapshot {
                number: order.number.clone(),
                status: order.status.parse().unwrap_or(Status::Unknown),
                platform_status: order.platform_status.clone(),
                raw,
                items,
            },
        });
    }
    tx.commit()?;
    Ok(entries)
}

fn fail_row(tx: &Connection, id: i64, reason: &str, now: &str) -> Result<(), StoreError> {
    error!(entry = id, reason, "outbox entry cannot be sent");
    tx.execute(
        "UPDATE outbox SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, reason, now],
    )?;
    Ok(())
}

async fn finish(
    store: &Store,
    e: &Entry,
    outcome: PushOutcome,
    retry: &RetryConfig,
    now: DateTime<Utc>,
    report: &mut DrainReport,
) -> Result<(), StoreError> {
    let attempts = e.attempts + 1;
    let now_s = ts(now);
    let (state, next, last_error, unknown) = match &outcome {
        PushOutcome::Done => {
            info!(platform = %e.platform, order = %e.order_id, action = %e.action, "pushed");
            report.done += 1;
            ("done", now_s.clone(), None, false)
        }
        PushOutcome::Failed(msg) => {
            error!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %msg,
                   "push failed permanently; later transitions of this order wait for it: fix the cause, then `ordersync outbox retry {}` (or `outbox cancel {}`)", e.id, e.id);
            report.failed += 1;
            ("failed", now_s.clone(), Some(msg.clone()), false)
        }
        PushOutcome::Retry(err) if attempts >= retry.max_attempts => {
            error!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %err,
                   attempts, "push failed after max_attempts; later transitions of this order wait for it: `ordersync outbox retry {}` to try again (or `outbox cancel {}`)", e.id, e.id);
            report.failed += 1;
            ("failed", now_s.clone(), Some(err.to_string()), false)
        }
        PushOutcome::Retry(err) => {
            let delay = retry_delay(retry, attempts, err.retry_after());
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %err,
                  attempts, retry_in = ?delay, "push failed, will retry");
            report.retried += 1;
            let next = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
            (
                "pending",
                ts(next),
                Some(err.to_string()),
                matches!(err, HttpError::OutcomeUnknown { .. }),
            )
        }
    };
    crate::telemetry::metrics::metrics().push(&e.platform, state);
    let id = e.id;
    let recorded = store
        .write(move |c| {
            let changed = c.execute(
                "UPDATE outbox SET state = ?2, attempts = ?3, next_attempt_at = ?4,
                     last_error = ?5, outcome_unknown = ?6, updated_at = ?7, claimed_by = NULL,
                     claim_token = NULL, claimed_until = NULL
                 WHERE id = ?1 AND state = 'in_flight' AND claim_token = ?8",
                params![
                    id,
                    state,
                    attempts,
                    next,
                    last_error,
                    unknown,
                    now_s,
                    claim_token()
                ],
            )?;
            if changed == 1 {
                return Ok(None);
            }
            let now_state: Option<String> = c
                .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            Ok(Some(now_state))
        })
        .await?;
    match recorded {
        None => {}
        // A sync saw the target status and completed it meanwhile.
        Some(Some(s)) if s == "done" => {}
        Some(now_state) => {
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, entry = id,
                  outcome = state, now = now_state.as_deref().unwrap_or("deleted"),
                  "outcome not recorded: this process's lease on the entry ran out and it was taken over (the new holder reads the order back before any resend)");
        }
    }
    Ok(())
}

/// Test hook: `FAILPOINT_ORDERSYNC_PUSH=before_send|after_send` kills the process (SIGKILL) at
/// that point of a push, so the crash-recovery tests can stop it exactly where a power cut
/// might. (Not `ORDERSYNC_…`: every such variable is a configuration key.)
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("FAILPOINT_ORDERSYNC_PUSH").ok());
    if at.as_deref() == Some(point) {
        warn!(point, "FAILPOINT_ORDERSYNC_PUSH: killing the process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Pending and failed counts for `status`, per platform.
pub fn counts(conn: &Connection, platform: &str) -> Result<(u64, u64), StoreError> {
    let pending: i64 = conn.query_row(
        "SELECT count(*) FROM outbox WHERE platform = ?1 AND state IN ('pending', 'in_flight')",
        [platform],
        |r| r.get(0),
    )?;
    let failed: i64 = conn.query_row(
        "SELECT count(*) FROM outbox WHERE platform = ?1 AND state = 'failed'",
        [platform],
        |r| r.get(0),
    )?;
    Ok((pending as u64, failed as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_within_the_jitter_bounds_and_respect_retry_after() {
        let retry = RetryConfig {
            max_attempts: 10,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(60),
        };
        for _ in 0..200 {
            let d1 = retry_delay(&retry, 1, None);
            assert!(
                d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(3),
                "{d1:?}"
            );
            let d2 = retry_delay(&retry, 2, None);
            assert!(
                d2 >= Duration::from_secs(2) && d2 <= Duration::from_secs(6),
                "{d2:?}"
            );
            let d9 = retry_delay(&retry, 9, None);
            assert!(
                d9 <= Duration::from_secs(90),
                "capped near max_interval: {d9:?}"
            );
            let asked = retry_delay(&retry, 1, Some(Duration::from_secs(30)));
            assert!(asked >= Duration::from_secs(30), "{asked:?}");
            let capped = retry_delay(&retry, 1, Some(Duration::from_secs(3600)));
            assert!(capped <= Duration::from_secs(60), "{capped:?}");
        }
    }

    #[test]
    fn actions_parse_from_statuses_and_invoice() {
        assert_eq!(
            "shipped".parse::<Action>(),
            Ok(Action::Status(Status::Shipped))
        );
        assert_eq!("Invoice".parse::<Action>(), Ok(Action::Invoice));
        assert!("sent".parse::<Action>().is_err());
    }
}
