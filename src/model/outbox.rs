//! What an outbox entry is: the action (a canonical target status, or `invoice`), its
//! parameters, its delivery state, and the snapshot of the stored order a platform needs to
//! build its request.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Status, StoredItem};

/// What a push asks the platform to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Move the order to this canonical status.
    Status(Status),
    /// Issue the invoice (MerchantPro's `create_invoice`).
    Invoice,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Status(s) => s.as_str(),
            Action::Invoice => "invoice",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("invoice") {
            return Ok(Action::Invoice);
        }
        s.parse::<Status>()
            .map(Action::Status)
            .map_err(|e| format!("{e}, or `invoice`"))
    }
}

/// The transition's parameters, as the `transition` command takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_by: Option<String>,
    /// Item ids to act on (Akinon rejects these items only); empty means every item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// One claimed entry, with what the platform needs to send it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    pub platform: String,
    pub order_id: String,
    pub action: Action,
    pub params: Params,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The last attempt may have reached the platform: read back before sending.
    pub outcome_unknown: bool,
    pub order: OrderSnapshot,
}

/// The stored order as the last sync saw it.
#[derive(Debug, Clone)]
pub struct OrderSnapshot {
    pub number: String,
    pub status: Status,
    pub platform_status: String,
    /// The platform's record as received (SIRCLO's `updatedAt` is sent back byte for byte).
    pub raw: String,
    pub items: Vec<StoredItem>,
}

/// Where an outbox entry stands. The text forms are the public contract (the `outbox` table's
/// `state` column, `outbox --state`, JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its `next_attempt_at`.
    Pending,
    /// Claimed by a drain under a lease; it may have reached the platform.
    InFlight,
    Done,
    /// Given up on; waits for the operator (`outbox retry` or `outbox cancel`).
    Failed,
    Cancelled,
}

impl OutboxState {
    pub const ALL: [OutboxState; 5] = [
        OutboxState::Pending,
        OutboxState::InFlight,
        OutboxState::Done,
        OutboxState::Failed,
        OutboxState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::InFlight => "in_flight",
            OutboxState::Done => "done",
            OutboxState::Failed => "failed",
            OutboxState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`: tables align states in columns.
        f.pad(self.as_str())
    }
}

impl FromStr for OutboxState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboxState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = OutboxState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown outbox state `{s}` (one of: {})", all.join(", "))
            })
    }
}

/// One entry as `outbox` lists it. The action stays text: rows other programs wrote may name
/// one this version does not know, and the listing must still show them.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub platform: String,
    pub order_id: String,
    pub action: String,
    pub params: serde_json::Value,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// How one delivery attempt of a claimed entry ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `Done`, `Failed`, or `Pending` to try again at `next_attempt_at`.
    pub state: OutboxState,
    /// Attempts made, this one included.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The attempt may have reached the platform: the next one reads the order back first.
    pub outcome_unknown: bool,
    pub at: DateTime<Utc>,
}
