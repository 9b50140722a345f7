//! One shop of every kind in one configuration: `ordersync sync` brings all five up to date in
//! one run, a platform that fails does not stop the other four, and `ordersync demo` shows all
//! five kinds.

use crate::common::*;
use ordersync_sim::fleet::{Fleet, NAMES};

fn stored_per_platform(setup: &Setup) -> Vec<(String, i64)> {
    let db = setup.db();
    NAMES
        .iter()
        .map(|n| {
            let c: i64 = db
                .query_row(
                    "SELECT count(*) FROM orders WHERE platform = ?1",
                    [n],
                    |r| r.get(0),
                )
                .unwrap();
            (n.to_string(), c)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_brings_a_shop_of_each_kind_up_to_date() {
    let fleet = Fleet::start(300).await.unwrap();
    let setup = Setup::new();
    for (file, toml) in fleet.platform_files("max_requests_per_second = 10000\n") {
        setup.add_platform_file(&file, &toml);
    }
    let setup = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        setup
    })
    .await
    .unwrap();
    let expected: Vec<(String, i64)> = fleet
        .order_counts()
        .iter()
        .map(|(n, c)| (n.to_string(), *c as i64))
        .collect();
    assert_eq!(stored_per_platform(&setup), expected);
    let db = setup.db();
    assert_eq!(
        events_by_kind(&db, "created"),
        expected.iter().map(|(_, c)| c).sum::<i64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_with_wrong_credentials_fails_alone_and_is_named() {
    let fleet = Fleet::start(150).await.unwrap();
    let setup = Setup::new();
    for (file, toml) in fleet.platform_files("max_requests_per_second = 10000\n") {
        let toml = if file.starts_with("demo-akinon") {
            toml.replace("demo-akinon-api-token", "revoked-akinon-token")
        } else {
            toml
        };
        setup.add_platform_file(&file, &toml);
    }
    let (setup, out) = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        (setup, out)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let summary = err
        .lines()
        .skip_while(|l| !l.contains("platform failed"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(summary.contains("demo-akinon"), "{err}");
    for other in [
        "demo-merchantpro",
        "demo-sirclo",
        "demo-mitrabunso",
        "demo-epixel",
    ] {
        assert!(!summary.contains(other), "{other} did not fail: {summary}");
    }
    assert!(
        !err.contains("revoked-akinon-token"),
        "no secret in the output"
    );
    let counts: std::collections::BTreeMap<String, i64> =
        stored_per_platform(&setup).into_iter().collect();
    assert_eq!(counts["demo-akinon"], 0);
    for (name, truth) in fleet.order_counts() {
        if name != "demo-akinon" {
            assert_eq!(counts[name], truth as i64, "{name}");
        }
    }
}

#[test]
fn the_demo_runs_for_a_set_time_and_shows_orders_of_all_five_kinds() {
    let out = std::process::Command::new(BIN)
        .args(["demo", "--for", "20s", "--orders", "200"])
        .env_remove("ORDERSYNC_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let summary = text
        .split("demo: summary")
        .nth(1)
        .unwrap_or_else(|| panic!("a summary is printed:\n{text}"));
    // Counts are right-aligned under their heading.
    let header = summary
        .lines()
        .find(|l| l.starts_with("PLATFORM"))
        .unwrap_or_else(|| panic!("a table heading in the summary:\n{summary}"));
    let end = header.find("ORDERS").unwrap() + "ORDERS".len();
    for name in NAMES {
        let line = summary
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in the summary:\n{summary}"));
        let orders: u64 = line[..end]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        assert!(orders >= 200, "{name} has its orders: {line}");
    }
    assert!(summary.contains("push_confirmed"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_platform_and_names_refused_credentials() {
    let fleet = Fleet::start(50).await.unwrap();
    let setup = Setup::new();
    for (file, toml) in fleet.platform_files("max_requests_per_second = 10000\n") {
        let toml = if file.starts_with("demo-sirclo") {
            toml.replace("demo-sirclo-secret", "wrong-sirclo-secret")
        } else {
            toml
        };
        setup.add_platform_file(&file, &toml);
    }
    let out = tokio::task::spawn_blocking(move || setup.ordersync(&["doctor", "--json"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for p in report["platforms"].as_array().unwrap() {
        let name = p["platform"].as_str().unwrap();
        let steps: Vec<(&str, bool)> = p["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["step"].as_str().unwrap(), c["ok"].as_bool().unwrap()))
            .collect();
        let names: Vec<&str> = steps.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            names,
            ["dns", "tcp", "http", "credentials", "first page", "mapping"][..names.len()],
            "{name}"
        );
        if name == "demo-sirclo" {
            assert_eq!(steps.last(), Some(&("credentials", false)), "{p}");
            assert!(p["first_record"].as_array().unwrap().is_empty());
        } else {
            assert!(
                steps.iter().all(|(_, ok)| *ok) && steps.len() == 6,
                "{name}: {p}"
            );
            let first = p["first_record"].as_array().unwrap();
            assert_eq!(
                first[0]["field"], "order_id",
                "{name}: the first record is shown"
            );
            assert!(!first[0]["value"].as_str().unwrap().is_empty(), "{name}");
        }
    }
    assert!(!stdout(&out).contains("wrong-sirclo-secret"));
}
