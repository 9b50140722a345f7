//! The store's promises that the engines rely on, checked through its public methods on both
//! backends (`store_semantics::<promise>::{sqlite,postgres}`): a lapsed claim is taken back and
//! its late outcome not recorded, our own push arriving by sync confirms its entry in the page's
//! commit, a sink's cursor moves only within its epoch and a replay never moves it forward, the
//! pass checkpoint commits with its page, a run history is kept, and an order a page holds twice
//! is created by the first sighting and changed by the second.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use ordersync::model::{
    Action, Attempt, FeedFilter, Incoming, Order, OutboxState, PageWrite, Params, PassProgress,
    PassState, RunRecord, Status,
};
use ordersync::store::{Recorded, SinkStart, Store};

use crate::common::postgres::server;

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A store of `backend`, with what keeps it alive (the SQLite file's folder).
async fn store(backend: Backend) -> (Store, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (Store::open(&dir.path().join("o.db")).unwrap(), Some(dir))
        }
        Backend::Postgres => {
            let db = server().database();
            let s = Store::open_database(&db.database(), Duration::from_secs(5))
                .await
                .unwrap();
            (s, None)
        }
    }
}

fn order(id: &str, status: Status) -> Incoming {
    let o = Order {
        order_id: id.into(),
        number: format!("N-{id}"),
        status,
        platform_status: status.as_str().into(),
        placed_at: Some(Utc::now() - TimeDelta::hours(1)),
        updated_at: None,
        currency: Some("EUR".into()),
        total: None,
        customer_name: None,
        tracking_number: None,
        items: Vec::new(),
    };
    let raw = format!("{{\"id\":\"{id}\",\"status\":\"{status}\"}}");
    Incoming::new(o, raw)
}

fn page(orders: Vec<Incoming>, checkpoint: Option<PassState>) -> PageWrite {
    PageWrite {
        platform: "shop".into(),
        orders,
        rejects: Vec::new(),
        checkpoint,
    }
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(super::Backend::Postgres).await;
                }
            }
        )+
    };
}

on_both!(
    a_lapsed_claim_is_taken_back_and_its_late_outcome_not_recorded,
    our_push_seen_by_a_sync_confirms_its_entry_in_the_same_commit,
    a_sink_cursor_moves_only_within_its_epoch,
    the_checkpoint_commits_with_its_page_and_runs_are_recorded,
    an_order_twice_in_one_page_is_created_then_changed_in_page_order,
);

async fn a_lapsed_claim_is_taken_back_and_its_late_outcome_not_recorded(backend: Backend) {
    let (store, _keep) = store(backend).await;
    store
        .apply_page(page(vec![order("1", Status::Processing)], None))
        .await
        .unwrap();
    let now = Utc::now();
    let id = store
        .enqueue(
            "shop",
            "1",
            Action::Status(Status::Shipped),
            &Params::default(),
            now,
            |_, _| Ok::<(), ()>(()),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_due("shop", now, Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    assert_eq!(
        claimed[0].order.raw,
        "{\"id\":\"1\",\"status\":\"processing\"}"
    );
    // Within the lease: nothing to take back, and nothing more to claim for the order.
    assert_eq!(store.recover_in_flight(now).await.unwrap(), 0);
    assert!(
        store
            .claim_due("shop", now, Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let later = now + TimeDelta::seconds(31);
    assert_eq!(store.recover_in_flight(later).await.unwrap(), 1);
    let attempt = Attempt {
        state: OutboxState::Done,
        attempts: 1,
        next_attempt_at: later,
        last_error: None,
        outcome_unknown: false,
        at: later,
    };
    assert_eq!(
        store.finish_push(id, attempt).await.unwrap(),
        Recorded::NotHeld(Some(OutboxState::Pending))
    );
    let again = store
        .claim_due("shop", later, Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert!(again[0].outcome_unknown, "read back before any resend");
}

async fn our_push_seen_by_a_sync_confirms_its_entry_in_the_same_commit(backend: Backend) {
    let (store, _keep) = store(backend).await;
    store
        .apply_page(page(vec![order("1", Status::Processing)], None))
        .await
        .unwrap();
    let id = store
        .enqueue(
            "shop",
            "N-1",
            Action::Status(Status::Shipped),
            &Params::default(),
            Utc::now(),
            |_, _| Ok::<(), ()>(()),
        )
        .await
        .unwrap();
    let out = store
        .apply_page(page(vec![order("1", Status::Shipped)], None))
        .await
        .unwrap();
    assert_eq!((out.changed, out.confirmed), (1, 1));
    assert_eq!(
        store.outbox_state(id).await.unwrap(),
        Some(OutboxState::Done)
    );
    let kinds: Vec<String> = store
        .order_events("shop", "1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "push_confirmed"]);
    let changed = store.order_events("shop", "1").await.unwrap()[1]
        .changes
        .clone()
        .unwrap();
    assert_eq!(changed["status"]["new"], "shipped", "{changed}");
}

async fn a_sink_cursor_moves_only_within_its_epoch(backend: Backend) {
    let (store, _keep) = store(backend).await;
    store
        .apply_page(page(
            (1..=5)
                .map(|i| order(&i.to_string(), Status::Pending))
                .collect(),
            None,
        ))
        .await
        .unwrap();
    let sink = store.open_sink("erp", SinkStart::Beginning).await.unwrap();
    assert_eq!((sink.cursor, sink.epoch), (0, 0));
    let batch = store
        .feed_batch(0, 3, &FeedFilter::default())
        .await
        .unwrap();
    assert_eq!(batch.items.len(), 3);
    assert_eq!(batch.up_to, batch.items[2].event.id);
    assert!(batch.items.iter().all(|i| i.order.is_some()));
    // A replay between the read and the acknowledgement: the old batch cannot move the cursor.
    let replayed = store
        .sink_replay("erp", 1, SinkStart::Beginning)
        .await
        .unwrap();
    assert_eq!(replayed.epoch, 1);
    assert!(!store.sink_advance("erp", 0, batch.up_to, 3).await.unwrap());
    assert!(store.sink_advance("erp", 1, batch.up_to, 3).await.unwrap());
    // A replay from past the cursor never moves it forward.
    let r = store
        .sink_replay("erp", batch.up_to + 2, SinkStart::Beginning)
        .await
        .unwrap();
    assert_eq!(r.cursor, batch.up_to);
    let lag = store
        .sink_lag(r.cursor, &FeedFilter::default())
        .await
        .unwrap();
    assert_eq!(lag.events, 2);
    let paused = store
        .sink_set_paused("erp", true, SinkStart::Beginning)
        .await
        .unwrap();
    assert!(paused.paused);
    assert_eq!(store.sinks().await.unwrap().len(), 1);
    assert_eq!(store.newest_event_id().await.unwrap(), 5);
}

async fn the_checkpoint_commits_with_its_page_and_runs_are_recorded(backend: Backend) {
    let (store, _keep) = store(backend).await;
    let t = |s: i64| chrono::DateTime::from_timestamp(1_767_000_000 + s, 0).unwrap();
    let state = PassState {
        cursor: Some(t(0)),
        pass: Some(PassProgress {
            started_at: t(10),
            from: t(-600),
            to: t(10),
            resume: "page=2".into(),
        }),
    };
    store
        .apply_page(page(vec![order("1", Status::Pending)], Some(state.clone())))
        .await
        .unwrap();
    assert_eq!(store.load_pass_state("shop").await.unwrap(), state);
    let id = store.start_run("shop", "sync", t(10)).await.unwrap();
    store
        .finish_run(
            id,
            RunRecord {
                kind: "sync".into(),
                started_at: "ignored".into(),
                finished_at: Some("2025-12-29T09:20:20Z".into()),
                outcome: "ok".into(),
                fetched: 1,
                created: 1,
                changed: 0,
                rejected: 0,
                error: None,
            },
        )
        .await
        .unwrap();
    let run = store.last_run("shop").await.unwrap().unwrap();
    assert_eq!((run.outcome.as_str(), run.fetched), ("ok", 1));
    assert_eq!(
        run.started_at, "2025-12-29T09:20:10Z",
        "times in the one text form"
    );
    assert_eq!(
        store.last_success_at("shop").await.unwrap().as_deref(),
        Some("2025-12-29T09:20:20Z")
    );
    assert_eq!(store.order_counts("shop").await.unwrap(), (1, 1));
}

/// A page that moved under the reader can hold an order twice: the second sighting is compared
/// with the first, as if the two had come on consecutive pages.
async fn an_order_twice_in_one_page_is_created_then_changed_in_page_order(backend: Backend) {
    let (store, _keep) = store(backend).await;
    let out = store
        .apply_page(page(
            vec![
                order("a", Status::Pending),
                order("b", Status::Pending),
                order("a", Status::Accepted),
                order("c", Status::Pending),
            ],
            None,
        ))
        .await
        .unwrap();
    assert_eq!((out.created, out.changed), (3, 1));
    let events: Vec<(String, String)> = store
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.order_id, e.kind))
        .collect();
    let expected = [
        ("a", "created"),
        ("b", "created"),
        ("a", "status_changed"),
        ("c", "created"),
    ];
    assert_eq!(
        events,
        expected.map(|(o, k)| (o.to_string(), k.to_string())),
        "one event per sighting, in page order"
    );
    let a = store.find_order("shop", "a").await.unwrap().unwrap();
    assert_eq!(a.status, Status::Accepted.as_str());
}
