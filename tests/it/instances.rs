//! Several `ordersync run` processes on one PostgreSQL database and the same platform files, as
//! on several machines: each platform is run by one of them at a time (its lease), every push
//! reaches its platform once, a sink delivers from one of them, and when one is killed or
//! stopped the others take its platforms over within a lease period, with the change feed
//! intact for a consumer reading `events --after`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Backend, Daemon, Setup, Shop, assert_store_matches, stderr};

const PLATFORMS: usize = 30;
const DAEMONS: usize = 3;
/// The shortest lease the configuration allows, so takeovers happen within the test's time.
const LEASE_S: u64 = 3;

struct Fleet {
    shops: Vec<Shop>,
    setup: Setup,
}

/// 30 MerchantPro shops of `orders` orders each, each its own simulator, and a configuration
/// naming the shared database.
async fn fleet(orders: usize, daemon_extra: &str, platform_extra: &str) -> Fleet {
    let setup = Setup::on(Backend::Postgres);
    setup.write_daemon(&format!(
        "push_interval = \"1s\"\nshutdown_grace = \"10s\"\nlease_period = \"{LEASE_S}s\"\n\
         {daemon_extra}\n"
    ));
    let mut shops = Vec::new();
    for i in 0..PLATFORMS {
        let shop = Shop::open(&format!("shop-{i:02}"), orders).await;
        setup.add_platform_file(
            &format!("shop-{i:02}.toml"),
            &shop.platform_toml(platform_extra),
        );
        shops.push(shop);
    }
    Fleet { shops, setup }
}

fn pg(setup: &Setup) -> &crate::common::postgres::PgDb {
    setup.pg.as_ref().expect("a PostgreSQL store")
}

/// Orders stored so far, read straight from the database while the daemons write.
fn stored_orders(setup: &Setup) -> i64 {
    // Before the first daemon has made the tables: none.
    pg(setup)
        .try_rows("SELECT count(*) FROM orders")
        .map_or(0, |r| r[0].parse().unwrap())
}

fn log_path(setup: &Setup, n: usize) -> std::path::PathBuf {
    setup.dir.path().join(format!("daemon-{n}.log"))
}

fn start(setup: &Setup, n: usize) -> Daemon {
    let mut cmd = setup.command(&["run"]);
    cmd.env("ORDERSYNC_DAEMON__LOG_FORMAT", "text")
        .env(
            "ORDERSYNC_DAEMON__LOG_LEVEL",
            "info,ordersync::daemon=debug",
        )
        .stderr(File::create(log_path(setup, n)).unwrap())
        .stdout(Stdio::null());
    Daemon::spawn(cmd)
}

fn log(setup: &Setup, n: usize) -> String {
    std::fs::read_to_string(log_path(setup, n)).unwrap_or_default()
}

/// How many runs each daemon finished, from its log.
fn runs_per_daemon(setup: &Setup) -> Vec<usize> {
    (0..DAEMONS)
        .map(|n| {
            log(setup, n)
                .lines()
                .filter(|l| l.contains("run finished"))
                .count()
        })
        .collect()
}

/// Pairs of list requests one shop had in flight at the same time.
/// The list requests of `shop` that were in flight at the same time as another, as "received
/// → answered" pairs in milliseconds since `origin`.
fn overlapping_lists(shop: &Shop, origin: Instant) -> Vec<String> {
    let lists: Vec<_> = shop
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path_and_query.starts_with("/api/v2/orders?"))
        .collect();
    let ms = |t: Instant| {
        if t >= origin {
            format!("{}", (t - origin).as_millis())
        } else {
            format!("-{}", (origin - t).as_millis())
        }
    };
    let mut pairs = Vec::new();
    for (i, a) in lists.iter().enumerate() {
        for b in lists[i + 1..].iter().filter(|b| a.overlaps(b)) {
            pairs.push(format!(
                "{} {}→{} ms and {} {}→{} ms",
                a.path_and_query,
                ms(a.received),
                ms(a.answered),
                b.path_and_query,
                ms(b.received),
                ms(b.answered)
            ));
        }
    }
    pairs
}

fn signal(d: &Daemon, sig: i32) {
    // SAFETY: kill(2) on a child the test started.
    unsafe { libc::kill(d.id() as i32, sig) };
}

async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "waited {secs} s for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A consumer of the change feed as a downstream system runs it: `events --after` its cursor,
/// again and again, keeping every id it was given.
struct Consumer {
    cursor: i64,
    seen: Vec<i64>,
}

impl Consumer {
    /// One read: the events after the cursor, as many as one answer holds.
    fn poll(&mut self, setup: &Setup) -> usize {
        let out = setup.ordersync(&["events", "--after", &self.cursor.to_string(), "--json"]);
        assert!(out.status.success(), "events --after: {}", stderr(&out));
        let feed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<i64> = feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        if let Some(&last) = ids.last() {
            self.cursor = last;
        }
        self.seen.extend(&ids);
        ids.len()
    }

    /// Reads until nothing is left (the writers have stopped).
    fn drain(&mut self, setup: &Setup) {
        while self.poll(setup) > 0 {}
    }

    /// Every stored event was read once, none twice.
    fn assert_read_every_event_once(&self, setup: &Setup) {
        let mut unique = BTreeSet::new();
        let twice: Vec<i64> = self
            .seen
            .iter()
            .copied()
            .filter(|id| !unique.insert(*id))
            .collect();
        assert!(twice.is_empty(), "events read twice: {twice:?}");
        let db = setup.db();
        let stored: BTreeSet<i64> = db
            .prepare("SELECT id FROM order_events")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let skipped: Vec<_> = stored.difference(&unique).collect();
        assert!(
            skipped.is_empty(),
            "events the consumer never read: {skipped:?}"
        );
    }
}

/// No order has two `created` events, and every stored order has one.
fn assert_one_created_event_per_order(setup: &Setup) {
    let db = setup.db();
    let dup: i64 = db
        .query_row(
            "SELECT count(*) FROM (SELECT platform, order_id FROM order_events \
             WHERE kind = 'created' GROUP BY platform, order_id HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup, 0, "orders with more than one created event");
    let orders: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    let created: i64 = db
        .query_row(
            "SELECT count(*) FROM order_events WHERE kind = 'created'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(created, orders, "one created event per stored order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_daemons_run_each_platform_one_at_a_time_and_push_each_transition_once() {
    // Thirty simulators in this process: not while a test measures its memory.
    let _quiet = crate::common::memory_quiet().await;
    let f = fleet(
        40,
        "",
        "schedule = \"*/2 * * * * *\"\nreconcile_schedule = \"off\"",
    )
    .await;
    let started = Instant::now();
    let daemons: Vec<Daemon> = (0..DAEMONS).map(|n| start(&f.setup, n)).collect();
    let setup = &f.setup;
    until(60, "every shop stored", || {
        stored_orders(setup) == (PLATFORMS * 40) as i64
    })
    .await;

    // One transition on every shop, queued from the command line as an operator does.
    let mut pushed = BTreeMap::new();
    for shop in &f.shops {
        let open = shop
            .sim
            .truth()
            .into_iter()
            .find(|t| t.shipping_status == "awaiting")
            .expect("an order awaiting shipment")
            .id
            .to_string();
        let out = setup.ordersync(&["transition", &shop.name, &open, "cancelled"]);
        assert!(out.status.success(), "transition: {}", stderr(&out));
        pushed.insert(shop.name.clone(), open);
    }
    let pushes = |shop: &Shop, id: &str| {
        shop.sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path_and_query.contains(&format!("/{id}")))
            .count()
    };
    until(60, "every transition pushed", || {
        f.shops.iter().all(|s| pushes(s, &pushed[&s.name]) > 0)
    })
    .await;
    // Several more drains and scheduled runs of every daemon.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for shop in &f.shops {
        assert_eq!(
            pushes(shop, &pushed[&shop.name]),
            1,
            "{}: pushed once",
            shop.name
        );
    }
    for d in &daemons {
        signal(d, libc::SIGTERM);
    }
    for mut d in daemons {
        let status = d.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }

    for shop in &f.shops {
        assert_eq!(
            overlapping_lists(shop, started),
            Vec::<String>::new(),
            "{}: two list requests in flight at once (since the daemons started); the daemons' warnings:\n{}",
            shop.name,
            (0..DAEMONS)
                .flat_map(|n| log(setup, n)
                    .lines()
                    .filter(|l| l.contains("WARN"))
                    .map(|l| format!("{n}: {l}"))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let runs = runs_per_daemon(setup);
    assert!(
        runs.iter().all(|&r| r > 0),
        "every daemon took a share of the runs: {runs:?}"
    );
    let db = setup.db();
    for shop in &f.shops {
        assert_store_matches(&db, &shop.name, &shop.sim.truth());
    }
    assert_one_created_event_per_order(setup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_and_a_stopped_daemon_are_taken_over_and_the_feed_stays_whole() {
    let _quiet = crate::common::memory_quiet().await;
    // Long first passes (150 orders in pages of 10, each answer a little late), so the daemons
    // are in the middle of them when one is killed; ten runs at a time each, so each daemon
    // takes about a third of the platforms at start.
    let f = fleet(
        150,
        "max_concurrent_runs = 10",
        "schedule = \"0 0 3 * * *\"\nreconcile_schedule = \"off\"\npage_size = 10",
    )
    .await;
    for shop in &f.shops {
        shop.sim
            .faults()
            .push_n(ordersync_sim::Fault::Slow(Duration::from_millis(100)), 1000);
    }
    let setup = &f.setup;
    let mut daemons: Vec<Option<Daemon>> = (0..DAEMONS).map(|n| Some(start(setup, n))).collect();
    let mut consumer = Consumer {
        cursor: 0,
        seen: Vec::new(),
    };
    let stored = |setup: &Setup| stored_orders(setup);
    let total = (PLATFORMS * 150) as i64;
    until(60, "the first pages stored", || stored(setup) > total / 10).await;
    consumer.poll(setup);

    // What a daemon is running: the platform leases it holds.
    let held_by = |pid: u32| -> Vec<String> {
        pg(setup)
            .rows(&format!(
                "SELECT name FROM leases WHERE holder LIKE '%:{pid}:%' AND state = 'held'"
            ))
            .into_iter()
            .map(|n| n.trim_start_matches("platform:").to_owned())
            .collect()
    };

    // Mid-pass: daemon 0 dies without a word, daemon 1 is asked to stop.
    let killed_pid = daemons[0].as_ref().unwrap().id();
    let killed_at = Instant::now();
    let killed_wall = std::time::SystemTime::now();
    signal(daemons[0].as_ref().unwrap(), libc::SIGKILL);
    daemons[0].take().unwrap().0.wait().unwrap();
    let killed = held_by(killed_pid);
    let stopped = held_by(daemons[1].as_ref().unwrap().id());
    assert!(
        !killed.is_empty() && !stopped.is_empty(),
        "both daemons were in the middle of runs: killed {killed:?}, stopping {stopped:?}"
    );
    signal(daemons[1].as_ref().unwrap(), libc::SIGTERM);

    // The survivor takes over every run the killed daemon left, and those the stopped one cut
    // short (a run it finished before stopping needs no one).
    let survivor = 2;
    // Taken over: the platform's lease passed to the survivor (a new token), whether its
    // look for abandoned leases found it or a run it had waiting took the expired lease first.
    let survivor_pid = daemons[survivor].as_ref().unwrap().id();
    // One query per look: a connection per platform would make the look itself slow.
    let taken = || -> BTreeSet<String> {
        pg(setup)
            .rows(&format!(
                "SELECT name FROM leases WHERE holder LIKE '%:{survivor_pid}:%' AND token > 1"
            ))
            .into_iter()
            .map(|n| n.trim_start_matches("platform:").to_owned())
            .collect()
    };
    // Looked at every 100 ms: the promise is a lease period after the kill, give or take one
    // look.
    let look = Duration::from_millis(100);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_took = None;
    loop {
        let now = taken();
        if killed_took.is_none() && killed.iter().all(|n| now.contains(n)) {
            killed_took = Some(killed_at.elapsed());
        }
        if killed_took.is_some() && stopped.iter().any(|n| now.contains(n)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not take over {killed:?} (killed) and one of {stopped:?} (stopped); \
             its log:\n{}\nleases: {:?}",
            log(setup, survivor),
            pg(setup).rows("SELECT name, holder, state, token FROM leases ORDER BY name")
        );
        tokio::time::sleep(look).await;
    }
    let took = killed_took.unwrap();
    eprintln!("taken over {took:?} after the kill (lease period {LEASE_S} s)");
    assert!(
        took <= Duration::from_secs(LEASE_S) + look,
        "the killed daemon's platforms {killed:?} were taken over {took:?} after the kill, more \
         than the lease period of {LEASE_S} s; the survivor's log:\n{}",
        log(setup, survivor)
    );
    let status = daemons[1].take().unwrap().0.wait().unwrap();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    consumer.poll(setup);
    until(180, "every shop complete", || {
        consumer.poll(setup);
        stored(setup) == total
    })
    .await;
    let mut last = daemons[2].take().unwrap();
    signal(&last, libc::SIGTERM);
    assert!(last.0.wait().unwrap().success());
    consumer.drain(setup);

    let db = setup.db();
    for shop in &f.shops {
        assert_store_matches(&db, &shop.name, &shop.sim.truth());
        let overlaps = overlapping_lists(shop, killed_at);
        assert!(
            overlaps.is_empty(),
            "{}: two list requests at once (ms since the kill, at {killed_wall:?}): {overlaps:?}; \
             the daemons' lines about it:\n{}",
            shop.name,
            (0..DAEMONS)
                .flat_map(|n| log(setup, n)
                    .lines()
                    .filter(|l| l.contains(&format!("={}", shop.name))
                        || l.contains(&format!("platform:{}", shop.name)))
                    .map(|l| format!("daemon {n}: {l}"))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_one_created_event_per_order(setup);
    consumer.assert_read_every_event_once(setup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_delivers_from_one_daemon_and_moves_to_another_when_it_stops() {
    use crate::common::receiver::{Receiver, SECRET, assert_holds_the_feed, feed};
    let _quiet = crate::common::memory_quiet().await;
    let receiver = Receiver::start(SECRET).await;
    receiver.accept_all();
    let setup = Setup::on(Backend::Postgres);
    setup.write_daemon(&format!(
        "push_interval = \"1s\"\nshutdown_grace = \"10s\"\nlease_period = \"{LEASE_S}s\"\n\
         \n[sinks.erp]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         start = \"beginning\"\ntimeout = \"1s\"\ninitial_retry_interval = \"50ms\"\n\
         max_retry_interval = \"500ms\"\n",
        receiver.url
    ));
    let mut shops = Vec::new();
    for i in 0..4 {
        let shop = Shop::open(&format!("shop-{i}"), 30).await;
        setup.add_platform_file(
            &format!("shop-{i}.toml"),
            &shop.platform_toml("schedule = \"*/2 * * * * *\"\nreconcile_schedule = \"off\""),
        );
        shops.push(shop);
    }
    let mut daemons: Vec<Option<Daemon>> = (0..2).map(|n| Some(start(&setup, n))).collect();
    let events = || -> usize {
        pg(&setup)
            .try_rows("SELECT count(*) FROM order_events")
            .map_or(0, |r| r[0].parse().unwrap())
    };
    until(60, "every order stored and delivered", || {
        events() == 120 && receiver.accepted().len() >= 120
    })
    .await;
    let delivering = |n: usize| log(&setup, n).contains("delivering from this daemon");
    let holders: Vec<usize> = (0..2).filter(|&n| delivering(n)).collect();
    assert_eq!(
        holders.len(),
        1,
        "one daemon delivers the sink: {holders:?}"
    );

    // The delivering daemon stops; the other takes the sink over and delivers what follows.
    let (gone, other) = (holders[0], 1 - holders[0]);
    let d = daemons[gone].take().unwrap();
    signal(&d, libc::SIGTERM);
    let mut d = d;
    assert!(d.0.wait().unwrap().success());
    for shop in &shops {
        let id = shop
            .sim
            .truth()
            .into_iter()
            .find(|t| t.shipping_status == "awaiting")
            .expect("an order awaiting shipment")
            .id;
        shop.sim.set_status(id, "shipped");
    }
    until(
        LEASE_S * 4 + 10,
        "the other daemon delivering the new events",
        || delivering(other) && events() == 124 && receiver.accepted().len() >= 124,
    )
    .await;
    let mut last = daemons[other].take().unwrap();
    signal(&last, libc::SIGTERM);
    assert!(last.0.wait().unwrap().success());

    let repeats = assert_holds_the_feed(&feed(&setup.db()), &receiver.accepted());
    assert_eq!(
        repeats, 0,
        "a sink handed over at a clean stop delivers nothing twice"
    );
}
