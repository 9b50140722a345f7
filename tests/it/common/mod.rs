//! Shared test fixtures: a simulated MerchantPro shop on loopback with a configuration and a
//! database in a temporary folder, and the comparisons every test makes against the
//! simulator's truth.
#![allow(dead_code)]

pub mod nats;
pub mod postgres;
pub mod receiver;
pub mod running;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use chrono::{DateTime, Utc};
use ordersync::config::{self, Config};
use ordersync_sim::RunningSim;
use ordersync_sim::merchantpro::{MerchantProSim, SimOptions, TruthOrder};
use rusqlite::Connection;

/// The kind's connector as `Connector::new` builds it (every configured secret registered for
/// redaction), with a fast retry policy of `attempts` tries and no rate limit: the simulators
/// answer as fast as they can.
pub fn fast_connector(
    cfg: &ordersync::config::PlatformConfig,
    attempts: u32,
) -> ordersync::platforms::Connector {
    let fast = ordersync::http::RequestRetry {
        max_attempts: attempts,
        initial_interval: std::time::Duration::from_millis(5),
        max_interval: std::time::Duration::from_millis(20),
        retry_after_cap: std::time::Duration::from_secs(1),
    };
    let mut cfg = cfg.clone();
    cfg.max_requests_per_second = 0.0;
    ordersync::platforms::Connector::with_retry(
        &cfg,
        &ordersync::http::Redactor::default(),
        tokio_util::sync::CancellationToken::new(),
        fast,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", cfg.name))
}

pub const BIN: &str = env!("CARGO_BIN_EXE_ordersync");

pub struct Shop {
    pub name: String,
    pub sim: MerchantProSim,
    pub server: RunningSim,
    pub start: DateTime<Utc>,
}

impl Shop {
    /// A shop whose orders were placed over the last `orders × 90 s`.
    pub async fn open(name: &str, orders: usize) -> Shop {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let sim = MerchantProSim::new(SimOptions {
            orders,
            start,
            spacing,
            ..SimOptions::default()
        });
        let server = sim.serve().await.expect("simulator starts");
        Shop {
            name: name.to_string(),
            sim,
            server,
            start,
        }
    }

    /// The platform file for this shop; `extra` lines go inside `[platforms.<name>]`.
    pub fn platform_toml(&self, extra: &str) -> String {
        let o = SimOptions::default();
        format!(
            "[platforms.{name}]\nkind = \"merchantpro\"\nbase_url = \"{url}\"\n\
             backfill_from = \"{from}\"\nmax_requests_per_second = 1000\n{extra}\n\
             [platforms.{name}.auth]\napi_key = \"{key}\"\napi_secret = \"{secret}\"\n",
            name = self.name,
            url = self.server.base_url(),
            from = (self.start - chrono::Duration::days(2)).to_rfc3339(),
            key = o.api_key,
            secret = o.api_secret,
        )
    }
}

/// A configuration folder: `ordersync.toml` plus `platforms.d/`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    /// The test's PostgreSQL database, when the store is one; else the store is
    /// `ordersync.db` in `dir`.
    pub pg: Option<postgres::PgDb>,
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Setup {
    pub fn new() -> Setup {
        Setup::on(Backend::Sqlite)
    }

    /// A setup whose store is `backend`: for PostgreSQL, a fresh database on the test binary's
    /// server, its password in `db-password` beside the main file (`database_password_file`).
    pub fn on(backend: Backend) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("platforms.d")).unwrap();
        let pg = (backend == Backend::Postgres).then(|| postgres::server().database());
        if pg.is_some() {
            std::fs::write(dir.path().join("db-password"), postgres::PASSWORD).unwrap();
        }
        let setup = Setup { dir, pg };
        setup.write_daemon("shutdown_grace = \"10s\"\nlog_level = \"info\"\n");
        setup
    }

    /// The `[daemon]` lines naming this setup's store.
    pub fn database_toml(&self) -> String {
        match &self.pg {
            None => "database = \"ordersync.db\"\n".to_string(),
            Some(pg) => format!(
                "database = \"{}\"\ndatabase_password_file = \"db-password\"\n",
                pg.url()
            ),
        }
    }

    /// Rewrites the main file: `[daemon]` with this setup's store and `extra` lines.
    pub fn write_daemon(&self, extra: &str) {
        std::fs::write(
            self.main_file(),
            format!("[daemon]\n{}{extra}", self.database_toml()),
        )
        .unwrap();
    }

    pub fn main_file(&self) -> PathBuf {
        self.dir.path().join("ordersync.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ordersync.db")
    }

    pub fn add_platform_file(&self, file: &str, toml: &str) {
        std::fs::write(self.dir.path().join("platforms.d").join(file), toml).unwrap();
    }

    pub fn config(&self) -> Config {
        config::load_with_env(&self.main_file(), ordersync::platforms::kinds(), &[])
            .unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// The store to read with SQL: the SQLite file, or for PostgreSQL a snapshot of every
    /// table in an in-memory SQLite database (take another after the next write).
    pub fn db(&self) -> Connection {
        match &self.pg {
            None => Connection::open(self.db_path()).unwrap(),
            Some(pg) => pg.snapshot(),
        }
    }

    /// Runs the real binary with this configuration.
    pub fn ordersync(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(self.main_file()).args(args);
        c.env_remove("ORDERSYNC_CONFIG")
            .env_remove("JOURNAL_STREAM");
        c
    }
}

/// `ordersync sync` with `setup`'s configuration, off the async workers (the test's
/// simulators run on them); panics unless it succeeds.
pub async fn synced(setup: Setup) -> Setup {
    tokio::task::spawn_blocking(move || {
        let out = setup.ordersync(&["sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        setup
    })
    .await
    .unwrap()
}

/// An outbox row as the push tests read it back.
#[derive(Debug)]
pub struct OutboxRow {
    pub state: String,
    pub attempts: i64,
    pub next: DateTime<Utc>,
    pub error: Option<String>,
}

/// The outbox row `id` of the database at `db`.
pub fn outbox_row(db: &Connection, id: i64) -> OutboxRow {
    db.query_row(
        "SELECT state, attempts, next_attempt_at, last_error FROM outbox WHERE id = ?1",
        [id],
        |r| {
            Ok(OutboxRow {
                state: r.get(0)?,
                attempts: r.get(1)?,
                next: DateTime::parse_from_rfc3339(&r.get::<_, String>(2)?)
                    .unwrap()
                    .to_utc(),
                error: r.get(3)?,
            })
        },
    )
    .unwrap_or_else(|e| panic!("outbox row {id}: {e}"))
}

/// How a transition is queued: refused unless the stored status allows it, or queued whatever
/// the stored status says (`ordersync transition --force`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Checked,
    Forced,
}

impl Queue {
    /// The state check `outbox::enqueue` takes.
    pub fn check(self) -> ordersync::outbox::StateCheck {
        match self {
            Queue::Checked => ordersync::outbox::StateCheck::Enforce,
            Queue::Forced => ordersync::outbox::StateCheck::Override,
        }
    }
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The canonical status the simulator's `shipping_status` must map to.
pub fn canonical(shipping_status: &str) -> &'static str {
    match shipping_status {
        "awaiting" => "pending",
        "confirmed" => "accepted",
        "in_process" => "processing",
        "shipped" => "shipped",
        "delivered" => "delivered",
        "returned" => "returned",
        "cancelled" => "cancelled",
        other => panic!("simulator status {other} has no canonical mapping in the test"),
    }
}

/// Asserts the store holds exactly the simulator's orders, field by field.
pub fn assert_store_matches(conn: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = count(
        conn,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    if stored as usize != truth.len() {
        let mut stmt = conn
            .prepare("SELECT 1 FROM orders WHERE platform = ?1 AND order_id = ?2")
            .unwrap();
        let missing: Vec<u64> = truth
            .iter()
            .filter(|t| {
                !stmt
                    .exists(rusqlite::params![platform, t.id.to_string()])
                    .unwrap()
            })
            .map(|t| t.id)
            .collect();
        panic!(
            "{stored} orders stored, the platform has {}; missing: {missing:?}",
            truth.len()
        );
    }
    let mut stmt = conn
        .prepare(
            "SELECT number, status, platform_status, total, currency, customer_name,
                    tracking_number,
                    (SELECT count(*) FROM order_items i WHERE i.platform = o.platform AND i.order_id = o.order_id)
             FROM orders o WHERE platform = ?1 AND order_id = ?2",
        )
        .unwrap();
    for t in truth {
        let row: (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
        ) = stmt
            .query_row(rusqlite::params![platform, t.id.to_string()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap_or_else(|e| panic!("order {} not stored: {e}", t.id));
        assert_eq!(row.0, t.id.to_string(), "number of {}", t.id);
        assert_eq!(row.1, canonical(&t.shipping_status), "status of {}", t.id);
        assert_eq!(row.2, t.shipping_status, "platform status of {}", t.id);
        assert_eq!(
            row.3,
            t.total_amount.normalize().to_string(),
            "total of {}",
            t.id
        );
        assert_eq!(row.4, t.currency, "currency of {}", t.id);
        let expected_name = if t.billing_name.is_empty() {
            &t.shipping_name
        } else {
            &t.billing_name
        };
        assert_eq!(
            row.5.as_deref(),
            Some(expected_name.as_str()),
            "customer of {}",
            t.id
        );
        assert_eq!(
            row.6,
            t.shipping_awb.clone().filter(|s| !s.is_empty()),
            "tracking of {}",
            t.id
        );
        assert_eq!(row.7 as usize, t.line_items, "items of {}", t.id);
    }
}

pub fn events_by_kind(conn: &Connection, kind: &str) -> i64 {
    count(
        conn,
        &format!("SELECT count(*) FROM order_events WHERE kind = '{kind}'"),
    )
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The daemon under test; killed if the test fails half-way, so no orphan outlives it (an
/// orphan holding the test's output pipe would hang the test run).
pub struct Daemon(pub Child);

impl Daemon {
    pub fn spawn(mut cmd: std::process::Command) -> Daemon {
        Daemon(cmd.stdout(Stdio::null()).spawn().unwrap())
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Held by the tests that measure this process's memory and by those that fill it (dozens of
/// simulators in this process), so a measurement never counts another test's simulators.
pub async fn memory_quiet() -> tokio::sync::MutexGuard<'static, ()> {
    static QUIET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    QUIET.lock().await
}
