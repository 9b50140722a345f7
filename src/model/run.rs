//! The record of one sync run, as the store keeps it and `status` and the metrics report it.

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
