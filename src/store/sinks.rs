//! The sinks' side of the change feed: each sink's cursor and counters (`sink_state`), the
//! batches of events (with their orders) a sink delivers next, its lag, and the operator's
//! pause, resume and replay. The cursor only moves through [`Store::sink_advance`], which the
//! delivery code calls after the receiver acknowledged, and only if no replay came in between.

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::events::{EVENT_COLUMNS, event_from_row};
use super::orders::{find, items};
use super::{Store, StoreError, parse_ts, ts};
use crate::model::{FeedBatch, FeedFilter, FeedItem, SinkLag, SinkRecord};

const SINK_COLUMNS: &str = "sink, cursor, epoch, paused, disabled, delivered, failed_attempts, \
                            last_error, last_error_at, last_delivered_at";

fn sink_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SinkRecord> {
    Ok(SinkRecord {
        name: r.get(0)?,
        cursor: r.get(1)?,
        epoch: r.get(2)?,
        paused: r.get::<_, i64>(3)? != 0,
        disabled: r.get(4)?,
        delivered: r.get::<_, i64>(5)? as u64,
        failed_attempts: r.get::<_, i64>(6)? as u64,
        last_error: r.get(7)?,
        last_error_at: r.get(8)?,
        last_delivered_at: r.get(9)?,
    })
}

/// Where a sink seen for the first time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStart {
    /// After the newest event: it gets what happens from now on.
    Now,
    /// Before the first event: it gets the whole feed.
    Beginning,
}

/// `AND platform IN (…) AND kind IN (…)` for a filter, and its parameters (after `first`
/// parameters of the caller's own).
fn filter_sql(filter: &FeedFilter) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (column, list) in [("platform", &filter.platforms), ("kind", &filter.kinds)] {
        if let Some(list) = list {
            let marks = vec!["?"; list.len()].join(", ");
            sql.push_str(&format!(" AND {column} IN ({marks})"));
            values.extend(list.iter().cloned());
        }
    }
    (sql, values)
}

fn sink_row(c: &Connection, name: &str) -> Result<Option<SinkRecord>, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {SINK_COLUMNS} FROM sink_state WHERE sink = ?1"
    ))?
    .query_row(params![name], sink_from_row)
    .optional()?)
}

fn has_sink_table(c: &Connection) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sink_state'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

fn newest_event(c: &Connection) -> Result<i64, StoreError> {
    Ok(
        c.query_row("SELECT coalesce(max(id), 0) FROM order_events", [], |r| {
            r.get(0)
        })?,
    )
}

/// The change feed's delivery.
impl Store {
    /// A receiver that is woken (its value changes) whenever this process commits events.
    /// Writes by other processes are not seen here: readers poll as well.
    pub fn feed_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    pub(super) fn feed_written(&self) {
        self.feed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// This database's random identity (12 hex digits), made when its schema was created.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.instance_id().await;
        }
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM store_meta WHERE key = 'instance'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// The sink's row, made on first sight with its cursor where `start` says.
    pub async fn open_sink(&self, name: &str, start: SinkStart) -> Result<SinkRecord, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.open_sink(name, start).await;
        }
        let name = name.to_owned();
        self.write(move |c| {
            let cursor = match start {
                SinkStart::Now => newest_event(c)?,
                SinkStart::Beginning => 0,
            };
            c.prepare_cached(
                "INSERT INTO sink_state (sink, cursor, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sink) DO NOTHING",
            )?
            .execute(params![name, cursor, ts(Utc::now())])?;
            sink_row(c, &name)?.ok_or_else(|| StoreError::Other(format!("sink {name} vanished")))
        })
        .await
    }

    /// One sink's row, `None` before the daemon first ran it.
    pub async fn sink(&self, name: &str) -> Result<Option<SinkRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.sink(name).await;
        }
        let name = name.to_owned();
        self.read(move |c| {
            if !has_sink_table(c)? {
                return Ok(None);
            }
            sink_row(c, &name)
        })
        .await
    }

    /// Every sink's row, by name (also sinks no longer configured).
    pub async fn sinks(&self) -> Result<Vec<SinkRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.sinks().await;
        }
        self.read(|c| {
            if !has_sink_table(c)? {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(&format!(
                "SELECT {SINK_COLUMNS} FROM sink_state ORDER BY sink"
            ))?;
            let rows = stmt
                .query_map([], sink_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// At most `limit` of the filter's events after `after`, each with its order, read in one
    /// snapshot.
    pub async fn feed_batch(
        &self,
        after: i64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<FeedBatch, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.feed_batch(after, limit, filter).await;
        }
        let filter = filter.clone();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let newest = newest_event(&tx)?;
            let (where_filter, values) = filter_sql(&filter);
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM order_events WHERE id > ? {where_filter}
                 ORDER BY id LIMIT ?"
            ))?;
            let mut args: Vec<rusqlite::types::Value> = vec![after.into()];
            args.extend(values.into_iter().map(Into::into));
            args.push((limit as i64).into());
            let events = stmt
                .query_map(params_from_iter(args), event_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let up_to = if events.len() < limit {
                newest.max(after)
            } else {
                events.last().map_or(after, |e| e.id)
            };
            // One order often has several events in a batch (a first sync's `created` and a
            // status change): read it once.
            let mut orders = std::collections::HashMap::new();
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                let key = (event.platform.clone(), event.order_id.clone());
                if !orders.contains_key(&key) {
                    let order = find(&tx, &event.platform, &event.order_id)?
                        .filter(|o| o.order_id == event.order_id);
                    let its = match order {
                        Some(_) => items(&tx, &event.platform, &event.order_id)?,
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
            Ok(FeedBatch { items: out, up_to })
        })
        .await
    }

    /// Moves the sink's cursor to `to` after `delivered` events were acknowledged, unless a
    /// replay (a new epoch) came in since the batch was read. Whether it moved.
    pub async fn sink_advance(
        &self,
        name: &str,
        epoch: i64,
        to: i64,
        delivered: u64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .sink_advance(name, epoch, to, delivered, self.fence())
                .await;
        }
        let name = name.to_owned();
        self.write(move |c| {
            let now = ts(Utc::now());
            let moved = c
                .prepare_cached(
                    "UPDATE sink_state SET cursor = max(cursor, ?3),
                         delivered = delivered + ?4,
                         last_delivered_at = CASE WHEN ?4 > 0 THEN ?5 ELSE last_delivered_at END
                     WHERE sink = ?1 AND epoch = ?2",
                )?
                .execute(params![name, epoch, to, delivered as i64, now])?;
            Ok(moved == 1)
        })
        .await
    }

    /// Records `attempts` failed delivery attempts, the last one failing because of `error`.
    pub async fn sink_failed(
        &self,
        name: &str,
        error: &str,
        attempts: u64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.sink_failed(name, error, attempts).await;
        }
        let (name, error) = (name.to_owned(), error.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE sink_state SET failed_attempts = failed_attempts + ?4, last_error = ?2,
                     last_error_at = ?3
                 WHERE sink = ?1",
            )?
            .execute(params![name, error, ts(Utc::now()), attempts as i64])?;
            Ok(())
        })
        .await
    }

    /// Stops the sink until an operator resumes it: its receiver said it wants no more.
    pub async fn sink_disable(&self, name: &str, reason: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.sink_disable(name, reason).await;
        }
        let (name, reason) = (name.to_owned(), reason.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE sink_state SET disabled = ?2, last_error = ?2, last_error_at = ?3
                 WHERE sink = ?1",
            )?
            .execute(params![name, reason, ts(Utc::now())])?;
            Ok(())
        })
        .await
    }

    /// Pauses the sink, or resumes it (which also clears a 410's disabling). The sink's row
    /// is made first if the daemon never ran it. Its row afterwards.
    pub async fn sink_set_paused(
        &self,
        name: &str,
        paused: bool,
        start: SinkStart,
    ) -> Result<SinkRecord, StoreError> {
        self.open_sink(name, start).await?;
        if let Some(pg) = self.pg() {
            return pg.sink_set_paused(name, paused).await;
        }
        let name = name.to_owned();
        self.write(move |c| {
            let sql = if paused {
                "UPDATE sink_state SET paused = 1 WHERE sink = ?1"
            } else {
                "UPDATE sink_state SET paused = 0, disabled = NULL WHERE sink = ?1"
            };
            c.prepare_cached(sql)?.execute(params![name])?;
            sink_row(c, &name)?.ok_or_else(|| StoreError::Other(format!("sink {name} vanished")))
        })
        .await
    }

    /// Sets the sink to deliver again from event `from` on (the cursor goes to `from - 1`, in a
    /// new epoch, so a batch already read cannot move it back past the replay). Its row
    /// afterwards.
    pub async fn sink_replay(
        &self,
        name: &str,
        from: i64,
        start: SinkStart,
    ) -> Result<SinkRecord, StoreError> {
        self.open_sink(name, start).await?;
        if let Some(pg) = self.pg() {
            return pg.sink_replay(name, from).await;
        }
        let name = name.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                // Never forward: a replay from past the cursor must not skip the events the
                // receiver has not had yet.
                "UPDATE sink_state SET cursor = min(cursor, ?2), epoch = epoch + 1 WHERE sink = ?1",
            )?
            .execute(params![name, (from - 1).max(0)])?;
            sink_row(c, &name)?.ok_or_else(|| StoreError::Other(format!("sink {name} vanished")))
        })
        .await
    }

    /// How many of the filter's events come after `cursor`, and how long ago the oldest of them
    /// was committed.
    pub async fn sink_lag(&self, cursor: i64, filter: &FeedFilter) -> Result<SinkLag, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.sink_lag(cursor, filter).await;
        }
        let filter = filter.clone();
        self.read(move |c| {
            let (where_filter, values) = filter_sql(&filter);
            let mut args: Vec<rusqlite::types::Value> = vec![cursor.into()];
            args.extend(values.into_iter().map(Into::into));
            let count: i64 = c
                .prepare_cached(&format!(
                    "SELECT count(*) FROM order_events WHERE id > ? {where_filter}"
                ))?
                .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
            let oldest: Option<String> = c
                .prepare_cached(&format!(
                    "SELECT observed_at FROM order_events WHERE id > ? {where_filter}
                     ORDER BY id LIMIT 1"
                ))?
                .query_row(params_from_iter(args.iter()), |r| r.get(0))
                .optional()?;
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

    /// The id of the newest event in the feed (0 when it is empty).
    pub async fn newest_event_id(&self) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.newest_event_id().await;
        }
        self.read(newest_event).await
    }
}
