//! The declarative `rest` kind beyond the conformance suite: `check` on a description full of
//! mistakes, `doctor` showing a described platform's first record mapped field by field, and the
//! shipped example file.

use crate::common::{Setup, stderr, stdout};

/// A description with eleven typical mistakes, one per line marked `# (n)`.
const MISTAKES: &str = r#"
[platforms.bad]
kind = "rest"
base_url = "https://api.example.com"

[platforms.bad.auth]
client_id = "the-client"
client_secret = "the-secret"

[platforms.bad.api.auth]
style = "login"
path = "/oauth/token"
body = { client_id = "{auth.client_id}", client_secret = "{auth.password}" } # (1)
# (2) no `token`

[platforms.bad.api.list]
path = "v3/orders" # (3)
query = { updated_since = "{window.form}", per_page = "{limit}" } # (4)
filter = "modified" # (5)
time_format = "epoch_secs" # (6)

[platforms.bad.api.pages]
style = "next_link" # (7) without `next`

[platforms.bad.api.records]
list = "orders" # (8)
id = "/id"
placed_at = { pointer = "/created_at", format = "%Y-%m-%d %Q" } # (9)
totl = "/money/total" # (10)

[platforms.bad.api.push.sent] # (11)
method = "POST"
path = "/v3/orders/{order.id}/ship"
"#;

#[test]
fn check_names_every_mistake_in_a_description_with_its_file_and_key_at_once() {
    let setup = Setup::new();
    setup.add_platform_file("bad.toml", MISTAKES);
    // Two mistakes of the platform table around a description.
    setup.add_platform_file(
        "tables.toml",
        "[platforms.builtin]\nkind = \"merchantpro\"\nbase_url = \"https://a.example\"\n\
         [platforms.builtin.auth]\napi_key = \"k\"\napi_secret = \"s\"\n\
         [platforms.builtin.api.pages]\nstyle = \"page\"\n\
         [platforms.undescribed]\nkind = \"rest\"\nbase_url = \"https://b.example\"\n",
    );

    let out = setup.ordersync(&["check"]);

    assert_eq!(out.status.code(), Some(78), "EX_CONFIG: {}", stderr(&out));
    let report = stderr(&out);
    let file = setup.dir.path().join("platforms.d/bad.toml");
    let file = file.display().to_string();
    let api = "platforms.bad.api";
    let expected = [
        (
            format!("{api}.auth.body.client_secret"),
            "auth key `password`",
        ),
        (format!("{api}.auth.token"), "missing"),
        (format!("{api}.list.path"), "must start with `/`"),
        (
            format!("{api}.list.query.updated_since"),
            "did you mean `{window.from}`",
        ),
        (format!("{api}.list.filter"), "not one of updated, created"),
        (format!("{api}.list.time_format"), "not a time format"),
        (format!("{api}.pages.next"), "next page's link"),
        (format!("{api}.records.list"), "must start with `/`"),
        (
            format!("{api}.records.placed_at.format"),
            "not a strftime pattern",
        ),
        (format!("{api}.records.totl"), "did you mean `total`"),
        (format!("{api}.push.sent"), "not a canonical status"),
    ];
    for (key, message) in &expected {
        assert!(
            report
                .lines()
                .any(|l| l.contains(&format!("{file}: {key}: ")) && l.contains(message)),
            "no line names {file}: {key} with {message:?}:\n{report}"
        );
    }
    let tables = setup.dir.path().join("platforms.d/tables.toml");
    for (key, message) in [
        ("platforms.builtin.api", "takes no [api] table"),
        ("platforms.undescribed.api", "missing"),
    ] {
        let at = format!("{}: {key}: ", tables.display());
        assert!(
            report
                .lines()
                .any(|l| l.contains(&at) && l.contains(message)),
            "no line names {at} with {message:?}:\n{report}"
        );
    }
    assert!(
        !report.contains("the-secret"),
        "no secret in the report:\n{report}"
    );
}

#[test]
fn the_shipped_descriptions_pass_check_as_they_are() {
    let setup = Setup::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/platforms.d");
    for file in [
        "rest-example.toml",
        "merchantpro-rest-example.toml",
        "sirclo-rest-example.toml",
    ] {
        setup.add_platform_file(file, &std::fs::read_to_string(repo.join(file)).unwrap());
    }

    let out = setup.ordersync(&["check"]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout(&out) + &stderr(&out);
    for name in ["novashop", "shop-ro-rest", "sirclo-id-rest"] {
        assert!(report.contains(name), "{name} is listed:\n{report}");
    }
}

mod novashop_push {
    //! Pushing to Novashop, a platform known only by its description: each transition sent
    //! once as the description renders it, a lost answer read back instead of sent again, a
    //! refusal failing with the platform's words, and a revoked token replaced by one login.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::Utc;
    use ordersync::cli::SyncArgs;
    use ordersync::daemon::{self, Platform};
    use ordersync::http::Redactor;
    use ordersync::model::Status;
    use ordersync::outbox::{self, Action, Params};
    use ordersync_sim::Fault;
    use tokio_util::sync::CancellationToken;

    use crate::common::{Queue, Setup, count, stderr};
    use crate::conformance::Credentials;
    use crate::conformance::novashop::Novashop;

    struct Shop {
        shop: Novashop,
        setup: Setup,
    }

    impl Shop {
        async fn synced(orders: usize) -> Shop {
            let shop = Novashop::open("novashop", orders).await;
            let setup = Setup::new();
            setup.add_platform_file(
                "novashop.toml",
                &shop.toml(Credentials::Right, "timeout = \"1s\""),
            );
            ordersync::cli::sync(setup.config(), SyncArgs::default())
                .await
                .unwrap();
            Shop { shop, setup }
        }

        fn order_in(&self, state: &str, skip: usize) -> u64 {
            self.shop
                .sim
                .truth()
                .into_iter()
                .filter(|o| o.state == state)
                .nth(skip)
                .unwrap_or_else(|| panic!("the simulator has a {state} order"))
                .id
        }

        async fn queue(&self, order: u64, to: Status, params: Params, q: Queue) -> i64 {
            outbox::enqueue(
                &self.store(),
                self.setup.config().platform("novashop").unwrap(),
                &order.to_string(),
                Action::Status(to),
                &params,
                q.check(),
                Utc::now(),
            )
            .await
            .unwrap()
        }

        fn platforms(&self) -> BTreeMap<String, Arc<Platform>> {
            daemon::build_platforms(
                &self.setup.config(),
                &Redactor::default(),
                &CancellationToken::new(),
                &daemon::RunLocks::default(),
            )
        }

        fn store(&self) -> ordersync::store::Store {
            ordersync::store::Store::open(&self.setup.db_path()).unwrap()
        }

        async fn drain(&self) -> outbox::DrainReport {
            self.drain_at(Utc::now()).await
        }

        async fn drain_at(&self, now: chrono::DateTime<Utc>) -> outbox::DrainReport {
            outbox::drain_once(&self.store(), &self.platforms(), now)
                .await
                .unwrap()
        }

        fn posts_to(&self, order: u64) -> Vec<ordersync_sim::RecordedRequest> {
            let path = format!("/v3/orders/{order}/transitions");
            self.shop
                .sim
                .requests()
                .into_iter()
                .filter(|r| r.method == "POST" && r.path_and_query == path)
                .collect()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_transition_is_sent_once_as_described_and_the_next_sync_confirms_it() {
        let f = Shop::synced(300).await;
        let cases = [
            (f.order_in("paid", 0), Status::Processing, None, "packing"),
            (
                f.order_in("packing", 0),
                Status::Shipped,
                Some("TRK-5521"),
                "shipped",
            ),
            (
                f.order_in("shipped", 0),
                Status::Delivered,
                None,
                "delivered",
            ),
            (
                f.order_in("pending", 0),
                Status::Cancelled,
                None,
                "cancelled",
            ),
        ];
        for (order, to, tracking, _) in &cases {
            let params = Params {
                tracking_number: tracking.map(str::to_string),
                ..Params::default()
            };
            f.queue(*order, *to, params, Queue::Checked).await;
        }

        let report = f.drain().await;

        assert_eq!(
            (report.done, report.failed, report.retried),
            (4, 0, 0),
            "{report:?}"
        );
        let mut sent = f.shop.sim.transitions();
        sent.sort();
        let mut expected: Vec<(u64, String, Option<String>)> = cases
            .iter()
            .map(|(o, _, t, state)| (*o, state.to_string(), t.map(str::to_string)))
            .collect();
        expected.sort();
        assert_eq!(sent, expected, "each transition reached the platform once");
        for (order, _, tracking, state) in &cases {
            let posts = f.posts_to(*order);
            assert_eq!(posts.len(), 1, "one request for {order}");
            let body: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
            let mut want = serde_json::json!({ "to": state });
            if let Some(t) = tracking {
                want["tracking_number"] = serde_json::json!(t);
            }
            assert_eq!(body, want, "the body as the description renders it");
            assert!(
                posts[0]
                    .headers
                    .iter()
                    .any(|(k, v)| k == "authorization" && v.starts_with("Bearer ")),
                "with the login's token"
            );
        }

        let db = f.setup.db();
        let before = count(&db, "SELECT max(id) FROM order_events");
        ordersync::cli::sync(f.setup.config(), SyncArgs::default())
            .await
            .unwrap();
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT count(*) FROM order_events WHERE id > {before} AND kind = 'push_confirmed'"
                )
            ),
            4,
            "the next sync sees every push arrive"
        );
        crate::conformance::novashop::assert_store_matches(&db, "novashop", &f.shop.sim.truth());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_answer_is_read_back_and_the_transition_is_not_sent_again() {
        let f = Shop::synced(200).await;
        let order = f.order_in("paid", 0);
        let id = f
            .queue(order, Status::Processing, Params::default(), Queue::Checked)
            .await;
        // The drain logs in first (answered normally); then the platform applies the
        // transition, but its answer never arrives.
        f.shop
            .sim
            .faults()
            .push(Fault::Slow(std::time::Duration::ZERO));
        f.shop.sim.faults().push(Fault::DropConnection);

        let first = f.drain().await;
        assert_eq!((first.done, first.retried), (0, 1), "{first:?}");
        let row = crate::common::outbox_row(&f.setup.db(), id);
        assert_eq!(row.state, "pending", "retried later");

        // Once its backoff has run out.
        let second = f.drain_at(Utc::now() + chrono::Duration::hours(1)).await;

        assert_eq!((second.done, second.already_applied), (1, 1), "{second:?}");
        assert_eq!(
            f.posts_to(order).len(),
            1,
            "sent once, read back the second time"
        );
        assert_eq!(
            f.shop.sim.transitions(),
            [(order, "packing".to_string(), None)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_transition_fails_at_once_with_the_platforms_words() {
        let f = Shop::synced(200).await;
        let order = f.order_in("pending", 0);
        // Forced past the state machine: the platform is the one that refuses.
        let id = f
            .queue(order, Status::Delivered, Params::default(), Queue::Forced)
            .await;

        let report = f.drain().await;

        assert_eq!((report.done, report.failed), (0, 1), "{report:?}");
        let row = crate::common::outbox_row(&f.setup.db(), id);
        assert_eq!(row.state, "failed");
        let error = row.error.unwrap_or_default();
        assert!(
            error.contains("409") && error.contains("cannot go from pending to delivered"),
            "{error}"
        );
        assert!(f.shop.sim.transitions().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_token_is_replaced_by_one_new_login() {
        let f = Shop::synced(200).await;
        assert_eq!(f.shop.sim.logins(), 1);
        f.shop.sim.revoke_tokens();
        f.shop.sim.set_status(f.order_in("pending", 0), "paid");

        ordersync::cli::sync(f.setup.config(), SyncArgs::default())
            .await
            .unwrap();

        assert_eq!(
            f.shop.sim.logins(),
            2,
            "one login per process, and one after the refusal"
        );
        crate::conformance::novashop::assert_store_matches(
            &f.setup.db(),
            "novashop",
            &f.shop.sim.truth(),
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transition_refuses_a_status_the_description_cannot_push() {
        let f = Shop::synced(100).await;
        let order = f.order_in("delivered", 0).to_string();
        let setup = f.setup;
        let out = tokio::task::spawn_blocking(move || {
            setup.ordersync(&["transition", "novashop", &order, "returned"])
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("processing, shipped, delivered, cancelled"),
            "names what it can push: {}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_first_record_mapped_field_by_field_and_names_the_pointer_it_cannot_read()
{
    use crate::conformance::Credentials;
    use crate::conformance::novashop::Novashop;

    let shop = Novashop::open("novashop", 60).await;
    let setup = Setup::new();
    setup.add_platform_file("novashop.toml", &shop.toml(Credentials::Right, ""));
    // The login, then the page with its second record spoilt.
    shop.sim
        .faults()
        .push(ordersync_sim::Fault::Slow(std::time::Duration::ZERO));
    shop.sim
        .faults()
        .push(ordersync_sim::Fault::MalformedRecord);

    let out = tokio::task::spawn_blocking(move || setup.ordersync(&["doctor", "--json"]))
        .await
        .unwrap();

    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let platform = &report["platforms"][0];
    let step = |name: &str| {
        platform["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["step"] == name)
            .unwrap_or_else(|| panic!("no {name} step: {platform}"))
            .clone()
    };
    assert_eq!(step("credentials")["ok"], true);
    let mapping = step("mapping");
    assert_eq!(
        mapping["ok"], false,
        "one record of the page cannot be read"
    );
    let detail = mapping["detail"].as_str().unwrap();
    assert!(
        detail.contains("record 1")
            && detail.contains("`/id`")
            && detail.contains("platforms.novashop.api.records.id"),
        "the reason names the record, the pointer and the key: {detail}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let fields: Vec<(String, String, String)> = platform["first_record"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("field"), s("value"), s("from"))
        })
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.0 == name)
            .unwrap_or_else(|| panic!("no {name}: {fields:?}"))
            .clone()
    };
    let (_, id, from) = field("order_id");
    assert_eq!(from, "`/id`");
    let truth = shop
        .sim
        .truth()
        .into_iter()
        .find(|t| t.id.to_string() == id)
        .expect("the first record is one of the shop's orders");
    assert_eq!(
        field("number"),
        (
            "number".into(),
            truth.reference.clone(),
            "`/reference`".into()
        )
    );
    assert_eq!(field("total").1, truth.total.normalize().to_string());
    assert_eq!(field("total").2, "`/money/total`");
    assert!(
        field("status")
            .1
            .starts_with(Novashop::canonical(&truth.state))
    );
    assert_eq!(field("updated_at").2, "`/updated`");
    assert_eq!(
        fields.iter().filter(|f| f.0 == "item").count(),
        truth.lines.len(),
        "one row per line"
    );
}

mod paging {
    //! Every paging style, window format and the `none` and `header` auth styles against one
    //! small API served by the test: the same 230 orders listed five ways, each listing checking
    //! the window bound it is sent is written in its platform's format.

    use std::collections::HashMap;
    use std::sync::Arc;

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use ordersync::cli::SyncArgs;

    use crate::common::{Setup, count};

    const ORDERS: usize = 230;
    const KEY: &str = "k3y-for-the-header-style";

    fn record(i: usize) -> serde_json::Value {
        serde_json::json!({
            "id": 1000 + i,
            "state": if i.is_multiple_of(3) { "open" } else { "done" },
            "changed": 1_700_000_000_000_i64 + i as i64 * 1000,
            "sum": format!("{}.{:02}", i, i % 100),
            "lines": [{"sku": format!("S{i}"), "qty": 1 + i % 4}],
        })
    }

    type Q = Query<HashMap<String, String>>;

    fn limit(q: &HashMap<String, String>) -> usize {
        q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50)
    }

    /// A 400 unless `since` is written as `format` says.
    fn refused(q: &HashMap<String, String>, format: &str) -> Option<Response> {
        let since = q.get("since").map(String::as_str).unwrap_or("");
        let ok = match format {
            "rfc3339" => chrono::DateTime::parse_from_rfc3339(since).is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d").is_ok(),
            "epoch_seconds" => since.len() == 10 && since.parse::<i64>().is_ok(),
            "epoch_millis" => since.len() == 13 && since.parse::<i64>().is_ok(),
            _ => chrono::NaiveDateTime::parse_from_str(since, "%d/%m/%Y %H.%M.%S").is_ok(),
        };
        (!ok).then(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("since {since:?} is not {format}"),
            )
                .into_response()
        })
    }

    fn slice(from: usize, n: usize) -> Vec<serde_json::Value> {
        (from..(from + n).min(ORDERS)).map(record).collect()
    }

    async fn by_page(q: Q) -> Response {
        if let Some(r) = refused(&q, "rfc3339") {
            return r;
        }
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let n = limit(&q);
        axum::Json(serde_json::json!({"result": {"items": slice(page * n, n)}, "pages": ORDERS.div_ceil(n)})).into_response()
    }

    async fn by_offset(q: Q) -> Response {
        if let Some(r) = refused(&q, "date") {
            return r;
        }
        let offset: usize = q.get("skip").and_then(|p| p.parse().ok()).unwrap_or(0);
        axum::Json(serde_json::json!({"items": slice(offset, limit(&q)), "count": ORDERS}))
            .into_response()
    }

    async fn by_cursor(headers: HeaderMap, q: Q) -> Response {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
            return (StatusCode::UNAUTHORIZED, "no key").into_response();
        }
        if let Some(r) = refused(&q, "epoch_seconds") {
            return r;
        }
        // The cursor is opaque: the next record's position, disguised.
        let at: usize = q
            .get("after")
            .and_then(|c| c.strip_prefix("c-"))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let n = limit(&q);
        let next = (at + n < ORDERS).then(|| format!("c-{}", at + n));
        axum::Json(serde_json::json!({"items": slice(at, n), "next_cursor": next})).into_response()
    }

    async fn by_next_link(q: Q) -> Response {
        if q.get("token").is_none()
            && let Some(r) = refused(&q, "epoch_millis")
        {
            return r;
        }
        let at: usize = q.get("token").and_then(|c| c.parse().ok()).unwrap_or(0);
        let n = 40;
        let next = (at + n < ORDERS).then(|| format!("/api/next?token={}", at + n));
        axum::Json(serde_json::json!({"items": slice(at, n), "links": {"next": next}}))
            .into_response()
    }

    async fn by_link_header(State(base): State<Arc<String>>, q: Q) -> Response {
        if q.get("p").is_none()
            && let Some(r) = refused(&q, "pattern")
        {
            return r;
        }
        let p: usize = q.get("p").and_then(|c| c.parse().ok()).unwrap_or(0);
        let n = 60;
        let mut resp = axum::Json(serde_json::json!({"items": slice(p * n, n)})).into_response();
        if (p + 1) * n < ORDERS {
            let link = format!("<{base}/api/link?p={}>; rel=\"next\"", p + 1);
            resp.headers_mut()
                .insert("link", HeaderValue::from_str(&link).unwrap());
        }
        resp
    }

    const RECORDS: &str = r#"
[platforms.NAME.api.records]
list = "LIST"
id = "/id"
status = "/state"
updated_at = { pointer = "/changed", format = "epoch_millis" }
total = "/sum"
[platforms.NAME.api.records.items]
list = "/lines"
sku = "/sku"
quantity = "/qty"
"#;

    fn platform(
        name: &str,
        base: &str,
        auth: &str,
        list: &str,
        pages: &str,
        records_at: &str,
    ) -> String {
        format!(
            "[platforms.{name}]\nkind = \"rest\"\nbase_url = \"{base}\"\npage_size = 50\n\
             backfill_from = \"2024-01-01T00:00:00Z\"\nmax_requests_per_second = 1000\n\
             status_map = {{ open = \"pending\", done = \"delivered\" }}\n\
             [platforms.{name}.auth]\napi_key = \"{KEY}\"\n\
             [platforms.{name}.api.auth]\n{auth}\n\
             [platforms.{name}.api.list]\nfilter = \"updated\"\n{list}\n\
             [platforms.{name}.api.pages]\n{pages}\n{}",
            RECORDS.replace("NAME", name).replace("LIST", records_at)
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_paging_style_reads_every_order_exactly_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/api/page", get(by_page))
            .route("/api/offset", get(by_offset))
            .route("/api/cursor", get(by_cursor))
            .route("/api/next", get(by_next_link))
            .route("/api/link", get(by_link_header))
            .with_state(Arc::new(base.clone()));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let none = "style = \"none\"";
        let platforms = [
            platform(
                "by-page",
                &base,
                none,
                "path = \"/api/page\"\nquery = { since = \"{window.from}\", page = \"{page}\", limit = \"{limit}\" }",
                "style = \"page\"\nfirst_page = 0\npage_count = \"/pages\"\nshort_page_ends = false",
                "/result/items",
            ),
            platform(
                "by-offset",
                &base,
                none,
                "path = \"/api/offset\"\nquery = { since = \"{window.from}\", skip = \"{offset}\", limit = \"{limit}\" }\ntime_format = \"date\"",
                "style = \"offset\"\ntotal = \"/count\"",
                "/items",
            ),
            platform(
                "by-cursor",
                &base,
                "style = \"header\"\nname = \"X-Api-Key\"\nvalue = \"{auth.api_key}\"",
                "path = \"/api/cursor\"\nquery = { since = \"{window.from}\", after = \"{cursor}\", limit = \"{limit}\" }\ntime_format = \"epoch_seconds\"",
                "style = \"cursor\"\nnext = \"/next_cursor\"",
                "/items",
            ),
            platform(
                "by-next-link",
                &base,
                none,
                "path = \"/api/next\"\nquery = { since = \"{window.from}\" }\ntime_format = \"epoch_millis\"",
                "style = \"next_link\"\nnext = \"/links/next\"",
                "/items",
            ),
            platform(
                "by-link-header",
                &base,
                none,
                "path = \"/api/link\"\nquery = { since = \"{window.from}\" }\ntime_format = \"%d/%m/%Y %H.%M.%S\"",
                "style = \"link_header\"",
                "/items",
            ),
        ];
        let setup = Setup::new();
        for (i, toml) in platforms.iter().enumerate() {
            setup.add_platform_file(&format!("p{i}.toml"), toml);
        }

        ordersync::cli::sync(setup.config(), SyncArgs::default())
            .await
            .map_err(|e| format!("{:#}", e.error.unwrap()))
            .unwrap();

        let db = setup.db();
        for name in [
            "by-page",
            "by-offset",
            "by-cursor",
            "by-next-link",
            "by-link-header",
        ] {
            let sql = |what: &str| format!("SELECT {what} FROM orders WHERE platform = '{name}'");
            assert_eq!(
                count(&db, &sql("count(*)")),
                ORDERS as i64,
                "{name}: every order"
            );
            assert_eq!(
                count(&db, &sql("count(DISTINCT order_id)")),
                ORDERS as i64,
                "{name}: once each"
            );
            assert_eq!(
                count(
                    &db,
                    &format!("SELECT count(*) FROM order_events WHERE platform = '{name}'")
                ),
                ORDERS as i64,
                "{name}: one event per order"
            );
            assert_eq!(
                count(
                    &db,
                    &sql("count(*)").replace("count(*)", "sum(status = 'pending')")
                ),
                ORDERS.div_ceil(3) as i64,
                "{name}: statuses mapped"
            );
            let (total, updated): (String, String) = db
                .query_row(
                    &sql("total, updated_at")
                        .replace("platform = ", "order_id = '1123' AND platform = "),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(total, "123.23", "{name}: the amount, exact");
            assert!(
                updated.starts_with("2023-11-14T22:15:23"),
                "{name}: epoch millis read: {updated}"
            );
        }
        server.abort();
    }
}
