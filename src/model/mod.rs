//! The canonical model every other layer speaks: the order and its statuses, the outbox's
//! actions and entries, and the records the store hands back. A leaf: it imports nothing from
//! the crate, so the store, the platforms and the engines can all depend on it without
//! depending on each other.

pub mod order;
pub mod outbox;
pub mod run;
pub mod stored;

pub use order::{Item, Order, Status};
pub use outbox::{Action, Entry, OrderSnapshot, Params};
pub use run::RunRecord;
pub use stored::{StoredItem, StoredOrder};
