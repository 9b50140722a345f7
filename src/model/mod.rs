//! The canonical model every other layer speaks: the order and its statuses, the outbox's
//! actions, entries and states, a fetched page on its way into the store, the records the store
//! hands back, and the change feed as the sinks deliver it. A leaf: it imports nothing from
//! the crate, so the store, the platforms and the engines can all depend on it without
//! depending on each other.

pub mod order;
pub mod outbox;
pub mod page;
pub mod run;
pub mod sink;
pub mod stored;

pub use order::{Item, Order, Status};
pub use outbox::{Action, Attempt, Entry, OrderSnapshot, OutboxRow, OutboxState, Params};
pub use page::{Incoming, PageOutcome, PageWrite, RejectRecord, content_hash};
pub use run::{PassProgress, PassState, RunRecord};
pub use sink::{EVENT_KINDS, FeedBatch, FeedFilter, FeedItem, SinkLag, SinkRecord};
pub use stored::{OrderDigest, StoredEvent, StoredItem, StoredOrder, Watched, WatchedOrder};
