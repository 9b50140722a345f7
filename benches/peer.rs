//! Side by side with a peer: the same 100,000-order MerchantPro shop synced into SQLite by
//! ordersync and by dlt's `rest_api` source (Python, `bench/dlt_peer.py`), in the same run,
//! against the same simulator instance.
//!
//! * **first run**: an empty database. ordersync: `ordersync sync --no-reconcile`. dlt: the
//!   `rest_api` source with the `json_link` paginator on `meta.links.next`, HTTP Basic auth,
//!   `write_disposition = "merge"` on primary key `id`, into dlt's sqlalchemy destination on a
//!   SQLite file (line items land in its child table).
//! * **rerun, nothing changed**: ordersync `sync --full --no-reconcile` (every order re-read);
//!   dlt the same pipeline once more (it has no cursor configured, so it re-reads and merges
//!   everything, as `--full` does). dlt's SQLite merge is slow: the rerun is bounded by
//!   `ORDERSYNC_BENCH_DLT_RERUN_TIMEOUT` (default 240 s) and reported as "> T s" if it hits it.
//!
//! Both sides start at the daemon's own first page, so they read the same pages. Every run is a
//! child process measured with `wait4` through the launcher (see `support`): wall time, CPU
//! seconds, peak RSS. Verified: every run exits 0, ordersync stores N orders and every item,
//! dlt's destination holds N orders and every line item, one request per page, all 200.
//! Reported: the ratios dlt/ordersync wall time (target ≥ 8 on the first run).
//!
//! dlt is installed from PyPI (versions pinned in `bench/requirements-dlt.txt`) into a venv,
//! `ORDERSYNC_BENCH_VENV` or `<target>/tmp/dlt-venv`, made once and reused. Where Python, its
//! venv module or PyPI is missing, the dlt side is skipped with a message and the report says
//! so. dlt's telemetry is switched off (`RUNTIME__DLTHUB_TELEMETRY=false`).
//!
//! ```text
//! cargo bench --bench peer                                  # 100,000 orders
//! ORDERSYNC_BENCH_ORDERS=20000 cargo bench --bench peer     # a quick trial
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_ORDERS` (default 100000), `ORDERSYNC_BENCH_PYTHON` (default
//! `python3`), `ORDERSYNC_BENCH_VENV`, `ORDERSYNC_BENCH_DLT_TIMEOUT` (first run, default 900 s),
//! `ORDERSYNC_BENCH_DLT_RERUN_TIMEOUT` (default 240 s), `ORDERSYNC_BENCH_DIR`. Without `--bench`
//! (as `cargo test --benches` runs it) it is a smoke test of the ordersync side on 500 orders;
//! dlt runs only with `--bench`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, ensure};
use chrono::Utc;
use ordersync_sim::merchantpro::{MerchantProSim, SimOptions};
use rusqlite::Connection;
use serde_json::{Value, json};
use support::{Job, Launcher, Usage, count, met, round3};

const DEFAULT_ORDERS: usize = 100_000;
const SMOKE_ORDERS: usize = 500;
const PAGE_SIZE: usize = 100;
const SPACING_SECS: i64 = 90;
const TARGET_FIRST_RATIO: f64 = 8.0;

fn main() -> ExitCode {
    if let Some(code) = support::dispatch() {
        return code;
    }
    support::finish("peer", orchestrate(support::benchmark_mode()))
}

struct Side {
    usage: Usage,
    requests: usize,
}

impl Side {
    fn json(&self, n: usize) -> Value {
        json!({
            "wall_s": round3(self.usage.wall_s),
            "orders_per_s": round3(n as f64 / self.usage.wall_s),
            "cpu_s": round3(self.usage.cpu_s()),
            "peak_rss_mib": round3(self.usage.rss_mib()),
            "requests": self.requests,
            "timed_out": self.usage.timed_out,
        })
    }
}

fn orchestrate(benchmark: bool) -> anyhow::Result<bool> {
    let mut launcher = Launcher::start()?;
    let n = support::env_usize(
        "ORDERSYNC_BENCH_ORDERS",
        if benchmark {
            DEFAULT_ORDERS
        } else {
            SMOKE_ORDERS
        },
    )?;
    ensure!(n > 0, "ORDERSYNC_BENCH_ORDERS must be at least 1");
    let first_timeout = support::env_f64("ORDERSYNC_BENCH_DLT_TIMEOUT", 900.0)?;
    let rerun_timeout = support::env_f64("ORDERSYNC_BENCH_DLT_RERUN_TIMEOUT", 240.0)?;
    let work = support::work_dir("peer")?;
    let dir = work.path().to_path_buf();
    let load_start = support::loadavg();
    println!("ordersync vs dlt benchmark (benches/peer.rs)");
    if !benchmark {
        println!("smoke mode (run without --bench): {n} orders, ordersync side only");
    }
    println!(
        "machine    : {} cores, {}; load average at start {load_start}",
        support::cores(),
        support::cpu_model()
    );

    // The Python side first: installing it is the slow, fallible part.
    let python = if benchmark {
        match prepare_venv() {
            Ok(p) => Ok(p),
            Err(e) => {
                println!("dlt        : SKIPPED: {e:#}");
                Err(format!("{e:#}"))
            }
        }
    } else {
        Err("smoke mode: the dlt peer runs only under `cargo bench`".to_owned())
    };

    let spacing = chrono::Duration::seconds(SPACING_SECS);
    let start = Utc::now() - spacing * (i32::try_from(n)? + 10);
    let backfill_from = start - chrono::Duration::days(2);
    let sim = MerchantProSim::new(SimOptions {
        orders: n,
        start,
        spacing,
        ..SimOptions::default()
    });
    let expected_items: i64 = sim.truth().iter().map(|t| t.line_items as i64).sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim")
        .build()?;
    let server = rt.block_on(sim.serve())?;
    let base_url = server.base_url();
    let pages = n.div_ceil(PAGE_SIZE).max(1);
    // The daemon's first page on an empty database (see benches/sync.rs).
    let first_path = format!(
        "/api/v2/orders?start=0&limit={PAGE_SIZE}&include=line_items&sort=date_created&created_after={}",
        (backfill_from - chrono::Duration::days(1)).format("%Y-%m-%d")
    );
    let main_file = support::write_config(
        &dir.join("ordersync"),
        "",
        &[(
            "shop.toml".into(),
            support::platform_toml(
                "shop",
                "merchantpro",
                &base_url,
                backfill_from,
                &format!("page_size = {PAGE_SIZE}\nmax_requests_per_second = 100000\n"),
            ),
        )],
    )?;
    println!(
        "shop       : {n} orders, {expected_items} line items, {pages} pages of {PAGE_SIZE} on {base_url}"
    );

    let mut failures = Vec::new();
    let measure = |launcher: &mut Launcher, job: &Job, label: &str, failures: &mut Vec<String>| {
        measure_run(launcher, job, label, &sim, pages, failures)
    };

    let daemon = support::daemon_bin();
    let job = launcher.job(
        &daemon,
        support::daemon_args(&main_file, &["sync", "--no-reconcile"]),
        &dir,
        "ordersync-first",
    );
    let os_first = measure(&mut launcher, &job, "ordersync first", &mut failures)?;
    let db = dir.join("ordersync").join("ordersync.db");
    {
        let conn = Connection::open(&db)?;
        let orders = count(&conn, "SELECT count(*) FROM orders")?;
        let items = count(&conn, "SELECT count(*) FROM order_items")?;
        if orders != n as i64 || items != expected_items {
            failures.push(format!(
                "ordersync stored {orders} orders and {items} items, expected {n} and {expected_items}"
            ));
        }
    }
    let job = launcher.job(
        &daemon,
        support::daemon_args(&main_file, &["sync", "--full", "--no-reconcile"]),
        &dir,
        "ordersync-rerun",
    );
    let events_before = count(&Connection::open(&db)?, "SELECT count(*) FROM order_events")?;
    let os_rerun = measure(&mut launcher, &job, "ordersync rerun", &mut failures)?;
    let events_after = count(&Connection::open(&db)?, "SELECT count(*) FROM order_events")?;
    if events_after != events_before {
        failures.push(format!(
            "the ordersync rerun wrote {} events; nothing changed",
            events_after - events_before
        ));
    }

    let creds = SimOptions::default();
    let mut dlt = None;
    let mut dlt_version = None;
    if let Ok(python) = &python {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/dlt_peer.py");
        let dlt_db = dir.join("dlt.db");
        let pipelines = dir.join("dlt-pipelines");
        let dlt_job = |launcher: &Launcher, name: &str, timeout: f64| {
            let mut job = launcher.job(
                python,
                vec![
                    script.to_string_lossy().into_owned(),
                    base_url.clone(),
                    first_path.clone(),
                    creds.api_key.clone(),
                    creds.api_secret.clone(),
                    dlt_db.to_string_lossy().into_owned(),
                    pipelines.to_string_lossy().into_owned(),
                ],
                &dir,
                name,
            );
            job.env = dlt_env(&dir);
            job.timeout_s = Some(timeout);
            job
        };
        let job = dlt_job(&launcher, "dlt-first", first_timeout);
        let first = measure(&mut launcher, &job, "dlt first", &mut failures)?;
        match dlt_result(&job.stdout) {
            Some(r) => {
                dlt_version = r["dlt_version"].as_str().map(str::to_owned);
                if r["orders"].as_i64() != Some(n as i64)
                    || r["line_items"].as_i64() != Some(expected_items)
                {
                    failures.push(format!(
                        "dlt stored {} orders and {} line items, expected {n} and {expected_items}",
                        r["orders"], r["line_items"]
                    ));
                }
            }
            None if first.usage.timed_out => {}
            None => failures.push("dlt first run: no DLT_RESULT line".into()),
        }
        // A rerun only makes sense on a finished first load.
        let rerun = if first.usage.exited_ok() {
            let job = dlt_job(&launcher, "dlt-rerun", rerun_timeout);
            let r = measure(&mut launcher, &job, "dlt rerun", &mut failures)?;
            if r.usage.exited_ok()
                && dlt_result(&job.stdout).and_then(|v| v["orders"].as_i64()) != Some(n as i64)
            {
                failures.push(format!(
                    "dlt rerun: the destination no longer holds {n} orders"
                ));
            }
            Some(r)
        } else {
            None
        };
        dlt = Some((first, rerun));
    }
    drop(server);

    // Ratios: how many times longer dlt took. A timed-out run gives a lower bound.
    let ratio = |d: &Side, o: &Side| d.usage.wall_s / o.usage.wall_s;
    let first_ratio = dlt.as_ref().map(|(f, _)| ratio(f, &os_first));
    let rerun_ratio = dlt
        .as_ref()
        .and_then(|(_, r)| r.as_ref())
        .map(|r| ratio(r, &os_rerun));
    let first_met = first_ratio.map(|r| r >= TARGET_FIRST_RATIO);
    println!();
    match (&dlt, first_ratio) {
        (Some((f, r)), Some(fr)) => {
            println!(
                "first run  : dlt {}{:.1} s vs ordersync {:.1} s: {}{fr:.1}x (target >= {TARGET_FIRST_RATIO}x: {})",
                if f.usage.timed_out { "> " } else { "" },
                f.usage.wall_s,
                os_first.usage.wall_s,
                if f.usage.timed_out { "> " } else { "" },
                met(fr >= TARGET_FIRST_RATIO)
            );
            match (r, rerun_ratio) {
                (Some(r), Some(rr)) => println!(
                    "rerun      : dlt {}{:.1} s vs ordersync {:.2} s: {}{rr:.1}x",
                    if r.usage.timed_out { "> " } else { "" },
                    r.usage.wall_s,
                    os_rerun.usage.wall_s,
                    if r.usage.timed_out { "> " } else { "" },
                ),
                _ => println!("rerun      : not run (the first dlt run did not finish)"),
            }
        }
        _ => println!(
            "dlt        : skipped ({})",
            python.as_ref().err().map_or("", String::as_str)
        ),
    }
    let verified = failures.is_empty();
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
        "bench": "peer",
        "mode": if benchmark { "bench" } else { "smoke" },
        "date": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "machine": support::machine_json(&dir, &load_start),
        "orders": n,
        "line_items": expected_items,
        "pages": pages,
        "ordersync": { "first": os_first.json(n), "rerun": os_rerun.json(n) },
        "dlt": dlt.as_ref().map(|(f, r)| json!({
            "version": dlt_version,
            "first": f.json(n),
            "rerun": r.as_ref().map(|r| r.json(n)),
            "first_timeout_s": first_timeout,
            "rerun_timeout_s": rerun_timeout,
        })),
        "dlt_skipped": python.as_ref().err(),
        "ratio_first": first_ratio.map(round3),
        "ratio_rerun": rerun_ratio.map(round3),
        "targets": { "ratio_first_min": TARGET_FIRST_RATIO, "ratio_first_met": first_met },
        "verified": verified,
        "failures": failures,
    });
    support::print_bench_json(&report);
    Ok(verified)
}

/// Runs one side through the launcher, with the simulator's requests around it.
fn measure_run(
    launcher: &mut Launcher,
    job: &Job,
    label: &str,
    sim: &MerchantProSim,
    pages: usize,
    failures: &mut Vec<String>,
) -> anyhow::Result<Side> {
    let before = sim.request_count();
    let usage = launcher.run(job)?;
    let (requests, bad) = support::requests_since(&sim.requests(), sim.request_count(), before);
    if let Some(bad) = bad {
        failures.push(format!("{label}: {bad}"));
    }
    if !usage.exited_ok() && !usage.timed_out {
        failures.push(format!(
            "{label}: {}; stderr ends with:\n{}",
            usage.describe_exit(),
            support::tail(&job.stderr, 20)
        ));
    } else if !usage.timed_out && requests != pages {
        failures.push(format!("{label}: {requests} requests, expected {pages}"));
    }
    println!(
        "{label:<18}: {}{:>9.3} s, {:>8.3} CPU s, peak RSS {:>7.1} MiB, {requests} requests",
        if usage.timed_out { ">" } else { " " },
        usage.wall_s,
        usage.cpu_s(),
        usage.rss_mib()
    );
    Ok(Side { usage, requests })
}

fn dlt_result(stdout: &Path) -> Option<Value> {
    std::fs::read_to_string(stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("DLT_RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
}

/// dlt keeps its configuration and telemetry off this machine's home folder and the network.
fn dlt_env(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("RUNTIME__DLTHUB_TELEMETRY".into(), "false".into()),
        (
            "DLT_DATA_DIR".into(),
            dir.join("dlt-data").to_string_lossy().into_owned(),
        ),
        (
            "DLT_PROJECT_DIR".into(),
            dir.join("dlt-project").to_string_lossy().into_owned(),
        ),
    ]
}

/// The venv's python with dlt installed; made (once) with `python3 -m venv` and `pip install
/// -r bench/requirements-dlt.txt`, and remade when the requirements change.
fn prepare_venv() -> anyhow::Result<PathBuf> {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/requirements-dlt.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = std::env::var_os("ORDERSYNC_BENCH_VENV").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("dlt-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin").join("python");
    let stamp = venv.join("ordersync-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        println!("dlt        : venv {} (reused)", venv.display());
        return Ok(python);
    }
    let system = std::env::var("ORDERSYNC_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    println!(
        "dlt        : making a venv in {} and installing bench/requirements-dlt.txt from PyPI…",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    run_quiet(
        Command::new(&system).args(["-m", "venv"]).arg(&venv),
        &format!("`{system} -m venv` failed (no Python 3 with venv here?)"),
    )?;
    run_quiet(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip could not install bench/requirements-dlt.txt (is PyPI reachable?)",
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn run_quiet(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| what.to_owned())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        anyhow::bail!(
            "{what}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}
