//! The canonical order model: what every platform's wire format is mapped into,
//! and what the store, the change feed and the CLI speak.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Canonical order status. The string forms are the public contract (database, CLI, JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Accepted,
    Processing,
    Shipped,
    Delivered,
    Cancelling,
    Cancelled,
    Returned,
    Rejected,
    Unknown,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Pending,
        Status::Accepted,
        Status::Processing,
        Status::Shipped,
        Status::Delivered,
        Status::Cancelling,
        Status::Cancelled,
        Status::Returned,
        Status::Rejected,
        Status::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Processing => "processing",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
            Status::Rejected => "rejected",
            Status::Unknown => "unknown",
        }
    }

    /// Final orders are never re-read by reconcile; everything else may still move.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::Cancelled | Status::Returned | Status::Rejected
        )
    }

    /// The canonical state machine of docs/contract.md §4.
    pub fn can_transition_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, Accepted | Cancelled | Rejected)
                | (Accepted, Processing | Shipped | Cancelled)
                | (Processing, Shipped | Cancelled)
                | (Shipped, Delivered | Returned)
                | (Delivered, Returned)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a canonical status (one of: pending, accepted, processing, shipped, \
             delivered, cancelling, cancelled, returned, rejected, unknown)",
            self.0
        )
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == lower)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// One order in canonical form, as mapped from a platform record.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub order_id: String,
    pub number: String,
    pub status: Status,
    pub platform_status: String,
    pub placed_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub currency: Option<String>,
    pub total: Option<Decimal>,
    pub customer_name: Option<String>,
    pub tracking_number: Option<String>,
    pub items: Vec<Item>,
}

/// One line item. `item_id` is the platform's own id where it has one, else the 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub item_id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    pub status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert_eq!("Shipped".parse::<Status>().unwrap(), Status::Shipped);
        assert!("sent".parse::<Status>().is_err());
    }

    #[test]
    fn the_state_machine_allows_only_the_documented_moves() {
        assert!(Status::Pending.can_transition_to(Status::Accepted));
        assert!(Status::Shipped.can_transition_to(Status::Returned));
        assert!(!Status::Delivered.can_transition_to(Status::Pending));
        assert!(!Status::Cancelled.can_transition_to(Status::Accepted));
        assert!(!Status::Pending.can_transition_to(Status::Shipped));
    }
}
