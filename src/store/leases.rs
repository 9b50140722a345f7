//! Leases: which `ordersync run` process does a piece of shared work (one platform's runs, one
//! sink's delivery) when several share one database.
//!
//! On SQLite there is only ever one daemon per database (the daemon lock beside the file
//! refuses a second), so every lease is granted at once and nothing is written. On a shared
//! database a lease is a row: the holder, an expiry in the database's clock (so the machines'
//! clocks do not have to agree) and a fencing token that grows with every new holder. A holder
//! renews while it works; one that dies stops renewing and the lease is free once the expiry
//! of its last renewal has passed. Writes made under a lease carry its token ([`Store::fenced`]) and are refused once
//! another process holds it, so a holder that was paused past its expiry (a stopped VM, a long
//! GC-like stall) cannot overwrite its successor's work.

use std::sync::Arc;
use std::time::Duration;

use super::{Store, StoreError};

/// One held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `platform:<name>` or `sink:<name>`.
    pub name: Arc<str>,
    /// Grows by one each time the lease changes hands; 0 where leases are not shared.
    pub token: i64,
}

/// Why a write under a lease was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "lease {name} (token {token}) was taken over by another ordersync process; this process \
     stopped writing for it (usually after a pause longer than daemon.lease_period: raise it if \
     this repeats)"
)]
pub struct LeaseLost {
    pub name: String,
    pub token: i64,
}

impl Lease {
    pub fn platform(name: &str) -> String {
        format!("platform:{name}")
    }

    pub fn sink(name: &str) -> String {
        format!("sink:{name}")
    }
}

/// This process as a lease holder: host name, pid and a random part (a pid is reused after a
/// restart, and the restarted process must not mistake its predecessor's lease for its own).
pub fn holder_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown-host".into());
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    })
}

impl Store {
    /// Whether several daemons may share this database, so their work goes by lease: a
    /// PostgreSQL database opened for writing.
    pub fn shares_work(&self) -> bool {
        self.pg().is_some_and(|pg| !pg.is_read_only())
    }

    /// Takes the lease `name` for `period` if it is free, expired or given back. `None`: it is
    /// held (by another process, or by other work of this one).
    pub async fn take_lease(
        &self,
        name: &str,
        period: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        match self.pg() {
            Some(pg) => pg.take_lease(name, period).await,
            None => Ok(Some(Lease {
                name: name.into(),
                token: 0,
            })),
        }
    }

    /// Extends a held lease by `period` from now. `false`: it was lost (taken over after it
    /// expired) and the work under it must stop.
    pub async fn renew_lease(&self, lease: &Lease, period: Duration) -> Result<bool, StoreError> {
        match self.pg() {
            Some(pg) => pg.renew_lease(lease, period).await,
            None => Ok(true),
        }
    }

    /// Gives a lease back. `done`: the work finished; otherwise it was cut short (shutdown)
    /// and another process should take it over now rather than at its next scheduled time.
    pub async fn release_lease(&self, lease: &Lease, done: bool) -> Result<(), StoreError> {
        match self.pg() {
            Some(pg) => pg.release_lease(lease, done).await,
            None => Ok(()),
        }
    }

    /// This store, with the writes of a platform's run or a sink's delivery (pages,
    /// checkpoints, run records, sink cursors) refused once `lease` has passed to another
    /// process.
    pub fn fenced(&self, lease: &Lease) -> Store {
        let mut s = self.clone();
        if self.pg().is_some() {
            s.fence = Some(Arc::new(lease.clone()));
        }
        s
    }

    /// The lease this handle writes under, if any.
    pub(super) fn fence(&self) -> Option<&Lease> {
        self.fence.as_deref()
    }

    /// The leases under `prefix` whose holder stopped in the middle of the work: killed (the
    /// lease expired while held) or stopped by shutdown (given back unfinished). Another
    /// process should take them over now.
    pub async fn abandoned_leases(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self.pg() {
            Some(pg) => pg.abandoned_leases(prefix).await,
            None => Ok(Vec::new()),
        }
    }
}
