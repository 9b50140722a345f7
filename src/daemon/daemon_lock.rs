//! One daemon per database: `ordersync run` holds an exclusive lock on `<database>.daemon.lock`
//! for its whole life, and a second daemon on the same database refuses to start. Two daemons
//! would take turns at every platform behind the per-platform locks and each reset the other's
//! outbox entries in flight. A one-off `ordersync sync` or `push` does not take this lock: the
//! per-platform locks keep it apart from the daemon's runs. The kernel drops the lock when the
//! holder dies, so a killed daemon never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Held while the daemon runs; dropping it lets the next daemon start.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonLockError {
    #[error("{}", held_message(.database, .lock, .pid))]
    Held {
        database: PathBuf,
        lock: PathBuf,
        /// As the holder wrote it into the file; `None` if it had not yet, or the file is odd.
        pid: Option<u32>,
    },
}

fn held_message(database: &Path, lock: &Path, pid: &Option<u32>) -> String {
    let (who, stop) = match pid {
        Some(p) => (format!("pid {p}"), format!("kill {p}")),
        None => (
            "pid unknown".to_string(),
            format!("`fuser {}` names it", lock.display()),
        ),
    };
    format!(
        "another ordersync daemon ({who}) already runs on the database {}: it holds {}. Two \
         daemons on one database would take turns at every platform. Stop that one first \
         (`systemctl stop ordersync`, or {stop}), or give this one its own daemon.database; a \
         one-off `ordersync sync` beside it needs neither",
        database.display(),
        lock.display(),
    )
}

pub fn lock_path(database: &Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(".daemon.lock");
    PathBuf::from(p)
}

impl DaemonLock {
    /// Takes the lock, writing this process's pid into the file for the refusal message of a
    /// second daemon. `Ok(None)` when the lock file cannot be used at all (a folder that
    /// refuses new files): the caller runs without the guard rather than not at all, as it does
    /// for a database that refuses writes.
    pub fn acquire(database: &Path) -> Result<Option<DaemonLock>, DaemonLockError> {
        let path = lock_path(database);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(lock = %path.display(), error = %e,
                    "cannot create the daemon lock file beside the database; running without the \
                     guard against a second daemon on it");
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(DaemonLockError::Held {
                    database: database.to_path_buf(),
                    lock: path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => {
                tracing::warn!(lock = %path.display(), error = %e,
                    "cannot lock the daemon lock file; running without the guard against a \
                     second daemon on this database");
                return Ok(None);
            }
        }
        // Only the message of a refused second daemon needs the pid: a full disk must not stop
        // this one.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(Some(DaemonLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let first = DaemonLock::acquire(&db).unwrap().expect("a lock file");
        let err = DaemonLock::acquire(&db).unwrap_err();
        let DaemonLockError::Held { pid, .. } = &err;
        assert_eq!(*pid, Some(std::process::id()));
        let msg = err.to_string();
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert!(DaemonLock::acquire(&db).unwrap().is_some());
    }
}
