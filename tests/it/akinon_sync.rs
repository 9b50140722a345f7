//! Akinon beyond the conformance suite, through the library the daemon runs: many status changes
//! at once and on lines alone, unknown statuses, an interrupted pass, links to another host, the
//! login flow, the JSON content type, and the example platform file. The fixture the
//! conformance suite drives (`Shop`, the store comparison) lives here too.

use ordersync::cli::SyncArgs;
use std::time::Duration;

use crate::common::{Setup, count};
use chrono::{DateTime, Utc};
use ordersync_sim::akinon::{AkinonSim, SimOptions, TruthOrder};
use ordersync_sim::{Fault, RunningSim};
use rusqlite::Connection;

pub(crate) const TOKEN: &str = "demo-akinon-api-token";

pub(crate) struct Shop {
    pub(crate) name: String,
    pub(crate) sim: AkinonSim,
    pub(crate) server: RunningSim,
    pub(crate) start: DateTime<Utc>,
}

pub(crate) enum Creds<'a> {
    Token(&'a str),
    Login { email: &'a str, password: &'a str },
}

impl Shop {
    /// A shop whose orders were placed over the last `orders × 90 s`.
    pub(crate) async fn open(name: &str, orders: usize) -> Shop {
        Shop::open_with(
            name,
            SimOptions {
                orders,
                ..SimOptions::default()
            },
        )
        .await
    }

    async fn open_with(name: &str, opts: SimOptions) -> Shop {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (opts.orders as i32 + 10);
        let sim = AkinonSim::new(SimOptions {
            start,
            spacing,
            ..opts
        });
        let server = sim.serve().await.expect("simulator starts");
        Shop {
            name: name.to_string(),
            sim,
            server,
            start,
        }
    }

    /// The platform file; `extra` lines go inside `[platforms.<name>]`.
    pub(crate) fn toml(&self, creds: Creds<'_>, extra: &str) -> String {
        let auth = match creds {
            Creds::Token(t) => format!("token = \"{t}\"\n"),
            Creds::Login { email, password } => {
                format!("email = \"{email}\"\npassword = \"{password}\"\n")
            }
        };
        format!(
            "[platforms.{name}]\nkind = \"akinon\"\nbase_url = \"{url}\"\n\
             backfill_from = \"{from}\"\nmax_requests_per_second = 1000\n{extra}\n\
             [platforms.{name}.auth]\n{auth}",
            name = self.name,
            url = self.server.base_url(),
            from = (self.start - chrono::Duration::days(2)).to_rfc3339(),
        )
    }

    fn order(&self, id: &str) -> TruthOrder {
        self.sim
            .truth()
            .into_iter()
            .find(|o| o.id == id)
            .expect("order exists")
    }
}

fn setup_with(file: &str, toml: &str) -> Setup {
    let setup = Setup::new();
    setup.add_platform_file(file, toml);
    setup
}

async fn sync(setup: &Setup) -> Result<(), String> {
    ordersync::cli::sync(setup.config(), SyncArgs::default())
        .await
        .map_err(|e| format!("{:#}", e.error.expect("an error")))
}

/// The canonical status each Akinon status integer maps to.
pub(crate) fn canonical(status: u16) -> &'static str {
    match status {
        100 => "pending",
        200 => "accepted",
        300 | 400 => "processing",
        500 => "shipped",
        600 => "delivered",
        700 => "cancelling",
        800 => "cancelled",
        900 => "rejected",
        _ => "unknown",
    }
}

/// Asserts the store holds exactly the simulator's orders and lines, field by field.
pub(crate) fn assert_store_matches(db: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = count(
        db,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    assert_eq!(stored as usize, truth.len(), "number of stored orders");
    let mut order = db
        .prepare(
            "SELECT number, status, platform_status, total, currency, tracking_number
             FROM orders WHERE platform = ?1 AND order_id = ?2",
        )
        .unwrap();
    let mut items = db
        .prepare(
            "SELECT item_id, sku, quantity, unit_price, status FROM order_items
             WHERE platform = ?1 AND order_id = ?2 ORDER BY item_id",
        )
        .unwrap();
    for t in truth {
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Row = order
            .query_row(rusqlite::params![platform, t.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap_or_else(|e| panic!("order {} not stored: {e}", t.id));
        assert_eq!(row.0, t.number, "number of {}", t.id);
        assert_eq!(row.1, canonical(t.status), "status of {}", t.id);
        assert_eq!(row.2, t.status.to_string(), "platform status of {}", t.id);
        assert_eq!(row.3, t.amount.normalize().to_string(), "total of {}", t.id);
        assert_eq!(
            row.4,
            Some(t.currency.to_uppercase()),
            "currency of {}",
            t.id
        );
        let parcel = t.tracking_number.clone().or_else(|| {
            let mut n: Vec<&String> = t
                .items
                .iter()
                .filter_map(|i| i.tracking_number.as_ref())
                .collect();
            n.dedup();
            (n.len() == 1).then(|| n[0].clone())
        });
        assert_eq!(row.5, parcel, "tracking number of {}", t.id);

        let lines: Vec<(String, String, String, String, String)> = items
            .query_map(rusqlite::params![platform, t.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(String, String, String, String, String)> = t
            .items
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    i.sku.clone(),
                    "1".to_string(),
                    i.price.normalize().to_string(),
                    i.status.to_string(),
                )
            })
            .collect();
        assert_eq!(lines, expected, "items of {}", t.id);
    }
}

fn events(db: &Connection) -> i64 {
    count(db, "SELECT count(*) FROM order_events")
}

fn events_after(db: &Connection, before: i64, kind: &str) -> i64 {
    count(
        db,
        &format!("SELECT count(*) FROM order_events WHERE id > {before} AND kind = '{kind}'"),
    )
}

fn last_event_id(db: &Connection) -> i64 {
    count(db, "SELECT coalesce(max(id), 0) FROM order_events")
}

pub(crate) fn header<'a>(r: &'a ordersync_sim::RecordedRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_on_old_orders_and_new_orders_give_exactly_one_event_each() {
    let shop = Shop::open("ak-shop", 600).await;
    let setup = setup_with(
        "ak.toml",
        &shop.toml(Creds::Token(TOKEN), "lookback = \"15m\""),
    );
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = last_event_id(&db);

    // Open orders placed hours before the lookback window, untouched since the first sync.
    let old: Vec<TruthOrder> = shop.sim.truth()[..400]
        .iter()
        .filter(|o| matches!(o.status, 100 | 200 | 300))
        .take(20)
        .cloned()
        .collect();
    assert!(
        old.len() >= 10,
        "the simulator has old open orders to change"
    );
    for o in &old {
        shop.sim.set_status(&o.id, 500);
    }
    let new = shop.sim.add_orders(7);

    sync(&setup).await.unwrap();
    assert_eq!(
        events_after(&db, before, "status_changed"),
        old.len() as i64
    );
    assert_eq!(events_after(&db, before, "created"), new.len() as i64);
    assert_eq!(
        last_event_id(&db) - before,
        (old.len() + new.len()) as i64,
        "nothing else"
    );
    for o in &old {
        let (from, to, changes): (String, String, String) = db
            .query_row(
                "SELECT old_status, new_status, changes FROM order_events
                 WHERE order_id = ?1 AND kind = 'status_changed'",
                [&o.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(from, canonical(o.status));
        assert_eq!(to, "shipped");
        assert!(
            changes.contains("platform_status") && changes.contains("items"),
            "{changes}"
        );
    }
    assert_store_matches(&db, "ak-shop", &shop.sim.truth());

    sync(&setup).await.unwrap();
    assert_eq!(
        last_event_id(&db) - before,
        (old.len() + new.len()) as i64,
        "nothing on a third sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_on_one_line_alone_is_found_and_stored_on_that_line() {
    let shop = Shop::open("ak-shop", 300).await;
    let setup = setup_with("ak.toml", &shop.toml(Creds::Token(TOKEN), ""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let before = last_event_id(&db);

    let order = shop.sim.truth()[..200]
        .iter()
        .find(|o| matches!(o.status, 100 | 200) && o.items.len() >= 2)
        .cloned()
        .expect("an old open order with two lines");
    let line = &order.items[0];
    shop.sim.set_item_status(&line.id, 800);
    assert_eq!(
        shop.order(&order.id).status,
        order.status,
        "the order itself is untouched"
    );

    sync(&setup).await.unwrap();
    assert_eq!(
        last_event_id(&db) - before,
        1,
        "one event for one changed order"
    );
    let (kind, from, to, changes): (String, String, String, String) = db
        .query_row(
            "SELECT kind, old_status, new_status, changes FROM order_events WHERE id > ?1",
            [before],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    // The order's own status did not move, so its canonical status did not either.
    assert_eq!(kind, "updated");
    assert_eq!(
        (from.as_str(), to.as_str()),
        (canonical(order.status), canonical(order.status))
    );
    assert!(
        changes.contains("items") && !changes.contains("platform_status"),
        "{changes}"
    );
    let line_status: String = db
        .query_row(
            "SELECT status FROM order_items WHERE order_id = ?1 AND item_id = ?2",
            [&order.id, &line.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(line_status, "800");
    assert_store_matches(&db, "ak-shop", &shop.sim.truth());
    let reread_by_number = shop.sim.requests().iter().any(|r| {
        r.path_and_query.starts_with("/api/i1/orders/")
            && r.path_and_query
                .contains(&format!("number={}", order.number))
    });
    assert!(reread_by_number, "the order was read again by its number");

    sync(&setup).await.unwrap();
    assert_eq!(
        last_event_id(&db) - before,
        1,
        "nothing more on a third sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_status_integers_are_kept_as_text_with_canonical_unknown() {
    let shop = Shop::open("ak-shop", 120).await;
    let setup = setup_with("ak.toml", &shop.toml(Creds::Token(TOKEN), ""));
    sync(&setup).await.unwrap();
    let db = setup.db();
    let id = shop.sim.truth()[30].id.clone();
    shop.sim.set_status(&id, 450);

    sync(&setup).await.unwrap();
    let (status, platform_status): (String, String) = db
        .query_row(
            "SELECT status, platform_status FROM orders WHERE order_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), platform_status.as_str()),
        ("unknown", "450")
    );
    let to: String = db
        .query_row(
            "SELECT new_status FROM order_events WHERE order_id = ?1 AND kind = 'status_changed'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(to, "unknown");
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM order_items WHERE order_id = '{id}' AND status <> '450'"
            )
        ),
        0,
        "the lines keep their unknown status too"
    );
    assert_store_matches(&db, "ak-shop", &shop.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pass_resumes_at_its_checkpoint_without_losing_or_repeating_an_order() {
    let shop = Shop::open("ak-shop", 600).await;
    let setup = setup_with("ak.toml", &shop.toml(Creds::Token(TOKEN), ""));
    // The eighth request is refused for good (a 4xx is not retried): the pass stops there.
    shop.sim.faults().push_n(Fault::Slow(Duration::ZERO), 7);
    shop.sim.faults().push(Fault::Status(400));

    let err = sync(&setup).await.unwrap_err();
    assert!(err.contains("ak-shop") && err.contains("HTTP 400"), "{err}");
    let db = setup.db();
    let stored = count(&db, "SELECT count(*) FROM orders");
    assert!(stored > 0 && stored < 600, "some pages committed: {stored}");
    assert_eq!(events(&db), stored, "each committed order has its event");
    let failed_at = shop.sim.request_count();

    sync(&setup).await.unwrap();
    let resumed = &shop.sim.requests()[failed_at];
    let page: String =
        url::form_urlencoded::parse(resumed.path_and_query.split_once('?').unwrap().1.as_bytes())
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.into_owned())
            .unwrap();
    assert!(
        resumed.path_and_query.starts_with("/api/i1/orders/") && page != "1",
        "the pass resumes at the page it had not committed: {}",
        resumed.path_and_query
    );
    assert_store_matches(&db, "ak-shop", &shop.sim.truth());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM order_events WHERE kind = 'created'"
        ),
        600
    );
    assert_eq!(events(&db), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_another_host_and_an_unhonoured_limit_are_followed_to_the_end() {
    let shop = Shop::open_with(
        "ak-shop",
        SimOptions {
            orders: 250,
            max_page_size: 40,
            link_base: Some("http://akinon-backend.invalid:8000".into()),
            ..SimOptions::default()
        },
    )
    .await;
    let setup = setup_with(
        "ak.toml",
        &shop.toml(Creds::Token(TOKEN), "page_size = 100"),
    );
    sync(&setup).await.unwrap();
    let db = setup.db();
    assert_store_matches(&db, "ak-shop", &shop.sim.truth());
    let last_orders_page = shop.sim.requests().into_iter().any(|r| {
        r.path_and_query.starts_with("/api/i1/orders/") && r.path_and_query.contains("page=7")
    });
    assert!(last_orders_page, "250 orders at 40 a page take 7 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_json_content_type_the_api_answers_415_and_the_client_always_sends_it() {
    let shop = Shop::open("ak-shop", 50).await;
    ordersync::http::install_crypto_provider();
    let http = reqwest::Client::new();
    let url = format!("{}/api/i1/orders/", shop.server.base_url());
    let bare = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bare.status(), 415);
    let wrong = http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Content-Type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 415);
    let json = http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);

    let before = shop.sim.request_count();
    let setup = setup_with("ak.toml", &shop.toml(Creds::Token(TOKEN), ""));
    sync(&setup).await.unwrap();
    let sent = &shop.sim.requests()[before..];
    assert!(sent.len() >= 3, "orders, their items and the item scan");
    for r in sent {
        assert_eq!(
            header(r, "content-type"),
            Some("application/json"),
            "{}",
            r.path_and_query
        );
        assert_eq!(r.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_obtains_the_token_and_a_token_revoked_mid_sync_is_replaced_once() {
    let opts = SimOptions {
        orders: 300,
        token: String::new(),
        ..SimOptions::default()
    };
    let (email, password) = (opts.email.clone(), opts.password.clone());
    let shop = Shop::open_with("ak-shop", opts).await;
    let setup = setup_with(
        "ak.toml",
        &shop.toml(
            Creds::Login {
                email: &email,
                password: &password,
            },
            "",
        ),
    );
    shop.sim.revoke_tokens_after(5);

    sync(&setup).await.unwrap();
    let requests = shop.sim.requests();
    let logins: Vec<&ordersync_sim::RecordedRequest> = requests
        .iter()
        .filter(|r| r.path_and_query == "/api/i1/token/obtain/")
        .collect();
    assert_eq!(
        logins.len(),
        2,
        "one login, then one more after the revocation"
    );
    assert_eq!(shop.sim.logins(), 2);
    assert_eq!(
        requests[0].path_and_query, "/api/i1/token/obtain/",
        "the login comes first"
    );
    assert_eq!(logins[0].method, "POST");
    let body: serde_json::Value = serde_json::from_str(&logins[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "email": email, "password": password })
    );
    assert_eq!(requests.iter().filter(|r| r.status == 401).count(), 1);
    let refused = requests.iter().position(|r| r.status == 401).unwrap();
    assert_eq!(
        requests[refused + 1].path_and_query,
        "/api/i1/token/obtain/"
    );
    assert_eq!(
        requests[refused + 2].path_and_query,
        requests[refused].path_and_query,
        "the refused request is sent again with the new token"
    );
    assert_store_matches(&setup.db(), "ak-shop", &shop.sim.truth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_after_one_login_attempt() {
    let shop = Shop::open_with(
        "ak-shop",
        SimOptions {
            orders: 20,
            token: String::new(),
            ..SimOptions::default()
        },
    )
    .await;
    let creds = Creds::Login {
        email: "seller@demo.akinon.test",
        password: "wrong-password-value",
    };
    let setup = setup_with("ak.toml", &shop.toml(creds, ""));

    let err = sync(&setup).await.unwrap_err();
    assert!(
        err.contains("ak-shop") && err.contains("credentials"),
        "{err}"
    );
    assert!(!err.contains("wrong-password-value"), "{err}");
    assert_eq!(shop.sim.request_count(), 1, "one login attempt, no loop");
    assert_eq!(shop.sim.logins(), 0);
    assert_eq!(count(&setup.db(), "SELECT count(*) FROM orders"), 0);
}

#[test]
fn the_example_platform_file_loads_with_the_main_example() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let setup = Setup::new();
    std::fs::copy(repo.join("ordersync.toml"), setup.main_file()).unwrap();
    let example = std::fs::read_to_string(repo.join("platforms.d/akinon-example.toml")).unwrap();
    let platforms_dir = setup.dir.path().join("platforms.d");
    std::fs::write(platforms_dir.join("akinon-example.toml"), &example).unwrap();

    let config =
        ordersync::config::load_with_env(&setup.main_file(), ordersync::platforms::kinds(), &[])
            .unwrap_or_else(|e| panic!("the example does not load: {e}"));
    assert_eq!(config.platforms.len(), 1);
    let p = &config.platforms[0];
    assert_eq!(p.kind, ordersync::platforms::akinon::DESCRIPTOR.kind);
    assert_eq!(p.reconcile_schedule, None, "akinon needs no reconcile pass");
    assert!(p.auth.get("token").is_some());
    let redactor = ordersync::http::Redactor::default();
    let connector = ordersync::platforms::Connector::new(
        p,
        &redactor,
        tokio_util::sync::CancellationToken::new(),
    );
    assert!(connector.is_ok(), "the example builds an akinon client");
}
