//! Epixel beyond the conformance suite, through the library the daemon runs: a resync that
//! reads no details, status changes found by the full scan with details read only for them, a
//! malformed details line, a refused apikey beside a refused token, the apikey + Bearer headers,
//! logging in (and again once when the token is revoked), free-text statuses with the config's
//! `status_map`, and the example file. The fixture the conformance suite drives (`Store`, the
//! store comparison) lives here too.

use ordersync::cli::SyncArgs;
use std::time::Duration;

use crate::common::{Setup, count, events_by_kind};
use ordersync_sim::epixel::{EpixelSim, SimOptions, TruthOrder};
use ordersync_sim::{Fault, RecordedRequest, RunningSim};
use rusqlite::Connection;

const LIST: &str = "/api/v1/commerce/all-orders/";
const DETAILS: &str = "/api/v1/commerce/order-details/";
const LOGIN: &str = "/api/v1/user/login/";

/// A simulated Epixel store on loopback.
pub(crate) struct Store {
    pub(crate) name: String,
    pub(crate) sim: EpixelSim,
    pub(crate) server: RunningSim,
}

/// How the platform file authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Auth {
    Token,
    Login,
    Both,
}

impl Store {
    /// A store whose orders were placed over the last `orders × 90 s`.
    pub(crate) async fn open(name: &str, orders: usize) -> Store {
        let spacing = chrono::Duration::seconds(90);
        let sim = EpixelSim::new(SimOptions {
            orders,
            start: chrono::Utc::now() - spacing * (orders as i32 + 10),
            spacing,
            ..SimOptions::default()
        });
        let server = sim.serve().await.expect("simulator starts");
        Store {
            name: name.to_owned(),
            sim,
            server,
        }
    }

    /// The platform file for this store; `extra` lines go inside `[platforms.<name>]`.
    pub(crate) fn platform_toml(&self, auth: Auth, extra: &str) -> String {
        let o = SimOptions::default();
        let credentials = match auth {
            Auth::Token => format!("token = \"{}\"", o.token),
            Auth::Login => format!(
                "username = \"{}\"\npassword = \"{}\"",
                o.username, o.password
            ),
            Auth::Both => format!(
                "token = \"{}\"\nusername = \"{}\"\npassword = \"{}\"",
                o.token, o.username, o.password
            ),
        };
        format!(
            "[platforms.{name}]\nkind = \"epixel\"\nbase_url = \"{url}\"\napi_prefix = \"/api/v1\"\n\
             max_requests_per_second = 10000\n{extra}\n\
             [platforms.{name}.auth]\napi_key = \"{key}\"\n{credentials}\n",
            name = self.name,
            url = self.server.base_url(),
            key = o.api_key,
        )
    }

    fn setup(&self, auth: Auth, extra: &str) -> Setup {
        let setup = Setup::new();
        setup.add_platform_file(
            &format!("{}.toml", self.name),
            &self.platform_toml(auth, extra),
        );
        setup
    }

    fn requests_to(&self, path: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.path_and_query.starts_with(path))
            .count()
    }
}

async fn sync(setup: &Setup) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), SyncArgs::default())
        .await
        .map_err(|e| format!("{:#}", e.error.expect("an error")))
}

/// The canonical status each status text the simulator writes must map to.
pub(crate) fn canonical(status: &str) -> &'static str {
    match status.to_lowercase().as_str() {
        "pending" | "on hold" => "pending",
        "confirmed" => "accepted",
        "processing" => "processing",
        "shipped" => "shipped",
        "delivered" | "completed" => "delivered",
        "cancelled" => "cancelled",
        "refund requested" => "unknown",
        other => panic!("simulator status {other} has no canonical mapping in the test"),
    }
}

/// Asserts the store holds exactly the simulator's orders, field by field and line by line.
pub(crate) fn assert_store_matches(db: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = count(
        db,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    assert_eq!(stored as usize, truth.len(), "number of stored orders");
    let mut order = db
        .prepare(
            "SELECT number, status, platform_status, total, currency, customer_name
             FROM orders WHERE platform = ?1 AND order_id = ?2",
        )
        .unwrap();
    let mut items = db
        .prepare(
            "SELECT item_id, status FROM order_items WHERE platform = ?1 AND order_id = ?2
             ORDER BY CAST(item_id AS INTEGER)",
        )
        .unwrap();
    for t in truth {
        let id = t.id.to_string();
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Row = order
            .query_row(rusqlite::params![platform, id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap_or_else(|e| panic!("order {id} not stored: {e}"));
        assert_eq!(row.0, t.order_number, "number of {id}");
        assert_eq!(row.1, canonical(&t.status), "status of {id}");
        assert_eq!(row.2, t.status, "platform status of {id}");
        assert_eq!(row.3, t.total.normalize().to_string(), "total of {id}");
        assert_eq!(row.4, t.currency, "currency of {id}");
        assert_eq!(row.5, t.customer_name, "customer of {id}");
        let lines: Vec<(String, Option<String>)> = items
            .query_map(rusqlite::params![platform, id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(String, Option<String>)> = t
            .item_ids
            .iter()
            .zip(&t.item_statuses)
            .map(|(i, s)| (i.to_string(), Some(s.clone())))
            .collect();
        assert_eq!(lines, expected, "items of {id}");
    }
}

fn events(db: &Connection) -> i64 {
    count(db, "SELECT count(*) FROM order_events")
}

fn header<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_of_2000_orders_equals_the_truth_and_a_second_writes_no_event_and_reads_no_details()
 {
    let store = Store::open("epx", 2000).await;
    let setup = store.setup(Auth::Token, "");

    sync(&setup).await.unwrap();
    let db = setup.db();
    assert_store_matches(&db, "epx", &store.sim.truth());
    assert_eq!(events_by_kind(&db, "created"), 2000);
    assert_eq!(events(&db), 2000);
    assert_eq!(
        store.requests_to(DETAILS),
        2000,
        "one details read per order"
    );
    assert_eq!(
        store.requests_to(LIST),
        21,
        "20 full pages, then an empty one"
    );

    let before = store.sim.request_count();
    sync(&setup).await.unwrap();
    assert_eq!(
        events(&db),
        2000,
        "a re-read of unchanged orders writes no event"
    );
    assert_eq!(
        store.sim.request_count() - before,
        21,
        "the second sync reads the list again and no details"
    );
    assert_eq!(store.requests_to(DETAILS), 2000);
    assert_store_matches(&db, "epx", &store.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_on_old_orders_and_new_orders_give_one_event_each_and_details_only_for_them()
{
    let store = Store::open("epx", 300).await;
    let setup = store.setup(Auth::Token, "lookback = \"15m\"");
    sync(&setup).await.unwrap();
    let db = setup.db();
    let mark = count(&db, "SELECT max(id) FROM order_events");
    let since = |kind: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM order_events WHERE id > {mark} AND kind = '{kind}'"),
        )
    };

    // The oldest open orders, placed hours before any lookback window.
    let old_open: Vec<u64> = store
        .sim
        .truth()
        .into_iter()
        .filter(|o| ["Pending", "Confirmed", "Processing"].contains(&o.status.as_str()))
        .map(|o| o.id)
        .take(8)
        .collect();
    assert_eq!(old_open.len(), 8, "the simulator has old open orders");
    for id in &old_open[..5] {
        store.sim.set_status(*id, "Shipped");
    }
    let details_before = store.requests_to(DETAILS);
    sync(&setup).await.unwrap();
    assert_eq!(since("status_changed"), 5);
    assert_eq!(events(&db) - mark, 5, "nothing but the five status changes");
    assert_eq!(
        store.requests_to(DETAILS) - details_before,
        5,
        "details of the five only"
    );

    for id in &old_open[5..] {
        store.sim.set_status(*id, "Cancelled");
    }
    let new = store.sim.add_orders(4);
    let details_before = store.requests_to(DETAILS);
    sync(&setup).await.unwrap();
    assert_eq!(since("status_changed"), 8);
    assert_eq!(since("created"), 4);
    assert_eq!(events(&db) - mark, 12, "nothing else: no `updated` event");
    assert_eq!(store.requests_to(DETAILS) - details_before, 7);
    for id in &old_open {
        let (old, new_status, changes): (String, String, String) = db
            .query_row(
                "SELECT old_status, new_status, changes FROM order_events
                 WHERE order_id = ?1 AND kind = 'status_changed'",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert!(
            ["pending", "accepted", "processing"].contains(&old.as_str()),
            "{old}"
        );
        assert!(["shipped", "cancelled"].contains(&new_status.as_str()));
        assert!(changes.contains("platform_status"), "{changes}");
        assert!(
            changes.contains("items"),
            "the lines' statuses moved too: {changes}"
        );
    }
    for id in &new {
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT count(*) FROM order_events WHERE order_id = '{id}' AND kind = 'created'"
                )
            ),
            1
        );
    }
    assert_store_matches(&db, "epx", &store.sim.truth());

    sync(&setup).await.unwrap();
    assert_eq!(events(&db) - mark, 12, "nothing more on another sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_details_line_rejects_its_order_alone_until_it_reads_well() {
    let store = Store::open("epx", 120).await;
    let setup = store.setup(Auth::Token, "");
    // The list request passes; the first details request served has a broken line.
    store.sim.faults().push(Fault::Slow(Duration::ZERO));
    store.sim.faults().push(Fault::MalformedRecord);

    sync(&setup).await.unwrap();
    let db = setup.db();
    let position: String = db
        .query_row("SELECT position FROM rejects", [], |r| r.get(0))
        .unwrap();
    assert!(
        position.starts_with(&format!("GET {DETAILS}?order_number=")),
        "{position}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM orders"), 119);

    let details_before = store.requests_to(DETAILS);
    sync(&setup).await.unwrap();
    assert_eq!(
        store.requests_to(DETAILS) - details_before,
        1,
        "only the rejected order's"
    );
    assert_store_matches(&db, "epx", &store.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_naming_the_platform_after_one_request_and_hide_the_secret() {
    let good = Store::open("good-epx", 150).await;
    let bad_token = Store::open("bad-token", 150).await;
    let bad_key = Store::open("bad-key", 150).await;
    let setup = Setup::new();
    setup.add_platform_file("good.toml", &good.platform_toml(Auth::Token, ""));
    setup.add_platform_file(
        "bad-token.toml",
        &bad_token
            .platform_toml(Auth::Token, "")
            .replace("demo-access-token", "wrong-token-1234"),
    );
    setup.add_platform_file(
        "bad-key.toml",
        &bad_key
            .platform_toml(Auth::Token, "")
            .replace("demo-apikey", "wrong-apikey-5678"),
    );

    let err = sync(&setup).await.unwrap_err();
    assert!(err.contains("2 platforms failed"), "{err}");
    for line in err.lines().skip(1) {
        assert!(
            line.contains("bad-token") || line.contains("bad-key"),
            "{line}"
        );
        assert!(line.contains("credentials"), "{line}");
    }
    assert!(!err.contains("good-epx"), "{err}");
    for secret in [
        "wrong-token-1234",
        "wrong-apikey-5678",
        "demo-access-token",
        "demo-apikey",
    ] {
        assert!(
            !err.contains(secret),
            "the secret {secret} never appears: {err}"
        );
    }
    assert_eq!(bad_token.sim.request_count(), 1, "no hammering after a 401");
    assert_eq!(bad_key.sim.request_count(), 1, "no hammering after a 401");
    let db = setup.db();
    assert_store_matches(&db, "good-epx", &good.sim.truth());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM orders WHERE platform <> 'good-epx'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_apikey_and_the_configured_bearer() {
    let store = Store::open("epx", 150).await;
    let setup = store.setup(Auth::Token, "");
    sync(&setup).await.unwrap();
    let requests = store.sim.requests();
    assert_eq!(requests.len(), 2 + 150, "two list pages and 150 details");
    for r in &requests {
        assert_eq!(
            header(r, "apikey"),
            Some("demo-apikey"),
            "{}",
            r.path_and_query
        );
        assert_eq!(
            header(r, "authorization"),
            Some("Bearer demo-access-token"),
            "{}",
            r.path_and_query
        );
        assert_eq!((r.method.as_str(), r.status), ("GET", 200));
    }
    assert_eq!(
        store.sim.login_attempts(),
        0,
        "a configured token needs no login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_username_and_password_the_client_logs_in_once_and_sends_the_issued_bearer() {
    let store = Store::open("epx", 150).await;
    let setup = store.setup(Auth::Login, "");
    sync(&setup).await.unwrap();
    let requests = store.sim.requests();
    let login = &requests[0];
    assert_eq!(
        (login.method.as_str(), login.path_and_query.as_str()),
        ("POST", LOGIN)
    );
    assert_eq!(header(login, "apikey"), Some("demo-apikey"));
    assert_eq!(header(login, "authorization"), None);
    let body: serde_json::Value = serde_json::from_str(&login.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"username": "demo-admin", "password": "demo-password"})
    );
    let bearer = header(&requests[1], "authorization").unwrap().to_owned();
    assert!(bearer.starts_with("Bearer epx-access-1-"), "{bearer}");
    for r in &requests[1..] {
        assert_eq!(header(r, "apikey"), Some("demo-apikey"));
        assert_eq!(header(r, "authorization"), Some(bearer.as_str()));
        assert_eq!(r.status, 200);
    }
    assert_eq!(store.sim.login_attempts(), 1);
    assert_store_matches(&setup.db(), "epx", &store.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_sync_is_replaced_by_one_new_login_and_the_sync_completes() {
    let store = Store::open("epx", 300).await;
    let setup = store.setup(Auth::Login, "");
    store.sim.revoke_tokens_after(120);

    sync(&setup).await.unwrap();
    assert_eq!(store.sim.login_attempts(), 2, "logged in, then once more");
    let requests = store.sim.requests();
    let refused = requests.iter().filter(|r| r.status == 401).count();
    assert!((1..=4).contains(&refused), "{refused} requests refused");
    let logins: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| r.path_and_query == LOGIN)
        .collect();
    assert_eq!(logins.len(), 2);
    assert!(logins.iter().all(|r| r.status == 200));
    let bearers: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.status == 200 && r.path_and_query != LOGIN)
        .filter_map(|r| header(r, "authorization"))
        .collect();
    assert_eq!(
        bearers.len(),
        2,
        "the first token, then the second: {bearers:?}"
    );
    let db = setup.db();
    assert_store_matches(&db, "epx", &store.sim.truth());
    assert_eq!(events(&db), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configured_token_falls_back_to_one_login_when_username_and_password_are_set() {
    let store = Store::open("epx", 60).await;
    let setup = store.setup(Auth::Both, "");
    store.sim.revoke_tokens();

    sync(&setup).await.unwrap();
    let requests = store.sim.requests();
    assert_eq!(
        header(&requests[0], "authorization"),
        Some("Bearer demo-access-token")
    );
    assert_eq!(requests[0].status, 401);
    assert_eq!(requests[1].path_and_query, LOGIN);
    assert_eq!(store.sim.login_attempts(), 1);
    assert_eq!(
        requests.len(),
        2 + 1 + 60,
        "refused, login, one page, 60 details"
    );
    assert_store_matches(&setup.db(), "epx", &store.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_after_one_login_attempt() {
    let store = Store::open("epx", 50).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "epx.toml",
        &store
            .platform_toml(Auth::Login, "")
            .replace("demo-password", "wrong-password-42"),
    );
    let err = sync(&setup).await.unwrap_err();
    assert!(err.contains("epx") && err.contains("credentials"), "{err}");
    assert!(!err.contains("wrong-password-42"), "{err}");
    assert_eq!(store.sim.login_attempts(), 1);
    assert_eq!(store.sim.request_count(), 1, "nothing but the one login");
    assert_eq!(count(&setup.db(), "SELECT count(*) FROM orders"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_texts_map_case_insensitively_and_the_config_status_map_overrides_them() {
    let store = Store::open("epx", 40).await;
    let setup = store.setup(
        Auth::Token,
        r#"status_map = { "Awaiting Courier" = "shipped", "on hold" = "accepted" }"#,
    );
    let ids = store.sim.order_ids();
    let texts = [
        ("SHIPPED", "shipped"),
        ("dElIvErEd", "delivered"),
        ("in_process", "processing"),
        ("canceled", "cancelled"),
        ("awaiting courier", "shipped"),
        ("ON HOLD", "accepted"),
        ("Refund Requested", "unknown"),
    ];
    for ((text, _), id) in texts.iter().zip(&ids) {
        store.sim.set_status(*id, text);
    }
    sync(&setup).await.unwrap();
    let db = setup.db();
    for ((text, expected), id) in texts.iter().zip(&ids) {
        let (status, platform_status): (String, String) = db
            .query_row(
                "SELECT status, platform_status FROM orders WHERE order_id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (status.as_str(), platform_status.as_str()),
            (*expected, *text)
        );
    }
}

#[test]
fn the_example_platform_file_loads_beside_the_example_main_file() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("platforms.d")).unwrap();
    std::fs::copy(
        repo.join("ordersync.toml"),
        dir.path().join("ordersync.toml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("platforms.d/epixel-example.toml"),
        dir.path().join("platforms.d/epixel-example.toml"),
    )
    .unwrap();
    let main = dir.path().join("ordersync.toml");
    let config = ordersync::config::load_with_env(&main, ordersync::platforms::kinds(), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.platforms.len(), 1);
    let p = &config.platforms[0];
    assert_eq!(p.kind, ordersync::platforms::epixel::DESCRIPTOR.kind);
    assert_eq!(p.api_prefix.as_deref(), Some("/api/v1"));
    assert!(p.auth.get("api_key").is_some() && p.auth.get("token").is_some());
    assert!(!p.status_map.is_empty(), "the example shows a status_map");

    let out = std::process::Command::new(crate::common::BIN)
        .arg("--config")
        .arg(&main)
        .arg("check")
        .env_remove("ORDERSYNC_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(epixel)"));
}
