//! The real binary under abuse: SIGKILL at random moments of a long sync must converge to the
//! simulator's truth with no lost order and no duplicate event; SIGTERM stops `run` cleanly;
//! `check` reports every configuration error at once with its file and key.

use std::time::Duration;

use crate::common::*;
use rand::RngExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_long_sync_at_random_moments_converges_without_loss_or_duplicates() {
    let shop = Shop::open("shop-ro", 12_000).await;
    let setup = Setup::new();
    // 20 pages a second: a full pass takes about six seconds, more than eight kills at 0.15 to
    // 1.2 s apart add up to, so most rounds are killed mid-pass. (At 40 pages a second the pass
    // could finish in the fourth round and the rounds after it end before their kill.)
    setup.add_platform_file(
        "shop-ro.toml",
        &shop.platform_toml("").replace(
            "max_requests_per_second = 1000",
            "max_requests_per_second = 20",
        ),
    );
    let mut rng = rand::rng();
    let mut kills = 0;
    for round in 0..8 {
        let mut child = setup.command(&["sync", "--no-reconcile"]).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..1200))).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
        // The shop keeps trading between crashes.
        shop.sim.add_orders(3);
        // ... and an old open order moves on (only reconcile can see that).
        if let Some(o) = shop
            .sim
            .truth()
            .into_iter()
            .filter(|o| o.shipping_status == "awaiting")
            .nth(round)
        {
            shop.sim.set_status(o.id, "confirmed");
        }
    }
    assert!(kills >= 4, "the test killed mid-sync ({kills} kills)");

    // Clean runs until the store has caught up. The simulator stamps orders added faster than
    // one a second ahead of the wall clock, and an order stamped after a pass's frozen upper
    // bound belongs to a later pass; a lost order would never arrive and fail the bound here.
    let truth = shop.sim.truth();
    let db = setup.db();
    for run in 0.. {
        let out = setup.ordersync(&["sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        if count(&db, "SELECT count(*) FROM orders") as usize == truth.len() || run == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_store_matches(&db, "shop-ro", &truth);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM (SELECT order_id FROM order_events WHERE kind = 'created' GROUP BY order_id HAVING count(*) > 1)"
        ),
        0,
        "no order was created twice"
    );
    assert_eq!(
        events_by_kind(&db, "created"),
        truth.len() as i64,
        "every order created once"
    );
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_cleanly_and_the_pass_resumes_later() {
    let shop = Shop::open("shop-ro", 8000).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "shop-ro.toml",
        &shop.platform_toml("schedule = \"0 0 3 * * *\"").replace(
            "max_requests_per_second = 1000",
            "max_requests_per_second = 20",
        ),
    );
    let mut child = Daemon::spawn(setup.command(&["run"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped within shutdown_grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let db = setup.db();
    let stored = count(&db, "SELECT count(*) FROM orders");
    assert!(
        stored > 0 && stored < 8000,
        "stopped mid-pass ({stored} stored)"
    );
    let resume: Option<String> = db
        .query_row("SELECT resume FROM sync_state", [], |r| r.get(0))
        .unwrap();
    assert!(resume.is_some(), "the interrupted pass left its checkpoint");

    let out = setup.ordersync(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_store_matches(&db, "shop-ro", &shop.sim.truth());
    assert_eq!(events_by_kind(&db, "created"), 8000);
}

#[test]
fn check_reports_every_error_at_once_with_file_and_key() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    std::fs::write(
        dir.join("platforms.d/a-typo.toml"),
        "[platforms.typo]\nkind = \"merchantpro\"\nbase_url = \"https://shop.example.ro\"\nshedule = \"0 * * * * *\"\n\
         [platforms.typo.auth]\napi_key = \"k\"\napi_secret = \"s\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("platforms.d/b-cron.toml"),
        "[platforms.cron]\nkind = \"merchantpro\"\nbase_url = \"https://shop.example.ro\"\nschedule = \"every tuesday\"\n\
         [platforms.cron.auth]\napi_key = \"k\"\napi_secret = \"s\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("platforms.d/c-kind.toml"),
        "[platforms.kind]\nkind = \"shopify\"\nbase_url = \"https://shop.example.com\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("platforms.d/d-secret.toml"),
        "[platforms.secret]\nkind = \"merchantpro\"\nbase_url = \"https://shop.example.ro\"\n\
         [platforms.secret.auth]\napi_key = \"k\"\napi_secret_file = \"/nonexistent/shop-secret\"\n",
    )
    .unwrap();

    let out = setup.ordersync(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    let line_with = |needle: &str| {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no error line mentions {needle}:\n{err}"))
            .to_string()
    };
    let typo = line_with("shedule");
    assert!(
        typo.contains("a-typo.toml") && typo.contains("platforms.typo"),
        "{typo}"
    );
    let cron = line_with("platforms.cron.schedule");
    assert!(cron.contains("b-cron.toml"), "{cron}");
    let kind = line_with("platforms.kind.kind");
    assert!(
        kind.contains("c-kind.toml") && kind.contains("shopify"),
        "{kind}"
    );
    let secret = line_with("platforms.secret.auth.api_secret");
    assert!(
        secret.contains("d-secret.toml") && secret.contains("/nonexistent/shop-secret"),
        "{secret}"
    );
}

#[test]
fn check_accepts_the_shipped_example_configuration() {
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/ordersync.toml"
        ))
        .env_remove("ORDERSYNC_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let out = std::process::Command::new(BIN)
        .args(["sync", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
