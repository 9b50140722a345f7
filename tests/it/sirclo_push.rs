//! Pushing status transitions to SIRCLO through the outbox: one batched `PATCH /v1/order` per
//! drain in the documented shape, confirmation by the next sync, retry schedules, refusals of
//! one order or of a whole request, lost answers read back instead of resent, a thousand
//! transitions at once, and the platform's optimistic lock on `updated_at`.

use ordersync::cli::SyncArgs;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{OutboxRow, Queue, Setup, count, outbox_row};
use chrono::{DateTime, SubsecRound, Utc};
use ordersync::daemon::{self, Platform};
use ordersync::http::Redactor;
use ordersync::model::Status;
use ordersync::outbox::{self, Action, DrainReport, Params};
use ordersync::platforms::sirclo::push::MAX_ORDERS_PER_REQUEST;
use ordersync::platforms::sirclo::sign;
use ordersync_sim::sirclo::{SimOptions, SircloSim, TruthOrder};
use ordersync_sim::{Fault, RecordedRequest, RunningSim};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NAME: &str = "sirclo-id";

struct Fixture {
    sim: SircloSim,
    _server: RunningSim,
    setup: Setup,
}

impl Fixture {
    /// A SIRCLO account with `orders` generated orders (placed 90 s apart, the newest ten
    /// spacings ago) and `fresh` new pending ones placed now, configured with both the MAC and
    /// the update's api_key/api_secret, and synced once.
    async fn synced(orders: usize, fresh: usize) -> Fixture {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let sim = SircloSim::new(SimOptions {
            orders,
            start,
            spacing,
            ..SimOptions::default()
        });
        sim.add_orders(fresh);
        let server = sim.serve().await.expect("simulator starts");
        let o = SimOptions::default();
        let setup = Setup::new();
        setup.add_platform_file(
            &format!("{NAME}.toml"),
            &format!(
                "[platforms.{NAME}]\nkind = \"sirclo\"\nbase_url = \"{url}\"\n\
                 backfill_from = \"{from}\"\nmax_requests_per_second = 1000\n\
                 [platforms.{NAME}.retry]\nmax_attempts = 4\ninitial_interval = \"1s\"\nmax_interval = \"10m\"\n\
                 [platforms.{NAME}.auth]\npartner_id = \"{partner}\"\nsecret = \"{secret}\"\n\
                 api_key = \"{key}\"\napi_secret = \"{api_secret}\"\n",
                url = server.base_url(),
                from = (start - chrono::Duration::days(2)).to_rfc3339(),
                partner = o.partner_id,
                secret = o.secret,
                key = o.api_key,
                api_secret = o.api_secret,
            ),
        );
        ordersync::cli::sync(setup.config(), SyncArgs::default())
            .await
            .unwrap();
        Fixture {
            sim,
            _server: server,
            setup,
        }
    }

    /// The `skip`-th order the simulator holds in `status` that `keep` accepts.
    fn order_where(
        &self,
        status: &str,
        skip: usize,
        keep: impl Fn(&TruthOrder) -> bool,
    ) -> TruthOrder {
        self.sim
            .truth()
            .into_iter()
            .filter(|o| o.status == status && keep(o))
            .nth(skip)
            .unwrap_or_else(|| panic!("the simulator has a {status} order #{skip}"))
    }

    fn order_in(&self, status: &str, skip: usize) -> TruthOrder {
        self.order_where(status, skip, |_| true)
    }

    fn truth_of(&self, id: u64) -> TruthOrder {
        self.sim.truth().into_iter().find(|t| t.id == id).unwrap()
    }

    async fn queue(&self, order: u64, to: Status, params: Params, queue: Queue) -> i64 {
        let config = self.setup.config();
        outbox::enqueue(
            &self.store(),
            config.platform(NAME).unwrap(),
            &order.to_string(),
            Action::Status(to),
            &params,
            queue.check(),
            Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("order {order} -> {to}: {e}"))
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

    async fn drain(&self, now: DateTime<Utc>) -> DrainReport {
        outbox::drain_once(&self.store(), &self.platforms(), now)
            .await
            .unwrap()
    }

    fn row(&self, id: i64) -> OutboxRow {
        outbox_row(&self.setup.db(), id)
    }

    fn patches(&self) -> Vec<RecordedRequest> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path_and_query == "/v1/order")
            .collect()
    }

    /// The stored raw record's `updatedAt`, as text.
    fn stored_updated_at(&self, id: u64) -> String {
        self.setup
            .db()
            .query_row(
                "SELECT json_extract(raw, '$.updatedAt') FROM orders WHERE platform = ?1 AND order_id = ?2",
                rusqlite::params![NAME, id.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    }
}

fn header<'r>(r: &'r RecordedRequest, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The ids of a PATCH body's orders, group by group.
fn ids_in(body: &str) -> BTreeMap<String, Vec<u64>> {
    let v: Value = serde_json::from_str(body).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(g, list)| {
            let ids = list
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_u64().unwrap())
                .collect();
            (g.clone(), ids)
        })
        .collect()
}

fn params(f: impl FnOnce(&mut Params)) -> Params {
    let mut p = Params::default();
    f(&mut p);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transition_goes_out_in_one_documented_patch_and_the_next_sync_confirms_it() {
    let f = Fixture::synced(300, 0).await;
    let named = |o: &TruthOrder| !o.delivery_name.is_empty();
    let accept = f.order_in("pending", 0);
    let ship = f.order_in("accepted", 0);
    let deliver = f.order_in("packed", 0);
    let deliver_to_recipient = f.order_where("packed", 1, named);
    let cancel = f.order_in("pending", 1);
    let cancel_silently = f.order_in("accepted", 1);
    f.queue(
        accept.id,
        Status::Accepted,
        Params::default(),
        Queue::Checked,
    )
    .await;
    f.queue(
        ship.id,
        Status::Shipped,
        params(|p| p.tracking_number = Some("JP1234567890".into())),
        Queue::Checked,
    )
    .await;
    f.queue(
        deliver.id,
        Status::Delivered,
        params(|p| p.received_by = Some("Yosua".into())),
        Queue::Checked,
    )
    .await;
    f.queue(
        deliver_to_recipient.id,
        Status::Delivered,
        Params::default(),
        Queue::Checked,
    )
    .await;
    f.queue(
        cancel.id,
        Status::Cancelled,
        params(|p| p.reason = Some("Stok habis".into())),
        Queue::Checked,
    )
    .await;
    f.queue(
        cancel_silently.id,
        Status::Cancelled,
        Params::default(),
        Queue::Checked,
    )
    .await;

    let report = f.drain(Utc::now()).await;
    assert_eq!(
        (report.sent, report.done, report.failed, report.retried),
        (6, 6, 0, 0),
        "{report:?}"
    );

    let patches = f.patches();
    assert_eq!(patches.len(), 1, "one batched request: {patches:#?}");
    let sent = &patches[0];
    assert_eq!(sent.status, 200);
    let o = SimOptions::default();
    assert_eq!(header(sent, "partner_id"), Some(o.partner_id.as_str()));
    assert_eq!(header(sent, "partner-id"), Some(o.partner_id.as_str()));
    assert_eq!(
        header(sent, "mac"),
        Some(sign(&o.secret, "/v1/order", sent.body.as_bytes()).as_str()),
        "MAC over the request URI followed by the body"
    );
    assert_eq!(header(sent, "api_key"), Some(o.api_key.as_str()));
    assert_eq!(header(sent, "api_secret"), Some(o.api_secret.as_str()));
    assert_eq!(header(sent, "content-type"), Some("application/json"));

    let entry = |t: &TruthOrder, extra: Value| {
        let mut e = json!({"id": t.id, "order_number": t.number, "updated_at": t.updated_at});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({
            "accepted": [entry(&accept, json!({}))],
            "packed": [entry(&ship, json!({"airwaybill_number": "JP1234567890"}))],
            "completed": [
                entry(&deliver, json!({"received_by": "Yosua"})),
                entry(&deliver_to_recipient, json!({"received_by": deliver_to_recipient.delivery_name})),
            ],
            "cancelled": [
                entry(&cancel, json!({"cancel_reason": "Stok habis"})),
                entry(&cancel_silently, json!({"cancel_reason": ""})),
            ],
        })
    );
    let at = |needle: &str| sent.body.find(needle).unwrap();
    assert!(
        at(r#""accepted":"#) < at(r#""packed":"#)
            && at(r#""packed":"#) < at(r#""completed":"#)
            && at(r#""completed":"#) < at(r#""cancelled":"#),
        "groups in the document's order: {}",
        sent.body
    );
    for t in [&accept, &ship, &deliver, &cancel] {
        assert_eq!(
            f.stored_updated_at(t.id),
            t.updated_at,
            "sent as the platform last reported it"
        );
        assert!(
            sent.body
                .contains(&format!(r#""updated_at":"{}""#, t.updated_at)),
            "byte for byte: {}",
            t.updated_at
        );
    }

    assert_eq!(f.truth_of(accept.id).status, "accepted");
    let shipped = f.truth_of(ship.id);
    assert_eq!(shipped.status, "packed");
    assert_eq!(shipped.airwaybill_number.as_deref(), Some("JP1234567890"));
    let delivered = f.truth_of(deliver.id);
    assert_eq!(
        (delivered.status.as_str(), delivered.received_by.as_deref()),
        ("completed", Some("Yosua"))
    );
    assert_eq!(
        f.truth_of(deliver_to_recipient.id).received_by,
        Some(deliver_to_recipient.delivery_name.clone())
    );
    let cancelled = f.truth_of(cancel.id);
    assert_eq!(
        (
            cancelled.status.as_str(),
            cancelled.cancel_reason.as_deref()
        ),
        ("canceled", Some("Stok habis"))
    );
    assert_eq!(f.truth_of(cancel_silently.id).status, "canceled");
    let db = f.setup.db();
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE state = 'done'"),
        6
    );

    // The store moves only when the platform reports it: now, as our own pushes arriving.
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
    let mut stmt = db
        .prepare(&format!(
            "SELECT order_id, kind FROM order_events WHERE id > {before} ORDER BY id"
        ))
        .unwrap();
    let kinds: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in [
        &accept,
        &ship,
        &deliver,
        &deliver_to_recipient,
        &cancel,
        &cancel_silently,
    ] {
        let for_order: Vec<&str> = kinds
            .iter()
            .filter(|(o, _)| *o == t.id.to_string())
            .map(|(_, k)| k.as_str())
            .collect();
        assert_eq!(for_order, ["push_confirmed"], "order {}", t.id);
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE confirmed_at IS NOT NULL"
        ),
        6,
        "every push confirmed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_without_a_tracking_number_is_refused_before_anything_is_queued() {
    let f = Fixture::synced(20, 0).await;
    let ship = f.order_in("accepted", 0);
    let refused = outbox::enqueue(
        &f.store(),
        f.setup.config().platform(NAME).unwrap(),
        &ship.id.to_string(),
        Action::Status(Status::Shipped),
        &Params::default(),
        outbox::StateCheck::Enforce,
        Utc::now(),
    )
    .await
    .expect_err("SIRCLO sends `shipped` with its air waybill, so none means no push");
    let message = refused.to_string();
    assert!(message.contains("--tracking-number"), "{message}");
    assert_eq!(count(&f.setup.db(), "SELECT count(*) FROM outbox"), 0);
    assert!(f.patches().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_retried_on_the_backoff_schedule_and_honours_retry_after() {
    let f = Fixture::synced(200, 0).await;
    let order = f.order_in("packed", 0);
    let id = f
        .queue(
            order.id,
            Status::Delivered,
            params(|p| p.received_by = Some("Yosua".into())),
            Queue::Checked,
        )
        .await;

    f.sim.faults().push(Fault::Status(503));
    f.sim.faults().push(Fault::Status(503));
    // Whole milliseconds, as the table stores times: the bounds below are then exact.
    let t0 = Utc::now().trunc_subsecs(3);
    f.drain(t0).await;
    let OutboxRow {
        state,
        attempts,
        next,
        ..
    } = f.row(id);
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    let d1 = (next - t0).to_std().unwrap();
    assert!(
        d1 >= Duration::from_millis(500) && d1 <= Duration::from_millis(1500),
        "first delay {d1:?} within 1s ± 50%"
    );

    // Not due yet: nothing is sent.
    f.drain(t0 + chrono::Duration::milliseconds(400)).await;
    assert_eq!(f.patches().len(), 1);

    let t1 = next;
    f.drain(t1).await;
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
        d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(3),
        "second delay {d2:?} within 2s ± 50%"
    );

    f.drain(next).await;
    assert_eq!(f.row(id).state, "done");
    let patches = f.patches();
    assert_eq!(
        patches.iter().map(|p| p.status).collect::<Vec<_>>(),
        [503, 503, 200],
        "exactly three requests"
    );
    assert!(
        patches.iter().all(|p| p.body == patches[0].body),
        "each attempt sends the same update"
    );
    assert_eq!(f.truth_of(order.id).status, "completed");

    // 429 with Retry-After: 2 s, longer than this platform's first backoff (1 s ± 50%).
    let order2 = f.order_in("pending", 0);
    let id2 = f
        .queue(
            order2.id,
            Status::Cancelled,
            Params::default(),
            Queue::Checked,
        )
        .await;
    f.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 2,
    });
    let t3 = Utc::now().trunc_subsecs(3);
    f.drain(t3).await;
    let OutboxRow {
        state,
        attempts,
        next,
        error: err,
    } = f.row(id2);
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(err.unwrap().contains("429"));
    assert!(
        next - t3 >= chrono::Duration::seconds(2),
        "no sooner than Retry-After: {}",
        next - t3
    );
    f.drain(t3 + chrono::Duration::milliseconds(1900)).await;
    assert_eq!(f.patches().len(), 4, "not before the platform asked");
    f.drain(next).await;
    assert_eq!(f.row(id2).state, "done");
    assert_eq!(f.truth_of(order2.id).status, "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_platform_refuses_fails_at_once_with_its_message_and_the_rest_goes_out() {
    let f = Fixture::synced(200, 0).await;
    // Forced past our state machine; SIRCLO's own lifecycle refuses it.
    let packed = f.order_in("packed", 0);
    let bad = f
        .queue(
            packed.id,
            Status::Accepted,
            Params::default(),
            Queue::Forced,
        )
        .await;
    let pending = f.order_in("pending", 0);
    let ok1 = f
        .queue(
            pending.id,
            Status::Accepted,
            Params::default(),
            Queue::Checked,
        )
        .await;
    let accepted = f.order_in("accepted", 0);
    let ok2 = f
        .queue(
            accepted.id,
            Status::Cancelled,
            Params::default(),
            Queue::Checked,
        )
        .await;

    let report = f.drain(Utc::now()).await;
    assert_eq!(
        (report.failed, report.done, report.retried),
        (1, 2, 0),
        "{report:?}"
    );
    assert_eq!(f.patches().len(), 1, "one request for all three");
    let OutboxRow {
        state,
        attempts,
        error: err,
        ..
    } = f.row(bad);
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    let err = err.unwrap();
    assert!(
        err.contains("Status pesanan tidak dapat diubah dari packed ke accepted"),
        "the platform's own text: {err}"
    );
    assert_eq!(f.row(ok1).state, "done");
    assert_eq!(f.row(ok2).state, "done");
    assert_eq!(
        f.truth_of(packed.id),
        packed,
        "the refused order is unchanged"
    );
    assert_eq!(f.truth_of(pending.id).status, "accepted");
    assert_eq!(f.truth_of(accepted.id).status, "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_with_a_4xx_fails_its_orders_at_once_and_the_next_request_still_goes_out()
{
    let f = Fixture::synced(0, 150).await;
    let ids: Vec<u64> = f.sim.order_ids();
    let mut rows: Vec<i64> = Vec::new();
    for id in &ids {
        rows.push(
            f.queue(*id, Status::Accepted, Params::default(), Queue::Checked)
                .await,
        );
    }
    f.sim.faults().push(Fault::Status(400));

    let report = f.drain(Utc::now()).await;
    assert_eq!(
        (report.failed, report.done, report.retried),
        (100, 50, 0),
        "{report:?}"
    );
    let patches = f.patches();
    assert_eq!(
        patches.iter().map(|p| p.status).collect::<Vec<_>>(),
        [400, 200]
    );
    let first = ids_in(&patches[0].body)["accepted"].clone();
    let second = ids_in(&patches[1].body)["accepted"].clone();
    assert_eq!(
        (first.len(), second.len()),
        (MAX_ORDERS_PER_REQUEST, 150 - MAX_ORDERS_PER_REQUEST)
    );
    let o = SimOptions::default();
    for (id, row) in ids.iter().zip(&rows) {
        let OutboxRow {
            state,
            attempts,
            error: err,
            ..
        } = f.row(*row);
        if first.contains(id) {
            assert_eq!((state.as_str(), attempts), ("failed", 1), "order {id}");
            let err = err.unwrap();
            assert!(
                err.contains("400") && err.contains("Simulated failure"),
                "the platform's own text: {err}"
            );
            for secret in [&o.secret, &o.api_key, &o.api_secret] {
                assert!(!err.contains(secret.as_str()), "no secret in {err}");
            }
            assert_eq!(f.truth_of(*id).status, "pending");
        } else {
            assert!(second.contains(id));
            assert_eq!(state, "done", "order {id}");
            assert_eq!(f.truth_of(*id).status, "accepted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_read_back_and_never_sent_twice() {
    let f = Fixture::synced(200, 0).await;
    let pending = f.order_in("pending", 0);
    let accepted = f.order_in("accepted", 0);
    let a = f
        .queue(
            pending.id,
            Status::Accepted,
            Params::default(),
            Queue::Checked,
        )
        .await;
    let b = f
        .queue(
            accepted.id,
            Status::Shipped,
            params(|p| p.tracking_number = Some("CGK0000000000001".into())),
            Queue::Checked,
        )
        .await;
    // The platform applies the update, then the connection breaks mid-answer.
    f.sim.faults().push(Fault::DropConnection);
    let t0 = Utc::now().trunc_subsecs(3);
    let report = f.drain(t0).await;
    assert_eq!((report.retried, report.done), (2, 0), "{report:?}");
    let unknown = |id: i64| -> bool {
        f.setup
            .db()
            .query_row(
                "SELECT outcome_unknown FROM outbox WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let mut due = t0;
    for id in [a, b] {
        let OutboxRow {
            state,
            attempts,
            next,
            error: err,
        } = f.row(id);
        assert_eq!((state.as_str(), attempts), ("pending", 1));
        assert!(err.unwrap().contains("may have applied"));
        assert!(unknown(id), "marked for a read-back");
        due = due.max(next);
    }
    assert_eq!(f.truth_of(pending.id).status, "accepted", "it did land");
    assert_eq!(f.truth_of(accepted.id).status, "packed", "it did land");
    let seen = f.sim.request_count();

    let report = f.drain(due).await;
    assert_eq!(
        (report.already_applied, report.done, report.sent),
        (2, 2, 0),
        "{report:?}"
    );
    assert_eq!(f.row(a).state, "done");
    assert_eq!(f.row(b).state, "done");
    assert_eq!(f.patches().len(), 1, "never sent twice");
    let since: Vec<RecordedRequest> = f.sim.requests().split_off(seen);
    assert!(
        !since.is_empty()
            && since
                .iter()
                .all(|r| r.method == "GET" && r.path_and_query.starts_with("/v1/partner/page/")),
        "read back from the list: {since:#?}"
    );

    // A claim that died before its request left (a crash): read back, not applied, sent once.
    let cancel = f.order_in("pending", 1);
    let c = f
        .queue(
            cancel.id,
            Status::Cancelled,
            Params::default(),
            Queue::Checked,
        )
        .await;
    let db = f.setup.db();
    db.execute("UPDATE outbox SET state = 'in_flight' WHERE id = ?1", [c])
        .unwrap();
    assert_eq!(f.store().recover_in_flight(Utc::now()).await.unwrap(), 1);
    assert!(unknown(c));
    let seen = f.sim.request_count();
    let report = f.drain(Utc::now()).await;
    assert_eq!(
        (report.already_applied, report.done, report.sent),
        (0, 1, 1),
        "{report:?}"
    );
    let since: Vec<RecordedRequest> = f.sim.requests().split_off(seen);
    let methods: Vec<&str> = since.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods.last(), Some(&"PATCH"), "{methods:?}");
    assert!(
        methods[..methods.len() - 1].iter().all(|m| *m == "GET") && methods.len() >= 2,
        "read back before sending: {methods:?}"
    );
    assert_eq!(
        ids_in(&since.last().unwrap().body),
        BTreeMap::from([("cancelled".to_string(), vec![cancel.id])])
    );
    assert_eq!(f.truth_of(cancel.id).status, "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_transitions_go_out_in_a_handful_of_batched_requests() {
    let f = Fixture::synced(0, 1000).await;
    let ids = f.sim.order_ids();
    {
        let config = f.setup.config();
        let cfg = config.platform(NAME).unwrap();
        let store = f.store();
        for id in &ids {
            outbox::enqueue(
                &store,
                cfg,
                &id.to_string(),
                Action::Status(Status::Accepted),
                &Params::default(),
                outbox::StateCheck::Enforce,
                Utc::now(),
            )
            .await
            .unwrap();
        }
    }
    let (store, platforms) = (f.store(), f.platforms());
    let started = Instant::now();
    let report = outbox::drain_once(&store, &platforms, Utc::now())
        .await
        .unwrap();
    let took = started.elapsed();
    let patches = f.patches();
    eprintln!(
        "sirclo push: {} transitions in {} PATCH requests ({} orders max each); drain_once took {took:?}",
        ids.len(),
        patches.len(),
        MAX_ORDERS_PER_REQUEST
    );
    assert_eq!((report.done, report.failed), (1000, 0), "{report:?}");
    assert_eq!(patches.len(), 1000usize.div_ceil(MAX_ORDERS_PER_REQUEST));
    assert!(patches.len() <= 10, "a handful, not one per order");
    let mut sent: Vec<u64> = patches
        .iter()
        .flat_map(|p| ids_in(&p.body)["accepted"].clone())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, ids, "every order exactly once");
    assert!(
        f.sim.truth().iter().all(|t| t.status == "accepted"),
        "every order moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_changed_on_the_platform_since_the_last_sync_is_refused_as_stale_and_the_rest_is_done()
 {
    let f = Fixture::synced(200, 0).await;
    let orders: Vec<TruthOrder> = (0..3).map(|i| f.order_in("pending", i)).collect();
    let mut rows: Vec<i64> = Vec::new();
    for o in &orders {
        rows.push(
            f.queue(o.id, Status::Accepted, Params::default(), Queue::Checked)
                .await,
        );
    }
    // The back office edits one order after our sync: its updatedAt moves on.
    let stale = &orders[1];
    f.sim.set_airwaybill(stale.id, "CGK9999999999999");
    let changed = f.truth_of(stale.id);
    assert_ne!(changed.updated_at, stale.updated_at);

    let report = f.drain(Utc::now()).await;
    assert_eq!((report.done, report.failed), (2, 1), "{report:?}");
    let patches = f.patches();
    assert_eq!(patches.len(), 1);
    let body: Value = serde_json::from_str(&patches[0].body).unwrap();
    let sent_for_stale = body["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == stale.id)
        .unwrap()["updated_at"]
        .clone();
    assert_eq!(
        sent_for_stale, stale.updated_at,
        "what our last sync saw, not the platform's newer time"
    );

    let OutboxRow {
        state,
        attempts,
        error: err,
        ..
    } = f.row(rows[1]);
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    let err = err.unwrap();
    assert!(
        err.contains("Data pesanan sudah berubah, silakan muat ulang")
            && err.contains(&changed.updated_at),
        "the platform's reason and its current updated_at: {err}"
    );
    assert_eq!(f.truth_of(stale.id).status, "pending", "not overwritten");
    for i in [0, 2] {
        assert_eq!(f.row(rows[i]).state, "done");
        assert_eq!(f.truth_of(orders[i].id).status, "accepted");
    }
}
