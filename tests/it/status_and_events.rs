//! What an operator reads: `status` as a table that fits 100 columns (ages, right-aligned
//! numbers, no value cut in the middle) beside `status --json` with full RFC 3339 timestamps,
//! and `events --follow --json` streaming one JSON document per line as events arrive.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;
use ordersync_sim::fleet::{Fleet, NAMES};
use serde_json::Value;

/// A fleet of every kind synced once, with Akinon refusing its credentials so one platform
/// carries a long error.
async fn synced_fleet() -> (Fleet, Setup) {
    let fleet = Fleet::start(40).await.unwrap();
    let setup = Setup::new();
    for (file, toml) in fleet.platform_files("max_requests_per_second = 10000\n") {
        let toml = if file.starts_with("demo-akinon") {
            toml.replace("demo-akinon-api-token", "revoked-akinon-token")
        } else {
            toml
        };
        setup.add_platform_file(&file, &toml);
    }
    let setup = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        setup
    })
    .await
    .unwrap();
    (fleet, setup)
}

fn status_text(setup: &Setup, columns: Option<&str>) -> String {
    let mut cmd = setup.command(&["status"]);
    cmd.env_remove("COLUMNS");
    if let Some(c) = columns {
        cmd.env("COLUMNS", c);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn status_json(setup: &Setup) -> Value {
    let out = setup.ordersync(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn platform_json<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == name)
        .unwrap_or_else(|| panic!("{name} not in {json}"))
}

fn row<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{text}"))
}

/// The text after `last error:` and its continuation lines, joined with single spaces.
fn wrapped_error(text: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("last error:"));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no last error in:\n{text}"));
    let mut words: Vec<&str> = first
        .trim_start()
        .trim_start_matches("last error:")
        .split_whitespace()
        .collect();
    for l in lines.take_while(|l| l.starts_with("      ")) {
        words.extend(l.split_whitespace());
    }
    words.join(" ")
}

/// Whether `text` holds an RFC 3339 timestamp (a table should show ages instead).
fn has_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(11).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == b'-'
            && w[8..10].iter().all(u8::is_ascii_digit)
            && w[10] == b'T'
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fits_100_columns_with_ages_right_aligned_numbers_and_no_value_cut() {
    let (_fleet, setup) = synced_fleet().await;
    let text = status_text(&setup, None);
    let json = status_json(&setup);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "a line wider than 100 columns ({}):\n{text}",
            line.chars().count()
        );
    }
    assert!(!has_timestamp(&text), "timestamps instead of ages:\n{text}");
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("PLATFORM"), "{text}");
    assert!(
        header.contains("KIND"),
        "100 columns leave room for KIND:\n{text}"
    );
    for name in NAMES {
        let r = row(&text, name);
        let p = platform_json(&json, name);
        assert!(r.contains(" ago") || r.contains("just now"), "{r}");
        // Each count ends exactly where its heading ends.
        for (heading, key) in [
            ("ORDERS", "orders"),
            ("OPEN", "open_orders"),
            ("PENDING", "outbox_pending"),
            ("FAILED", "outbox_failed"),
        ] {
            let end = header.find(heading).unwrap() + heading.len();
            let value = p[key].to_string();
            assert_eq!(
                r.get(end - value.len()..end),
                Some(value.as_str()),
                "{heading} of {name} is not {value} right-aligned under its heading:\n{text}"
            );
            assert!(
                r[..end - value.len()].ends_with(' '),
                "{heading} of {name}:\n{text}"
            );
        }
    }
    let after_akinon: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("demo-akinon "))
        .collect();
    assert_eq!(
        after_akinon.get(1).map(|l| l.trim()),
        Some("last success: never"),
        "{text}"
    );
    let outcome = &platform_json(&json, "demo-akinon")["last_run"];
    assert_eq!(outcome["outcome"], "failed");
    let error = outcome["error"].as_str().unwrap();
    assert_eq!(
        wrapped_error(&text),
        error.split_whitespace().collect::<Vec<_>>().join(" "),
        "the error is wrapped between words, whole:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_an_80_column_terminal_drops_kind_and_still_cuts_nothing() {
    let (_fleet, setup) = synced_fleet().await;
    let text = status_text(&setup, Some("80"));
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80:\n{text}");
    }
    assert!(!text.lines().next().unwrap().contains("KIND"), "{text}");
    let json = status_json(&setup);
    for name in NAMES {
        let orders = platform_json(&json, name)["orders"].to_string();
        assert!(
            row(&text, name).split_whitespace().any(|w| w == orders),
            "{name}'s {orders} orders are not in:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_gives_full_rfc3339_timestamps() {
    let (_fleet, setup) = synced_fleet().await;
    let json = status_json(&setup);
    for name in NAMES {
        let p = platform_json(&json, name);
        let run = &p["last_run"];
        for t in [&run["started_at"], &run["finished_at"]] {
            let t = t.as_str().unwrap_or_else(|| panic!("{name}: {p}"));
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap_or_else(|e| panic!("{name}: `{t}` is not RFC 3339: {e}"));
        }
        if name != "demo-akinon" {
            let t = p["last_success_at"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_json_streams_one_document_per_line_as_events_arrive() {
    let shop = Shop::open("shop", 30).await;
    let setup = Setup::new();
    setup.add_platform_file("shop.toml", &shop.platform_toml(""));
    let setup = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        setup
    })
    .await
    .unwrap();
    let before = count(&setup.db(), "SELECT max(id) FROM order_events");

    let mut cmd = setup.command(&["events", "--follow", "--json"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut follower = Daemon(cmd.spawn().unwrap());
    let (tx, rx) = mpsc::channel::<String>();
    let pipe = follower.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line within 10 s while waiting for {what}"));
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("`{line}` is not one JSON document: {e}"))
    };
    // The backlog first, one document per event, while the follower keeps running.
    for id in 1..=before {
        assert_eq!(next("the backlog")["id"], id);
    }
    // A change made now reaches the reader live, not when the follower exits.
    let order = shop.sim.truth()[0].id;
    shop.sim.set_status(order, "cancelled");
    let setup = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        setup
    })
    .await
    .unwrap();
    let event = next("the status change");
    assert!(event["id"].as_i64().unwrap() > before, "{event}");
    assert_eq!(event["order_id"], order.to_string());
    assert_eq!(event["new_status"], "cancelled");
    assert!(
        follower.0.try_wait().unwrap().is_none(),
        "--follow keeps running"
    );
    drop(setup);
}
