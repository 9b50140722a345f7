//! What the store keeps and hands back. Records shown to people (an order, its items, its
//! events) carry the text columns as stored, so nothing is re-parsed on the way out; records the
//! engines decide on carry parsed times.

use chrono::{DateTime, Utc};

/// An order as the CLI shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredOrder {
    pub platform: String,
    pub order_id: String,
    pub number: String,
    pub status: String,
    pub platform_status: String,
    pub placed_at: Option<String>,
    pub updated_at: Option<String>,
    pub currency: Option<String>,
    pub total: Option<String>,
    pub customer_name: Option<String>,
    pub tracking_number: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub last_changed_at: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredItem {
    pub item_id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: String,
    pub unit_price: Option<String>,
    pub status: Option<String>,
}

/// One event of the change feed (`order_events`), as `events` and `order` print it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub platform: String,
    pub order_id: String,
    pub kind: String,
    pub old_status: Option<String>,
    pub new_status: Option<String>,
    pub changes: Option<serde_json::Value>,
    pub observed_at: String,
}

/// What a platform's pass or a verify needs to know of a stored order to decide whether to read
/// it again: its identity, its status both ways, its fingerprint and when a pass last read it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDigest {
    pub order_id: String,
    pub number: String,
    /// The canonical status as stored.
    pub status: String,
    pub platform_status: String,
    pub content_hash: String,
    /// `None` when the stored time is unreadable (a row another program wrote).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// The orders a reconcile pass re-reads, oldest placed first: every stored open order, and the
/// final ones that became final at or after `finals_since` (None: no final is watched). When
/// that was is the store's own last change of the order, or, for an order first seen already
/// final, the platform's update time (else its placing time): a first sync of a shop's history
/// must not put every old delivered order on watch. Orders placed before `placed_cap` (the optional `reconcile_horizon`) are left
/// out and only counted in `beyond_cap`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Watched {
    pub orders: Vec<WatchedOrder>,
    pub beyond_cap: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchedOrder {
    pub order_id: String,
    pub placed_at: Option<DateTime<Utc>>,
}
