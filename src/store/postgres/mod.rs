//! The PostgreSQL backend of [`Store`](super::Store): a connection pool (deadpool) on a database
//! that any number of ordersync processes, on any number of machines, share. It owns connecting
//! (TLS per `sslmode`), the versioned schema applied under an advisory lock, telling a lost
//! server from a refused statement ([`DbFault`]), and every statement, grouped like the SQLite
//! side: `orders.rs`, `outbox.rs`, `rest.rs` (pass state, runs, events, sinks); `copy.rs` fills
//! an empty database from a SQLite store (`ordersync migrate-store`).
//!
//! What SQLite gets from having one writer, this backend gets from locks, because several
//! processes write at once:
//!
//! - Every write method is one transaction.
//! - Event ids commit in id order: every transaction that inserts events first takes the
//!   transaction-level advisory lock [`EVENT_ID_LOCK`], so no event with a lower id can commit
//!   after a reader has moved past a higher one (sequence values alone are handed out at insert,
//!   not at commit).
//! - Outbox claims lock their rows with `FOR UPDATE SKIP LOCKED`, so two drains never claim the
//!   same entry; queueing locks the order's row (see `outbox.rs`).
//! - Reads use their own pooled connections and never wait for a writer (MVCC).

mod copy;
pub(super) mod leases;
mod orders;
mod outbox;
mod rest;
mod schema;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tracing::{error, info};

use super::{DbFault, StoreError, now_millis};
use crate::config::{PgTarget, SslMode};

pub use copy::{CopyError, CopyReport, TableFigures, copy_sqlite_to_postgres};

/// The key of the transaction-level advisory lock every event-inserting transaction holds
/// before it takes event ids ("ordersync-events" in ASCII, truncated): the ids of concurrent
/// writers then commit in id order.
pub(super) const EVENT_ID_LOCK: i64 = 0x6f72_6465_7273_7965;
/// The session-level advisory lock held while migrations run, so instances starting at once
/// apply each step exactly once.
const MIGRATION_LOCK: i64 = 0x6f72_6465_7273_6d69;

/// Pool size: the sync engine writes one page at a time and reads run beside it; sinks and the
/// push loop add a few.
const POOL_SIZE: usize = 8;

pub(crate) struct Pg {
    pool: Pool,
    /// Leases go through connections of their own: a renewal waiting for a pool slot behind
    /// page writes (which queue on the event-id lock) could let its lease expire under load.
    lease_pool: Pool,
    target: PgTarget,
    busy_timeout: Duration,
    fault: Arc<Mutex<Option<String>>>,
    progress: Arc<AtomicU64>,
    read_only: bool,
}

/// A tokio-postgres error as text: its server message where it has one (the error's own
/// `Display` says only "db error").
pub(super) fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// An error and every error under it, as one line: tokio-postgres's own text leaves out why
/// (the certificate refused, the connection reset).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match e.downcast_ref::<tokio_postgres::Error>() {
        Some(pg) if pg.as_db_error().is_some() => return pg_text(pg),
        _ => e.to_string(),
    };
    let mut next = e.source();
    while let Some(s) = next {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        next = s.source();
    }
    text
}

/// Which fault a PostgreSQL error is, if it is one the daemon rides out (retrying next turn)
/// rather than a bug in a statement.
pub(super) fn pg_fault(e: &tokio_postgres::Error) -> Option<DbFault> {
    if e.is_closed() {
        return Some(DbFault::Connection);
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            if c == "53100" {
                Some(DbFault::DiskFull)
            } else if c == "25006" {
                Some(DbFault::ReadOnly)
            } else if c.starts_with("28") || c == "3D000" || c == "42501" {
                Some(DbFault::Refused)
            } else if c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "55P03"
                || c == "40001"
                || c == "40P01"
            {
                Some(DbFault::Connection)
            } else {
                None
            }
        }
        // No SQLSTATE: the error is the connection's own (refused, reset, timed out, TLS).
        // tokio-postgres does not expose its kinds; its texts are stable.
        None if e.to_string().contains("TLS") => Some(DbFault::Tls),
        None => std::error::Error::source(e)
            .is_some_and(|s| s.is::<std::io::Error>() || e.to_string().contains("connect"))
            .then_some(DbFault::Connection),
    }
}

impl Pg {
    /// Connects, applies pending migrations under the migration lock (unless `read_only`), and
    /// checks the schema is one this ordersync knows.
    pub(super) async fn open(
        target: &PgTarget,
        busy_timeout: Duration,
        read_only: bool,
        fault: Arc<Mutex<Option<String>>>,
        progress: Arc<AtomicU64>,
    ) -> Result<Pg, StoreError> {
        let pool = pool(target, busy_timeout, POOL_SIZE)?;
        let lease_pool = pool_for_leases(target, busy_timeout)?;
        let pg = Pg {
            pool,
            lease_pool,
            target: target.clone(),
            busy_timeout,
            fault,
            progress,
            read_only,
        };
        let mut client = pg.client().await.map_err(|e| pg.located(e))?;
        schema::migrate(&mut client, &pg.target, read_only)
            .await
            .map_err(|e| pg.located(e))?;
        Ok(pg)
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `postgres://user@host:port/dbname`: what messages name (never the password).
    pub(super) fn location(&self) -> String {
        self.target.to_string()
    }

    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.client_of(&self.pool).await
    }

    /// A connection for lease statements (see `lease_pool`).
    pub(super) async fn lease_client(&self) -> Result<Object, StoreError> {
        self.client_of(&self.lease_pool).await
    }

    async fn client_of(&self, pool: &Pool) -> Result<Object, StoreError> {
        pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::PgUnavailable {
                location: self.location(),
                fault: DbFault::Connection,
                fix: DbFault::Connection.pg_fix(&self.target, self.busy_timeout),
                detail: chain(&other),
                source: Box::new(other),
            },
        })
    }

    /// Gives a fault its database and its fix; other errors pass unchanged.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Postgres(source) => match pg_fault(&source) {
                Some(fault) => StoreError::PgUnavailable {
                    location: self.location(),
                    fault,
                    fix: fault.pg_fix(&self.target, self.busy_timeout),
                    detail: chain(&source),
                    source: Box::new(source),
                },
                None => StoreError::Postgres(source),
            },
            e => e,
        }
    }

    /// A read: the database fault named, nothing recorded (as on SQLite, only writes decide
    /// whether the store refuses writes).
    pub(super) async fn read<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        f.await.map_err(|e| self.located(e))
    }

    /// A write: refused on a read-only handle; a fault is recorded (what `/health` reports)
    /// until a write succeeds, and the watchdog's proof of life moves.
    pub(super) async fn write<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.read_only {
            return Err(StoreError::Other(format!(
                "database {} was opened for reading only",
                self.location()
            )));
        }
        let result = f.await.map_err(|e| self.located(e));
        let mut current = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Err(e) if e.db_fault().is_some() => {
                if current.is_none() {
                    error!(database = %self.location(), error = %e, "database writes fail");
                }
                *current = Some(e.to_string());
            }
            Ok(_) if current.take().is_some() => {
                info!(database = %self.location(), "database writes succeed again");
            }
            _ => {}
        }
        drop(current);
        self.progress.store(now_millis(), Ordering::Relaxed);
        result
    }

    /// A read that is one statement, each row through `map`. A `map` that can fail collects
    /// into a `Result`: its first error comes back inside the `Ok` (`.await?` unwraps both).
    pub(super) async fn rows<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl FnMut(&Row) -> T,
    ) -> Result<C, StoreError> {
        self.read(async {
            let c = self.client().await?;
            Ok(c.query(sql, params).await?.iter().map(map).collect())
        })
        .await
    }

    /// A read that is one statement returning at most one row.
    pub(super) async fn opt_row<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl FnOnce(&Row) -> T,
    ) -> Result<Option<T>, StoreError> {
        self.read(async {
            let c = self.client().await?;
            Ok(c.query_opt(sql, params).await?.as_ref().map(map))
        })
        .await
    }

    /// A read that is one statement returning exactly one row (an aggregate, a row the schema
    /// always has); none is an error, as `query_one` makes it.
    pub(super) async fn one_row<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl FnOnce(&Row) -> T,
    ) -> Result<T, StoreError> {
        self.read(async {
            let c = self.client().await?;
            Ok(map(&c.query_one(sql, params).await?))
        })
        .await
    }

    /// A write that is one statement (its own transaction): the rows it touched.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.write(async {
            let c = self.client().await?;
            Ok(c.execute(sql, params).await?)
        })
        .await
    }

    /// The watchdog's and the shutdown's `ping`: whether this process still works its store.
    /// A server that is down or unreachable is a fault the writes meeting it record and the
    /// daemon rides out (restarting it would fix nothing), so an answer, even a refusal, or
    /// none within two seconds, counts as alive; only an error that is no such fault fails.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let probe = tokio::time::timeout(
            Duration::from_secs(2),
            self.read(async {
                let c = self.client().await?;
                c.simple_query("").await?;
                Ok(())
            }),
        )
        .await;
        self.progress.store(now_millis(), Ordering::Relaxed);
        match probe {
            Ok(Err(e)) if e.db_fault().is_none() => Err(e),
            _ => Ok(()),
        }
    }
}

fn pool_for_leases(target: &PgTarget, busy_timeout: Duration) -> Result<Pool, StoreError> {
    pool(target, busy_timeout, 2)
}

fn pool(target: &PgTarget, busy_timeout: Duration, size: usize) -> Result<Pool, StoreError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name("ordersync")
        .connect_timeout(Duration::from_secs(10))
        // The same times as SQLite's text form; statements compare them as text.
        .options("-c TimeZone=UTC");
    if let Some(p) = &target.password {
        cfg.password(p.expose());
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match target.sslmode {
        SslMode::Disable => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::from_config(cfg, tokio_postgres::NoTls, manager_config)
        }
        mode => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = tls::connector(target, mode == SslMode::VerifyFull)?;
            Manager::from_config(cfg, tls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(size)
        // A pool slot waits like a SQLite write waits on another program's lock.
        .wait_timeout(Some(busy_timeout))
        .create_timeout(Some(Duration::from_secs(15)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Other(format!("database {target}: {e}")))
}

impl DbFault {
    pub(super) fn pg_fix(self, t: &PgTarget, busy_timeout: Duration) -> String {
        let (host, port, db, user) = (&t.host, t.port, &t.dbname, &t.user);
        match self {
            DbFault::Connection => format!(
                "the PostgreSQL server at {host}:{port} (database {db}) cannot be reached, \
                 dropped the connection or is shutting down: check that it runs and that this \
                 machine reaches it (`pg_isready -h {host} -p {port}`); work resumes by itself \
                 on the next turn"
            ),
            DbFault::Refused => format!(
                "the PostgreSQL server at {host}:{port} refused user {user} on database {db}: \
                 check the password in daemon.database_password_file, the server's pg_hba.conf, \
                 that database {db} exists and that {user} may write its tables"
            ),
            DbFault::DiskFull => format!(
                "the PostgreSQL server at {host}:{port} has no space left for database {db}: \
                 free space there; writes resume by themselves"
            ),
            DbFault::ReadOnly => format!(
                "the PostgreSQL server at {host}:{port} takes no writes (a standby, or \
                 default_transaction_read_only): point daemon.database at the primary"
            ),
            DbFault::Locked => format!(
                "another session held a lock on database {db} for longer than \
                 daemon.busy_timeout ({busy_timeout:?}); writes resume by themselves"
            ),
            DbFault::Tls => format!(
                "the TLS connection to {host}:{port} failed: check sslmode in daemon.database \
                 (verify-full, the default for a remote host, needs the server's certificate \
                 signed by a CA the system trusts or by the one sslrootcert=/path/ca.pem names, \
                 and issued for {host}; require encrypts without that check; disable is for \
                 loopback only) and that the server has ssl = on"
            ),
            DbFault::Io | DbFault::Gone => {
                format!("the PostgreSQL server at {host}:{port} failed the statement; see its log")
            }
        }
    }
}
