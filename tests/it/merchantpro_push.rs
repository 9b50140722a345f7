//! Pushing status transitions to MerchantPro through the outbox: the exact documented requests,
//! confirmation by the next sync, refusals, retry schedules, permanent failures, and crashes at
//! the two dangerous instants of a push.

use ordersync::cli::SyncArgs;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use chrono::Utc;
use ordersync::daemon::{self, Platform};
use ordersync::http::Redactor;
use ordersync::model::Status;
use ordersync::outbox::{self, Action, Params};
use ordersync_sim::Fault;
use tokio_util::sync::CancellationToken;

struct Fixture {
    shop: Shop,
    setup: Setup,
}

impl Fixture {
    async fn synced(orders: usize) -> Fixture {
        Self::synced_with(orders, "").await
    }

    /// With `keys` added to the platform's table.
    async fn synced_with(orders: usize, keys: &str) -> Fixture {
        let shop = Shop::open("shop-ro", orders).await;
        let setup = Setup::new();
        setup.add_platform_file(
            "shop-ro.toml",
            &shop.platform_toml(&format!(
                "{keys}\n[platforms.shop-ro.retry]\nmax_attempts = 4\ninitial_interval = \"10s\"\nmax_interval = \"10m\""
            )),
        );
        ordersync::cli::sync(setup.config(), SyncArgs::default())
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

    async fn queue(
        &self,
        order: u64,
        action: Action,
        params: Params,
        queue: Queue,
    ) -> Result<i64, String> {
        let config = self.setup.config();
        outbox::enqueue(
            &self.store(),
            config.platform("shop-ro").unwrap(),
            &order.to_string(),
            action,
            &params,
            queue.check(),
            Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())
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

    fn row(&self, id: i64) -> OutboxRow {
        outbox_row(&self.setup.db(), id)
    }

    /// The requests the simulator saw whose path starts with `prefix`.
    fn requests_to(&self, prefix: &str) -> Vec<ordersync_sim::RecordedRequest> {
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
        f.queue(*order, *action, params, Queue::Checked)
            .await
            .unwrap();
    }
    let report = outbox::drain_once(&f.store(), &f.platforms(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (report.done, report.failed, report.retried),
        (6, 0, 0),
        "{report:?}"
    );

    let auth = ordersync_sim::basic_auth_header("demo-key", "demo-secret");
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
    ordersync::cli::sync(
        f.setup.config(),
        SyncArgs {
            full: true,
            ..SyncArgs::default()
        },
    )
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
        .queue(
            order,
            status(Status::Delivered),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();
    let (store, platforms) = (f.store(), f.platforms());
    let handler = format!("/api/v2/orders/{order}/delivered");

    f.shop.sim.faults().push(Fault::Status(503));
    f.shop.sim.faults().push(Fault::Status(503));
    let t0 = Utc::now();
    outbox::drain_once(&store, &platforms, t0).await.unwrap();
    let OutboxRow {
        state,
        attempts,
        next,
        ..
    } = f.row(id);
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    let d1 = (next - t0).to_std().unwrap();
    assert!(
        d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(15),
        "first delay {d1:?} within 10s ± 50%"
    );

    // Not due yet: nothing is sent.
    outbox::drain_once(&store, &platforms, t0 + chrono::Duration::seconds(4))
        .await
        .unwrap();
    assert_eq!(f.requests_to(&handler).len(), 1);

    let t1 = next;
    outbox::drain_once(&store, &platforms, t1).await.unwrap();
    let OutboxRow {
        state,
        attempts,
        next,
        error: err,
    } = f.row(id);
    assert_eq!((state.as_str(), attempts), ("pending", 2));
    assert!(err.unwrap().contains("503"));
    let d2 = (next - t1).to_std().unwrap();
    assert!(
        d2 >= Duration::from_secs(10) && d2 <= Duration::from_secs(30),
        "second delay {d2:?} within 20s ± 50%"
    );

    let t2 = next;
    outbox::drain_once(&store, &platforms, t2).await.unwrap();
    assert_eq!(f.row(id).state, "done");
    assert_eq!(
        f.requests_to(&handler).len(),
        3,
        "503, 503, 200: exactly three requests"
    );

    // 429 with a Retry-After beyond anything the first backoff (10 s ± 50%) could give.
    let order2 = f.order_in("awaiting", 0);
    let id2 = f
        .queue(
            order2,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();
    f.shop.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 2,
    });
    let t3 = Utc::now();
    outbox::drain_once(&store, &platforms, t3).await.unwrap();
    let OutboxRow { state, next, .. } = f.row(id2);
    assert_eq!(state, "pending");
    let wait = next - t3;
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
            Queue::Forced,
        )
        .await
        .unwrap();
    let good = f.order_in("awaiting", 0);
    let ok = f
        .queue(
            good,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();

    let report = outbox::drain_once(&f.store(), &f.platforms(), Utc::now())
        .await
        .unwrap();
    assert_eq!((report.failed, report.done), (1, 1));
    let OutboxRow {
        state,
        attempts,
        error: err,
        ..
    } = f.row(bad);
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    let err = err.unwrap();
    assert!(
        err.contains("400") && err.contains("cannot be changed"),
        "the platform's own text: {err}"
    );
    assert_eq!(f.row(ok).state, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_or_after_sending_applies_each_transition_exactly_once() {
    // A crashed holder's entries come back once its lease runs out: two request timeouts plus
    // the database's busy timeout, kept short here.
    let f = Fixture::synced_with(200, "timeout = \"1s\"").await;
    let main = std::fs::read_to_string(f.setup.main_file()).unwrap();
    std::fs::write(
        f.setup.main_file(),
        format!("{main}busy_timeout = \"500ms\"\n"),
    )
    .unwrap();
    let before = f.order_in("awaiting", 0);
    let after = f.order_in("awaiting", 1);
    let id_before = f
        .queue(
            before,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
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
        f.row(id_before).state,
        "in_flight",
        "the row was claimed before the crash"
    );
    assert_eq!(f.requests_to(&format!("/api/v2/orders/{before}/")).len(), 0);
    // Another process cannot tell a stopped holder from a slow one while its lease runs.
    let out = setup.ordersync(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.row(id_before).state, "in_flight", "left to its holder");
    assert!(
        f.requests_to(&format!("/api/v2/orders/{before}"))
            .is_empty()
    );
    wait_out_lease(&f, id_before);

    let id_after = f
        .queue(
            after,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();
    // This run sends `before` (read back first: not applied) and `after`, then dies before
    // recording either outcome.
    crash("after_send");
    assert_eq!(f.row(id_after).state, "in_flight");
    wait_out_lease(&f, id_after);

    let out = setup.ordersync(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.row(id_before).state, "done");
    assert_eq!(f.row(id_after).state, "done");
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
        .queue(
            order,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
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

    let due = f.row(id).next;
    outbox::drain_once(&store, &platforms, due).await.unwrap();
    assert_eq!(f.row(id).state, "done");
    assert_eq!(
        f.requests_to(&format!("/api/v2/orders/{order}/cancelled"))
            .len(),
        1
    );
}

/// Waits (against a deadline) until the lease on in-flight entry `id` has run out.
fn wait_out_lease(f: &Fixture, id: i64) {
    let until: String = f
        .setup
        .db()
        .query_row(
            "SELECT claimed_until FROM outbox WHERE id = ?1 AND state = 'in_flight'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(&until)
        .unwrap()
        .to_utc();
    let deadline = Utc::now() + chrono::Duration::seconds(10);
    assert!(until < deadline, "a lease of seconds here, not {until}");
    while Utc::now() <= until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pid no process has: a child's, after it exited and was reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The read-backs (`GET /api/v2/orders/{id}`) and the cancels (`PATCH …/cancelled`) `order` saw.
/// What the outbox sent about one order: reads of it, and cancellations.
#[derive(Debug, PartialEq, Eq)]
struct Traffic {
    reads: usize,
    cancels: usize,
}

fn reads_and_cancels(f: &Fixture, order: u64) -> Traffic {
    let path = format!("/api/v2/orders/{order}");
    let requests = f.requests_to(&path);
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path_and_query == path)
        .count();
    let cancels = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path_and_query == format!("{path}/cancelled"))
        .count();
    Traffic { reads, cancels }
}

/// Leaves entry `id` in flight as a holder with this pid, claim token and lease end left it.
fn hold(f: &Fixture, id: i64, pid: u32, token: Option<&str>, until: Option<chrono::DateTime<Utc>>) {
    let until = until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    f.setup
        .db()
        .execute(
            "UPDATE outbox SET state = 'in_flight', claimed_by = ?2, claim_token = ?3,
                 claimed_until = ?4
             WHERE id = ?1",
            rusqlite::params![id, pid, token, until],
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_crashed_process_left_in_flight_are_recovered_though_we_reuse_its_pid() {
    // PID 1 in a container: the restarted daemon has the very pid its killed predecessor
    // claimed with, so "is the holder alive?" answers yes, about ourselves.
    let f = Fixture::synced(200).await;
    let landed = f.order_in("awaiting", 0);
    let lost = f.order_in("awaiting", 1);
    let before_upgrade = f.order_in("awaiting", 2);
    let mut ids = Vec::new();
    for order in [landed, lost, before_upgrade] {
        ids.push(
            f.queue(
                order,
                status(Status::Cancelled),
                Params::default(),
                Queue::Checked,
            )
            .await
            .unwrap(),
        );
    }
    let [id_landed, id_lost, id_before_upgrade] = ids[..] else {
        unreachable!("three orders queued")
    };
    // The crashed process claimed all three; its request for `landed` reached the platform, the
    // others never left. Its lease ran out a minute ago.
    f.shop.sim.set_status(landed, "cancelled");
    let pid = std::process::id();
    let expired = Some(Utc::now() - chrono::Duration::minutes(1));
    let old_token = Some("5f0c7a1e9b2d4c6e8a0f1b3d5c7e9a2b");
    hold(&f, id_landed, pid, old_token, expired);
    hold(&f, id_lost, pid, old_token, expired);
    // A claim an ordersync without leases made: a pid and nothing else.
    hold(&f, id_before_upgrade, pid, None, None);

    // One tick of the daemon's push loop: recover, then drain.
    let (store, platforms) = (f.store(), f.platforms());
    let recovered = store.recover_in_flight(Utc::now()).await.unwrap();
    assert_eq!(recovered, 3, "every entry comes back to the queue");
    let report = outbox::drain_once(&store, &platforms, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (report.already_applied, report.sent, report.done),
        (1, 2, 3),
        "{report:?}"
    );
    for id in [id_landed, id_lost, id_before_upgrade] {
        assert_eq!(f.row(id).state, "done");
    }
    let Traffic { reads, cancels } = reads_and_cancels(&f, landed);
    assert!(reads >= 1 && cancels == 0, "read back, not sent again");
    for order in [lost, before_upgrade] {
        let Traffic { reads, cancels } = reads_and_cancels(&f, order);
        assert!(reads >= 1 && cancels == 1, "read back, then sent once");
    }
    let claims: i64 = f
        .setup
        .db()
        .query_row(
            "SELECT count(*) FROM outbox WHERE claim_token IS NOT NULL OR claimed_by IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(claims, 0, "finished entries hold no claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_another_process_holds_is_not_taken_from_it_until_its_lease_runs_out() {
    // The holders run in other pid namespaces (other containers on the same volume): their pids
    // mean nothing here, one looks dead and the other is ours.
    let f = Fixture::synced(200).await;
    let (a, b) = (f.order_in("awaiting", 0), f.order_in("awaiting", 1));
    let id_a = f
        .queue(
            a,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();
    let id_b = f
        .queue(
            b,
            status(Status::Cancelled),
            Params::default(),
            Queue::Checked,
        )
        .await
        .unwrap();
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(10);
    let theirs = Some("c3a91f0e7d5b4a2c8e6f0d1b3a5c7e9f");
    hold(&f, id_a, dead_pid(), theirs, Some(until));
    hold(&f, id_b, std::process::id(), theirs, Some(until));

    let (store, platforms) = (f.store(), f.platforms());
    let recovered = store.recover_in_flight(now).await.unwrap();
    assert_eq!(recovered, 0, "the holder is still at work");
    let report = outbox::drain_once(&store, &platforms, now).await.unwrap();
    assert_eq!(report.sent + report.already_applied, 0, "{report:?}");
    assert_eq!(
        (f.row(id_a).state, f.row(id_b).state),
        ("in_flight".into(), "in_flight".into())
    );
    assert_eq!(
        reads_and_cancels(&f, a),
        Traffic {
            reads: 0,
            cancels: 0
        }
    );
    assert_eq!(
        reads_and_cancels(&f, b),
        Traffic {
            reads: 0,
            cancels: 0
        }
    );

    // The holder stopped renewing: once its lease ends, the entries are read back and sent.
    let later = until + chrono::Duration::seconds(1);
    let recovered = store.recover_in_flight(later).await.unwrap();
    assert_eq!(recovered, 2);
    let report = outbox::drain_once(&store, &platforms, later).await.unwrap();
    assert_eq!((report.sent, report.done), (2, 2), "{report:?}");
    for order in [a, b] {
        let Traffic { reads, cancels } = reads_and_cancels(&f, order);
        assert!(reads >= 1 && cancels == 1, "read back, then sent once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_longer_than_its_lease_renews_it_and_keeps_its_entries() {
    // Lease: two 1 s request timeouts plus a 200 ms busy timeout. Eight pushes of 400 ms each,
    // one after another, outlast it.
    let f = Fixture::synced_with(200, "timeout = \"1s\"").await;
    let orders: Vec<u64> = (0..8).map(|i| f.order_in("awaiting", i)).collect();
    let mut ids: Vec<i64> = Vec::new();
    for o in &orders {
        ids.push(
            f.queue(
                *o,
                status(Status::Cancelled),
                Params::default(),
                Queue::Checked,
            )
            .await
            .unwrap(),
        );
    }
    let store =
        ordersync::store::Store::open_with(&f.setup.db_path(), Duration::from_millis(200)).unwrap();
    let platforms = f.platforms();
    f.shop
        .sim
        .faults()
        .push_n(Fault::Slow(Duration::from_millis(400)), orders.len());

    // Another process's view while the drain runs: it recovers whatever lease it finds run out.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, db) = (stop.clone(), f.setup.db_path());
        std::thread::spawn(move || {
            let other = ordersync::store::Store::open(&db).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let conn = rusqlite::Connection::open(db).unwrap();
            let (mut recovered, mut leases) = (0, std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                recovered += rt.block_on(other.recover_in_flight(Utc::now())).unwrap();
                let mut stmt = conn
                    .prepare("SELECT claimed_until FROM outbox WHERE state = 'in_flight'")
                    .unwrap();
                leases.extend(
                    stmt.query_map([], |r| r.get::<_, String>(0))
                        .unwrap()
                        .map(Result::unwrap),
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            (recovered, leases)
        })
    };
    let started = std::time::Instant::now();
    let report = outbox::drain_once(&store, &platforms, Utc::now())
        .await
        .unwrap();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (recovered, leases) = watcher.join().unwrap();

    assert!(
        took > Duration::from_millis(2200),
        "outlasts one lease: {took:?}"
    );
    assert_eq!(recovered, 0, "nothing was taken from the running drain");
    assert!(leases.len() >= 3, "the lease was renewed: {leases:?}");
    assert_eq!((report.sent, report.done), (8, 8), "{report:?}");
    for (order, id) in orders.iter().zip(&ids) {
        assert_eq!(f.row(*id).state, "done");
        assert_eq!(
            reads_and_cancels(&f, *order),
            Traffic {
                reads: 0,
                cancels: 1
            },
            "sent once, never read back"
        );
    }
}
