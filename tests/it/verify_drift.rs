//! `ordersync verify` against a shop of every kind, through the real binary: after the platform
//! changes orders behind the sync's back (a status moved without its update time, orders placed
//! backdated beyond the lookback, orders deleted), `verify` names exactly those orders and exits
//! 1 without writing; `verify --repair` writes them through the change feed and exits 0; the
//! next `verify` exits 0. One scenario, run per kind through a small fixture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use chrono::{DateTime, Utc};
use ordersync_sim::RunningSim;
use ordersync_sim::{akinon, epixel, merchantpro, mitrabunso, sirclo};
use serde_json::Value;

const SPACING_SECS: i64 = 90;

/// What the scenario needs of one kind's simulator.
trait Fixture: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Whether the kind's listing says how many orders it holds (`platform_count`).
    fn counts(&self) -> bool {
        true
    }
    fn base_url(&self) -> String;
    /// The platform table's kind-specific lines and its `[auth]` keys.
    fn lines(&self) -> PlatformLines;
    /// Live orders: id → the platform's status as the store keeps it (`platform_status`).
    fn truth(&self) -> BTreeMap<String, String>;
    /// Moves the order to a status of another canonical meaning, without moving the update
    /// time the kind's incremental filter reads (where it has one).
    fn change_quietly(&self, id: &str, current: &str);
    /// Places `n` orders dated `at`, beyond any sync's lookback.
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String>;
    fn delete(&self, id: &str);
}

/// What one kind adds to its platform table.
struct PlatformLines {
    /// Lines inside `[platforms.<name>]`.
    more: String,
    /// Lines inside `[platforms.<name>.auth]`.
    auth: String,
}

struct Sirclo(sirclo::SircloSim, RunningSim);
struct Akinon(akinon::AkinonSim, RunningSim);
struct Merchantpro(merchantpro::MerchantProSim, RunningSim);
struct Mitrabunso(mitrabunso::MitrabunsoSim, RunningSim);
struct Epixel(epixel::EpixelSim, RunningSim);

fn num(id: &str) -> u64 {
    id.parse().unwrap()
}

impl Fixture for Sirclo {
    fn kind(&self) -> &'static str {
        "sirclo"
    }
    fn base_url(&self) -> String {
        self.1.base_url()
    }
    fn lines(&self) -> PlatformLines {
        let o = sirclo::SimOptions::default();
        PlatformLines {
            more: String::new(),
            auth: format!(
                "partner_id = \"{}\"\nsecret = \"{}\"\n",
                o.partner_id, o.secret
            ),
        }
    }
    fn truth(&self) -> BTreeMap<String, String> {
        self.0
            .truth()
            .into_iter()
            .map(|t| (t.id.to_string(), t.status))
            .collect()
    }
    fn change_quietly(&self, id: &str, current: &str) {
        let to = if current == "completed" {
            "cancelled"
        } else {
            "completed"
        };
        self.0.set_status_quietly(num(id), to);
    }
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String> {
        let ids = self.0.add_backdated_orders(n, at);
        ids.iter().map(u64::to_string).collect()
    }
    fn delete(&self, id: &str) {
        self.0.delete_order(num(id));
    }
}

impl Fixture for Akinon {
    fn kind(&self) -> &'static str {
        "akinon"
    }
    fn base_url(&self) -> String {
        self.1.base_url()
    }
    fn lines(&self) -> PlatformLines {
        let o = akinon::SimOptions::default();
        PlatformLines {
            more: String::new(),
            auth: format!("token = \"{}\"\n", o.token),
        }
    }
    fn truth(&self) -> BTreeMap<String, String> {
        self.0
            .truth()
            .into_iter()
            .map(|t| (t.id, t.status.to_string()))
            .collect()
    }
    fn change_quietly(&self, id: &str, current: &str) {
        let to = if current == "600" { 800 } else { 600 };
        self.0.set_status_quietly(id, to);
    }
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String> {
        self.0.add_backdated_orders(n, at)
    }
    fn delete(&self, id: &str) {
        self.0.delete_order(id);
    }
}

impl Fixture for Merchantpro {
    fn kind(&self) -> &'static str {
        "merchantpro"
    }
    fn base_url(&self) -> String {
        self.1.base_url()
    }
    fn lines(&self) -> PlatformLines {
        let o = merchantpro::SimOptions::default();
        PlatformLines {
            more: String::new(),
            auth: format!(
                "api_key = \"{}\"\napi_secret = \"{}\"\n",
                o.api_key, o.api_secret
            ),
        }
    }
    fn truth(&self) -> BTreeMap<String, String> {
        self.0
            .truth()
            .into_iter()
            .map(|t| (t.id.to_string(), t.shipping_status))
            .collect()
    }
    fn change_quietly(&self, id: &str, current: &str) {
        let to = if current == "delivered" {
            "returned"
        } else {
            "delivered"
        };
        self.0.set_status_quietly(num(id), to);
    }
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String> {
        let ids = self.0.add_backdated_orders(n, at);
        ids.iter().map(u64::to_string).collect()
    }
    fn delete(&self, id: &str) {
        self.0.delete_order(num(id));
    }
}

impl Fixture for Mitrabunso {
    fn kind(&self) -> &'static str {
        "mitrabunso"
    }
    fn base_url(&self) -> String {
        self.1.base_url()
    }
    fn lines(&self) -> PlatformLines {
        let o = mitrabunso::SimOptions::default();
        PlatformLines {
            more: String::new(),
            auth: format!("user_id = \"{}\"\ntoken = \"{}\"\n", o.user_id, o.token),
        }
    }
    fn truth(&self) -> BTreeMap<String, String> {
        self.0
            .truth()
            .into_iter()
            .map(|t| (t.id, t.status))
            .collect()
    }
    /// The platform has no update time at all; an order moved to a status its status scans do
    /// not read is what a sync never sees again.
    fn change_quietly(&self, id: &str, _current: &str) {
        self.0.set_status(id, "CANCELLED");
    }
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String> {
        self.0.add_backdated_orders(n, at, "SENT")
    }
    fn delete(&self, id: &str) {
        self.0.delete_order(id);
    }
}

impl Fixture for Epixel {
    fn kind(&self) -> &'static str {
        "epixel"
    }
    fn counts(&self) -> bool {
        false
    }
    fn base_url(&self) -> String {
        self.1.base_url()
    }
    fn lines(&self) -> PlatformLines {
        let o = epixel::SimOptions::default();
        PlatformLines {
            more: format!("api_prefix = \"{}\"\n", o.api_prefix),
            auth: format!("api_key = \"{}\"\ntoken = \"{}\"\n", o.api_key, o.token),
        }
    }
    fn truth(&self) -> BTreeMap<String, String> {
        self.0
            .truth()
            .into_iter()
            .map(|t| (t.id.to_string(), t.status))
            .collect()
    }
    fn change_quietly(&self, id: &str, current: &str) {
        let delivered = ["Completed", "completed", "Delivered"].contains(&current);
        let to = if delivered { "Cancelled" } else { "Delivered" };
        self.0.set_status_quietly(num(id), to);
    }
    fn insert_backdated(&self, n: usize, at: DateTime<Utc>) -> Vec<String> {
        let ids = self.0.add_backdated_orders(n, at);
        ids.iter().map(u64::to_string).collect()
    }
    fn delete(&self, id: &str) {
        self.0.delete_order(num(id));
    }
}

/// When the first generated order of a shop of `orders` was placed.
fn shop_start(orders: usize) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(SPACING_SECS * (orders as i64 + 10))
}

fn spacing() -> chrono::Duration {
    chrono::Duration::seconds(SPACING_SECS)
}

/// A kind's simulator, and when its first order was placed.
struct Shop {
    fixture: Box<dyn Fixture>,
    start: DateTime<Utc>,
}

async fn sirclo_shop(orders: usize) -> Shop {
    let start = shop_start(orders);
    let sim = sirclo::SircloSim::new(sirclo::SimOptions {
        orders,
        start,
        spacing: spacing(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    Shop {
        fixture: Box::new(Sirclo(sim, server)),
        start,
    }
}

async fn akinon_shop(orders: usize) -> Shop {
    let start = shop_start(orders);
    let sim = akinon::AkinonSim::new(akinon::SimOptions {
        orders,
        start,
        spacing: spacing(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    Shop {
        fixture: Box::new(Akinon(sim, server)),
        start,
    }
}

async fn merchantpro_shop(orders: usize) -> Shop {
    let start = shop_start(orders);
    let sim = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
        orders,
        start,
        spacing: spacing(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    Shop {
        fixture: Box::new(Merchantpro(sim, server)),
        start,
    }
}

async fn mitrabunso_shop(orders: usize) -> Shop {
    let start = shop_start(orders);
    let sim = mitrabunso::MitrabunsoSim::new(mitrabunso::SimOptions {
        orders,
        start,
        spacing: spacing(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    Shop {
        fixture: Box::new(Mitrabunso(sim, server)),
        start,
    }
}

async fn epixel_shop(orders: usize) -> Shop {
    let start = shop_start(orders);
    let sim = epixel::EpixelSim::new(epixel::SimOptions {
        orders,
        start,
        spacing: spacing(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    Shop {
        fixture: Box::new(Epixel(sim, server)),
        start,
    }
}

fn platform_toml(name: &str, shop: &dyn Fixture, start: DateTime<Utc>) -> String {
    let PlatformLines { more, auth } = shop.lines();
    format!(
        "[platforms.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\n\
         backfill_from = \"{from}\"\nmax_requests_per_second = 10000\n{more}\
         [platforms.{name}.auth]\n{auth}",
        kind = shop.kind(),
        url = shop.base_url(),
        from = (start - chrono::Duration::days(1)).to_rfc3339(),
    )
}

/// A run of the real binary, started.
struct Run {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
    args: String,
}

fn spawn(setup: &Setup, args: &[&str]) -> Run {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = setup.dir.path().join(format!("run-{run}.out"));
    let err = out.with_extension("err");
    let child = setup
        .command(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Run {
        child,
        out,
        err,
        args: format!("{args:?}"),
    }
}

impl Run {
    /// Polled off the runtime's workers (the simulators serve on them), with a deadline.
    async fn finish(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ordersync {} did not finish within 90 s", self.args);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Output {
            status,
            stdout: std::fs::read(&self.out).unwrap(),
            stderr: std::fs::read(&self.err).unwrap(),
        }
    }
}

async fn ordersync(setup: &Setup, args: &[&str]) -> Output {
    spawn(setup, args).finish().await
}

/// The one platform of `verify --json`'s document.
fn report(out: &Output) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json prints one JSON document ({e}):\n{}\n{}",
            stdout(out),
            stderr(out)
        )
    });
    let platforms = doc["platforms"].as_array().expect("a platforms list");
    assert_eq!(platforms.len(), 1, "{doc}");
    platforms[0].clone()
}

fn ids(report: &Value, field: &str) -> BTreeSet<String> {
    report[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is a list: {report}"))
        .iter()
        .map(|v| v.as_str().expect("ids are text").to_string())
        .collect()
}

fn set(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// Everything a verify must not touch: the change feed, the sync cursor and checkpoint, the
/// stored rows.
#[derive(Debug, PartialEq, Eq)]
struct Untouchable {
    events: i64,
    /// The sync state's cursor, pass window and checkpoint.
    state: Option<Vec<Option<String>>>,
    /// Every stored order's id, content hash and last sighting.
    rows: String,
}

fn untouchable(db: &Path, name: &str) -> Untouchable {
    let conn = rusqlite::Connection::open(db).unwrap();
    let events = count(&conn, "SELECT count(*) FROM order_events");
    let state = conn
        .query_row(
            "SELECT cursor, pass_started_at, pass_from, pass_to, resume FROM sync_state
             WHERE platform = ?1",
            [name],
            |r| (0..5).map(|i| r.get(i)).collect(),
        )
        .ok();
    let rows: String = conn
        .query_row(
            "SELECT group_concat(order_id || ':' || content_hash || ':' || last_seen_at, ',')
             FROM (SELECT * FROM orders WHERE platform = ?1 ORDER BY order_id)",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    Untouchable {
        events,
        state,
        rows,
    }
}

async fn drift_is_found_repaired_and_gone(
    name: &str,
    shop: Box<dyn Fixture>,
    start: DateTime<Utc>,
) {
    let setup = Setup::new();
    setup.add_platform_file(&format!("{name}.toml"), &platform_toml(name, &*shop, start));

    let out = ordersync(&setup, &["sync", name]).await;
    assert!(out.status.success(), "sync: {}", stderr(&out));
    let truth = shop.truth();
    let n = truth.len();

    // A store a sync has just filled shows no drift.
    let out = ordersync(&setup, &["verify", name, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let clean = report(&out);
    assert_eq!(clean["name"], name);
    assert_eq!(clean["kind"], shop.kind());
    assert_eq!(clean["listed"], n as u64, "{clean}");
    assert_eq!(clean["stored"], n as u64, "{clean}");
    for field in ["missing", "changed", "extra"] {
        assert!(
            ids(&clean, field).is_empty(),
            "{field} on a clean store: {clean}"
        );
    }
    assert_eq!(clean["repaired"], 0);
    let count = |n: usize| {
        if shop.counts() {
            Value::from(n)
        } else {
            Value::Null
        }
    };
    assert_eq!(clean["platform_count"], count(n), "{clean}");

    // The platform moves behind the sync's back.
    let order: Vec<(&String, &String)> = truth.iter().collect();
    let changed: Vec<String> = [3, n / 2, n - 4]
        .iter()
        .map(|&i| {
            let (id, status) = order[i];
            shop.change_quietly(id, status);
            id.clone()
        })
        .collect();
    let deleted: Vec<String> = [7, n / 3]
        .iter()
        .map(|&i| {
            let id = order[i].0;
            shop.delete(id);
            id.clone()
        })
        .collect();
    let backdated = shop.insert_backdated(2, start + chrono::Duration::hours(1));

    let before = untouchable(&setup.db_path(), name);
    let out = ordersync(&setup, &["verify", name, "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let drift = report(&out);
    assert_eq!(ids(&drift, "missing"), set(&backdated), "{drift}");
    assert_eq!(ids(&drift, "changed"), set(&changed), "{drift}");
    assert_eq!(ids(&drift, "extra"), set(&deleted), "{drift}");
    assert_eq!(drift["listed"], n as u64, "{drift}");
    assert_eq!(drift["stored"], n as u64, "{drift}");
    assert_eq!(drift["repaired"], 0);
    assert_eq!(drift["platform_count"], count(n), "{drift}");
    assert!(stderr(&out).contains(name), "{}", stderr(&out));
    assert_eq!(
        untouchable(&setup.db_path(), name),
        before,
        "verify without --repair writes nothing"
    );

    let Untouchable {
        events: events_before,
        state: state_before,
        ..
    } = before;
    let out = ordersync(&setup, &["verify", name, "--repair", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let repaired = report(&out);
    assert_eq!(ids(&repaired, "missing"), set(&backdated), "{repaired}");
    assert_eq!(ids(&repaired, "changed"), set(&changed), "{repaired}");
    assert_eq!(ids(&repaired, "extra"), set(&deleted), "{repaired}");
    assert_eq!(repaired["repaired"], 5, "{repaired}");
    assert_eq!(repaired["stored"], n as u64 + 2, "{repaired}");

    let db = setup.db();
    let mut stmt = db
        .prepare(
            "SELECT kind, order_id FROM order_events WHERE platform = ?1 AND id > ?2 ORDER BY id",
        )
        .unwrap();
    let events: Vec<(String, String)> = stmt
        .query_map(rusqlite::params![name, events_before], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let of_kind = |k: &str| -> Vec<String> {
        let mut v: Vec<String> = events
            .iter()
            .filter(|(kind, _)| kind == k)
            .map(|(_, id)| id.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(events.len(), 5, "one event per repaired order: {events:?}");
    assert_eq!(set(&of_kind("created")), set(&backdated), "{events:?}");
    assert_eq!(of_kind("created").len(), 2, "{events:?}");
    assert_eq!(set(&of_kind("status_changed")), set(&changed), "{events:?}");
    assert_eq!(of_kind("status_changed").len(), 3, "{events:?}");
    let state_after = untouchable(&setup.db_path(), name).state;
    assert_eq!(
        state_after, state_before,
        "the repair moves neither the cursor nor the checkpoint"
    );

    // The store now holds the platform's truth; the deleted orders stay as they were.
    let now = shop.truth();
    let stored: BTreeMap<String, String> = db
        .prepare("SELECT order_id, platform_status FROM orders WHERE platform = ?1")
        .unwrap()
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, status) in &now {
        assert_eq!(stored.get(id), Some(status), "order {id}");
    }
    let kept: BTreeSet<String> = stored
        .keys()
        .filter(|id| !now.contains_key(*id))
        .cloned()
        .collect();
    assert_eq!(kept, set(&deleted), "extra orders are never deleted");

    let out = ordersync(&setup, &["verify", name, "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = report(&out);
    assert!(ids(&after, "missing").is_empty(), "{after}");
    assert!(ids(&after, "changed").is_empty(), "{after}");
    assert_eq!(ids(&after, "extra"), set(&deleted), "{after}");
    assert_eq!(after["repaired"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sirclo_drift_is_found_repaired_and_gone() {
    let Shop {
        fixture: shop,
        start,
    } = sirclo_shop(2_000).await;
    drift_is_found_repaired_and_gone("shop-sirclo", shop, start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn akinon_drift_is_found_repaired_and_gone() {
    let Shop {
        fixture: shop,
        start,
    } = akinon_shop(600).await;
    drift_is_found_repaired_and_gone("shop-akinon", shop, start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchantpro_drift_is_found_repaired_and_gone() {
    let Shop {
        fixture: shop,
        start,
    } = merchantpro_shop(2_000).await;
    drift_is_found_repaired_and_gone("shop-merchantpro", shop, start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mitrabunso_drift_is_found_repaired_and_gone() {
    let Shop {
        fixture: shop,
        start,
    } = mitrabunso_shop(2_000).await;
    drift_is_found_repaired_and_gone("shop-mitrabunso", shop, start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epixel_drift_is_found_repaired_and_gone() {
    let Shop {
        fixture: shop,
        start,
    } = epixel_shop(300).await;
    drift_is_found_repaired_and_gone("shop-epixel", shop, start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_that_cannot_be_read_fails_alone_and_is_named() {
    let Shop {
        fixture: good,
        start: good_start,
    } = mitrabunso_shop(60).await;
    let Shop {
        fixture: bad,
        start: bad_start,
    } = merchantpro_shop(60).await;
    let setup = Setup::new();
    setup.add_platform_file("a-good.toml", &platform_toml("good", &*good, good_start));
    let wrong = merchantpro::SimOptions::default().api_secret;
    setup.add_platform_file(
        "b-bad.toml",
        &platform_toml("bad", &*bad, bad_start).replace(&wrong, "not-the-secret"),
    );
    let out = ordersync(&setup, &["sync", "good"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ordersync(&setup, &["verify", "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let platforms = doc["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{doc}");
    let named = |n: &str| {
        platforms
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {doc}"))
    };
    let (g, b) = (named("good"), named("bad"));
    assert!(g["error"].is_null(), "{doc}");
    assert_eq!(g["listed"], 60, "{doc}");
    assert!(
        ids(g, "missing").is_empty() && ids(g, "changed").is_empty(),
        "{doc}"
    );
    let error = b["error"].as_str().expect("the failure is named");
    assert!(
        error.contains("platform bad") && error.contains("[platforms.bad.auth]"),
        "{error}"
    );
    assert!(
        b["missing"].is_null(),
        "no drift is claimed for an unread platform: {doc}"
    );
    assert!(!stderr(&out).contains("not-the-secret"), "{}", stderr(&out));
    assert!(stderr(&out).contains("platform bad"), "{}", stderr(&out));

    // Without --json: a table, and the reason the other platform has no line of figures.
    let out = ordersync(&setup, &["verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = stdout(&out);
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "PLATFORM", "LISTED", "STORED", "COUNT", "MISSING", "CHANGED", "EXTRA",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("good "))
        .unwrap_or_else(|| panic!("a line for good:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["good", "mitrabunso", "60", "60", "60", "0", "0", "0", "0"],
        "{table}"
    );
    assert!(table.contains("bad: not verified: platform bad"), "{table}");
}

#[test]
fn a_configuration_error_exits_78_naming_the_file() {
    let setup = Setup::new();
    setup.add_platform_file(
        "broken.toml",
        "[platforms.broken]\nkind = \"nope\"\nbase_url = \"http://127.0.0.1:9\"\n",
    );
    let out = setup.ordersync(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.toml"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_waits_while_a_sync_of_the_platform_holds_its_lock() {
    use std::os::fd::AsRawFd as _;
    let Shop {
        fixture: shop,
        start,
    } = mitrabunso_shop(60).await;
    let setup = Setup::new();
    setup.add_platform_file("shop.toml", &platform_toml("shop", &*shop, start));
    let out = ordersync(&setup, &["sync", "shop"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // The lock file a running `sync` (or the daemon) holds for the platform.
    let mut locks = setup.db_path().into_os_string();
    locks.push(".locks");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(&locks).join("shop"))
        .unwrap();
    // SAFETY: flock(2) on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);

    let mut run = spawn(&setup, &["verify", "shop", "--json"]);
    let held_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < held_until {
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "verify finished while the platform's lock was held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(lock);
    let out = run.finish().await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report(&out)["listed"], 60);
}
