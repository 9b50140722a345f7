//! A platform down for two hours while transitions keep being queued (several per order) and
//! syncs keep being attempted, on a paused tokio clock and the outbox's own injected clock: the
//! retry state lives in the `outbox` table and nothing in memory grows with the backlog; after
//! recovery the backlog drains, and each order's transitions reach the platform in the order
//! they were queued — a later one never overtakes an earlier one that is pending or failed.
//!
//! The outage is a refused connection (the simulator's port closed), which fails at once: a
//! paused clock jumps to the next timer whenever the runtime waits on a socket, so a server
//! that had to answer would race the request's own timeout.

use ordersync::cli::SyncArgs;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::*;
use chrono::{DateTime, TimeDelta, Utc};
use ordersync::daemon::{self, Platform};
use ordersync::http::Redactor;
use ordersync::model::Status;
use ordersync::outbox::{self, Action, DrainReport, Params};
use ordersync::store::Store;
use ordersync::sync::{PassKind, PassOptions};
use ordersync_sim::merchantpro::MerchantProSim;
use tokio_util::sync::CancellationToken;

const OUTAGE_MINUTES: i64 = 120;
const STEP_MINUTES: i64 = 1;

struct Outage {
    sim: MerchantProSim,
    setup: Setup,
    addr: SocketAddr,
    store: Store,
    platforms: BTreeMap<String, Arc<Platform>>,
    cancel: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Outage {
    /// A synced shop whose first `confirmed` orders are `confirmed`, with a platform file with
    /// this `[retry]` budget; then the shop goes down (its port refuses connections).
    async fn begin(confirmed: usize, retry: &str) -> (Outage, Vec<u64>) {
        let shop = Shop::open("shop-ro", confirmed + 20).await;
        let chosen: Vec<u64> = shop.sim.order_ids().into_iter().take(confirmed).collect();
        for id in &chosen {
            shop.sim.set_status(*id, "confirmed");
        }
        let setup = Setup::new();
        // No practical rate limit: the limiter's clock is the wall clock, which a paused
        // runtime does not move.
        let toml = shop
            .platform_toml(&format!("[platforms.shop-ro.retry]\n{retry}"))
            .replace(
                "max_requests_per_second = 1000",
                "max_requests_per_second = 1000000000",
            );
        setup.add_platform_file("shop-ro.toml", &toml);
        ordersync::cli::sync(setup.config(), SyncArgs::default())
            .await
            .unwrap();
        let Shop { sim, server, .. } = shop;
        let addr = server.addr;
        server.stop().await;
        let store = Store::open(&setup.db_path()).unwrap();
        let cancel = CancellationToken::new();
        let platforms = daemon::build_platforms(
            &setup.config(),
            &Redactor::default(),
            &cancel,
            &daemon::RunLocks::default(),
        );
        let o = Outage {
            sim,
            setup,
            addr,
            store,
            platforms,
            cancel,
            server: None,
        };
        (o, chosen)
    }

    /// The platform is back, on the same address.
    async fn recover(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let router = self.sim.router();
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
    }

    /// Queues `to` for each order, as an operator would (`--force`: the stored order still says
    /// what it said before the outage, as no sync succeeds).
    async fn queue(&self, orders: &[u64], to: Status, now: DateTime<Utc>) -> Vec<i64> {
        let config = self.setup.config();
        let mut ids = Vec::with_capacity(orders.len());
        for o in orders {
            let params = Params {
                tracking_number: (to == Status::Shipped).then(|| format!("AWB-{o}")),
                ..Params::default()
            };
            let id = outbox::enqueue(
                &self.store,
                config.platform("shop-ro").unwrap(),
                &o.to_string(),
                Action::Status(to),
                &params,
                outbox::StateCheck::Override,
                now,
            )
            .await
            .unwrap_or_else(|e| panic!("queueing {to} for {o}: {e}"));
            ids.push(id);
        }
        ids
    }

    async fn drain(&self, now: DateTime<Utc>) -> DrainReport {
        outbox::drain_once(&self.store, &self.platforms, now)
            .await
            .unwrap()
    }

    /// A scheduled sync; its result (an error while the shop is down).
    async fn sync(&self, kind: PassKind) -> Result<(), String> {
        self.platforms["shop-ro"]
            .run_pass(
                kind,
                PassOptions::default(),
                &self.store,
                &self.cancel,
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn outbox_states(&self) -> BTreeMap<String, i64> {
        let conn = self.setup.db();
        let mut stmt = conn
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn state_count(&self, state: &str) -> i64 {
        self.outbox_states().get(state).copied().unwrap_or(0)
    }

    /// What reached the platform for `order`, in arrival order: each processing handler, and
    /// `awb` for the tracking number set before `shipped`.
    fn arrivals(&self, order: u64) -> Vec<String> {
        let base = format!("/api/v2/orders/{order}");
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path_and_query.starts_with(&base))
            .map(
                |r| match r.path_and_query.strip_prefix(&format!("{base}/")) {
                    Some(handler) => handler.to_string(),
                    None => "awb".to_string(),
                },
            )
            .collect()
    }

    /// Drains with the clock moving a minute at a time until nothing is pending or in flight;
    /// the number of drains it took.
    async fn drain_until_empty(&self, mut now: DateTime<Utc>) -> (usize, DateTime<Utc>) {
        for n in 1..=60 {
            self.drain(now).await;
            if self.state_count("pending") + self.state_count("in_flight") == 0 {
                return (n, now);
            }
            now += TimeDelta::minutes(1);
        }
        panic!("the backlog did not drain: {:?}", self.outbox_states());
    }

    /// Brings the store up to date after the outage and checks it against the platform.
    async fn sync_matches_truth(&self) {
        self.sync(PassKind::Incremental).await.unwrap();
        self.sync(PassKind::Reconcile).await.unwrap();
        assert_store_matches(&self.setup.db(), "shop-ro", &self.sim.truth());
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// The tests of this file one at a time, and none beside a test that fills this process's
/// memory: the memory check reads the whole process's RSS.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    crate::common::memory_quiet().await
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test(flavor = "current_thread")]
async fn a_two_hour_outage_keeps_its_backlog_in_the_table_and_drains_it_in_queue_order() {
    const ORDERS: usize = 60;
    // Enough attempts to outlast two hours at up to ten minutes apart.
    let _serial = serial().await;
    let (mut o, orders) = Outage::begin(
        ORDERS,
        "max_attempts = 40\ninitial_interval = \"2s\"\nmax_interval = \"10m\"",
    )
    .await;
    let rss_before = rss_kib();
    tokio::time::pause();
    let t0 = Utc::now();
    let mut queued = 0i64;
    let mut failed_syncs = 0;
    let mut most_sent_in_one_drain = 0;
    let mut attempts_seen = 0i64;
    for minute in (0..=OUTAGE_MINUTES).step_by(STEP_MINUTES as usize) {
        let now = t0 + TimeDelta::minutes(minute);
        // Three transitions per order, queued half an hour apart while the platform is down.
        let wave = match minute {
            0 => Some(Status::Processing),
            30 => Some(Status::Shipped),
            60 => Some(Status::Delivered),
            _ => None,
        };
        if let Some(to) = wave {
            queued += o.queue(&orders, to, now).await.len() as i64;
        }
        let r = o.drain(now).await;
        assert_eq!((r.done, r.failed), (0, 0), "minute {minute}: {r:?}");
        // One entry per order at most: the drain holds a bounded batch, never the backlog.
        assert!(r.sent as usize <= ORDERS, "minute {minute}: {r:?}");
        most_sent_in_one_drain = most_sent_in_one_drain.max(r.sent);
        // Between drains nothing is held in memory: every entry is back in the table, with its
        // retry schedule.
        assert_eq!(o.state_count("in_flight"), 0, "minute {minute}");
        assert_eq!(o.state_count("pending"), queued, "minute {minute}");
        let attempts: i64 = count(&o.setup.db(), "SELECT sum(attempts) FROM outbox");
        assert!(attempts >= attempts_seen, "attempts only grow");
        attempts_seen = attempts;
        if minute % 15 == 0 {
            // The scheduled sync keeps being attempted, and fails.
            let err = o.sync(PassKind::Incremental).await.unwrap_err();
            assert!(err.contains("shop-ro"), "{err}");
            failed_syncs += 1;
        }
    }
    let rss_after = rss_kib();
    assert_eq!(failed_syncs, 9);
    assert_eq!(
        count(
            &o.setup.db(),
            "SELECT count(*) FROM sync_runs WHERE outcome = 'failed'"
        ),
        9,
        "each failed sync is recorded"
    );
    assert_eq!(queued, 3 * ORDERS as i64);
    // Only the first transition of each order was ever attempted: the later ones waited.
    let attempted_later: i64 = count(
        &o.setup.db(),
        "SELECT count(*) FROM outbox WHERE action != 'processing' AND attempts > 0",
    );
    assert_eq!(
        attempted_later, 0,
        "a later transition was sent before an earlier one"
    );
    let attempts_each: i64 = count(
        &o.setup.db(),
        "SELECT min(attempts) FROM outbox WHERE action = 'processing'",
    );
    assert!(
        attempts_each >= 15,
        "retried all along the outage: {attempts_each}"
    );
    eprintln!(
        "outage: {queued} queued, {attempts_seen} attempts, at most {most_sent_in_one_drain} per drain, RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory grew during the outage: {rss_before} -> {rss_after} KiB"
    );

    tokio::time::resume();
    o.recover().await;
    let after = t0 + TimeDelta::minutes(OUTAGE_MINUTES + 1);
    let (drains, _) = o.drain_until_empty(after).await;
    assert_eq!(
        o.outbox_states(),
        BTreeMap::from([("done".to_string(), queued)])
    );
    assert!(drains >= 3, "one transition per order per drain: {drains}");
    for order in &orders {
        assert_eq!(
            o.arrivals(*order),
            ["in_process", "awb", "shipped", "delivered"],
            "order {order}"
        );
    }
    let truth: BTreeMap<u64, _> = o.sim.truth().into_iter().map(|t| (t.id, t)).collect();
    for order in &orders {
        assert_eq!(truth[order].shipping_status, "delivered");
        assert_eq!(
            truth[order].shipping_awb.as_deref(),
            Some(format!("AWB-{order}").as_str())
        );
    }
    o.sync_matches_truth().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_transition_that_exhausts_its_retries_in_the_outage_holds_back_its_orders_later_ones() {
    const ORDERS: usize = 10;
    // The default budget: ten attempts, at most ten minutes apart, runs out well inside two
    // hours.
    let _serial = serial().await;
    let (mut o, orders) = Outage::begin(ORDERS, "max_attempts = 10").await;
    tokio::time::pause();
    let t0 = Utc::now();
    let mut first = Vec::new();
    for minute in (0..=OUTAGE_MINUTES).step_by(STEP_MINUTES as usize) {
        let now = t0 + TimeDelta::minutes(minute);
        match minute {
            0 => first = o.queue(&orders, Status::Processing, now).await,
            45 => drop(o.queue(&orders, Status::Shipped, now).await),
            60 => drop(o.queue(&orders, Status::Delivered, now).await),
            _ => {}
        }
        o.drain(now).await;
        assert_eq!(o.state_count("in_flight"), 0);
    }
    assert_eq!(
        o.state_count("failed"),
        ORDERS as i64,
        "{:?}",
        o.outbox_states()
    );
    assert_eq!(o.state_count("pending"), 2 * ORDERS as i64);
    assert_eq!(
        count(
            &o.setup.db(),
            "SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts > 0"
        ),
        0,
        "nothing behind a failed transition was tried"
    );

    tokio::time::resume();
    o.recover().await;
    // Back up, but the failed first transitions still hold their orders.
    let mut now = t0 + TimeDelta::minutes(OUTAGE_MINUTES + 1);
    for _ in 0..3 {
        o.drain(now).await;
        now += TimeDelta::minutes(10);
    }
    for order in &orders {
        assert!(
            o.arrivals(*order).is_empty(),
            "order {order} overtook its failed transition"
        );
    }
    assert_eq!(o.state_count("pending"), 2 * ORDERS as i64);

    // The operator retries them (`ordersync outbox retry ID`): everything goes, in order.
    for id in &first {
        outbox::retry(&o.store, *id, now).await.unwrap();
    }
    o.drain_until_empty(now).await;
    assert_eq!(
        o.outbox_states(),
        BTreeMap::from([("done".to_string(), 3 * ORDERS as i64)])
    );
    for order in &orders {
        assert_eq!(
            o.arrivals(*order),
            ["in_process", "awb", "shipped", "delivered"],
            "order {order}"
        );
    }
    o.sync_matches_truth().await;
}
