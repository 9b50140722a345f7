//! The store, on one of two backends that `daemon.database` chooses ([`Database`]): a local
//! SQLite file (the default) or a PostgreSQL database shared by several daemons
//! (`postgres/`). This file owns the SQLite side's opening (WAL, busy timeout, migrations) and
//! its one writer thread: rusqlite is blocking, so every write runs on a dedicated OS thread fed
//! by a channel and every async read goes through `spawn_blocking`; the tokio workers never
//! touch SQLite. No SQL and no database driver's type leaves this module.
//!
//! The public methods of [`Store`] (in this file and, grouped by table, in `orders.rs`,
//! `outbox.rs`, `state.rs`, `events.rs` and `sinks.rs`) are the one interface of both backends:
//! each starts by handing the call to the PostgreSQL backend when that is the one open, and
//! otherwise runs the SQLite code as it always has. They
//! speak the model's types; times go in as `chrono` UTC times and come back parsed where the
//! engines decide on them, or in the stored text form ([`ts`]) where people read them. What a
//! backend must keep:
//!
//! - **Writes are serialized and each method is atomic.** Every write method commits all of its
//!   changes or none. In particular [`Store::apply_page`] commits a page's orders, items, change
//!   events, cleared rejects, confirmed pushes and pass checkpoint together: a pass killed at any
//!   instant resumes from its last checkpoint without losing or repeating an event.
//! - **A status change that is one of our pushes arriving confirms it in the same commit**
//!   (`push_confirmed` event, entry `done`), so a later read-back never resends it.
//! - **Queueing is checked and written in one transaction** ([`Store::enqueue`]): the caller's
//!   check of the stored order, the duplicate check and the insert see the same state.
//! - **Claims are leases** ([`Store::claim_due`]): claiming marks entries `in_flight` under this
//!   process's token and a lease end, committed before anything is sent; at most one entry per
//!   order, and none behind an earlier pending, in-flight or failed entry of its order.
//!   [`Store::renew_claims`] and [`Store::finish_push`] act only on entries this process still
//!   holds; [`Store::recover_in_flight`] takes back only entries whose lease ran out.
//! - **Event ids only grow and are never reused**: they are the public `events --after` cursor.
//! - **Reads see committed data only**, and never wait for the writer.

mod events;
#[cfg(feature = "crash-hooks")]
pub mod hooks;
mod leases;
pub(crate) mod lock;
mod orders;
mod outbox;
mod postgres;
mod schema;
mod sinks;
mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

pub use crate::config::Database;
pub use crate::model::{
    Incoming, PageOutcome, PageWrite, PassProgress, PassState, RejectRecord, Watched, WatchedOrder,
    content_hash,
};
pub use leases::{Lease, LeaseLost, holder_id};
pub use outbox::{EnqueueError, Recorded};
pub use postgres::{CopyError, CopyReport, TableFigures, copy_sqlite_to_postgres};
pub use sinks::SinkStart;

/// See [`DEFAULT_BUSY_TIMEOUT`](crate::config::DEFAULT_BUSY_TIMEOUT).
pub const BUSY_TIMEOUT: Duration = crate::config::DEFAULT_BUSY_TIMEOUT;

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
    /// The database refused a write for a reason outside ordersync (read-only file, full disk,
    /// another program's lock, an I/O error). Nothing of the write was kept; the run or drain
    /// that wanted it tries again on its next turn.
    #[error("database {path}: {source}: {fix}")]
    Unavailable {
        path: PathBuf,
        fault: DbFault,
        fix: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL refusal the daemon rides out (server unreachable or shutting down,
    /// connection lost, login refused, disk full): nothing of the write was kept; the run or
    /// drain that wanted it tries again on its next turn. Names the server and database, never
    /// the password.
    #[error("database {location}: {detail}: {fix}")]
    PgUnavailable {
        location: String,
        fault: DbFault,
        fix: String,
        /// The error and its causes, as one line.
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("database: {}", postgres::pg_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The file the daemon was writing is no longer at its path (deleted, or moved away with
    /// nothing in its place). Writing on into the unlinked file would look like success and
    /// keep nothing, so every write is refused until a database is back at the path.
    #[error(
        "database {path} was deleted or moved away while ordersync was running; nothing is \
         written until a database is back at that path: put the file (or a backup of it) back \
         there and ordersync takes it up by itself, or restart ordersync to start a new, empty \
         database"
    )]
    Gone { path: PathBuf },
    /// The path came to name another file while a run was writing: the run's earlier writes
    /// went into the file that was there before. Nothing is lost on the platform's side; the
    /// next run reads those orders again into the file now at the path.
    #[error(
        "database {path} was replaced by another file during this run, so part of what it \
         wrote went into the old file; the next run reads those orders again"
    )]
    Replaced { path: PathBuf },
    #[error("database writer has stopped")]
    WriterGone,
    #[error("database: {0}")]
    Other(String),
    /// A write under a lease another process has taken over since (see [`Store::fenced`]).
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
}

/// Why the database cannot take writes right now; each clears without a restart once its cause
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// The file (or its -wal/-shm, or its folder, or the filesystem) is not writable.
    ReadOnly,
    /// The filesystem is full.
    DiskFull,
    /// Another program held a write lock past the busy timeout.
    Locked,
    /// The operating system failed a read or write (EIO, EPERM on an immutable file, …).
    Io,
    /// No file at the database's path any more ([`StoreError::Gone`]).
    Gone,
    /// PostgreSQL: the server cannot be reached, dropped the connection, is shutting down or
    /// out of connections.
    Connection,
    /// PostgreSQL: the server refused the login or the database (password, pg_hba.conf, no
    /// such database, no privilege).
    Refused,
    /// PostgreSQL: the TLS handshake failed (a certificate not trusted or not for the host, a
    /// server without TLS).
    Tls,
}

impl DbFault {
    /// The faults worth a new connection: a connection opened read-only stays read-only, and one
    /// that met an I/O error may hold a broken file handle.
    fn needs_reopen(self) -> bool {
        matches!(self, DbFault::ReadOnly | DbFault::Io | DbFault::Gone)
    }

    fn of(e: &rusqlite::Error) -> Option<DbFault> {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code()? {
            C::ReadOnly => Some(DbFault::ReadOnly),
            C::DiskFull => Some(DbFault::DiskFull),
            C::DatabaseBusy | C::DatabaseLocked => Some(DbFault::Locked),
            C::SystemIoFailure | C::CannotOpen | C::PermissionDenied => Some(DbFault::Io),
            _ => None,
        }
    }

    fn fix(self, path: &Path, busy_timeout: Duration) -> String {
        let p = path.display();
        match self {
            DbFault::ReadOnly => format!(
                "make {p}, its -wal and -shm files and its folder writable by the daemon's user \
                 (check permissions, `lsattr` for the immutable flag, and whether the filesystem \
                 is mounted read-only); writes resume by themselves"
            ),
            DbFault::DiskFull => format!(
                "the filesystem holding {p} is full: free space there; writes resume by themselves"
            ),
            DbFault::Locked => format!(
                "another program held a write lock on it for longer than daemon.busy_timeout \
                 ({busy_timeout:?}): find it with `fuser {p}` and end its transaction; writes \
                 resume by themselves"
            ),
            DbFault::Io => format!(
                "the operating system refused a read or write of {p} or its -wal file: check \
                 the disk, permissions, `lsattr` (immutable flag) and the kernel log; writes \
                 resume by themselves"
            ),
            DbFault::Gone => format!(
                "put the database (or a backup of it) back at {p} and writes resume by \
                 themselves, or restart ordersync to start a new, empty database"
            ),
            // PostgreSQL's own faults never come from a SQLite file.
            DbFault::Connection | DbFault::Refused | DbFault::Tls => {
                format!("check the database {p}")
            }
        }
    }
}

impl StoreError {
    /// The database fault behind this error, if it is one.
    pub fn db_fault(&self) -> Option<DbFault> {
        match self {
            StoreError::Unavailable { fault, .. } => Some(*fault),
            StoreError::Sql(e) | StoreError::Open { source: e, .. } => DbFault::of(e),
            StoreError::Gone { .. } => Some(DbFault::Gone),
            StoreError::PgUnavailable { fault, .. } => Some(*fault),
            StoreError::Postgres(e) => postgres::pg_fault(e),
            _ => None,
        }
    }
}

/// A job for the writer thread. It gets the connection, or the error that kept the writer from
/// opening one, and reports back whether the database refused it.
type Job = Box<dyn FnOnce(Result<&mut Connection, StoreError>) -> Option<DbFault> + Send>;

/// A cheap, cloneable handle on the database, SQLite or PostgreSQL ([`Database`]). Every public
/// method means the same on both; only this type knows which one runs.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    busy_timeout: Duration,
    /// Unix milliseconds of the writer's last finished job: the watchdog's proof of life.
    last_progress: Arc<AtomicU64>,
    /// The database's current refusal, from the last write that failed, until one succeeds.
    fault: Arc<Mutex<Option<String>>>,
    /// How often the writer found its path naming another file than the one it had open
    /// (SQLite only: a PostgreSQL database has no file to swap).
    file_changes: Arc<AtomicU64>,
    /// Bumped after every write that added events, so the sinks wake at once instead of at
    /// their next poll.
    feed: Arc<tokio::sync::watch::Sender<u64>>,
    /// The lease this handle's writes are made under ([`Store::fenced`]); PostgreSQL refuses
    /// them once another process holds it.
    fence: Option<Arc<Lease>>,
}

#[derive(Clone)]
enum Backend {
    /// Writes are serialized on one thread, which is both what SQLite wants (one writer) and
    /// what keeps a busy sync from starving the async runtime.
    Sqlite {
        path: Arc<PathBuf>,
        /// `None` for a handle opened with [`Store::open_read_only`].
        jobs: Option<std::sync::mpsc::Sender<Job>>,
    },
    Postgres(Arc<postgres::Pg>),
}

/// A file's identity: what a path names can change under a running process (a backup moved
/// over it, `rm`), while an open connection goes on writing the file it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The writer thread's state: its one connection, and which file that connection has open.
struct Writer {
    path: PathBuf,
    busy_timeout: Duration,
    /// The file `conn` was opened on.
    file: Option<FileId>,
    conn: Option<Connection>,
    progress: Arc<AtomicU64>,
    file_changes: Arc<AtomicU64>,
}

impl Writer {
    fn run(&mut self, job: Job) {
        self.follow_the_path();
        if self.conn.is_none() {
            match self.reopen() {
                Ok(()) => {}
                Err(e) => {
                    job(Err(e));
                    self.progress.store(now_millis(), Ordering::Relaxed);
                    return;
                }
            }
        }
        let c = self.conn.as_mut().expect("opened above");
        let refused = job(Ok(c));
        if refused.is_some_and(DbFault::needs_reopen)
            || c.is_readonly(rusqlite::MAIN_DB).unwrap_or(false)
        {
            self.conn = None;
        }
        // A file swapped while the job ran took the job's writes with it: the next job notices
        // before writing, and the count tells a run that spanned the swap (see
        // [`Store::file_changes`]).
        self.follow_the_path();
        self.progress.store(now_millis(), Ordering::Relaxed);
    }

    /// Drops the connection when the path no longer names the file it has open. Closing it
    /// first matters: SQLite then checkpoints into the old file and removes the -wal and -shm
    /// that belong to it, so the file now at the path is not read with another file's log.
    fn follow_the_path(&mut self) {
        if self.conn.is_none() {
            return;
        }
        let now = match FileId::of(&self.path) {
            Ok(id) => Some(id),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            // Cannot tell (permissions on the folder): SQLite reports what it meets.
            Err(_) => return,
        };
        if now == self.file {
            return;
        }
        self.conn = None;
        self.file = None;
        self.file_changes.fetch_add(1, Ordering::Relaxed);
        match now {
            Some(_) => warn!(database = %self.path.display(),
                "the database file was replaced by another file while ordersync ran (a backup \
                 moved over it?); writing to the file now at the path from here on. To restore \
                 a backup safely, stop ordersync first or use sqlite3's `.restore`"),
            None => error!(database = %self.path.display(),
                "the database file was deleted or moved away while ordersync ran; writes are \
                 refused until a database is back at that path"),
        }
    }

    /// Opens the file at the path, never creating one: a database that vanished is the
    /// operator's to bring back (or to start anew with a restart), not ours to replace with an
    /// empty one that would re-read every order as new.
    fn reopen(&mut self) -> Result<(), StoreError> {
        if !self.path.exists() {
            return Err(StoreError::Gone {
                path: self.path.clone(),
            });
        }
        let mut conn = connect(&self.path, false, self.busy_timeout)?;
        // A backup put in place may predate a migration.
        migrate(&mut conn, &self.path)?;
        self.file = FileId::of(&self.path).ok();
        self.conn = Some(conn);
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, BUSY_TIMEOUT)
    }

    /// [`Store::open`] with another busy timeout (`daemon.busy_timeout`).
    pub fn open_with(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = connect(path, false, busy_timeout)?;
        migrate(&mut conn, path)?;
        let fault = Arc::new(Mutex::new(None));
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            // SQLite quietly opens a write-protected file read-only. Refusing to start would
            // only get the unit restarted until systemd gives up; running lets the fix take
            // effect without a restart.
            let msg = format!(
                "database {} is read-only to this process: {}",
                path.display(),
                DbFault::ReadOnly.fix(path, busy_timeout)
            );
            error!("{msg}");
            *fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
        }
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let last_progress = Arc::new(AtomicU64::new(now_millis()));
        let file_changes = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            path: path.to_path_buf(),
            busy_timeout,
            file: FileId::of(path).ok(),
            conn: Some(conn),
            progress: last_progress.clone(),
            file_changes: file_changes.clone(),
        };
        std::thread::Builder::new()
            .name("ordersync-db-writer".into())
            // The loop ends when every Store handle is dropped, after draining queued jobs: a
            // page handed to the writer before shutdown still commits.
            .spawn(move || {
                for job in rx {
                    writer.run(job);
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            backend: Backend::Sqlite {
                path: Arc::new(path.to_path_buf()),
                jobs: Some(jobs),
            },
            busy_timeout,
            last_progress,
            file_changes,
            fault,
            feed: Arc::new(tokio::sync::watch::Sender::new(0)),
            fence: None,
        })
    }

    /// A handle for reading only, as the CLI's query commands need: it creates nothing, applies
    /// no migration and starts no writer, so it works beside a running daemon and on a file the
    /// user may only read. Its write methods fail.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        drop(connect(path, true, BUSY_TIMEOUT)?);
        Ok(Store {
            backend: Backend::Sqlite {
                path: Arc::new(path.to_path_buf()),
                jobs: None,
            },
            busy_timeout: BUSY_TIMEOUT,
            last_progress: Arc::new(AtomicU64::new(now_millis())),
            fault: Arc::new(Mutex::new(None)),
            file_changes: Arc::new(AtomicU64::new(0)),
            feed: Arc::new(tokio::sync::watch::Sender::new(0)),
            fence: None,
        })
    }

    /// Opens the database `daemon.database` names: a SQLite file as [`Store::open_with`] does,
    /// or a PostgreSQL database (connecting, and applying pending migrations under an advisory
    /// lock so instances starting together never race).
    pub async fn open_database(db: &Database, busy_timeout: Duration) -> Result<Store, StoreError> {
        match db {
            Database::Sqlite(path) => Store::open_with(path, busy_timeout),
            Database::Postgres(target) => Store::open_postgres(target, busy_timeout, false).await,
        }
    }

    /// [`Store::open_read_only`] for either backend: a PostgreSQL handle applies no migration
    /// and refuses every write.
    pub async fn open_database_read_only(db: &Database) -> Result<Store, StoreError> {
        match db {
            Database::Sqlite(path) => Store::open_read_only(path),
            Database::Postgres(target) => Store::open_postgres(target, BUSY_TIMEOUT, true).await,
        }
    }

    async fn open_postgres(
        target: &crate::config::PgTarget,
        busy_timeout: Duration,
        read_only: bool,
    ) -> Result<Store, StoreError> {
        let fault = Arc::new(Mutex::new(None));
        let last_progress = Arc::new(AtomicU64::new(now_millis()));
        let pg = postgres::Pg::open(
            target,
            busy_timeout,
            read_only,
            fault.clone(),
            last_progress.clone(),
        )
        .await?;
        Ok(Store {
            backend: Backend::Postgres(Arc::new(pg)),
            busy_timeout,
            last_progress,
            fault,
            file_changes: Arc::new(AtomicU64::new(0)),
            feed: Arc::new(tokio::sync::watch::Sender::new(0)),
            fence: None,
        })
    }

    /// The SQLite file, `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the file locks of this store go: beside the SQLite file (`<database>.locks/`,
    /// `<database>.daemon.lock`). `None` on PostgreSQL, where a file on one machine cannot keep
    /// apart processes on others: callers then take no file lock (the hook where database
    /// leases belong).
    pub fn file_lock_base(&self) -> Option<&Path> {
        self.sqlite_path()
    }

    /// The database for messages and logs: the SQLite path, or `postgres://user@host:port/db`
    /// (never a password).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres(pg) => pg.location(),
        }
    }

    /// The PostgreSQL backend, when that is what runs.
    fn pg(&self) -> Option<&postgres::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Waits until the writer has run every job queued before this call: at shutdown, lets
    /// queued writes land; for the watchdog, proves the writer alive. It writes nothing.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.ping().await;
        }
        self.write(|_| Ok(())).await
    }

    /// Runs `f` on the writer thread and waits for its result. A refusal by the database comes
    /// back as [`StoreError::Unavailable`], naming the file and the fix.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let Backend::Sqlite { path, jobs } = &self.backend else {
            return Err(StoreError::Other(
                "a SQLite write on a PostgreSQL store".into(),
            ));
        };
        let (path, busy_timeout, fault) = (path.clone(), self.busy_timeout, self.fault.clone());
        let Some(jobs) = jobs else {
            return Err(StoreError::Other(format!(
                "database {} was opened for reading only",
                path.display()
            )));
        };
        jobs.send(Box::new(move |conn| {
            let result = conn
                .and_then(|c| {
                    let before = c.total_changes();
                    f(c).map(|v| (v, c.total_changes() != before))
                })
                .map_err(|e| unavailable(e, &path, busy_timeout));
            let refused = result.as_ref().err().and_then(StoreError::db_fault);
            let mut current = fault.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Err(e) if refused.is_some() => {
                    if current.is_none() {
                        error!(database = %path.display(), error = %e, "database writes fail");
                    }
                    *current = Some(e.to_string());
                }
                // Cleared before the caller hears of the write, so whoever waited on it
                // sees the fault gone. A write that changed nothing proves nothing.
                Ok((_, true)) if current.take().is_some() => {
                    info!(database = %path.display(), "database writes succeed again");
                }
                _ => {}
            }
            drop(current);
            let _ = tx.send(result.map(|(v, _)| v));
            refused
        }))
        .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on a fresh read-only connection on the blocking pool. WAL lets it proceed
    /// while the writer commits.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Backend::Sqlite { path, .. } = &self.backend else {
            return Err(StoreError::Other(
                "a SQLite read on a PostgreSQL store".into(),
            ));
        };
        let path = path.clone();
        let busy_timeout = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let conn = connect(&path, true, busy_timeout)?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
    }

    /// How many times the writer found the database's path naming another file (or none) than
    /// the one it was writing. A run that sees this move did some of its writes into a file
    /// that is no longer the database, and must not report success.
    pub fn file_changes(&self) -> u64 {
        self.file_changes.load(Ordering::Relaxed)
    }

    /// When the writer last finished a job (it only moves while work arrives).
    pub fn last_progress(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_progress.load(Ordering::Relaxed) as i64)
            .unwrap_or_default()
    }

    /// Why the database refuses writes, from the last write that failed, until one succeeds:
    /// what `/health` reports.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Gives a refusal by the database its file and its fix; other errors pass unchanged.
fn unavailable(e: StoreError, path: &Path, busy_timeout: Duration) -> StoreError {
    match (e.db_fault(), e) {
        (Some(fault), StoreError::Sql(source) | StoreError::Open { source, .. }) => {
            StoreError::Unavailable {
                path: path.to_path_buf(),
                fault,
                fix: fault.fix(path, busy_timeout),
                source,
            }
        }
        (_, e) => e,
    }
}

fn connect(path: &Path, read_only: bool, busy_timeout: Duration) -> Result<Connection, StoreError> {
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
    conn.busy_timeout(busy_timeout).map_err(wrap)?;
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

    #[tokio::test]
    async fn a_write_refused_by_another_programs_lock_names_the_file_and_clears_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let store = Store::open_with(&path, Duration::from_millis(100)).unwrap();
        let other = connect(&path, false, BUSY_TIMEOUT).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let insert = |c: &mut Connection| {
            c.execute(
                "INSERT INTO sync_runs (platform, kind, started_at) VALUES ('p', 'sync', 'now')",
                [],
            )?;
            Ok(())
        };
        let err = store.write(insert).await.unwrap_err();
        assert_eq!(err.db_fault(), Some(DbFault::Locked), "{err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("busy_timeout (100ms)"), "{text}");
        assert_eq!(store.fault(), Some(text));
        // A write that changes nothing proves nothing: the fault stays until one lands.
        store.write(|_| Ok(())).await.unwrap();
        assert!(store.fault().is_some());
        other.execute_batch("COMMIT").unwrap();
        store.write(insert).await.unwrap();
        assert_eq!(store.fault(), None);
    }

    #[test]
    fn opening_twice_applies_migrations_once_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db/o.db");
        drop(Store::open(&path).unwrap());
        let _again = Store::open(&path).unwrap();
        let conn = connect(&path, true, BUSY_TIMEOUT).unwrap();
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
        let conn = connect(&path, true, BUSY_TIMEOUT).unwrap();
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

    #[test]
    fn a_reject_naming_its_order_is_kept_once_and_cleared_when_the_order_is_stored() {
        use crate::model::{Order, Status};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        drop(Store::open(&path).unwrap());
        let mut conn = connect(&path, false, BUSY_TIMEOUT).unwrap();
        let reject = |position: &str, order_id: Option<&str>| RejectRecord {
            position: position.to_string(),
            reason: "createdAt \"1733140000\" is not a time this platform documents".into(),
            raw: "{}".into(),
            order_id: order_id.map(str::to_string),
        };
        let order = Order {
            order_id: "7".into(),
            number: "7".into(),
            status: Status::Pending,
            platform_status: "new".into(),
            placed_at: None,
            updated_at: None,
            currency: None,
            total: None,
            customer_name: None,
            tracking_number: None,
            items: Vec::new(),
        };
        let mut page = |orders: Vec<Incoming>, rejects: Vec<RejectRecord>| {
            let tx = conn.transaction().unwrap();
            orders::write_page(
                &tx,
                &PageWrite {
                    platform: "shop".into(),
                    orders,
                    rejects,
                    checkpoint: None,
                },
            )
            .unwrap();
            tx.commit().unwrap();
        };
        // Pages shift between passes: the same bad record is read at another position.
        page(
            Vec::new(),
            vec![reject("GET /o?page=1 record 1", Some("7"))],
        );
        page(
            Vec::new(),
            vec![
                reject("GET /o?page=1 record 2", Some("7")),
                reject("GET /o?page=1 record 3", None),
            ],
        );
        let rows = |conn: &Connection| -> Vec<(Option<String>, String)> {
            conn.prepare("SELECT order_id, position FROM rejects ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let check = connect(&path, true, BUSY_TIMEOUT).unwrap();
        assert_eq!(
            rows(&check),
            [
                (Some("7".into()), "GET /o?page=1 record 2".into()),
                (None, "GET /o?page=1 record 3".into())
            ]
        );
        page(vec![Incoming::new(order, "{\"id\":7}".into())], Vec::new());
        assert_eq!(rows(&check), [(None, "GET /o?page=1 record 3".into())]);
    }

    #[test]
    fn an_order_is_found_by_its_id_before_another_order_by_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        drop(Store::open(&path).unwrap());
        let conn = connect(&path, false, BUSY_TIMEOUT).unwrap();
        // Order 7 has number 100; order 100 has number 555. `ORDER` "100" is the id of the
        // second, which wins over the number of the first (docs/contract.md §3: id or number).
        for (id, order_id, number) in [(1, "7", "100"), (2, "100", "555")] {
            conn.execute(
                "INSERT INTO order_fields (id, platform, order_id, number, status,
                     platform_status, content_hash, first_seen_at, last_seen_at, last_changed_at)
                 VALUES (?1, 'shop', ?2, ?3, 'pending', 'new', 'h', 't', 't', 't')",
                rusqlite::params![id, order_id, number],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO order_raw (id, raw) VALUES (?1, '{}')",
                rusqlite::params![id],
            )
            .unwrap();
        }
        let found = |key: &str| {
            orders::find(&conn, "shop", key)
                .unwrap()
                .map(|o| o.order_id)
        };
        assert_eq!(found("100").as_deref(), Some("100"));
        assert_eq!(found("555").as_deref(), Some("100"));
        assert_eq!(found("7").as_deref(), Some("7"));
        assert_eq!(found("nope"), None);
        assert_eq!(
            orders::find(&conn, "other", "7")
                .unwrap()
                .map(|o| o.order_id),
            None
        );
    }
}
