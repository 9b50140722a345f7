//! The scenarios, each a function generic over the kind's [`Fixture`]; [`conformance_tests!`]
//! turns them into one `#[tokio::test]` per scenario inside a kind's module.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ordersync::cli::SyncArgs;
use ordersync_sim::Fault;
use rusqlite::Connection;

use super::{Credentials, Fixture};
use crate::common::{Backend, Setup, count, stderr, stdout};

/// Orders per simulator: a few pages on every kind, quick to sync.
const ORDERS: usize = 300;

/// One test per scenario for the fixture `$fixture`, in the module that invokes it, on a SQLite
/// store; and the same again in its `postgres` module on a PostgreSQL store
/// (`conformance::<kind>::postgres::<scenario>`).
macro_rules! conformance_tests {
    ($fixture:ty) => {
        $crate::conformance::scenarios::conformance_tests!(@all $fixture; Sqlite);
        /// The same scenarios with the store on PostgreSQL.
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance::scenarios::conformance_tests!(@all $fixture; Postgres);
        }
    };
    (@all $fixture:ty; $backend:ident) => {
        $crate::conformance::scenarios::conformance_tests!(@tests $fixture; $backend;
            first_sync_equals_the_truth,
            a_no_change_resync_writes_nothing,
            a_status_change_on_an_old_order_is_seen_with_one_event,
            transient_faults_are_retried_and_the_store_still_equals_the_truth,
            a_malformed_record_goes_to_rejects_and_the_rest_is_stored,
            wrong_credentials_fail_the_run_naming_the_platform_and_the_fix,
            secrets_never_appear_in_logs_rejects_or_the_database,
        );
    };
    (@tests $fixture:ty; $backend:ident; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::conformance::scenarios::$scenario::<$fixture>(
                    $crate::common::Backend::$backend,
                )
                .await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

/// A configuration holding one platform file per fixture, with `extra` lines in each.
fn setup_for<F: Fixture>(backend: Backend, platforms: &[(&F, Credentials)], extra: &str) -> Setup {
    let setup = Setup::on(backend);
    for (fixture, credentials) in platforms {
        setup.add_platform_file(
            &format!("{}.toml", fixture.name()),
            &fixture.platform_toml(*credentials, extra),
        );
    }
    setup
}

/// `ordersync sync` as the library runs it; the error as the command would print it.
async fn sync(setup: &Setup, args: SyncArgs<'_>) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), args)
        .await
        .map_err(|e| format!("{:#}", e.error.expect("a failed sync has an error")))
}

fn events(db: &Connection) -> i64 {
    count(db, "SELECT count(*) FROM order_events")
}

fn last_event_id(db: &Connection) -> i64 {
    count(db, "SELECT coalesce(max(id), 0) FROM order_events")
}

/// Every stored order and item, column by column, but for `last_seen_at`, which records that
/// a sync saw the order and so moves on every read.
fn order_rows(db: &Connection) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for (table, skip) in [("orders", Some("last_seen_at")), ("order_items", None)] {
        let mut stmt = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            let mut text = String::new();
            for (i, column) in columns.iter().enumerate() {
                if Some(column.as_str()) != skip {
                    let value: rusqlite::types::Value = row.get(i).unwrap();
                    text.push_str(&format!("{column}={value:?};"));
                }
            }
            // Rows are told apart by their leading key columns (platform, order id, item id).
            let key = text.split(';').take(3).collect::<Vec<_>>().join(";");
            rows.insert(format!("{table}:{key}"), text);
        }
    }
    rows
}

/// Every column of every row of every table, as text.
fn database_text(db: &Connection) -> String {
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut text = String::new();
    for table in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            text.push_str(&table);
            for i in 0..n {
                let value: rusqlite::types::Value = row.get(i).unwrap();
                text.push_str(&format!(" {value:?}"));
            }
            text.push('\n');
        }
    }
    text
}

/// The first sync stores every order exactly as the platform has it, with one `created` event
/// each and no other event.
pub async fn first_sync_equals_the_truth<F: Fixture>(backend: Backend) {
    let shop = F::start("shop", ORDERS).await;
    let setup = setup_for(backend, &[(&shop, Credentials::Right)], "");

    sync(&setup, SyncArgs::default()).await.unwrap();

    let db = setup.db();
    shop.assert_store_equals_truth(&db);
    let truth = shop.truth_len() as i64;
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT order_id) FROM order_events WHERE kind = 'created'"
        ),
        truth,
        "one created event per order"
    );
    assert_eq!(events(&db), truth, "no event but the created ones");
    assert_eq!(count(&db, "SELECT count(*) FROM rejects"), 0);
    shop.assert_requests_as_documented();
}

/// Syncing again when nothing changed on the platform writes no event and changes no stored
/// order or item.
pub async fn a_no_change_resync_writes_nothing<F: Fixture>(backend: Backend) {
    let shop = F::start("shop", ORDERS).await;
    let setup = setup_for(backend, &[(&shop, Credentials::Right)], "");
    sync(&setup, SyncArgs::default()).await.unwrap();
    let db = setup.db();
    let (events_before, rows_before) = (events(&db), order_rows(&db));

    sync(&setup, SyncArgs::default()).await.unwrap();
    sync(
        &setup,
        SyncArgs {
            full: true,
            ..SyncArgs::default()
        },
    )
    .await
    .unwrap();

    let db = setup.db();
    assert_eq!(
        events(&db),
        events_before,
        "no event on an unchanged re-read"
    );
    let rows_after = order_rows(&db);
    assert_eq!(
        rows_after.len(),
        rows_before.len(),
        "no order or item added"
    );
    for (key, before) in &rows_before {
        assert_eq!(rows_after.get(key), Some(before), "{key} was rewritten");
    }
    shop.assert_requests_as_documented();
}

/// A status change on an order placed long before the lookback window is found, by the
/// incremental pass or by reconcile as the kind does it, with exactly one event.
pub async fn a_status_change_on_an_old_order_is_seen_with_one_event<F: Fixture>(backend: Backend) {
    let shop = F::start("shop", ORDERS).await;
    let setup = setup_for(
        backend,
        &[(&shop, Credentials::Right)],
        "lookback = \"15m\"",
    );
    sync(&setup, SyncArgs::default()).await.unwrap();
    let db = setup.db();
    let before = last_event_id(&db);

    let change = shop.change_an_old_orders_status();
    sync(&setup, SyncArgs::default()).await.unwrap();
    let db = setup.db();

    let new_events: Vec<(String, String, Option<String>)> = db
        .prepare("SELECT order_id, kind, new_status FROM order_events WHERE id > ?1")
        .unwrap()
        .query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        new_events,
        [(
            change.order_id.clone(),
            "status_changed".to_string(),
            Some(change.new_status.to_string())
        )],
        "exactly one event, for the changed order"
    );
    shop.assert_store_equals_truth(&db);

    sync(&setup, SyncArgs::default()).await.unwrap();
    let db = setup.db();
    assert_eq!(
        last_event_id(&db),
        before + 1,
        "nothing more on the next sync"
    );
}

/// Server errors, a 429 with `Retry-After`, a timeout, a cut-off body and a dropped connection
/// are each retried, and the store still ends equal to the platform.
pub async fn transient_faults_are_retried_and_the_store_still_equals_the_truth<F: Fixture>(
    backend: Backend,
) {
    let shop = F::start("shop", ORDERS).await;
    let setup = setup_for(backend, &[(&shop, Credentials::Right)], "timeout = \"1s\"");
    // One fault a request, each followed by a normal answer (`Slow(0)`), so every retry starts
    // from the shortest backoff.
    let served = Fault::Slow(Duration::ZERO);
    for fault in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::Slow(Duration::from_secs(3)),
        Fault::MalformedJson,
        Fault::DropConnection,
    ] {
        shop.faults().push(fault);
        shop.faults().push(served.clone());
    }

    let started = Instant::now();
    sync(&setup, SyncArgs::default()).await.unwrap();

    assert_eq!(shop.faults().pending(), 0, "every fault was served");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 429's Retry-After was honoured"
    );
    let db = setup.db();
    shop.assert_store_equals_truth(&db);
    assert_eq!(events(&db), shop.truth_len() as i64, "one event per order");
    assert_eq!(count(&db, "SELECT count(*) FROM rejects"), 0);
}

/// A record that cannot be read is kept in `rejects`, naming where it was; the rest of its page
/// is stored, and the next sync, reading it well, completes the store.
pub async fn a_malformed_record_goes_to_rejects_and_the_rest_is_stored<F: Fixture>(
    backend: Backend,
) {
    let shop = F::start("shop", ORDERS).await;
    let setup = setup_for(backend, &[(&shop, Credentials::Right)], "");
    shop.spoil_one_record();

    let incremental_only = SyncArgs {
        reconcile: false,
        ..SyncArgs::default()
    };
    sync(&setup, incremental_only).await.unwrap();

    let db = setup.db();
    let rejects: Vec<(String, String, String)> = db
        .prepare("SELECT platform, position, reason FROM rejects")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let [(platform, position, reason)] = &rejects[..] else {
        panic!("one reject: {rejects:?}");
    };
    assert_eq!(platform, shop.name());
    assert!(
        position.contains(shop.list_path()) && position.ends_with("record 1"),
        "the reject names its page and record: {position}"
    );
    assert!(!reason.is_empty());
    assert_eq!(
        count(&db, "SELECT count(*) FROM orders"),
        shop.truth_len() as i64 - 1,
        "every other order is stored"
    );

    let full = SyncArgs {
        full: true,
        ..SyncArgs::default()
    };
    sync(&setup, full).await.unwrap();
    let db = setup.db();
    shop.assert_store_equals_truth(&db);
    assert_eq!(events(&db), shop.truth_len() as i64, "one event per order");
}

/// Refused credentials fail the run after one request, with an error that names the platform
/// and the fix and shows no secret; nothing of that platform is stored, and a platform beside it
/// syncs as if alone.
pub async fn wrong_credentials_fail_the_run_naming_the_platform_and_the_fix<F: Fixture>(
    backend: Backend,
) {
    let good = F::start("good-shop", ORDERS).await;
    let bad = F::start("bad-shop", 50).await;
    let setup = setup_for(
        backend,
        &[(&good, Credentials::Right), (&bad, Credentials::Wrong)],
        "",
    );

    let err = sync(&setup, SyncArgs::default()).await.unwrap_err();

    assert!(err.contains("1 platform failed"), "{err}");
    assert!(
        err.contains("bad-shop") && !err.contains("good-shop"),
        "{err}"
    );
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(err.contains("check the auth keys"), "the fix: {err}");
    for secret in bad.secrets() {
        assert!(!err.contains(&secret), "the secret {secret} shows: {err}");
    }
    assert_eq!(bad.request_count(), 1, "no second request after a refusal");
    let db = setup.db();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM orders WHERE platform = 'bad-shop'"
        ),
        0
    );
    good.assert_store_equals_truth(&db);
}

/// The binary at debug level, with a spoilt record and a refused platform on top of a good
/// one: no secret, nor a credential made from one, in its output, its rejects or anywhere in
/// the database.
pub async fn secrets_never_appear_in_logs_rejects_or_the_database<F: Fixture>(backend: Backend) {
    let good = F::start("good-shop", ORDERS).await;
    let bad = F::start("bad-shop", 50).await;
    let setup = setup_for(
        backend,
        &[(&good, Credentials::Right), (&bad, Credentials::Wrong)],
        "",
    );
    setup.write_daemon("shutdown_grace = \"10s\"\nlog_level = \"debug\"\n");
    good.spoil_one_record();

    let (setup, out) = tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        (setup, out)
    })
    .await
    .unwrap();

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let db = setup.db();
    assert_eq!(count(&db, "SELECT count(*) FROM rejects"), 1);
    let places = [
        ("stdout", stdout(&out)),
        ("stderr", stderr(&out)),
        ("the database", database_text(&db)),
    ];
    assert!(
        places[1].1.contains("bad-shop"),
        "the log is there to search: {}",
        places[1].1
    );
    // The database's own password too, when there is one.
    let db_password = setup
        .pg
        .as_ref()
        .map(|_| crate::common::postgres::PASSWORD.to_string());
    for secret in good
        .secrets()
        .into_iter()
        .chain(bad.secrets())
        .chain(db_password)
    {
        for (place, text) in &places {
            assert!(!text.contains(&secret), "{secret:?} leaked in {place}");
        }
    }
}
