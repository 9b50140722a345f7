//! Writes `BENCHMARKS.md` from the results `bench/regenerate` collected: one `<bench>.json`
//! (the bench's `BENCH_JSON` line), `<bench>.status` (its exit status) and `<bench>.log` per
//! benchmark, and `run.env` (when and how the regeneration ran). The machine is described here,
//! at the end of the run: cores, CPU model, memory, filesystem of the work folder, load average
//! at the start and now, kernel, rustc, date and git commit.
//!
//! `cargo bench --bench report -- --results DIR --out FILE [--work DIR]`. Without `--bench` (as
//! `cargo test --benches` runs it) it is a smoke test: it renders an empty results folder and
//! checks that every benchmark is reported as not run rather than left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde_json::Value;

/// In the order BENCHMARKS.md shows them.
const BENCHES: [(&str, &str); 6] = [
    (
        "sync",
        "Full sync and no-change pass (100,000 MerchantPro orders)",
    ),
    ("reconcile", "Reconcile and verify of a two-year shop"),
    (
        "scale",
        "Scale: 300 platforms every minute, 3,000 every 5 minutes",
    ),
    ("outbox", "Outbox: 10,000 transitions"),
    ("sinks", "Sinks: delivering the change feed"),
    ("peer", "Side by side with dlt"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.iter().any(|a| a == "--bench") {
        run(&args)
    } else {
        smoke()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<PathBuf> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let results = arg(args, "--results").context("--results DIR is required")?;
    let out = arg(args, "--out").context("--out FILE is required")?;
    let work = arg(args, "--work").unwrap_or_else(|| results.clone());
    let md = render(&results, &work)?;
    std::fs::write(&out, md).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

fn smoke() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let md = render(dir.path(), dir.path())?;
    for (name, _) in BENCHES {
        if !md.contains(&format!("benches/{name}.rs")) || !md.contains("not run") {
            bail!("the report leaves out the {name} benchmark:\n{md}");
        }
    }
    for heading in ["## Machine", "## Summary", "## How to regenerate"] {
        if !md.contains(heading) {
            bail!("the report has no `{heading}`");
        }
    }
    println!("report smoke test: ok ({} bytes rendered)", md.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------

struct Results {
    json: BTreeMap<&'static str, Value>,
    status: BTreeMap<&'static str, String>,
    logs: BTreeMap<&'static str, String>,
    env: BTreeMap<String, String>,
}

fn load(results: &Path) -> Results {
    let mut r = Results {
        json: BTreeMap::new(),
        status: BTreeMap::new(),
        logs: BTreeMap::new(),
        env: BTreeMap::new(),
    };
    for (name, _) in BENCHES {
        if let Some(v) = std::fs::read_to_string(results.join(format!("{name}.json")))
            .ok()
            .and_then(|s| serde_json::from_str(s.trim()).ok())
        {
            r.json.insert(name, v);
        }
        if let Ok(s) = std::fs::read_to_string(results.join(format!("{name}.status"))) {
            r.status.insert(name, s.trim().to_owned());
        }
        if let Ok(s) = std::fs::read_to_string(results.join(format!("{name}.log"))) {
            r.logs.insert(name, s);
        }
    }
    if let Ok(s) = std::fs::read_to_string(results.join("run.env")) {
        for line in s.lines() {
            if let Some((k, v)) = line.split_once('=') {
                r.env.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    r
}

/// A number at a `/`-separated path.
fn num(v: &Value, path: &str) -> Option<f64> {
    let mut cur = v;
    for part in path.split('/') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(part)?,
        };
    }
    cur.as_f64()
}

fn fmt(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if decimals == 0 => thousands(x.round() as i64),
        Some(x) => format!("{x:.decimals$}"),
        None => "n/a".into(),
    }
}

fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "n/a",
    }
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn read_first(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    })
}

fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (dev, point, fstype) = (f.next()?, f.next()?, f.next()?);
                    Some((PathBuf::from(point), format!("{fstype} ({dev} on {point})")))
                })
                .filter(|(point, _)| dir.starts_with(point))
                .max_by_key(|(point, _)| point.components().count())
                .map(|(_, d)| d)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn render(results: &Path, work: &Path) -> anyhow::Result<String> {
    let r = load(results);
    let mut md = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let commit =
        command_line("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or("unknown".into());
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    writeln!(md, "# Benchmarks")?;
    writeln!(md)?;
    writeln!(
        md,
        "Generated by `bench/regenerate` on {date} from commit `{commit}`{}. Do not edit by hand: \
         run the command again (see the end). Every figure below comes from one fresh run of each \
         benchmark on the machine described; absolute times say little about another machine, \
         the ratios more.",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )?;
    // A subset run (ORDERSYNC_BENCH_ONLY) keeps the other sections' results from earlier runs.
    let this_run: Vec<&str> = r
        .env
        .get("benches")
        .map(|b| b.split_whitespace().collect())
        .unwrap_or_default();
    let earlier: Vec<String> = r
        .json
        .iter()
        .filter(|(name, _)| !this_run.is_empty() && !this_run.contains(name))
        .map(|(name, v)| format!("{name} ({})", v["date"].as_str().unwrap_or("date unknown")))
        .collect();
    if !earlier.is_empty() {
        writeln!(md)?;
        writeln!(
            md,
            "**Refreshed in part**: this run ran {} only; the other sections are from earlier \
             runs of `bench/regenerate` on the same machine: {}.",
            this_run.join(", "),
            earlier.join(", ")
        )?;
    }
    if let Some(note) = r.env.get("sizes").filter(|s| !s.is_empty()) {
        writeln!(md)?;
        writeln!(
            md,
            "**Reduced sizes**: this run overrode the issue's sizes with `{note}`; the targets are \
             stated for the full sizes."
        )?;
    }

    // The machine.
    writeln!(md)?;
    writeln!(md, "## Machine")?;
    writeln!(md)?;
    let mem_gib = read_first("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    let rows: Vec<(&str, String)> = vec![
        ("cores available", cores.to_string()),
        (
            "CPU",
            read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        ),
        ("memory", fmt(mem_gib, 1) + " GiB"),
        ("filesystem of the databases", filesystem_of(work)),
        (
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
        ),
        (
            "rustc",
            command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
        ),
        (
            "load average (1/5/15 min) at start",
            r.env
                .get("loadavg_start")
                .cloned()
                .unwrap_or("unknown".into()),
        ),
        (
            "load average at end",
            std::fs::read_to_string("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into()),
        ),
        ("date", date.clone()),
        (
            "git commit",
            format!("`{commit}`{}", if dirty { " + changes" } else { "" }),
        ),
        (
            "regeneration took",
            r.env
                .get("elapsed_s")
                .and_then(|s| s.parse::<f64>().ok())
                .map_or("unknown".into(), |s| format!("{:.1} min", s / 60.0)),
        ),
    ];
    writeln!(md, "| | |")?;
    writeln!(md, "|---|---|")?;
    for (k, v) in rows {
        writeln!(md, "| {k} | {v} |")?;
    }
    writeln!(md)?;
    writeln!(
        md,
        "The load average is the machine's, other work included: figures from a loaded machine \
         are lower bounds of what it can do. Each benchmark also records the load average around \
         its own runs (below)."
    )?;

    summary(&mut md, &r)?;
    sync_section(&mut md, &r)?;
    reconcile_section(&mut md, &r)?;
    scale_section(&mut md, &r)?;
    outbox_section(&mut md, &r)?;
    sinks_section(&mut md, &r)?;
    peer_section(&mut md, &r)?;

    writeln!(md)?;
    writeln!(md, "## How to regenerate")?;
    writeln!(md)?;
    writeln!(
        md,
        "```sh\nbench/regenerate            # every benchmark at the issue's sizes, then this file\n```\n\n\
         It needs the Rust toolchain and PostgreSQL's server programs (`initdb`, `pg_ctl`: the \
         sync benchmark starts a throw-away server); the dlt comparison also needs Python 3 with \
         `venv` and \
         access to PyPI (it installs `bench/requirements-dlt.txt` into a venv under `target/`, \
         once) and is skipped with a message otherwise. It builds in release mode, runs each \
         benchmark in turn (`cargo bench --bench NAME`), keeps every log in `target/bench-results/`, \
         and prints its run time; about 75 minutes on 2 cores, 42 of them the scale runs and 7 the sinks run. Run it \
         on an otherwise idle machine. Sizes can be reduced for a trial (the file then says so): \
         `ORDERSYNC_BENCH_ORDERS` (sync, peer, reconcile), `ORDERSYNC_BENCH_OPEN` (reconcile), \
         `ORDERSYNC_BENCH_TRANSITIONS` (outbox), `ORDERSYNC_BENCH_PLATFORMS` and \
         `ORDERSYNC_BENCH_SCALE_SECS` (scale, the minute run), `ORDERSYNC_BENCH_LARGE_PLATFORMS`, \
         `ORDERSYNC_BENCH_LARGE_PERIOD` and `ORDERSYNC_BENCH_LARGE_SECS` (scale, the large run), \
         `ORDERSYNC_BENCH_SINK_SECS` (sinks); `bench/regenerate --quick` sets small ones, and \
         `ORDERSYNC_BENCH_ONLY=\"scale\"` refreshes some sections and keeps the others. Each \
         benchmark's own doc comment (`benches/*.rs`) says exactly what it measures and verifies."
    )?;
    Ok(md)
}

fn not_run(md: &mut String, r: &Results, name: &str) -> anyhow::Result<()> {
    let status = r.status.get(name).map_or("it was not run", String::as_str);
    writeln!(md, "**not run or failed** ({status}).")?;
    if let Some(log) = r.logs.get(name) {
        let lines: Vec<&str> = log.lines().collect();
        writeln!(md, "\n```text")?;
        for l in &lines[lines.len().saturating_sub(15)..] {
            writeln!(md, "{l}")?;
        }
        writeln!(md, "```")?;
    }
    Ok(())
}

fn section_head(md: &mut String, r: &Results, name: &str) -> anyhow::Result<Option<Value>> {
    let title = BENCHES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, t)| t);
    writeln!(md)?;
    writeln!(md, "## {title}")?;
    writeln!(md)?;
    writeln!(md, "`benches/{name}.rs`, `cargo bench --bench {name}`.")?;
    writeln!(md)?;
    match r.json.get(name) {
        None => {
            not_run(md, r, name)?;
            Ok(None)
        }
        Some(v) => {
            let verified = v["verified"].as_bool().unwrap_or(false);
            let load = format!(
                "load average {} at its start, {} at its end",
                v["machine"]["loadavg_start"].as_str().unwrap_or("?"),
                v["machine"]["loadavg_end"].as_str().unwrap_or("?")
            );
            if verified {
                writeln!(md, "Verification: **ok** ({load}).")?;
            } else {
                writeln!(md, "Verification: **FAILED** ({load}):")?;
                let all: Vec<&Value> = v["failures"].as_array().into_iter().flatten().collect();
                for f in all.iter().take(10) {
                    writeln!(md, "- {}", f.as_str().unwrap_or("?").replace('\n', " "))?;
                }
                if all.len() > 10 {
                    writeln!(md, "- … and {} more (see the log)", all.len() - 10)?;
                }
            }
            writeln!(md)?;
            Ok(Some(v.clone()))
        }
    }
}

fn summary(md: &mut String, r: &Results) -> anyhow::Result<()> {
    writeln!(md)?;
    writeln!(md, "## Summary")?;
    writeln!(md)?;
    writeln!(md, "| benchmark | target | measured | |")?;
    writeln!(md, "|---|---|---|---|")?;
    let mut row = |b: &str, t: &str, m: String, ok: Option<bool>| {
        let _ = writeln!(md, "| {b} | {t} | {m} | {} |", verdict(ok));
    };
    let s = r.json.get("sync");
    let g = |v: Option<&Value>, p: &str| v.and_then(|v| num(v, p));
    let cores = s.and_then(|v| num(v, "machine/cores"));
    let daemon_ops = g(s, "daemon/orders_per_s");
    let n_sync = fmt(g(s, "orders"), 0);
    row(
        &format!("full sync, {n_sync} orders"),
        "≥ 15,000 orders/s on 2 cores",
        format!("{} orders/s on {} cores", fmt(daemon_ops, 0), fmt(cores, 0)),
        daemon_ops.map(|x| x >= 15_000.0),
    );
    row(
        "full sync vs the same run's bare loop",
        "≥ 0.75",
        fmt(g(s, "ratio"), 3),
        s.and_then(|v| v["targets"]["ratio_met"].as_bool()),
    );
    row(
        "full sync peak RSS",
        "< 64 MiB",
        format!("{} MiB", fmt(g(s, "daemon_peak_rss_mib"), 1)),
        s.and_then(|v| v["targets"]["rss_met"].as_bool()),
    );
    row(
        &format!("no-change pass (`sync --full`), {n_sync} orders"),
        "≥ 100,000 orders/s, 0 events",
        format!(
            "{} orders/s, {} requests, 0 events{}",
            fmt(g(s, "nochange/orders_per_s"), 0),
            fmt(g(s, "nochange/requests"), 0),
            if s.and_then(|v| v["verified"].as_bool()) == Some(true) {
                " (verified)"
            } else {
                ""
            }
        ),
        s.and_then(|v| v["targets"]["nochange_met"].as_bool()),
    );
    if s.is_some_and(|v| v.get("postgres").is_some_and(Value::is_object)) {
        row(
            &format!("full sync on PostgreSQL, {n_sync} orders, beside SQLite"),
            "measured",
            format!(
                "{} orders/s ({} of SQLite's); daemon {} MiB RSS, server {} MiB PSS",
                fmt(g(s, "postgres/orders_per_s"), 0),
                fmt(g(s, "postgres_over_daemon"), 2),
                fmt(g(s, "postgres_peak_rss_mib"), 1),
                fmt(g(s, "postgres/server_peak_pss_mib"), 1),
            ),
            None,
        );
    }
    let rc = r.json.get("reconcile");
    let n_rc = fmt(g(rc, "shop_orders"), 0);
    let open_rc = g(rc, "open_orders");
    row(
        &format!(
            "SIRCLO reconcile, {n_rc} orders, {} open over two years",
            fmt(open_rc, 0)
        ),
        "≤ one request per open order, never a scan of the whole history",
        format!(
            "{} requests for {} open orders",
            fmt(g(rc, "targets/sirclo_open_requests"), 0),
            fmt(open_rc, 0)
        ),
        rc.and_then(|v| v["targets"]["sirclo_met"].as_bool()),
    );
    for k in rc.and_then(|v| v["kinds"].as_array()).into_iter().flatten() {
        let fw = &k["passes"]["final_watch"];
        row(
            &format!(
                "reconcile pass with final_watch, {n_rc} orders, {}",
                k["kind"].as_str().unwrap_or("?")
            ),
            "0 events written",
            format!(
                "{} events, {} requests, {} s",
                fmt(num(fw, "events_written"), 0),
                fmt(num(fw, "requests"), 0),
                fmt(num(fw, "wall_s"), 2)
            ),
            num(fw, "events_written").map(|e| e == 0.0),
        );
    }
    for k in rc.and_then(|v| v["kinds"].as_array()).into_iter().flatten() {
        let v = &k["verify"];
        row(
            &format!(
                "`verify` of {n_rc} orders, {}",
                k["kind"].as_str().unwrap_or("?")
            ),
            "(none set) exit 0, no drift",
            format!(
                "{} requests, {} s",
                fmt(num(v, "requests"), 0),
                fmt(num(v, "wall_s"), 2)
            ),
            None,
        );
    }
    for sc in r
        .json
        .get("scale")
        .and_then(|v| v["runs"].as_array())
        .into_iter()
        .flatten()
    {
        let sc = Some(sc);
        let every = match g(sc, "period_s") {
            Some(60.0) => "every minute".to_owned(),
            Some(p) if p > 60.0 && p % 60.0 == 0.0 => format!("every {} minutes", p / 60.0),
            p => format!("every {} s", fmt(p, 0)),
        };
        row(
            &format!("scale, {} platforms {every}", fmt(g(sc, "platforms"), 0)),
            "no skipped runs",
            format!(
                "{} skipped, {} missing of {} runs",
                fmt(g(sc, "skipped_logged"), 0),
                fmt(g(sc, "missing_runs"), 0),
                fmt(g(sc, "runs"), 0)
            ),
            sc.and_then(|v| v["targets"]["skipped_met"].as_bool()),
        );
        row(
            &format!(
                "scale, {} platforms: RSS over time",
                fmt(g(sc, "platforms"), 0)
            ),
            "flat (slope within ±0.5 MiB/min)",
            format!(
                "{} MiB/min; CPU {}% of one core",
                fmt(g(sc, "rss_slope_mib_per_min"), 3),
                fmt(g(sc, "cpu_share").map(|c| c * 100.0), 1)
            ),
            sc.and_then(|v| v["targets"]["flat_met"].as_bool()),
        );
        if sc.and_then(|v| v["name"].as_str()) == Some("large") {
            row(
                &format!("scale, {} platforms: peak RSS", fmt(g(sc, "platforms"), 0)),
                "< 256 MiB",
                format!("{} MiB", fmt(g(sc, "rss_mib/max"), 1)),
                sc.and_then(|v| v["targets"]["rss_under_cap"].as_bool()),
            );
        }
    }
    if let Some(k) = r
        .json
        .get("scale")
        .and_then(|v| v["idle_kib_per_platform"].as_f64())
    {
        row(
            "scale, RSS per idle platform",
            "(none set)",
            format!("{k:.1} KiB"),
            None,
        );
    }
    let ob = r.json.get("outbox");
    row(
        &format!("outbox, {} transitions", fmt(g(ob, "transitions"), 0)),
        "(none set)",
        format!(
            "{} pushes/s, {} requests",
            fmt(g(ob, "pushes_per_s"), 0),
            fmt(g(ob, "requests_total"), 0)
        ),
        None,
    );
    let sk = r.json.get("sinks");
    for (to, key) in [("webhook", "webhook"), ("JetStream", "jetstream")] {
        row(
            &format!(
                "sinks, drain of {} events to {to}",
                fmt(g(sk, "drain/events"), 0)
            ),
            "≥ 5,000 events/s",
            match g(sk, &format!("drain/{key}/events_per_s")) {
                Some(x) => format!("{x:.0} events/s"),
                None => sk
                    .and_then(|v| v["drain"]["jetstream_skipped"].as_str())
                    .map_or("n/a".into(), |s| format!("skipped: {s}")),
            },
            sk.and_then(|v| v["targets"][format!("{key}_rate_met")].as_bool()),
        );
        row(
            &format!(
                "sinks, lag to {to} while {} platforms sync every minute",
                fmt(g(sk, "lag/platforms"), 0)
            ),
            "p99 < 2 s",
            format!(
                "median {} s, p99 {} s",
                fmt(g(sk, &format!("lag/{key}/median_s")), 3),
                fmt(g(sk, &format!("lag/{key}/p99_s")), 3)
            ),
            sk.and_then(|v| v["targets"][format!("{key}_p99_met")].as_bool()),
        );
    }
    let p = r.json.get("peer");
    let dlt_timed_out = p.and_then(|v| v["dlt"]["first"]["timed_out"].as_bool()) == Some(true);
    row(
        &format!(
            "dlt `rest_api` → SQLite vs ordersync, first run, {} orders",
            fmt(g(p, "orders"), 0)
        ),
        "≥ 8× (dlt time / ordersync time)",
        match p.and_then(|v| num(v, "ratio_first")) {
            Some(x) => format!("{}{x:.1}×", if dlt_timed_out { "> " } else { "" }),
            None => p
                .and_then(|v| v["dlt_skipped"].as_str())
                .map_or("n/a".into(), |s| format!("skipped: {s}")),
        },
        p.and_then(|v| v["targets"]["ratio_first_met"].as_bool()),
    );
    writeln!(md)?;
    let verified: Vec<String> = BENCHES
        .iter()
        .map(|(n, _)| {
            let v = r.json.get(n).and_then(|v| v["verified"].as_bool());
            format!(
                "{n} {}",
                match v {
                    Some(true) => "ok",
                    Some(false) => "FAILED",
                    None => "not run",
                }
            )
        })
        .collect();
    writeln!(md, "Verification of every run: {}.", verified.join(", "))?;
    Ok(())
}

fn sync_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "sync")? else {
        return Ok(());
    };
    // Results from before the rest (or postgres) run have none of its fields.
    let has_rest = v.get("rest").is_some_and(Value::is_object);
    let has_pg = v.get("postgres").is_some_and(Value::is_object);
    writeln!(
        md,
        "{} orders ({} line items, {} bytes of JSON per order, {} pages of {}) served by a \
         simulated MerchantPro shop on loopback. **bare**: a plain loop (reqwest, the daemon's \
         parser and mapping, one SQLite transaction per page, one thread), the floor the daemon \
         is compared with. **daemon**: `ordersync sync --no-reconcile` into an empty database. \
         {}{}**nochange**: `ordersync sync --full --no-reconcile` on the daemon's database: every \
         order re-read, nothing changed. Best of {} round(s) by wall time; each run is a child \
         process measured with `wait4` (CPU = user + system; peak RSS, a do-nothing child \
         measures {} MiB). *sim CPU* is the simulator's, in the bench process.",
        fmt(num(&v, "orders"), 0),
        fmt(num(&v, "line_items"), 0),
        fmt(num(&v, "json_bytes_per_order"), 0),
        fmt(num(&v, "pages"), 0),
        fmt(num(&v, "page_size"), 0),
        if has_rest {
            format!(
                "**rest**: the same, the shop described as a `rest` platform (`{}` with the \
                 daemon run's address, start, page size, rate and credentials), its orders and \
                 items verified equal to the daemon run's row for row (all but the platform's \
                 name and the store's bookkeeping times); daemon and rest alternate going first. ",
                v["rest_description"]
                    .as_str()
                    .unwrap_or("config/platforms.d/merchantpro-rest-example.toml")
            )
        } else {
            String::new()
        },
        if has_pg {
            "**postgres**: the daemon run again, its store a PostgreSQL database on a server the \
             bench starts on loopback (PostgreSQL's defaults but `synchronous_commit = off`, the \
             durability of the SQLite store's WAL with `synchronous = NORMAL`), verified equal to \
             the daemon run's store row for row; *server CPU* is the server's processes' (exited \
             backends included) and *server PSS* their peak proportional set size (shared \
             buffers counted once), sampled every 100 ms. "
        } else {
            ""
        },
        fmt(num(&v, "rounds"), 0),
        fmt(num(&v, "rss_floor_mib"), 1),
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| run | wall s | orders/s | CPU s | peak RSS MiB | sim CPU s | requests | server CPU s | server PSS MiB |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for k in ["bare", "daemon", "rest", "postgres", "nochange"] {
        if k == "rest" && !has_rest || k == "postgres" && !has_pg {
            continue;
        }
        let x = &v[k];
        writeln!(
            md,
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(num(x, "wall_s"), 3),
            fmt(num(x, "orders_per_s"), 0),
            fmt(num(x, "cpu_s"), 3),
            fmt(num(x, "peak_rss_mib"), 1),
            fmt(num(x, "sim_cpu_s"), 3),
            fmt(num(x, "requests"), 0),
            fmt(num(x, "server_cpu_s"), 3),
            fmt(num(x, "server_peak_pss_mib"), 1),
        )?;
    }
    writeln!(md)?;
    writeln!(md, "| ratio | value | target | |")?;
    writeln!(md, "|---|---:|---|---|")?;
    writeln!(
        md,
        "| daemon / bare orders/s | {} | ≥ 0.75 | {} |",
        fmt(num(&v, "ratio"), 3),
        verdict(v["targets"]["ratio_met"].as_bool())
    )?;
    if has_rest {
        writeln!(
            md,
            "| rest / daemon orders/s | {} | ≥ {} | {} |",
            fmt(num(&v, "rest_over_daemon"), 3),
            fmt(num(&v, "targets/rest_ratio_min"), 1),
            verdict(v["targets"]["rest_ratio_met"].as_bool())
        )?;
    }
    if has_pg {
        writeln!(
            md,
            "| postgres / daemon (SQLite) orders/s | {} | | |",
            fmt(num(&v, "postgres_over_daemon"), 3)
        )?;
        writeln!(
            md,
            "| postgres CPU s, daemon + server, / daemon (SQLite) CPU s | {} | | |",
            fmt(
                num(&v, "postgres/cpu_s")
                    .zip(num(&v, "postgres/server_cpu_s"))
                    .zip(num(&v, "daemon/cpu_s"))
                    .map(|((d, s), q)| (d + s) / q),
                2
            )
        )?;
    }
    writeln!(
        md,
        "| nochange / daemon orders/s | {} | | |",
        fmt(num(&v, "nochange_over_daemon"), 2)
    )?;
    writeln!(
        md,
        "| daemon CPU s / wall s | {} | | |",
        fmt(
            num(&v, "daemon/cpu_s")
                .zip(num(&v, "daemon/wall_s"))
                .map(|(c, w)| c / w),
            2
        )
    )?;
    writeln!(
        md,
        "| daemon peak RSS | {} MiB | < 64 MiB | {} |",
        fmt(num(&v, "daemon_peak_rss_mib"), 1),
        verdict(v["targets"]["rss_met"].as_bool())
    )?;
    writeln!(
        md,
        "| no-change pass | {} orders/s | ≥ 100,000 orders/s | {} |",
        fmt(num(&v, "nochange/orders_per_s"), 0),
        verdict(v["targets"]["nochange_met"].as_bool())
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "The no-change pass made {} requests (one per page) and wrote 0 events (verified: no \
         event, no item, every order's `last_seen_at` moved, one recorded run that fetched all and \
         changed nothing).",
        fmt(num(&v, "nochange/requests"), 0)
    )?;
    Ok(())
}

fn reconcile_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "reconcile")? else {
        return Ok(());
    };
    let open = fmt(num(&v, "open_orders"), 0);
    writeln!(
        md,
        "One shop per kind of {} orders placed evenly over {} days ending {} days ago: {open} open \
         orders spread over those two years, {} final orders (also spread) that became final \
         just before the first sync, so inside `final_watch`, the rest final and old. Mitrabunso's \
         simulator cannot move an old order's `SENT` time, so its finals inside `final_watch` are \
         orders placed and sent 15 days ago; Akinon's and Epixel's shops keep their simulators' \
         status mix, since they reconcile nothing. Each shop is synced once (`sync \
         --no-reconcile`); then one reconcile pass (the daemon's `Platform::run_pass(Reconcile)`, \
         as its reconcile job runs it) in a measured child process, best of {} round(s): \
         **open** with `final_watch = \"0s\"` (only the open orders are watched) and \
         **final_watch** with the default 30 days. Nothing changed on the platforms, so nothing \
         may be written. *watched* is what the pass should look at (Mitrabunso: the `SENT` \
         orders inside `final_watch`, at most 200 a pass).",
        fmt(num(&v, "shop_orders"), 0),
        fmt(num(&v, "span_days"), 0),
        fmt(num(&v, "quiet_days"), 0),
        fmt(num(&v, "final_watch_orders"), 0),
        fmt(num(&v, "rounds"), 0),
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| kind | how | pass | watched | requests | orders re-read | wall s | CPU s | peak RSS MiB | events written |"
    )?;
    writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for k in v["kinds"].as_array().into_iter().flatten() {
        for pass in ["open", "final_watch"] {
            let p = &k["passes"][pass];
            writeln!(
                md,
                "| {} | {} | {pass} | {} | {} | {} | {} | {} | {} | {} |",
                k["kind"].as_str().unwrap_or("?"),
                k["strategy"].as_str().unwrap_or("?"),
                fmt(num(p, "watched"), 0),
                fmt(num(p, "requests"), 0),
                fmt(num(p, "fetched"), 0),
                fmt(num(p, "wall_s"), 3),
                fmt(num(p, "cpu_s"), 3),
                fmt(num(p, "peak_rss_mib"), 1),
                fmt(num(p, "events_written"), 0),
            )?;
        }
    }
    writeln!(md)?;
    writeln!(
        md,
        "Target: SIRCLO's open pass makes at most one request per open order ({open}) and never \
         scans the whole history: {} requests, **{}**.",
        fmt(num(&v, "targets/sirclo_open_requests"), 0),
        verdict(v["targets"]["sirclo_met"].as_bool())
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "`ordersync verify --json` of the same shops after the passes: it reads every listed \
         order and compares it with the store. Verified: exit 0, every order listed, none \
         missing, changed or extra, nothing written."
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| kind | requests | orders listed | wall s | orders/s | CPU s | peak RSS MiB |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    for k in v["kinds"].as_array().into_iter().flatten() {
        let x = &k["verify"];
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            k["kind"].as_str().unwrap_or("?"),
            fmt(num(x, "requests"), 0),
            fmt(num(x, "listed"), 0),
            fmt(num(x, "wall_s"), 3),
            fmt(num(x, "orders_per_s"), 0),
            fmt(num(x, "cpu_s"), 3),
            fmt(num(x, "peak_rss_mib"), 1),
        )?;
    }
    Ok(())
}

fn scale_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "scale")? else {
        return Ok(());
    };
    for run in v["runs"].as_array().into_iter().flatten() {
        let title = match run["name"].as_str() {
            Some("large") => "The large run",
            Some("minute") => "The minute run",
            _ => "A run",
        };
        writeln!(md)?;
        writeln!(md, "### {title}")?;
        writeln!(md)?;
        scale_run(md, run)?;
    }
    if let Some(k) = v["idle_kib_per_platform"].as_f64() {
        writeln!(
            md,
            "\n**RSS per idle platform: {k:.1} KiB**: the two runs' RSS between scheduled runs \
             (the lowest sample of the steady state), their difference over the difference in \
             platforms."
        )?;
    }
    Ok(())
}

fn scale_run(md: &mut String, v: &Value) -> anyhow::Result<()> {
    writeln!(
        md,
        "`ordersync run` as a child process with {} platform files ({} of each of the five kinds), \
         each scheduled `{}` with reconcile off, for {} s; one simulator per kind ({} orders at \
         the start, one new order every 10 s) shared by that kind's platforms. The daemon's RSS \
         and CPU time are sampled from `/proc` every 5 s; runs are counted from `sync_runs`, \
         skips from the daemon's `skipped:` log lines, and ticks that produced no run are \
         counted too. The daemon's start-up catch-up run backfills every platform; the steady \
         state is from half a period after the first tick.",
        fmt(num(v, "platforms"), 0),
        fmt(num(v, "per_kind"), 0),
        v["schedule"].as_str().unwrap_or("?"),
        fmt(num(v, "duration_s"), 0),
        fmt(num(v, "shop_orders"), 0),
    )?;
    writeln!(md)?;
    writeln!(md, "| | value | target | |")?;
    writeln!(md, "|---|---:|---|---|")?;
    let ticks = match (num(v, "ticks_min"), num(v, "ticks_max")) {
        (Some(a), Some(b)) if a != b => format!("{a:.0}–{b:.0}"),
        (a, _) => fmt(a, 0),
    };
    writeln!(
        md,
        "| scheduled ticks per platform (plus one start-up run each) | {ticks} | | |"
    )?;
    writeln!(
        md,
        "| sync runs started / finished ok | {} / {} | | |",
        fmt(num(v, "runs"), 0),
        fmt(num(v, "runs_ok"), 0)
    )?;
    writeln!(
        md,
        "| skipped runs (logged) / ticks without a run | {} / {} | 0 | {} |",
        fmt(num(v, "skipped_logged"), 0),
        fmt(num(v, "missing_runs"), 0),
        verdict(v["targets"]["skipped_met"].as_bool())
    )?;
    writeln!(
        md,
        "| run time, mean / slowest | {} s / {} s | < {} s | {} |",
        fmt(num(v, "mean_run_s"), 2),
        fmt(num(v, "slowest_run_s"), 2),
        fmt(num(v, "period_s"), 0),
        verdict(num(v, "slowest_run_s").map(|s| s < num(v, "period_s").unwrap_or(60.0)))
    )?;
    writeln!(
        md,
        "| CPU share of one core, whole run / steady state | {}% / {}% | | |",
        fmt(num(v, "cpu_share").map(|c| c * 100.0), 1),
        fmt(num(v, "steady_cpu_share").map(|c| c * 100.0), 1)
    )?;
    writeln!(
        md,
        "| RSS MiB at start / after the backfill / middle / end (max) | {} / {} / {} / {} ({}) | | |",
        fmt(num(v, "rss_mib/start"), 1),
        fmt(num(v, "rss_mib/after_backfill"), 1),
        fmt(num(v, "rss_mib/middle"), 1),
        fmt(num(v, "rss_mib/end"), 1),
        fmt(num(v, "rss_mib/max"), 1)
    )?;
    writeln!(
        md,
        "| RSS MiB between scheduled runs (steady state's lowest) | {} | | |",
        fmt(num(v, "rss_mib/steady_min"), 1)
    )?;
    if v["name"].as_str() == Some("large") {
        writeln!(
            md,
            "| peak RSS | {} MiB | < 256 MiB | {} |",
            fmt(num(v, "rss_mib/max"), 1),
            verdict(v["targets"]["rss_under_cap"].as_bool())
        )?;
    }
    writeln!(
        md,
        "| RSS slope over the steady state | {} MiB/min | within ±0.5 | {} |",
        fmt(num(v, "rss_slope_mib_per_min"), 3),
        verdict(v["targets"]["flat_met"].as_bool())
    )?;
    writeln!(
        md,
        "| orders / events stored at the end | {} / {} | | |",
        fmt(num(v, "stored_orders"), 0),
        fmt(num(v, "events"), 0)
    )?;
    writeln!(
        md,
        "| ERROR lines in the daemon's log | {} | | |",
        fmt(num(v, "error_log_lines"), 0)
    )?;
    if let Some(m) = v["metrics"].as_object() {
        let s: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            md,
            "| `/metrics` `ordersync_runs_total` | {} | | |",
            s.join(", ")
        )?;
    }
    let errors: Vec<&str> = v["error_log_sample"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !errors.is_empty() {
        writeln!(md, "\nThe daemon's first ERROR lines:\n\n```text")?;
        for l in errors {
            writeln!(md, "{l}")?;
        }
        writeln!(md, "```")?;
    }
    // The timeline: one row per period.
    let samples: Vec<(f64, f64, f64)> = v["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s[0].as_f64()?, s[1].as_f64()?, s[2].as_f64()?)))
        .collect();
    let period = num(v, "period_s").unwrap_or(60.0);
    if samples.len() > 2 {
        writeln!(md)?;
        writeln!(md, "| t (s) | RSS MiB | CPU share since the previous row |")?;
        writeln!(md, "|---:|---:|---:|")?;
        let mut prev = samples[0];
        writeln!(md, "| {:.0} | {:.1} | |", prev.0, prev.1)?;
        for s in &samples[1..] {
            if s.0 - prev.0 >= period * 0.99 || s == samples.last().unwrap_or(s) {
                let share = (s.2 - prev.2) / (s.0 - prev.0);
                writeln!(md, "| {:.0} | {:.1} | {:.1}% |", s.0, s.1, share * 100.0)?;
                prev = *s;
            }
        }
    }
    Ok(())
}

fn outbox_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "outbox")? else {
        return Ok(());
    };
    writeln!(
        md,
        "{} transitions queued with the library's `outbox::enqueue` (what `ordersync transition` \
         calls) in {} s, then sent by {} `ordersync push` runs (each drains at most 1,000 entries \
         per platform) measured as child processes: MerchantPro {} orders `confirmed` → \
         `processing` (one PATCH each), SIRCLO {} `pending` → `accepted` (batched PATCH), Akinon \
         {} pending orders cancelled (one reject per line). Verified: every entry `done`, and each \
         shop's own state shows every transition.",
        fmt(num(&v, "transitions"), 0),
        fmt(num(&v, "queue_s"), 2),
        fmt(num(&v, "push_runs"), 0),
        fmt(num(&v, "split/merchantpro"), 0),
        fmt(num(&v, "split/sirclo"), 0),
        fmt(num(&v, "split/akinon"), 0),
    )?;
    writeln!(md)?;
    writeln!(md, "| | value |")?;
    writeln!(md, "|---|---:|")?;
    writeln!(
        md,
        "| push wall time (summed) | {} s |",
        fmt(num(&v, "wall_s"), 3)
    )?;
    writeln!(md, "| pushes/s | {} |", fmt(num(&v, "pushes_per_s"), 0))?;
    writeln!(
        md,
        "| CPU s (CPU s per 1,000 pushes) | {} ({}) |",
        fmt(num(&v, "cpu_s"), 3),
        fmt(
            num(&v, "cpu_s")
                .zip(num(&v, "transitions"))
                .map(|(c, n)| c / n * 1000.0),
            3
        )
    )?;
    writeln!(md, "| peak RSS | {} MiB |", fmt(num(&v, "peak_rss_mib"), 1))?;
    writeln!(
        md,
        "| requests in all (per transition) | {} ({}) |",
        fmt(num(&v, "requests_total"), 0),
        fmt(
            num(&v, "requests_total")
                .zip(num(&v, "transitions"))
                .map(|(a, b)| a / b),
            2
        )
    )?;
    if let Some(reqs) = v["requests"].as_object() {
        for (kind, x) in reqs {
            let by: Vec<String> = x["by_method"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, n)| format!("{m} {n}"))
                .collect();
            writeln!(
                md,
                "| requests to {kind} | {} ({}) |",
                fmt(num(x, "total"), 0),
                by.join(", ")
            )?;
        }
    }
    Ok(())
}

fn sinks_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "sinks")? else {
        return Ok(());
    };
    writeln!(
        md,
        "**Backlog drain.** A MerchantPro shop of {} orders synced once (one `created` event \
         each), the platform then disabled, and the daemon started with one sink from the start \
         of the feed: a webhook to a receiver on loopback that checks every signature with the \
         `standardwebhooks` crate, then (second run) a JetStream stream on a local `nats-server`. \
         Rate: messages over the time from the receiver's first message to its last. Verified: \
         every event arrived, the stream holds each once, no bad signature.",
        fmt(num(&v, "drain/events"), 0)
    )?;
    writeln!(md)?;
    writeln!(md, "| | webhook | JetStream |")?;
    writeln!(md, "|---|---:|---:|")?;
    writeln!(
        md,
        "| events/s | {} | {} |",
        fmt(num(&v, "drain/webhook/events_per_s"), 0),
        fmt(num(&v, "drain/jetstream/events_per_s"), 0)
    )?;
    writeln!(
        md,
        "| daemon start → cursor at the newest event | {} s | {} s |",
        fmt(num(&v, "drain/webhook/wall_s"), 2),
        fmt(num(&v, "drain/jetstream/wall_s"), 2)
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "**Delivery lag while syncing.** {} platforms (a fifth of each kind) scheduled every {} s \
         for {} s, every shop taking a new order and moving one along six times a period, both \
         sinks at once; {} events in all. Lag: from the event's `observed_at` (written in the \
         transaction that commits it) to its arrival at the webhook receiver, or at a core \
         subscriber of the stream's subjects; the steady state leaves out the first {} s (the \
         backfill).",
        fmt(num(&v, "lag/platforms"), 0),
        fmt(num(&v, "lag/period_s"), 0),
        fmt(num(&v, "lag/secs"), 0),
        fmt(num(&v, "lag/events"), 0),
        fmt(num(&v, "lag/steady_after_s"), 0),
    )?;
    writeln!(md)?;
    writeln!(md, "| steady state | webhook | JetStream |")?;
    writeln!(md, "|---|---:|---:|")?;
    for (label, key, d) in [
        ("events", "events", 0),
        ("median lag", "median_s", 3),
        ("p99 lag", "p99_s", 3),
        ("max lag", "max_s", 3),
    ] {
        let unit = if d > 0 { " s" } else { "" };
        writeln!(
            md,
            "| {label} | {}{unit} | {}{unit} |",
            fmt(num(&v, &format!("lag/webhook/{key}")), d),
            fmt(num(&v, &format!("lag/jetstream/{key}")), d)
        )?;
    }
    Ok(())
}

fn peer_section(md: &mut String, r: &Results) -> anyhow::Result<()> {
    let Some(v) = section_head(md, r, "peer")? else {
        return Ok(());
    };
    writeln!(
        md,
        "The same {} MerchantPro orders ({} pages), the same simulator instance, in the same run. \
         ordersync: `sync --no-reconcile`, then `sync --full --no-reconcile`. dlt{}: \
         `bench/dlt_peer.py`, the `rest_api` source (json_link paginator on `meta.links.next`, \
         HTTP Basic auth, `write_disposition=\"merge\"` on `id`) into its sqlalchemy destination \
         on SQLite, then the same pipeline again (no cursor configured, so it re-reads and merges \
         everything, like `--full`). Each run is a child process measured with `wait4`; a run cut \
         off at its time limit shows as \"> T\".",
        fmt(num(&v, "orders"), 0),
        fmt(num(&v, "pages"), 0),
        v["dlt"]["version"]
            .as_str()
            .map_or(String::new(), |s| format!(" {s}")),
    )?;
    writeln!(md)?;
    if let Some(reason) = v["dlt_skipped"].as_str() {
        writeln!(md, "**dlt skipped**: {reason}")?;
        writeln!(md)?;
    }
    writeln!(
        md,
        "| run | wall s | orders/s | CPU s | peak RSS MiB | requests |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let line = |md: &mut String, label: &str, x: &Value| -> anyhow::Result<()> {
        if x.is_null() {
            writeln!(md, "| {label} | not run | | | | |")?;
            return Ok(());
        }
        let gt = if x["timed_out"].as_bool() == Some(true) {
            "> "
        } else {
            ""
        };
        writeln!(
            md,
            "| {label} | {gt}{} | {} | {} | {} | {} |",
            fmt(num(x, "wall_s"), 3),
            if gt.is_empty() {
                fmt(num(x, "orders_per_s"), 0)
            } else {
                "—".into()
            },
            fmt(num(x, "cpu_s"), 3),
            fmt(num(x, "peak_rss_mib"), 1),
            fmt(num(x, "requests"), 0),
        )?;
        Ok(())
    };
    line(md, "ordersync, first run", &v["ordersync"]["first"])?;
    line(md, "dlt, first run", &v["dlt"]["first"])?;
    line(
        md,
        "ordersync, rerun (nothing changed)",
        &v["ordersync"]["rerun"],
    )?;
    line(md, "dlt, rerun (nothing changed)", &v["dlt"]["rerun"])?;
    writeln!(md)?;
    let gt = |k: &str| {
        if v["dlt"][k]["timed_out"].as_bool() == Some(true) {
            "> "
        } else {
            ""
        }
    };
    writeln!(
        md,
        "| ratio (dlt wall time / ordersync wall time) | value | target | |"
    )?;
    writeln!(md, "|---|---:|---|---|")?;
    writeln!(
        md,
        "| first run | {}{}× | ≥ 8× | {} |",
        gt("first"),
        fmt(num(&v, "ratio_first"), 1),
        verdict(v["targets"]["ratio_first_met"].as_bool())
    )?;
    writeln!(
        md,
        "| rerun | {}{}× | (bounded at {} s) | |",
        gt("rerun"),
        fmt(num(&v, "ratio_rerun"), 1),
        fmt(num(&v, "dlt/rerun_timeout_s"), 0)
    )?;
    Ok(())
}
