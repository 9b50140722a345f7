//! Full MerchantPro sync: the real daemon, built-in and described, against a "bare loop", on the
//! same simulated shop.
//!
//! What it measures: a simulated MerchantPro shop ([`MerchantProSim`], N orders of ~2.7 KB JSON
//! with 1–3 line items, placed every 90 s up to now) is served on loopback by this process, then
//! the same N orders are synced into an empty SQLite database three times per round:
//!
//! * **bare**: this binary re-executed as `--bare-loop URL DB`: a plain `reqwest::Client` fetches
//!   the pages one after another (the daemon's own first-page URL, then `meta.links.next`),
//!   parses them with the daemon's wire types, `map::to_canonical` and `Incoming::new`, and
//!   writes each page with `Store::apply_page` in one transaction, one page after another. No
//!   retry layer, rate limiter, pipelining, checkpoint or run bookkeeping: the floor the daemon's
//!   path is compared with.
//! * **daemon**: the release `ordersync` binary, `ordersync --config … sync --no-reconcile`, with
//!   a throw-away configuration (`page_size = 100`, `max_requests_per_second = 100000`).
//! * **rest**: the same binary and command on its own empty database, the platform being
//!   MerchantPro described as a `rest` platform: `config/platforms.d/merchantpro-rest-example.toml`
//!   (read from the source tree at run time) adapted as the conformance tests' `describe` does
//!   (the platform renamed; `base_url`, `backfill_from`, `page_size` and
//!   `max_requests_per_second` those of the daemon run; the example's `auth` table replaced by
//!   the daemon run's). The cost of reading records by the description's JSON pointers instead
//!   of the built-in kind's wire types. Target: ≥ 0.8 of the daemon run's orders/s.
//!   Within a round, odd rounds run daemon then rest, even rounds rest then daemon.
//! * **postgres**: the daemon run again, its store a PostgreSQL database instead of SQLite: a
//!   throw-away server this process starts on loopback (`initdb` into the work folder, the
//!   test suite's harness, `tests/it/common/postgres.rs`), with PostgreSQL's defaults but
//!   `synchronous_commit = off`, the durability of the SQLite store's WAL with
//!   `synchronous = NORMAL` (never corrupt, the last commits lost in a power cut). Besides the
//!   daemon's figures: the server's CPU seconds during the run (postmaster and backends,
//!   exited ones included) and its peak proportional set size (shared buffers counted once),
//!   sampled every 100 ms from `/proc`. Verified like the daemon run, on a SQLite copy of the
//!   database, and compared with the daemon run's store row for row.
//! * **nochange**: the same binary again on the database the daemon run left,
//!   `sync --full --no-reconcile`: every order re-read, none changed. Verified to write no event
//!   and no item, to move every order's `last_seen_at`, and to record one run that fetched N and
//!   created or changed nothing; target ≥ 100,000 orders/s on 2 cores.
//!
//! For each run: wall time, orders/s, the child's CPU seconds (user + system) and peak RSS (from
//! `wait4`'s `rusage`). Then the ratios daemon/bare orders/s and rest/daemon orders/s against
//! the targets (≥ 0.75 and ≥ 0.8, daemon peak RSS < 64 MiB), as a table and as one
//! `BENCH_JSON {…}` line for scripts. Every run is verified (exit status, N orders, N `created`
//! events and nothing else, every line item, one request per page starting at the daemon's first
//! page, all answered 200, the bare and daemon databases holding the same rows, and the rest
//! database holding the daemon's orders and items row for row: every column but the platform's
//! name and the store's own `first_seen_at`, `last_seen_at` and `last_changed_at`, the raw JSON
//! and `content_hash` included); the process exits non-zero if verification fails, but not when
//! a target is missed.
//!
//! Run it (Linux; the numbers mean something only on an otherwise idle machine):
//!
//! ```text
//! cargo bench --bench sync                                  # 100,000 orders, 2 rounds
//! ORDERSYNC_BENCH_ORDERS=20000 cargo bench --bench sync     # a quick trial
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_ORDERS` (default 100000), `ORDERSYNC_BENCH_ROUNDS` (default 2;
//! each round is bare, daemon and rest (in alternating order), postgres, then nochange, and the
//! fastest
//! run of each kind is reported),
//! `ORDERSYNC_BENCH_DIR` (where the databases go; default the system temp folder, deleted
//! afterwards unless verification fails). Run without `--bench` (as `cargo test --benches`
//! does) it is a smoke test: 1,000 orders, one round.
//!
//! Why three processes: on Linux a child's `ru_maxrss` starts from the resident size of the
//! process that spawned it (the kernel records the old address space's high-water mark at
//! `exec`, and `posix_spawn` shares the parent's). Spawning the measured runs from this process,
//! which holds the whole simulated shop (hundreds of MiB at 100k orders), would report the
//! simulator's memory as the daemon's. So the first thing this process does is start a tiny
//! `--launcher` copy of itself; the launcher spawns each measured run, reaps it with `wait4`
//! and sends back the figures. The report shows the floor a do-nothing child gets that way.

// The tests' harness, for its server (the file allows what this bench leaves unused).
#[path = "../tests/it/common/postgres.rs"]
mod postgres;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, FixedOffset, Utc};
use ordersync::platforms::merchantpro::{map, wire};
use ordersync::store::{Incoming, PageWrite, Store};
use ordersync_sim::merchantpro::{MerchantProSim, SimOptions};
use reqwest::Url;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::{Job, Launcher, Usage};

const DEFAULT_ORDERS: usize = 100_000;
const SMOKE_ORDERS: usize = 1_000;
const DEFAULT_ROUNDS: usize = 2;
/// MerchantPro's maximum page size, which the daemon is configured with too.
const PAGE_SIZE: usize = 100;
const PLATFORM: &str = "shop";
/// The rest run's platform: another name, so the comparison shows the name is all that differs.
const REST_PLATFORM: &str = "shop-rest";
/// MerchantPro described as a `rest` platform, under `config/platforms.d/` of the source tree.
const REST_EXAMPLE: &str = "merchantpro-rest-example.toml";
/// Time between two simulated orders: 100k orders span about 104 days.
const SPACING_SECS: i64 = 90;
const TARGET_RATIO: f64 = 0.75;
/// The described platform against the built-in kind, rest/daemon orders/s.
const TARGET_REST_RATIO: f64 = 0.8;
const TARGET_RSS_MIB: f64 = 64.0;
/// The no-change pass (every order re-read, none changed), on 2 cores.
const TARGET_NOCHANGE_ORDERS_PER_S: f64 = 100_000.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The markers come first so that a re-executed copy never builds a shop of its own.
    if let Some(code) = support::dispatch() {
        return code;
    }
    match args.first().map(String::as_str) {
        Some("--bare-loop") => bare_main(&args[1..]),
        // `cargo bench` passes `--bench`; `cargo test --benches` runs the target without it.
        _ => {
            let benchmark = args.iter().any(|a| a == "--bench");
            match orchestrate(benchmark) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("sync bench: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bare loop (a child process).

#[derive(Debug, Default, Serialize, Deserialize)]
struct BareStats {
    pages: u64,
    orders: u64,
    body_bytes: u64,
}

const BARE_RESULT: &str = "BARE_RESULT ";

fn bare_main(args: &[String]) -> ExitCode {
    let [url, db] = args else {
        eprintln!("usage: sync-bench --bare-loop FIRST_PAGE_URL DATABASE");
        return ExitCode::from(2);
    };
    match bare_loop(url, Path::new(db)) {
        Ok(stats) => {
            println!(
                "{BARE_RESULT}{}",
                serde_json::to_string(&stats).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bare loop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bare_loop(first_page: &str, db: &Path) -> anyhow::Result<BareStats> {
    ordersync::http::install_crypto_provider();
    // The daemon's own migrations make the schema, and its store writes the pages.
    let store = Store::open(db)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let creds = SimOptions::default();
    // What the daemon uses when the configuration sets neither `status_map` nor `timezone`.
    let status_map = BTreeMap::new();
    let zone = FixedOffset::east_opt(0).expect("UTC is a valid offset");
    let mut url = Url::parse(first_page)?;
    let mut stats = BareStats::default();
    loop {
        let body = rt.block_on(async {
            client
                .get(url.clone())
                .basic_auth(&creds.api_key, Some(&creds.api_secret))
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
        })?;
        stats.body_bytes += body.len() as u64;
        let list: wire::ListPage<'_> = serde_json::from_slice(&body).context("list page")?;
        let mut orders = Vec::with_capacity(list.data.len());
        for raw in &list.data {
            let order: wire::Order = serde_json::from_str(raw.get()).context("order record")?;
            orders.push(Incoming::new(
                map::to_canonical(order, &status_map, zone).context("order record")?,
                raw.get().to_string(),
            ));
        }
        // The daemon's end-of-listing rule: no link, an empty link, or an empty page.
        let next = list
            .meta
            .and_then(|m| m.links)
            .and_then(|l| l.next)
            .filter(|n| !n.is_empty() && !list.data.is_empty());
        stats.pages += 1;
        stats.orders += orders.len() as u64;
        let page = PageWrite {
            platform: PLATFORM.to_owned(),
            orders,
            rejects: Vec::new(),
            checkpoint: None,
        };
        rt.block_on(store.apply_page(page))?;
        match next {
            Some(n) => url = url.join(&n)?,
            None => break,
        }
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bare,
    Daemon,
    /// The daemon with MerchantPro described as a `rest` platform.
    Rest,
    /// The daemon again on its own database: `sync --full --no-reconcile`, nothing changed.
    NoChange,
    /// The daemon on PostgreSQL.
    Postgres,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Daemon => "daemon",
            Kind::Rest => "rest",
            Kind::NoChange => "nochange",
            Kind::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
struct RunResult {
    kind: Kind,
    round: usize,
    usage: Usage,
    /// CPU this process (the simulator's server, mostly) spent during the run: the share of the
    /// machine the measured child did not get.
    sim_cpu_s: f64,
    requests: usize,
    /// The database server's share, for a run on PostgreSQL.
    server: Option<ServerUsage>,
}

#[derive(Debug, Clone, Copy)]
struct ServerUsage {
    cpu_s: f64,
    peak_pss_mib: f64,
}

impl RunResult {
    fn orders_per_s(&self, n: usize) -> f64 {
        n as f64 / self.usage.wall_s
    }

    fn to_json(&self, n: usize) -> serde_json::Value {
        json!({
            "kind": self.kind.as_str(),
            "round": self.round,
            "wall_s": round3(self.usage.wall_s),
            "orders_per_s": round3(self.orders_per_s(n)),
            "cpu_s": round3(self.usage.cpu_s()),
            "user_s": round3(self.usage.user_s),
            "sys_s": round3(self.usage.sys_s),
            "peak_rss_mib": round3(self.usage.rss_mib()),
            "sim_cpu_s": round3(self.sim_cpu_s),
            "requests": self.requests,
            "server_cpu_s": self.server.map(|s| round3(s.cpu_s)),
            "server_peak_pss_mib": self.server.map(|s| round3(s.peak_pss_mib)),
        })
    }
}

/// Everything the runs share.
struct Bench {
    n: usize,
    expected_items: i64,
    expected_pages: usize,
    sim: MerchantProSim,
    base_url: String,
    first_path: String,
    backfill_from: DateTime<Utc>,
    daemon_bin: PathBuf,
    bench_bin: PathBuf,
    /// `ORDERSYNC_*` variables would override (or, unknown, fail) the daemon's configuration.
    launcher: Launcher,
    failures: Vec<String>,
}

fn orchestrate(benchmark: bool) -> anyhow::Result<bool> {
    // First, while this process is still small: see the module doc.
    let launcher = Launcher::start()?;

    let n = env_usize(
        "ORDERSYNC_BENCH_ORDERS",
        if benchmark {
            DEFAULT_ORDERS
        } else {
            SMOKE_ORDERS
        },
    )?;
    let rounds = env_usize(
        "ORDERSYNC_BENCH_ROUNDS",
        if benchmark { DEFAULT_ROUNDS } else { 1 },
    )?;
    ensure!(n > 0, "ORDERSYNC_BENCH_ORDERS must be at least 1");
    ensure!(rounds > 0, "ORDERSYNC_BENCH_ROUNDS must be at least 1");
    let work = match std::env::var_os("ORDERSYNC_BENCH_DIR") {
        Some(d) => tempfile::Builder::new()
            .prefix("ordersync-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("ordersync-bench-")
            .tempdir()?,
    };

    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    let cpu = cpu_model();
    let load_start = loadavg();
    let fs = filesystem_of(work.path());

    println!("ordersync sync benchmark (benches/sync.rs)");
    if !benchmark {
        println!("smoke mode (run without --bench): {n} orders, {rounds} round(s)");
    }
    println!("machine    : {cores} cores available, {cpu}; load average at start {load_start}");
    println!("databases  : {} ({fs})", work.path().display());
    println!("generating a shop of {n} orders…");

    // The shop: orders every 90 s up to a quarter hour ago, all before the daemon's frozen upper
    // bound (now), all after `backfill_from`.
    let spacing = chrono::Duration::seconds(SPACING_SECS);
    let start = Utc::now() - spacing * (i32::try_from(n)? + 10);
    let backfill_from = start - chrono::Duration::days(2);
    let generated = Instant::now();
    let sim = MerchantProSim::new(SimOptions {
        orders: n,
        start,
        spacing,
        ..SimOptions::default()
    });
    let generate_s = generated.elapsed().as_secs_f64();
    let truth = sim.truth();
    let expected_items: i64 = truth.iter().map(|t| t.line_items as i64).sum();
    drop(truth);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim")
        .build()?;
    let server = rt.block_on(sim.serve())?;
    let base_url = server.base_url();

    // The daemon's first page on an empty database (MerchantPro::first_token with the window
    // starting at backfill_from): the bare loop starts from the very same URL.
    let first_path = format!(
        "/api/v2/orders?start=0&limit={PAGE_SIZE}&include=line_items&sort=date_created&created_after={}",
        (backfill_from - chrono::Duration::days(1)).format("%Y-%m-%d")
    );
    let mut bench = Bench {
        n,
        expected_items,
        expected_pages: n.div_ceil(PAGE_SIZE).max(1),
        sim,
        base_url,
        first_path,
        backfill_from,
        daemon_bin: PathBuf::from(env!("CARGO_BIN_EXE_ordersync")),
        bench_bin: std::env::current_exe()?,
        launcher,
        failures: Vec::new(),
    };
    println!(
        "shop       : {n} orders, {expected_items} line items, {} pages of {PAGE_SIZE}; generated in {generate_s:.1} s, served by this process on {}",
        bench.expected_pages, bench.base_url
    );
    println!(
        "daemon     : {} (ordersync {})",
        bench.daemon_bin.display(),
        env!("CARGO_PKG_VERSION")
    );

    let pg = postgres::Server::start(postgres::Durability::LikeSqlite);
    println!(
        "PostgreSQL : a server of this process's on 127.0.0.1:{} (defaults but synchronous_commit = off)",
        pg.port
    );

    let floor = bench.calibrate(work.path())?;
    println!(
        "RSS floor  : {:.1} MiB (peak RSS of a do-nothing child spawned the same way)",
        floor.rss_mib()
    );

    println!();
    print_header();
    let mut runs = Vec::new();
    let mut record_bytes = None;
    let mut wire_bytes = None;
    for round in 1..=rounds {
        let dir = work.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&dir)?;
        let (bare, stats) = bench.run_bare(&dir, round)?;
        print_run(&bare, n);
        // Daemon and rest take turns going first, so neither always follows the bare loop.
        let (daemon, rest) = if round % 2 == 1 {
            let daemon = bench.run_daemon(&dir, round)?;
            print_run(&daemon, n);
            let rest = bench.run_rest(&dir, round)?;
            print_run(&rest, n);
            (daemon, rest)
        } else {
            let rest = bench.run_rest(&dir, round)?;
            print_run(&rest, n);
            let daemon = bench.run_daemon(&dir, round)?;
            print_run(&daemon, n);
            (daemon, rest)
        };
        bench.compare_described(
            &format!("rest run {round}"),
            &dir.join("daemon/ordersync.db"),
            &dir.join("rest/ordersync.db"),
        );
        let postgres = bench.run_postgres(&dir, round, &pg)?;
        print_run(&postgres, n);
        bench.compare_stores(
            "daemon and postgres",
            &dir.join("daemon/ordersync.db"),
            &dir.join("postgres/copy.db"),
        );
        let nochange = bench.run_nochange(&dir, round)?;
        print_run(&nochange, n);
        bench.compare_stores(
            "bare and daemon",
            &dir.join("bare.db"),
            &dir.join("daemon/ordersync.db"),
        );
        if record_bytes.is_none() {
            record_bytes = bench.record_bytes(&dir.join("bare.db"));
            wire_bytes = stats.map(|s| s.body_bytes as f64 / n as f64);
        }
        runs.push(bare);
        runs.push(daemon);
        runs.push(rest);
        runs.push(nochange);
        runs.push(postgres);
        if bench.failures.is_empty() {
            // Hundreds of MiB per database at 100k orders: keep only the round under way.
            std::fs::remove_dir_all(&dir)?;
        }
    }
    drop(server);
    pg.stop();
    let load_end = loadavg();

    let best = |kind: Kind| {
        runs.iter()
            .filter(|r| r.kind == kind)
            .min_by(|a, b| a.usage.wall_s.total_cmp(&b.usage.wall_s))
            .expect("at least one round")
    };
    let max_rss = |kind: Kind| {
        runs.iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.usage.rss_mib())
            .fold(0.0, f64::max)
    };
    let (bare, daemon) = (best(Kind::Bare), best(Kind::Daemon));
    let (rest, nochange) = (best(Kind::Rest), best(Kind::NoChange));
    let postgres = best(Kind::Postgres);
    let postgres_ratio = postgres.orders_per_s(n) / daemon.orders_per_s(n);
    let postgres_rss = max_rss(Kind::Postgres);
    let ratio = daemon.orders_per_s(n) / bare.orders_per_s(n);
    let rest_ratio = rest.orders_per_s(n) / daemon.orders_per_s(n);
    let rest_ratio_met = rest_ratio >= TARGET_REST_RATIO;
    let rest_rss = max_rss(Kind::Rest);
    let nochange_ratio = nochange.orders_per_s(n) / daemon.orders_per_s(n);
    let nochange_met = nochange.orders_per_s(n) >= TARGET_NOCHANGE_ORDERS_PER_S;
    let daemon_rss = max_rss(Kind::Daemon);
    let ratio_met = ratio >= TARGET_RATIO;
    let rss_met = daemon_rss < TARGET_RSS_MIB;
    let verified = bench.failures.is_empty();
    let met = |ok: bool| if ok { "met" } else { "MISSED" };

    println!();
    println!(
        "JSON       : {} bytes per order record, {} bytes per order on the wire (whole pages)",
        record_bytes.map_or("?".to_owned(), |b| format!("{b:.0}")),
        wire_bytes.map_or("?".to_owned(), |b| format!("{b:.0}")),
    );
    println!(
        "best of {rounds} round(s) by wall time (peak RSS for the target: highest of the kind's runs)"
    );
    print_header();
    print_run(bare, n);
    print_run(daemon, n);
    print_run(rest, n);
    print_run(nochange, n);
    print_run(postgres, n);
    println!(
        "ratio daemon/bare orders/s: {ratio:.3} (target >= {TARGET_RATIO}: {})",
        met(ratio_met)
    );
    println!(
        "ratio rest/daemon orders/s: {rest_ratio:.3} (target >= {TARGET_REST_RATIO}: {}); rest peak RSS {rest_rss:.1} MiB",
        met(rest_ratio_met)
    );
    println!(
        "daemon peak RSS: {daemon_rss:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        met(rss_met)
    );
    println!(
        "no-change pass: {:.0} orders/s, {nochange_ratio:.2}x the first sync (target >= {TARGET_NOCHANGE_ORDERS_PER_S:.0} orders/s: {}); {} requests, 0 events written",
        nochange.orders_per_s(n),
        met(nochange_met),
        nochange.requests
    );
    let server = postgres.server.expect("measured");
    println!(
        "ratio postgres/daemon (SQLite) orders/s: {postgres_ratio:.3}; the daemon on PostgreSQL: {:.1} CPU s, peak RSS {postgres_rss:.1} MiB; the server: {:.1} CPU s, peak PSS {:.1} MiB",
        postgres.usage.cpu_s(),
        server.cpu_s,
        server.peak_pss_mib
    );
    println!("load average at end: {load_end}");
    if verified {
        println!(
            "verification: ok ({} runs: {n} orders, {n} created events, {expected_items} items, {} requests each, bare, daemon and postgres stores identical, rest orders and items equal to the daemon's row for row, no event from a no-change pass)",
            runs.len(),
            bench.expected_pages
        );
    } else {
        println!("verification: FAILED");
        for f in &bench.failures {
            println!("  - {f}");
        }
        println!("kept for inspection: {}", work.keep().display());
    }
    let report = json!({
        "bench": "sync",
        "mode": if benchmark { "bench" } else { "smoke" },
        "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "ordersync_version": env!("CARGO_PKG_VERSION"),
        "machine": {
            "cores": cores,
            "cpu_model": cpu,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "db_filesystem": fs,
        },
        "orders": n,
        "line_items": expected_items,
        "pages": bench.expected_pages,
        "page_size": PAGE_SIZE,
        "json_bytes_per_order": record_bytes.map(|b| b.round()),
        "wire_bytes_per_order": wire_bytes.map(|b| b.round()),
        "rounds": rounds,
        "selection": "fastest wall time of each kind; target RSS = highest daemon peak RSS; rest peak RSS = highest of the rest runs",
        "rss_floor_mib": round3(floor.rss_mib()),
        "bare": bare.to_json(n),
        "daemon": daemon.to_json(n),
        "rest": rest.to_json(n),
        "rest_description": format!("config/platforms.d/{REST_EXAMPLE}"),
        "nochange": nochange.to_json(n),
        "nochange_over_daemon": round3(nochange_ratio),
        "postgres": postgres.to_json(n),
        "postgres_over_daemon": round3(postgres_ratio),
        "postgres_peak_rss_mib": round3(postgres_rss),
        "postgres_server": "PostgreSQL's defaults but synchronous_commit = off, on loopback, started by the bench",
        "runs": runs.iter().map(|r| r.to_json(n)).collect::<Vec<_>>(),
        "ratio": round3(ratio),
        "daemon_peak_rss_mib": round3(daemon_rss),
        "rest_over_daemon": round3(rest_ratio),
        "rest_peak_rss_mib": round3(rest_rss),
        "targets": {
            "ratio_min": TARGET_RATIO,
            "rss_max_mib": TARGET_RSS_MIB,
            "ratio_met": ratio_met,
            "rss_met": rss_met,
            "nochange_orders_per_s_min": TARGET_NOCHANGE_ORDERS_PER_S,
            "nochange_met": nochange_met,
            "rest_ratio_min": TARGET_REST_RATIO,
            "rest_ratio_met": rest_ratio_met,
        },
        "verified": verified,
        "failures": bench.failures,
    });
    println!("BENCH_JSON {report}");
    Ok(verified)
}

impl Bench {
    fn job(&self, program: &Path, args: Vec<String>, dir: &Path, name: &str) -> Job {
        self.launcher.job(program, args, dir, name)
    }

    fn calibrate(&mut self, dir: &Path) -> anyhow::Result<Usage> {
        self.launcher.rss_floor(dir)
    }

    /// Runs `job` through the launcher, with the simulator's CPU and request count around it.
    fn measure(&mut self, kind: Kind, round: usize, job: &Job) -> anyhow::Result<RunResult> {
        let requests_before = self.sim.request_count();
        let cpu_before = self_cpu_s();
        let usage = self.launcher.run(job)?;
        let sim_cpu_s = self_cpu_s() - cpu_before;
        let requests = self.sim.request_count() - requests_before;
        let run = RunResult {
            kind,
            round,
            usage,
            sim_cpu_s,
            requests,
            server: None,
        };
        let label = format!("{} run {round}", kind.as_str());
        if !usage.exited_ok() {
            self.failures.push(format!(
                "{label}: {}; its stderr ends with:\n{}",
                usage.describe_exit(),
                tail(&job.stderr, 15)
            ));
        }
        self.check_requests(&label, kind, requests);
        Ok(run)
    }

    /// One request per page, every one answered 200, starting at the daemon's first page (for
    /// the rest run the same path and query parameters, in the description's order).
    fn check_requests(&mut self, label: &str, kind: Kind, requests: usize) {
        if requests != self.expected_pages {
            self.failures.push(format!(
                "{label}: {requests} requests, expected one per page ({})",
                self.expected_pages
            ));
        }
        let log = self.sim.requests();
        let ours = &log[log.len().saturating_sub(requests)..];
        if let Some(bad) = ours.iter().find(|r| r.status != 200) {
            self.failures.push(format!(
                "{label}: GET {} answered {}",
                bad.path_and_query, bad.status
            ));
        }
        if requests <= log.len()
            && let Some(first) = ours.first()
            && !(first.path_and_query == self.first_path
                || kind == Kind::Rest && same_request(&first.path_and_query, &self.first_path))
        {
            self.failures.push(format!(
                "{label}: first request was {}, expected {}",
                first.path_and_query, self.first_path
            ));
        }
    }

    fn run_bare(
        &mut self,
        dir: &Path,
        round: usize,
    ) -> anyhow::Result<(RunResult, Option<BareStats>)> {
        let db = dir.join("bare.db");
        let url = format!("{}{}", self.base_url, self.first_path);
        let args = vec!["--bare-loop".into(), url, db.to_string_lossy().into_owned()];
        let job = self.job(&self.bench_bin, args, dir, "bare");
        let run = self.measure(Kind::Bare, round, &job)?;
        let stats = std::fs::read_to_string(&job.stdout).ok().and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix(BARE_RESULT))
                .and_then(|j| serde_json::from_str::<BareStats>(j).ok())
        });
        let label = format!("bare run {round}");
        match &stats {
            Some(s) if s.orders == self.n as u64 => {}
            Some(s) => self.failures.push(format!(
                "{label}: fetched {} orders, expected {}",
                s.orders, self.n
            )),
            None => self.failures.push(format!("{label}: no {BARE_RESULT}line")),
        }
        self.verify_store(&label, &db, PLATFORM, false);
        Ok((run, stats))
    }

    fn run_daemon(&mut self, dir: &Path, round: usize) -> anyhow::Result<RunResult> {
        let platform = self.merchantpro_toml(PLATFORM);
        self.run_sync(Kind::Daemon, dir, round, PLATFORM, &platform)
    }

    /// The daemon run again, the platform being the shipped `rest` description of MerchantPro.
    fn run_rest(&mut self, dir: &Path, round: usize) -> anyhow::Result<RunResult> {
        let platform = self.rest_toml(REST_PLATFORM)?;
        self.run_sync(Kind::Rest, dir, round, REST_PLATFORM, &platform)
    }

    /// The daemon run on a new database of `server`, the server measured from `/proc` meanwhile.
    /// Verified on a SQLite copy of the database, `dir/postgres/copy.db`.
    fn run_postgres(
        &mut self,
        dir: &Path,
        round: usize,
        server: &postgres::Server,
    ) -> anyhow::Result<RunResult> {
        let db = server.database();
        let conf = dir.join(Kind::Postgres.as_str());
        std::fs::create_dir_all(&conf)?;
        let password = conf.join("db-password");
        std::fs::write(&password, postgres::PASSWORD)?;
        let database = format!(
            "database = {}\ndatabase_password_file = {}",
            toml_string(&db.url()),
            toml_string(&password.to_string_lossy())
        );
        let platform = self.merchantpro_toml(PLATFORM);
        let main_file = self.write_config(&conf, &database, PLATFORM, &platform)?;
        let args = vec![
            "--config".into(),
            main_file.to_string_lossy().into_owned(),
            "sync".into(),
            "--no-reconcile".into(),
        ];
        let job = self.job(&self.daemon_bin, args, dir, Kind::Postgres.as_str());
        let pid = server.pid();
        let (cpu_before, _) =
            support::process_tree_sample(pid).context("cannot read the server's /proc")?;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak: f64 = 0.0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some((_, pss)) = support::process_tree_sample(pid) {
                        peak = peak.max(pss);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                peak
            })
        };
        let mut run = self.measure(Kind::Postgres, round, &job);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak_pss_mib = sampler.join().unwrap_or(0.0);
        let (cpu_after, _) =
            support::process_tree_sample(pid).context("cannot read the server's /proc")?;
        if let Ok(r) = &mut run {
            r.server = Some(ServerUsage {
                cpu_s: cpu_after - cpu_before,
                peak_pss_mib,
            });
        }
        let copy = conf.join("copy.db");
        db.snapshot()
            .execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])
            .context("cannot copy the PostgreSQL database into SQLite")?;
        self.verify_store(&format!("postgres run {round}"), &copy, PLATFORM, true);
        run
    }

    /// `ordersync sync --no-reconcile` into an empty database under `dir/<kind>/`, with
    /// `platform_toml` as its one platform file.
    fn run_sync(
        &mut self,
        kind: Kind,
        dir: &Path,
        round: usize,
        name: &str,
        platform_toml: &str,
    ) -> anyhow::Result<RunResult> {
        let conf = dir.join(kind.as_str());
        let database = format!(
            "database = {}",
            toml_string(&conf.join("ordersync.db").to_string_lossy())
        );
        let main_file = self.write_config(&conf, &database, name, platform_toml)?;
        let args = vec![
            "--config".into(),
            main_file.to_string_lossy().into_owned(),
            "sync".into(),
            "--no-reconcile".into(),
        ];
        let job = self.job(&self.daemon_bin, args, dir, kind.as_str());
        let run = self.measure(kind, round, &job)?;
        self.verify_store(
            &format!("{} run {round}", kind.as_str()),
            &conf.join("ordersync.db"),
            name,
            true,
        );
        Ok(run)
    }

    /// The daemon once more on the database `run_daemon` left: `sync --full --no-reconcile`
    /// re-reads every order and finds nothing changed. It must write no event and no item, and
    /// every order's `last_seen_at` must move to this pass.
    fn run_nochange(&mut self, dir: &Path, round: usize) -> anyhow::Result<RunResult> {
        let conf = dir.join("daemon");
        let main_file = conf.join("ordersync.toml");
        let db = conf.join("ordersync.db");
        let label = format!("nochange run {round}");
        let before = match self.snapshot(&db) {
            Ok(s) => s,
            Err(e) => bail!("{label}: cannot read the first sync's database: {e:#}"),
        };
        let args = vec![
            "--config".into(),
            main_file.to_string_lossy().into_owned(),
            "sync".into(),
            "--full".into(),
            "--no-reconcile".into(),
        ];
        let job = self.job(&self.daemon_bin, args, dir, "nochange");
        let run = self.measure(Kind::NoChange, round, &job)?;
        if let Err(e) = self.try_verify_nochange(&db, &before) {
            self.failures.push(format!("{label}: {e:#}"));
        }
        Ok(run)
    }

    /// (events, the newest event id, items, the newest `last_seen_at`)
    fn snapshot(&self, db: &Path) -> anyhow::Result<(i64, i64, i64, String)> {
        let conn = Connection::open(db)?;
        Ok(conn.query_row(
            "SELECT (SELECT count(*) FROM order_events),
                    (SELECT coalesce(max(id), 0) FROM order_events),
                    (SELECT count(*) FROM order_items),
                    (SELECT max(last_seen_at) FROM orders)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?)
    }

    fn try_verify_nochange(
        &mut self,
        db: &Path,
        before: &(i64, i64, i64, String),
    ) -> anyhow::Result<()> {
        let after = self.snapshot(db)?;
        ensure!(
            after.0 == before.0 && after.1 == before.1,
            "the no-change pass wrote {} event(s) (newest id {} -> {}); it must write none",
            after.0 - before.0,
            before.1,
            after.1
        );
        ensure!(
            after.2 == before.2 && after.2 == self.expected_items,
            "{} line items after the no-change pass, {} before, expected {}",
            after.2,
            before.2,
            self.expected_items
        );
        let conn = Connection::open(db)?;
        let n = self.n as i64;
        let stale: i64 = conn.query_row(
            "SELECT count(*) FROM orders WHERE last_seen_at <= ?1",
            [&before.3],
            |r| r.get(0),
        )?;
        ensure!(
            stale == 0,
            "{stale} order(s) kept the first sync's last_seen_at: the pass saw all {n}"
        );
        let runs: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM sync_runs WHERE kind = 'sync' AND outcome = 'ok' \
                 AND fetched = {n} AND created = 0 AND changed = 0 AND rejected = 0"
            ),
            [],
            |r| r.get(0),
        )?;
        ensure!(
            runs == 1,
            "{runs} finished sync runs that fetched {n} and changed nothing, expected 1"
        );
        Ok(())
    }

    /// A main file naming the store by `database` (its `[daemon]` lines) and
    /// `platforms.d/<name>.toml` holding `platform_toml`, as an operator would write them.
    fn write_config(
        &self,
        dir: &Path,
        database: &str,
        name: &str,
        platform_toml: &str,
    ) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir.join("platforms.d"))?;
        let main_file = dir.join("ordersync.toml");
        std::fs::write(
            &main_file,
            format!("[daemon]\n{database}\nlog_level = \"info\"\n"),
        )?;
        std::fs::write(
            dir.join("platforms.d").join(format!("{name}.toml")),
            platform_toml,
        )?;
        Ok(main_file)
    }

    /// The daemon run's platform file: the built-in kind, as the platform `name`.
    fn merchantpro_toml(&self, name: &str) -> String {
        let creds = SimOptions::default();
        // `max_requests_per_second` must be > 0; this high it never makes a request wait.
        format!(
            "[platforms.{name}]\nkind = \"merchantpro\"\nbase_url = {url}\n\
             backfill_from = \"{from}\"\npage_size = {PAGE_SIZE}\nmax_requests_per_second = 100000\n\
             [platforms.{name}.auth]\napi_key = {key}\napi_secret = {secret}\n",
            url = toml_string(&self.base_url),
            from = self.backfill_from.to_rfc3339(),
            key = toml_string(&creds.api_key),
            secret = toml_string(&creds.api_secret),
        )
    }

    /// The rest run's platform file: the shipped description, read from the source tree now,
    /// with the daemon run's settings and credentials.
    fn rest_toml(&self, name: &str) -> anyhow::Result<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/platforms.d")
            .join(REST_EXAMPLE);
        let example = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        describe(&example, name, &self.merchantpro_toml(name))
            .with_context(|| format!("cannot adapt {}", path.display()))
    }

    /// Exactly N orders, N `created` events and no other event, every line item; for the daemon
    /// also one finished `sync` run and a closed pass.
    fn verify_store(&mut self, label: &str, db: &Path, platform: &str, daemon: bool) {
        if let Err(e) = self.try_verify_store(label, db, platform, daemon) {
            self.failures.push(format!("{label}: {e:#}"));
        }
    }

    fn try_verify_store(
        &mut self,
        label: &str,
        db: &Path,
        platform: &str,
        daemon: bool,
    ) -> anyhow::Result<()> {
        ensure!(db.exists(), "no database at {}", db.display());
        let conn = Connection::open(db)?;
        let count =
            |sql: &str| -> anyhow::Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        let n = self.n as i64;
        let items = self.expected_items;
        let mut expect = |what: &str, got: i64, want: i64| {
            if got != want {
                self.failures
                    .push(format!("{label}: {got} {what}, expected {want}"));
            }
        };
        expect(
            "orders",
            count(&format!(
                "SELECT count(*) FROM orders WHERE platform = '{platform}'"
            ))?,
            n,
        );
        expect(
            "created events",
            count("SELECT count(*) FROM order_events WHERE kind = 'created'")?,
            n,
        );
        expect(
            "events in all",
            count("SELECT count(*) FROM order_events")?,
            n,
        );
        expect(
            "line items",
            count("SELECT count(*) FROM order_items")?,
            items,
        );
        expect("rejects", count("SELECT count(*) FROM rejects")?, 0);
        if daemon {
            expect(
                "finished sync runs with every order fetched and created",
                count(&format!(
                    "SELECT count(*) FROM sync_runs WHERE kind = 'sync' AND outcome = 'ok' \
                     AND fetched = {n} AND created = {n}"
                ))?,
                1,
            );
            expect(
                "closed passes with a cursor",
                count(
                    "SELECT count(*) FROM sync_state WHERE cursor IS NOT NULL AND resume IS NULL",
                )?,
                1,
            );
        }
        Ok(())
    }

    /// Both runs must have stored the same rows: same raw record (by hash) and same mapping.
    fn compare_stores(&mut self, what: &str, bare: &Path, daemon: &Path) {
        let result = (|| -> anyhow::Result<(i64, i64)> {
            let conn = Connection::open(bare)?;
            conn.execute(
                "ATTACH DATABASE ?1 AS d",
                [daemon.to_string_lossy().as_ref()],
            )?;
            let orders = conn.query_row(
                "SELECT count(*) FROM main.orders b JOIN d.orders x
                   ON x.platform = b.platform AND x.order_id = b.order_id
                 WHERE x.content_hash = b.content_hash AND x.number IS b.number
                   AND x.status IS b.status AND x.platform_status IS b.platform_status
                   AND x.placed_at IS b.placed_at AND x.updated_at IS b.updated_at
                   AND x.currency IS b.currency AND x.total IS b.total
                   AND x.customer_name IS b.customer_name
                   AND x.tracking_number IS b.tracking_number",
                [],
                |r| r.get(0),
            )?;
            let items = conn.query_row(
                "SELECT count(*) FROM main.order_items b JOIN d.order_items x
                   ON x.platform = b.platform AND x.order_id = b.order_id AND x.item_id = b.item_id
                 WHERE x.sku IS b.sku AND x.name IS b.name AND x.quantity IS b.quantity
                   AND x.unit_price IS b.unit_price AND x.status IS b.status",
                [],
                |r| r.get(0),
            )?;
            Ok((orders, items))
        })();
        match result {
            Ok((orders, items)) if orders == self.n as i64 && items == self.expected_items => {}
            Ok((orders, items)) => self.failures.push(format!(
                "{what} stores differ: {orders} identical orders of {}, {items} identical items of {}",
                self.n, self.expected_items
            )),
            Err(e) => self
                .failures
                .push(format!("cannot compare the {what} stores: {e:#}")),
        }
    }

    /// The rest run's orders and items must be the daemon run's, row for row: every column but
    /// the platform's name and the store's own bookkeeping times (`content_hash` and `raw`
    /// included).
    fn compare_described(&mut self, label: &str, daemon: &Path, rest: &Path) {
        if let Err(e) = self.try_compare_described(daemon, rest) {
            self.failures.push(format!(
                "{label}: its store differs from the daemon run's: {e:#}"
            ));
        }
    }

    fn try_compare_described(&self, daemon: &Path, rest: &Path) -> anyhow::Result<()> {
        let conn = Connection::open(daemon)?;
        conn.execute(
            "ATTACH DATABASE ?1 AS rest",
            [rest.to_string_lossy().as_ref()],
        )?;
        let platforms = [PLATFORM, REST_PLATFORM];
        let tables: [(&str, &[&str], i64); 2] = [
            ("orders", &["order_id"], self.n as i64),
            ("order_items", &["order_id", "item_id"], self.expected_items),
        ];
        let mut differences = Vec::new();
        for (table, keys, want) in tables {
            // Every column the store has, so a column added later is compared too.
            let columns: Vec<String> = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|c| !UNCOMPARED.contains(&c.as_str()))
                .collect();
            ensure!(
                keys.iter().all(|k| columns.iter().any(|c| c == k)),
                "{table} has no {keys:?} columns"
            );
            let on = keys
                .iter()
                .map(|k| format!("b.{k} = a.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let same = columns
                .iter()
                .map(|c| format!("b.{c} IS a.{c}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let rows = |schema: &str, platform: &str| -> anyhow::Result<i64> {
                Ok(conn.query_row(
                    &format!("SELECT count(*) FROM {schema}.{table} WHERE platform = ?1"),
                    [platform],
                    |r| r.get(0),
                )?)
            };
            let in_daemon = rows("main", PLATFORM)?;
            let in_rest = rows("rest", REST_PLATFORM)?;
            let identical: i64 = conn.query_row(
                &format!(
                    "SELECT count(*) FROM main.{table} a JOIN rest.{table} b
                       ON b.platform = ?2 AND {on}
                     WHERE a.platform = ?1 AND {same}"
                ),
                platforms,
                |r| r.get(0),
            )?;
            if in_daemon == want && in_rest == want && identical == want {
                continue;
            }
            // Name the first row that differs, and how.
            let key_list = keys
                .iter()
                .map(|k| format!("a.{k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let first: Option<Vec<String>> = conn
                .query_row(
                    &format!(
                        "SELECT {key_list} FROM main.{table} a WHERE a.platform = ?1
                           AND NOT EXISTS (SELECT 1 FROM rest.{table} b
                                           WHERE b.platform = ?2 AND {on} AND {same})
                         ORDER BY {key_list} LIMIT 1"
                    ),
                    platforms,
                    |r| (0..keys.len()).map(|i| r.get::<_, String>(i)).collect(),
                )
                .ok();
            let detail = match first {
                Some(key) => {
                    let row = |schema: &str, platform: &str| {
                        let filter = keys
                            .iter()
                            .enumerate()
                            .map(|(i, k)| format!("{k} = ?{}", i + 2))
                            .collect::<Vec<_>>()
                            .join(" AND ");
                        let mut params: Vec<&str> = vec![platform];
                        params.extend(key.iter().map(String::as_str));
                        conn.query_row(
                            &format!(
                                "SELECT {} FROM {schema}.{table} WHERE platform = ?1 AND {filter}",
                                columns.join(", ")
                            ),
                            rusqlite::params_from_iter(params),
                            |r| {
                                (0..columns.len())
                                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                                    .collect::<Result<Vec<_>, _>>()
                            },
                        )
                        .ok()
                    };
                    match (row("main", PLATFORM), row("rest", REST_PLATFORM)) {
                        (Some(a), Some(b)) => {
                            let differ: Vec<String> = columns
                                .iter()
                                .zip(a.iter().zip(&b))
                                .filter(|(_, (x, y))| x != y)
                                .map(|(c, (x, y))| format!("{c}: {}", difference(x, y)))
                                .collect();
                            format!("first differing row {key:?}: {}", differ.join("; "))
                        }
                        _ => format!("first differing row {key:?}: not in the rest run's store"),
                    }
                }
                None => "every daemon row has its twin; the rest run stored more".to_owned(),
            };
            differences.push(format!(
                "{table}: {identical} identical rows of {want} ({in_daemon} in the daemon run's \
                 store, {in_rest} in the rest run's); {detail}"
            ));
        }
        ensure!(differences.is_empty(), "{}", differences.join("; "));
        Ok(())
    }

    /// Average bytes of one order's JSON record, as stored (the record exactly as served).
    fn record_bytes(&self, db: &Path) -> Option<f64> {
        let conn = Connection::open(db).ok()?;
        let total: i64 = conn
            .query_row(
                "SELECT sum(length(CAST(raw AS BLOB))) FROM orders",
                [],
                |r| r.get(0),
            )
            .ok()?;
        Some(total as f64 / self.n as f64)
    }
}

/// Columns the rest run's store may hold differently from the daemon run's: the platform's name
/// and the times of the store's own bookkeeping.
const UNCOMPARED: [&str; 4] = [
    "platform",
    "first_seen_at",
    "last_seen_at",
    "last_changed_at",
];

/// The keys of the rest run's platform table taken from the daemon run's platform file.
const TAKEN_KEYS: [&str; 4] = [
    "base_url",
    "backfill_from",
    "page_size",
    "max_requests_per_second",
];

/// `example` (a shipped `rest` description) as the platform `name`, with the [`TAKEN_KEYS`] and
/// the auth table of `builtin` (a built-in platform file for the same shop).
fn describe(example: &str, name: &str, builtin: &str) -> anyhow::Result<String> {
    ensure!(
        example.lines().any(|l| l.trim() == "kind = \"rest\""),
        "the example is not a `rest` description"
    );
    let is_key = |line: &str, key: &str| line.split_once('=').is_some_and(|(k, _)| k.trim() == key);
    let taken = TAKEN_KEYS
        .iter()
        .map(|k| {
            builtin
                .lines()
                .find(|l| is_key(l, k))
                .with_context(|| format!("no {k} in the daemon run's platform file"))
        })
        .collect::<anyhow::Result<Vec<&str>>>()?;
    let (_, auth) = builtin
        .split_once(&format!("[platforms.{name}.auth]\n"))
        .context("the daemon run's platform file has no auth table")?;
    Ok(ordersync_sim::description::adapt(
        example,
        name,
        &taken.join("\n"),
        auth.trim_end(),
    ))
}

/// Whether two `path?query` request targets ask for the same: the same path and the same query
/// parameters, in any order.
fn same_request(a: &str, b: &str) -> bool {
    let parts = |target: &str| -> Option<(String, Vec<(String, String)>)> {
        let url = Url::parse("http://bench.invalid/")
            .ok()?
            .join(target)
            .ok()?;
        let mut query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        query.sort();
        Some((url.path().to_owned(), query))
    };
    parts(a).is_some_and(|a| Some(a) == parts(b))
}

/// Two stored values that differ, for a failure message: long texts from a little before the
/// first character where they differ.
fn difference(daemon: &rusqlite::types::Value, rest: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    let excerpt = |v: &Value, from: usize| {
        let text = match v {
            Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        };
        let mut chars = text.chars().skip(from);
        let cut: String = chars.by_ref().take(80).collect();
        let before = if from > 0 { "…" } else { "" };
        let after = if chars.next().is_some() { "…" } else { "" };
        format!("{before}{cut:?}{after}")
    };
    let from = match (daemon, rest) {
        (Value::Text(a), Value::Text(b)) => a
            .chars()
            .zip(b.chars())
            .take_while(|(x, y)| x == y)
            .count()
            .saturating_sub(30),
        _ => 0,
    };
    format!(
        "daemon {} / rest {}",
        excerpt(daemon, from),
        excerpt(rest, from)
    )
}

fn print_header() {
    println!(
        "{:<12} {:>9} {:>10} {:>8} {:>13} {:>10}",
        "run", "wall s", "orders/s", "CPU s", "peak RSS MiB", "sim CPU s"
    );
}

fn print_run(r: &RunResult, n: usize) {
    println!(
        "{:<12} {:>9.3} {:>10.0} {:>8.3} {:>13.1} {:>10.3}",
        format!("{} #{}", r.kind.as_str(), r.round),
        r.usage.wall_s,
        r.orders_per_s(n),
        r.usage.cpu_s(),
        r.usage.rss_mib(),
        r.sim_cpu_s,
    );
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// A TOML basic string (JSON's escaping is valid TOML for everything a path or URL holds).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// User + system CPU seconds of this process so far.
fn self_cpu_s() -> f64 {
    // SAFETY: rusage is plain old data and getrusage only writes to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a pointer to a live local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Hardware"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The filesystem type the databases live on (tmpfs and ext4 sync very differently).
fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (_, point, fstype) = (f.next()?, f.next()?, f.next()?);
                    Some((
                        PathBuf::from(point.replace("\\040", " ")),
                        fstype.to_owned(),
                    ))
                })
                .filter(|(point, _)| dir.starts_with(point))
                .max_by_key(|(point, _)| point.components().count())
                .map(|(_, fstype)| fstype)
        })
        .unwrap_or_else(|| "unknown filesystem".to_owned())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
