//! What the store promises on PostgreSQL beyond what one process can show, driven through the
//! public `Store` methods with two handles standing for two daemons on one database: event ids
//! commit in id order (a reader of `id > N` never skips an event committed late), two drains
//! never claim one outbox entry, concurrent queueing for one order queues once, the instance id
//! stays, a lost connection is a fault naming the server that clears by itself, a daemon whose
//! server is down at start exits saying so, and the configuration refuses a password in the
//! URL.

use std::time::Duration;

use chrono::Utc;
use ordersync::model::{Action, Incoming, Order, PageWrite, Params, RejectRecord, Status};
use ordersync::store::{EnqueueError, Store};

use crate::common::postgres::{PASSWORD, PgDb, server};
use crate::common::{Setup, stderr};

async fn open(db: &PgDb) -> Store {
    Store::open_database(&db.database(), Duration::from_secs(5))
        .await
        .unwrap()
}

fn order(id: &str, number: &str, status: Status) -> Order {
    Order {
        order_id: id.into(),
        number: number.into(),
        status,
        platform_status: status.as_str().into(),
        placed_at: Some(Utc::now()),
        updated_at: None,
        currency: None,
        total: None,
        customer_name: None,
        tracking_number: None,
        items: Vec::new(),
    }
}

fn page(platform: &str, orders: Vec<Order>) -> PageWrite {
    PageWrite {
        platform: platform.into(),
        orders: orders
            .into_iter()
            .map(|o| {
                let raw = format!("{{\"id\":\"{}\",\"s\":\"{}\"}}", o.order_id, o.status);
                Incoming::new(o, raw)
            })
            .collect(),
        rejects: Vec::new(),
        checkpoint: None,
    }
}

/// Two writers, the one that took the lower event id committing last, and a reader reading in
/// between: without the event-id lock the reader sees the higher id, moves its cursor past it,
/// and never sees the lower one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_of_events_after_its_cursor_never_skips_an_event_committed_late() {
    let db = server().database();
    let (first, second) = (open(&db).await, open(&db).await);
    let mut gate = ordersync::store::hooks::hold_next_page_commit("slow");
    let slow = {
        let s = first.clone();
        tokio::spawn(async move {
            s.apply_page(page("slow", vec![order("1", "1", Status::Pending)]))
                .await
        })
    };
    // The slow page has inserted its event (taking the lower id) and waits before its commit.
    gate.reached().await;
    let fast = {
        let s = second.clone();
        tokio::spawn(async move {
            s.apply_page(page("fast", vec![order("2", "2", Status::Pending)]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut seen: Vec<i64> = second
        .events_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let cursor = seen.iter().copied().max().unwrap_or(0);
    gate.release();
    slow.await.unwrap().unwrap();
    fast.await.unwrap().unwrap();
    seen.extend(
        second
            .events_after(cursor, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id),
    );
    let all: Vec<i64> = second
        .events_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 2);
    assert_eq!(
        seen, all,
        "the reader following its cursor saw every event, in id order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_drains_never_claim_the_same_entry() {
    let db = server().database();
    let (a, b) = (open(&db).await, open(&db).await);
    let orders: Vec<Order> = (0..40)
        .map(|i| order(&i.to_string(), &format!("N{i}"), Status::Processing))
        .collect();
    a.apply_page(page("shop", orders)).await.unwrap();
    let now = Utc::now();
    for i in 0..40 {
        a.enqueue(
            "shop",
            &i.to_string(),
            Action::Status(Status::Shipped),
            &Params::default(),
            now,
            |_, _| Ok::<(), ()>(()),
        )
        .await
        .unwrap();
    }
    let mut claimed = Vec::new();
    for _ in 0..10 {
        let later = Utc::now() + chrono::TimeDelta::seconds(1);
        let (x, y) = tokio::join!(
            a.claim_due("shop", later, Duration::from_secs(60), 3),
            b.claim_due("shop", later, Duration::from_secs(60), 3)
        );
        claimed.extend(x.unwrap().into_iter().map(|e| e.id));
        claimed.extend(y.unwrap().into_iter().map(|e| e.id));
    }
    let mut unique = claimed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        claimed.len(),
        "an entry claimed twice: {claimed:?}"
    );
    assert_eq!(unique.len(), 40, "every entry claimed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_queueing_for_one_order_queues_once() {
    let db = server().database();
    let (a, b) = (open(&db).await, open(&db).await);
    a.apply_page(page("shop", vec![order("7", "N-7", Status::Processing)]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.enqueue(
                "shop",
                "N-7",
                Action::Status(Status::Shipped),
                &Params::default(),
                Utc::now(),
                // A slow check: every queueing is between its look at the order and its insert
                // at once, unless the order's lock keeps them apart.
                |_, _| {
                    std::thread::sleep(Duration::from_millis(100));
                    Ok::<(), ()>(())
                },
            )
            .await
        }));
    }
    let (mut queued, mut duplicates) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => queued += 1,
            Err(EnqueueError::Duplicate { .. }) => duplicates += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((queued, duplicates), (1, 11));
    assert_eq!(a.order_outbox("shop", "7").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_instance_id_is_made_once_and_kept() {
    let db = server().database();
    let id = open(&db).await.instance_id().await.unwrap();
    assert_eq!(id.len(), 12);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(open(&db).await.instance_id().await.unwrap(), id);
}

/// The SQLite unit tests' promises, on PostgreSQL: an order is found by its id before another
/// order by its number, and a reject naming its order is kept once and cleared when the order
/// is stored.
#[tokio::test]
async fn ids_win_over_numbers_and_a_reject_is_cleared_by_its_order() {
    let db = server().database();
    let store = open(&db).await;
    store
        .apply_page(page(
            "shop",
            vec![
                order("7", "100", Status::Pending),
                order("100", "555", Status::Pending),
            ],
        ))
        .await
        .unwrap();
    let found = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_order("shop", key)
                .await
                .unwrap()
                .map(|o| o.order_id)
        }
    };
    assert_eq!(found("100").await.as_deref(), Some("100"));
    assert_eq!(found("555").await.as_deref(), Some("100"));
    assert_eq!(found("7").await.as_deref(), Some("7"));
    assert_eq!(found("nope").await, None);

    let reject = |position: &str, order_id: Option<&str>| RejectRecord {
        position: position.into(),
        reason: "bad time".into(),
        raw: "{}".into(),
        order_id: order_id.map(str::to_string),
    };
    for rejects in [
        vec![reject("p1 record 1", Some("9"))],
        vec![
            reject("p1 record 2", Some("9")),
            reject("p1 record 3", None),
        ],
    ] {
        let mut p = page("shop", Vec::new());
        p.rejects = rejects;
        store.apply_page(p).await.unwrap();
    }
    let rows = || {
        let db = db.snapshot();
        let mut stmt = db
            .prepare("SELECT order_id, position FROM rejects ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<(Option<String>, String)>, _>>()
            .unwrap()
    };
    assert_eq!(
        rows(),
        [
            (Some("9".into()), "p1 record 2".into()),
            (None, "p1 record 3".into())
        ]
    );
    store
        .apply_page(page("shop", vec![order("9", "9", Status::Pending)]))
        .await
        .unwrap();
    assert_eq!(rows(), [(None, "p1 record 3".into())]);
}

/// The server dropping every connection (a restart, a failover) is a fault naming the server
/// and the fix, never the password; the next write takes a new connection and succeeds.
#[tokio::test]
async fn a_lost_connection_is_a_fault_naming_the_server_that_clears_by_itself() {
    let db = server().database();
    let store = open(&db).await;
    store.start_run("shop", "sync", Utc::now()).await.unwrap();
    db.execute(&[&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    )]);
    let err = store
        .start_run("shop", "sync", Utc::now())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(
        err.db_fault(),
        Some(ordersync::store::DbFault::Connection),
        "{text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{}", db.port)), "{text}");
    assert!(text.contains(&db.name), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(store.fault().is_some());
    store.start_run("shop", "sync", Utc::now()).await.unwrap();
    assert_eq!(store.fault(), None);
}

/// `ordersync check` refuses a password written into the URL, naming the key to use instead
/// and never repeating the password, and reports the other errors beside it.
#[test]
fn check_refuses_a_password_in_the_database_url() {
    let setup = Setup::new();
    std::fs::write(
        setup.main_file(),
        "[daemon]\ndatabase = \"postgres://orders:hunter2-secret@db.example.com/shop?sslmode=prefer\"\n\
         push_interval = \"soon\"\n",
    )
    .unwrap();
    let out = setup.ordersync(&["check"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("daemon.database_password_file"), "{err}");
    assert!(err.contains("sslmode=prefer"), "{err}");
    assert!(err.contains("daemon.push_interval"), "every error: {err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A daemon started while its PostgreSQL server is down exits at once, naming the server, the
/// check to run and who starts it again, rather than hanging in systemd's start-up.
#[test]
fn a_daemon_whose_server_is_down_at_start_exits_naming_it() {
    let setup = Setup::new();
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        setup.main_file(),
        "[daemon]\ndatabase = \"postgres://orders@127.0.0.1:1/shop\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = setup.ordersync(&["run"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    for said in [
        "127.0.0.1:1",
        "pg_isready -h 127.0.0.1 -p 1",
        "starts it again",
    ] {
        assert!(err.contains(said), "{said:?} missing from: {err}");
    }
}

/// TLS as `sslmode` says: `verify-full` with the server's CA named by `sslrootcert` connects,
/// `verify-full` trusting only the system's roots refuses the test CA's certificate, and
/// `require` encrypts without checking it.
#[tokio::test]
async fn tls_follows_sslmode() {
    let s = server();
    let Some(ca) = s.ca_file() else {
        panic!("the test server has no TLS: the openssl command is missing");
    };
    let db = s.database();
    let url = |params: &str| {
        format!(
            "postgres://{}@localhost:{}/{}?{params}",
            crate::common::postgres::USER,
            db.port,
            db.name
        )
    };
    let open_url = |u: String| async move {
        let mut t = ordersync::config::parse_postgres_url(&u).unwrap();
        t.password = Some(PASSWORD.into());
        Store::open_database(
            &ordersync::config::Database::Postgres(t),
            Duration::from_secs(5),
        )
        .await
    };
    let checked = open_url(url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.display()
    )))
    .await
    .unwrap();
    assert_eq!(checked.instance_id().await.unwrap().len(), 12);
    let err = open_url(url("sslmode=verify-full"))
        .await
        .err()
        .expect("a certificate from an unknown CA is refused");
    assert_eq!(
        err.db_fault(),
        Some(ordersync::store::DbFault::Tls),
        "{err}"
    );
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(err.to_string().contains("sslrootcert"), "the fix: {err}");
    let encrypted = open_url(url("sslmode=require")).await.unwrap();
    assert_eq!(
        encrypted.instance_id().await.unwrap(),
        checked.instance_id().await.unwrap()
    );
}

/// Daemons starting together on a new database: the schema is made once (the migration lock),
/// every one of them opens, and all see one instance id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_on_a_new_database_migrate_it_once() {
    let db = server().database();
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let target = db.database();
            tokio::spawn(async move {
                Store::open_database(&target, Duration::from_secs(5))
                    .await
                    .unwrap()
                    .instance_id()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for o in opens {
        ids.push(o.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

/// A query command on a PostgreSQL database no daemon has used yet says what to do, as it does
/// for a SQLite file that does not exist yet.
#[test]
fn a_query_before_the_first_run_says_to_sync_first() {
    let setup = Setup::on(crate::common::Backend::Postgres);
    let out = setup.ordersync(&["status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no ordersync tables yet"), "{err}");
    assert!(err.contains("ordersync sync"), "{err}");
}

/// A URL naming a Unix socket's folder (`?host=/run/postgresql` on a Debian server) connects
/// without TLS, by default.
#[tokio::test]
async fn a_unix_socket_url_connects() {
    let s = server();
    let db = s.database();
    let url = format!(
        "postgres://{}@/{}?host={}&port={}",
        crate::common::postgres::USER,
        db.name,
        s.socket_dir().display(),
        db.port
    );
    let target = ordersync::config::parse_postgres_url(&url).unwrap();
    assert_eq!(target.sslmode, ordersync::config::SslMode::Disable);
    let store = Store::open_database(
        &ordersync::config::Database::Postgres(target),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(store.location().contains("?host=/"), "{}", store.location());
    assert_eq!(store.instance_id().await.unwrap().len(), 12);
}
