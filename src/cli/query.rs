//! The read-only commands: `status`, `orders`, `order`, `events`, and `outbox`'s listing. They
//! read through a read-only handle on the store (WAL lets them run beside the daemon) and print
//! a table, or one stable JSON document with `--json`.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::Exit;
use crate::config::Config;
use crate::model::{OutboxState, StoredEvent};
use crate::store::{self, Store};

pub(super) async fn open(config: &Config) -> Result<Store, Exit> {
    let db = &config.daemon.database;
    if let Some(path) = db.sqlite_path()
        && !path.exists()
    {
        return Err(Exit::failure(anyhow::anyhow!(
            "no database at {} yet (daemon.database): run `ordersync sync` or start the daemon first",
            path.display()
        )));
    }
    Ok(Store::open_database_read_only(db).await?)
}

#[derive(Debug, Serialize)]
struct PlatformStatus {
    platform: String,
    kind: String,
    enabled: bool,
    last_run: Option<crate::model::RunRecord>,
    last_success_at: Option<String>,
    cursor: Option<String>,
    pass_in_progress: bool,
    orders: u64,
    open_orders: u64,
    /// Open orders placed before `reconcile_horizon`, which reconcile does not re-read.
    unwatched_open_orders: u64,
    outbox_pending: u64,
    outbox_failed: u64,
}

pub async fn status(config: &Config, json_out: bool) -> Result<(), Exit> {
    let store = open(config).await?;
    let mut rows = Vec::new();
    for p in &config.platforms {
        let name = p.name.as_str();
        let last_run = store.last_run(name).await?;
        let last_success_at = store.last_success_at(name).await?;
        let state = store.load_pass_state(name).await?;
        let unwatched_open_orders = match p
            .reconcile_horizon
            .and_then(|h| chrono::TimeDelta::from_std(h).ok())
            .and_then(|h| Utc::now().checked_sub_signed(h))
        {
            Some(cap) => {
                store
                    .watched_orders(name, None, Some(cap))
                    .await?
                    .beyond_cap
            }
            None => 0,
        };
        let (orders, open_orders) = store.order_counts(name).await?;
        let outbox = store.outbox_depth(Some(name)).await?;
        let outbox_count = |state| outbox.get(&state).copied().unwrap_or(0);
        rows.push(PlatformStatus {
            platform: p.name.clone(),
            kind: p.kind.as_str().into(),
            enabled: p.enabled,
            last_run,
            last_success_at,
            cursor: state.cursor.map(store::ts),
            pass_in_progress: state.pass.is_some(),
            orders,
            open_orders,
            unwatched_open_orders,
            outbox_pending: outbox_count(OutboxState::Pending)
                + outbox_count(OutboxState::InFlight),
            outbox_failed: outbox_count(OutboxState::Failed),
        });
    }
    if json_out {
        println!("{}", json!({ "platforms": rows }));
        return Ok(());
    }
    print!("{}", status_table(&rows, Utc::now(), terminal_width()));
    Ok(())
}

/// The columns of the `status` table; KIND is left out where the terminal is too narrow for all.
const STATUS_COLUMNS: [(&str, Align); 8] = [
    ("PLATFORM", Align::Left),
    ("KIND", Align::Left),
    ("LAST RUN", Align::Left),
    ("WHEN", Align::Left),
    ("ORDERS", Align::Right),
    ("OPEN", Align::Right),
    ("PENDING", Align::Right),
    ("FAILED", Align::Right),
];

/// The table people read: ages instead of timestamps, counts right-aligned under their
/// headings, and under a platform whose last run did not succeed, its last success and its
/// error wrapped between words. Values are never cut: a column is as wide as its widest value.
fn status_table(rows: &[PlatformStatus], now: DateTime<Utc>, width: usize) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (outcome, when) = match &r.last_run {
                Some(run) => (
                    format!("{} {}", run.kind, run.outcome),
                    age(now, &run.started_at),
                ),
                None => ("never".to_string(), "-".to_string()),
            };
            vec![
                r.platform.clone(),
                r.kind.clone(),
                outcome,
                when,
                r.orders.to_string(),
                r.open_orders.to_string(),
                r.outbox_pending.to_string(),
                r.outbox_failed.to_string(),
            ]
        })
        .collect();
    let header: Vec<String> = STATUS_COLUMNS.iter().map(|(h, _)| h.to_string()).collect();
    let widths: Vec<usize> = (0..STATUS_COLUMNS.len())
        .map(|c| {
            std::iter::once(&header)
                .chain(&cells)
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let table_width = |columns: &[usize]| -> usize {
        (0..columns.len())
            .map(|n| widths[columns[n]] + if n > 0 { gap(columns, n).len() } else { 0 })
            .sum()
    };
    let mut columns: Vec<usize> = (0..STATUS_COLUMNS.len()).collect();
    if table_width(&columns) > width {
        columns.retain(|&c| STATUS_COLUMNS[c].0 != "KIND");
    }
    let mut out = String::new();
    for (i, row) in std::iter::once(&header).chain(&cells).enumerate() {
        let mut line = String::new();
        for (n, &c) in columns.iter().enumerate() {
            if n > 0 {
                line.push_str(gap(&columns, n));
            }
            let pad = widths[c] - row[c].chars().count();
            match STATUS_COLUMNS[c].1 {
                Align::Left => {
                    line.push_str(&row[c]);
                    line.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&row[c]);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        let Some(r) = i.checked_sub(1).map(|i| &rows[i]) else {
            continue;
        };
        if !r.enabled {
            out.push_str("    disabled (enabled = false): not scheduled\n");
        }
        if r.unwatched_open_orders > 0 {
            out.push_str(&format!(
                "    not re-read: {} open orders placed before reconcile_horizon\n",
                r.unwatched_open_orders
            ));
        }
        let Some(run) = r.last_run.as_ref().filter(|run| run.outcome != "ok") else {
            continue;
        };
        let success = r
            .last_success_at
            .as_deref()
            .map_or_else(|| "never".to_string(), |t| age(now, t));
        out.push_str(&format!("    last success: {success}\n"));
        if let Some(err) = run.error.as_deref() {
            out.push_str(&wrap("    last error:   ", err, width));
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Two spaces between columns, one between two right-aligned counts (their headings already
/// stand apart).
fn gap(columns: &[usize], n: usize) -> &'static str {
    match (
        STATUS_COLUMNS[columns[n - 1]].1,
        STATUS_COLUMNS[columns[n]].1,
    ) {
        (Align::Right, Align::Right) => " ",
        _ => "  ",
    }
}

/// `text` after `lead`, wrapped between words to `width`, continuation lines indented under
/// the text; a word longer than the line stays whole on a line of its own.
pub(super) fn wrap(lead: &str, text: &str, width: usize) -> String {
    let indent = " ".repeat(lead.len());
    let mut out = String::new();
    let mut line = lead.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// How long ago `at` (RFC 3339) was, in the largest unit that keeps it short; an unreadable
/// value is shown whole.
pub(super) fn age(now: DateTime<Utc>, at: &str) -> String {
    let Ok(then) = DateTime::parse_from_rfc3339(at) else {
        return at.to_string();
    };
    let secs = (now - then.with_timezone(&Utc)).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let amount = match n {
        0 => return "just now".to_string(),
        1..60 => format!("{n} s"),
        60..3600 => format!("{} min", n / 60),
        3600..172_800 => format!("{} h", n / 3600),
        _ => format!("{} d", n / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Columns to fit: stdout's terminal, else `COLUMNS`, else 100.
pub(super) fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize we own, or fails and leaves it zeroed.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0
    {
        return ws.ws_col.into();
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(100)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub async fn orders(
    config: &Config,
    platform: Option<&str>,
    status: Option<&str>,
    limit: u32,
    json_out: bool,
) -> Result<(), Exit> {
    let status = status
        .map(|s| s.parse::<crate::model::Status>())
        .transpose()
        .map_err(|e| Exit::usage(e.to_string()))?;
    let store = open(config).await?;
    let rows = store.list_orders(platform, status, limit).await?;
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

fn print_event(e: &StoredEvent) {
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
    state: OutboxState,
    attempts: i64,
    next_attempt_at: String,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

pub async fn order(config: &Config, name: &str, key: &str, json_out: bool) -> Result<(), Exit> {
    let store = open(config).await?;
    let Some(o) = store.find_order(name, key).await? else {
        return Err(Exit::failure(anyhow::anyhow!(
            "no order `{key}` stored for platform `{name}` (by id or number)"
        )));
    };
    let items = store.order_items(&o.platform, &o.order_id).await?;
    let events = store.order_events(&o.platform, &o.order_id).await?;
    // The order's own entries, without the platform and order they all share.
    let outbox: Vec<OutboxRow> = store
        .order_outbox(&o.platform, &o.order_id)
        .await?
        .into_iter()
        .map(|r| OutboxRow {
            id: r.id,
            action: r.action,
            params: r.params,
            state: r.state,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
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

pub async fn events(config: &Config, after: i64, follow: bool, json_out: bool) -> Result<(), Exit> {
    const BATCH: usize = 1000;
    let store = open(config).await?;
    let mut last = after;
    let mut all = Vec::new();
    loop {
        let batch = store.events_after(last, BATCH).await?;
        let full_batch = batch.len() == BATCH;
        for e in batch {
            last = e.id;
            if follow && json_out {
                // One JSON document per line, flushed, so `| jq` sees each event as it comes.
                let mut out = std::io::stdout().lock();
                let line = serde_json::to_string(&e).map_err(Exit::failure)? + "\n";
                match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader is gone (`| head`): nothing is left to follow for.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(Exit::failure(e)),
                }
            } else if follow {
                print_event(&e);
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
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if json_out && !follow {
        println!("{}", json!({ "events": all }));
    }
    Ok(())
}

pub async fn outbox(store: &Store, state: Option<&str>, json_out: bool) -> Result<(), Exit> {
    let state = state
        .map(|s| s.parse::<OutboxState>())
        .transpose()
        .map_err(Exit::usage)?;
    let rows = store.list_outbox(state).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_unit_that_keeps_them_short() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (at, want) in [
            ("2026-12-02T11:59:59.600Z", "just now"),
            ("2026-12-02T11:59:01Z", "59 s ago"),
            ("2026-12-02T11:59:00Z", "1 min ago"),
            ("2026-12-02T11:00:01Z", "59 min ago"),
            ("2026-12-02T11:00:00Z", "1 h ago"),
            ("2026-11-30T12:00:01Z", "47 h ago"),
            ("2026-11-30T12:00:00Z", "2 d ago"),
            ("2026-12-02T14:00:00+02:00", "just now"),
            ("2026-12-02T12:00:05Z", "in 5 s"),
            ("yesterday-ish", "yesterday-ish"),
        ] {
            assert_eq!(age(now, at), want, "{at}");
        }
    }

    #[test]
    fn wrapping_breaks_between_words_and_keeps_a_long_word_whole() {
        let text = wrap(
            "  x: ",
            "aaa bbb /a/very/long/path/that/does/not/fit ccc",
            14,
        );
        assert_eq!(
            text,
            "  x: aaa bbb\n     /a/very/long/path/that/does/not/fit\n     ccc\n"
        );
    }
}
