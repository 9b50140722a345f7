//! SIRCLO beyond the conformance suite, through the library the daemon runs: a large first sync
//! with both spellings of cancelled, many status changes found by the reconcile rescan and its
//! windows, refused credentials with the MAC kept out of the error, the MAC as the platform
//! checks it, and the shipped example file. The fixture the conformance suite drives
//! (`Account`, the store comparison) lives here too.

use ordersync::cli::SyncArgs;
use std::collections::BTreeSet;

use crate::common::{Setup, count, events_by_kind};
use chrono::{DateTime, Utc};
use ordersync::platforms::sirclo::{self, sign};
use ordersync_sim::RunningSim;
use ordersync_sim::sirclo::{SimOptions, SircloSim, TruthOrder};
use rusqlite::Connection;

/// A simulated SIRCLO partner account on loopback.
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) sim: SircloSim,
    pub(crate) server: RunningSim,
    pub(crate) start: DateTime<Utc>,
}

impl Account {
    /// An account whose `orders` were placed `spacing` apart, the newest ten spacings ago.
    pub(crate) async fn open(name: &str, orders: usize, spacing: chrono::Duration) -> Account {
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let sim = SircloSim::new(SimOptions {
            orders,
            start,
            spacing,
            ..SimOptions::default()
        });
        let server = sim.serve().await.expect("simulator starts");
        Account {
            name: name.to_string(),
            sim,
            server,
            start,
        }
    }

    /// The platform file; `extra` lines go inside `[platforms.<name>]`.
    pub(crate) fn platform_toml(&self, extra: &str) -> String {
        let o = SimOptions::default();
        format!(
            "[platforms.{name}]\nkind = \"sirclo\"\nbase_url = \"{url}\"\n\
             backfill_from = \"{from}\"\nmax_requests_per_second = 1000\n{extra}\n\
             [platforms.{name}.auth]\npartner_id = \"{partner}\"\nsecret = \"{secret}\"\n",
            name = self.name,
            url = self.server.base_url(),
            from = (self.start - chrono::Duration::days(2)).to_rfc3339(),
            partner = o.partner_id,
            secret = o.secret,
        )
    }

    fn setup(&self, extra: &str) -> Setup {
        let setup = Setup::new();
        setup.add_platform_file(&format!("{}.toml", self.name), &self.platform_toml(extra));
        setup
    }

    fn truth_of(&self, id: u64) -> TruthOrder {
        self.sim.truth().into_iter().find(|t| t.id == id).unwrap()
    }
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// `ordersync sync` (all platforms) as the library runs it.
async fn sync(setup: &Setup) -> Result<(), String> {
    run_sync(setup, SyncArgs::default()).await
}

/// The incremental pass alone (`sync --no-reconcile`).
async fn sync_without_reconcile(setup: &Setup) -> Result<(), String> {
    let args = SyncArgs {
        reconcile: false,
        ..SyncArgs::default()
    };
    run_sync(setup, args).await
}

async fn run_sync(setup: &Setup, args: SyncArgs<'_>) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), args)
        .await
        .map_err(|e| format!("{:#}", e.error.expect("an error")))
}

/// The canonical status each SIRCLO status text maps to.
pub(crate) fn canonical(platform_status: &str) -> &'static str {
    match platform_status {
        "pending" => "pending",
        "accepted" => "accepted",
        "packed" => "shipped",
        "completed" => "delivered",
        "canceled" | "cancelled" => "cancelled",
        other => panic!("simulator status {other} has no canonical mapping in the test"),
    }
}

/// The platform status one step further along, for changes the canonical status must show.
pub(crate) fn next_status(platform_status: &str) -> &'static str {
    match platform_status {
        "pending" => "accepted",
        "accepted" => "packed",
        "packed" => "completed",
        other => panic!("{other} is not open"),
    }
}

pub(crate) fn is_open(t: &TruthOrder) -> bool {
    matches!(t.status.as_str(), "pending" | "accepted" | "packed")
}

/// An order's stored status, canonical and as the platform wrote it.
#[derive(Debug, PartialEq, Eq)]
struct StoredStatus {
    status: String,
    platform_status: String,
}

impl StoredStatus {
    fn new(status: &str, platform_status: &str) -> StoredStatus {
        StoredStatus {
            status: status.to_string(),
            platform_status: platform_status.to_string(),
        }
    }
}

fn status_of(db: &Connection, platform: &str, id: u64) -> StoredStatus {
    db.query_row(
        "SELECT status, platform_status FROM orders WHERE platform = ?1 AND order_id = ?2",
        rusqlite::params![platform, id.to_string()],
        |r| {
            Ok(StoredStatus {
                status: r.get(0)?,
                platform_status: r.get(1)?,
            })
        },
    )
    .unwrap()
}

fn events_after(db: &Connection, before: i64, kind: &str) -> i64 {
    count(
        db,
        &format!("SELECT count(*) FROM order_events WHERE id > {before} AND kind = '{kind}'"),
    )
}

/// Asserts the store holds exactly the simulator's orders, field by field, items included, and
/// that each raw record kept `updatedAt` byte for byte.
pub(crate) fn assert_store_matches(db: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = count(
        db,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    assert_eq!(stored as usize, truth.len(), "number of stored orders");
    let mut order = db
        .prepare(
            "SELECT number, status, platform_status, total, currency, customer_name,
                    tracking_number, json_extract(raw, '$.updatedAt')
             FROM orders WHERE platform = ?1 AND order_id = ?2",
        )
        .unwrap();
    let mut items = db
        .prepare("SELECT item_id, status FROM order_items WHERE platform = ?1 AND order_id = ?2")
        .unwrap();
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );
    for t in truth {
        let id = t.id.to_string();
        let row: Row = order
            .query_row(rusqlite::params![platform, id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap_or_else(|e| panic!("order {id} not stored: {e}"));
        assert_eq!(row.0, t.number, "number of {id}");
        assert_eq!(row.1, canonical(&t.status), "status of {id}");
        assert_eq!(row.2, t.status, "platform status of {id}");
        assert_eq!(row.3, t.total.normalize().to_string(), "total of {id}");
        assert_eq!(row.4, t.currency, "currency of {id}");
        let name = Some(t.delivery_name.clone()).filter(|n| !n.is_empty());
        assert_eq!(row.5, name, "customer of {id}");
        assert_eq!(row.6, t.airwaybill_number, "tracking number of {id}");
        assert_eq!(row.7, t.updated_at, "raw updatedAt of {id}");
        let stored: Vec<(String, Option<String>)> = items
            .query_map(rusqlite::params![platform, id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let stored_ids: BTreeSet<&str> = stored.iter().map(|(i, _)| i.as_str()).collect();
        let truth_ids: BTreeSet<&str> = t.item_ids.iter().map(String::as_str).collect();
        assert_eq!(stored.len(), t.items, "item count of {id}");
        assert_eq!(stored_ids, truth_ids, "item ids of {id}");
        assert!(
            stored.iter().all(|(_, s)| s.is_none()),
            "SIRCLO items have no status of their own ({id})"
        );
    }
}

/// `since` of a recorded list request.
fn since_of(path_and_query: &str) -> DateTime<Utc> {
    let since = path_and_query
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("since="))
        .unwrap_or_else(|| panic!("no since in {path_and_query}"));
    DateTime::parse_from_rfc3339(since)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_of_2000_orders_equals_the_truth_and_a_second_writes_no_event() {
    let acct = Account::open("sirclo-id", 2000, chrono::Duration::seconds(90)).await;
    let setup = acct.setup("");

    sync(&setup).await.unwrap();
    let db = setup.db();
    let truth = acct.sim.truth();
    assert_store_matches(&db, "sirclo-id", &truth);
    assert!(
        truth.iter().any(|t| t.status == "canceled")
            && truth.iter().any(|t| t.status == "cancelled"),
        "both spellings of cancelled were read"
    );
    assert_eq!(events_by_kind(&db, "created"), 2000);
    assert_eq!(count(&db, "SELECT count(*) FROM order_events"), 2000);
    assert_eq!(count(&db, "SELECT count(*) FROM rejects"), 0);

    sync(&setup).await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM order_events"),
        2000,
        "a re-read of unchanged orders writes no event"
    );
    assert_store_matches(&db, "sirclo-id", &acct.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_on_old_orders_and_new_orders_give_one_event_each_and_nothing_else() {
    let acct = Account::open("sirclo-id", 600, chrono::Duration::seconds(90)).await;
    let setup = acct.setup("lookback = \"15m\"");
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = count(&db, "SELECT max(id) FROM order_events");

    // Open orders placed hours before the incremental window: only the rescan can see them.
    let changed: Vec<TruthOrder> = acct
        .sim
        .truth()
        .into_iter()
        .filter(|t| is_open(t) && Utc::now() - minutes(60) > since_of_order(t))
        .take(25)
        .collect();
    assert_eq!(
        changed.len(),
        25,
        "the simulator has old open orders to change"
    );
    for t in &changed {
        acct.sim.set_status(t.id, next_status(&t.status));
    }
    let new = acct.sim.add_orders(7);

    sync(&setup).await.unwrap();
    assert_eq!(
        events_after(&db, before, "status_changed"),
        changed.len() as i64
    );
    assert_eq!(events_after(&db, before, "created"), new.len() as i64);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        (changed.len() + new.len()) as i64,
        "no other event"
    );
    for t in &changed {
        let (old, new_status): (String, String) = db
            .query_row(
                "SELECT old_status, new_status FROM order_events
                 WHERE order_id = ?1 AND kind = 'status_changed'",
                [t.id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(old, canonical(&t.status));
        assert_eq!(new_status, canonical(next_status(&t.status)));
    }
    assert_store_matches(&db, "sirclo-id", &acct.sim.truth());

    sync(&setup).await.unwrap();
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        (changed.len() + new.len()) as i64,
        "nothing more on a third sync"
    );
}

pub(crate) fn since_of_order(t: &TruthOrder) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&t.order_date)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_naming_the_platform_after_one_request_without_leaking_secrets() {
    let good = Account::open("good-sirclo", 150, chrono::Duration::seconds(90)).await;
    let bad = Account::open("bad-sirclo", 150, chrono::Duration::seconds(90)).await;
    let setup = Setup::new();
    setup.add_platform_file("good.toml", &good.platform_toml(""));
    let secret = SimOptions::default().secret;
    setup.add_platform_file(
        "bad.toml",
        &bad.platform_toml("")
            .replace(&secret, "wrong-sirclo-secret"),
    );

    let err = sync(&setup).await.unwrap_err();
    assert!(err.contains("bad-sirclo"), "{err}");
    assert!(!err.contains("good-sirclo"), "{err}");
    assert!(err.contains("credentials"), "{err}");
    assert!(
        !err.contains("wrong-sirclo-secret"),
        "the secret never appears: {err}"
    );
    assert_eq!(bad.sim.request_count(), 1, "no hammering after a 401");
    let sent = &bad.sim.requests()[0];
    assert_eq!(sent.status, 401);
    let mac = sent
        .headers
        .iter()
        .find(|(k, _)| k == "mac")
        .map(|(_, v)| v.clone())
        .expect("a MAC was sent");
    assert!(!err.contains(&mac), "the MAC never appears: {err}");

    let db = setup.db();
    assert_store_matches(&db, "good-sirclo", &good.sim.truth());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM orders WHERE platform = 'bad-sirclo'"
        ),
        0
    );
}

#[test]
fn the_mac_matches_the_published_test_vector() {
    assert_eq!(
        sign(
            "1IieSn9qXCYu3FeEG1eH05QxTMldKEiNIkLSN/5xtgc=",
            "/v1/partner/order?since=2018-10-13T13:34:52Z&until=2018-10-16T19:22:39Z&limit=100&offset=0",
            b"",
        ),
        "XoPRRDtfNWaGm4nbw7A0LY/c2U0+jg3F3Ay2d3VR3bM="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_a_mac_computed_over_another_query() {
    let acct = Account::open("sirclo-id", 10, chrono::Duration::seconds(90)).await;
    ordersync::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let o = SimOptions::default();
    let query = |perpage: u32| {
        format!(
            "/v1/partner/page/1?since=2020-01-01T00:00:00Z&until={}&perpage={perpage}",
            sirclo::query_time(Utc::now())
        )
    };
    let send = |sent: String, signed: String| {
        http.get(format!("{}{sent}", acct.server.base_url()))
            .header("partner_id", &o.partner_id)
            .header("MAC", sign(&o.secret, &signed, b""))
            .send()
    };
    let refused = send(query(10), query(20)).await.unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = send(query(10), query(10)).await.unwrap();
    assert_eq!(accepted.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_request_is_signed_over_exactly_the_bytes_it_sent() {
    let acct = Account::open("sirclo-id", 150, chrono::Duration::seconds(90)).await;
    let setup = acct.setup("");
    sync(&setup).await.unwrap();

    let o = SimOptions::default();
    let requests = acct.sim.requests();
    assert_eq!(
        requests.len(),
        4,
        "two pages for the pass and two for the rescan"
    );
    for r in &requests {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let pq = &r.path_and_query;
        assert!(pq.starts_with("/v1/partner/page/"), "{pq}");
        assert!(
            !pq.contains('%'),
            "nothing percent-encoded, `:` as it is: {pq}"
        );
        assert!(pq.contains("perpage=100"), "{pq}");
        for key in ["since=", "until="] {
            let value = pq
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(key))
                .unwrap();
            assert!(value.ends_with('Z') && value.contains(':'), "{pq}");
        }
        assert_eq!(
            header("mac"),
            Some(sign(&o.secret, pq, b"").as_str()),
            "{pq}"
        );
        assert_eq!(header("partner_id"), Some(o.partner_id.as_str()));
        assert_eq!(header("partner-id"), Some(o.partner_id.as_str()));
        assert_eq!(r.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_stops_at_the_total_record_without_asking_for_an_empty_page() {
    let acct = Account::open("sirclo-id", 200, chrono::Duration::seconds(90)).await;
    // Above the document's maximum: lowered to 100.
    let setup = acct.setup("page_size = 500");
    sync_without_reconcile(&setup).await.unwrap();
    let pages: Vec<String> = acct
        .sim
        .requests()
        .iter()
        .map(|r| r.path_and_query.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(pages, ["/v1/partner/page/1", "/v1/partner/page/2"]);
    assert!(
        acct.sim
            .requests()
            .iter()
            .all(|r| r.path_and_query.ends_with("perpage=100"))
    );
    assert_eq!(count(&setup.db(), "SELECT count(*) FROM orders"), 200);
}

/// `since` and `until` of a list request.
fn window_of(path_and_query: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let until = path_and_query
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("until="))
        .unwrap_or_else(|| panic!("no until in {path_and_query}"));
    let until = DateTime::parse_from_rfc3339(until)
        .unwrap()
        .with_timezone(&Utc);
    (since_of(path_and_query), until)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_placed_200_days_ago_that_ships_is_found_by_a_narrow_reconcile_window() {
    // An order a day for 240 days, the newest ten days ago.
    let acct = Account::open("sirclo-old", 240, chrono::Duration::days(1)).await;
    let setup = acct.setup("");
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = count(&db, "SELECT max(id) FROM order_events");
    let old = acct
        .sim
        .truth()
        .into_iter()
        .find(|t| is_open(t) && since_of_order(t) < Utc::now() - chrono::Duration::days(200))
        .expect("an open order from more than 200 days ago");
    // Open orders, and the final ones the platform last updated within `final_watch` (30
    // days): at most those placed in the last 35, as the simulator updates an order within
    // days of placing it.
    let watched = acct
        .sim
        .truth()
        .into_iter()
        .filter(|t| is_open(t) || since_of_order(t) > Utc::now() - chrono::Duration::days(35))
        .count();
    acct.sim.set_status(old.id, next_status(&old.status));

    sync_without_reconcile(&setup).await.unwrap();
    assert_eq!(
        status_of(&db, "sirclo-old", old.id).platform_status,
        old.status,
        "the incremental pass filters on the order date and cannot see the change"
    );

    let requests_before = acct.sim.request_count();
    sync(&setup).await.unwrap();
    let now = acct.truth_of(old.id);
    assert_eq!(
        status_of(&db, "sirclo-old", old.id),
        StoredStatus::new(canonical(&now.status), &now.status)
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        1,
        "exactly one event: the shipped order's status_changed"
    );
    assert_eq!(events_after(&db, before, "status_changed"), 1);

    let reconcile: Vec<(DateTime<Utc>, DateTime<Utc>)> = acct.sim.requests()[requests_before..]
        .iter()
        .map(|r| window_of(&r.path_and_query))
        .filter(|(since, _)| *since < Utc::now() - chrono::Duration::days(2))
        .collect();
    let placed = since_of_order(&old);
    let around = reconcile
        .iter()
        .find(|(since, until)| *since <= placed && placed <= *until)
        .expect("a reconcile request covers the old order");
    assert!(
        around.1 - around.0 <= minutes(10),
        "the window around the old order is a few minutes wide: {around:?}"
    );
    assert!(
        reconcile.len() <= watched,
        "at most one request per watched order: {} requests for {watched}",
        reconcile.len()
    );
    eprintln!(
        "reconcile of {watched} watched orders over 240 days: {} requests",
        reconcile.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_before_the_reconcile_horizon_are_not_rescanned() {
    let acct = Account::open("sirclo-id", 300, minutes(10)).await;
    let setup = acct.setup("reconcile_horizon = \"1d\"");
    sync(&setup).await.unwrap();
    let db = setup.db();
    let truth = acct.sim.truth();
    let day_ago = Utc::now() - chrono::Duration::days(1);
    let outside = truth
        .iter()
        .find(|t| is_open(t) && since_of_order(t) < day_ago - minutes(60))
        .unwrap();
    let inside = truth
        .iter()
        .find(|t| {
            is_open(t)
                && since_of_order(t) > day_ago + minutes(60)
                && since_of_order(t) < Utc::now() - minutes(120)
        })
        .unwrap();
    acct.sim
        .set_status(outside.id, next_status(&outside.status));
    acct.sim.set_status(inside.id, next_status(&inside.status));

    sync(&setup).await.unwrap();
    assert_eq!(
        status_of(&db, "sirclo-id", outside.id).platform_status,
        outside.status
    );
    assert_eq!(
        status_of(&db, "sirclo-id", inside.id).platform_status,
        next_status(&inside.status)
    );
}

#[test]
fn the_shipped_example_file_loads_and_builds_a_sirclo_connector() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    std::fs::create_dir_all(dir.path().join("platforms.d")).unwrap();
    std::fs::copy(
        format!("{config_dir}/ordersync.toml"),
        dir.path().join("ordersync.toml"),
    )
    .unwrap();
    std::fs::copy(
        format!("{config_dir}/platforms.d/sirclo-example.toml"),
        dir.path().join("platforms.d/sirclo-example.toml"),
    )
    .unwrap();
    let config = ordersync::config::load_with_env(
        &dir.path().join("ordersync.toml"),
        ordersync::platforms::kinds(),
        &[],
    )
    .unwrap_or_else(|e| panic!("the example does not load:\n{e}"));
    assert_eq!(config.platforms.len(), 1);
    let p = &config.platforms[0];
    assert_eq!(p.kind, ordersync::platforms::sirclo::DESCRIPTOR.kind);
    for key in ["partner_id", "secret", "api_key", "api_secret"] {
        assert!(p.auth.get(key).is_some(), "the example shows auth.{key}");
    }
    let connector = ordersync::platforms::Connector::new(
        p,
        &ordersync::http::Redactor::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .unwrap_or_else(|e| panic!("the example's platform does not connect: {e}"));
    // The SIRCLO client, not another kind's: its list is paged by number under SIRCLO's path.
    let now = Utc::now();
    let token = ordersync::platforms::Source::first_token(
        &connector,
        &ordersync::platforms::Window {
            from: now - chrono::Duration::hours(1),
            to: now,
        },
    );
    assert!(
        token.contains("/v1/partner/page/1?since="),
        "a sirclo platform gets the SIRCLO client; its first page is {token}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_caps_its_pages_fails_the_pass_naming_the_page_size_to_set() {
    let acct = Account::open("sirclo-cap", 250, minutes(3)).await;
    let setup = acct.setup("page_size = 100");
    acct.sim.cap_pages_at(10);

    let err = sync_without_reconcile(&setup)
        .await
        .expect_err("a pass that would miss 240 orders fails");
    assert!(
        err.contains("sirclo-cap")
            && err.contains("total_record is 250")
            && err.contains("page_size = 10"),
        "the error names the platform, the mismatch and the fix: {err}"
    );
    let pages = acct
        .sim
        .requests()
        .iter()
        .filter(|r| r.path_and_query.starts_with("/v1/partner/page/"))
        .count();
    assert_eq!(pages, 1, "an inconsistent page is not retried");

    let setup = acct.setup("page_size = 10");
    sync_without_reconcile(&setup).await.unwrap();
    assert_eq!(
        count(&setup.db(), "SELECT count(*) FROM orders"),
        250,
        "with the page size the platform serves, every order is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_order_cancelled_within_final_watch_is_found_by_reconcile_with_one_event() {
    // An order a day for 60 days, the newest ten days ago.
    let acct = Account::open("sirclo-final", 60, chrono::Duration::days(1)).await;
    let setup = acct.setup("");
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = count(&db, "SELECT max(id) FROM order_events");
    let completed = acct
        .sim
        .truth()
        .into_iter()
        .find(|t| {
            t.status == "completed"
                && since_of_order(t) > Utc::now() - chrono::Duration::days(25)
                && since_of_order(t) < Utc::now() - chrono::Duration::days(10)
        })
        .expect("an order completed 10 to 25 days ago");
    acct.sim.set_status(completed.id, "cancelled");

    sync_without_reconcile(&setup).await.unwrap();
    assert_eq!(
        status_of(&db, "sirclo-final", completed.id).platform_status,
        "completed",
        "the incremental pass filters on the order date and cannot see the change"
    );
    sync(&setup).await.unwrap();
    assert_eq!(
        status_of(&db, "sirclo-final", completed.id),
        StoredStatus::new("cancelled", "cancelled")
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {before}")
        ),
        1,
        "exactly one event: the status_changed of the corrected order"
    );
}
