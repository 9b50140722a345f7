//! Sinks: how fast the real daemon (`ordersync run`) delivers the change feed, and how far
//! behind the platforms a receiver hears about a change.
//!
//! 1. **Backlog drain.** One simulated MerchantPro shop of 100,000 orders is synced once by
//!    `ordersync sync`, which writes 100,000 `created` events. The platform is then disabled
//!    (`enabled = false`: nothing but the sink runs) and the daemon is started with one sink
//!    starting at the beginning of the feed: first a webhook to a receiver in this process on
//!    loopback, which checks every signature with the `standardwebhooks` crate as a real one
//!    must; then, in a second daemon run, a JetStream stream of a `nats-server` this bench
//!    starts on loopback (skipped with a message when `nats-server` is not installed). Each
//!    drain is timed from the receiver's first message to its last, and the sink's cursor must
//!    reach the newest event. Target: ≥ 5,000 events/s to each.
//! 2. **Delivery lag while syncing.** 300 platforms (60 per kind, each kind's shop shared by its
//!    60 platforms) scheduled every minute, one new order per shop every 10 s and one order moved
//!    to another status per shop every 10 s, with both sinks (webhook and JetStream) for
//!    `ORDERSYNC_BENCH_SINK_SECS` (default 300 s). The lag of an event is the time from its
//!    `observed_at` (written in the transaction that commits it) to its arrival at the receiver
//!    (for JetStream: at a core subscriber of the stream's subjects, which the server feeds as it
//!    stores the message). The steady state leaves out the first two minutes (the 300
//!    platforms' backfill). Target: p99 under 2 s.
//!
//! Verified: every drained event arrived (the receiver's distinct ids = the feed), no bad
//! signature, and every event of the lag run arrived at both.
//!
//! ```text
//! cargo bench --bench sinks
//! ORDERSYNC_BENCH_ORDERS=20000 ORDERSYNC_BENCH_SINK_SECS=150 cargo bench --bench sinks
//! ```
//!
//! Environment: `ORDERSYNC_BENCH_ORDERS` (backlog, default 100000), `ORDERSYNC_BENCH_PLATFORMS`
//! (default 300), `ORDERSYNC_BENCH_SINK_SECS` (default 300), `ORDERSYNC_BENCH_SINK_PARTS`
//! (`drain`, `lag` or both, the default, separated by a comma), `ORDERSYNC_BENCH_DIR`. Without
//! `--bench` (as `cargo test --benches` runs it) it is a smoke test: 300 events, 5 platforms
//! every 2 s for 8 s.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use ordersync_sim::fleet::{Fleet, NAMES};
use ordersync_sim::merchantpro::{MerchantProSim, SimOptions};
use rusqlite::Connection;
use serde_json::json;
use support::{count, met, round3};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw0Bn8DuSyhmU=";
const KINDS: [&str; 5] = ["merchantpro", "sirclo", "akinon", "mitrabunso", "epixel"];
const TARGET_RATE: f64 = 5000.0;
const TARGET_P99_S: f64 = 2.0;

fn main() -> ExitCode {
    if let Some(code) = support::dispatch() {
        return code;
    }
    support::finish("sinks", orchestrate(support::benchmark_mode()))
}

/// The two fields of a message the bench reads; the rest is skipped, not built, so the
/// receiver takes little of the CPU the daemon needs.
#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(serde::Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    event: Event<'a>,
}

#[derive(serde::Deserialize)]
struct Event<'a> {
    id: i64,
    observed_at: &'a str,
}

/// What a receiver saw: per message, the event id and the lag in seconds from `observed_at`.
#[derive(Default)]
struct Seen {
    ids: HashSet<i64>,
    messages: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    lags: Vec<(DateTime<Utc>, f64)>,
    bad_signatures: u64,
}

impl Seen {
    fn record(&mut self, body: &[u8]) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.messages += 1;
        let Ok(m) = serde_json::from_slice::<Message>(body) else {
            return;
        };
        self.ids.insert(m.data.event.id);
        if let Ok(t) = DateTime::parse_from_rfc3339(m.data.event.observed_at) {
            let t = t.to_utc();
            let lag = (Utc::now() - t).num_microseconds().unwrap_or(0) as f64 / 1e6;
            self.lags.push((t, lag));
        }
    }

    fn rate(&self) -> Option<f64> {
        let (f, l) = (self.first?, self.last?);
        let s = (l - f).as_secs_f64();
        (s > 0.0).then(|| self.messages as f64 / s)
    }
}

struct Hook {
    verifier: standardwebhooks::Webhook,
    seen: Mutex<Seen>,
}

async fn hook(State(h): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if h.verifier.verify(&body, &headers).is_err() {
        h.seen.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    h.seen.lock().unwrap().record(&body);
    StatusCode::NO_CONTENT
}

/// A webhook receiver on loopback; its URL and what it saw.
async fn receiver() -> anyhow::Result<(String, Arc<Hook>)> {
    let h = Arc::new(Hook {
        verifier: standardwebhooks::Webhook::new(SECRET)?,
        seen: Mutex::new(Seen::default()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(hook))
        .with_state(h.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, h))
}

struct Nats {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_binary() -> Option<PathBuf> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            Command::new("nats-server")
                .arg("--version")
                .output()
                .ok()
                .map(|_| PathBuf::from("nats-server"))
        })
}

fn start_nats(bin: &Path) -> anyhow::Result<Nats> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Nats {
        url: format!("nats://127.0.0.1:{port}"),
        child,
        _dir: dir,
    })
}

/// Counts what a core subscriber of `orders.>` gets, as the server stores it.
async fn subscribe(url: &str) -> anyhow::Result<Arc<Mutex<Seen>>> {
    let client = async_nats::connect(url).await?;
    let mut sub = client.subscribe("orders.>").await?;
    client.flush().await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Some(m) = sub.next().await {
            s.lock().unwrap().record(&m.payload);
        }
    });
    Ok(seen)
}

fn webhook_sink(name: &str, url: &str) -> String {
    format!(
        "\n[sinks.{name}]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         start = \"beginning\"\n"
    )
}

fn nats_sink(name: &str, url: &str) -> String {
    format!(
        "\n[sinks.{name}]\nkind = \"nats\"\nurl = \"{url}\"\nstream = \"ORDERS\"\n\
         create_stream = true\nstart = \"beginning\"\n"
    )
}

fn append(main_file: &Path, text: &str) -> anyhow::Result<()> {
    let mut s = std::fs::read_to_string(main_file)?;
    s.push_str(text);
    std::fs::write(main_file, s)?;
    Ok(())
}

fn spawn_daemon(main_file: &Path, log: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(support::daemon_bin());
    for k in support::daemon_env_remove() {
        cmd.env_remove(k);
    }
    cmd.args(support::daemon_args(main_file, &["run"]))
        .env("ORDERSYNC_DAEMON__LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    Ok(cmd.spawn()?)
}

fn stop(mut child: Child) -> anyhow::Result<()> {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait()?;
    ensure!(status.success(), "the daemon exited with {status}");
    Ok(())
}

fn cursor(db: &Connection, sink: &str) -> i64 {
    db.query_row(
        "SELECT cursor FROM sink_state WHERE sink = ?1",
        [sink],
        |r| r.get(0),
    )
    .unwrap_or(-1)
}

/// Runs the daemon until sink `name`'s cursor reaches `newest`; the wall time.
fn drain(
    main_file: &Path,
    db_path: &Path,
    log: &Path,
    name: &str,
    newest: i64,
    limit: Duration,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let daemon = spawn_daemon(main_file, log)?;
    let db = Connection::open(db_path)?;
    while cursor(&db, name) < newest {
        if started.elapsed() > limit {
            let _ = stop(daemon);
            bail!(
                "sink {name} did not drain {newest} events in {limit:?}; log:\n{}",
                support::tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    stop(daemon)?;
    Ok(wall)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

/// Median, p99 and max of the lags of events observed at or after `from`.
fn lag_stats(seen: &Seen, from: DateTime<Utc>) -> serde_json::Value {
    let mut l: Vec<f64> = seen
        .lags
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(_, l)| *l)
        .collect();
    l.sort_by(f64::total_cmp);
    json!({
        "events": l.len(),
        "median_s": percentile(&l, 0.5).map(round3),
        "p99_s": percentile(&l, 0.99).map(round3),
        "max_s": l.last().copied().map(round3),
    })
}

fn orchestrate(benchmark: bool) -> anyhow::Result<bool> {
    let orders = support::env_usize(
        "ORDERSYNC_BENCH_ORDERS",
        if benchmark { 100_000 } else { 300 },
    )?;
    let platforms =
        support::env_usize("ORDERSYNC_BENCH_PLATFORMS", if benchmark { 300 } else { 5 })?;
    let secs = support::env_f64(
        "ORDERSYNC_BENCH_SINK_SECS",
        if benchmark { 300.0 } else { 8.0 },
    )?;
    let (period_s, schedule) = if benchmark {
        (60.0, "0 * * * * *")
    } else {
        (2.0, "*/2 * * * * *")
    };
    ensure!(
        secs >= 3.0 * period_s,
        "ORDERSYNC_BENCH_SINK_SECS must cover three periods ({} s)",
        3.0 * period_s
    );
    let work = support::work_dir("sinks")?;
    let dir = work.path().to_path_buf();
    let load_start = support::loadavg();
    println!("ordersync sinks benchmark (benches/sinks.rs)");
    if !benchmark {
        println!("smoke mode (run without --bench)");
    }
    println!(
        "machine    : {} cores, {}; load average at start {load_start}",
        support::cores(),
        support::cpu_model()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench")
        .build()?;
    let nats_bin = nats_binary();
    let mut failures: Vec<String> = Vec::new();

    let parts = std::env::var("ORDERSYNC_BENCH_SINK_PARTS").unwrap_or("drain,lag".into());
    let drain_json = if parts.contains("drain") {
        drain_part(&rt, &dir, orders, nats_bin.as_deref(), &mut failures)?
    } else {
        json!(null)
    };
    let (feed, webhook_lag, nats_lag) = if parts.contains("lag") {
        lag_part(
            &rt,
            &dir,
            LagRun {
                benchmark,
                platforms,
                secs,
                period_s,
                schedule,
            },
            nats_bin.as_deref(),
            &mut failures,
        )?
    } else {
        (0, json!(null), json!(null))
    };
    let rate_met = |v: &serde_json::Value| v.as_f64().map(|r| r >= TARGET_RATE);
    let p99_met = |v: &serde_json::Value| v["p99_s"].as_f64().map(|p| p < TARGET_P99_S);
    let targets = json!({
        "webhook_rate_met": rate_met(&drain_json["webhook"]["events_per_s"]),
        "jetstream_rate_met": rate_met(&drain_json["jetstream"]["events_per_s"]),
        "webhook_p99_met": p99_met(&webhook_lag),
        "jetstream_p99_met": p99_met(&nats_lag),
    });
    for (k, v) in targets.as_object().unwrap() {
        if let Some(b) = v.as_bool() {
            println!("target     : {k}: {}", met(b));
        }
    }
    for f in &failures {
        println!("FAILED     : {f}");
    }
    support::print_bench_json(&json!({
        "bench": "sinks",
        "benchmark_mode": benchmark,
        "verified": failures.is_empty(),
        "failures": failures,
        "machine": support::machine_json(&dir, &load_start),
        "drain": drain_json,
        "lag": {
            "platforms": platforms,
            "period_s": period_s,
            "secs": secs,
            "events": feed,
            "steady_after_s": 2.0 * period_s,
            "webhook": webhook_lag,
            "jetstream": nats_lag,
        },
        "targets": targets,
    }));
    Ok(failures.is_empty())
}

/// Part 1: a backlog of `orders` events drained to a webhook, then to JetStream.
fn drain_part(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    orders: usize,
    nats_bin: Option<&Path>,
    failures: &mut Vec<String>,
) -> anyhow::Result<serde_json::Value> {
    let backlog_dir = dir.join("backlog");
    std::fs::create_dir_all(&backlog_dir)?;
    let spacing = chrono::Duration::seconds(30);
    let start = Utc::now() - spacing * (orders as i32 + 10);
    let sim = MerchantProSim::new(SimOptions {
        orders,
        start,
        spacing,
        ..SimOptions::default()
    });
    let server = rt.block_on(sim.serve())?;
    let toml = support::platform_toml(
        "shop",
        "merchantpro",
        &server.base_url(),
        start - chrono::Duration::days(1),
        "max_requests_per_second = 100000\nreconcile_schedule = \"off\"\n",
    );
    let main_file = support::write_config(
        &backlog_dir,
        "shutdown_grace = \"15s\"\n",
        &[("shop.toml".into(), toml.clone())],
    )?;
    let synced = Instant::now();
    let mut sync = Command::new(support::daemon_bin());
    for k in support::daemon_env_remove() {
        sync.env_remove(k);
    }
    let out = sync
        .args(support::daemon_args(
            &main_file,
            &["sync", "--no-reconcile"],
        ))
        .output()?;
    ensure!(
        out.status.success(),
        "the backlog's sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db_path = backlog_dir.join("ordersync.db");
    let newest = count(
        &Connection::open(&db_path)?,
        "SELECT max(id) FROM order_events",
    )?;
    println!(
        "backlog    : {newest} events from a sync of {orders} orders in {:.1} s",
        synced.elapsed().as_secs_f64()
    );
    drop(server);
    // Nothing but the sink runs from now on.
    std::fs::write(
        backlog_dir.join("platforms.d/shop.toml"),
        toml.replacen("\n", "\nenabled = false\n", 1),
    )?;
    let limit = Duration::from_secs(600);

    let (url, hook_state) = rt.block_on(receiver())?;
    let base = std::fs::read_to_string(&main_file)?;
    append(&main_file, &webhook_sink("hook", &url))?;
    let wall = drain(
        &main_file,
        &db_path,
        &backlog_dir.join("webhook.log"),
        "hook",
        newest,
        limit,
    )?;
    let (webhook_rate, webhook_distinct, bad) = {
        let s = hook_state.seen.lock().unwrap();
        (s.rate(), s.ids.len(), s.bad_signatures)
    };
    if webhook_distinct as i64 != newest || bad > 0 {
        failures.push(format!(
            "webhook drain: {webhook_distinct} distinct events of {newest}, {bad} bad signatures"
        ));
    }
    println!(
        "webhook    : {newest} events drained in {wall:.2} s (daemon start to cursor), {:.0} \
         events/s first to last message",
        webhook_rate.unwrap_or(0.0)
    );

    let mut nats_drain = json!(null);
    let mut nats_skipped = None;
    match nats_bin {
        None => {
            let msg = "nats-server is not installed (apt-get install nats-server)";
            println!("jetstream  : SKIPPED, {msg}");
            nats_skipped = Some(msg.to_string());
        }
        Some(bin) => {
            let nats = start_nats(bin)?;
            let seen = rt.block_on(subscribe(&nats.url))?;
            std::fs::write(&main_file, &base)?;
            append(&main_file, &nats_sink("bus", &nats.url))?;
            let wall = drain(
                &main_file,
                &db_path,
                &backlog_dir.join("nats.log"),
                "bus",
                newest,
                limit,
            )?;
            // The subscriber may trail the stream's acknowledgements by a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            while (seen.lock().unwrap().ids.len() as i64) < newest && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let stored = rt.block_on(async {
                let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await?);
                let mut s = js.get_stream("ORDERS").await?;
                anyhow::Ok(s.info().await?.state.messages)
            })?;
            let s = seen.lock().unwrap();
            if stored as i64 != newest {
                failures.push(format!(
                    "JetStream drain: the stream holds {stored} of {newest}"
                ));
            }
            println!(
                "jetstream  : {newest} events drained in {wall:.2} s (daemon start to cursor), \
                 {:.0} events/s first to last message; the stream holds {stored}",
                s.rate().unwrap_or(0.0)
            );
            nats_drain = json!({
                "wall_s": round3(wall),
                "events_per_s": s.rate().map(|r| r.round()),
                "stream_messages": stored,
            });
        }
    }
    let drain_json = json!({
        "events": newest,
        "webhook": {
            "wall_s": round3(wall),
            "events_per_s": webhook_rate.map(|r| r.round()),
            "bad_signatures": bad,
        },
        "jetstream": nats_drain,
        "jetstream_skipped": nats_skipped,
    });

    Ok(drain_json)
}

struct LagRun {
    benchmark: bool,
    platforms: usize,
    secs: f64,
    period_s: f64,
    schedule: &'static str,
}

/// Part 2: the delivery lag while `platforms` platforms sync; the events in all and the
/// webhook's and the stream's steady-state lag.
fn lag_part(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    run: LagRun,
    nats_bin: Option<&Path>,
    failures: &mut Vec<String>,
) -> anyhow::Result<(i64, serde_json::Value, serde_json::Value)> {
    let LagRun {
        benchmark,
        platforms,
        secs,
        period_s,
        schedule,
    } = run;
    // ---- 2. Delivery lag while 300 platforms sync -------------------------------------------
    let lag_dir = dir.join("lag");
    std::fs::create_dir_all(&lag_dir)?;
    let fleet = rt.block_on(Fleet::start(if benchmark { 200 } else { 30 }))?;
    let extra = format!(
        "schedule = \"{schedule}\"\nreconcile_schedule = \"off\"\nmax_requests_per_second = 1000\n"
    );
    let templates = fleet.platform_files(&extra);
    let files: Vec<(String, String)> = (0..platforms)
        .map(|i| {
            let k = i % KINDS.len();
            let name = format!("{}-{:03}", KINDS[k], i / KINDS.len() + 1);
            (
                format!("{name}.toml"),
                templates[k].1.replace(
                    &format!("platforms.{}", NAMES[k]),
                    &format!("platforms.{name}"),
                ),
            )
        })
        .collect();
    let main_file = support::write_config(&lag_dir, "shutdown_grace = \"15s\"\n", &files)?;
    let (url, lag_hook) = rt.block_on(receiver())?;
    append(&main_file, &webhook_sink("hook", &url))?;
    let nats = match nats_bin {
        Some(bin) => {
            let n = start_nats(bin)?;
            append(&main_file, &nats_sink("bus", &n.url))?;
            let seen = rt.block_on(subscribe(&n.url))?;
            Some((n, seen))
        }
        None => None,
    };
    let log = lag_dir.join("daemon.log");
    let began = Utc::now();
    let daemon = spawn_daemon(&main_file, &log)?;
    let run_until = Instant::now() + Duration::from_secs_f64(secs);
    let every = Duration::from_secs_f64(period_s / 6.0);
    let mut step = 0;
    while Instant::now() < run_until {
        std::thread::sleep(every.min(run_until.saturating_duration_since(Instant::now())));
        fleet.churn(step);
        step += 1;
    }
    // The last changes: give the next tick and the sinks time to catch up before stopping.
    let db = Connection::open(lag_dir.join("ordersync.db"))?;
    let settle = Instant::now() + Duration::from_secs_f64(period_s + 30.0);
    std::thread::sleep(Duration::from_secs_f64(period_s + 1.0));
    loop {
        let newest = count(&db, "SELECT coalesce(max(id), 0) FROM order_events")?;
        let behind =
            cursor(&db, "hook") < newest || (nats.is_some() && cursor(&db, "bus") < newest);
        if !behind || Instant::now() > settle {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(daemon)?;
    let feed = count(&db, "SELECT count(*) FROM order_events")?;
    let steady_from = began + chrono::Duration::milliseconds((2.0 * period_s * 1000.0) as i64);
    let hook_seen = lag_hook.seen.lock().unwrap();
    if hook_seen.ids.len() as i64 != feed || hook_seen.bad_signatures > 0 {
        failures.push(format!(
            "lag run: the webhook receiver got {} distinct events of {feed}, {} bad signatures",
            hook_seen.ids.len(),
            hook_seen.bad_signatures
        ));
    }
    let webhook_lag = lag_stats(&hook_seen, steady_from);
    let nats_lag = match &nats {
        Some((_, seen)) => {
            let s = seen.lock().unwrap();
            if (s.ids.len() as i64) != feed {
                failures.push(format!(
                    "lag run: the JetStream subscriber got {} distinct events of {feed}",
                    s.ids.len()
                ));
            }
            lag_stats(&s, steady_from)
        }
        None => json!(null),
    };
    println!(
        "lag run    : {platforms} platforms every {period_s:.0} s for {secs:.0} s, {feed} events; \
         steady state (after {:.0} s): webhook {webhook_lag}, JetStream {nats_lag}",
        2.0 * period_s
    );

    Ok((feed, webhook_lag, nats_lag))
}
