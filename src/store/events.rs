//! Reading the change feed (`order_events`). Events are only ever written with the page that
//! caused them ([`Store::apply_page`]).

use rusqlite::params;

use super::{Store, StoreError};
use crate::model::StoredEvent;

pub(super) const EVENT_COLUMNS: &str =
    "id, platform, order_id, kind, old_status, new_status, changes, observed_at";

pub(super) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: r.get(0)?,
        platform: r.get(1)?,
        order_id: r.get(2)?,
        kind: r.get(3)?,
        old_status: r.get(4)?,
        new_status: r.get(5)?,
        changes: r
            .get::<_, Option<String>>(6)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        observed_at: r.get(7)?,
    })
}

/// The change feed.
impl Store {
    /// At most `limit` events with an id greater than `after`, in id order: the feed from a
    /// cursor.
    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.events_after(after, limit).await;
        }
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM order_events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![after, limit as i64], event_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Every event of one order, oldest first.
    pub async fn order_events(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.order_events(platform, order_id).await;
        }
        let (platform, order_id) = (platform.to_owned(), order_id.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM order_events
                 WHERE platform = ?1 AND order_id = ?2 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![platform, order_id], event_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// How many events of each kind the feed holds, by kind.
    pub async fn event_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.event_counts().await;
        }
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT kind, count(*) FROM order_events GROUP BY kind ORDER BY kind")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
