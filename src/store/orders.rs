//! Writing orders: one page of fetched orders becomes upserts, change events and the pass
//! checkpoint in a single transaction. Change detection is by content hash first (cheap, no
//! parse of the stored row) and by field comparison second, so an order re-read unchanged costs
//! one indexed lookup and one small update, and writes no event.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Value, json};

use super::state::save_pass_state;
use super::{Store, StoreError, parse_ts, ts};
use crate::model::{
    Incoming, Item, OrderDigest, PageOutcome, PageWrite, Status, StoredItem, StoredOrder, Watched,
    WatchedOrder,
};

pub(super) struct Existing {
    /// `order_fields.id`, which is also the order's key in `order_raw`.
    pub(super) id: i64,
    pub(super) number: String,
    pub(super) status: String,
    pub(super) platform_status: String,
    pub(super) placed_at: Option<String>,
    pub(super) updated_at: Option<String>,
    pub(super) currency: Option<String>,
    pub(super) total: Option<String>,
    pub(super) customer_name: Option<String>,
    pub(super) tracking_number: Option<String>,
}

/// Applies one page inside `tx`. The caller commits, so the page, its events and its checkpoint
/// land together or not at all.
pub(super) fn write_page(
    tx: &Transaction<'_>,
    page: &PageWrite,
) -> Result<PageOutcome, StoreError> {
    let mut out = PageOutcome::default();
    // Taken inside the transaction, not when the page was fetched: an event's `observed_at` is
    // when it entered the feed, which is what a consumer's lag is measured from (a busy writer
    // may hold a page for a moment before writing it).
    let now = ts(Utc::now());
    let platform = page.platform.as_str();
    // Orders whose record was rejected before: storing one now clears its reject. Read once per
    // page (there are few), so the common page pays one query, not one per order.
    let mut rejected: HashSet<String> = tx
        .prepare_cached(
            "SELECT order_id FROM rejects WHERE platform = ?1 AND order_id IS NOT NULL",
        )?
        .query_map(params![platform], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for inc in &page.orders {
        let o = &inc.order;
        if rejected.remove(&o.order_id) {
            tx.prepare_cached("DELETE FROM rejects WHERE platform = ?1 AND order_id = ?2")?
                .execute(params![platform, o.order_id])?;
        }
        // Most re-reads change nothing, so the first look reads only what decides that, without
        // allocating; the full row is read only for an order that moved.
        let seen = tx
            .prepare_cached(
                "SELECT id, content_hash = ?3 AND status = ?4
                 FROM order_fields WHERE platform = ?1 AND order_id = ?2",
            )?
            .query_row(
                params![platform, o.order_id, inc.hash, o.status.as_str()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
            )
            .optional()?;
        match seen {
            None => {
                insert_order(tx, platform, inc, &now)?;
                insert_items(tx, platform, &o.order_id, &o.items)?;
                insert_event(
                    tx,
                    platform,
                    &o.order_id,
                    "created",
                    None,
                    Some(o.status.as_str()),
                    None,
                    &now,
                )?;
                out.created += 1;
            }
            // Same bytes and the same canonical status: nothing moved. (The status is compared
            // too because a reloaded `status_map` changes it without the platform changing.)
            Some((id, true)) => {
                tx.prepare_cached("UPDATE order_fields SET last_seen_at = ?2 WHERE id = ?1")?
                    .execute(params![id, now])?;
                out.unchanged += 1;
            }
            Some((id, false)) => {
                let old = load_existing(tx, id)?;
                let changes = diff(tx, platform, &old, inc)?;
                if changes.is_empty() {
                    // Same content in another spelling (whitespace, key order): remember the new
                    // hash so the next read is the cheap path again, but report nothing.
                    tx.prepare_cached(
                        "UPDATE order_fields SET content_hash = ?2, last_seen_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![old.id, inc.hash, now])?;
                    update_raw(tx, old.id, &inc.raw)?;
                    out.unchanged += 1;
                    continue;
                }
                update_order(tx, old.id, inc, &now)?;
                if changes.contains_key("items") {
                    tx.prepare_cached(
                        "DELETE FROM order_items WHERE platform = ?1 AND order_id = ?2",
                    )?
                    .execute(params![platform, o.order_id])?;
                    insert_items(tx, platform, &o.order_id, &o.items)?;
                }
                let status_moved = old.status != o.status.as_str();
                let confirmed =
                    status_moved && confirm_push(tx, platform, &o.order_id, o.status, &now)?;
                let kind = count_change(&mut out, status_moved, confirmed);
                let changes = Value::Object(changes.into_iter().collect()).to_string();
                insert_event(
                    tx,
                    platform,
                    &o.order_id,
                    kind,
                    Some(&old.status),
                    Some(o.status.as_str()),
                    Some(&changes),
                    &now,
                )?;
            }
        }
    }
    for r in &page.rejects {
        // Overlapping passes re-read a bad record many times: keep one row per order (its
        // latest bad record, wherever it was read) or, for a record naming no order, per record
        // and position, with the time it was last seen.
        let seen_again = match &r.order_id {
            Some(order_id) => tx
                .prepare_cached(
                    "UPDATE rejects SET received_at = ?3, position = ?4, reason = ?5, raw = ?6
                     WHERE platform = ?1 AND order_id = ?2",
                )?
                .execute(params![
                    platform, order_id, now, r.position, r.reason, r.raw
                ])?,
            None => tx
                .prepare_cached(
                    "UPDATE rejects SET received_at = ?4, reason = ?5
                     WHERE platform = ?1 AND position = ?2 AND raw = ?3 AND order_id IS NULL",
                )?
                .execute(params![platform, r.position, r.raw, now, r.reason])?,
        };
        if seen_again == 0 {
            tx.prepare_cached(
                "INSERT INTO rejects (platform, received_at, position, reason, raw, order_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                platform, now, r.position, r.reason, r.raw, r.order_id
            ])?;
        }
        out.rejected += 1;
    }
    if let Some(state) = &page.checkpoint {
        save_pass_state(tx, platform, state)?;
    }
    Ok(out)
}

/// Whether a status change is one of our own pushes arriving: the oldest unconfirmed outbox
/// entry of the order that targets this status is confirmed (and completed, if a crash or a
/// lost answer had left it unfinished: the platform shows it applied, so it must not be sent).
fn confirm_push(
    tx: &Transaction<'_>,
    platform: &str,
    order_id: &str,
    new_status: Status,
    now: &str,
) -> Result<bool, StoreError> {
    // Cancelling and rejecting land as either final status on some platforms (an Akinon item
    // rejection reads back as 800 or 900), so each confirms the other.
    let targets = match new_status {
        Status::Cancelled | Status::Rejected => ("cancelled", "rejected"),
        other => (other.as_str(), other.as_str()),
    };
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM outbox WHERE platform = ?1 AND order_id = ?2 AND confirmed_at IS NULL
             AND state IN ('pending', 'in_flight', 'done') AND action IN (?3, ?4)
         ORDER BY id LIMIT 1",
    )?;
    let id: Option<i64> = stmt
        .query_row(params![platform, order_id, targets.0, targets.1], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else {
        return Ok(false);
    };
    tx.prepare_cached(
        "UPDATE outbox SET confirmed_at = ?2, state = 'done', outcome_unknown = 0,
             claimed_by = NULL, claim_token = NULL, claimed_until = NULL,
             updated_at = CASE WHEN state = 'done' THEN updated_at ELSE ?2 END
         WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(true)
}

pub(super) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn insert_order(
    tx: &Transaction<'_>,
    platform: &str,
    inc: &Incoming,
    now: &str,
) -> Result<(), StoreError> {
    let o = &inc.order;
    tx.prepare_cached(
        "INSERT INTO order_fields (platform, order_id, number, status, platform_status,
             placed_at, updated_at, currency, total, customer_name, tracking_number, content_hash,
             first_seen_at, last_seen_at, last_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?13)",
    )?
    .execute(params![
        platform,
        o.order_id,
        o.number,
        o.status.as_str(),
        o.platform_status,
        opt_ts(o.placed_at),
        opt_ts(o.updated_at),
        o.currency,
        o.total.map(|d| d.to_string()),
        o.customer_name,
        o.tracking_number,
        inc.hash,
        now,
    ])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO order_raw (id, raw) VALUES (?1, ?2)")?
        .execute(params![id, inc.raw])?;
    Ok(())
}

fn update_order(
    tx: &Transaction<'_>,
    id: i64,
    inc: &Incoming,
    now: &str,
) -> Result<(), StoreError> {
    let o = &inc.order;
    tx.prepare_cached(
        "UPDATE order_fields SET number = ?2, status = ?3, platform_status = ?4, placed_at = ?5,
             updated_at = ?6, currency = ?7, total = ?8, customer_name = ?9,
             tracking_number = ?10, content_hash = ?11, last_seen_at = ?12,
             last_changed_at = ?12
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        o.number,
        o.status.as_str(),
        o.platform_status,
        opt_ts(o.placed_at),
        opt_ts(o.updated_at),
        o.currency,
        o.total.map(|d| d.to_string()),
        o.customer_name,
        o.tracking_number,
        inc.hash,
        now,
    ])?;
    update_raw(tx, id, &inc.raw)
}

fn update_raw(tx: &Transaction<'_>, id: i64, raw: &str) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE order_raw SET raw = ?2 WHERE id = ?1")?
        .execute(params![id, raw])?;
    Ok(())
}

fn insert_items(
    tx: &Transaction<'_>,
    platform: &str,
    order_id: &str,
    items: &[Item],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO order_items
             (platform, order_id, item_id, sku, name, quantity, unit_price, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for it in items {
        stmt.execute(params![
            platform,
            order_id,
            it.item_id,
            it.sku,
            it.name,
            it.quantity.to_string(),
            it.unit_price.map(|d| d.to_string()),
            it.status,
        ])?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_event(
    tx: &Transaction<'_>,
    platform: &str,
    order_id: &str,
    kind: &str,
    old_status: Option<&str>,
    new_status: Option<&str>,
    changes: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO order_events (platform, order_id, kind, old_status, new_status, changes,
             observed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        platform, order_id, kind, old_status, new_status, changes, now
    ])?;
    Ok(())
}

/// The fields that differ between the stored row and the incoming order, as
/// `{field: {old, new}}`. Canonical fields first; when none moved, the raw records' top-level
/// keys, so a change the canonical model does not carry is still reported by name.
fn load_existing(tx: &Transaction<'_>, id: i64) -> Result<Existing, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT number, status, platform_status, placed_at, updated_at, currency, total,
                    customer_name, tracking_number
             FROM order_fields WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok(Existing {
                id,
                number: r.get(0)?,
                status: r.get(1)?,
                platform_status: r.get(2)?,
                placed_at: r.get(3)?,
                updated_at: r.get(4)?,
                currency: r.get(5)?,
                total: r.get(6)?,
                customer_name: r.get(7)?,
                tracking_number: r.get(8)?,
            })
        })?)
}

fn diff(
    tx: &Transaction<'_>,
    platform: &str,
    old: &Existing,
    inc: &Incoming,
) -> Result<BTreeMap<String, Value>, StoreError> {
    let o = &inc.order;
    let mut changes = canonical_changes(old, inc);
    let old_items = load_items(tx, platform, &o.order_id)?;
    items_change(old_items, &o.items, &mut changes);
    if changes.is_empty() {
        let old_raw: String = tx
            .prepare_cached("SELECT raw FROM order_raw WHERE id = ?1")?
            .query_row(params![old.id], |r| r.get(0))?;
        raw_changes(&old_raw, &inc.raw, &mut changes);
    }
    Ok(changes)
}

/// Counts a changed order in `out` and names its event: `updated` when its status stayed,
/// `push_confirmed` when the new status is one our push asked for, else `status_changed`. Both
/// backends' page writes, so their events say the same.
pub(super) fn count_change(
    out: &mut PageOutcome,
    status_moved: bool,
    confirmed: bool,
) -> &'static str {
    out.changed += 1;
    if !status_moved {
        "updated"
    } else if confirmed {
        out.confirmed += 1;
        "push_confirmed"
    } else {
        out.status_changed += 1;
        "status_changed"
    }
}

/// The canonical fields that differ between the stored row and the incoming order. Shared by
/// both backends, so an event's `changes` reads the same whichever stored it.
pub(super) fn canonical_changes(old: &Existing, inc: &Incoming) -> BTreeMap<String, Value> {
    let o = &inc.order;
    let mut changes = BTreeMap::new();
    let mut field = |name: &str, old: Option<&str>, new: Option<String>| {
        if old != new.as_deref() {
            changes.insert(name.to_string(), json!({"old": old, "new": new}));
        }
    };
    field("number", Some(&old.number), Some(o.number.clone()));
    field("status", Some(&old.status), Some(o.status.to_string()));
    field(
        "platform_status",
        Some(&old.platform_status),
        Some(o.platform_status.clone()),
    );
    field("placed_at", old.placed_at.as_deref(), opt_ts(o.placed_at));
    field(
        "updated_at",
        old.updated_at.as_deref(),
        opt_ts(o.updated_at),
    );
    field("currency", old.currency.as_deref(), o.currency.clone());
    field(
        "total",
        old.total.as_deref(),
        o.total.map(|d| d.to_string()),
    );
    field(
        "customer_name",
        old.customer_name.as_deref(),
        o.customer_name.clone(),
    );
    field(
        "tracking_number",
        old.tracking_number.as_deref(),
        o.tracking_number.clone(),
    );
    changes
}

/// Adds `items` to `changes` when the stored items (as [`item_json`] values, sorted by id)
/// differ from the incoming ones.
pub(super) fn items_change(
    old_items: Vec<Value>,
    items: &[Item],
    changes: &mut BTreeMap<String, Value>,
) {
    let mut new_items: Vec<Value> = items.iter().map(item_json).collect();
    new_items.sort_by_key(|v| v["item_id"].as_str().map(str::to_string));
    if old_items != new_items {
        changes.insert(
            "items".to_string(),
            json!({"old": old_items, "new": new_items}),
        );
    }
}

/// When no canonical field moved: the raw records' top-level keys that did, so a change the
/// canonical model does not carry is still reported by name.
pub(super) fn raw_changes(old_raw: &str, new_raw: &str, changes: &mut BTreeMap<String, Value>) {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) = (
        serde_json::from_str::<Value>(old_raw),
        serde_json::from_str::<Value>(new_raw),
    ) else {
        return;
    };
    for (k, new) in &b {
        if a.get(k) != Some(new) {
            changes.insert(format!("raw.{k}"), json!({"old": a.get(k), "new": new}));
        }
    }
    for (k, old) in &a {
        if !b.contains_key(k) {
            changes.insert(format!("raw.{k}"), json!({"old": old, "new": null}));
        }
    }
}

pub(super) fn item_json(it: &Item) -> Value {
    json!({
        "item_id": it.item_id,
        "sku": it.sku,
        "name": it.name,
        "quantity": it.quantity.to_string(),
        "unit_price": it.unit_price.map(|d| d.to_string()),
        "status": it.status,
    })
}

fn load_items(tx: &Connection, platform: &str, order_id: &str) -> Result<Vec<Value>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT item_id, sku, name, quantity, unit_price, status FROM order_items
         WHERE platform = ?1 AND order_id = ?2",
    )?;
    let rows = stmt.query_map(params![platform, order_id], |r| {
        Ok(json!({
            "item_id": r.get::<_, String>(0)?,
            "sku": r.get::<_, Option<String>>(1)?,
            "name": r.get::<_, Option<String>>(2)?,
            "quantity": r.get::<_, String>(3)?,
            "unit_price": r.get::<_, Option<String>>(4)?,
            "status": r.get::<_, Option<String>>(5)?,
        }))
    })?;
    let mut items = rows.collect::<Result<Vec<_>, _>>()?;
    // Stored order is by primary key (text), the platform's is by position: compare as sets.
    items.sort_by_key(|v| v["item_id"].as_str().map(str::to_string));
    Ok(items)
}

fn watched_orders(
    conn: &Connection,
    platform: &str,
    finals_since: Option<DateTime<Utc>>,
    placed_cap: Option<DateTime<Utc>>,
) -> Result<Watched, StoreError> {
    let finals: Vec<&str> = crate::model::Status::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(Status::as_str)
        .collect();
    // last_changed_at is written as text in one format (store::ts), so a text comparison
    // orders it as time; an impossible bound stands for "no final order".
    let since = finals_since.map_or_else(|| "9999".to_string(), ts);
    let mut stmt = conn.prepare(&format!(
        "SELECT order_id, placed_at FROM orders WHERE platform = ?1
         AND (status NOT IN (?2, ?3, ?4, ?5) OR {})
         ORDER BY placed_at, order_id",
        entered_since("?6")
    ))?;
    let mut out = Watched::default();
    let rows = stmt.query_map(
        params![platform, finals[0], finals[1], finals[2], finals[3], since],
        |r| {
            Ok(WatchedOrder {
                order_id: r.get(0)?,
                placed_at: r.get::<_, Option<String>>(1)?.as_deref().and_then(parse_ts),
            })
        },
    )?;
    for o in rows {
        let o = o?;
        match (placed_cap, o.placed_at) {
            (Some(cap), Some(t)) if t < cap => out.beyond_cap += 1,
            _ => out.orders.push(o),
        }
    }
    Ok(out)
}

/// SQL: the order entered its current status at or after the time bound to `param`: by the
/// store's own last change of it, or, for an order first seen already in that status, by the
/// platform's update time (else its placing time). One rule for every watch, so a first sync
/// of a shop's history puts no old order on watch.
fn entered_since(param: &str) -> String {
    format!(
        "((last_changed_at > first_seen_at AND last_changed_at >= {param}) \
          OR coalesce(updated_at, placed_at) >= {param})"
    )
}

/// Orders in `platform_status` that entered it at or after `since` (the store's own last
/// change of the order, or for one first seen in it, the platform's update time), at most
/// `limit`, least recently read first: `(order_id, number)`.
fn watched_in_status(
    conn: &Connection,
    platform: &str,
    platform_status: &str,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let since = ts(since);
    let mut stmt = conn.prepare(&format!(
        "SELECT order_id, number FROM orders WHERE platform = ?1 AND platform_status = ?2
         AND {} ORDER BY last_seen_at, order_id LIMIT ?4",
        entered_since("?3")
    ))?;
    let rows = stmt
        .query_map(
            params![platform, platform_status, since, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<Vec<(String, String)>, _>>()?;
    Ok(rows)
}

/// The placing times of every stored order of a platform, ascending: how densely the listing
/// is populated, which decides whether two reconcile windows are worth one request.
fn placed_times(conn: &Connection, platform: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT placed_at FROM orders WHERE platform = ?1 AND placed_at IS NOT NULL")?;
    let mut times: Vec<DateTime<Utc>> = stmt
        .query_map(params![platform], |r| r.get::<_, String>(0))?
        .filter_map(|t| t.ok().as_deref().and_then(parse_ts))
        .collect();
    times.sort_unstable();
    Ok(times)
}

const ORDER_COLUMNS: &str = "platform, order_id, number, status, platform_status, placed_at, \
    updated_at, currency, total, customer_name, tracking_number, first_seen_at, last_seen_at, \
    last_changed_at";

fn order_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredOrder> {
    Ok(StoredOrder {
        platform: r.get(0)?,
        order_id: r.get(1)?,
        number: r.get(2)?,
        status: r.get(3)?,
        platform_status: r.get(4)?,
        placed_at: r.get(5)?,
        updated_at: r.get(6)?,
        currency: r.get(7)?,
        total: r.get(8)?,
        customer_name: r.get(9)?,
        tracking_number: r.get(10)?,
        first_seen_at: r.get(11)?,
        last_seen_at: r.get(12)?,
        last_changed_at: r.get(13)?,
    })
}

/// Finds an order by its id or, failing that, its number (`ORDER` is either).
pub(super) fn find(
    conn: &Connection,
    platform: &str,
    key: &str,
) -> Result<Option<StoredOrder>, StoreError> {
    // Two lookups, not one `order_id = ? OR number = ?`: SQLite plans the OR as a walk over
    // every order of the platform, which made each `transition` and each claimed push read the
    // whole shop (2.6 ms per push at 10,000 orders).
    for column in ["order_id", "number"] {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE platform = ?1 AND {column} = ?2 LIMIT 1"
        );
        let found = conn
            .prepare_cached(&sql)?
            .query_row(params![platform, key], order_from_row)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

pub(super) fn items(
    conn: &Connection,
    platform: &str,
    order_id: &str,
) -> Result<Vec<StoredItem>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT item_id, sku, name, quantity, unit_price, status FROM order_items
         WHERE platform = ?1 AND order_id = ?2 ORDER BY CAST(item_id AS INTEGER), item_id",
    )?;
    let items = stmt
        .query_map(params![platform, order_id], |r| {
            Ok(StoredItem {
                item_id: r.get(0)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                quantity: r.get(3)?,
                unit_price: r.get(4)?,
                status: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(items)
}

fn digest_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderDigest> {
    Ok(OrderDigest {
        order_id: r.get(0)?,
        number: r.get(1)?,
        status: r.get(2)?,
        platform_status: r.get(3)?,
        content_hash: r.get(4)?,
        last_seen_at: r.get::<_, String>(5).ok().as_deref().and_then(parse_ts),
    })
}

const DIGEST_COLUMNS: &str =
    "order_id, number, status, platform_status, content_hash, last_seen_at";

/// The write side and the queries of the stored orders.
impl Store {
    /// Writes one page: its orders (created or changed, with their items and change events),
    /// its rejects, the pushes it confirms and its checkpoint, all in one transaction.
    pub async fn apply_page(&self, page: PageWrite) -> Result<PageOutcome, StoreError> {
        let out = if let Some(pg) = self.pg() {
            pg.apply_page(page, self.fence()).await
        } else {
            self.write(move |c| {
                // IMMEDIATE: the page reads before it writes; in WAL a deferred transaction cannot
                // wait for a busy writer at the upgrade and fails at once instead.
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = write_page(&tx, &page)?;
                tx.commit()?;
                Ok(out)
            })
            .await
        };
        if out
            .as_ref()
            .is_ok_and(|o| o.created + o.changed + o.status_changed + o.confirmed > 0)
        {
            self.feed_written();
        }
        out
    }

    /// An order of `platform` by its id or, failing that, its number.
    pub async fn find_order(
        &self,
        platform: &str,
        key: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.find_order(platform, key).await;
        }
        let (platform, key) = (platform.to_owned(), key.to_owned());
        self.read(move |c| find(c, &platform, &key)).await
    }

    /// The line items of a stored order, in their position order.
    pub async fn order_items(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<StoredItem>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.order_items(platform, order_id).await;
        }
        let (platform, order_id) = (platform.to_owned(), order_id.to_owned());
        self.read(move |c| items(c, &platform, &order_id)).await
    }

    /// At most `limit` stored orders, newest placed first, of one platform or all, in one
    /// canonical status or any.
    pub async fn list_orders(
        &self,
        platform: Option<&str>,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<StoredOrder>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_orders(platform, status, limit).await;
        }
        let platform = platform.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders
                 WHERE (?1 IS NULL OR platform = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY placed_at DESC, order_id DESC LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(
                    params![platform, status.map(Status::as_str), limit],
                    order_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// How many orders of `platform` are stored, and how many of them are open (not final).
    pub async fn order_counts(&self, platform: &str) -> Result<(u64, u64), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.order_counts(platform).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| {
            let finals: Vec<&str> = Status::ALL
                .into_iter()
                .filter(|s| s.is_final())
                .map(Status::as_str)
                .collect();
            let (all, open): (i64, i64) = c.query_row(
                "SELECT count(*), count(*) FILTER (WHERE status NOT IN (?2, ?3, ?4, ?5))
                 FROM orders WHERE platform = ?1",
                params![platform, finals[0], finals[1], finals[2], finals[3]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((all as u64, open as u64))
        })
        .await
    }

    /// The orders a reconcile pass re-reads (see [`Watched`]).
    pub async fn watched_orders(
        &self,
        platform: &str,
        finals_since: Option<DateTime<Utc>>,
        placed_cap: Option<DateTime<Utc>>,
    ) -> Result<Watched, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.watched_orders(platform, finals_since, placed_cap).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| watched_orders(c, &platform, finals_since, placed_cap))
            .await
    }

    /// Orders in `platform_status` that entered it at or after `since` (the store's own last
    /// change of the order, or for one first seen in it, the platform's update time), at most
    /// `limit`, least recently read first: `(order_id, number)`.
    pub async fn watched_in_status(
        &self,
        platform: &str,
        platform_status: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg
                .watched_in_status(platform, platform_status, since, limit)
                .await;
        }
        let (platform, platform_status) = (platform.to_owned(), platform_status.to_owned());
        self.read(move |c| watched_in_status(c, &platform, &platform_status, since, limit))
            .await
    }

    /// The placing times of every stored order of a platform, ascending.
    pub async fn placed_times(&self, platform: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.placed_times(platform).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| placed_times(c, &platform)).await
    }

    /// The stored orders among `ids`, in no particular order; ids not stored are left out.
    pub async fn order_digests(
        &self,
        platform: &str,
        ids: Vec<String>,
    ) -> Result<Vec<OrderDigest>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(pg) = self.pg() {
            return pg.order_digests(platform, ids).await;
        }
        let platform = platform.to_owned();
        let ids = Value::from(ids).to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DIGEST_COLUMNS} FROM orders
                 WHERE platform = ?1 AND order_id IN (SELECT value FROM json_each(?2))"
            ))?;
            let rows = stmt
                .query_map(params![platform, ids], digest_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The stored orders whose platform status is one of `statuses`, oldest placed first. The
    /// comparison ignores surrounding spaces and ASCII case, as platforms spell their statuses
    /// loosely.
    pub async fn orders_in_platform_statuses(
        &self,
        platform: &str,
        statuses: &[&str],
    ) -> Result<Vec<OrderDigest>, StoreError> {
        let upper: Vec<String> = statuses
            .iter()
            .map(|s| s.trim_matches(' ').to_ascii_uppercase())
            .collect();
        if let Some(pg) = self.pg() {
            return pg.orders_in_platform_statuses(platform, upper).await;
        }
        let platform = platform.to_owned();
        let statuses = Value::from(upper).to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DIGEST_COLUMNS} FROM orders WHERE platform = ?1
                 AND upper(trim(platform_status)) IN (SELECT value FROM json_each(?2))
                 ORDER BY placed_at, order_id"
            ))?;
            let rows = stmt
                .query_map(params![platform, statuses], digest_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The stored raw records of the orders among `ids`, by order id.
    pub async fn order_raws(
        &self,
        platform: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(pg) = self.pg() {
            return pg.order_raws(platform, ids).await;
        }
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let platform = platform.to_owned();
        let ids = Value::from(ids).to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT order_id, raw FROM orders
                 WHERE platform = ?1 AND order_id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = stmt.query_map(params![platform, ids], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
        })
        .await
    }

    /// How many orders of `platform` are stored, and the ids among them that `keep` accepts.
    /// The ids stream past `keep` one at a time, so a large shop's ids are never all held.
    pub async fn order_ids_where<F>(
        &self,
        platform: &str,
        mut keep: F,
    ) -> Result<(u64, Vec<String>), StoreError>
    where
        F: FnMut(&str) -> bool + Send + 'static,
    {
        if let Some(pg) = self.pg() {
            return pg.order_ids_where(platform, keep).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare("SELECT order_id FROM orders WHERE platform = ?1")?;
            let mut rows = stmt.query([platform])?;
            let (mut stored, mut kept) = (0u64, Vec::new());
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                stored += 1;
                if keep(&id) {
                    kept.push(id);
                }
            }
            Ok((stored, kept))
        })
        .await
    }
}
