//! Mitrabunso beyond the conformance suite, through the library the daemon runs: status changes
//! across the four listings, a malformed record on the SENT listing, a refused user id beside a
//! refused token, offset paging while orders arrive, the early stop of the SENT scan, times,
//! string numbers and superseding fields, orders that leave the documented statuses, and the
//! example configuration file. The fixture the conformance suite drives (`Account`, the store
//! comparison) lives here too.

use ordersync::cli::SyncArgs;
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use crate::common::{Setup, count, events_by_kind};
use chrono::{NaiveDateTime, TimeZone, Utc};
use ordersync_sim::mitrabunso::{MitrabunsoSim, SimOptions, TruthOrder};
use ordersync_sim::{Fault, RecordedRequest, RunningSim};
use rusqlite::Connection;
use rust_decimal::Decimal;

/// A simulated Mitrabunso account on loopback.
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) sim: MitrabunsoSim,
    pub(crate) server: RunningSim,
}

impl Account {
    pub(crate) async fn open(name: &str, orders: usize) -> Account {
        Account::open_with(
            name,
            SimOptions {
                orders,
                ..SimOptions::default()
            },
        )
        .await
    }

    /// Orders placed over the last `orders × 90 s`.
    async fn open_with(name: &str, opts: SimOptions) -> Account {
        let spacing = chrono::Duration::seconds(90);
        let sim = MitrabunsoSim::new(SimOptions {
            start: Utc::now() - spacing * (opts.orders as i32 + 10),
            spacing,
            ..opts
        });
        let server = sim.serve().await.expect("simulator starts");
        Account {
            name: name.to_string(),
            sim,
            server,
        }
    }

    /// The platform file for this account; `extra` lines go inside `[platforms.<name>]`.
    pub(crate) fn platform_toml(&self, extra: &str) -> String {
        self.platform_toml_named(&self.name, extra)
    }

    fn platform_toml_named(&self, name: &str, extra: &str) -> String {
        let o = SimOptions::default();
        format!(
            "[platforms.{name}]\nkind = \"mitrabunso\"\nbase_url = \"{url}\"\n\
             max_requests_per_second = 1000\n{extra}\n\
             [platforms.{name}.auth]\nuser_id = \"{user}\"\ntoken = \"{token}\"\n",
            url = self.server.base_url(),
            user = o.user_id,
            token = o.token,
        )
    }

    /// Requests received after the first `mark`.
    fn requests_since(&self, mark: usize) -> Vec<RecordedRequest> {
        self.sim.requests().split_off(mark)
    }
}

async fn sync(setup: &Setup) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), SyncArgs::default())
        .await
        .map_err(|e| format!("{:#}", e.error.expect("an error")))
}

fn lists(requests: &[RecordedRequest], status: &str) -> usize {
    requests
        .iter()
        .filter(|r| {
            r.path_and_query.starts_with("/public/order/orders/list/")
                && r.path_and_query.ends_with(&format!("?status={status}"))
        })
        .count()
}

fn details_requests(requests: &[RecordedRequest]) -> usize {
    requests
        .iter()
        .filter(|r| {
            r.path_and_query
                .starts_with("/public/order/orders/details/")
        })
        .count()
}

/// The canonical status each documented Mitrabunso status maps to.
pub(crate) fn canonical(status: &str) -> &'static str {
    match status {
        "DRAFT" => "pending",
        "NEW" => "accepted",
        "PROCESSED" => "processing",
        "SENT" => "shipped",
        other => panic!("{other} has no documented canonical status"),
    }
}

/// Asserts the store holds exactly the simulator's orders, field by field and item by item.
pub(crate) fn assert_store_matches(conn: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = count(
        conn,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    assert_eq!(stored as usize, truth.len(), "number of stored orders");
    for t in truth {
        assert_order_matches(conn, platform, t);
    }
}

fn assert_order_matches(conn: &Connection, platform: &str, t: &TruthOrder) {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Row = conn
        .query_row(
            "SELECT number, status, platform_status, total, currency, customer_name, tracking_number
             FROM orders WHERE platform = ?1 AND order_id = ?2",
            [platform, t.id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap_or_else(|e| panic!("order {} not stored: {e}", t.id));
    let id = &t.id;
    assert_eq!(row.0, t.number, "number of {id}");
    assert_eq!(row.1, canonical(&t.status), "status of {id}");
    assert_eq!(row.2, t.status, "platform status of {id}");
    assert_eq!(Decimal::from_str(&row.3).unwrap(), t.total, "total of {id}");
    assert_eq!(row.3, t.total.normalize().to_string(), "total text of {id}");
    assert_eq!(row.4, t.currency, "currency of {id}");
    assert_eq!(
        row.5.as_deref(),
        Some(t.customer_name.trim()),
        "customer of {id}"
    );
    assert_eq!(row.6, t.tracking_number, "tracking number of {id}");

    let mut stmt = conn
        .prepare_cached(
            "SELECT item_id, sku, name, quantity, unit_price, status FROM order_items
             WHERE platform = ?1 AND order_id = ?2 ORDER BY CAST(item_id AS INTEGER)",
        )
        .unwrap();
    type Item = (
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    );
    let items: Vec<Item> = stmt
        .query_map([platform, id.as_str()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items.len(), t.items.len(), "items of {id}");
    for (i, (stored, want)) in items.iter().zip(&t.items).enumerate() {
        assert_eq!(
            stored.0,
            (i + 1).to_string(),
            "item ids are positions ({id})"
        );
        assert_eq!(
            stored.1.as_deref(),
            Some(want.product_id.as_str()),
            "sku of {id}/{i}"
        );
        assert_eq!(
            stored.2.as_deref(),
            Some(want.name.trim()),
            "name of {id}/{i}"
        );
        assert_eq!(
            Decimal::from_str(&stored.3).unwrap(),
            want.qty,
            "quantity of {id}/{i}"
        );
        let price = stored.4.as_deref().map(|p| Decimal::from_str(p).unwrap());
        assert_eq!(price, Some(want.price), "unit price of {id}/{i}");
        assert_eq!(stored.5, None, "Mitrabunso items have no status ({id}/{i})");
    }
}

fn events_after(conn: &Connection, before: i64, kind: &str) -> i64 {
    count(
        conn,
        &format!("SELECT count(*) FROM order_events WHERE id > {before} AND kind = '{kind}'"),
    )
}

fn max_event(conn: &Connection) -> i64 {
    count(conn, "SELECT coalesce(max(id), 0) FROM order_events")
}

fn orders_created_twice(conn: &Connection) -> i64 {
    count(
        conn,
        "SELECT count(*) FROM (SELECT platform, order_id FROM order_events WHERE kind = 'created'
         GROUP BY platform, order_id HAVING count(*) > 1)",
    )
}

/// The oldest orders of a status in the simulator: the ones deepest in its listings.
fn oldest(truth: &[TruthOrder], status: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = truth
        .iter()
        .filter(|t| t.status == status)
        .take(n)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(ids.len(), n, "the simulator has {n} {status} orders");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_on_old_orders_and_new_orders_give_exactly_one_event_each() {
    let account = Account::open("bunso", 1500).await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml("lookback = \"1m\""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = max_event(&db);

    // The oldest orders, placed more than a day before the sync: nothing recent about them,
    // and the ones moving on to SENT land at the far end of the SENT listing.
    let truth = account.sim.truth();
    let moves: Vec<(String, &str)> = [
        ("DRAFT", "NEW", 3),
        ("NEW", "PROCESSED", 3),
        ("PROCESSED", "SENT", 5),
        ("NEW", "SENT", 2),
        ("DRAFT", "PROCESSED", 1),
    ]
    .into_iter()
    .scan(HashSet::new(), |taken, (from, to, n)| {
        let ids: Vec<(String, &str)> = truth
            .iter()
            .filter(|t| t.status == from && !taken.contains(&t.id))
            .take(n)
            .map(|t| (t.id.clone(), to))
            .collect();
        assert_eq!(ids.len(), n, "{n} {from} orders to move");
        taken.extend(ids.iter().map(|(id, _)| id.clone()));
        Some(ids)
    })
    .flatten()
    .collect();
    for (id, to) in &moves {
        account.sim.set_status(id, to);
    }
    let new = account.sim.add_orders(7);

    sync(&setup).await.unwrap();
    assert_eq!(
        events_after(&db, before, "status_changed"),
        moves.len() as i64
    );
    assert_eq!(events_after(&db, before, "created"), new.len() as i64);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        (moves.len() + new.len()) as i64,
        "nothing but those"
    );
    for (id, to) in &moves {
        let (n, new_status, changes): (i64, String, String) = db
            .query_row(
                "SELECT count(*), max(new_status), max(changes) FROM order_events
                 WHERE order_id = ?1 AND kind = 'status_changed'",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, new_status.as_str()), (1, canonical(to)), "order {id}");
        assert!(changes.contains("platform_status"), "{changes}");
    }
    assert_store_matches(&db, "bunso", &account.sim.truth());

    sync(&setup).await.unwrap();
    assert_eq!(
        max_event(&db) - before,
        (moves.len() + new.len()) as i64,
        "nothing more on a third sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_is_kept_in_rejects_and_the_rest_of_its_page_is_stored() {
    let account = Account::open_with(
        "bunso",
        SimOptions {
            orders: 250,
            statuses: vec![(1, "SENT".to_owned())],
            ..SimOptions::default()
        },
    )
    .await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    // The three open lists are empty and read first; the fourth request is SENT's first page.
    account.sim.faults().push_n(Fault::Slow(Duration::ZERO), 3);
    account.sim.faults().push(Fault::MalformedRecord);

    sync(&setup).await.unwrap();
    let db = setup.db();
    let (position, reason, raw): (String, String, String) = db
        .query_row("SELECT position, reason, raw FROM rejects", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM rejects"), 1);
    assert!(
        position.contains("status=SENT") && position.ends_with("record 1"),
        "{position}"
    );
    assert!(!reason.is_empty());
    assert!(raw.contains(r#""order_id":{"oops":true}"#), "{raw}");
    // The second newest order is the broken one; the other 99 of its page are in.
    let truth = account.sim.truth();
    let broken = &truth[truth.len() - 2].id;
    assert_eq!(count(&db, "SELECT count(*) FROM orders"), 249);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM orders WHERE order_id = '{broken}'")
        ),
        0
    );

    // The record is fine again: the next sync completes the store.
    sync(&setup).await.unwrap();
    assert_store_matches(&db, "bunso", &truth);
    assert_eq!(events_by_kind(&db, "created"), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_fail_naming_the_platform_after_one_request_without_the_token() {
    let good = Account::open("good-bunso", 200).await;
    let bad_token = Account::open("bad-token", 50).await;
    let bad_user = Account::open("bad-user", 50).await;
    let setup = Setup::new();
    setup.add_platform_file("good.toml", &good.platform_toml(""));
    setup.add_platform_file(
        "bad-token.toml",
        &bad_token
            .platform_toml("")
            .replace("demo-mitrabunso-token", "wrong-secret-token"),
    );
    let other_user = "00000000-0000-4000-8000-000000000000";
    setup.add_platform_file(
        "bad-user.toml",
        &bad_user
            .platform_toml("")
            .replace(&SimOptions::default().user_id, other_user),
    );

    let err = sync(&setup).await.unwrap_err();
    assert!(err.contains("2 platforms failed"), "{err}");
    for line in err.lines().skip(1) {
        assert!(
            line.contains("bad-token") || line.contains("bad-user"),
            "each failure names its platform: {line}"
        );
        assert!(line.contains("credentials"), "{line}");
    }
    assert!(!err.contains("good-bunso"), "{err}");
    assert!(
        !err.contains("wrong-secret-token"),
        "the token never appears: {err}"
    );
    assert_eq!(bad_token.sim.request_count(), 1, "no hammering after a 401");
    assert_eq!(bad_user.sim.request_count(), 1, "no hammering after a 401");

    let db = setup.db();
    assert_store_matches(&db, "good-bunso", &good.sim.truth());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM orders WHERE platform LIKE 'bad-%'"
        ),
        0
    );
    let run_errors: String = db
        .query_row(
            "SELECT group_concat(error, ' | ') FROM sync_runs WHERE outcome = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!run_errors.contains("wrong-secret-token"), "{run_errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_paging_while_orders_arrive_at_the_head_loses_none_and_duplicates_none() {
    // Every listing is several whole pages long: each scan is paged while it shifts, and a
    // client that trusted the first page's `total` would stop a page short of the shifted tail.
    let account = Account::open_with(
        "bunso",
        SimOptions {
            orders: 300,
            statuses: vec![(1, "SENT".to_owned())],
            ..SimOptions::default()
        },
    )
    .await;
    for (n, status) in [(200, "PROCESSED"), (200, "NEW"), (200, "DRAFT")] {
        account.sim.add_orders_with_status(n, status);
    }
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    let before_sync: HashSet<String> = account.sim.order_ids().into_iter().collect();
    account.sim.insert_after_each_page(3);

    sync(&setup).await.unwrap();
    let db = setup.db();
    let stored: HashSet<String> = db
        .prepare("SELECT order_id FROM orders")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let lost: Vec<&String> = before_sync.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "orders listed before the sync were lost: {lost:?}"
    );
    let arrived = account.sim.order_ids().len() - before_sync.len();
    assert!(arrived >= 30, "orders arrived during the scan ({arrived})");
    assert_eq!(orders_created_twice(&db), 0, "no order created twice");
    assert_eq!(events_by_kind(&db, "created"), stored.len() as i64);
    assert_eq!(
        count(&db, "SELECT count(*) FROM order_events"),
        stored.len() as i64
    );
    for t in account
        .sim
        .truth()
        .iter()
        .filter(|t| stored.contains(&t.id))
    {
        assert_order_matches(&db, "bunso", t);
    }

    account.sim.insert_after_each_page(0);
    sync(&setup).await.unwrap();
    let truth = account.sim.truth();
    assert_store_matches(&db, "bunso", &truth);
    assert_eq!(orders_created_twice(&db), 0, "no order created twice");
    assert_eq!(events_by_kind(&db, "created"), truth.len() as i64);
    assert_eq!(
        count(&db, "SELECT count(*) FROM order_events"),
        truth.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_of_a_large_sent_shop_reads_one_sent_page_and_one_of_overlap() {
    let account = Account::open_with(
        "bunso",
        SimOptions {
            orders: 2000,
            statuses: vec![(1, "SENT".to_owned())],
            ..SimOptions::default()
        },
    )
    .await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    sync(&setup).await.unwrap();
    let first = account.sim.requests();
    assert_eq!(lists(&first, "SENT"), 20, "the first sync reads SENT whole");

    let mark = account.sim.request_count();
    sync(&setup).await.unwrap();
    // The reconcile's look-ups of orders sent within final_watch (`q=`, at most 200 a pass)
    // come on top of the scans; their own test counts them.
    let second: Vec<RecordedRequest> = account
        .requests_since(mark)
        .into_iter()
        .filter(|r| !r.path_and_query.contains("q="))
        .collect();
    assert_eq!(
        lists(&second, "SENT"),
        2,
        "one SENT page plus one of overlap"
    );
    for open in ["DRAFT", "NEW", "PROCESSED"] {
        assert_eq!(
            lists(&second, open),
            1,
            "{open} is read whole (it is empty)"
        );
    }
    assert_eq!(second.len(), 5, "and nothing else: {second:?}");
    let db = setup.db();
    assert_eq!(count(&db, "SELECT count(*) FROM order_events"), 2000);

    // New shipments at the head are read, and the scan still stops two known pages later.
    account.sim.add_orders_with_status(150, "SENT");
    let mark = account.sim.request_count();
    sync(&setup).await.unwrap();
    assert_eq!(lists(&account.requests_since(mark), "SENT"), 4);
    assert_store_matches(&db, "bunso", &account.sim.truth());
    assert_eq!(events_by_kind(&db, "created"), 2150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_without_a_zone_are_read_as_utc_plus_7_unless_timezone_says_otherwise() {
    let account = Account::open("bunso", 300).await;
    let setup = Setup::new();
    // Two platforms reading the same account, one with the default zone, one told UTC.
    setup.add_platform_file("bunso.toml", &account.platform_toml_named("wib", ""));
    setup.add_platform_file(
        "bunso-utc.toml",
        &account.platform_toml_named("utc", "timezone = \"+00:00\""),
    );
    sync(&setup).await.unwrap();
    let db = setup.db();
    let stored = |platform: &str, id: &str| -> (String, String) {
        db.query_row(
            "SELECT placed_at, updated_at FROM orders WHERE platform = ?1 AND order_id = ?2",
            [platform, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let as_utc = |naive: &str, hours: i64| {
        let n = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S").unwrap();
        let t = Utc.from_utc_datetime(&n) - chrono::Duration::hours(hours);
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let truth = account.sim.truth();
    for t in &truth {
        let latest = [
            Some(&t.created_at),
            t.processed_at.as_ref(),
            t.sent_at.as_ref(),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap();
        assert_eq!(
            stored("wib", &t.id),
            (as_utc(&t.created_at, 7), as_utc(latest, 7)),
            "{} read as UTC+7",
            t.created_at
        );
        assert_eq!(
            stored("utc", &t.id),
            (as_utc(&t.created_at, 0), as_utc(latest, 0)),
            "{} read as UTC",
            t.created_at
        );
    }
    assert!(truth.iter().any(|t| t.sent_at.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_sent_as_text_are_read_and_updated_awb_and_invoice_supersede_the_originals() {
    let account = Account::open("bunso", 600).await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    assert_eq!(
        count(&db, "SELECT count(*) FROM rejects"),
        0,
        "no record was refused"
    );
    // The records with text numbers are stored and equal the truth (checked field by field).
    for quirk in [
        r#""qty":"%"#,
        r#""shippingCost":"%"#,
        r#""totalCost":"%"#,
        r#""productPrice":"%"#,
    ] {
        let n = count(
            &db,
            &format!("SELECT count(*) FROM orders WHERE raw LIKE '%{quirk}'"),
        );
        assert!(n > 10, "{quirk} occurs in {n} records");
    }
    let truth = account.sim.truth();
    assert_store_matches(&db, "bunso", &truth);

    let filled = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.trim().is_empty());
    let mut seen = [0; 4];
    for t in &truth {
        let number: String = db
            .query_row(
                "SELECT number FROM orders WHERE order_id = ?1",
                [&t.id],
                |r| r.get(0),
            )
            .unwrap();
        if filled(&t.updated_invoice) {
            assert_eq!(Some(&number), t.updated_invoice.as_ref());
            seen[0] += usize::from(t.updated_invoice.as_ref() != Some(&t.invoice));
        } else {
            assert_eq!(number, t.invoice);
            seen[1] += 1;
        }
        let tracking: Option<String> = db
            .query_row(
                "SELECT tracking_number FROM orders WHERE order_id = ?1",
                [&t.id],
                |r| r.get(0),
            )
            .unwrap();
        if filled(&t.updated_awb) {
            assert_eq!(tracking, t.updated_awb);
            seen[2] += usize::from(t.updated_awb != t.awb);
        } else {
            assert_eq!(tracking, t.awb.clone().filter(|a| !a.is_empty()));
            seen[3] += usize::from(t.awb.is_some());
        }
    }
    assert!(seen.iter().all(|n| *n > 5), "every case occurs: {seen:?}");

    // A booking changed on an open order: one `updated` event naming the tracking number.
    let open = oldest(&truth, "NEW", 1).remove(0);
    let before = max_event(&db);
    account.sim.set_updated_awb(&open, "JP9999999999");
    account.sim.set_updated_invoice(&open, "INV-REISSUED-1");
    sync(&setup).await.unwrap();
    assert_eq!(events_after(&db, before, "updated"), 1);
    assert_eq!(max_event(&db) - before, 1);
    let changes: String = db
        .query_row(
            "SELECT changes FROM order_events WHERE id > ?1",
            [before],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        changes.contains("JP9999999999") && changes.contains("INV-REISSUED-1"),
        "{changes}"
    );
    assert_store_matches(&db, "bunso", &account.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_open_order_costs_one_lookup_not_a_whole_sent_scan() {
    let account = Account::open("bunso", 1200).await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let sent_pages = lists(&account.sim.requests(), "SENT");
    assert!(sent_pages >= 8, "SENT is {sent_pages} pages long");
    let gone = oldest(&account.sim.truth(), "NEW", 1).remove(0);
    account.sim.delete_order(&gone);
    let before = max_event(&db);

    let mark = account.sim.request_count();
    sync(&setup).await.unwrap();
    let second = account.requests_since(mark);
    assert_eq!(details_requests(&second), 1, "{second:?}");
    assert_eq!(
        lists(&second, "SENT"),
        4,
        "two pages past the stop point, then the lookup"
    );
    assert_eq!(
        max_event(&db),
        before,
        "no event: the platform reported no change"
    );
    let status: String = db
        .query_row(
            "SELECT platform_status FROM orders WHERE order_id = ?1",
            [&gone],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "NEW", "kept as last seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_moved_to_undocumented_statuses_are_found_and_mapped_by_status_map_or_unknown() {
    let account = Account::open("bunso", 1200).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "bunso.toml",
        &account.platform_toml("status_map = { returned = \"returned\" }"),
    );
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = max_event(&db);
    let old = oldest(&account.sim.truth(), "NEW", 2);
    account.sim.set_status(&old[0], "CANCELLED");
    account.sim.set_status(&old[1], "RETURNED");

    let mark = account.sim.request_count();
    sync(&setup).await.unwrap();
    assert_eq!(details_requests(&account.requests_since(mark)), 2);
    assert_eq!(events_after(&db, before, "status_changed"), 2);
    assert_eq!(max_event(&db) - before, 2);
    let stored = |id: &str| -> (String, String) {
        db.query_row(
            "SELECT status, platform_status FROM orders WHERE order_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(stored(&old[0]), ("unknown".into(), "CANCELLED".into()));
    assert_eq!(stored(&old[1]), ("returned".into(), "RETURNED".into()));

    // Stored with their new statuses, they are nobody's missing open orders any more.
    let mark = account.sim.request_count();
    sync(&setup).await.unwrap();
    let third = account.requests_since(mark);
    assert_eq!((details_requests(&third), lists(&third, "SENT")), (0, 2));
    assert_eq!(max_event(&db) - before, 2);
}

#[test]
fn the_example_platform_file_loads_beside_the_example_main_file() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("platforms.d")).unwrap();
    std::fs::copy(
        repo.join("ordersync.toml"),
        dir.path().join("ordersync.toml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("platforms.d/mitrabunso-example.toml"),
        dir.path().join("platforms.d/mitrabunso-example.toml"),
    )
    .unwrap();
    let config = ordersync::config::load_with_env(
        &dir.path().join("ordersync.toml"),
        ordersync::platforms::kinds(),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.platforms.len(), 1);
    let p = &config.platforms[0];
    assert_eq!(p.kind, ordersync::platforms::mitrabunso::DESCRIPTOR.kind);
    assert!(p.auth.get("user_id").is_some() && p.auth.get("token").is_some());
    assert_eq!(p.timezone.map(|z| z.local_minus_utc()), Some(7 * 3600));
    // The connector accepts it as written (credentials, URL, page size).
    let connector = ordersync::platforms::Connector::new(
        p,
        &ordersync::http::Redactor::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    assert!(
        connector.is_ok(),
        "{:?}",
        connector.err().map(|e| e.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_air_waybill_on_an_order_already_sent_is_found_by_reconcile_with_one_event() {
    let account = Account::open("bunso", 600).await;
    let setup = Setup::new();
    setup.add_platform_file("bunso.toml", &account.platform_toml(""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let sent: Vec<String> = account
        .sim
        .truth()
        .into_iter()
        .filter(|t| t.status == "SENT")
        .map(|t| t.id)
        .collect();
    assert!(!sent.is_empty(), "the shop has sent orders");
    let before = max_event(&db);
    account.sim.set_updated_awb(&sent[0], "AWB-REISSUED-1");

    // One search per sent order inside final_watch, 200 a pass, the least recently read
    // first: the change is found within ⌈sent ÷ 200⌉ passes.
    let tracking_of = |db: &Connection| -> String {
        db.query_row(
            "SELECT tracking_number FROM orders WHERE platform = 'bunso' AND order_id = ?1",
            [&sent[0]],
            |r| r.get(0),
        )
        .unwrap()
    };
    let per_pass = ordersync::platforms::mitrabunso::SENT_PER_PASS;
    let mut passes = 0;
    while tracking_of(&db) != "AWB-REISSUED-1" {
        passes += 1;
        assert!(
            passes <= sent.len().div_ceil(per_pass),
            "the new air waybill is found within {} passes",
            sent.len().div_ceil(per_pass)
        );
        let mark = account.sim.request_count();
        sync(&setup).await.unwrap();
        let requests = account.requests_since(mark);
        let searches = requests
            .iter()
            .filter(|r| r.path_and_query.contains("q="))
            .count();
        eprintln!(
            "pass {passes} over {} sent orders: {searches} searches, {} requests in all",
            sent.len(),
            requests.len()
        );
        assert!(searches <= per_pass, "{searches} searches in one pass");
    }
    assert_eq!(events_after(&db, before, "updated"), 1);
    assert_eq!(max_event(&db) - before, 1, "nothing else is written");
}
