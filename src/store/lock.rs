//! Runs of one platform must not overlap across processes either (the daemon, an operator's
//! `ordersync sync` or `verify`): an exclusive advisory lock (std's `File::lock`, `flock` on
//! Linux) on a file per platform beside the database. The kernel drops it when the holder dies,
//! so a killed process never leaves a stale lock. On PostgreSQL no file is locked (the
//! `*_for` functions say where database leases go).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::Store;

pub struct PlatformLock {
    /// `None` on PostgreSQL: see [`PlatformLock::try_acquire_for`].
    _file: Option<File>,
}

fn lock_path(database: &Path, platform: &str) -> PathBuf {
    let mut dir = database.as_os_str().to_owned();
    dir.push(".locks");
    PathBuf::from(dir).join(platform)
}

fn open(database: &Path, platform: &str) -> std::io::Result<File> {
    let path = lock_path(database, platform);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

impl PlatformLock {
    /// The lock of `platform`'s runs on this store. On SQLite, the file lock beside the
    /// database ([`PlatformLock::try_acquire`]). On PostgreSQL, whose processes may run on
    /// several machines, a file lock would keep nothing apart: this hook takes none and says so
    /// (`Ok(Some)` with no file) — database leases belong here.
    pub fn try_acquire_for(store: &Store, platform: &str) -> std::io::Result<Option<PlatformLock>> {
        match store.file_lock_base() {
            Some(database) => PlatformLock::try_acquire(database, platform),
            None => Ok(Some(PlatformLock::no_file_lock())),
        }
    }

    /// [`PlatformLock::take_or_wait`] on this store; on PostgreSQL, no file lock (see
    /// [`PlatformLock::try_acquire_for`]).
    pub async fn take_or_wait_for(
        store: &Store,
        platform: &str,
        waiting: &str,
    ) -> Option<PlatformLock> {
        match store.file_lock_base() {
            Some(database) => PlatformLock::take_or_wait(database, platform, waiting).await,
            None => Some(PlatformLock::no_file_lock()),
        }
    }

    fn no_file_lock() -> PlatformLock {
        PlatformLock { _file: None }
    }

    /// The lock if it is free now; `Ok(None)` when another process holds it.
    pub fn try_acquire(database: &Path, platform: &str) -> std::io::Result<Option<PlatformLock>> {
        let file = open(database, platform)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(PlatformLock { _file: Some(file) })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// The lock, waiting for another process's run to end first (`waiting` says whose, in the
    /// log line). A lock file that cannot be taken at all (an unwritable folder) is logged and
    /// the run goes on without it: the lock only orders runs, it guards no data.
    pub async fn take_or_wait(
        database: &Path,
        platform: &str,
        waiting: &str,
    ) -> Option<PlatformLock> {
        match PlatformLock::try_acquire(database, platform) {
            Ok(Some(l)) => Some(l),
            Ok(None) => {
                tracing::info!(platform = %platform, "{waiting}; waiting for it");
                PlatformLock::acquire(database, platform).await.ok()
            }
            Err(e) => {
                tracing::warn!(platform = %platform, error = %e,
                               "cannot take the platform's lock file; running without it");
                None
            }
        }
    }

    /// Waits for the lock (on a blocking thread: taking it blocks).
    pub async fn acquire(database: &Path, platform: &str) -> std::io::Result<PlatformLock> {
        let file = open(database, platform)?;
        tokio::task::spawn_blocking(move || {
            file.lock()?;
            Ok(PlatformLock { _file: Some(file) })
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let first = PlatformLock::try_acquire(&db, "shop")
            .unwrap()
            .expect("free");
        assert!(PlatformLock::try_acquire(&db, "shop").unwrap().is_none());
        assert!(PlatformLock::try_acquire(&db, "other").unwrap().is_some());
        drop(first);
        assert!(PlatformLock::try_acquire(&db, "shop").unwrap().is_some());
        let _waited = PlatformLock::acquire(&db, "shop").await.unwrap();
    }
}
