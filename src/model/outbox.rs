//! What an outbox entry is: the action (a canonical target status, or `invoice`), its
//! parameters, and the snapshot of the stored order a platform needs to build its request.

use std::fmt;
use std::str::FromStr;

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
