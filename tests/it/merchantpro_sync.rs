//! MerchantPro beyond the conformance suite, through the library the daemon runs: many status
//! changes and new orders at once found by reconcile, the exit code of the sync command, and
//! the paging quirks (an ignored page parameter, capped pages, a next link to another host).

use ordersync::cli::SyncArgs;
use std::time::{Duration, Instant};

use crate::common::*;

async fn sync(setup: &Setup) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), SyncArgs::default())
        .await
        .map_err(|e| format!("{:#}", e.error.expect("an error")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_on_old_orders_and_new_orders_give_one_event_each() {
    let shop = Shop::open("shop-ro", 600).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml("lookback = \"15m\""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = count(&db, "SELECT max(id) FROM order_events");

    // Old open orders, created long before the lookback window: only reconcile can see them.
    let open: Vec<u64> = shop
        .sim
        .truth()
        .into_iter()
        .filter(|o| {
            matches!(
                o.shipping_status.as_str(),
                "awaiting" | "confirmed" | "in_process"
            )
        })
        .map(|o| o.id)
        .take(25)
        .collect();
    assert!(open.len() >= 10, "the simulator has open orders to change");
    for id in &open {
        shop.sim.set_status(*id, "shipped");
    }
    let new = shop.sim.add_orders(7);

    sync(&setup).await.unwrap();
    let after = |kind: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before} AND kind = '{kind}'"),
        )
    };
    assert_eq!(after("status_changed"), open.len() as i64);
    assert_eq!(after("created"), new.len() as i64);
    assert_eq!(after("updated"), 0);
    for id in &open {
        let (old, new_status, changes): (String, String, String) = db
            .query_row(
                "SELECT old_status, new_status, changes FROM order_events
                 WHERE order_id = ?1 AND kind = 'status_changed'",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_ne!(old, "shipped");
        assert_eq!(new_status, "shipped");
        assert!(changes.contains("platform_status"), "{changes}");
    }
    assert_store_matches(&db, "shop-ro", &shop.sim.truth());

    sync(&setup).await.unwrap();
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        open.len() as i64 + new.len() as i64,
        "nothing more on a third sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_command_exits_1_naming_the_failed_platform() {
    let bad = Shop::open("bad-shop", 10).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "bad.toml",
        &bad.platform_toml("").replace("demo-secret", "wrong-secret"),
    );
    let out = tokio::task::spawn_blocking(move || {
        let o = setup.ordersync(&["sync"]);
        drop(setup);
        o
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad-shop"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-secret"));
}

/// `ordersync sync` through the real binary, off the runtime's workers (the simulator serves
/// on them). A pass still going after 30 s is killed and the test fails: a platform that never
/// lets a pass end is one of the things tested here.
async fn sync_binary(setup: &Setup) -> std::process::Output {
    let mut cmd = setup.command(&["sync"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`ordersync sync` still running after 30 s:\n{}",
                stderr(&out)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.wait_with_output().unwrap()
}

fn list_requests(shop: &Shop) -> usize {
    shop.sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path_and_query.starts_with("/api/v2/orders?"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_ignores_its_paging_parameter_fails_the_pass_within_a_few_requests() {
    let shop = Shop::open("shop-ro", 3).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    shop.sim
        .set_paging(ordersync_sim::merchantpro::Paging::IgnoresStart);

    let started = Instant::now();
    let out = sync_binary(&setup).await;
    let requests = list_requests(&shop);
    eprintln!(
        "no-progress pass stopped after {requests} list requests in {:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "the pass fails: {}", stdout(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("shop-ro") && said.contains("already read in this pass"),
        "the error names the platform and what it did: {said}"
    );
    assert!(requests <= 3, "stopped after {requests} list requests");
    assert_eq!(
        count(&setup.db(), "SELECT count(*) FROM orders"),
        3,
        "what was read is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_caps_its_pages_below_the_limit_is_read_whole() {
    let shop = Shop::open("shop-ro", 250).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml("page_size = 100"));
    shop.sim
        .set_paging(ordersync_sim::merchantpro::Paging::CapsPagesAt(10));

    let out = sync_binary(&setup).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let db = setup.db();
    assert_store_matches(&db, "shop-ro", &shop.sim.truth());
    assert_eq!(events_by_kind(&db, "created"), 250);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("page_size = 10"),
        "the operator hears that the platform caps its pages: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_host_fails_the_pass_and_the_fixed_platform_syncs_without_full() {
    let shop = Shop::open("shop-ro", 250).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml("page_size = 100"));
    shop.sim
        .set_paging(ordersync_sim::merchantpro::Paging::NextLinkTo(
            "http://127.0.0.2:9".into(),
        ));

    let out = sync_binary(&setup).await;
    assert!(!out.status.success());
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("127.0.0.2:9") && !said.contains("HTTP 0"),
        "the error says which link was refused, not an HTTP status never received: {said}"
    );

    shop.sim
        .set_paging(ordersync_sim::merchantpro::Paging::AsDocumented);
    let out = sync_binary(&setup).await;
    assert!(
        out.status.success(),
        "the fixed platform syncs with a plain `sync`: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_store_matches(&setup.db(), "shop-ro", &shop.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_after_delivery_is_found_by_reconcile_with_one_event() {
    // An order an hour for 20 days: most were placed long before the incremental window.
    let spacing = chrono::Duration::hours(1);
    let start = chrono::Utc::now() - spacing * 490;
    let sim =
        ordersync_sim::merchantpro::MerchantProSim::new(ordersync_sim::merchantpro::SimOptions {
            orders: 480,
            start,
            spacing,
            ..Default::default()
        });
    let server = sim.serve().await.unwrap();
    let shop = Shop {
        name: "shop-ro".into(),
        sim,
        server,
        start,
    };
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = count(&db, "SELECT max(id) FROM order_events");
    let delivered = shop
        .sim
        .truth()
        .into_iter()
        .find(|t| {
            t.shipping_status == "delivered"
                && chrono::DateTime::parse_from_rfc3339(&t.date_created)
                    .is_ok_and(|d| d < chrono::Utc::now() - chrono::Duration::days(10))
        })
        .expect("an order delivered more than ten days ago");
    shop.sim.set_status(delivered.id, "returned");

    sync(&setup).await.unwrap();
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM order_events WHERE id > {before} AND order_id = '{}' \
                 AND kind = 'status_changed'",
                delivered.id
            )
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        1,
        "nothing else is written"
    );
    assert_store_matches(&db, "shop-ro", &shop.sim.truth());
}
