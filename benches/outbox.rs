//! Outbox: 10,000 status transitions across the three kinds that push, queued and then sent by
//! `ordersync push`, against simulated shops on loopback.
//!
//! The split (a third each) and what each kind is asked:
//!
//! * **MerchantPro**: `confirmed` orders moved to `processing` (one `PATCH /api/v2/orders/{id}`
//!   per order);
//! * **SIRCLO**: `pending` orders moved to `accepted` (batched `PATCH /v1/order`);
//! * **Akinon**: pending orders cancelled (one reject request per order line).
//!
//! The shops (served by this process) are synced once with `ordersync sync --no-reconcile`;
//! the transitions are queued with the library's `outbox::enqueue` (what `ordersync transition`
//! calls; one process for 10,000 entries instead of 10,000 processes), and then `ordersync push`
//! runs in child processes, measured with `wait4` through the launcher (see `support`), until
//! nothing is due. One push drains at most 1,000 entries per platform, so 10,000 take several.
//!
//! Reported: transitions, pushes/s over the summed push wall time, requests each shop received
//! by method, push invocations, CPU seconds, peak RSS, and the queueing time. Verified: every
//! entry `done`, none failed, every request answered 2xx, and every shop's own state shows the
//! transition (MerchantPro `in_process`, SIRCLO `accepted`, Akinon every line rejected).
//!
//! ```text
//! cargo bench --bench outbox                                          # 10,000 transitions
//! ORDERSYNC_BENCH_TRANSITIONS=3000 cargo bench --bench outbox         # a quick trial
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_TRANSITIONS` (default 10000), `ORDERSYNC_BENCH_DIR`. Without
//! `--bench` (as `cargo test --benches` runs it) it is a smoke test of 150 transitions.

mod support;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use ordersync::model::Status;
use ordersync::outbox::{Action, Params};
use ordersync_sim::{RecordedRequest, akinon, merchantpro, sirclo};
use rusqlite::Connection;
use serde_json::json;
use support::{Launcher, Usage, count, round3};

const DEFAULT_TRANSITIONS: usize = 10_000;
const SMOKE_TRANSITIONS: usize = 150;
/// More `ordersync push` runs than this means the queue is not draining.
const MAX_PUSHES: usize = 40;

fn main() -> ExitCode {
    if let Some(code) = support::dispatch() {
        return code;
    }
    support::finish("outbox", orchestrate(support::benchmark_mode()))
}

fn orchestrate(benchmark: bool) -> anyhow::Result<bool> {
    let mut launcher = Launcher::start()?;
    let n = support::env_usize(
        "ORDERSYNC_BENCH_TRANSITIONS",
        if benchmark {
            DEFAULT_TRANSITIONS
        } else {
            SMOKE_TRANSITIONS
        },
    )?;
    ensure!(n >= 3, "ORDERSYNC_BENCH_TRANSITIONS must be at least 3");
    let work = support::work_dir("outbox")?;
    let dir = work.path().to_path_buf();
    let load_start = support::loadavg();
    let floor = launcher.rss_floor(&dir)?;
    println!("ordersync outbox benchmark (benches/outbox.rs)");
    if !benchmark {
        println!("smoke mode (run without --bench): {n} transitions");
    }
    println!(
        "machine    : {} cores, {}; load average at start {load_start}",
        support::cores(),
        support::cpu_model()
    );

    let (n_sc, n_ak) = (n / 3, n / 3);
    let n_mp = n - n_sc - n_ak;
    let spacing = chrono::Duration::seconds(90);
    let start = Utc::now() - spacing * (i32::try_from(n_mp.max(n_sc).max(n_ak))? + 10);
    let from = start - chrono::Duration::days(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim")
        .build()?;

    let mp = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
        orders: n_mp,
        start,
        spacing,
        ..Default::default()
    });
    for id in mp.order_ids() {
        mp.set_status(id, "confirmed");
    }
    let sc = sirclo::SircloSim::new(sirclo::SimOptions {
        orders: n_sc,
        start,
        spacing,
        ..Default::default()
    });
    for id in sc.order_ids() {
        sc.set_status(id, "pending");
    }
    let ak = akinon::AkinonSim::new(akinon::SimOptions {
        orders: n_ak,
        start,
        spacing,
        ..Default::default()
    });
    for id in ak.order_ids() {
        ak.set_status(&id, 100);
    }
    let rejected_status = akinon::SimOptions::default().rejected_status;
    let servers = rt.block_on(async {
        Ok::<_, std::io::Error>((mp.serve().await?, sc.serve().await?, ak.serve().await?))
    })?;
    let extra = "max_requests_per_second = 100000\n";
    let platforms = vec![
        (
            "mp.toml".to_owned(),
            support::platform_toml("mp", "merchantpro", &servers.0.base_url(), from, extra),
        ),
        (
            "sc.toml".to_owned(),
            support::platform_toml("sc", "sirclo", &servers.1.base_url(), from, extra),
        ),
        (
            "ak.toml".to_owned(),
            support::platform_toml("ak", "akinon", &servers.2.base_url(), from, extra),
        ),
    ];
    let main_file = support::write_config(&dir, "", &platforms)?;
    let db = dir.join("ordersync.db");
    println!(
        "shops      : merchantpro {n_mp} confirmed orders, sirclo {n_sc} pending, akinon {n_ak} pending ({} lines)",
        ak.truth().iter().map(|o| o.items.len()).sum::<usize>()
    );

    let job = launcher.job(
        &support::daemon_bin(),
        support::daemon_args(&main_file, &["sync", "--no-reconcile"]),
        &dir,
        "first-sync",
    );
    let first = launcher.run(&job)?;
    if !first.exited_ok() {
        bail!(
            "the first sync failed ({}):\n{}",
            first.describe_exit(),
            support::tail(&job.stderr, 15)
        );
    }
    println!("first sync : {} orders in {:.2} s", n, first.wall_s);

    // Queue: what `ordersync transition NAME ORDER STATUS` does, once per order.
    // Without the environment: the bench's own ORDERSYNC_BENCH_* knobs are no configuration.
    let config = ordersync::config::load_with_env(&main_file, ordersync::platforms::kinds(), &[])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let conn = Connection::open(&db)?;
    // The library's store, as `ordersync transition` opens it (synchronous=NORMAL, as every
    // connection of the daemon's).
    let store = ordersync::store::Store::open(&db)?;
    let queued_at = Instant::now();
    let targets: [(&str, Vec<String>, Status); 3] = [
        (
            "mp",
            mp.order_ids().iter().map(u64::to_string).collect(),
            Status::Processing,
        ),
        (
            "sc",
            sc.order_ids().iter().map(u64::to_string).collect(),
            Status::Accepted,
        ),
        ("ak", ak.order_ids(), Status::Cancelled),
    ];
    for (name, ids, to) in &targets {
        let cfg = config.platform(name).context("platform in config")?;
        for id in ids {
            rt.block_on(ordersync::outbox::enqueue(
                &store,
                cfg,
                id,
                Action::Status(*to),
                &Params::default(),
                ordersync::outbox::StateCheck::Enforce,
                Utc::now(),
            ))
            .with_context(|| format!("{name} order {id}: transition refused"))?;
        }
    }
    let queue_s = queued_at.elapsed().as_secs_f64();
    drop(store);
    let pending = count(&conn, "SELECT count(*) FROM outbox WHERE state = 'pending'")?;
    ensure!(
        pending == n as i64,
        "{pending} entries queued, expected {n}"
    );
    println!(
        "queued     : {n} transitions in {queue_s:.2} s (outbox::enqueue, one transaction each, synchronous=NORMAL)"
    );

    // Drain: `ordersync push` until nothing is pending.
    let before = [mp.request_count(), sc.request_count(), ak.request_count()];
    let mut usage = Usage::default();
    let mut pushes = 0;
    let mut failures = Vec::new();
    while count(
        &conn,
        "SELECT count(*) FROM outbox WHERE state IN ('pending', 'in_flight')",
    )? > 0
    {
        if pushes == MAX_PUSHES {
            failures.push(format!("still entries due after {MAX_PUSHES} pushes"));
            break;
        }
        pushes += 1;
        let job = launcher.job(
            &support::daemon_bin(),
            support::daemon_args(&main_file, &["push"]),
            &dir,
            &format!("push-{pushes}"),
        );
        let u = launcher.run(&job)?;
        println!(
            "push #{pushes:<3}: {:.3} s, {:.3} CPU s, peak RSS {:.1} MiB: {}",
            u.wall_s,
            u.cpu_s(),
            u.rss_mib(),
            std::fs::read_to_string(&job.stdout)
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or("")
        );
        if !u.exited_ok() {
            failures.push(format!(
                "push #{pushes}: {}; stderr ends with:\n{}",
                u.describe_exit(),
                support::tail(&job.stderr, 15)
            ));
            usage.add(&u);
            break;
        }
        usage.add(&u);
    }

    // Requests per shop and method, and any that was not answered 2xx.
    let logs: [(&str, Vec<RecordedRequest>, usize); 3] = [
        ("merchantpro", mp.requests(), mp.request_count()),
        ("sirclo", sc.requests(), sc.request_count()),
        ("akinon", ak.requests(), ak.request_count()),
    ];
    let mut requests = BTreeMap::new();
    let mut total_requests = 0;
    for ((kind, log, now), before) in logs.iter().zip(before) {
        let (k, bad) = support::requests_since(log, *now, before);
        if let Some(bad) = bad {
            failures.push(format!("{kind}: {bad}"));
        }
        let mut by_method: BTreeMap<String, usize> = BTreeMap::new();
        for r in &log[log.len().saturating_sub(k)..] {
            *by_method.entry(r.method.clone()).or_default() += 1;
        }
        total_requests += k;
        requests.insert(*kind, json!({"total": k, "by_method": by_method}));
    }

    // The outbox and the shops' own state.
    let done = count(&conn, "SELECT count(*) FROM outbox WHERE state = 'done'")?;
    let failed = count(&conn, "SELECT count(*) FROM outbox WHERE state = 'failed'")?;
    if done != n as i64 || failed != 0 {
        failures.push(format!("{done} entries done and {failed} failed of {n}"));
    }
    let mp_moved = mp
        .truth()
        .iter()
        .filter(|o| o.shipping_status == "in_process")
        .count();
    let sc_moved = sc.truth().iter().filter(|o| o.status == "accepted").count();
    let ak_moved = ak
        .truth()
        .iter()
        .filter(|o| o.items.iter().all(|i| i.status == rejected_status))
        .count();
    for (kind, moved, want) in [
        ("merchantpro", mp_moved, n_mp),
        ("sirclo", sc_moved, n_sc),
        ("akinon", ak_moved, n_ak),
    ] {
        if moved != want {
            failures.push(format!(
                "{kind}: the shop shows {moved} orders moved, expected {want}"
            ));
        }
    }
    drop(servers);

    let pushes_per_s = n as f64 / usage.wall_s;
    println!();
    println!(
        "{n} transitions pushed in {:.3} s by {pushes} `ordersync push` runs: {pushes_per_s:.0} pushes/s; {:.3} CPU s, peak RSS {:.1} MiB",
        usage.wall_s,
        usage.cpu_s(),
        usage.rss_mib()
    );
    println!("requests   : {total_requests} in all; {}", json!(requests));
    let verified = failures.is_empty();
    if verified {
        println!(
            "verification: ok ({n} entries done; the shops show {mp_moved} + {sc_moved} + {ak_moved} orders moved)"
        );
    } else {
        println!("verification: FAILED");
        for f in &failures {
            println!("  - {f}");
        }
        println!("kept for inspection: {}", work.keep().display());
    }
    let report = json!({
        "bench": "outbox",
        "mode": if benchmark { "bench" } else { "smoke" },
        "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": support::machine_json(&dir, &load_start),
        "transitions": n,
        "split": {"merchantpro": n_mp, "sirclo": n_sc, "akinon": n_ak},
        "queue_s": round3(queue_s),
        "push_runs": pushes,
        "wall_s": round3(usage.wall_s),
        "pushes_per_s": round3(pushes_per_s),
        "cpu_s": round3(usage.cpu_s()),
        "peak_rss_mib": round3(usage.rss_mib()),
        "rss_floor_mib": round3(floor.rss_mib()),
        "requests": requests,
        "requests_total": total_requests,
        "done": done,
        "failed": failed,
        "verified": verified,
        "failures": failures,
    });
    support::print_bench_json(&report);
    Ok(verified)
}
