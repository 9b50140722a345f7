//! Reconcile and verify of a two-year shop: what a reconcile pass and an `ordersync verify`
//! cost on a shop of 100,000 orders, for every kind.
//!
//! Each kind's shop (served on loopback by this process) holds N orders placed evenly over two
//! years that end 60 days ago (so no generated order's own update time falls inside
//! `final_watch`). Of them, `OPEN` orders spread evenly over the two years are open and
//! `OPEN` others, also spread evenly, are final orders inside `final_watch`: the platform
//! moved them to a final status just before the first sync, so their update time is now. The
//! rest are final and old. How each kind is shaped:
//!
//! * **MerchantPro** (`in_process` / `delivered`) and **SIRCLO** (`accepted` / `completed`):
//!   as above, statuses set without moving the update time except for the watched finals.
//! * **Mitrabunso**: N − `OPEN` orders, all `SENT` long ago, `OPEN` of them turned back to
//!   `NEW` (open); the `OPEN` finals inside `final_watch` are `SENT` orders placed (and sent)
//!   15 days ago, one second apart, because its simulator cannot move an old order's `SENT`
//!   time forward.
//! * **Akinon** and **Epixel** reconcile nothing (their updated-time filter sees every
//!   change): their shops keep the simulator's generated status mix; the pass still runs and
//!   its requests are counted.
//!
//! The shop is synced once with `ordersync sync --no-reconcile`. Then, per kind, two reconcile
//! passes are measured, each in a child process (this binary re-executed as `--reconcile
//! MAIN_FILE PLATFORM`, which calls the daemon's own `Platform::run_pass(PassKind::Reconcile)`,
//! what the scheduler's reconcile job runs), through the launcher's `wait4` (see `support`):
//!
//! * **open**: `final_watch = "0s"`, so only the open orders are watched;
//! * **final_watch**: the default 30 days, so the open orders and the recent finals are.
//!
//! Finally `ordersync verify --json` reads the whole listing and compares it with the store.
//!
//! Reported per kind and pass: requests (the simulator's count), wall time, orders re-read, CPU
//! seconds, peak RSS and events written, which must be 0: nothing changed on the platform.
//! Verified: every request was answered 2xx, no event and no reject was written, a recorded
//! run changed nothing; MerchantPro made one `ids=` request per 100 watched orders and re-read
//! exactly the watched ones; SIRCLO made at most one request per watched order and re-read
//! every one of them; Mitrabunso looked up min(finals inside `final_watch`, 200) orders; Akinon
//! and Epixel made none. Verify must exit 0 and report every order listed, none missing,
//! changed or extra. Target: SIRCLO's open pass makes at most one request per open order.
//!
//! ```text
//! cargo bench --bench reconcile                                           # 100,000 orders
//! ORDERSYNC_BENCH_ORDERS=10000 ORDERSYNC_BENCH_OPEN=200 cargo bench --bench reconcile
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_ORDERS` (default 100000), `ORDERSYNC_BENCH_OPEN` (open
//! orders, and as many finals inside `final_watch`; default 1000), `ORDERSYNC_BENCH_ROUNDS`
//! (default 2, fastest reported), `ORDERSYNC_BENCH_DIR`. Without `--bench` (as `cargo test
//! --benches` runs it) it is a smoke test: 3,000 orders, 50 open, one round.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use ordersync_sim::{RecordedRequest, RunningSim, akinon, epixel, merchantpro, mitrabunso, sirclo};
use rusqlite::Connection;
use serde_json::{Value, json};
use support::{Launcher, Usage, count, met, round3};

const DEFAULT_ORDERS: usize = 100_000;
const SMOKE_ORDERS: usize = 3_000;
const DEFAULT_OPEN: usize = 1_000;
const SMOKE_OPEN: usize = 50;
const SPAN_DAYS: i64 = 730;
/// The shop's newest generated order is this old, well beyond `final_watch` and beyond every
/// simulator's generated gap between placing and last update.
const QUIET_DAYS: i64 = 60;
const PAGE_SIZE: usize = 100;
/// Mitrabunso's lookups per pass.
const MITRABUNSO_PER_PASS: usize = 200;
const PASSES: [(&str, &str); 2] = [("open", "0s"), ("final_watch", "30days")];

fn main() -> ExitCode {
    if let Some(code) = support::dispatch() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--reconcile") {
        return reconcile_child(&args[1..]);
    }
    support::finish("reconcile", orchestrate(support::benchmark_mode()))
}

// ---------------------------------------------------------------------------------------------
// The measured child: one reconcile pass, the daemon's code path.

fn reconcile_child(args: &[String]) -> ExitCode {
    let [main_file, name] = args else {
        eprintln!("usage: reconcile-bench --reconcile MAIN_FILE PLATFORM");
        return ExitCode::from(2);
    };
    match reconcile_once(Path::new(main_file), name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reconcile: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reconcile_once(main_file: &Path, name: &str) -> anyhow::Result<()> {
    use ordersync::daemon::{Platform, RunLocks};
    use ordersync::sync::{PassKind, PassOptions};
    use tokio_util::sync::CancellationToken;

    ordersync::http::install_crypto_provider();
    // Without the environment, as a daemon started by the launcher would be.
    let config = ordersync::config::load_with_env(main_file, ordersync::platforms::kinds(), &[])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = config
        .platform(name)
        .with_context(|| format!("no platform {name}"))?
        .clone();
    // The daemon's runtime: multi-threaded, as `ordersync run` builds it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = ordersync::store::Store::open(
            config
                .daemon
                .database
                .sqlite_path()
                .expect("a SQLite store"),
        )?;
        let cancel = CancellationToken::new();
        let platform = Arc::new(
            Platform::new(
                cfg,
                &ordersync::http::Redactor::default(),
                &cancel,
                &RunLocks::default(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        // Kinds that need no reconcile run the pass all the same: it must cost nothing.
        let needs = platform.needs_reconcile();
        let report = platform
            .run_pass(
                PassKind::Reconcile,
                PassOptions { full: false },
                &store,
                &cancel,
                None,
            )
            .await?;
        println!(
            "RECONCILE_RESULT {}",
            json!({"pages": report.pages, "fetched": report.fetched, "needs_reconcile": needs})
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The shops.

/// One simulated shop and what the bench needs of it.
struct Shop {
    kind: &'static str,
    strategy: &'static str,
    name: &'static str,
    url: String,
    from: DateTime<Utc>,
    orders: usize,
    /// Orders re-read by a reconcile pass that watches only open orders, and with final_watch.
    watched_open: usize,
    watched_final: usize,
    /// How the stored open orders are counted for this kind, and how many there must be.
    open_check: Option<(&'static str, i64)>,
    log: Box<dyn Fn() -> Vec<RecordedRequest>>,
    request_count: Box<dyn Fn() -> usize>,
    _server: RunningSim,
}

struct Plan {
    orders: usize,
    open: usize,
    start: DateTime<Utc>,
    spacing: chrono::Duration,
}

impl Plan {
    fn new(orders: usize, open: usize) -> anyhow::Result<Plan> {
        let span = chrono::Duration::days(SPAN_DAYS);
        let start = Utc::now() - chrono::Duration::days(QUIET_DAYS) - span;
        let spacing = chrono::Duration::seconds(span.num_seconds() / i64::try_from(orders)?);
        Ok(Plan {
            orders,
            open,
            start,
            spacing,
        })
    }

    /// Of `n` orders, the open ones and the finals inside `final_watch`: evenly spread,
    /// interleaved.
    fn roles(&self, n: usize) -> Vec<Role> {
        let step = n / self.open;
        let mut roles = vec![Role::OldFinal; n];
        for i in 0..self.open {
            roles[i * step] = Role::Open;
            roles[i * step + step / 2] = Role::RecentFinal;
        }
        roles
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Open,
    RecentFinal,
    OldFinal,
}

fn merchantpro_shop(rt: &tokio::runtime::Runtime, plan: &Plan) -> anyhow::Result<Shop> {
    let sim = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
        orders: plan.orders,
        start: plan.start,
        spacing: plan.spacing,
        ..Default::default()
    });
    let roles = plan.roles(plan.orders);
    for (o, role) in sim.truth().iter().zip(&roles) {
        let is_open = matches!(
            o.shipping_status.as_str(),
            "awaiting" | "confirmed" | "in_process" | "shipped"
        );
        match role {
            Role::Open if !is_open => sim.set_status_quietly(o.id, "in_process"),
            Role::OldFinal if is_open => sim.set_status_quietly(o.id, "delivered"),
            Role::RecentFinal => {
                sim.set_status_quietly(o.id, "in_process");
                sim.set_status(o.id, "delivered");
            }
            _ => {}
        }
    }
    let server = rt.block_on(sim.serve())?;
    let (a, b) = (sim.clone(), sim);
    Ok(Shop {
        kind: "merchantpro",
        strategy: "by id, `ids=` batches of 100",
        name: "mp",
        url: server.base_url(),
        from: plan.start - chrono::Duration::days(2),
        orders: plan.orders,
        watched_open: plan.open,
        watched_final: plan.open * 2,
        open_check: Some((
            "SELECT count(*) FROM orders WHERE status NOT IN ('delivered','cancelled','returned','rejected')",
            plan.open as i64,
        )),
        log: Box::new(move || a.requests()),
        request_count: Box::new(move || b.request_count()),
        _server: server,
    })
}

fn sirclo_shop(rt: &tokio::runtime::Runtime, plan: &Plan) -> anyhow::Result<Shop> {
    let sim = sirclo::SircloSim::new(sirclo::SimOptions {
        orders: plan.orders,
        start: plan.start,
        spacing: plan.spacing,
        ..Default::default()
    });
    let roles = plan.roles(plan.orders);
    for (o, role) in sim.truth().iter().zip(&roles) {
        let is_open = matches!(o.status.as_str(), "pending" | "accepted" | "packed");
        match role {
            Role::Open if !is_open => sim.set_status_quietly(o.id, "accepted"),
            Role::OldFinal if is_open => sim.set_status_quietly(o.id, "completed"),
            Role::RecentFinal => {
                sim.set_status_quietly(o.id, "accepted");
                sim.set_status(o.id, "completed");
            }
            _ => {}
        }
    }
    let server = rt.block_on(sim.serve())?;
    let (a, b) = (sim.clone(), sim);
    Ok(Shop {
        kind: "sirclo",
        strategy: "±2-minute windows around each watched order's placing time",
        name: "sc",
        url: server.base_url(),
        from: plan.start - chrono::Duration::days(2),
        orders: plan.orders,
        watched_open: plan.open,
        watched_final: plan.open * 2,
        open_check: Some((
            "SELECT count(*) FROM orders WHERE status NOT IN ('delivered','cancelled','returned','rejected')",
            plan.open as i64,
        )),
        log: Box::new(move || a.requests()),
        request_count: Box::new(move || b.request_count()),
        _server: server,
    })
}

fn mitrabunso_shop(rt: &tokio::runtime::Runtime, plan: &Plan) -> anyhow::Result<Shop> {
    let old = plan.orders - plan.open;
    let sim = mitrabunso::MitrabunsoSim::new(mitrabunso::SimOptions {
        orders: old,
        start: plan.start,
        spacing: chrono::Duration::seconds(
            chrono::Duration::days(SPAN_DAYS).num_seconds() / i64::try_from(old)?,
        ),
        statuses: vec![(1, "SENT".to_owned())],
        ..Default::default()
    });
    let roles = plan.roles(old);
    for (id, role) in sim.order_ids().iter().zip(&roles) {
        if *role == Role::Open {
            sim.set_status(id, "NEW");
        }
    }
    sim.add_backdated_orders(plan.open, Utc::now() - chrono::Duration::days(15), "SENT");
    let server = rt.block_on(sim.serve())?;
    let (a, b) = (sim.clone(), sim);
    Ok(Shop {
        kind: "mitrabunso",
        strategy: "`SENT` orders inside final_watch looked up one by one (`q`), ≤ 200 a pass",
        name: "mb",
        url: server.base_url(),
        from: plan.start - chrono::Duration::days(2),
        orders: plan.orders,
        watched_open: 0,
        watched_final: plan.open.min(MITRABUNSO_PER_PASS),
        open_check: Some((
            "SELECT count(*) FROM orders WHERE platform_status <> 'SENT'",
            plan.open as i64,
        )),
        log: Box::new(move || a.requests()),
        request_count: Box::new(move || b.request_count()),
        _server: server,
    })
}

fn akinon_shop(rt: &tokio::runtime::Runtime, plan: &Plan) -> anyhow::Result<Shop> {
    let sim = akinon::AkinonSim::new(akinon::SimOptions {
        orders: plan.orders,
        start: plan.start,
        spacing: plan.spacing,
        ..Default::default()
    });
    let server = rt.block_on(sim.serve())?;
    let (a, b) = (sim.clone(), sim);
    Ok(Shop {
        kind: "akinon",
        strategy: "none needed (updated_at filter)",
        name: "ak",
        url: server.base_url(),
        from: plan.start - chrono::Duration::days(2),
        orders: plan.orders,
        watched_open: 0,
        watched_final: 0,
        open_check: None,
        log: Box::new(move || a.requests()),
        request_count: Box::new(move || b.request_count()),
        _server: server,
    })
}

fn epixel_shop(rt: &tokio::runtime::Runtime, plan: &Plan) -> anyhow::Result<Shop> {
    let sim = epixel::EpixelSim::new(epixel::SimOptions {
        orders: plan.orders,
        start: plan.start,
        spacing: plan.spacing,
        ..Default::default()
    });
    let server = rt.block_on(sim.serve())?;
    let (a, b) = (sim.clone(), sim);
    Ok(Shop {
        kind: "epixel",
        strategy: "none needed (modified filter)",
        name: "ep",
        url: server.base_url(),
        from: plan.start - chrono::Duration::days(2),
        orders: plan.orders,
        watched_open: 0,
        watched_final: 0,
        open_check: None,
        log: Box::new(move || a.requests()),
        request_count: Box::new(move || b.request_count()),
        _server: server,
    })
}

type Build = fn(&tokio::runtime::Runtime, &Plan) -> anyhow::Result<Shop>;
const SHOPS: [Build; 5] = [
    merchantpro_shop,
    sirclo_shop,
    mitrabunso_shop,
    akinon_shop,
    epixel_shop,
];

// ---------------------------------------------------------------------------------------------
// The orchestrator.

#[derive(Debug, Clone)]
struct Measured {
    usage: Usage,
    requests: usize,
    fetched: u64,
    pages: u64,
    events_written: i64,
}

fn orchestrate(benchmark: bool) -> anyhow::Result<bool> {
    let mut launcher = Launcher::start()?;
    let orders = support::env_usize(
        "ORDERSYNC_BENCH_ORDERS",
        if benchmark {
            DEFAULT_ORDERS
        } else {
            SMOKE_ORDERS
        },
    )?;
    let open = support::env_usize(
        "ORDERSYNC_BENCH_OPEN",
        if benchmark { DEFAULT_OPEN } else { SMOKE_OPEN },
    )?;
    let rounds = support::env_usize("ORDERSYNC_BENCH_ROUNDS", if benchmark { 2 } else { 1 })?;
    ensure!(
        open > 0 && rounds > 0 && open * 2 <= orders,
        "open orders and rounds must be > 0, and twice the open orders at most the shop's orders"
    );
    let plan = Plan::new(orders, open)?;
    let work = support::work_dir("reconcile")?;
    let load_start = support::loadavg();
    let floor = launcher.rss_floor(work.path())?;

    println!("ordersync reconcile and verify benchmark (benches/reconcile.rs)");
    if !benchmark {
        println!(
            "smoke mode (run without --bench): {orders} orders, {open} open, {rounds} round(s)"
        );
    }
    println!(
        "machine    : {} cores, {}; load average at start {load_start}",
        support::cores(),
        support::cpu_model()
    );
    println!(
        "shops      : {orders} orders each over {SPAN_DAYS} days ending {QUIET_DAYS} days ago; {open} open, {open} finals inside final_watch"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim")
        .build()?;

    let mut failures = Vec::new();
    let mut kinds = Vec::new();
    for build in SHOPS {
        let shop = build(&rt, &plan)?;
        match run_shop(&mut launcher, &shop, work.path(), rounds, &mut failures) {
            Ok(v) => kinds.push(v),
            Err(e) => failures.push(format!("{}: {e:#}", shop.kind)),
        }
    }

    println!();
    println!(
        "{:<12} {:<12} {:>8} {:>8} {:>9} {:>8} {:>13} {:>7}",
        "kind", "pass", "requests", "re-read", "wall s", "CPU s", "peak RSS MiB", "events"
    );
    for k in &kinds {
        for (pass, _) in PASSES {
            let m = &k["passes"][pass];
            println!(
                "{:<12} {:<12} {:>8} {:>8} {:>9.3} {:>8.3} {:>13.1} {:>7}",
                k["kind"].as_str().unwrap_or("?"),
                pass,
                m["requests"].as_u64().unwrap_or(0),
                m["fetched"].as_u64().unwrap_or(0),
                m["wall_s"].as_f64().unwrap_or(f64::NAN),
                m["cpu_s"].as_f64().unwrap_or(f64::NAN),
                m["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
                m["events_written"].as_i64().unwrap_or(-1)
            );
        }
    }
    println!();
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>8} {:>13}",
        "verify", "requests", "listed", "wall s", "CPU s", "peak RSS MiB"
    );
    for k in &kinds {
        let v = &k["verify"];
        println!(
            "{:<12} {:>8} {:>9} {:>9.3} {:>8.3} {:>13.1}",
            k["kind"].as_str().unwrap_or("?"),
            v["requests"].as_u64().unwrap_or(0),
            v["listed"].as_u64().unwrap_or(0),
            v["wall_s"].as_f64().unwrap_or(f64::NAN),
            v["cpu_s"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        );
    }
    let events_met = kinds.iter().all(|k| {
        PASSES
            .iter()
            .all(|(p, _)| k["passes"][p]["events_written"].as_i64() == Some(0))
    });
    let sirclo_requests = kinds
        .iter()
        .find(|k| k["kind"] == "sirclo")
        .and_then(|k| k["passes"]["open"]["requests"].as_u64());
    let sirclo_met = sirclo_requests.map(|r| r <= open as u64);
    println!(
        "SIRCLO open pass: {} requests for {open} open orders (target ≤ {open}: {})",
        sirclo_requests.map_or("?".into(), |r| r.to_string()),
        sirclo_met.map_or("not measured", met)
    );
    println!("events written: target 0: {}", met(events_met));
    let verified = failures.is_empty() && kinds.len() == SHOPS.len();
    let machine = support::machine_json(work.path(), &load_start);
    if verified {
        println!("verification: ok");
    } else {
        println!("verification: FAILED");
        for f in &failures {
            println!("  - {f}");
        }
        println!("kept for inspection: {}", work.keep().display());
    }
    let report = json!({
        "bench": "reconcile",
        "mode": if benchmark { "bench" } else { "smoke" },
        "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": machine,
        "shop_orders": orders,
        "open_orders": open,
        "final_watch_orders": open,
        "span_days": SPAN_DAYS,
        "quiet_days": QUIET_DAYS,
        "rounds": rounds,
        "rss_floor_mib": round3(floor.rss_mib()),
        "kinds": kinds,
        "targets": {
            "events_written": 0,
            "events_met": events_met,
            "sirclo_open_requests": sirclo_requests,
            "sirclo_met": sirclo_met,
        },
        "verified": verified,
        "failures": failures,
    });
    support::print_bench_json(&report);
    Ok(verified)
}

fn write_platform(dir: &Path, shop: &Shop, final_watch: &str) -> anyhow::Result<PathBuf> {
    let extra = format!(
        "page_size = {PAGE_SIZE}\nmax_requests_per_second = 100000\nfinal_watch = \"{final_watch}\"\n"
    );
    support::write_config(
        dir,
        "",
        &[(
            format!("{}.toml", shop.name),
            support::platform_toml(shop.name, shop.kind, &shop.url, shop.from, &extra),
        )],
    )
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "wall_s": round3(u.wall_s),
        "cpu_s": round3(u.cpu_s()),
        "peak_rss_mib": round3(u.rss_mib()),
    })
}

fn run_shop(
    launcher: &mut Launcher,
    shop: &Shop,
    work: &Path,
    rounds: usize,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let dir = work.join(shop.kind);
    let main_file = write_platform(&dir, shop, PASSES[1].1)?;
    let db = dir.join("ordersync.db");
    let job = launcher.job(
        &support::daemon_bin(),
        support::daemon_args(&main_file, &["sync", "--no-reconcile"]),
        &dir,
        "first-sync",
    );
    let first = launcher.run(&job)?;
    ensure!(
        first.exited_ok(),
        "the first sync failed ({}):\n{}",
        first.describe_exit(),
        support::tail(&job.stderr, 15)
    );
    let conn = Connection::open(&db)?;
    let stored = count(&conn, "SELECT count(*) FROM orders")?;
    let stored_open = count(
        &conn,
        "SELECT count(*) FROM orders WHERE status NOT IN ('delivered','cancelled','returned','rejected')",
    )?;
    if stored != shop.orders as i64 {
        failures.push(format!(
            "{}: first sync stored {stored} orders, expected {}",
            shop.kind, shop.orders
        ));
    }
    if let Some((sql, want)) = shop.open_check {
        let got = count(&conn, sql)?;
        if got != want {
            failures.push(format!(
                "{}: first sync stored {got} open orders, expected {want}",
                shop.kind
            ));
        }
    }
    drop(conn);
    println!(
        "{:<11}: first sync of {stored} orders ({stored_open} not final) in {:.2} s",
        shop.kind, first.wall_s
    );

    let mut passes = serde_json::Map::new();
    for (pass, final_watch) in PASSES {
        write_platform(&dir, shop, final_watch)?;
        let watched = if pass == "open" {
            shop.watched_open
        } else {
            shop.watched_final
        };
        let mut runs = Vec::new();
        for round in 1..=rounds {
            let label = format!("{} {pass} reconcile #{round}", shop.kind);
            match measure_reconcile(launcher, shop, &dir, &main_file, &db, &label) {
                Ok(m) => {
                    check(&label, shop.kind, watched, &m, failures);
                    runs.push(m);
                }
                Err(e) => failures.push(format!("{label}: {e:#}")),
            }
        }
        if let Some(best) = runs
            .iter()
            .min_by(|a, b| a.usage.wall_s.total_cmp(&b.usage.wall_s))
        {
            let mut v = usage_json(&best.usage);
            v["watched"] = json!(watched);
            v["requests"] = json!(best.requests);
            v["pages"] = json!(best.pages);
            v["fetched"] = json!(best.fetched);
            v["events_written"] = json!(best.events_written);
            println!(
                "{:<11}: {pass} pass: {} requests, {} re-read, {:.3} s",
                shop.kind, best.requests, best.fetched, best.usage.wall_s
            );
            passes.insert(pass.to_owned(), v);
        }
    }
    let verify = measure_verify(launcher, shop, &dir, &main_file, &db).unwrap_or_else(|e| {
        failures.push(format!("{} verify: {e:#}", shop.kind));
        json!(null)
    });
    if !verify.is_null() {
        println!(
            "{:<11}: verify: {} requests, {} listed, {:.3} s",
            shop.kind, verify["requests"], verify["listed"], verify["wall_s"]
        );
    }
    Ok(json!({
        "kind": shop.kind,
        "strategy": shop.strategy,
        "orders": stored,
        "stored_not_final": stored_open,
        "first_sync_s": round3(first.wall_s),
        "passes": passes,
        "verify": verify,
    }))
}

fn snapshot(db: &Path) -> anyhow::Result<(i64, i64, i64)> {
    let conn = Connection::open(db)?;
    Ok((
        count(&conn, "SELECT coalesce(max(id), 0) FROM order_events")?,
        count(&conn, "SELECT count(*) FROM rejects")?,
        count(&conn, "SELECT coalesce(max(id), 0) FROM sync_runs")?,
    ))
}

fn measure_reconcile(
    launcher: &mut Launcher,
    shop: &Shop,
    dir: &Path,
    main_file: &Path,
    db: &Path,
    label: &str,
) -> anyhow::Result<Measured> {
    let before = snapshot(db)?;
    let requests_before = (shop.request_count)();
    let exe = std::env::current_exe()?;
    let job = launcher.job(
        &exe,
        vec![
            "--reconcile".into(),
            main_file.to_string_lossy().into_owned(),
            shop.name.into(),
        ],
        dir,
        &label.replace([' ', '#'], "-"),
    );
    let usage = launcher.run(&job)?;
    ensure!(
        usage.exited_ok(),
        "{}; its stderr ends with:\n{}",
        usage.describe_exit(),
        support::tail(&job.stderr, 15)
    );
    let (requests, bad) =
        support::requests_since(&(shop.log)(), (shop.request_count)(), requests_before);
    if let Some(bad) = bad {
        bail!("{bad}");
    }
    let after = snapshot(db)?;
    let conn = Connection::open(db)?;
    // A pass that reads nothing may record no run; one that reads must record an unchanged one.
    let run: Option<(String, String, i64, i64)> = conn
        .query_row(
            "SELECT kind, outcome, created, changed FROM sync_runs WHERE id > ?1",
            [before.2],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .ok();
    match run {
        Some((kind, outcome, created, changed)) => ensure!(
            kind == "reconcile" && outcome == "ok" && created == 0 && changed == 0,
            "recorded run: {kind} {outcome}, created {created}, changed {changed}"
        ),
        None => ensure!(requests == 0, "{requests} requests and no recorded run"),
    }
    ensure!(
        after.1 == before.1,
        "{} rejects written",
        after.1 - before.1
    );
    let out = std::fs::read_to_string(&job.stdout)?;
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RECONCILE_RESULT "))
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .context("no RECONCILE_RESULT line")?;
    Ok(Measured {
        usage,
        requests,
        fetched: result["fetched"].as_u64().context("no fetched")?,
        pages: result["pages"].as_u64().context("no pages")?,
        events_written: after.0 - before.0,
    })
}

fn check(label: &str, kind: &str, watched: usize, m: &Measured, failures: &mut Vec<String>) {
    let w = watched as u64;
    let problem = match kind {
        "merchantpro" if m.requests != watched.div_ceil(PAGE_SIZE) || m.fetched != w => {
            Some(format!(
                "{} ids= batches for {watched} watched orders",
                watched.div_ceil(PAGE_SIZE)
            ))
        }
        "sirclo" if m.requests > watched || m.fetched < w => Some(format!(
            "at most {watched} requests re-reading at least {watched} orders"
        )),
        "mitrabunso" if m.requests != watched || m.fetched != w => {
            Some(format!("{watched} lookups of one order each"))
        }
        "akinon" | "epixel" if m.requests != 0 => Some("no request".to_owned()),
        _ => None,
    };
    if let Some(want) = problem {
        failures.push(format!(
            "{label}: {} requests re-reading {} orders, expected {want}",
            m.requests, m.fetched
        ));
    }
    if m.requests as u64 != m.pages {
        failures.push(format!(
            "{label}: {} requests for {} pages: something was retried",
            m.requests, m.pages
        ));
    }
    if m.events_written != 0 {
        failures.push(format!(
            "{label}: {} events written, nothing changed on the platform",
            m.events_written
        ));
    }
}

fn measure_verify(
    launcher: &mut Launcher,
    shop: &Shop,
    dir: &Path,
    main_file: &Path,
    db: &Path,
) -> anyhow::Result<Value> {
    let before = snapshot(db)?;
    let requests_before = (shop.request_count)();
    let job = launcher.job(
        &support::daemon_bin(),
        support::daemon_args(main_file, &["verify", "--json"]),
        dir,
        "verify",
    );
    let usage = launcher.run(&job)?;
    ensure!(
        usage.exited_ok(),
        "exit: {}; stdout:\n{}\nstderr ends with:\n{}",
        usage.describe_exit(),
        support::tail(&job.stdout, 5),
        support::tail(&job.stderr, 15)
    );
    let (requests, bad) =
        support::requests_since(&(shop.log)(), (shop.request_count)(), requests_before);
    if let Some(bad) = bad {
        bail!("{bad}");
    }
    let after = snapshot(db)?;
    ensure!(
        after.0 == before.0 && after.1 == before.1,
        "verify wrote {} events and {} rejects",
        after.0 - before.0,
        after.1 - before.1
    );
    let out: Value = serde_json::from_str(std::fs::read_to_string(&job.stdout)?.trim())
        .context("verify --json printed no JSON document")?;
    let p = &out["platforms"][0];
    ensure!(p["error"].is_null(), "verify: {}", p["error"]);
    for drift in ["missing", "changed", "extra"] {
        let n = p[drift].as_array().map_or(usize::MAX, Vec::len);
        ensure!(n == 0, "verify found {n} {drift} orders");
    }
    let listed = p["listed"].as_u64().context("no listed")?;
    ensure!(
        listed == shop.orders as u64,
        "verify listed {listed} orders of {}",
        shop.orders
    );
    let mut v = usage_json(&usage);
    v["requests"] = json!(requests);
    v["listed"] = json!(listed);
    v["orders_per_s"] = json!(round3(listed as f64 / usage.wall_s));
    Ok(v)
}
