//! Reconcile of 10,000 open orders: what a reconcile pass costs where it means something.
//!
//! Two kinds reconcile (the others see every change through their updated-time filter):
//!
//! * **MerchantPro** re-reads the stored open orders by id: `GET /api/v2/orders?ids=…` in
//!   batches of `page_size` (100), so 10,000 open orders are 100 requests.
//! * **SIRCLO** cannot read by id: it rescans the whole `reconcile_horizon` (30 days by default)
//!   and keeps what it finds, closed orders included.
//!
//! Each shop (served on loopback by this process) holds 3 × N orders placed 90 s apart (about
//! 31 days at N = 10,000): the newest N open, every older one closed, so exactly N are open
//! and SIRCLO's horizon holds about 2.9 N of them. The shop is synced once with `ordersync
//! sync --no-reconcile`; then, for each round, one reconcile pass runs in a child process (this
//! binary re-executed as `--reconcile MAIN_FILE PLATFORM`, which calls the daemon's own
//! `Platform::run_pass(PassKind::Reconcile)`, exactly what the scheduler's reconcile job runs),
//! measured with `wait4` through the launcher (see `support`).
//!
//! Reported per kind: requests, wall time, open orders/s, orders re-read, CPU seconds, peak RSS
//! and events written, which must be 0: nothing changed on the platform. Verified: the pass
//! recorded one finished `reconcile` run that changed nothing, no event and no reject was
//! written, every request was answered 2xx, and (MerchantPro) one request per batch.
//!
//! ```text
//! cargo bench --bench reconcile                                   # 10,000 open orders
//! ORDERSYNC_BENCH_OPEN=2000 cargo bench --bench reconcile         # a quick trial
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_OPEN` (default 10000), `ORDERSYNC_BENCH_ROUNDS` (default 2,
//! fastest reported), `ORDERSYNC_BENCH_DIR`. Without `--bench` (as `cargo test --benches` runs
//! it) it is a smoke test: 300 open orders, one round.

mod support;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use ordersync::sim::{RecordedRequest, RunningSim, merchantpro, sirclo};
use rusqlite::Connection;
use serde_json::json;
use support::{Launcher, Usage, count, met, round3};

const DEFAULT_OPEN: usize = 10_000;
const SMOKE_OPEN: usize = 300;
const SPACING_SECS: i64 = 90;
const PAGE_SIZE: usize = 100;

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
    use ordersync::scheduler::{Platform, RunLocks};
    use ordersync::sync::{PassKind, PassOptions};
    use tokio_util::sync::CancellationToken;

    ordersync::http::install_crypto_provider();
    // Without the environment, as a daemon started by the launcher would be.
    let config =
        ordersync::config::load_with_env(main_file, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = config
        .platform(name)
        .with_context(|| format!("no platform {name}"))?
        .clone();
    // The daemon's runtime: multi-threaded, as `ordersync run` builds it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = ordersync::store::Store::open(&config.daemon.database)?;
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
        ensure!(platform.needs_reconcile(), "{name} does not reconcile");
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
            json!({"pages": report.pages, "fetched": report.fetched})
        );
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// One simulated shop and what the bench needs of it.
struct Shop {
    kind: &'static str,
    strategy: String,
    name: String,
    toml: String,
    log: Box<dyn Fn() -> Vec<RecordedRequest>>,
    request_count: Box<dyn Fn() -> usize>,
    /// Orders inside SIRCLO's horizon (what its rescan re-reads); MerchantPro: the open ones.
    expected_fetched: std::ops::RangeInclusive<u64>,
    expected_requests: Option<usize>,
    _server: RunningSim,
}

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
    let open = support::env_usize(
        "ORDERSYNC_BENCH_OPEN",
        if benchmark { DEFAULT_OPEN } else { SMOKE_OPEN },
    )?;
    let rounds = support::env_usize("ORDERSYNC_BENCH_ROUNDS", if benchmark { 2 } else { 1 })?;
    ensure!(open > 0 && rounds > 0, "open orders and rounds must be > 0");
    let work = support::work_dir("reconcile")?;
    let load_start = support::loadavg();
    let floor = launcher.rss_floor(work.path())?;

    println!("ordersync reconcile benchmark (benches/reconcile.rs)");
    if !benchmark {
        println!("smoke mode (run without --bench): {open} open orders, {rounds} round(s)");
    }
    println!(
        "machine    : {} cores, {}; load average at start {load_start}",
        support::cores(),
        support::cpu_model()
    );
    let total = open * 3;
    let spacing = chrono::Duration::seconds(SPACING_SECS);
    let start = Utc::now() - spacing * (i32::try_from(total)? + 10);
    let from = start - chrono::Duration::days(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim")
        .build()?;
    let horizon = chrono::Duration::days(30);

    // MerchantPro: the newest `open` orders open, the rest delivered.
    let mp = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
        orders: total,
        start,
        spacing,
        ..Default::default()
    });
    for (i, o) in mp.truth().iter().enumerate() {
        let is_open = matches!(
            o.shipping_status.as_str(),
            "awaiting" | "confirmed" | "in_process" | "shipped"
        );
        let want_open = i >= total - open;
        if want_open && !is_open {
            mp.set_status(o.id, "in_process");
        } else if !want_open && is_open {
            mp.set_status(o.id, "delivered");
        }
    }
    let mp_server = rt.block_on(mp.serve())?;
    // SIRCLO: likewise, open = pending/accepted/packed.
    let sc = sirclo::SircloSim::new(sirclo::SimOptions {
        orders: total,
        start,
        spacing,
        ..Default::default()
    });
    let placed_after = Utc::now() - horizon;
    let mut in_horizon = 0u64;
    for (i, o) in sc.truth().iter().enumerate() {
        let is_open = matches!(o.status.as_str(), "pending" | "accepted" | "packed");
        let want_open = i >= total - open;
        if want_open && !is_open {
            sc.set_status(o.id, "accepted");
        } else if !want_open && is_open {
            sc.set_status(o.id, "completed");
        }
        if start + spacing * i32::try_from(i)? >= placed_after {
            in_horizon += 1;
        }
    }
    let sc_server = rt.block_on(sc.serve())?;
    let extra = format!("page_size = {PAGE_SIZE}\nmax_requests_per_second = 100000\n");
    let (mp2, mp3, sc2, sc3) = (mp.clone(), mp.clone(), sc.clone(), sc.clone());
    let shops = vec![
        Shop {
            kind: "merchantpro",
            strategy: format!("by id, `ids=` batches of {PAGE_SIZE}"),
            name: "mp".into(),
            toml: support::platform_toml("mp", "merchantpro", &mp_server.base_url(), from, &extra),
            log: Box::new(move || mp2.requests()),
            request_count: Box::new(move || mp3.request_count()),
            expected_fetched: open as u64..=open as u64,
            expected_requests: Some(open.div_ceil(PAGE_SIZE)),
            _server: mp_server,
        },
        Shop {
            kind: "sirclo",
            strategy: "rescan of the 30-day reconcile_horizon".into(),
            name: "sc".into(),
            toml: support::platform_toml(
                "sc",
                "sirclo",
                &sc_server.base_url(),
                from,
                &format!("{extra}reconcile_horizon = \"30days\"\n"),
            ),
            log: Box::new(move || sc2.requests()),
            request_count: Box::new(move || sc3.request_count()),
            // The window ends at the pass's own "now": an order at its edge may fall either side.
            expected_fetched: in_horizon.saturating_sub(2)..=in_horizon + 2,
            expected_requests: None,
            _server: sc_server,
        },
    ];
    println!(
        "shops      : {total} orders each, placed {SPACING_SECS} s apart; the newest {open} open, the rest closed"
    );

    let mut failures = Vec::new();
    let mut results = Vec::new();
    for shop in &shops {
        let dir = work.path().join(shop.kind);
        let main_file = support::write_config(
            &dir,
            "",
            &[(format!("{}.toml", shop.name), shop.toml.clone())],
        )?;
        let db = dir.join("ordersync.db");
        let job = launcher.job(
            &support::daemon_bin(),
            support::daemon_args(&main_file, &["sync", "--no-reconcile"]),
            &dir,
            "first-sync",
        );
        let first = launcher.run(&job)?;
        if !first.exited_ok() {
            bail!(
                "{}: the first sync failed ({}):\n{}",
                shop.kind,
                first.describe_exit(),
                support::tail(&job.stderr, 15)
            );
        }
        let conn = Connection::open(&db)?;
        let stored_open = count(
            &conn,
            "SELECT count(*) FROM orders WHERE status NOT IN ('delivered','cancelled','returned','rejected')",
        )?;
        let stored = count(&conn, "SELECT count(*) FROM orders")?;
        drop(conn);
        if stored != total as i64 || stored_open != open as i64 {
            failures.push(format!(
                "{}: first sync stored {stored} orders ({stored_open} open), expected {total} ({open} open)",
                shop.kind
            ));
        }
        println!(
            "{:<11}: first sync of {total} orders in {:.2} s",
            shop.kind, first.wall_s
        );

        let mut runs = Vec::new();
        for round in 1..=rounds {
            let label = format!("{} reconcile #{round}", shop.kind);
            match measure_reconcile(&mut launcher, shop, &dir, &main_file, &db, round) {
                Ok(m) => {
                    check(&label, shop, &m, &mut failures);
                    runs.push(m);
                }
                Err(e) => failures.push(format!("{label}: {e:#}")),
            }
        }
        if let Some(best) = runs
            .iter()
            .min_by(|a, b| a.usage.wall_s.total_cmp(&b.usage.wall_s))
            .cloned()
        {
            results.push((shop, best));
        }
    }

    println!();
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>12} {:>8} {:>13} {:>7}",
        "kind", "requests", "re-read", "wall s", "open/s", "CPU s", "peak RSS MiB", "events"
    );
    for (shop, m) in &results {
        println!(
            "{:<12} {:>8} {:>9} {:>9.3} {:>12.0} {:>8.3} {:>13.1} {:>7}",
            shop.kind,
            m.requests,
            m.fetched,
            m.usage.wall_s,
            open as f64 / m.usage.wall_s,
            m.usage.cpu_s(),
            m.usage.rss_mib(),
            m.events_written
        );
    }
    let events_met = results.iter().all(|(_, m)| m.events_written == 0);
    println!(
        "events written: {} (target 0: {})",
        results.iter().map(|(_, m)| m.events_written).sum::<i64>(),
        met(events_met)
    );
    let verified = failures.is_empty() && results.len() == shops.len();
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
        "open_orders": open,
        "shop_orders": total,
        "rounds": rounds,
        "rss_floor_mib": round3(floor.rss_mib()),
        "kinds": results.iter().map(|(shop, m)| json!({
            "kind": shop.kind,
            "strategy": shop.strategy,
            "requests": m.requests,
            "pages": m.pages,
            "fetched": m.fetched,
            "wall_s": round3(m.usage.wall_s),
            "open_orders_per_s": round3(open as f64 / m.usage.wall_s),
            "cpu_s": round3(m.usage.cpu_s()),
            "peak_rss_mib": round3(m.usage.rss_mib()),
            "events_written": m.events_written,
        })).collect::<Vec<_>>(),
        "targets": { "events_written": 0, "events_met": events_met },
        "verified": verified,
        "failures": failures,
    });
    support::print_bench_json(&report);
    Ok(verified)
}

fn measure_reconcile(
    launcher: &mut Launcher,
    shop: &Shop,
    dir: &Path,
    main_file: &Path,
    db: &Path,
    round: usize,
) -> anyhow::Result<Measured> {
    let snapshot = |db: &Path| -> anyhow::Result<(i64, i64, i64)> {
        let conn = Connection::open(db)?;
        Ok((
            count(&conn, "SELECT coalesce(max(id), 0) FROM order_events")?,
            count(&conn, "SELECT count(*) FROM rejects")?,
            count(&conn, "SELECT coalesce(max(id), 0) FROM sync_runs")?,
        ))
    };
    let before = snapshot(db)?;
    let requests_before = (shop.request_count)();
    let exe = std::env::current_exe()?;
    let job = launcher.job(
        &exe,
        vec![
            "--reconcile".into(),
            main_file.to_string_lossy().into_owned(),
            shop.name.clone(),
        ],
        dir,
        &format!("reconcile-{round}"),
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
    let (kind, outcome, fetched, created, changed): (String, String, i64, i64, i64) = conn
        .query_row(
            "SELECT kind, outcome, fetched, created, changed FROM sync_runs WHERE id > ?1",
            [before.2],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .context("the pass recorded no run")?;
    ensure!(
        kind == "reconcile" && outcome == "ok" && created == 0 && changed == 0,
        "recorded run: {kind} {outcome}, created {created}, changed {changed}"
    );
    ensure!(
        after.1 == before.1,
        "{} rejects written",
        after.1 - before.1
    );
    let out = std::fs::read_to_string(&job.stdout)?;
    let pages = out
        .lines()
        .find_map(|l| l.strip_prefix("RECONCILE_RESULT "))
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .and_then(|v| v["pages"].as_u64())
        .context("no RECONCILE_RESULT line")?;
    Ok(Measured {
        usage,
        requests,
        fetched: u64::try_from(fetched)?,
        pages,
        events_written: after.0 - before.0,
    })
}

fn check(label: &str, shop: &Shop, m: &Measured, failures: &mut Vec<String>) {
    if !shop.expected_fetched.contains(&m.fetched) {
        failures.push(format!(
            "{label}: re-read {} orders, expected {:?}",
            m.fetched, shop.expected_fetched
        ));
    }
    if let Some(want) = shop.expected_requests
        && m.requests != want
    {
        failures.push(format!(
            "{label}: {} requests, expected {want} (one per batch)",
            m.requests
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
