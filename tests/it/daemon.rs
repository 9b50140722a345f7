//! The daemon as systemd runs it: readiness, watchdog and reload notifications on
//! `NOTIFY_SOCKET`, configuration reload on SIGHUP (same process, new platforms picked up, a
//! broken file refused with its file and key), and `/metrics` + `/health`.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn signal(child: &Daemon, sig: i32) {
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn orders_of(setup: &Setup, platform: &str) -> i64 {
    if !setup.db_path().exists() {
        return 0;
    }
    setup
        .db()
        .query_row(
            "SELECT count(*) FROM orders WHERE platform = ?1",
            [platform],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

fn stop(mut child: Daemon) -> std::process::ExitStatus {
    signal(&child, libc::SIGTERM);
    child.0.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_sees_ready_watchdog_pings_and_a_reload_cycle() {
    let shop = Shop::open("shop-ro", 50).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    let sock_path = setup.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let mut cmd = setup.command(&["run"]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null());
    let child = Daemon::spawn(cmd);
    let mut buf = [0u8; 512];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv().trim(), "READY=1");
    let mut pings = 0;
    while pings < 3 {
        let m = recv();
        assert_eq!(m.trim(), "WATCHDOG=1", "only pings while running: {m}");
        pings += 1;
    }
    signal(&child, libc::SIGHUP);
    let reload = loop {
        let m = recv();
        if m.trim() != "WATCHDOG=1" {
            break m;
        }
    };
    let lines: Vec<&str> = reload.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reload}");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("MONOTONIC_USEC follows: {reload}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    let ready = loop {
        let m = recv();
        if m.trim() != "WATCHDOG=1" {
            break m;
        }
    };
    assert_eq!(ready.trim(), "READY=1");
    let status = stop(child);
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_platform_in_the_same_process_and_refuses_a_broken_file() {
    let a = Shop::open("shop-a", 120).await;
    let b = Shop::open("shop-b", 80).await;
    let setup = Setup::new();
    setup.add_platform_file("a.toml", &a.platform_toml(""));
    let log = std::fs::File::create(setup.dir.path().join("daemon.log")).unwrap();
    let mut cmd = setup.command(&["run"]);
    cmd.env("ORDERSYNC_DAEMON__LOG_FORMAT", "text").stderr(log);
    let child = Daemon::spawn(cmd);
    let pid = child.id();
    eventually(15, "shop-a synced", || orders_of(&setup, "shop-a") == 120).await;

    // Every second, so the test can watch it keep running under the old configuration.
    setup.add_platform_file("b.toml", &b.platform_toml("schedule = \"* * * * * *\""));
    signal(&child, libc::SIGHUP);
    eventually(15, "shop-b synced after reload", || {
        orders_of(&setup, "shop-b") == 80
    })
    .await;
    assert_eq!(child.id(), pid);

    setup.add_platform_file(
        "c.toml",
        "[platforms.shop-c]\nkind = \"merchantpro\"\nbase_url = \"http://127.0.0.1:9\"\nschedul = \"* * * * *\"\n",
    );
    signal(&child, libc::SIGHUP);
    let log_path = setup.dir.path().join("daemon.log");
    eventually(10, "the refused reload is logged", || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("reload refused")
    })
    .await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("schedul") && l.contains("c.toml"))
        .unwrap_or_else(|| panic!("the error names file and key:\n{text}"));
    assert!(line.contains("platforms.shop-c"), "{line}");

    // The old configuration stays in force: a new order at shop-b still arrives.
    b.sim.add_orders(1);
    eventually(15, "shop-b keeps syncing", || {
        orders_of(&setup, "shop-b") == 81
    })
    .await;
    assert_eq!(stop(child).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_what_the_sync_did() {
    let shop = Shop::open("shop-ro", 350).await;
    let setup = Setup::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        setup.main_file(),
        format!(
            "[daemon]\ndatabase = \"ordersync.db\"\nmetrics_listen = \"127.0.0.1:{port}\"\nhealth_max_age = \"1h\"\n"
        ),
    )
    .unwrap();
    setup.add_platform_file(
        "shop-ro.toml",
        &shop.platform_toml("schedule = \"0 0 3 * * *\"\nreconcile_schedule = \"off\""),
    );
    let mut cmd = setup.command(&["run"]);
    cmd.stderr(Stdio::null());
    let child = Daemon::spawn(cmd);
    eventually(15, "first sync", || orders_of(&setup, "shop-ro") == 350).await;
    ordersync::http::install_crypto_provider();
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}{path}");
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // The run is recorded just after its last page commits.
    let mut body = String::new();
    for _ in 0..100 {
        body = get("/metrics").await.1;
        if body.contains("ordersync_runs_total{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("Prometheus text: {e}\n{body}"));
    let value = |name: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            // The parser files a counter's samples under its family name, without `_total`.
            .filter(|s| {
                s.metric.trim_end_matches("_total") == name.trim_end_matches("_total")
                    && s.labels.get(label.0) == Some(label.1)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is neither a counter nor a gauge"),
            })
            .sum()
    };
    assert_eq!(
        value("ordersync_orders_created_total", ("platform", "shop-ro")),
        350.0
    );
    assert_eq!(
        value("ordersync_orders_fetched_total", ("platform", "shop-ro")),
        350.0
    );
    assert_eq!(
        value("ordersync_orders_changed_total", ("platform", "shop-ro")),
        0.0
    );
    assert_eq!(
        value("ordersync_http_requests_total", ("platform", "shop-ro")),
        shop.sim.request_count() as f64,
        "every request the simulator saw is counted"
    );
    assert_eq!(value("ordersync_runs_total", ("outcome", "ok")), 1.0);
    assert_eq!(value("ordersync_outbox_entries", ("state", "pending")), 0.0);
    assert!(
        value(
            "ordersync_last_success_timestamp_seconds",
            ("platform", "shop-ro")
        ) > 1.7e9
    );
    assert_eq!(get("/health").await.0, 200);
    assert_eq!(stop(child).code(), Some(0));
}
