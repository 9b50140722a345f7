//! The daemon's timetable over time, through the real binary (`ordersync run`): reloads that give
//! their memory back, runs of one platform that wait for each other instead of being dropped,
//! and one daemon per database.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::running::{Running, eventually, free_port, write_main_file};
use crate::common::*;
use ordersync_sim::Fault;

/// Long enough that no test here ever meets a watchdog ping it did not ask for.
const WATCHDOG: Duration = Duration::from_secs(120);

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child the test started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// The resident set of `pid` in KiB, as the kernel reports it.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}

fn readies(run: &Running) -> usize {
    run.notes
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m == "READY=1")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reloads_grow_the_daemons_memory_by_less_than_ten_mb() {
    let shop = Shop::open("shop-hup", 20).await;
    let setup = Setup::new();
    let port = free_port();
    write_main_file(&setup, &setup.db_path(), port, "");
    // Due once a day: the reloads, not the runs, are what this test watches.
    setup.add_platform_file(
        "shop-hup.toml",
        &shop.platform_toml("schedule = \"0 0 3 * * *\""),
    );
    let run = Running::start(&setup, port, WATCHDOG);
    let pid = run.daemon.id();
    eventually(20, "the catch-up run at start", || {
        !run.log_lines(&["run finished"]).is_empty()
    })
    .await;
    let before = rss_kib(pid);

    for n in 1..=200 {
        signal(pid, libc::SIGHUP);
        // Each reload ends with READY=1: the next signal never lands on a reload in progress.
        eventually(20, &format!("reload {n} notified"), || {
            readies(&run) == n + 1
        })
        .await;
    }
    let after = rss_kib(pid);
    eprintln!("RSS before the reloads: {before} KiB, after 200: {after} KiB");
    let reloads = run.log_lines(&["configuration reloaded"]).len();
    assert_eq!(reloads, 200, "every SIGHUP reloads the configuration");
    assert!(
        after < before + 10 * 1024,
        "200 reloads grew the daemon's RSS from {before} KiB to {after} KiB (+{} KiB)",
        after.saturating_sub(before)
    );
    assert_eq!(run.stop().code(), Some(0));
}

/// Seconds since the epoch, as the daemon's cron clock reads them.
fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_due_while_a_sync_runs_waits_for_it_and_then_runs() {
    let shop = Shop::open("shop-busy", 30).await;
    // Every request (one per pass here) takes 3.5 s: a sync due at an even second runs until
    // 3.5 s later, the tick 2 s in finds it going, so syncs start every 4 s and the platform is
    // busy at every odd second, which is when the reconciles fall due.
    shop.sim
        .faults()
        .push_n(Fault::Slow(Duration::from_millis(3500)), 100_000);
    let setup = Setup::new();
    let port = free_port();
    write_main_file(&setup, &setup.db_path(), port, "");
    setup.add_platform_file(
        "shop-busy.toml",
        &shop
            .platform_toml("schedule = \"*/2 * * * * *\"\nreconcile_schedule = \"1/10 * * * * *\""),
    );
    let run = Running::start(&setup, port, WATCHDOG);
    eventually(20, "the daemon is ready", || run.ready()).await;
    let from = unix_secs();
    tokio::time::sleep(Duration::from_secs(27)).await;
    let to = unix_secs();
    // Reconcile ticks (second 1 of every ten) that certainly fell inside the window, with half a
    // second of slack each side.
    let ticks = (((from - 0.5) / 10.0).ceil() as i64..=((to - 1.5) / 10.0).floor() as i64).count();
    assert!(ticks >= 2, "the window holds {ticks} reconcile ticks");

    let reconciles = || run.log_lines(&["run finished", "run=\"reconcile\""]).len();
    // The last tick's reconcile may still be waiting for a sync, or running.
    let deadline = Instant::now() + Duration::from_secs(15);
    while reconciles() < ticks && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let skipped: Vec<String> = run
        .log_lines(&["skipped", "run=\"reconcile\""])
        .into_iter()
        .collect();
    assert!(
        reconciles() >= ticks && skipped.is_empty(),
        "{ticks} reconcile ticks led to {} reconcile runs; skipped:\n{}",
        reconciles(),
        skipped.join("\n")
    );
    eprintln!("{ticks} reconcile ticks, {} reconcile runs", reconciles());
    // The overlap this test is about did happen: some run waited for the other kind.
    assert!(
        !run.log_lines(&["waiting for the"]).is_empty(),
        "no run had to wait; the passes were too quick to overlap:\n{}",
        run.log_text()
    );
    assert_eq!(run.stop().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_database_is_refused_and_a_manual_sync_still_runs() {
    let shop = Shop::open("shop-one", 40).await;
    let setup = Setup::new();
    let port = free_port();
    write_main_file(&setup, &setup.db_path(), port, "");
    setup.add_platform_file(
        "shop-one.toml",
        &shop.platform_toml("schedule = \"* * * * * *\"\nreconcile_schedule = \"off\""),
    );
    let first = Running::start(&setup, port, WATCHDOG);
    eventually(20, "the first daemon is ready", || first.ready()).await;
    let first_pid = first.daemon.id();

    // Its own /metrics port, so nothing but the database is shared.
    let mut cmd = setup.command(&["run"]);
    cmd.env(
        "ORDERSYNC_DAEMON__METRICS_LISTEN",
        format!("127.0.0.1:{}", free_port()),
    )
    .stderr(std::process::Stdio::piped());
    let mut second = Daemon::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = second.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            signal(second.id(), libc::SIGTERM);
            second.0.wait().unwrap();
            let mut log = String::new();
            std::io::Read::read_to_string(&mut second.0.stderr.take().unwrap(), &mut log).unwrap();
            panic!("a second daemon on the same database kept running for 15 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "refused with a failure status: {err}");
    assert!(
        err.contains(&setup.db_path().display().to_string()),
        "the message names the database: {err}"
    );
    assert!(
        err.contains(&format!("pid {first_pid}")),
        "the message names the running daemon's pid: {err}"
    );

    // An operator's one-off sync beside the running daemon works as before.
    shop.sim.add_orders(3);
    let out = setup.ordersync(&["sync", "shop-one"]);
    assert!(out.status.success(), "manual sync: {}", stderr(&out));
    eventually(10, "the manual sync's orders", || {
        count(
            &setup.db(),
            "SELECT count(*) FROM orders WHERE platform = 'shop-one'",
        ) == 43
    })
    .await;

    // The lock goes with the daemon: the next one starts.
    assert_eq!(first.stop().code(), Some(0));
    let log = setup.dir.path().join("next.log");
    let mut cmd = setup.command(&["run"]);
    cmd.env("ORDERSYNC_DAEMON__LOG_FORMAT", "text")
        .stderr(std::fs::File::create(&log).unwrap());
    let mut next = Daemon::spawn(cmd);
    eventually(20, "a daemon started after the first stopped", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ordersync running")
    })
    .await;
    signal(next.id(), libc::SIGTERM);
    assert_eq!(next.0.wait().unwrap().code(), Some(0));
}

/// `(platform, started_at, finished_at)` of every finished sync run, in the order they started.
fn run_spans(setup: &Setup) -> Vec<(String, String, String)> {
    let db = setup.db();
    let mut stmt = db
        .prepare(
            "SELECT platform, started_at, finished_at FROM sync_runs \
             WHERE finished_at IS NOT NULL",
        )
        .unwrap();
    let mut spans: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // By time, not by text: a whole second is written without its `.000`.
    spans.sort_by_key(|s| chrono::DateTime::parse_from_rfc3339(&s.1).unwrap());
    spans
}

async fn catch_up_runs_of_slow_shops(max_concurrent_runs: usize) -> Vec<(String, String, String)> {
    let mut shops = Vec::new();
    let setup = Setup::new();
    let port = free_port();
    write_main_file(
        &setup,
        &setup.db_path(),
        port,
        &format!("max_concurrent_runs = {max_concurrent_runs}"),
    );
    for i in 0..3 {
        let shop = Shop::open(&format!("slow-{i}"), 10).await;
        // Every answer of the run comes late, so a run lasts long enough to be seen overlapping.
        shop.sim
            .faults()
            .push_n(Fault::Slow(Duration::from_millis(400)), 20);
        setup.add_platform_file(
            &format!("slow-{i}.toml"),
            &shop.platform_toml("schedule = \"0 0 3 * * *\"\nreconcile_schedule = \"off\""),
        );
        shops.push(shop);
    }
    let run = Running::start(&setup, port, WATCHDOG);
    eventually(30, "the three catch-up runs at start", || {
        run_spans(&setup).len() == 3
    })
    .await;
    assert_eq!(run.stop().code(), Some(0));
    run_spans(&setup)
}

/// Runs that started before the run started just before them had finished.
fn overlapping(spans: &[(String, String, String)]) -> usize {
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    spans.windows(2).filter(|w| t(&w[1].1) < t(&w[0].2)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_turn_the_runs_of_different_platforms_go_one_after_another() {
    let spans = catch_up_runs_of_slow_shops(1).await;
    assert_eq!(
        overlapping(&spans),
        0,
        "with max_concurrent_runs = 1 a run started before the previous one finished: {spans:?}"
    );
    // The same slow shops with turns for all: the runs do overlap, so the check above can fail.
    let spans = catch_up_runs_of_slow_shops(3).await;
    assert!(
        overlapping(&spans) > 0,
        "with three turns the three slow runs should go at once: {spans:?}"
    );
}
