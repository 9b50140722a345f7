//! The record of one sync run, as the store keeps it and `status` and the metrics report it, and
//! where a platform's incremental sync stands between runs.

use chrono::{DateTime, Utc};

/// One finished (or failed) run, as `status` reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunRecord {
    pub kind: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: String,
    pub fetched: u64,
    pub created: u64,
    pub changed: u64,
    pub rejected: u64,
    pub error: Option<String>,
}

/// Where a platform's incremental sync stands. `cursor` is the upper bound of the last completed
/// pass; while a pass runs, `pass` holds its frozen window and the token of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassState {
    pub cursor: Option<DateTime<Utc>>,
    pub pass: Option<PassProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassProgress {
    pub started_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Opaque to the store: the platform's own page token (a URL, an offset, a page number).
    pub resume: String,
}
