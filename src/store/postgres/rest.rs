//! The rest of the store on PostgreSQL: each platform's pass state and run history, reading the
//! change feed, and the sinks' cursors (`sink_state`) and instance id (`store_meta`). The same
//! statements as the SQLite side, in PostgreSQL's spelling.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::store::leases::Lease;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::super::sinks::SinkStart;
use super::super::{parse_ts, ts};
use super::orders::{find, items};
use super::{Pg, StoreError};
use crate::model::{
    FeedBatch, FeedFilter, FeedItem, PassState, RunRecord, SinkLag, SinkRecord, StoredEvent,
};

pub(super) async fn save_pass_state(
    c: &impl GenericClient,
    platform: &str,
    state: &PassState,
) -> Result<(), StoreError> {
    let p = state.pass.as_ref();
    let stmt = c
        .prepare_cached(
            "INSERT INTO sync_state (platform, cursor, pass_started_at, pass_from, pass_to, resume)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (platform) DO UPDATE SET cursor = excluded.cursor,
                 pass_started_at = excluded.pass_started_at, pass_from = excluded.pass_from,
                 pass_to = excluded.pass_to, resume = excluded.resume",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &platform,
            &state.cursor.map(ts),
            &p.map(|p| ts(p.started_at)),
            &p.map(|p| ts(p.from)),
            &p.map(|p| ts(p.to)),
            &p.map(|p| p.resume.as_str()),
        ],
    )
    .await?;
    Ok(())
}

fn pass_state_from_row(r: &Row) -> PassState {
    let text = |i| r.get::<_, Option<String>>(i);
    crate::store::state::pass_state_from_text([text(0), text(1), text(2), text(3)], text(4))
}

fn run_from_row(r: &Row) -> RunRecord {
    RunRecord {
        kind: r.get(0),
        started_at: r.get(1),
        finished_at: r.get(2),
        outcome: r.get(3),
        fetched: r.get::<_, i64>(4) as u64,
        created: r.get::<_, i64>(5) as u64,
        changed: r.get::<_, i64>(6) as u64,
        rejected: r.get::<_, i64>(7) as u64,
        error: r.get(8),
    }
}

pub(super) const EVENT_COLUMNS: &str =
    "id, platform, order_id, kind, old_status, new_status, changes, observed_at";

pub(super) fn event_from_row(r: &Row) -> StoredEvent {
    StoredEvent {
        id: r.get(0),
        platform: r.get(1),
        order_id: r.get(2),
        kind: r.get(3),
        old_status: r.get(4),
        new_status: r.get(5),
        changes: r
            .get::<_, Option<&str>>(6)
            .and_then(|s| serde_json::from_str(s).ok()),
        observed_at: r.get(7),
    }
}

const SINK_COLUMNS: &str = "sink, cursor, epoch, paused, disabled, delivered, failed_attempts, \
                            last_error, last_error_at, last_delivered_at";

fn sink_from_row(r: &Row) -> SinkRecord {
    SinkRecord {
        name: r.get(0),
        cursor: r.get(1),
        epoch: r.get(2),
        paused: r.get::<_, i64>(3) != 0,
        disabled: r.get(4),
        delivered: r.get::<_, i64>(5) as u64,
        failed_attempts: r.get::<_, i64>(6) as u64,
        last_error: r.get(7),
        last_error_at: r.get(8),
        last_delivered_at: r.get(9),
    }
}

async fn sink_row(c: &impl GenericClient, name: &str) -> Result<Option<SinkRecord>, StoreError> {
    Ok(c.query_opt(
        &format!("SELECT {SINK_COLUMNS} FROM sink_state WHERE sink = $1"),
        &[&name],
    )
    .await?
    .as_ref()
    .map(sink_from_row))
}

/// The row of a sink that the write holding `c` has just made or changed.
async fn written_sink(c: &impl GenericClient, name: &str) -> Result<SinkRecord, StoreError> {
    sink_row(c, name)
        .await?
        .ok_or_else(|| StoreError::Other(format!("sink {name} vanished")))
}

async fn newest_event(c: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(
        c.query_one("SELECT coalesce(max(id), 0)::bigint FROM order_events", &[])
            .await?
            .get(0),
    )
}

/// ` AND platform = ANY($n) AND kind = ANY($m)` for a filter, numbering its parameters after
/// `first` of the caller's own.
fn filter_sql(filter: &FeedFilter, first: usize) -> (String, Vec<Vec<String>>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (column, list) in [("platform", &filter.platforms), ("kind", &filter.kinds)] {
        if let Some(list) = list {
            values.push(list.clone());
            sql.push_str(&format!(" AND {column} = ANY(${})", first + values.len()));
        }
    }
    (sql, values)
}

/// `first` and then `filter_sql`'s values: the parameters its numbering expects.
fn filter_args<'a>(
    first: &'a (dyn ToSql + Sync),
    values: &'a [Vec<String>],
) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut args = vec![first];
    for v in values {
        args.push(v);
    }
    args
}

impl Pg {
    pub(crate) async fn load_pass_state(&self, platform: &str) -> Result<PassState, StoreError> {
        let state = self
            .opt_row(
                "SELECT cursor, pass_started_at, pass_from, pass_to, resume FROM sync_state
                 WHERE platform = $1",
                &[&platform],
                pass_state_from_row,
            )
            .await?;
        Ok(state.unwrap_or_default())
    }

    pub(crate) async fn save_pass_state(
        &self,
        platform: &str,
        state: PassState,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        self.write(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            super::leases::check(&tx, fence).await?;
            save_pass_state(&tx, platform, &state).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn start_run(
        &self,
        platform: &str,
        kind: &str,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.write(async {
            let c = self.client().await?;
            Ok(c.query_one(
                "INSERT INTO sync_runs (platform, kind, started_at) VALUES ($1, $2, $3)
                 RETURNING id",
                &[&platform, &kind, &ts(started_at)],
            )
            .await?
            .get(0))
        })
        .await
    }

    pub(crate) async fn finish_run(
        &self,
        id: i64,
        run: RunRecord,
        fence: Option<&Lease>,
    ) -> Result<(), StoreError> {
        self.write(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            super::leases::check(&tx, fence).await?;
            tx.execute(
                "UPDATE sync_runs SET finished_at = $2, outcome = $3, fetched = $4, created = $5,
                     changed = $6, rejected = $7, error = $8
                 WHERE id = $1",
                &[
                    &id,
                    &run.finished_at,
                    &run.outcome,
                    &(run.fetched as i64),
                    &(run.created as i64),
                    &(run.changed as i64),
                    &(run.rejected as i64),
                    &run.error,
                ],
            )
            .await?;
            tx.execute(
                "DELETE FROM sync_runs WHERE id IN (
                     SELECT id FROM sync_runs
                     WHERE platform = (SELECT platform FROM sync_runs WHERE id = $1)
                     ORDER BY id DESC OFFSET 1000)",
                &[&id],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn last_run(&self, platform: &str) -> Result<Option<RunRecord>, StoreError> {
        self.opt_row(
            "SELECT kind, started_at, finished_at, outcome, fetched, created, changed,
                    rejected, error
             FROM sync_runs WHERE platform = $1 ORDER BY id DESC LIMIT 1",
            &[&platform],
            run_from_row,
        )
        .await
    }

    pub(crate) async fn last_success_at(
        &self,
        platform: &str,
    ) -> Result<Option<String>, StoreError> {
        self.one_row(
            "SELECT max(finished_at) FROM sync_runs WHERE platform = $1 AND outcome = 'ok'",
            &[&platform],
            |r| r.get(0),
        )
        .await
    }

    pub(crate) async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM order_events WHERE id > $1 ORDER BY id LIMIT $2");
        self.rows(&sql, &[&after, &(limit as i64)], event_from_row)
            .await
    }

    pub(crate) async fn order_events(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM order_events
             WHERE platform = $1 AND order_id = $2 ORDER BY id"
        );
        self.rows(&sql, &[&platform, &order_id], event_from_row)
            .await
    }

    pub(crate) async fn event_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.rows(
            "SELECT kind, count(*) FROM order_events GROUP BY kind ORDER BY kind",
            &[],
            |r| (r.get(0), r.get::<_, i64>(1) as u64),
        )
        .await
    }

    pub(crate) async fn instance_id(&self) -> Result<String, StoreError> {
        self.one_row(
            "SELECT value FROM store_meta WHERE key = 'instance'",
            &[],
            |r| r.get(0),
        )
        .await
    }

    pub(crate) async fn open_sink(
        &self,
        name: &str,
        start: SinkStart,
    ) -> Result<SinkRecord, StoreError> {
        self.write(async {
            let c = self.client().await?;
            let cursor = match start {
                SinkStart::Now => newest_event(&c).await?,
                SinkStart::Beginning => 0,
            };
            c.execute(
                "INSERT INTO sink_state (sink, cursor, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (sink) DO NOTHING",
                &[&name, &cursor, &ts(Utc::now())],
            )
            .await?;
            written_sink(&c, name).await
        })
        .await
    }

    pub(crate) async fn sink(&self, name: &str) -> Result<Option<SinkRecord>, StoreError> {
        self.read(async {
            let c = self.client().await?;
            sink_row(&c, name).await
        })
        .await
    }

    pub(crate) async fn sinks(&self) -> Result<Vec<SinkRecord>, StoreError> {
        let sql = format!("SELECT {SINK_COLUMNS} FROM sink_state ORDER BY sink");
        self.rows(&sql, &[], sink_from_row).await
    }

    pub(crate) async fn feed_batch(
        &self,
        after: i64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<FeedBatch, StoreError> {
        self.read(async {
            let mut c = self.client().await?;
            // One snapshot for the newest id, the events and their orders.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let newest = newest_event(&tx).await?;
            let (where_filter, values) = filter_sql(filter, 1);
            let limit_i = limit as i64;
            let mut args = filter_args(&after, &values);
            args.push(&limit_i);
            let rows = tx
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM order_events WHERE id > $1 {where_filter}
                         ORDER BY id LIMIT ${}",
                        values.len() + 2
                    ),
                    &args,
                )
                .await?;
            let events: Vec<StoredEvent> = rows.iter().map(event_from_row).collect();
            let up_to = if events.len() < limit {
                newest.max(after)
            } else {
                events.last().map_or(after, |e| e.id)
            };
            let mut orders = std::collections::HashMap::new();
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                let key = (event.platform.clone(), event.order_id.clone());
                if !orders.contains_key(&key) {
                    let order = find(&tx, &event.platform, &event.order_id, false)
                        .await?
                        .filter(|o| o.order_id == event.order_id);
                    let its = match order {
                        Some(_) => items(&tx, &event.platform, &event.order_id).await?,
                        None => Vec::new(),
                    };
                    orders.insert(key.clone(), (order, its));
                }
                let (order, its) = &orders[&key];
                out.push(FeedItem {
                    event,
                    order: order.clone(),
                    items: its.clone(),
                });
            }
            tx.commit().await?;
            Ok(FeedBatch { items: out, up_to })
        })
        .await
    }

    pub(crate) async fn sink_advance(
        &self,
        name: &str,
        epoch: i64,
        to: i64,
        delivered: u64,
        fence: Option<&Lease>,
    ) -> Result<bool, StoreError> {
        self.write(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            super::leases::check(&tx, fence).await?;
            let moved = tx
                .execute(
                    "UPDATE sink_state SET cursor = greatest(cursor, $3),
                         delivered = delivered + $4,
                         last_delivered_at = CASE WHEN $4 > 0 THEN $5 ELSE last_delivered_at END
                     WHERE sink = $1 AND epoch = $2",
                    &[&name, &epoch, &to, &(delivered as i64), &ts(Utc::now())],
                )
                .await?;
            tx.commit().await?;
            Ok(moved == 1)
        })
        .await
    }

    pub(crate) async fn sink_failed(
        &self,
        name: &str,
        error: &str,
        attempts: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE sink_state SET failed_attempts = failed_attempts + $4, last_error = $2,
                 last_error_at = $3
             WHERE sink = $1",
            &[&name, &error, &ts(Utc::now()), &(attempts as i64)],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn sink_disable(&self, name: &str, reason: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE sink_state SET disabled = $2, last_error = $2, last_error_at = $3
             WHERE sink = $1",
            &[&name, &reason, &ts(Utc::now())],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn sink_set_paused(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<SinkRecord, StoreError> {
        self.write(async {
            let c = self.client().await?;
            let sql = if paused {
                "UPDATE sink_state SET paused = 1 WHERE sink = $1"
            } else {
                "UPDATE sink_state SET paused = 0, disabled = NULL WHERE sink = $1"
            };
            c.execute(sql, &[&name]).await?;
            written_sink(&c, name).await
        })
        .await
    }

    pub(crate) async fn sink_replay(
        &self,
        name: &str,
        from: i64,
    ) -> Result<SinkRecord, StoreError> {
        self.write(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE sink_state SET cursor = least(cursor, $2), epoch = epoch + 1
                 WHERE sink = $1",
                &[&name, &(from - 1).max(0)],
            )
            .await?;
            written_sink(&c, name).await
        })
        .await
    }

    pub(crate) async fn sink_lag(
        &self,
        cursor: i64,
        filter: &FeedFilter,
    ) -> Result<SinkLag, StoreError> {
        self.read(async {
            let c = self.client().await?;
            let (where_filter, values) = filter_sql(filter, 1);
            let args = filter_args(&cursor, &values);
            let count: i64 = c
                .query_one(
                    &format!("SELECT count(*) FROM order_events WHERE id > $1 {where_filter}"),
                    &args,
                )
                .await?
                .get(0);
            let oldest: Option<String> = c
                .query_opt(
                    &format!(
                        "SELECT observed_at FROM order_events WHERE id > $1 {where_filter}
                         ORDER BY id LIMIT 1"
                    ),
                    &args,
                )
                .await?
                .map(|r| r.get(0));
            let seconds = oldest.as_deref().and_then(parse_ts).map_or(0.0, |t| {
                ((Utc::now() - t).num_milliseconds().max(0)) as f64 / 1000.0
            });
            Ok(SinkLag {
                events: count as u64,
                seconds,
            })
        })
        .await
    }

    pub(crate) async fn newest_event_id(&self) -> Result<i64, StoreError> {
        self.read(async {
            let c = self.client().await?;
            newest_event(&c).await
        })
        .await
    }
}
