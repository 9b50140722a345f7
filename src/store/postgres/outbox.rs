//! The outbox on PostgreSQL, where several daemons drain one queue: claims lock their rows with
//! `FOR UPDATE SKIP LOCKED` in the claiming transaction, so two drains never claim one entry,
//! and queueing locks the order's row so its checks and insert cannot interleave with another
//! queueing for the same order.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_postgres::Row;
use tracing::{error, warn};

use super::super::outbox::{EnqueueError, Recorded, claim_token, lease_ts};
use super::super::ts;
use super::orders::{find, items};
use super::{Pg, StoreError};
use crate::model::{
    Action, Attempt, Entry, OrderSnapshot, OutboxRow, OutboxState, Params, Status, StoredItem,
    StoredOrder,
};

const ROW_COLUMNS: &str = "id, platform, order_id, action, params, state, attempts, \
    next_attempt_at, last_error, created_at, updated_at";

fn state_from(text: &str) -> Result<OutboxState, StoreError> {
    text.parse()
        .map_err(|e: String| StoreError::Other(format!("outbox state: {e}")))
}

/// The state in a row's first column.
fn first_state(r: &Row) -> Result<OutboxState, StoreError> {
    state_from(r.get(0))
}

fn row_from(r: &Row) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: r.get(0),
        platform: r.get(1),
        order_id: r.get(2),
        action: r.get(3),
        params: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or_default(),
        state: state_from(r.get(5))?,
        attempts: r.get(6),
        next_attempt_at: r.get(7),
        last_error: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    })
}

async fn fail_row(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    reason: &str,
    now: &str,
) -> Result<(), StoreError> {
    error!(entry = id, reason, "outbox entry cannot be sent");
    tx.execute(
        "UPDATE outbox SET state = 'failed', last_error = $2, updated_at = $3 WHERE id = $1",
        &[&id, &reason, &now],
    )
    .await?;
    Ok(())
}

impl Pg {
    pub(crate) async fn enqueue<E, F>(
        &self,
        platform: &str,
        order: &str,
        action: Action,
        params: String,
        now: DateTime<Utc>,
        vet: F,
    ) -> Result<Result<i64, EnqueueError<E>>, StoreError>
    where
        F: FnOnce(&StoredOrder, &[StoredItem]) -> Result<(), E>,
    {
        self.write(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // The order's row lock (FOR UPDATE) serializes every queueing for this order, and
            // a page changing it: the second enqueue waits, then sees the first's entry in its
            // duplicate check (READ COMMITTED reads what committed before each statement). A
            // unique index could refuse the second insert but not keep `vet` and the insert on
            // one view of the order; SERIALIZABLE would need a retry loop around `vet`.
            let Some(stored) = find(&tx, platform, order, true).await? else {
                return Ok(Err(EnqueueError::UnknownOrder));
            };
            let order_items = items(&tx, platform, &stored.order_id).await?;
            if let Err(e) = vet(&stored, &order_items) {
                return Ok(Err(EnqueueError::Refused(e)));
            }
            let active = tx
                .query_opt(
                    "SELECT id, state FROM outbox WHERE platform = $1 AND order_id = $2
                     AND action = $3 AND state IN ('pending', 'in_flight') ORDER BY id LIMIT 1",
                    &[&platform, &stored.order_id, &action.as_str()],
                )
                .await?;
            if let Some(r) = active {
                return Ok(Err(EnqueueError::Duplicate {
                    order_id: stored.order_id,
                    id: r.get(0),
                    state: state_from(r.get(1))?,
                }));
            }
            let now = ts(now);
            let id: i64 = tx
                .query_one(
                    "INSERT INTO outbox (platform, order_id, action, params, state, attempts,
                         next_attempt_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5) RETURNING id",
                    &[&platform, &stored.order_id, &action.as_str(), &params, &now],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok(Ok(id))
        })
        .await
    }

    pub(crate) async fn claim_due(
        &self,
        platform: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.write(async {
            let until = lease_ts(now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX));
            let now_s = ts(now);
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // SKIP LOCKED: an entry another drain is claiming right now is left to it. The
            // NOT EXISTS sees that drain's entry still pending until it commits, so a later
            // entry of the same order is not taken around it either.
            let rows = tx
                .query(
                    "SELECT id, order_id, action, params, attempts, outcome_unknown FROM outbox o
                     WHERE platform = $1 AND state = 'pending' AND next_attempt_at <= $2
                       AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.platform = o.platform
                           AND e.order_id = o.order_id AND e.id < o.id
                           AND e.state IN ('pending', 'in_flight', 'failed'))
                     ORDER BY id LIMIT $3
                     FOR UPDATE OF o SKIP LOCKED",
                    &[&platform, &now_s, &(limit as i64)],
                )
                .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for r in rows {
                let id: i64 = r.get(0);
                let order_id: String = r.get(1);
                let action_text: String = r.get(2);
                let params_json: String = r.get(3);
                let attempts: i64 = r.get(4);
                let outcome_unknown: i64 = r.get(5);
                let action: Action = match action_text.parse() {
                    Ok(a) => a,
                    Err(e) => {
                        fail_row(
                            &tx,
                            id,
                            &format!("unknown action `{action_text}`: {e}"),
                            &now_s,
                        )
                        .await?;
                        continue;
                    }
                };
                let params: Params = match serde_json::from_str(&params_json) {
                    Ok(p) => p,
                    Err(e) => {
                        fail_row(&tx, id, &format!("params are not valid: {e}"), &now_s).await?;
                        continue;
                    }
                };
                let Some(order) = find(&tx, platform, &order_id, false).await? else {
                    fail_row(
                        &tx,
                        id,
                        &format!("order {order_id} is not stored for {platform}"),
                        &now_s,
                    )
                    .await?;
                    continue;
                };
                let raw: String = tx
                    .query_one(
                        "SELECT raw FROM orders WHERE platform = $1 AND order_id = $2",
                        &[&platform, &order.order_id],
                    )
                    .await?
                    .get(0);
                let order_items = items(&tx, platform, &order.order_id).await?;
                tx.execute(
                    "UPDATE outbox SET state = 'in_flight', updated_at = $2, claimed_by = $3,
                         claim_token = $4, claimed_until = $5
                     WHERE id = $1",
                    &[
                        &id,
                        &now_s,
                        &(std::process::id() as i64),
                        &claim_token(),
                        &until,
                    ],
                )
                .await?;
                entries.push(Entry {
                    id,
                    platform: platform.to_string(),
                    order_id: order.order_id.clone(),
                    action,
                    params,
                    attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                    outcome_unknown: outcome_unknown != 0,
                    order: OrderSnapshot {
                        number: order.number.clone(),
                        status: order.status.parse().unwrap_or(Status::Unknown),
                        platform_status: order.platform_status.clone(),
                        raw,
                        items: order_items,
                    },
                });
            }
            tx.commit().await?;
            Ok(entries)
        })
        .await
    }

    pub(crate) async fn renew_claims(
        &self,
        platform: &str,
        until: DateTime<Utc>,
    ) -> Result<HashSet<i64>, StoreError> {
        self.write(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "UPDATE outbox SET claimed_until = $3
                     WHERE platform = $1 AND state = 'in_flight' AND claim_token = $2
                     RETURNING id",
                    &[&platform, &claim_token(), &lease_ts(until)],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    pub(crate) async fn finish_push(
        &self,
        id: i64,
        attempt: Attempt,
    ) -> Result<Recorded, StoreError> {
        self.write(async {
            let c = self.client().await?;
            let changed = c
                .execute(
                    "UPDATE outbox SET state = $2, attempts = $3, next_attempt_at = $4,
                         last_error = $5, outcome_unknown = $6, updated_at = $7,
                         claimed_by = NULL, claim_token = NULL, claimed_until = NULL
                     WHERE id = $1 AND state = 'in_flight' AND claim_token = $8",
                    &[
                        &id,
                        &attempt.state.as_str(),
                        &(attempt.attempts as i64),
                        &ts(attempt.next_attempt_at),
                        &attempt.last_error,
                        &(attempt.outcome_unknown as i64),
                        &ts(attempt.at),
                        &claim_token(),
                    ],
                )
                .await?;
            if changed == 1 {
                return Ok(Recorded::Yes);
            }
            let now = c
                .query_opt("SELECT state FROM outbox WHERE id = $1", &[&id])
                .await?;
            Ok(Recorded::NotHeld(
                now.as_ref().map(first_state).transpose()?,
            ))
        })
        .await
    }

    /// Entries whose lease ran out go back to the queue. Entries claimed without a lease (copied
    /// from a SQLite store written by an ordersync before leases) carry only a pid, which means
    /// nothing across machines: they are taken back too.
    pub(crate) async fn recover_in_flight(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "UPDATE outbox SET state = 'pending', outcome_unknown = 1,
                     next_attempt_at = $1, updated_at = $1, claimed_by = NULL,
                     claim_token = NULL, claimed_until = NULL
                 WHERE state = 'in_flight'
                   AND (claim_token IS NULL OR claimed_until IS NULL
                        OR claimed_until <= $2)",
                &[&ts(now), &lease_ts(now)],
            )
            .await? as usize;
        if n > 0 {
            warn!(
                entries = n,
                "outbox entries were in flight in a process that stopped; they will be read back before any resend"
            );
        }
        Ok(n)
    }

    pub(crate) async fn list_outbox(
        &self,
        state: Option<OutboxState>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE ($1::text IS NULL OR state = $1) ORDER BY id"
        );
        self.rows(&sql, &[&state.map(OutboxState::as_str)], row_from)
            .await?
    }

    pub(crate) async fn order_outbox(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE platform = $1 AND order_id = $2 ORDER BY id"
        );
        self.rows(&sql, &[&platform, &order_id], row_from).await?
    }

    pub(crate) async fn outbox_state(&self, id: i64) -> Result<Option<OutboxState>, StoreError> {
        self.opt_row(
            "SELECT state FROM outbox WHERE id = $1",
            &[&id],
            first_state,
        )
        .await?
        .transpose()
    }

    pub(crate) async fn retry_push(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2,
                     updated_at = $2
                 WHERE id = $1 AND state IN ('failed', 'cancelled')",
                &[&id, &ts(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(crate) async fn cancel_push(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE outbox SET state = 'cancelled', updated_at = $2
                 WHERE id = $1 AND state IN ('pending', 'failed')",
                &[&id, &ts(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(crate) async fn outbox_depth(
        &self,
        platform: Option<&str>,
    ) -> Result<BTreeMap<OutboxState, u64>, StoreError> {
        self.rows(
            "SELECT state, count(*) FROM outbox WHERE ($1::text IS NULL OR platform = $1)
             GROUP BY state",
            &[&platform],
            |r| Ok((first_state(r)?, r.get::<_, i64>(1) as u64)),
        )
        .await?
    }
}
