//! Orders on PostgreSQL: a page's orders, items, events, rejects, confirmed pushes and
//! checkpoint in one transaction, holding the event-id lock from its start; and the queries of
//! stored orders. Change detection is the SQLite side's (content hash first, then the shared
//! field, item and raw comparisons), so events say the same whichever backend wrote them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::super::orders::{
    Existing, canonical_changes, count_change, items_change, opt_ts, raw_changes,
};
use super::super::{parse_ts, ts};
use super::rest::save_pass_state;
use super::{EVENT_ID_LOCK, Pg, StoreError};
use crate::model::{
    Incoming, Item, OrderDigest, PageOutcome, PageWrite, Status, StoredItem, StoredOrder, Watched,
    WatchedOrder,
};
use crate::store::leases::Lease;

pub(super) const ORDER_COLUMNS: &str = "platform, order_id, number, status, platform_status, \
    placed_at, updated_at, currency, total, customer_name, tracking_number, first_seen_at, \
    last_seen_at, last_changed_at";

const DIGEST_COLUMNS: &str =
    "order_id, number, status, platform_status, content_hash, last_seen_at";

pub(super) fn order_from_row(r: &Row) -> StoredOrder {
    StoredOrder {
        platform: r.get(0),
        order_id: r.get(1),
        number: r.get(2),
        status: r.get(3),
        platform_status: r.get(4),
        placed_at: r.get(5),
        updated_at: r.get(6),
        currency: r.get(7),
        total: r.get(8),
        customer_name: r.get(9),
        tracking_number: r.get(10),
        first_seen_at: r.get(11),
        last_seen_at: r.get(12),
        last_changed_at: r.get(13),
    }
}

fn digest_from_row(r: &Row) -> OrderDigest {
    OrderDigest {
        order_id: r.get(0),
        number: r.get(1),
        status: r.get(2),
        platform_status: r.get(3),
        content_hash: r.get(4),
        last_seen_at: r.get::<_, Option<String>>(5).as_deref().and_then(parse_ts),
    }
}

/// SQLite's `ORDER BY CAST(item_id AS INTEGER), item_id`: the leading integer (0 for none),
/// then the text.
const ITEM_ORDER: &str =
    "coalesce(substring(item_id from '^\\s*[-+]?[0-9]{1,18}')::bigint, 0), item_id";

/// Finds an order by its id or, failing that, its number; `lock` takes the row's lock too.
pub(super) async fn find(
    c: &impl GenericClient,
    platform: &str,
    key: &str,
    lock: bool,
) -> Result<Option<StoredOrder>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    for column in ["order_id", "number"] {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE platform = $1 AND {column} = $2 \
             ORDER BY order_id LIMIT 1{lock}"
        );
        let stmt = c.prepare_cached(&sql).await?;
        if let Some(row) = c.query_opt(&stmt, &[&platform, &key]).await? {
            return Ok(Some(order_from_row(&row)));
        }
    }
    Ok(None)
}

pub(super) async fn items(
    c: &impl GenericClient,
    platform: &str,
    order_id: &str,
) -> Result<Vec<StoredItem>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT item_id, sku, name, quantity, unit_price, status FROM order_items
             WHERE platform = $1 AND order_id = $2 ORDER BY {ITEM_ORDER}"
        ))
        .await?;
    Ok(c.query(&stmt, &[&platform, &order_id])
        .await?
        .iter()
        .map(|r| StoredItem {
            item_id: r.get(0),
            sku: r.get(1),
            name: r.get(2),
            quantity: r.get(3),
            unit_price: r.get(4),
            status: r.get(5),
        })
        .collect())
}

async fn load_items(
    c: &impl GenericClient,
    platform: &str,
    order_id: &str,
) -> Result<Vec<Value>, StoreError> {
    let mut items: Vec<Value> = items(c, platform, order_id)
        .await?
        .into_iter()
        .map(|it| {
            serde_json::json!({
                "item_id": it.item_id,
                "sku": it.sku,
                "name": it.name,
                "quantity": it.quantity,
                "unit_price": it.unit_price,
                "status": it.status,
            })
        })
        .collect();
    items.sort_by_key(|v| v["item_id"].as_str().map(str::to_string));
    Ok(items)
}

/// A page in a handful of statements whatever its size: the lookup of its stored orders, one
/// upsert of its new orders, one insert of their items, one update of the unchanged and one
/// insert of its events. Under the event-id lock every round trip holds up every other
/// daemon's pages, so they are counted: a statement per order made a full sync on PostgreSQL
/// several times slower than on SQLite. Changed orders, a few per page, go one by one.
async fn write_page(
    tx: &deadpool_postgres::Transaction<'_>,
    page: &PageWrite,
) -> Result<PageOutcome, StoreError> {
    // Before any event id is taken: ids then commit in id order across processes (see the
    // module doc of `postgres`). Taken for every page, not just before its first event: a
    // page that took row locks first and the lock second could deadlock with one doing the
    // opposite.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENT_ID_LOCK])
        .await?;
    let mut out = PageOutcome::default();
    let now = ts(Utc::now());
    let platform = page.platform.as_str();
    let ids: Vec<&str> = page
        .orders
        .iter()
        .map(|i| i.order.order_id.as_str())
        .collect();
    // An order rejected before and readable now: its reject goes.
    tx.execute(
        "DELETE FROM rejects WHERE platform = $1 AND order_id = ANY($2)",
        &[&platform, &ids],
    )
    .await?;
    let mut events = Vec::with_capacity(page.orders.len());
    for part in distinct_runs(&page.orders) {
        write_part(tx, platform, part, &now, &mut out, &mut events).await?;
    }
    insert_events(tx, platform, &events, &now).await?;
    for r in &page.rejects {
        let seen_again = match &r.order_id {
            Some(order_id) => {
                tx.execute(
                    "UPDATE rejects SET received_at = $3, position = $4, reason = $5, raw = $6
                     WHERE platform = $1 AND order_id = $2",
                    &[&platform, order_id, &now, &r.position, &r.reason, &r.raw],
                )
                .await?
            }
            None => {
                tx.execute(
                    "UPDATE rejects SET received_at = $4, reason = $5
                     WHERE platform = $1 AND position = $2 AND raw = $3 AND order_id IS NULL",
                    &[&platform, &r.position, &r.raw, &now, &r.reason],
                )
                .await?
            }
        };
        if seen_again == 0 {
            tx.execute(
                "INSERT INTO rejects (platform, received_at, position, reason, raw, order_id)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&platform, &now, &r.position, &r.reason, &r.raw, &r.order_id],
            )
            .await?;
        }
        out.rejected += 1;
    }
    if let Some(state) = &page.checkpoint {
        save_pass_state(tx, platform, state).await?;
    }
    Ok(out)
}

/// The page cut where an order comes again (a page that moved under the reader can repeat
/// one): within a part every order is compared with what was stored before the part, as a
/// statement per order would have compared the second sighting with the first.
fn distinct_runs(orders: &[Incoming]) -> Vec<&[Incoming]> {
    let mut parts = Vec::new();
    let (mut start, mut seen) = (0, HashSet::new());
    for (i, inc) in orders.iter().enumerate() {
        if !seen.insert(inc.order.order_id.as_str()) {
            parts.push(&orders[start..i]);
            start = i;
            seen = HashSet::from([inc.order.order_id.as_str()]);
        }
    }
    parts.push(&orders[start..]);
    parts
}

/// An event of the page, inserted with the others at its end, in page order.
struct NewEvent<'a> {
    order_id: &'a str,
    kind: &'static str,
    old_status: Option<String>,
    new_status: &'static str,
    changes: Option<String>,
}

/// Orders of a page, no two the same.
async fn write_part<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    part: &'a [Incoming],
    now: &str,
    out: &mut PageOutcome,
    events: &mut Vec<NewEvent<'a>>,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = part.iter().map(|i| i.order.order_id.as_str()).collect();
    let stored: HashMap<String, (String, String)> = tx
        .query(
            "SELECT order_id, content_hash, status FROM orders
             WHERE platform = $1 AND order_id = ANY($2)",
            &[&platform, &ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let (mut new, mut unchanged) = (Vec::new(), Vec::new());
    for inc in part {
        let o = &inc.order;
        match stored.get(&o.order_id) {
            None => {
                new.push(inc);
                events.push(NewEvent {
                    order_id: &o.order_id,
                    kind: "created",
                    old_status: None,
                    new_status: o.status.as_str(),
                    changes: None,
                });
                out.created += 1;
            }
            Some((hash, status)) if *hash == inc.hash && status == o.status.as_str() => {
                unchanged.push(o.order_id.as_str());
                out.unchanged += 1;
            }
            Some(_) => {
                if let Some(event) = write_changed(tx, platform, inc, now, out).await? {
                    events.push(event);
                }
            }
        }
    }
    write_orders(tx, platform, &new, now).await?;
    insert_items(tx, platform, &new).await?;
    if !unchanged.is_empty() {
        tx.execute(
            "UPDATE orders SET last_seen_at = $2 WHERE platform = $1 AND order_id = ANY($3)",
            &[&platform, &now, &unchanged],
        )
        .await?;
    }
    Ok(())
}

/// An order whose hash or status differs from the stored one: its event, if anything the
/// feed shows changed (otherwise its new hash and raw are kept quietly).
async fn write_changed<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    inc: &'a Incoming,
    now: &str,
    out: &mut PageOutcome,
) -> Result<Option<NewEvent<'a>>, StoreError> {
    let o = &inc.order;
    let old = load_existing(tx, platform, &o.order_id).await?;
    let mut changes = canonical_changes(&old, inc);
    items_change(
        load_items(tx, platform, &o.order_id).await?,
        &o.items,
        &mut changes,
    );
    if changes.is_empty() {
        let old_raw: String = tx
            .query_one(
                "SELECT raw FROM orders WHERE platform = $1 AND order_id = $2",
                &[&platform, &o.order_id],
            )
            .await?
            .get(0);
        raw_changes(&old_raw, &inc.raw, &mut changes);
    }
    if changes.is_empty() {
        tx.execute(
            "UPDATE orders SET content_hash = $3, last_seen_at = $4, raw = $5
             WHERE platform = $1 AND order_id = $2",
            &[&platform, &o.order_id, &inc.hash, &now, &inc.raw],
        )
        .await?;
        out.unchanged += 1;
        return Ok(None);
    }
    write_orders(tx, platform, &[inc], now).await?;
    if changes.contains_key("items") {
        tx.execute(
            "DELETE FROM order_items WHERE platform = $1 AND order_id = $2",
            &[&platform, &o.order_id],
        )
        .await?;
        insert_items(tx, platform, &[inc]).await?;
    }
    let status_moved = old.status != o.status.as_str();
    let confirmed = status_moved && confirm_push(tx, platform, &o.order_id, o.status, now).await?;
    let kind = count_change(out, status_moved, confirmed);
    Ok(Some(NewEvent {
        order_id: &o.order_id,
        kind,
        old_status: Some(old.status),
        new_status: o.status.as_str(),
        changes: Some(Value::Object(changes.into_iter().collect()).to_string()),
    }))
}

async fn confirm_push(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    order_id: &str,
    new_status: Status,
    now: &str,
) -> Result<bool, StoreError> {
    let targets = match new_status {
        Status::Cancelled | Status::Rejected => ("cancelled", "rejected"),
        other => (other.as_str(), other.as_str()),
    };
    let id: Option<i64> = tx
        .query_opt(
            "SELECT id FROM outbox WHERE platform = $1 AND order_id = $2 AND confirmed_at IS NULL
                 AND state IN ('pending', 'in_flight', 'done') AND action IN ($3, $4)
             ORDER BY id LIMIT 1 FOR UPDATE",
            &[&platform, &order_id, &targets.0, &targets.1],
        )
        .await?
        .map(|r| r.get(0));
    let Some(id) = id else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE outbox SET confirmed_at = $2, state = 'done', outcome_unknown = 0,
             claimed_by = NULL, claim_token = NULL, claimed_until = NULL,
             updated_at = CASE WHEN state = 'done' THEN updated_at ELSE $2 END
         WHERE id = $1",
        &[&id, &now],
    )
    .await?;
    Ok(true)
}

/// Writes new or changed orders whole, in one statement: an order already stored keeps its
/// `first_seen_at` and has everything else replaced. No two of `incs` may be the same order.
async fn write_orders(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    incs: &[&Incoming],
    now: &str,
) -> Result<(), StoreError> {
    if incs.is_empty() {
        return Ok(());
    }
    let column = |f: &dyn Fn(&Incoming) -> Option<String>| -> Vec<Option<String>> {
        incs.iter().map(|i| f(i)).collect()
    };
    let ids: Vec<&str> = incs.iter().map(|i| i.order.order_id.as_str()).collect();
    let numbers: Vec<&str> = incs.iter().map(|i| i.order.number.as_str()).collect();
    let statuses: Vec<&str> = incs.iter().map(|i| i.order.status.as_str()).collect();
    let platform_statuses: Vec<&str> = incs
        .iter()
        .map(|i| i.order.platform_status.as_str())
        .collect();
    let hashes: Vec<&str> = incs.iter().map(|i| i.hash.as_str()).collect();
    let raws: Vec<&str> = incs.iter().map(|i| i.raw.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO orders (platform, order_id, number, status, platform_status,
                 placed_at, updated_at, currency, total, customer_name, tracking_number,
                 content_hash, first_seen_at, last_seen_at, last_changed_at, raw)
             SELECT $1, u.order_id, u.number, u.status, u.platform_status, u.placed_at,
                 u.updated_at, u.currency, u.total, u.customer_name, u.tracking_number,
                 u.content_hash, $13, $13, $13, u.raw
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                 $14::text[])
                 AS u(order_id, number, status, platform_status, placed_at, updated_at,
                      currency, total, customer_name, tracking_number, content_hash, raw)
             ON CONFLICT (platform, order_id) DO UPDATE SET number = excluded.number,
                 status = excluded.status, platform_status = excluded.platform_status,
                 placed_at = excluded.placed_at, updated_at = excluded.updated_at,
                 currency = excluded.currency, total = excluded.total,
                 customer_name = excluded.customer_name,
                 tracking_number = excluded.tracking_number,
                 content_hash = excluded.content_hash, last_seen_at = excluded.last_seen_at,
                 last_changed_at = excluded.last_changed_at, raw = excluded.raw",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &platform,
            &ids,
            &numbers,
            &statuses,
            &platform_statuses,
            &column(&|i| opt_ts(i.order.placed_at)),
            &column(&|i| opt_ts(i.order.updated_at)),
            &column(&|i| i.order.currency.clone()),
            &column(&|i| i.order.total.map(|d| d.to_string())),
            &column(&|i| i.order.customer_name.clone()),
            &column(&|i| i.order.tracking_number.clone()),
            &hashes,
            &now,
            &raws,
        ],
    )
    .await?;
    Ok(())
}

/// The line items of `incs`, in one statement.
async fn insert_items(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    incs: &[&Incoming],
) -> Result<(), StoreError> {
    let items: Vec<(&str, &Item)> = incs
        .iter()
        .flat_map(|i| {
            i.order
                .items
                .iter()
                .map(|it| (i.order.order_id.as_str(), it))
        })
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let order_ids: Vec<&str> = items.iter().map(|(o, _)| *o).collect();
    let item_ids: Vec<&str> = items.iter().map(|(_, it)| it.item_id.as_str()).collect();
    let skus: Vec<Option<&str>> = items.iter().map(|(_, it)| it.sku.as_deref()).collect();
    let names: Vec<Option<&str>> = items.iter().map(|(_, it)| it.name.as_deref()).collect();
    let quantities: Vec<String> = items
        .iter()
        .map(|(_, it)| it.quantity.to_string())
        .collect();
    let prices: Vec<Option<String>> = items
        .iter()
        .map(|(_, it)| it.unit_price.map(|d| d.to_string()))
        .collect();
    let statuses: Vec<Option<&str>> = items.iter().map(|(_, it)| it.status.as_deref()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO order_items
                 (platform, order_id, item_id, sku, name, quantity, unit_price, status)
             SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[])
                 AS u(order_id, item_id, sku, name, quantity, unit_price, status)
             ON CONFLICT (platform, order_id, item_id) DO UPDATE SET sku = excluded.sku,
                 name = excluded.name, quantity = excluded.quantity,
                 unit_price = excluded.unit_price, status = excluded.status",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &platform,
            &order_ids,
            &item_ids,
            &skus,
            &names,
            &quantities,
            &prices,
            &statuses,
        ],
    )
    .await?;
    Ok(())
}

/// The page's events in one statement, their ids taken in page order.
async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    events: &[NewEvent<'_>],
    now: &str,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let order_ids: Vec<&str> = events.iter().map(|e| e.order_id).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    let olds: Vec<Option<&str>> = events.iter().map(|e| e.old_status.as_deref()).collect();
    let news: Vec<&str> = events.iter().map(|e| e.new_status).collect();
    let changes: Vec<Option<&str>> = events.iter().map(|e| e.changes.as_deref()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO order_events (platform, order_id, kind, old_status, new_status, changes,
                 observed_at)
             SELECT $1, u.order_id, u.kind, u.old_status, u.new_status, u.changes, $7
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                 WITH ORDINALITY AS u(order_id, kind, old_status, new_status, changes, n)
             ORDER BY u.n",
        )
        .await?;
    tx.execute(
        &stmt,
        &[&platform, &order_ids, &kinds, &olds, &news, &changes, &now],
    )
    .await?;
    Ok(())
}

async fn load_existing(
    tx: &deadpool_postgres::Transaction<'_>,
    platform: &str,
    order_id: &str,
) -> Result<Existing, StoreError> {
    let r = tx
        .query_one(
            "SELECT number, status, platform_status, placed_at, updated_at, currency, total,
                    customer_name, tracking_number
             FROM orders WHERE platform = $1 AND order_id = $2",
            &[&platform, &order_id],
        )
        .await?;
    Ok(Existing {
        id: 0,
        number: r.get(0),
        status: r.get(1),
        platform_status: r.get(2),
        placed_at: r.get(3),
        updated_at: r.get(4),
        currency: r.get(5),
        total: r.get(6),
        customer_name: r.get(7),
        tracking_number: r.get(8),
    })
}

fn finals() -> Vec<&'static str> {
    Status::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(Status::as_str)
        .collect()
}

/// The SQLite side's `entered_since`, with a PostgreSQL parameter.
fn entered_since(param: &str) -> String {
    format!(
        "((last_changed_at > first_seen_at AND last_changed_at >= {param}) \
          OR coalesce(updated_at, placed_at) >= {param})"
    )
}

impl Pg {
    pub(crate) async fn apply_page(
        &self,
        page: PageWrite,
        fence: Option<&Lease>,
    ) -> Result<PageOutcome, StoreError> {
        self.write(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if fence.is_some() {
                // The page's turn first (write_page takes the lock again; it stacks), then
                // the lease row (see `leases::check`).
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENT_ID_LOCK])
                    .await?;
                super::leases::check(&tx, fence).await?;
            }
            let out = write_page(&tx, &page).await?;
            #[cfg(feature = "crash-hooks")]
            crate::store::hooks::before_page_commit(&page.platform).await;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    pub(crate) async fn find_order(
        &self,
        platform: &str,
        key: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        self.read(async {
            let c = self.client().await?;
            find(&c, platform, key, false).await
        })
        .await
    }

    pub(crate) async fn order_items(
        &self,
        platform: &str,
        order_id: &str,
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.read(async {
            let c = self.client().await?;
            items(&c, platform, order_id).await
        })
        .await
    }

    pub(crate) async fn list_orders(
        &self,
        platform: Option<&str>,
        status: Option<Status>,
        limit: u32,
    ) -> Result<Vec<StoredOrder>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE ($1::text IS NULL OR platform = $1)
               AND ($2::text IS NULL OR status = $2)
             ORDER BY placed_at DESC NULLS LAST, order_id DESC LIMIT $3"
        );
        self.rows(
            &sql,
            &[&platform, &status.map(Status::as_str), &(limit as i64)],
            order_from_row,
        )
        .await
    }

    pub(crate) async fn order_counts(&self, platform: &str) -> Result<(u64, u64), StoreError> {
        let f = finals();
        self.one_row(
            "SELECT count(*), count(*) FILTER (WHERE status NOT IN ($2, $3, $4, $5))
             FROM orders WHERE platform = $1",
            &[&platform, &f[0], &f[1], &f[2], &f[3]],
            |r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64),
        )
        .await
    }

    pub(crate) async fn watched_orders(
        &self,
        platform: &str,
        finals_since: Option<DateTime<Utc>>,
        placed_cap: Option<DateTime<Utc>>,
    ) -> Result<Watched, StoreError> {
        let f = finals();
        let since = finals_since.map_or_else(|| "9999".to_string(), ts);
        let sql = format!(
            "SELECT order_id, placed_at FROM orders WHERE platform = $1
             AND (status NOT IN ($2, $3, $4, $5) OR {})
             ORDER BY placed_at NULLS FIRST, order_id",
            entered_since("$6")
        );
        let orders: Vec<WatchedOrder> = self
            .rows(
                &sql,
                &[&platform, &f[0], &f[1], &f[2], &f[3], &since],
                |r| WatchedOrder {
                    order_id: r.get(0),
                    placed_at: r.get::<_, Option<String>>(1).as_deref().and_then(parse_ts),
                },
            )
            .await?;
        let mut out = Watched::default();
        for o in orders {
            match (placed_cap, o.placed_at) {
                (Some(cap), Some(t)) if t < cap => out.beyond_cap += 1,
                _ => out.orders.push(o),
            }
        }
        Ok(out)
    }

    pub(crate) async fn watched_in_status(
        &self,
        platform: &str,
        platform_status: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = format!(
            "SELECT order_id, number FROM orders WHERE platform = $1
             AND platform_status = $2 AND {}
             ORDER BY last_seen_at, order_id LIMIT $4",
            entered_since("$3")
        );
        self.rows(
            &sql,
            &[&platform, &platform_status, &ts(since), &(limit as i64)],
            |r| (r.get(0), r.get(1)),
        )
        .await
    }

    pub(crate) async fn placed_times(
        &self,
        platform: &str,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let times: Vec<Option<DateTime<Utc>>> = self
            .rows(
                "SELECT placed_at FROM orders WHERE platform = $1 AND placed_at IS NOT NULL",
                &[&platform],
                |r| parse_ts(r.get::<_, &str>(0)),
            )
            .await?;
        let mut times: Vec<DateTime<Utc>> = times.into_iter().flatten().collect();
        times.sort_unstable();
        Ok(times)
    }

    pub(crate) async fn order_digests(
        &self,
        platform: &str,
        ids: Vec<String>,
    ) -> Result<Vec<OrderDigest>, StoreError> {
        let sql = format!(
            "SELECT {DIGEST_COLUMNS} FROM orders WHERE platform = $1 AND order_id = ANY($2)"
        );
        self.rows(&sql, &[&platform, &ids], digest_from_row).await
    }

    pub(crate) async fn orders_in_platform_statuses(
        &self,
        platform: &str,
        statuses: Vec<String>,
    ) -> Result<Vec<OrderDigest>, StoreError> {
        // SQLite's upper() and trim() touch ASCII and spaces only.
        let sql = format!(
            "SELECT {DIGEST_COLUMNS} FROM orders WHERE platform = $1
             AND upper(btrim(platform_status, ' ')) = ANY($2)
             ORDER BY placed_at NULLS FIRST, order_id"
        );
        self.rows(&sql, &[&platform, &statuses], digest_from_row)
            .await
    }

    pub(crate) async fn order_raws(
        &self,
        platform: &str,
        ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        self.rows(
            "SELECT order_id, raw FROM orders WHERE platform = $1 AND order_id = ANY($2)",
            &[&platform, &ids],
            |r| (r.get(0), r.get(1)),
        )
        .await
    }

    /// Streams the ids past `keep` (a cursor-less row stream: the server sends them as they are
    /// read, so a large shop's ids are never all held).
    pub(crate) async fn order_ids_where<F>(
        &self,
        platform: &str,
        mut keep: F,
    ) -> Result<(u64, Vec<String>), StoreError>
    where
        F: FnMut(&str) -> bool + Send + 'static,
    {
        use futures_util::TryStreamExt as _;
        self.read(async {
            let c = self.client().await?;
            let rows = c
                .query_raw(
                    "SELECT order_id FROM orders WHERE platform = $1",
                    [platform],
                )
                .await?;
            let mut rows = std::pin::pin!(rows);
            let (mut stored, mut kept) = (0u64, Vec::new());
            while let Some(r) = rows.try_next().await? {
                let id: &str = r.get(0);
                stored += 1;
                if keep(id) {
                    kept.push(id.to_string());
                }
            }
            Ok((stored, kept))
        })
        .await
    }
}
