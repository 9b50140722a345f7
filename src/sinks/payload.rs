//! What a receiver gets for one event: the message id it de-duplicates by, and the JSON body
//! (Standard Webhooks' `{type, timestamp, data}`), the same for webhooks and NATS.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::model::FeedItem;
use crate::store::parse_ts;

/// One event ready to send: built once, sent as often as it takes.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub event_id: i64,
    /// `webhook-id` and `Nats-Msg-Id`.
    pub message_id: String,
    pub platform: String,
    pub order_id: String,
    pub kind: String,
    pub body: Bytes,
    /// When the store committed the event, for the lag.
    pub observed_at: Option<DateTime<Utc>>,
}

/// The id a receiver de-duplicates by: the database's identity and the event's id, so it is
/// the same for every attempt and every replay of the event, and never the same for two
/// events, even across a database started afresh.
pub fn message_id(instance: &str, event_id: i64) -> String {
    format!("evt_{instance}_{event_id}")
}

/// The JSON body: `type` is `order.<kind>`, `timestamp` when the event was observed,
/// `data.event` the `order_events` row and `data.order` the order as stored now, with its
/// items.
pub fn prepare(instance: &str, item: &FeedItem) -> Prepared {
    let e = &item.event;
    let order = item.order.as_ref().map(|o| {
        let mut v = serde_json::to_value(o).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert(
                "items".into(),
                serde_json::to_value(&item.items).unwrap_or_default(),
            );
        }
        v
    });
    let body = json!({
        "type": format!("order.{}", e.kind),
        "timestamp": e.observed_at,
        "data": { "event": e, "order": order },
    });
    Prepared {
        event_id: e.id,
        message_id: message_id(instance, e.id),
        platform: e.platform.clone(),
        order_id: e.order_id.clone(),
        kind: e.kind.clone(),
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        observed_at: parse_ts(&e.observed_at),
    }
}
