//! The `outbox` table: queueing a transition, claiming due entries under a lease, recording how
//! an attempt ended, and the operator's `retry` and `cancel`. Entries are claimed under this
//! process's random token and a lease end: a live drain renews its lease while it works, and a
//! stopped one's entries come back once the lease runs out, whatever process ids say.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tracing::{error, warn};

use super::orders::{find, items};
use super::{Store, StoreError, ts};
use crate::model::{
    Action, Attempt, Entry, OrderSnapshot, OutboxRow, OutboxState, Params, Status, StoredItem,
    StoredOrder,
};

/// Why [`Store::enqueue`] queued nothing.
#[derive(Debug)]
pub enum EnqueueError<E> {
    /// No order of the platform has that id or number.
    UnknownOrder,
    /// The order already has a pending or in-flight entry for the action.
    Duplicate {
        order_id: String,
        id: i64,
        state: OutboxState,
    },
    /// The caller's check of the stored order refused it.
    Refused(E),
    Store(StoreError),
}

/// Whether [`Store::finish_push`] recorded the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// This process no longer held the entry (its lease ran out and another process took it
    /// over, or a sync completed it): the entry's state now, `None` if it is gone.
    NotHeld(Option<OutboxState>),
}

/// This process's claim token, drawn once: 128 random bits, so no two processes share one,
/// however their pids are reused.
pub(super) fn claim_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("{:032x}", rand::random::<u128>()))
}

/// Lease times in one fixed-width form, so SQLite compares them as text in time order (`ts`
/// drops whole-second milliseconds, and `…05Z` sorts after `…05.500Z`).
pub(super) fn lease_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn other_process_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn state_from(text: String, column: usize) -> rusqlite::Result<OutboxState> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })
}

const ROW_COLUMNS: &str = "id, platform, order_id, action, params, state, attempts, \
    next_attempt_at, last_error, created_at, updated_at";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        platform: r.get(1)?,
        order_id: r.get(2)?,
        action: r.get(3)?,
        params: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
        state: state_from(r.get(5)?, 5)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn fail_row(tx: &Connection, id: i64, reason: &str, now: &str) -> Result<(), StoreError> {
    error!(entry = id, reason, "outbox entry cannot be sent");
    tx.execute(
        "UPDATE outbox SET state = 'failed', last_error = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, reason, now],
    )?;
    Ok(())
}

fn claim_due(
    conn: &mut Connection,
    platform: &str,
    now: DateTime<Utc>,
    lease: Duration,
    limit: usize,
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
        stmt.query_map(params![platform, now_s, limit as i64], |r| {
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
        let Some(order) = find(&tx, platform, &order_id)? else {
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
        let items: Vec<StoredItem> = items(&tx, platform, &order.order_id)?;
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

fn recover_in_flight(conn: &Connection, now: DateTime<Utc>) -> Result<usize, StoreError> {
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

/// The outbox.
impl Store {
    /// Queues `action` for the order of `platform` whose id or number is `order`, once `vet`
    /// accepts the stored order and its items; returns the new entry's id. The look-up, `vet`,
    /// the duplicate check and the insert are one transaction.
    pub async fn enqueue<E, F>(
        &self,
        platform: &str,
        order: &str,
        action: Action,
        params: &Params,
        now: DateTime<Utc>,
        vet: F,
    ) -> Result<i64, EnqueueError<E>>
    where
        E: Send + 'static,
        F: FnOnce(&StoredOrder, &[StoredItem]) -> Result<(), E> + Send + 'static,
    {
        let (platform, order) = (platform.to_owned(), order.to_owned());
        let params = serde_json::to_string(params).expect("params serialize");
        if let Some(pg) = self.pg() {
            return match pg
                .enqueue(&platform, &order, action, params, now, vet)
                .await
            {
                Ok(result) => result,
                Err(e) => Err(EnqueueError::Store(e)),
            };
        }
        let queued = self
            .write(move |c| {
                // IMMEDIATE: this transaction reads, then writes; in WAL a deferred one cannot
                // wait for a busy writer at the upgrade and fails at once instead.
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let Some(stored) = find(&tx, &platform, &order)? else {
                    return Ok(Err(EnqueueError::UnknownOrder));
                };
                let order_items = items(&tx, &platform, &stored.order_id)?;
                if let Err(e) = vet(&stored, &order_items) {
                    return Ok(Err(EnqueueError::Refused(e)));
                }
                let active: Option<(i64, String)> = tx
                    .query_row(
                        "SELECT id, state FROM outbox WHERE platform = ?1 AND order_id = ?2
                         AND action = ?3 AND state IN ('pending', 'in_flight') LIMIT 1",
                        params![platform, stored.order_id, action.as_str()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, state)) = active {
                    return Ok(Err(EnqueueError::Duplicate {
                        order_id: stored.order_id,
                        id,
                        state: state_from(state, 1)?,
                    }));
                }
                let now = ts(now);
                tx.execute(
                    "INSERT INTO outbox (platform, order_id, action, params, state, attempts,
                         next_attempt_at, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
                    params![platform, stored.order_id, action.as_str(), params, now],
                )?;
                let id = tx.last_insert_rowid();
                tx.commit()?;
                Ok(Ok(id))
            })
            .await;
        match queued {
            Ok(result) => result,
            Err(e) => Err(EnqueueError::Store(e)),
        }
    }

    /// Claims (marks `in_flight` under this process's lease, committed) at most `limit` due
    /// entries of one platform, oldest first, at most one per order, with the stored order each
    /// needs. The claim is what makes a crash after sending detectable. An entry waits behind
    /// every earlier unfinished entry of its order, a failed one included: `delivered` must
    /// never reach a platform before the `shipped` it follows, so a failed entry holds the
    /// order's later ones until the operator retries or cancels it. An entry that cannot be
    /// sent (unknown action, bad params, order not stored) is failed with the reason instead.
    pub async fn claim_due(
        &self,
        platform: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.claim_due(platform, now, lease, limit).await;
        }
        let platform = platform.to_owned();
        self.write(move |c| claim_due(c, &platform, now, lease, limit))
            .await
    }

    /// Extends to `until` the lease of every entry of `platform` this process holds; returns
    /// their ids.
    pub async fn renew_claims(
        &self,
        platform: &str,
        until: DateTime<Utc>,
    ) -> Result<HashSet<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.renew_claims(platform, until).await;
        }
        let (platform, until) = (platform.to_owned(), lease_ts(until));
        self.write(move |c| {
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

    /// Records how an attempt at entry `id` ended and releases the claim, if this process
    /// still holds it.
    pub async fn finish_push(&self, id: i64, attempt: Attempt) -> Result<Recorded, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.finish_push(id, attempt).await;
        }
        self.write(move |c| {
            let changed = c.execute(
                "UPDATE outbox SET state = ?2, attempts = ?3, next_attempt_at = ?4,
                     last_error = ?5, outcome_unknown = ?6, updated_at = ?7, claimed_by = NULL,
                     claim_token = NULL, claimed_until = NULL
                 WHERE id = ?1 AND state = 'in_flight' AND claim_token = ?8",
                params![
                    id,
                    attempt.state.as_str(),
                    attempt.attempts,
                    ts(attempt.next_attempt_at),
                    attempt.last_error,
                    attempt.outcome_unknown,
                    ts(attempt.at),
                    claim_token()
                ],
            )?;
            if changed == 1 {
                return Ok(Recorded::Yes);
            }
            let now: Option<String> = c
                .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            Ok(Recorded::NotHeld(
                now.map(|s| state_from(s, 0)).transpose()?,
            ))
        })
        .await
    }

    /// Entries left in flight by a holder that is gone go back to the queue, marked for a
    /// read-back before any resend; returns how many. A holder is gone when its lease ran out:
    /// a live one renews its lease while it works, so its entries are left to it, whatever its
    /// pid. (A pid proves nothing: a restarted container's daemon is PID 1 like the one killed
    /// before it.)
    pub async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.recover_in_flight(now).await;
        }
        self.write(move |c| recover_in_flight(c, now)).await
    }

    /// Every entry, or those in `state`, by id.
    pub async fn list_outbox(
        &self,
        state: Option<OutboxState>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_outbox(state).await;
        }
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![state.map(OutboxState::as_str)], row_from)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The entries of one order, by id.
    pub async fn order_outbox(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.order_outbox(platform, order_id).await;
        }
        let (platform, order_id) = (platform.to_owned(), order_id.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM outbox WHERE platform = ?1 AND order_id = ?2
                 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![platform, order_id], row_from)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The state of entry `id`; `None` when there is no such entry.
    pub async fn outbox_state(&self, id: i64) -> Result<Option<OutboxState>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.outbox_state(id).await;
        }
        self.read(move |c| {
            let state: Option<String> = c
                .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            Ok(state.map(|s| state_from(s, 0)).transpose()?)
        })
        .await
    }

    /// Puts entry `id` back in the queue with a fresh attempt budget, if it is failed or
    /// cancelled; says whether it was.
    pub async fn retry_push(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.retry_push(id, now).await;
        }
        self.write(move |c| {
            let changed = c.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                     updated_at = ?2
                 WHERE id = ?1 AND state IN ('failed', 'cancelled')",
                params![id, ts(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Cancels entry `id`, if it is pending or failed; says whether it was.
    pub async fn cancel_push(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.cancel_push(id, now).await;
        }
        self.write(move |c| {
            let changed = c.execute(
                "UPDATE outbox SET state = 'cancelled', updated_at = ?2
                 WHERE id = ?1 AND state IN ('pending', 'failed')",
                params![id, ts(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// How many entries are in each state, of one platform or all; states with none are left
    /// out.
    pub async fn outbox_depth(
        &self,
        platform: Option<&str>,
    ) -> Result<BTreeMap<OutboxState, u64>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.outbox_depth(platform).await;
        }
        let platform = platform.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT state, count(*) FROM outbox WHERE (?1 IS NULL OR platform = ?1)
                 GROUP BY state",
            )?;
            let rows = stmt
                .query_map(params![platform], |r| {
                    Ok((state_from(r.get(0)?, 0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}
