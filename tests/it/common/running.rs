//! The real daemon (`ordersync run`) under test, as the fault tests watch it: its log in a file,
//! its `/health` on a loopback port, and the systemd notifications it sends to a socket the
//! test reads (readiness and watchdog pings, with the time each arrived).
#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Daemon, Setup};

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the main file: the database at `database`, `/health` on `port`, a 1 s push interval,
/// and `extra` lines inside `[daemon]`.
pub fn write_main_file(setup: &Setup, database: &Path, port: u16, extra: &str) {
    std::fs::write(
        setup.main_file(),
        format!(
            "[daemon]\ndatabase = \"{}\"\nshutdown_grace = \"10s\"\nlog_level = \"info\"\n\
             metrics_listen = \"127.0.0.1:{port}\"\npush_interval = \"1s\"\n\
             health_max_age = \"1h\"\n{extra}\n",
            database.display()
        ),
    )
    .unwrap();
}

/// One answer of `/health`.
#[derive(Debug)]
pub struct Health {
    pub status: u16,
    pub body: String,
}

pub struct Running {
    pub daemon: Daemon,
    pub log: PathBuf,
    pub port: u16,
    /// Every notification received, with when it arrived.
    pub notes: Arc<Mutex<Vec<(Instant, String)>>>,
    client: reqwest::Client,
}

impl Running {
    /// Starts `ordersync run` with `setup`'s main file (which must serve `/health` on `port`),
    /// and `WATCHDOG_USEC` set to `watchdog`.
    pub fn start(setup: &Setup, port: u16, watchdog: Duration) -> Running {
        let log = setup.dir.path().join("daemon.log");
        let sock_path = setup.dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            // Ends when the test's process does; a closed peer only means no more notes.
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        let mut cmd = setup.command(&["run"]);
        cmd.env("ORDERSYNC_DAEMON__LOG_FORMAT", "text")
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .stderr(std::fs::File::create(&log).unwrap());
        ordersync::http::install_crypto_provider();
        Running {
            daemon: Daemon::spawn(cmd),
            log,
            port,
            notes,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines containing every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }

    /// `/health` as it answers now: status 0 and the error when it does not answer.
    pub async fn health(&self) -> Health {
        match self
            .client
            .get(format!("http://127.0.0.1:{}/health", self.port))
            .send()
            .await
        {
            Ok(r) => Health {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            },
            Err(e) => Health {
                status: 0,
                body: e.to_string(),
            },
        }
    }

    /// Polls `/health` until its status is `want` and its body passes `body`.
    pub async fn health_becomes(&self, secs: u64, want: u16, body: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let Health { status, body: text } = self.health().await;
            if status == want && body(&text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/health did not become {want} in {secs} s; last: {status} {text}\nlog:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        self.daemon.0.try_wait().unwrap().is_none()
    }

    /// Watchdog pings received at or after `since`.
    pub fn pings_since(&self, since: Instant) -> Vec<Instant> {
        self.notes
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, m)| *t >= since && m == "WATCHDOG=1")
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn ready(&self) -> bool {
        self.notes
            .lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m == "READY=1")
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on a child we own.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        self.daemon.0.wait().unwrap()
    }
}

/// The longest gap between consecutive watchdog pings in `[from, to]`, the window's edges
/// counting as pings (so no ping at all is a gap as long as the window).
pub fn longest_ping_gap(pings: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut points: Vec<Instant> = pings
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    points.insert(0, from);
    points.push(to);
    points
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}
