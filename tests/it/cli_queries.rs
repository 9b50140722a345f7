//! The read and operator commands, through the real binary:
//! `orders` filters, `order` by id or number, `events --after`, and `outbox retry` / `cancel`.

use crate::common::*;
use ordersync::cli::SyncArgs;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

async fn synced_shop(orders: usize) -> (Shop, Setup) {
    let shop = Shop::open("shop-ro", orders).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    ordersync::cli::sync(
        setup.config(),
        SyncArgs {
            reconcile: false,
            ..SyncArgs::default()
        },
    )
    .await
    .unwrap();
    (shop, setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_order_and_events_answer_from_the_store() {
    let (shop, setup) = synced_shop(120).await;
    let truth = shop.sim.truth();
    let delivered = truth
        .iter()
        .filter(|o| o.shipping_status == "delivered")
        .count();
    let setup = tokio::task::spawn_blocking(move || {
        let all = json(&setup.ordersync(&["orders", "--json", "--limit", "1000"]));
        assert_eq!(all["orders"].as_array().unwrap().len(), 120);
        let done = json(&setup.ordersync(&[
            "orders",
            "--status",
            "delivered",
            "--json",
            "--limit",
            "1000",
        ]));
        let done = done["orders"].as_array().unwrap();
        assert_eq!(done.len(), delivered);
        assert!(done.iter().all(|o| o["status"] == "delivered"));
        let bad = setup.ordersync(&["orders", "--status", "sent"]);
        assert_eq!(
            bad.status.code(),
            Some(2),
            "an unknown status is a usage error"
        );
        setup
    })
    .await
    .unwrap();

    let first = &truth[0];
    let (setup, one) = tokio::task::spawn_blocking(move || {
        let one = json(&setup.ordersync(&["order", "shop-ro", &first_id(&setup), "--json"]));
        (setup, one)
    })
    .await
    .unwrap();
    assert_eq!(one["order"]["order_id"], first.id.to_string());
    assert_eq!(one["items"].as_array().unwrap().len(), first.line_items);
    assert_eq!(one["events"][0]["kind"], "created");

    // The change feed, after a cursor: only later events, in id order.
    shop.sim.set_status(first.id, "cancelled");
    let before: i64 = count(&setup.db(), "SELECT max(id) FROM order_events");
    ordersync::cli::sync(
        setup.config(),
        SyncArgs {
            full: true,
            reconcile: false,
            ..SyncArgs::default()
        },
    )
    .await
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        setup.ordersync(&["events", "--after", &before.to_string(), "--json"])
    })
    .await
    .unwrap();
    let feed = json(&out);
    let events = feed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{feed}");
    assert!(events[0]["id"].as_i64().unwrap() > before);
    assert_eq!(events[0]["kind"], "status_changed");
    assert_eq!(events[0]["order_id"], first.id.to_string());
    assert_eq!(events[0]["new_status"], "cancelled");
}

/// The smallest stored order id (ids are same-length digits, so text order is numeric order).
fn first_id(setup: &Setup) -> String {
    setup
        .db()
        .query_row("SELECT min(order_id) FROM orders", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_retry_and_cancel_act_only_on_entries_they_may_touch() {
    let (shop, setup) = synced_shop(60).await;
    let awaiting: Vec<String> = shop
        .sim
        .truth()
        .into_iter()
        .filter(|o| o.shipping_status == "awaiting")
        .take(2)
        .map(|o| o.id.to_string())
        .collect();
    assert_eq!(awaiting.len(), 2, "the simulator has awaiting orders");
    let db = setup.db();
    // One entry failed earlier, one still pending.
    for (order, state) in [(&awaiting[0], "failed"), (&awaiting[1], "pending")] {
        db.execute(
            "INSERT INTO outbox (platform, order_id, action, state, attempts, last_error)
             VALUES ('shop-ro', ?1, 'cancelled', ?2, 10, 'HTTP 503')",
            rusqlite::params![order, state],
        )
        .unwrap();
    }
    let row = |id: i64| -> (String, i64) {
        db.query_row(
            "SELECT state, attempts FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let run = |args: &'static [&'static str]| {
        let out = setup.ordersync(args);
        (out.status.code(), stderr(&out))
    };
    assert_eq!(run(&["outbox", "retry", "1"]).0, Some(0));
    assert_eq!(
        row(1),
        ("pending".to_string(), 0),
        "a retried entry gets a fresh budget"
    );
    let (code, err) = run(&["outbox", "retry", "2"]);
    assert_eq!(code, Some(1), "a pending entry cannot be retried");
    assert!(err.contains("pending"), "{err}");
    assert_eq!(run(&["outbox", "cancel", "2"]).0, Some(0));
    assert_eq!(row(2).0, "cancelled");
    db.execute("UPDATE outbox SET state = 'done' WHERE id = 1", [])
        .unwrap();
    let (code, err) = run(&["outbox", "cancel", "1"]);
    assert_eq!(code, Some(1), "a done entry cannot be cancelled");
    assert!(err.contains("done"), "{err}");
    let (code, err) = run(&["outbox", "cancel", "99"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no outbox entry #99"), "{err}");
    let listed = json(&setup.ordersync(&["outbox", "--state", "cancelled", "--json"]));
    assert_eq!(listed["outbox"].as_array().unwrap().len(), 1);
}
