//! `ordersync sinks`: each sink's state, cursor, lag and last error; and the operator's
//! `replay`, `pause` and `resume`, which write the sink's row for the running daemon to pick up
//! at its next look (within a second).

use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::Exit;
use super::query::{age, terminal_width, wrap};
use crate::config::{Config, SinkConfig};
use crate::model::{SinkLag, SinkRecord};
use crate::sinks::start_of;
use crate::store::Store;

#[derive(Debug, Serialize)]
struct SinkStatus {
    sink: String,
    kind: &'static str,
    destination: String,
    state: &'static str,
    cursor: Option<i64>,
    lag_events: u64,
    lag_seconds: f64,
    delivered: u64,
    failed_attempts: u64,
    paused: bool,
    disabled: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    last_delivered_at: Option<String>,
}

fn state_of(row: Option<&SinkRecord>, lag: SinkLag) -> &'static str {
    let Some(r) = row else {
        return "not started";
    };
    if r.disabled.is_some() {
        "disabled"
    } else if r.paused {
        "paused"
    } else if r.last_error_at.is_some()
        && lag.events > 0
        && r.last_error_at.as_deref() > r.last_delivered_at.as_deref()
    {
        "retrying"
    } else if lag.events > 0 {
        "catching up"
    } else {
        "up to date"
    }
}

fn unknown_sink(config: &Config, name: &str) -> Exit {
    let known: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
    Exit::usage(format!(
        "no sink named `{name}` in the configuration (known: {}); sinks are [sinks.<name>] \
         tables in {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
        config.main_file.display()
    ))
}

fn sink<'c>(config: &'c Config, name: &str) -> Result<&'c SinkConfig, Exit> {
    config.sink(name).ok_or_else(|| unknown_sink(config, name))
}

/// `ordersync sinks [--json]`.
pub async fn list(config: &Config, json_out: bool) -> Result<(), Exit> {
    let store = super::query::open(config).await?;
    let mut rows = Vec::new();
    for cfg in &config.sinks {
        let row = store.sink(&cfg.name).await?;
        let lag = match &row {
            Some(r) => store.sink_lag(r.cursor, &cfg.filter()).await?,
            None => SinkLag::default(),
        };
        rows.push(SinkStatus {
            sink: cfg.name.clone(),
            kind: cfg.kind(),
            destination: cfg.destination(),
            state: state_of(row.as_ref(), lag),
            cursor: row.as_ref().map(|r| r.cursor),
            lag_events: lag.events,
            lag_seconds: lag.seconds,
            delivered: row.as_ref().map_or(0, |r| r.delivered),
            failed_attempts: row.as_ref().map_or(0, |r| r.failed_attempts),
            paused: row.as_ref().is_some_and(|r| r.paused),
            disabled: row.as_ref().and_then(|r| r.disabled.clone()),
            last_error: row.as_ref().and_then(|r| r.last_error.clone()),
            last_error_at: row.as_ref().and_then(|r| r.last_error_at.clone()),
            last_delivered_at: row.as_ref().and_then(|r| r.last_delivered_at.clone()),
        });
    }
    if json_out {
        println!("{}", json!({ "sinks": rows }));
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no sinks configured; add a [sinks.<name>] table to {}",
            config.main_file.display()
        );
        return Ok(());
    }
    print!("{}", table(&rows, Utc::now(), terminal_width()));
    Ok(())
}

fn table(rows: &[SinkStatus], now: chrono::DateTime<Utc>, width: usize) -> String {
    let header = [
        "SINK",
        "KIND",
        "STATE",
        "CURSOR",
        "LAG",
        "OLDEST",
        "DELIVERED",
        "FAILED",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.sink.clone(),
                r.kind.to_string(),
                r.state.to_string(),
                r.cursor.map_or("-".into(), |c| c.to_string()),
                r.lag_events.to_string(),
                if r.lag_events == 0 {
                    "-".into()
                } else {
                    format!("{:.0} s", r.lag_seconds)
                },
                r.delivered.to_string(),
                r.failed_attempts.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            // Names and words left, counts right.
            if i < 3 {
                s.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                s.push_str(&format!("{c:>w$}", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for (r, c) in rows.iter().zip(&cells) {
        out.push_str(&line(c.iter().map(String::as_str).collect()));
        out.push_str(&wrap("  to: ", &r.destination, width));
        if let Some(e) = &r.last_error {
            let when = r
                .last_error_at
                .as_deref()
                .map(|t| age(now, t))
                .unwrap_or_default();
            out.push_str(&wrap(&format!("  last error ({when}): "), e, width));
        }
    }
    out
}

/// `ordersync sinks replay NAME --from ID`.
pub async fn replay(config: &Config, name: &str, from: i64) -> Result<(), Exit> {
    let cfg = sink(config, name)?;
    if from < 1 {
        return Err(Exit::usage(
            "--from takes an event id, 1 or more (`ordersync events` lists them)".into(),
        ));
    }
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
    let row = store.sink_replay(name, from, start_of(cfg)).await?;
    let lag = store.sink_lag(row.cursor, &cfg.filter()).await?;
    let plural = if lag.events == 1 { "" } else { "s" };
    if row.cursor < from - 1 {
        println!(
            "sink {name}: not yet delivered from event {} on, so nothing to deliver again; its \
             {} waiting event{plural} go out in order",
            row.cursor + 1,
            lag.events
        );
    } else {
        println!(
            "sink {name}: delivering again from event {from} on ({} event{plural} of its \
             filter); a running daemon starts within a second",
            lag.events
        );
    }
    Ok(())
}

/// `ordersync sinks pause NAME` and `ordersync sinks resume NAME`.
pub async fn set_paused(config: &Config, name: &str, paused: bool) -> Result<(), Exit> {
    let cfg = sink(config, name)?;
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
    let was = store.sink(name).await?;
    let row = store.sink_set_paused(name, paused, start_of(cfg)).await?;
    if paused {
        println!(
            "sink {name}: paused at event {}; events wait in the database until `ordersync \
             sinks resume {name}`",
            row.cursor
        );
    } else if let Some(reason) = was.and_then(|w| w.disabled) {
        println!("sink {name}: resumed (it was disabled: {reason})");
    } else {
        println!("sink {name}: resumed from event {}", row.cursor + 1);
    }
    Ok(())
}
