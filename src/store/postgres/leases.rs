//! Leases on PostgreSQL: one row per lease in `leases`, its expiry in the server's clock, its
//! fencing token grown by every change of holder. Taking is one upsert that succeeds only over
//! a lease that is free, expired or given back (a lease this process holds is held: a verify
//! and a sync of one platform in one daemon exclude each other too); the fence check locks the row
//! `FOR SHARE` inside the writing transaction, so a takeover (an `UPDATE` of that row) waits
//! for the write to commit and every write after the takeover sees the new token and is
//! refused.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::{Pg, StoreError};
use crate::store::leases::{Lease, LeaseLost, holder_id};

/// The server's clock in Unix milliseconds; `clock_timestamp()`, not `now()`, because a
/// transaction's `now()` is its start.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

impl Pg {
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        period: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let ms = period.as_millis() as i64;
        self.write(async {
            let c = self.lease_client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "INSERT INTO leases (name, holder, token, expires_ms, state)
                         VALUES ($1, $2, 1, {NOW_MS} + $3, 'held')
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                             token = leases.token + 1, expires_ms = excluded.expires_ms,
                             state = 'held'
                         WHERE leases.state <> 'held' OR leases.expires_ms < {NOW_MS}
                         RETURNING token"
                    ),
                    &[&name, &holder_id(), &ms],
                )
                .await?;
            Ok(row.map(|r| Lease {
                name: name.into(),
                token: r.get(0),
            }))
        })
        .await
    }

    pub(crate) async fn renew_lease(
        &self,
        lease: &Lease,
        period: Duration,
    ) -> Result<bool, StoreError> {
        let ms = period.as_millis() as i64;
        self.write(async {
            let c = self.lease_client().await?;
            let n = c
                .execute(
                    &format!(
                        "UPDATE leases SET expires_ms = {NOW_MS} + $4
                         WHERE name = $1 AND holder = $2 AND token = $3 AND state = 'held'"
                    ),
                    &[&&*lease.name, &holder_id(), &lease.token, &ms],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn release_lease(&self, lease: &Lease, done: bool) -> Result<(), StoreError> {
        let state = if done { "done" } else { "cut" };
        self.write(async {
            let c = self.lease_client().await?;
            c.execute(
                &format!(
                    "UPDATE leases SET state = $4, expires_ms = {NOW_MS}
                     WHERE name = $1 AND holder = $2 AND token = $3"
                ),
                &[&&*lease.name, &holder_id(), &lease.token, &state],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn abandoned_leases(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.read(async {
            let c = self.lease_client().await?;
            let rows = c
                .query(
                    &format!(
                        "SELECT name FROM leases
                         WHERE starts_with(name, $1)
                           AND (state = 'cut' OR (state = 'held' AND expires_ms < {NOW_MS}))
                         ORDER BY name"
                    ),
                    &[&prefix],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }
}

/// Inside a writing transaction: refuses the write unless `fence` still holds its lease, and
/// keeps the lease from changing hands until the transaction ends. A page write calls it after
/// taking the event-id lock, so the lease row is locked only while the page is written, not
/// while the page waits its turn: a renewal meanwhile would wait behind it.
pub(super) async fn check(c: &impl GenericClient, fence: Option<&Lease>) -> Result<(), StoreError> {
    let Some(lease) = fence else {
        return Ok(());
    };
    let held = c
        .query_opt(
            "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE",
            &[&&*lease.name, &holder_id(), &lease.token],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost(LeaseLost {
            name: lease.name.to_string(),
            token: lease.token,
        })),
    }
}
