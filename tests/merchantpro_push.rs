//! Pushing status transitions to MerchantPro through the outbox: the exact documented requests,
//! confirmation by the next sync, refusals, retry schedules, permanent failures, and crashes at
//! the two dangerous instants of a push.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use ordersync::http::Redactor;
use ordersync::outbox::{self, Action, Params};
use ordersync::platforms::model::Status;
use ordersync::scheduler::{self, Platform};
use ordersync::sim::Fault;
use tokio_util::sync::CancellationToken;

struct Fixture {
    shop: Shop,
    setup: Setup,
}

impl Fixture {
    async fn synced(orders: usize) -> Fixture {
        let shop = Shop::open("shop-ro", orders).await;
        let setup = Setup::new();
        setup.add_platform_file(
            "shop-ro.toml",
            &shop.platform_toml(
                "[platforms.shop-ro.retry]\nmax_attempts = 4\ninitial_interval = \"10s\"\nmax_interval = \"10m\"",
            ),
        );
        ordersync::cli::sync(setup.config(), &[], false, false)
            .await
            .unwrap();
        Fixture { shop, setup }
    }

    /// An order the simulator holds in `status`, not yet used by this test.
    fn order_in(&self, status: &str, skip: usize) -> u64 {
        self.shop
            .sim
            .truth()
            .into_iter()
            .filter(|o| o.shipping_status == status)
            .nth(skip)
            .unwrap_or_else(|| panic!("the simulator has a {status} order"))
            .id
    }

    fn queue(
        &self,
        order: u64,
        action: Action,
        params: Params,
        force: bool,
    ) -> Result<i64, String> {
        let config = self.setup.config();
        let mut conn = self.setup.db();
        outbox::enqueue(
            &mut conn,
            config.platform("shop-ro").unwrap(),
            &order.to_string(),
            action,
            &params,
            force,
            Utc::now(),
        )
        .map_err(|e| e.to_string())
    }

    fn platforms(&self) -> BTreeMap<String, Arc<Platform>> {
        scheduler::build_platforms(
            &self.setup.config(),
            &Redactor::default(),
            &CancellationToken::new(),
            &scheduler::RunLocks::default(),
        )
    }

    fn store(&self) -> ordersync::store::Store {
        ordersync::store::Store::open(&self.setup.db_path()).unwrap()
    }

    fn row(&self, id: i64) -> (String, i64, String, Option<String>) {
        self.setup
            .db()
            .query_row(
                "SELECT state, attempts, next_attempt_at, last_error FROM outbox WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    /// The requests the simulator saw whose path starts with `prefix`.
    fn requests_to(&self, prefix: &str) -> Vec<ordersync::sim::RecordedRequest> {
        self.shop
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.path_and_query.starts_with(prefix))
            .collect()
    }
}

fn status(s: Status) -> Action {
    Action::Status(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transition_sends_the_documented_request_and_the_next_sync_confirms_it() {
    let f = Fixture::synced(400).await;
    let cases = [
        (
            f.order_in("confirmed", 0),
            status(Status::Processing),
            None,
            "in_process",
        ),
        (
            f.order_in("in_process", 0),
            status(Status::Shipped),
            Some("AWB-7781"),
            "shipped",
        ),
        (
            f.order_in("shipped", 0),
            status(Status::Delivered),
            None,
            "delivered",
        ),
        (
            f.order_in("delivered", 0),
            status(Status::Returned),
            None,
            "returned",
        ),
        (
            f.order_in("awaiting", 0),
            status(Status::Cancelled),
            None,
            "cancelled",
        ),
        (
            f.order_in("delivered", 1),
            Action::Invoice,
            None,
            "create_invoice",
        ),
    ];
    for (order, action, awb, _) in &cases {
        let params = Params {
            tracking_number: awb.map(str::to_string),
            ..Params::default()
        };
        f.queue(*order, *action, params, false).unwrap();
    }
    let report = outbox::drain_once(&f.store(), &f.platforms(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (report.done, report.failed, report.retried),
        (6, 0, 0),
        "{report:?}"
    );

    let auth = ordersync::sim::basic_auth_header("demo-key", "demo-secret");
    for (order, _, awb, handler) in &cases {
        let sent = f.requests_to(&format!("/api/v2/orders/{order}"));
        let patches: Vec<_> = sent.iter().filter(|r| r.method == "PATCH").collect();
        let expected = if awb.is_some() { 2 } else { 1 };
        assert_eq!(patches.len(), expected, "order {order}: {patches:#?}");
        if let Some(awb) = awb {
            assert_eq!(patches[0].path_and_query, format!("/api/v2/orders/{order}"));
            let body: serde_json::Value = serde_json::from_str(&patches[0].body).unwrap();
            assert_eq!(body, serde_json::json!({ "shipping_awb": awb }));
        }
        let last = patches.last().unwrap();
        assert_eq!(
            last.path_and_query,
            format!("/api/v2/orders/{order}/{handler}")
        );
        assert!(last.body.is_empty(), "processing handlers take no body");
        let header = |name: &str| {
            last.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("authorization").as_deref(), Some(auth.as_str()));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(last.status, 200);
    }
    let truth: BTreeMap<u64, _> = f.shop.sim.truth().into_iter().map(|o| (o.id, o)).collect();
    assert_eq!(truth[&cases[0].0].shipping_status, "in_process");
    assert_eq!(truth[&cases[1].0].shipping_status, "shipped");
    assert_eq!(truth[&cases[1].0].shipping_awb.as_deref(), Some("AWB-7781"));
    assert_eq!(truth[&cases[4].0].shipping_status, "cancelled");
    let db = f.setup.db();
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE state = 'done'"),
        6
    );

    // The store changes only when the platform reports it: now, as our own pushes arriving.
    let before = count(&db, "SELECT max(id) FROM order_events");
    ordersync::cli::sync(f.setup.config(), &[], true, false)
        .await
        .unwrap();
    let kinds: Vec<(String, String)> = db
        .prepare(&format!(
            "SELECT order_id, kind FROM order_events WHERE id > {before} ORDER BY id"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (order, action, _, _) in &cases[..5] {
        let for_order: Vec<&str> = kinds
            .iter()
            .filter(|(o, _)| *o == order.to_string())
            .map(|(_, k)| k.as_str())
            .collect();
        assert_eq!(for_order, ["push_confirmed"], "order {order} ({action})");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE confirmed_at IS NOT NULL"
        ),
        5,
        "every status push confirmed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_transitions_exit_1_and_queue_nothing() {
    let f = Fixture::synced(200).await;
    f.setup.add_platform_file(
        "readonly.toml",
        "[platforms.mb]\nkind = \"mitrabunso\"\nbase_url = \"http://127.0.0.1:9\"\n[platforms.mb.auth]\nuser_id = \"7\"\ntoken = \"t0ken-abc\"\n\
         [platforms.ep]\nkind = \"epixel\"\nbase_url = \"http://127.0.0.1:9\"\n[platforms.ep.auth]\napi_key = \"k3y-abc\"\ntoken = \"t0ken-abc\"\n",
    );
    let delivered = f.order_in("delivered", 0).to_string();
    let awaiting = f.order_in("awaiting", 0).to_string();
    let setup = f.setup;
    let outs = tokio::task::spawn_blocking(move || {
        let cases: [(&[&str], &str); 5] = [
            (&["transition", "mb", "1", "shipped"], "read-only"),
            (&["transition", "ep", "1", "cancelled"], "read-only"),
            (
                &["transition", "shop-ro", "99999999", "shipped"],
                "no order",
            ),
            (
                &["transition", "shop-ro", &delivered, "processing"],
                "state machine",
            ),
            (
                &["transition", "shop-ro", &awaiting, "accepted"],
                "cannot be asked",
            ),
        ];
        let outs: Vec<_> = cases
            .iter()
            .map(|(args, why)| (setup.ordersync(args), *why))
            .collect();
        (outs, count(&setup.db(), "SELECT count(*) FROM outbox"))
    })
    .await
    .unwrap();
    for (out, why) in &outs.0 {
        assert_eq!(out.status.code(), Some(1), "{why}: {}", stderr(out));
        assert!(stderr(out).contains(why), "{why}: {}", stderr(out));
    }
    assert_eq!(outs.1, 0, "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_retried_on_the_backoff_schedule_and_honours_retry_after() {
    let f = Fixture::synced(200).await;
    let order = f.order_in("shipped", 0);
    let id = f
        .queue(order, status(Status::Delivered), Params::default(), false)
        .unwrap();
    let (store, platforms) = (f.store(), f.platforms());
    let handler = format!("/api/v2/orders/{order}/delivered");

    f.shop.sim.faults().push(Fault::Status(503));
    f.shop.sim.faults().push(Fault::Status(503));
    let t0 = Utc::now();
    outbox::drain_once(&store, &platforms, t0).await.unwrap();
    let (state, attempts, next, _) = f.row(id);
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    let d1 = (chrono::DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .to_utc()
        - t0)
        .to_std()
        .unwrap();
    assert!(
        d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(15),
        "first delay {d1:?} within 10s ± 50%"
    );

    // Not due yet: nothing is sent.
    outbox::drain_once(&store, &platforms, t0 + chrono::Duration::seconds(4))
        .await
        .unwrap();
    assert_eq!(f.requests_to(&handler).len(), 1);

    let t1 = chrono::DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .to_utc();
    outbox::drain_once(&store, &platforms, t1).await.unwrap();
    let (state, attempts, next, err) = f.row(id);
    assert_eq!((state.as_str(), attempts), ("pending", 2));
    assert!(err.unwrap().contains("503"));
    let d2 = (chrono::DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .to_utc()
        - t1)
        .to_std()
        .unwrap();
    assert!(
        d2 >= Duration::from_secs(10) && d2 <= Duration::from_secs(30),
        "second delay {d2:?} within 20s ± 50%"
    );

    let t2 = chrono::DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .to_utc();
    outbox::drain_once(&store, &platforms, t2).await.unwrap();
    assert_eq!(f.row(id).0, "done");
    assert_eq!(
        f.requests_to(&handler).len(),
        3,
        "503, 503, 200: exactly three requests"
    );

    // 429 with a Retry-After beyond anything the first backoff (10 s ± 50%) could give.
    let order2 = f.order_in("awaiting", 0);
    let id2 = f
        .queue(order2, status(Status::Cancelled), Params::default(), false)
        .unwrap();
    f.shop.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 2,
    });
    let t3 = Utc::now();
    outbox::drain_once(&store, &platforms, t3).await.unwrap();
    let (state, _, next, _) = f.row(id2);
    assert_eq!(state, "pending");
    let wait = chrono::DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .to_utc()
        - t3;
    assert!(
        wait >= chrono::Duration::seconds(2),
        "no sooner than Retry-After: {wait}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_fails_at_once_with_the_platforms_text_and_others_still_go_out() {
    let f = Fixture::synced(200).await;
    let delivered = f.order_in("delivered", 0);
    let bad = f
        .queue(
            delivered,
            status(Status::Processing),
            Params::default(),
            true,
        )
        .unwrap();
    let good = f.order_in("awaiting", 0);
    let ok = f
        .queue(good, status(Status::Cancelled), Params::default(), false)
        .unwrap();

    let report = outbox::drain_once(&f.store(), &f.platforms(), Utc::now())
        .await
        .unwrap();
    assert_eq!((report.failed, report.done), (1, 1));
    let (state, attempts, _, err) = f.row(bad);
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    let err = err.unwrap();
    assert!(
        err.contains("400") && err.contains("cannot be changed"),
        "the platform's own text: {err}"
    );
    assert_eq!(f.row(ok).0, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_or_after_sending_applies_each_transition_exactly_once() {
    let f = Fixture::synced(200).await;
    let before = f.order_in("awaiting", 0);
    let after = f.order_in("awaiting", 1);
    let id_before = f
        .queue(before, status(Status::Cancelled), Params::default(), false)
        .unwrap();

    let setup = &f.setup;
    let crash = |point: &str| {
        let out = setup
            .command(&["push"])
            .env("FAILPOINT_ORDERSYNC_PUSH", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", stderr(&out));
    };
    crash("before_send");
    assert_eq!(
        f.row(id_before).0,
        "in_flight",
        "the row was claimed before the crash"
    );
    assert_eq!(f.requests_to(&format!("/api/v2/orders/{before}/")).len(), 0);

    let id_after = f
        .queue(after, status(Status::Cancelled), Params::default(), false)
        .unwrap();
    // This run sends `before` (read back first: not applied) and `after`, then dies before
    // recording either outcome.
    crash("after_send");
    assert_eq!(f.row(id_after).0, "in_flight");

    let out = setup.ordersync(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.row(id_before).0, "done");
    assert_eq!(f.row(id_after).0, "done");
    for order in [before, after] {
        let patches = f
            .requests_to(&format!("/api/v2/orders/{order}/cancelled"))
            .len();
        assert_eq!(patches, 1, "order {order} was cancelled exactly once");
    }
    let truth: BTreeMap<u64, _> = f.shop.sim.truth().into_iter().map(|o| (o.id, o)).collect();
    assert_eq!(truth[&before].shipping_status, "cancelled");
    assert_eq!(truth[&after].shipping_status, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_back_keeps_the_entry_marked_and_sends_nothing_yet() {
    let f = Fixture::synced(200).await;
    let order = f.order_in("awaiting", 0);
    let id = f
        .queue(order, status(Status::Cancelled), Params::default(), false)
        .unwrap();
    // As if a previous attempt timed out after sending.
    f.setup
        .db()
        .execute("UPDATE outbox SET outcome_unknown = 1 WHERE id = ?1", [id])
        .unwrap();
    let (store, platforms) = (f.store(), f.platforms());
    // The read-back GET is refused (a 5xx would be retried within the same read).
    f.shop.sim.faults().push(Fault::Status(400));
    let t0 = Utc::now();
    outbox::drain_once(&store, &platforms, t0).await.unwrap();
    let unknown: bool = f
        .setup
        .db()
        .query_row(
            "SELECT outcome_unknown FROM outbox WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(unknown, "still to be read back before any send");
    assert_eq!(
        f.requests_to(&format!("/api/v2/orders/{order}/cancelled"))
            .len(),
        0
    );

    let due = chrono::DateTime::parse_from_rfc3339(&f.row(id).2)
        .unwrap()
        .to_utc();
    outbox::drain_once(&store, &platforms, due).await.unwrap();
    assert_eq!(f.row(id).0, "done");
    assert_eq!(
        f.requests_to(&format!("/api/v2/orders/{order}/cancelled"))
            .len(),
        1
    );
}
