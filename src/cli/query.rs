//! The read-only commands: `status`, `orders`, `order`, `events`. They open their own read-only
//! connection (WAL lets them run beside the daemon) and print a table, or one stable JSON
//! document with `--json`.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::Exit;
use crate::config::Config;
use crate::store::{self, StoredOrder};

fn open(config: &Config) -> Result<Connection, Exit> {
    let path = &config.daemon.database;
    if !path.exists() {
        return Err(Exit::failure(anyhow::anyhow!(
            "no database at {} yet (daemon.database): run `ordersync sync` or start the daemon first",
            path.display()
        )));
    }
    Ok(store::open_connection(path, true)?)
}

#[derive(Debug, Serialize)]
struct PlatformStatus {
    platform: String,
    kind: String,
    enabled: bool,
    last_run: Option<store::RunRecord>,
    last_success_at: Option<String>,
    cursor: Option<String>,
    pass_in_progress: bool,
    orders: u64,
    open_orders: u64,
    outbox_pending: u64,
    outbox_failed: u64,
}

pub fn status(config: &Config, json_out: bool) -> Result<(), Exit> {
    let conn = open(config)?;
    let mut rows = Vec::new();
    for p in &config.platforms {
        let name = p.name.as_str();
        let last_run = conn
            .query_row(
                "SELECT kind, started_at, finished_at, outcome, fetched, created, changed, rejected, error
                 FROM sync_runs WHERE platform = ?1 ORDER BY id DESC LIMIT 1",
                params![name],
                |r| {
                    Ok(store::RunRecord {
                        kind: r.get(0)?,
                        started_at: r.get(1)?,
                        finished_at: r.get(2)?,
                        outcome: r.get(3)?,
                        fetched: r.get::<_, i64>(4)? as u64,
                        created: r.get::<_, i64>(5)? as u64,
                        changed: r.get::<_, i64>(6)? as u64,
                        rejected: r.get::<_, i64>(7)? as u64,
                        error: r.get(8)?,
                    })
                },
            )
            .optional()?;
        let last_success_at: Option<String> = conn.query_row(
            "SELECT max(finished_at) FROM sync_runs WHERE platform = ?1 AND outcome = 'ok'",
            params![name],
            |r| r.get(0),
        )?;
        let state = store::load_pass_state(&conn, name)?;
        let count = |sql: &str| -> Result<u64, Exit> {
            Ok(conn.query_row(sql, params![name], |r| r.get::<_, i64>(0))? as u64)
        };
        rows.push(PlatformStatus {
            platform: p.name.clone(),
            kind: p.kind.as_str().into(),
            enabled: p.enabled,
            last_run,
            last_success_at,
            cursor: state.cursor.map(store::ts),
            pass_in_progress: state.pass.is_some(),
            orders: count("SELECT count(*) FROM orders WHERE platform = ?1")?,
            open_orders: count(
                "SELECT count(*) FROM orders WHERE platform = ?1 AND status NOT IN
                 ('delivered', 'cancelled', 'returned', 'rejected')",
            )?,
            outbox_pending: count(
                "SELECT count(*) FROM outbox WHERE platform = ?1 AND state IN ('pending', 'in_flight')",
            )?,
            outbox_failed: count("SELECT count(*) FROM outbox WHERE platform = ?1 AND state = 'failed'")?,
        });
    }
    if json_out {
        println!("{}", json!({ "platforms": rows }));
        return Ok(());
    }
    println!(
        "{:<20} {:<12} {:<16} {:<20} {:>8} {:>6} {:>8} {:>7}  CURSOR",
        "PLATFORM", "KIND", "LAST RUN", "AT", "ORDERS", "OPEN", "PENDING", "FAILED"
    );
    for r in &rows {
        let (outcome, at) = match &r.last_run {
            Some(run) => (
                format!("{} {}", run.kind, run.outcome),
                run.started_at.clone(),
            ),
            None => ("never".to_string(), "-".to_string()),
        };
        println!(
            "{:<20} {:<12} {:<16} {:<20} {:>8} {:>6} {:>8} {:>7}  {}{}",
            r.platform,
            r.kind,
            truncate(&outcome, 16),
            truncate(&at, 20),
            r.orders,
            r.open_orders,
            r.outbox_pending,
            r.outbox_failed,
            r.cursor.as_deref().unwrap_or("-"),
            if r.enabled { "" } else { "  (disabled)" }
        );
        if let Some(err) = r.last_run.as_ref().and_then(|run| run.error.as_deref()) {
            println!("    last error: {err}");
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub fn orders(
    config: &Config,
    platform: Option<&str>,
    status: Option<&str>,
    limit: u32,
    json_out: bool,
) -> Result<(), Exit> {
    if let Some(s) = status {
        s.parse::<crate::platforms::model::Status>()
            .map_err(|e| Exit::usage(e.to_string()))?;
    }
    let conn = open(config)?;
    let sql = format!(
        "SELECT {} FROM orders WHERE (?1 IS NULL OR platform = ?1) AND (?2 IS NULL OR status = ?2)
         ORDER BY placed_at DESC, order_id DESC LIMIT ?3",
        StoredOrder::COLUMNS
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(
            params![platform, status.map(|s| s.to_lowercase()), limit],
            StoredOrder::from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if json_out {
        println!("{}", json!({ "orders": rows }));
        return Ok(());
    }
    println!(
        "{:<16} {:<14} {:<14} {:<11} {:<14} {:>12} {:<4} PLACED",
        "PLATFORM", "ORDER", "NUMBER", "STATUS", "PLATFORM ST.", "TOTAL", ""
    );
    for o in rows {
        println!(
            "{:<16} {:<14} {:<14} {:<11} {:<14} {:>12} {:<4} {}",
            o.platform,
            o.order_id,
            o.number,
            o.status,
            truncate(&o.platform_status, 14),
            o.total.as_deref().unwrap_or("-"),
            o.currency.as_deref().unwrap_or(""),
            o.placed_at.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Event {
    id: i64,
    platform: String,
    order_id: String,
    kind: String,
    old_status: Option<String>,
    new_status: Option<String>,
    changes: Option<serde_json::Value>,
    observed_at: String,
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
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

const EVENT_COLUMNS: &str =
    "id, platform, order_id, kind, old_status, new_status, changes, observed_at";

fn print_event(e: &Event) {
    let status = match (&e.old_status, &e.new_status) {
        (Some(o), Some(n)) if o != n => format!("{o} -> {n}"),
        (_, Some(n)) => n.clone(),
        _ => String::new(),
    };
    let fields = e
        .changes
        .as_ref()
        .and_then(|c| c.as_object())
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    println!(
        "{:>8} {} {:<16} {:<14} {:<15} {:<24} {}",
        e.id, e.observed_at, e.platform, e.order_id, e.kind, status, fields
    );
}

#[derive(Debug, Serialize)]
struct OutboxRow {
    id: i64,
    action: String,
    params: serde_json::Value,
    state: String,
    attempts: i64,
    next_attempt_at: String,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

pub fn order(config: &Config, name: &str, key: &str, json_out: bool) -> Result<(), Exit> {
    let conn = open(config)?;
    let Some(o) = StoredOrder::find(&conn, name, key)? else {
        return Err(Exit::failure(anyhow::anyhow!(
            "no order `{key}` stored for platform `{name}` (by id or number)"
        )));
    };
    let items = o.items(&conn)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM order_events WHERE platform = ?1 AND order_id = ?2 ORDER BY id"
    ))?;
    let events = stmt
        .query_map(params![o.platform, o.order_id], event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT id, action, params, state, attempts, next_attempt_at, last_error, created_at, updated_at
         FROM outbox WHERE platform = ?1 AND order_id = ?2 ORDER BY id",
    )?;
    let outbox = stmt
        .query_map(params![o.platform, o.order_id], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                action: r.get(1)?,
                params: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                state: r.get(3)?,
                attempts: r.get(4)?,
                next_attempt_at: r.get(5)?,
                last_error: r.get(6)?,
                created_at: r.get(7)?,
                updated_at: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if json_out {
        println!(
            "{}",
            json!({ "order": o, "items": items, "events": events, "outbox": outbox })
        );
        return Ok(());
    }
    println!("{} {} (number {})", o.platform, o.order_id, o.number);
    println!(
        "  status        {} (platform: {})",
        o.status, o.platform_status
    );
    println!(
        "  total         {} {}",
        o.total.as_deref().unwrap_or("-"),
        o.currency.as_deref().unwrap_or("")
    );
    println!(
        "  customer      {}",
        o.customer_name.as_deref().unwrap_or("-")
    );
    println!(
        "  tracking      {}",
        o.tracking_number.as_deref().unwrap_or("-")
    );
    println!("  placed        {}", o.placed_at.as_deref().unwrap_or("-"));
    println!("  updated       {}", o.updated_at.as_deref().unwrap_or("-"));
    println!(
        "  seen          first {}, last {}, changed {}",
        o.first_seen_at, o.last_seen_at, o.last_changed_at
    );
    println!("  items:");
    for it in &items {
        println!(
            "    {:<4} {:<24} x{:<5} {:>10}  {}{}",
            it.item_id,
            it.sku.as_deref().unwrap_or("-"),
            it.quantity,
            it.unit_price.as_deref().unwrap_or("-"),
            it.name.as_deref().unwrap_or(""),
            it.status
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default()
        );
    }
    println!("  history:");
    for e in &events {
        print_event(e);
    }
    if !outbox.is_empty() {
        println!("  outbox:");
        for r in &outbox {
            println!(
                "    #{} {} {} attempts={} next={} {}",
                r.id,
                r.action,
                r.state,
                r.attempts,
                r.next_attempt_at,
                r.last_error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub fn events(config: &Config, after: i64, follow: bool, json_out: bool) -> Result<(), Exit> {
    let conn = open(config)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM order_events WHERE id > ?1 ORDER BY id LIMIT 1000"
    ))?;
    let mut last = after;
    let mut all = Vec::new();
    loop {
        let batch = stmt
            .query_map(params![last], event_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let full_batch = batch.len() == 1000;
        for e in batch {
            last = e.id;
            if follow {
                // One JSON document per line while following, so a consumer can stream.
                if json_out {
                    println!("{}", serde_json::to_string(&e).map_err(Exit::failure)?);
                } else {
                    print_event(&e);
                }
            } else if json_out {
                all.push(e);
            } else {
                print_event(&e);
            }
        }
        if full_batch {
            continue;
        }
        if !follow {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if json_out && !follow {
        println!("{}", json!({ "events": all }));
    }
    Ok(())
}

pub fn outbox(conn: &Connection, state: Option<&str>, json_out: bool) -> Result<(), Exit> {
    const STATES: [&str; 5] = ["pending", "in_flight", "done", "failed", "cancelled"];
    if let Some(s) = state
        && !STATES.contains(&s)
    {
        return Err(Exit::usage(format!(
            "unknown outbox state `{s}` (one of: {})",
            STATES.join(", ")
        )));
    }
    let rows = crate::outbox::list(conn, state)?;
    if json_out {
        println!("{}", json!({ "outbox": rows }));
        return Ok(());
    }
    println!(
        "{:>6} {:<16} {:<14} {:<11} {:<10} {:>8} {:<24} LAST ERROR",
        "ID", "PLATFORM", "ORDER", "ACTION", "STATE", "ATTEMPTS", "NEXT ATTEMPT"
    );
    for r in rows {
        println!(
            "{:>6} {:<16} {:<14} {:<11} {:<10} {:>8} {:<24} {}",
            r.id,
            r.platform,
            r.order_id,
            r.action,
            r.state,
            r.attempts,
            r.next_attempt_at,
            r.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
