//! The daemon's own verify (`verify_schedule`): drift the incremental pass cannot see is found
//! on the schedule, named by `/health` and counted by `ordersync_drift_orders`, and repaired
//! through the change feed once `verify_repair` is switched on by a reload.

use std::time::Duration;

use crate::common::running::*;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_verifies_on_schedule_names_drift_on_health_and_repairs_when_told() {
    let shop = Shop::open("shop-v", 40).await;
    let setup = Setup::new();
    let port = free_port();
    write_main_file(&setup, &setup.db_path(), port, "");
    // No scheduled sync or reconcile (only the catch-up sync at start): whatever reaches the
    // store after it comes through verify.
    let platform = |repair: bool| {
        shop.platform_toml(&format!(
            "schedule = \"0 0 0 1 1 *\"\nreconcile_schedule = \"off\"\n\
             verify_schedule = \"* * * * * *\"\nverify_repair = {repair}"
        ))
    };
    setup.add_platform_file("shop.toml", &platform(false));
    let run = Running::start(&setup, port, Duration::from_secs(30));
    let stored = || {
        setup
            .db()
            .query_row("SELECT count(*) FROM orders", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    eventually(20, "the catch-up sync", || stored() == 40).await;
    run.health_becomes(10, 200, |_| true).await;

    let order = shop
        .sim
        .truth()
        .into_iter()
        .find(|t| t.shipping_status == "awaiting")
        .expect("an order awaiting")
        .id;
    shop.sim.set_status_quietly(order, "in_process");
    run.health_becomes(15, 503, |body| {
        body.contains("shop-v") && body.contains("0 missing and 1 changed")
    })
    .await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ordersync_drift_orders{")
                && l.contains("drift=\"changed\"")
                && l.contains("platform=\"shop-v\"")
                && l.ends_with(" 1")),
        "the drift gauge counts the changed order:\n{metrics}"
    );
    let status = |db: &rusqlite::Connection| -> String {
        db.query_row(
            "SELECT status FROM orders WHERE order_id = ?1",
            [order.to_string()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        status(&setup.db()),
        "pending",
        "a verify without repair writes nothing"
    );

    setup.add_platform_file("shop.toml", &platform(true));
    // SAFETY: a signal to the child process this test started.
    unsafe { libc::kill(run.daemon.id() as i32, libc::SIGHUP) };
    run.health_becomes(15, 200, |_| true).await;
    let db = setup.db();
    assert_eq!(
        status(&db),
        "processing",
        "the repair stored the platform's status"
    );
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM order_events WHERE order_id = '{order}' \
                 AND kind = 'status_changed'"
            )
        ),
        1,
        "the repair is one ordinary status_changed event"
    );
    assert_eq!(events_by_kind(&db, "created"), 40);
}
