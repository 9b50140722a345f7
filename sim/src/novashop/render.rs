//! Novashop's wire format: an order record as the API writes it, rendered once per change.
//! Nested objects for money, buyer and shipment; `updated` in epoch seconds next to an RFC 3339
//! `created_at`; every amount a string with two decimals.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::data::{StoredOrder, line_id};

/// The record's fields in the platform's order; `id` must stay first, where
/// [`push_record`](crate::core::faults::push_record) looks for it.
#[derive(Serialize)]
struct Record<'a> {
    id: u64,
    reference: &'a str,
    state: &'a str,
    created_at: String,
    updated: i64,
    money: Money<'a>,
    buyer: Buyer<'a>,
    shipment: Option<Shipment<'a>>,
    lines: Vec<LineRecord<'a>>,
}

#[derive(Serialize)]
struct Money<'a> {
    currency: &'a str,
    total: String,
}

#[derive(Serialize)]
struct Buyer<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Shipment<'a> {
    tracking_number: &'a str,
}

#[derive(Serialize)]
struct LineRecord<'a> {
    line_id: String,
    sku: &'a str,
    title: &'a str,
    quantity: u32,
    unit_price: String,
}

/// `2025-01-01T00:00:00+00:00`: whole seconds, UTC written as an offset.
pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// An amount as the platform writes it: a string with exactly two decimals (`"12.50"`).
pub(super) fn format_amount(d: Decimal) -> String {
    format!("{d:.2}")
}

pub(super) fn render(o: &StoredOrder) -> String {
    let record = Record {
        id: o.id,
        reference: &o.facts.reference,
        state: &o.state.state,
        created_at: format_time(o.created),
        updated: o.state.updated,
        money: Money {
            currency: o.facts.currency,
            total: format_amount(o.facts.total),
        },
        buyer: Buyer {
            name: &o.facts.buyer_name,
        },
        shipment: o
            .state
            .tracking_number
            .as_deref()
            .map(|tracking_number| Shipment { tracking_number }),
        lines: o
            .facts
            .lines
            .iter()
            .enumerate()
            .map(|(k, l)| LineRecord {
                line_id: line_id(k),
                sku: l.sku,
                title: l.title,
                quantity: l.quantity,
                unit_price: format_amount(l.unit_price),
            })
            .collect(),
    };
    // Plain strings and numbers only: serializing cannot fail.
    serde_json::to_string(&record).expect("order record serializes")
}
