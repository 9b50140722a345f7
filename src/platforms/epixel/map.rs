//! Epixel records to canonical form (docs/contract.md §4): `number` is `order_number`, `total` is
//! `order_total`, the status is free text mapped case-insensitively, and the items come from the
//! order's details (their own ids, else the 1-based position), each with its own status text.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::wire;
use crate::model::{Item, Order, Status};
use crate::platforms::lenient::{BadTime, time_field};
use crate::platforms::map_status;

/// The built-in reading of Epixel's status texts. The document shows none (`<status>`), so these
/// are the texts its commerce back office uses and their synonyms; docs/contract.md §4 maps only
/// to pending, accepted, processing, shipped, delivered and cancelled, so anything else (refunds,
/// failures) stays `unknown` unless a platform's `status_map` says otherwise. `_` and `-` read
/// as spaces, so `in_process`, `In-Process` and `in process` are one status.
pub fn builtin_status(s: &str) -> Option<Status> {
    let words: Vec<String> = s
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    Some(match words.join(" ").as_str() {
        "pending" | "new" | "on hold" | "payment pending" | "awaiting payment" => Status::Pending,
        "confirmed" | "accepted" | "approved" | "paid" => Status::Accepted,
        "processing" | "in process" | "in progress" | "packed" => Status::Processing,
        "shipped" | "dispatched" | "in transit" => Status::Shipped,
        "delivered" | "completed" | "complete" => Status::Delivered,
        "cancelled" | "canceled" => Status::Cancelled,
        _ => return None,
    })
}

/// `items` is `None` while the order's details could not be read: the order is stored without
/// lines rather than not at all. `Err` when a time is in a form the platform does not document:
/// the record is rejected.
pub fn to_canonical(
    w: wire::Order,
    items: Option<Vec<wire::Item>>,
    status_map: &BTreeMap<String, Status>,
    zone: FixedOffset,
) -> Result<Order, BadTime> {
    let (placed_at, updated_at) = times(&w, zone)?;
    let platform_status = w.status.unwrap_or_default();
    let nonempty = |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let items = items
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let at = |p: &str| it.data.as_ref().and_then(|d| d.pointer(p)).and_then(text);
            Item {
                item_id: it.id.unwrap_or_else(|| (i + 1).to_string()),
                sku: at("/product/sku"),
                name: nonempty(it.line_item_label).or_else(|| {
                    at("/item_display/items/varient_attributes/params/product-name/value")
                }),
                quantity: it.quantity.unwrap_or(Decimal::ONE),
                unit_price: it.price,
                status: nonempty(it.status),
            }
        })
        .collect();
    Ok(Order {
        order_id: w.id,
        number: w.order_number,
        status: map_status(status_map, &platform_status, builtin_status),
        platform_status,
        placed_at,
        updated_at,
        currency: nonempty(w.currency_code),
        total: w.order_total,
        customer_name: w.data.as_ref().and_then(customer_name),
        tracking_number: None,
        items,
    })
}

/// The order's created and modified times. `Err` when one is in a form the platform does not
/// document.
#[allow(clippy::type_complexity)]
pub fn times(
    w: &wire::Order,
    zone: FixedOffset,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), BadTime> {
    Ok((
        time_field("created", w.created.as_deref(), zone)?,
        time_field("modified", w.modified.as_deref(), zone)?,
    ))
}

/// The order's address name, as create-order takes it (`address.address_first_name`, …).
fn customer_name(data: &Value) -> Option<String> {
    let part = |p: &str| data.pointer(p).and_then(text);
    let name = [
        part("/address/address_first_name"),
        part("/address/address_last_name"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    (!name.is_empty()).then_some(name)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    #[test]
    fn status_texts_map_case_insensitively_and_unknown_ones_are_kept() {
        assert_eq!(builtin_status("SHIPPED"), Some(Status::Shipped));
        assert_eq!(builtin_status(" On Hold "), Some(Status::Pending));
        assert_eq!(builtin_status("In_Process"), Some(Status::Processing));
        assert_eq!(builtin_status("Completed"), Some(Status::Delivered));
        assert_eq!(builtin_status("Canceled"), Some(Status::Cancelled));
        assert_eq!(builtin_status("Refund Requested"), None);

        let o: wire::Order =
            serde_json::from_str(r#"{"id":1,"order_number":100001,"status":"Refund Requested"}"#)
                .unwrap();
        let c = to_canonical(o, None, &BTreeMap::new(), utc()).unwrap();
        assert_eq!(
            (c.status, c.platform_status.as_str()),
            (Status::Unknown, "Refund Requested")
        );
    }

    #[test]
    fn the_configured_status_map_wins_over_the_built_in_one() {
        let map = BTreeMap::from([
            ("refund requested".to_owned(), Status::Returned),
            ("shipped".to_owned(), Status::Delivered),
        ]);
        let status = |s: &str| map_status(&map, s, builtin_status);
        assert_eq!(status("Refund REQUESTED"), Status::Returned);
        assert_eq!(status("Shipped"), Status::Delivered);
        assert_eq!(status("Pending"), Status::Pending);
    }

    #[test]
    fn an_order_takes_its_number_total_and_lines_from_the_list_and_the_details() {
        let o: wire::Order = serde_json::from_str(
            r#"{"id":42,"order_number":100123,"order_total":59.8,"currency_code":"USD",
                "status":"Delivered","created":"2025-01-01T10:00:00.250000+05:30",
                "modified":"2025-01-03T10:00:00+05:30",
                "data":{"address":{"address_first_name":"Asha","address_last_name":"Nair"}}}"#,
        )
        .unwrap();
        let items = wire::parse_items(
            r#"[{"id":9001,"line_item_label":"Starter Pack","quantity":2,"price":"19.90",
                 "status":"Delivered","data":{"product":{"sku":"PK-1"}}},
                {"id":null,"line_item_label":"","quantity":1,"price":"20","data":[],
                 "status":"Delivered"}]"#,
        )
        .unwrap();
        let c = to_canonical(o, Some(items), &BTreeMap::new(), utc()).unwrap();
        assert_eq!((c.order_id.as_str(), c.number.as_str()), ("42", "100123"));
        assert_eq!(c.total.unwrap().to_string(), "59.8");
        assert_eq!(c.currency.as_deref(), Some("USD"));
        assert_eq!(c.status, Status::Delivered);
        assert_eq!(c.customer_name.as_deref(), Some("Asha Nair"));
        assert_eq!(
            c.placed_at.unwrap().to_rfc3339(),
            "2025-01-01T04:30:00.250+00:00"
        );
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.items[0].item_id, "9001");
        assert_eq!(c.items[0].sku.as_deref(), Some("PK-1"));
        assert_eq!(c.items[0].unit_price.unwrap().to_string(), "19.9");
        assert_eq!(c.items[0].status.as_deref(), Some("Delivered"));
        assert_eq!(c.items[1].item_id, "2", "no id: the 1-based position");
        assert_eq!(c.items[1].name, None);
    }
}
