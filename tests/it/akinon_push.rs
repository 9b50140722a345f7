//! Pushing cancellations to Akinon through the outbox: one documented reject request per line,
//! confirmation by the next sync, `--item`, the retry schedule and `Retry-After`, refusals that
//! fail at once (a packaged line among them), a lost answer read back before any resend, and a
//! refused token replaced by one login.

use ordersync::cli::SyncArgs;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{OutboxRow, Setup, count, outbox_row};
use chrono::{DateTime, SubsecRound, Utc};
use ordersync::daemon::{self, Platform};
use ordersync::http::Redactor;
use ordersync::model::Status;
use ordersync::outbox::{self, Action, DrainReport, Params};
use ordersync_sim::akinon::{AkinonSim, SimOptions, TruthOrder};
use ordersync_sim::{Fault, RecordedRequest, RunningSim};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "demo-akinon-api-token";
const NAME: &str = "ak-shop";

enum Creds {
    Token,
    Login,
}

struct Fixture {
    sim: AkinonSim,
    _server: RunningSim,
    setup: Setup,
    used: HashSet<String>,
}

impl Fixture {
    /// A shop of `orders` generated orders and a configuration for it; nothing synced yet, so a
    /// test can first shape the orders it needs.
    async fn open(orders: usize, creds: Creds) -> Fixture {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let defaults = SimOptions::default();
        let sim = AkinonSim::new(SimOptions {
            orders,
            start,
            spacing,
            token: match creds {
                Creds::Token => TOKEN.to_string(),
                Creds::Login => String::new(),
            },
            ..SimOptions::default()
        });
        let server = sim.serve().await.expect("simulator starts");
        let auth = match creds {
            Creds::Token => format!("token = \"{TOKEN}\"\n"),
            Creds::Login => format!(
                "email = \"{}\"\npassword = \"{}\"\n",
                defaults.email, defaults.password
            ),
        };
        let setup = Setup::new();
        setup.add_platform_file(
            "ak.toml",
            &format!(
                "[platforms.{NAME}]\nkind = \"akinon\"\nbase_url = \"{url}\"\n\
                 backfill_from = \"{from}\"\nmax_requests_per_second = 1000\n\
                 [platforms.{NAME}.retry]\nmax_attempts = 5\ninitial_interval = \"1s\"\n\
                 max_interval = \"1m\"\n[platforms.{NAME}.auth]\n{auth}",
                url = server.base_url(),
                from = (start - chrono::Duration::days(2)).to_rfc3339(),
            ),
        );
        Fixture {
            sim,
            _server: server,
            setup,
            used: HashSet::new(),
        }
    }

    /// An order not used yet with at least `lines` lines, moved (with its lines) to `status`.
    fn order(&mut self, lines: usize, status: u16) -> TruthOrder {
        self.pick(|n| n >= lines, status)
    }

    /// An order not used yet with exactly `lines` lines, moved to `status`.
    fn exactly(&mut self, lines: usize, status: u16) -> TruthOrder {
        self.pick(|n| n == lines, status)
    }

    fn single(&mut self, status: u16) -> TruthOrder {
        self.exactly(1, status)
    }

    fn pick(&mut self, fits: impl Fn(usize) -> bool, status: u16) -> TruthOrder {
        let id = self
            .sim
            .truth()
            .into_iter()
            .find(|o| fits(o.items.len()) && !self.used.contains(&o.id))
            .expect("the simulator has an unused order with that many lines")
            .id;
        self.used.insert(id.clone());
        self.sim.set_status(&id, status);
        self.truth(&id)
    }

    fn truth(&self, id: &str) -> TruthOrder {
        self.sim
            .truth()
            .into_iter()
            .find(|o| o.id == id)
            .expect("order exists")
    }

    async fn sync(&self) {
        ordersync::cli::sync(self.setup.config(), SyncArgs::default())
            .await
            .unwrap_or_else(|e| panic!("sync: {:#}", e.error.expect("an error")));
    }

    async fn queue(&self, order: &TruthOrder, to: Status, items: &[&str]) -> Result<i64, String> {
        let config = self.setup.config();
        let store = ordersync::store::Store::open(&self.setup.db_path()).unwrap();
        outbox::enqueue(
            &store,
            config.platform(NAME).unwrap(),
            &order.id,
            Action::Status(to),
            &Params {
                items: items.iter().map(|i| i.to_string()).collect(),
                ..Params::default()
            },
            outbox::StateCheck::Enforce,
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

    async fn drain(
        &self,
        platforms: &BTreeMap<String, Arc<Platform>>,
        now: DateTime<Utc>,
    ) -> DrainReport {
        let store = ordersync::store::Store::open(&self.setup.db_path()).unwrap();
        outbox::drain_once(&store, platforms, now).await.unwrap()
    }

    fn row(&self, id: i64) -> OutboxRow {
        outbox_row(&self.setup.db(), id)
    }

    /// Every reject request the simulator received, in arrival order.
    fn rejects(&self) -> Vec<RecordedRequest> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reject/"))
            .collect()
    }

    /// The reject requests for `order`'s lines, in arrival order.
    fn rejects_of(&self, order: &TruthOrder) -> Vec<RecordedRequest> {
        let paths: HashSet<String> = order.items.iter().map(|i| reject_path(&i.id)).collect();
        self.rejects()
            .into_iter()
            .filter(|r| paths.contains(&r.path_and_query))
            .collect()
    }

    /// The kinds of the events written for `order` after event `after`.
    fn events_since(&self, after: i64, order: &str) -> Vec<String> {
        let db = self.setup.db();
        let mut stmt = db
            .prepare("SELECT kind FROM order_events WHERE id > ?1 AND order_id = ?2 ORDER BY id")
            .unwrap();
        stmt.query_map(rusqlite::params![after, order], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn last_event(&self) -> i64 {
        count(
            &self.setup.db(),
            "SELECT coalesce(max(id), 0) FROM order_events",
        )
    }
}

/// The test's clock, to the millisecond as the outbox stores times, so a computed delay is
/// exactly the one the row holds.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn reject_path(item: &str) -> String {
    format!("/api/i1/order-items/{item}/reject/")
}

fn header<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn paths(requests: &[RecordedRequest]) -> Vec<String> {
    requests.iter().map(|r| r.path_and_query.clone()).collect()
}

/// Lines go out in the store's order, which is not the simulator's id order.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn statuses(requests: &[RecordedRequest]) -> Vec<u16> {
    requests.iter().map(|r| r.status).collect()
}

fn item_status(order: &TruthOrder, item: &str) -> u16 {
    order.items.iter().find(|i| i.id == item).unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transition_rejects_every_line_with_the_documented_request_and_the_next_sync_confirms_it()
 {
    let mut f = Fixture::open(60, Creds::Token).await;
    let cases = [
        (f.order(2, 100), Status::Cancelled),
        (f.order(2, 200), Status::Cancelled),
        (f.order(2, 300), Status::Cancelled),
        (f.order(2, 100), Status::Rejected),
    ];
    // A pending order one of whose lines the shop had already cancelled: that line is skipped.
    let partly = f.order(3, 100);
    let gone = partly.items[1].id.clone();
    f.sim.set_item_status(&gone, 800);
    f.sync().await;
    let partly = f.truth(&partly.id);

    for (order, to) in &cases {
        f.queue(order, *to, &[]).await.unwrap();
    }
    f.queue(&partly, Status::Cancelled, &[]).await.unwrap();
    let report = f.drain(&f.platforms(), Utc::now()).await;
    assert_eq!(
        (report.done, report.failed, report.retried),
        (5, 0, 0),
        "{report:?}"
    );

    for (order, _) in cases
        .iter()
        .map(|(o, to)| (o, to))
        .chain([(&partly, &Status::Cancelled)])
    {
        let sent = f.rejects_of(order);
        let expected: Vec<String> = order
            .items
            .iter()
            .filter(|i| i.id != gone)
            .map(|i| reject_path(&i.id))
            .collect();
        assert_eq!(
            sorted(paths(&sent)),
            expected,
            "order {}: one reject per open line",
            order.id
        );
        for r in &sent {
            assert_eq!(r.method, "POST");
            assert_eq!(r.body, "{}", "the body is an empty JSON object");
            assert_eq!(header(r, "content-type"), Some("application/json"));
            assert_eq!(
                header(r, "authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(
                header(r, "authentication"),
                None,
                "the document's typo is not sent"
            );
            assert_eq!(r.status, 204);
        }
        let now = f.truth(&order.id);
        assert_eq!(now.status, 800, "order {} follows its last line", order.id);
        assert!(now.items.iter().all(|i| i.status == 800), "{now:?}");
    }
    assert_eq!(
        f.rejects().len(),
        cases.iter().map(|(o, _)| o.items.len()).sum::<usize>() + partly.items.len() - 1,
        "nothing else was posted"
    );
    let db = f.setup.db();
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE state = 'done'"),
        5
    );

    // The store moves only when the platform reports it: as our own pushes arriving. A
    // `rejected` entry is confirmed by the order reading back cancelled (800).
    let before = f.last_event();
    f.sync().await;
    for order in cases.iter().map(|(o, _)| o).chain([&partly]) {
        assert_eq!(
            f.events_since(before, &order.id),
            ["push_confirmed"],
            "order {}",
            order.id
        );
        let status: String = db
            .query_row(
                "SELECT status FROM orders WHERE order_id = ?1",
                [&order.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(status, "cancelled");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE confirmed_at IS NOT NULL"
        ),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_retried_on_the_backoff_schedule_and_honours_retry_after() {
    let mut f = Fixture::open(40, Creds::Token).await;
    let order = f.single(100);
    let later = f.single(200);
    f.sync().await;
    let platforms = f.platforms();
    let id = f.queue(&order, Status::Cancelled, &[]).await.unwrap();
    let sent_before = f.sim.request_count();

    f.sim.faults().push_n(Fault::Status(503), 2);
    let t0 = now();
    f.drain(&platforms, t0).await;
    let row = f.row(id);
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 1));
    let d1 = (row.next - t0).to_std().unwrap();
    assert!(
        d1 >= Duration::from_millis(500) && d1 <= Duration::from_millis(1500),
        "first delay {d1:?} within 1 s ± 50%"
    );

    // Not due yet: nothing is sent.
    f.drain(&platforms, t0 + chrono::Duration::milliseconds(499))
        .await;
    assert_eq!(f.sim.request_count() - sent_before, 1);

    let t1 = row.next;
    f.drain(&platforms, t1).await;
    let row = f.row(id);
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 2));
    assert!(row.error.unwrap().contains("503"));
    let d2 = (row.next - t1).to_std().unwrap();
    assert!(
        d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(3),
        "second delay {d2:?} within 2 s ± 50%"
    );

    f.drain(&platforms, row.next).await;
    assert_eq!(f.row(id).state, "done");
    let path = reject_path(&order.items[0].id);
    assert_eq!(paths(&f.rejects()), [path.as_str(); 3]);
    assert_eq!(statuses(&f.rejects()), [503, 503, 204]);
    assert_eq!(
        f.sim.request_count() - sent_before,
        3,
        "503, 503, 204: exactly three requests, nothing else"
    );
    assert_eq!(f.truth(&order.id).status, 800);

    // 429 asking for 2 s: the backoff alone would be 0.5–1.5 s.
    let id2 = f.queue(&later, Status::Cancelled, &[]).await.unwrap();
    f.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 2,
    });
    let t3 = now();
    f.drain(&platforms, t3).await;
    let row = f.row(id2);
    assert_eq!(row.state, "pending");
    assert!(
        row.next - t3 >= chrono::Duration::seconds(2),
        "no sooner than Retry-After: {}",
        row.next - t3
    );
    f.drain(&platforms, row.next - chrono::Duration::milliseconds(1))
        .await;
    assert_eq!(f.row(id2).state, "pending", "not due before Retry-After");
    f.drain(&platforms, row.next).await;
    assert_eq!(f.row(id2).state, "done");
    assert_eq!(statuses(&f.rejects_of(&later)), [429, 204]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_fails_at_once_with_the_platforms_text_and_the_others_still_go_out() {
    let mut f = Fixture::open(40, Creds::Token).await;
    let refused = f.single(100);
    let others = [f.order(2, 100), f.single(200)];
    f.sync().await;
    let platforms = f.platforms();
    let bad = f.queue(&refused, Status::Cancelled, &[]).await.unwrap();
    let mut good: Vec<i64> = Vec::new();
    for o in &others {
        good.push(f.queue(o, Status::Cancelled, &[]).await.unwrap());
    }

    // The first request of the drain is the refused order's reject.
    f.sim.faults().push(Fault::Status(406));
    let report = f.drain(&platforms, Utc::now()).await;
    assert_eq!(
        (report.failed, report.done, report.retried),
        (1, 2, 0),
        "{report:?}"
    );
    let row = f.row(bad);
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    let err = row.error.unwrap();
    assert!(
        err.contains("HTTP 406") && err.contains("Simulated failure"),
        "the platform's own text: {err}"
    );
    for id in good {
        assert_eq!(f.row(id).state, "done");
    }
    for o in &others {
        assert_eq!(f.truth(&o.id).status, 800);
    }

    // A failed entry is not sent again, however late the next drain.
    f.drain(&platforms, Utc::now() + chrono::Duration::days(1))
        .await;
    assert_eq!(statuses(&f.rejects_of(&refused)), [406]);
    assert_eq!(f.truth(&refused.id).status, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_partial_attempt_takes_lines_already_rejected_as_done() {
    let mut f = Fixture::open(40, Creds::Token).await;
    let order = f.exactly(3, 100);
    f.sync().await;
    let platforms = f.platforms();
    let id = f.queue(&order, Status::Cancelled, &[]).await.unwrap();

    // Two lines are rejected, the third meets a 503: the entry is retried whole.
    f.sim.faults().push_n(Fault::Slow(Duration::ZERO), 2);
    f.sim.faults().push(Fault::Status(503));
    let t0 = now();
    f.drain(&platforms, t0).await;
    let row = f.row(id);
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 1));
    let seen = f.sim.requests().len();

    // The platform refuses the first line again (400, already cancelled). Read back, it and
    // the second are 800: the entry skips the second and goes on with the third, not failing.
    let report = f.drain(&platforms, row.next).await;
    assert_eq!((report.done, report.failed), (1, 0), "{report:?}");
    assert_eq!(f.row(id).state, "done");
    let sent = f.rejects_of(&order);
    assert_eq!(statuses(&sent), [204, 204, 503, 400, 204]);
    let [first, second, third] = [0, 1, 2].map(|k| sent[k].path_and_query.clone());
    assert_eq!(
        sorted(vec![first.clone(), second.clone(), third.clone()]),
        order
            .items
            .iter()
            .map(|i| reject_path(&i.id))
            .collect::<Vec<_>>(),
        "the first attempt went through the three lines"
    );
    assert_eq!(
        paths(&sent),
        [&first, &second, &third, &first, &third].map(String::as_str),
        "the second line is not posted again"
    );
    let retry: Vec<(String, u16)> = f.sim.requests()[seen..]
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        retry,
        [
            ("POST".to_string(), 400),
            ("GET".to_string(), 200),
            ("POST".to_string(), 204)
        ],
        "one read-back, between the refusal and the next open line"
    );
    let now = f.truth(&order.id);
    assert_eq!(now.status, 800);
    assert!(now.items.iter().all(|i| i.status == 800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_read_back_before_any_resend_and_no_line_is_posted_twice() {
    let mut f = Fixture::open(40, Creds::Token).await;
    let whole = f.single(100);
    let half = f.exactly(2, 100);
    f.sync().await;
    let platforms = f.platforms();
    let id_whole = f.queue(&whole, Status::Cancelled, &[]).await.unwrap();
    let id_half = f.queue(&half, Status::Cancelled, &[]).await.unwrap();

    // The simulator applies both rejects, then breaks the connection before answering: the
    // one-line order landed whole, the two-line order half.
    f.sim.faults().push_n(Fault::DropConnection, 2);
    let t0 = now();
    let report = f.drain(&platforms, t0).await;
    assert_eq!((report.retried, report.done), (2, 0), "{report:?}");
    for id in [id_whole, id_half] {
        let row = f.row(id);
        assert_eq!(row.state, "pending");
        assert!(row.error.unwrap().contains("may have applied"));
    }
    assert_eq!(f.truth(&whole.id).status, 800);
    let dropped = f.rejects_of(&half);
    assert_eq!(dropped.len(), 1, "the entry stopped at the lost answer");
    let (landed, open) = if dropped[0].path_and_query == reject_path(&half.items[0].id) {
        (&half.items[0].id, &half.items[1].id)
    } else {
        (&half.items[1].id, &half.items[0].id)
    };
    let now = f.truth(&half.id);
    assert_eq!(
        (item_status(&now, landed), item_status(&now, open)),
        (800, 100)
    );
    let seen = f.sim.requests().len();

    let t1 = f.row(id_whole).next.max(f.row(id_half).next);
    let report = f.drain(&platforms, t1).await;
    assert_eq!((report.done, report.already_applied), (2, 1), "{report:?}");
    assert_eq!(f.row(id_whole).state, "done");
    assert_eq!(f.row(id_half).state, "done");

    // Each order was read back before anything was sent again.
    let after: Vec<RecordedRequest> = f.sim.requests()[seen..].to_vec();
    let first_post = after
        .iter()
        .position(|r| r.method == "POST")
        .expect("the unfinished line was sent");
    for o in [&whole, &half] {
        let read = after[..first_post].iter().any(|r| {
            r.method == "GET"
                && r.path_and_query.starts_with("/api/i1/order-items/?")
                && r.path_and_query
                    .contains(&format!("order__number={}", o.number))
        });
        assert!(read, "order {} read back first: {:#?}", o.id, paths(&after));
    }
    assert_eq!(
        paths(&f.rejects_of(&whole)),
        [reject_path(&whole.items[0].id)]
    );
    assert_eq!(
        paths(&f.rejects_of(&half)),
        [reject_path(landed), reject_path(open)],
        "every line posted exactly once"
    );
    assert_eq!(f.truth(&half.id).status, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_rejects_only_the_named_lines() {
    let mut f = Fixture::open(60, Creds::Token).await;
    let order = f.order(3, 100);
    f.sync().await;
    let named = [order.items[0].id.as_str(), order.items[2].id.as_str()];
    assert!(
        f.queue(&order, Status::Cancelled, &["no-such-line"])
            .await
            .unwrap_err()
            .contains("no item `no-such-line`"),
        "an unknown line is refused before anything is queued"
    );
    let id = f.queue(&order, Status::Cancelled, &named).await.unwrap();

    let report = f.drain(&f.platforms(), Utc::now()).await;
    assert_eq!(report.done, 1, "{report:?}");
    assert_eq!(f.row(id).state, "done");
    assert_eq!(
        paths(&f.rejects()),
        named.map(reject_path),
        "exactly the named lines, nothing else"
    );
    let now = f.truth(&order.id);
    for item in &order.items {
        let expected = if named.contains(&item.id.as_str()) {
            800
        } else {
            100
        };
        assert_eq!(item_status(&now, &item.id), expected, "line {}", item.id);
    }
    assert_eq!(now.status, 100, "the order waits for its other lines");

    // The order did not move, so nothing confirms; the lines' change is an update.
    let before = f.last_event();
    f.sync().await;
    assert_eq!(f.events_since(before, &order.id), ["updated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packaged_order_fails_at_once_with_the_platforms_400_and_is_never_retried() {
    let mut f = Fixture::open(40, Creds::Token).await;
    let order = f.order(2, 100);
    f.sync().await;
    // Packaged after the last sync: the store still thinks every line can be rejected.
    f.sim.set_status(&order.id, 400);
    let platforms = f.platforms();
    let id = f.queue(&order, Status::Cancelled, &[]).await.unwrap();

    let report = f.drain(&platforms, Utc::now()).await;
    assert_eq!((report.failed, report.retried), (1, 0), "{report:?}");
    let row = f.row(id);
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    let err = row.error.unwrap();
    assert!(
        err.contains("HTTP 400") && err.contains("Packaged order items cannot be rejected."),
        "the platform's own text: {err}"
    );

    f.drain(&platforms, Utc::now() + chrono::Duration::days(1))
        .await;
    let sent = f.rejects_of(&order);
    assert_eq!(
        statuses(&sent),
        [400],
        "one POST, for the first line; the entry stops there and is not retried"
    );
    let line = order
        .items
        .iter()
        .find(|i| sent[0].path_and_query == reject_path(&i.id))
        .unwrap();
    assert!(err.contains(&line.id), "names the line: {err}");
    assert!(f.truth(&order.id).items.iter().all(|i| i.status == 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_by_one_login_and_the_reject_is_sent_once_more() {
    let mut f = Fixture::open(30, Creds::Login).await;
    let first = f.single(100);
    let second = f.single(100);
    f.sync().await;
    let platforms = f.platforms();
    let id1 = f.queue(&first, Status::Cancelled, &[]).await.unwrap();
    f.drain(&platforms, Utc::now()).await;
    assert_eq!(f.row(id1).state, "done");
    let logins = f.sim.logins();

    // The token this process obtained expires before the next drain.
    f.sim.revoke_tokens();
    let id2 = f.queue(&second, Status::Cancelled, &[]).await.unwrap();
    let report = f.drain(&platforms, Utc::now()).await;
    assert_eq!((report.done, report.failed), (1, 0), "{report:?}");
    assert_eq!(f.row(id2).state, "done");
    assert_eq!(f.sim.logins(), logins + 1, "exactly one new login");
    let sent = f.rejects_of(&second);
    assert_eq!(statuses(&sent), [401, 204]);
    assert_ne!(
        header(&sent[0], "authorization"),
        header(&sent[1], "authorization"),
        "the resend carries the fresh token"
    );
    assert_eq!(f.truth(&second.id).status, 800);
}
