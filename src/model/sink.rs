//! The change feed as the sinks deliver it: a sink's stored progress, the filter that picks its
//! events, and one event with the order it is about.

use super::stored::{StoredEvent, StoredItem, StoredOrder};

/// The event kinds the feed holds, in the words of `order_events.kind`.
pub const EVENT_KINDS: &[&str] = &["created", "updated", "status_changed", "push_confirmed"];

/// Where a sink's delivery stands, as the database keeps it (`sink_state`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SinkRecord {
    pub name: String,
    /// Every event with an id up to this one was acknowledged by the receiver (or is not the
    /// sink's, by its filter).
    pub cursor: i64,
    /// Grows with every replay, so a worker that read a batch before the replay cannot move the
    /// cursor over the replayed events.
    pub epoch: i64,
    pub paused: bool,
    /// Why the sink stopped on its own (a receiver's 410), until an operator resumes it.
    pub disabled: Option<String>,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_delivered_at: Option<String>,
}

/// Which events a sink takes: `None` means all platforms, or all kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    pub platforms: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
}

/// One event with its order as the store holds it when the event is read for delivery.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub event: StoredEvent,
    /// `None` only if the order's row is gone (another program deleted it).
    pub order: Option<StoredOrder>,
    pub items: Vec<StoredItem>,
}

/// What one read of the feed for a sink gave.
#[derive(Debug, Clone, Default)]
pub struct FeedBatch {
    /// The sink's events after the cursor, in id order.
    pub items: Vec<FeedItem>,
    /// The cursor may move here once `items` are delivered: the last id read, or, when the
    /// read reached the feed's end, the feed's newest id (events the filter leaves out are
    /// passed over, not read again).
    pub up_to: i64,
}

/// How far behind the feed a sink is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SinkLag {
    /// The sink's events after its cursor.
    pub events: u64,
    /// Seconds since the oldest of them was committed; 0 with none.
    pub seconds: f64,
}
