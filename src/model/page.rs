//! One fetched page on its way into the store: the orders as read (canonical form, raw record,
//! fingerprint), the records that could not be read, the checkpoint that commits with them, and
//! what the page did to the store.

use super::{Order, PassState};

/// One order as fetched: its canonical form, the record's raw JSON, and the hash of that JSON.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub order: Order,
    pub raw: String,
    pub hash: String,
}

impl Incoming {
    pub fn new(order: Order, raw: String) -> Self {
        let hash = content_hash(&raw);
        Incoming { order, raw, hash }
    }
}

/// A fingerprint of the record as received, to tell "nothing moved" without a field diff.
/// XXH3-128, not a cryptographic hash: the platform is the only writer of the input and has no
/// reason to forge a collision, and hashing every re-read record is on the no-change hot path
/// (SHA-256 was a tenth of a no-change pass's CPU). A database written with another fingerprint
/// just takes the field-diff path once per order, which writes no event when nothing changed.
pub fn content_hash(raw: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))
}

/// A record that could not be read, kept for inspection in `rejects`.
#[derive(Debug, Clone)]
pub struct RejectRecord {
    pub position: String,
    pub reason: String,
    pub raw: String,
    /// The order the record is for, where it names one readably: a later good read of that
    /// order clears the reject.
    pub order_id: Option<String>,
}

/// Everything one page commits, atomically.
#[derive(Debug, Clone)]
pub struct PageWrite {
    pub platform: String,
    pub orders: Vec<Incoming>,
    pub rejects: Vec<RejectRecord>,
    /// The pass's position after this page; `None` leaves the checkpoint alone (reconcile passes
    /// are not resumable: re-running one from the start is cheap and idempotent).
    pub checkpoint: Option<PassState>,
}

/// What a page did to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    pub created: u64,
    pub changed: u64,
    pub status_changed: u64,
    /// Status changes that were our own pushes arriving (`push_confirmed`).
    pub confirmed: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

impl PageOutcome {
    pub fn add(&mut self, o: PageOutcome) {
        self.created += o.created;
        self.changed += o.changed;
        self.status_changed += o.status_changed;
        self.confirmed += o.confirmed;
        self.unchanged += o.unchanged;
        self.rejected += o.rejected;
    }
}
