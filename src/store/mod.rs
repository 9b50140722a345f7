//! The local SQLite store: opening it (WAL, busy timeout, migrations), the one writer thread, and
//! the queries the rest of the daemon needs. rusqlite is blocking, so every write runs on a
//! dedicated OS thread fed by a channel and every async read goes through `spawn_blocking`; the
//! tokio workers never touch SQLite.

mod orders;
mod schema;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use orders::{
    Incoming, PageOutcome, PageWrite, RejectRecord, StoredItem, StoredOrder, apply_page,
    content_hash, open_orders_ids,
};
pub use state::{
    PassProgress, PassState, RunRecord, finish_run, load_pass_state, save_pass_state, start_run,
};

/// How long a statement waits on another process's lock before failing. Long enough to ride out
/// a reporting query or a backup, short enough that a stuck lock surfaces in the logs.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "cannot create the database folder {path}: {source} (check the path in daemon.database)"
    )]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database writer has stopped")]
    WriterGone,
    #[error("database: {0}")]
    Other(String),
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A cheap, cloneable handle on the database. Writes are serialized on one thread, which is both
/// what SQLite wants (one writer) and what keeps a busy sync from starving the async runtime.
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Unix milliseconds of the writer's last finished job: the watchdog's proof of life.
    last_progress: Arc<AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_connection(path, false)?;
        migrate(&mut conn, path)?;
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let last_progress = Arc::new(AtomicU64::new(now_millis()));
        let progress = last_progress.clone();
        std::thread::Builder::new()
            .name("ordersync-db-writer".into())
            .spawn(move || {
                // The loop ends when every Store handle is dropped, after draining queued jobs:
                // a page handed to the writer before shutdown still commits.
                for job in rx {
                    job(&mut conn);
                    progress.store(now_millis(), Ordering::Relaxed);
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            path: Arc::new(path.to_path_buf()),
            jobs,
            last_progress,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread and waits for its result.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on a fresh read-only connection on the blocking pool. WAL lets it proceed
    /// while the writer commits.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path, true)?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
    }

    /// When the writer last finished a job (it only moves while work arrives).
    pub fn last_progress(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_progress.load(Ordering::Relaxed) as i64)
            .unwrap_or_default()
    }
}

/// Opens a connection with the settings every connection needs. Used directly by the CLI's
/// read-only commands, which have no runtime to hop off.
pub fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let wrap = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(wrap)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
    if !read_only {
        // WAL: readers (the CLI, other programs) never block the writer. NORMAL is durable
        // across process crashes in WAL mode; only a power cut may lose the last commits,
        // which the next sync re-reads anyway.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let wrap = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let applied: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(wrap)?;
    let known = schema::MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError::Other(format!(
            "{}: the schema is version {applied}, newer than this ordersync knows ({known}): \
             upgrade ordersync",
            path.display()
        )));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(sql).map_err(wrap)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
    }
    Ok(())
}

fn now_millis() -> u64 {
    Utc::now().timestamp_millis() as u64
}

/// The one text form of a time in the database: UTC, RFC 3339, `Z`.
/// Whole seconds when the time has none, else milliseconds: nanoseconds of our own clock are
/// noise to a reader.
pub fn ts(t: DateTime<Utc>) -> String {
    let format = if t.timestamp_subsec_nanos() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    t.to_rfc3339_opts(format, true)
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_applies_migrations_once_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db/o.db");
        drop(Store::open(&path).unwrap());
        let _again = Store::open(&path).unwrap();
        let conn = open_connection(&path, true).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_version_3_database_keeps_its_orders_when_orders_becomes_a_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &schema::MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO orders VALUES ('shop', '7', 'N-7', 'shipped', 'sent', NULL,
                     '2026-01-02T03:04:05.000Z', 'EUR', '12.50', 'Ana', 'AWB1', 'h1',
                     '2026-01-01T00:00:00.000Z', '2026-01-03T00:00:00.000Z',
                     '2026-01-02T00:00:00.000Z', '{\"id\":7}')",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        drop(store);
        let conn = open_connection(&path, true).unwrap();
        let row: Vec<Option<String>> = conn
            .query_row("SELECT * FROM orders", [], |r| {
                (0..16).map(|i| r.get(i)).collect()
            })
            .unwrap();
        let row: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
        assert_eq!(
            row,
            [
                "shop",
                "7",
                "N-7",
                "shipped",
                "sent",
                "NULL",
                "2026-01-02T03:04:05.000Z",
                "EUR",
                "12.50",
                "Ana",
                "AWB1",
                "h1",
                "2026-01-01T00:00:00.000Z",
                "2026-01-03T00:00:00.000Z",
                "2026-01-02T00:00:00.000Z",
                "{\"id\":7}"
            ]
        );
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('orders')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            columns.join(","),
            "platform,order_id,number,status,platform_status,placed_at,updated_at,currency,\
             total,customer_name,tracking_number,content_hash,first_seen_at,last_seen_at,\
             last_changed_at,raw"
        );
    }
}
