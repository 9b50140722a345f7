//! Akinon records to the canonical model (docs/contract.md §4): an order object plus its order-item
//! records become one [`Order`]. `number` is `number`, `total` is `amount`, the canonical status
//! comes from the order's own integer status (100…900), and every item keeps its own integer
//! status as text. Also builds the raw JSON kept for the order, items included.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;

use super::wire;
use crate::model::{Item, Order, Status};
use crate::platforms::lenient::{BadTime, time_field};
use crate::platforms::map_status;

/// The key under which the stored raw order carries its items (the order object has none).
pub const ITEMS_KEY: &str = "order_items";

/// docs/contract.md §4 (akinon): 100 pending, 200 accepted, 300/400 processing, 500 shipped,
/// 600 delivered, 700 cancelling, 800 cancelled, 900 rejected.
pub fn builtin_status(s: &str) -> Option<Status> {
    Some(match s.trim().parse::<i64>().ok()? {
        100 => Status::Pending,
        200 => Status::Accepted,
        300 | 400 => Status::Processing,
        500 => Status::Shipped,
        600 => Status::Delivered,
        700 => Status::Cancelling,
        800 => Status::Cancelled,
        900 => Status::Rejected,
        _ => return None,
    })
}

/// One item record, read, with its raw JSON.
#[derive(Debug, Clone)]
pub struct RawItem {
    pub item: wire::Item,
    pub raw: String,
}

/// Maps an order and its items. `items` may come in any order and hold one item twice (pages
/// that shifted while being read); the result is sorted by item id and deduplicated, so the
/// same platform state always gives the same order and the same raw text. `Err` when a time is
/// in a form the platform does not document: the record is rejected.
pub fn to_canonical(
    o: wire::Order,
    items: &[RawItem],
    status_map: &BTreeMap<String, Status>,
    zone: FixedOffset,
) -> Result<Order, BadTime> {
    let (placed_at, updated_at) = times(&o, zone)?;
    let nonempty = |s: Option<String>| s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let platform_status = o.status.clone().unwrap_or_default().trim().to_string();
    let lines: Vec<Item> = items
        .iter()
        .map(|r| Item {
            item_id: r.item.id.clone(),
            sku: nonempty(r.item.sku.clone()),
            name: None,
            // Akinon has one order-item per unit: the record has no quantity.
            quantity: Decimal::ONE,
            unit_price: r.item.price,
            status: nonempty(r.item.status.clone()),
        })
        .collect();
    // Akinon ships per line; when the order has no tracking number of its own but every
    // tracked line went in the same parcel, that parcel's number is the order's.
    let tracking = nonempty(o.tracking_number.clone()).or_else(|| {
        let mut numbers = items
            .iter()
            .filter_map(|r| nonempty(r.item.tracking_number.clone()));
        let first = numbers.next()?;
        numbers.all(|n| n == first).then_some(first)
    });
    Ok(Order {
        number: nonempty(o.number.clone()).unwrap_or_else(|| o.id.clone()),
        status: map_status(status_map, &platform_status, builtin_status),
        platform_status,
        placed_at,
        updated_at,
        currency: nonempty(o.currency).map(|c| c.to_ascii_uppercase()),
        total: o.amount,
        customer_name: None,
        tracking_number: tracking,
        items: lines,
        order_id: o.id,
    })
}

/// The order's placed and updated times (`updated_at`, or the `modified_date` other Akinon
/// endpoints write). `Err` when one is in a form the platform does not document.
#[allow(clippy::type_complexity)]
pub fn times(
    o: &wire::Order,
    zone: FixedOffset,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), BadTime> {
    let placed_at = time_field("date_placed", o.date_placed.as_deref(), zone)?;
    let updated_at = match (&o.updated_at, &o.modified_date) {
        (Some(t), _) => time_field("updated_at", Some(t), zone)?,
        (None, t) => time_field("modified_date", t.as_deref(), zone)?,
    };
    Ok((placed_at, updated_at))
}

/// Sorts by item id and keeps the last copy of an item read twice.
pub fn settle_items(mut items: Vec<RawItem>) -> Vec<RawItem> {
    items.reverse();
    items.sort_by(|a, b| a.item.id.cmp(&b.item.id));
    items.dedup_by(|later, earlier| later.item.id == earlier.item.id);
    items
}

/// The raw JSON stored for an order: the order object exactly as received, with its item
/// records (as received) appended under [`ITEMS_KEY`]. One text, so the content hash changes
/// when only an item changes, and other programs still find the order's fields at the top.
pub fn raw_with_items(order_raw: &str, has_own_items_key: bool, items: &[RawItem]) -> String {
    let mut list = String::with_capacity(items.iter().map(|i| i.raw.len() + 1).sum::<usize>() + 2);
    list.push('[');
    for (n, i) in items.iter().enumerate() {
        if n > 0 {
            list.push(',');
        }
        list.push_str(&i.raw);
    }
    list.push(']');
    let body = order_raw.trim();
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .filter(|_| !has_own_items_key);
    match inner {
        Some(inner) if inner.trim().is_empty() => format!("{{\"{ITEMS_KEY}\":{list}}}"),
        Some(inner) => format!("{{{inner},\"{ITEMS_KEY}\":{list}}}"),
        // The platform sent its own `order_items`: keep both whole, side by side.
        None => format!("{{\"order\":{body},\"{ITEMS_KEY}\":{list}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn order(json: &str) -> wire::Order {
        serde_json::from_str(json).unwrap()
    }

    fn item(json: &str) -> RawItem {
        RawItem {
            item: serde_json::from_str(json).unwrap(),
            raw: json.to_string(),
        }
    }

    #[test]
    fn every_documented_status_maps_as_the_spec_table_says() {
        let table = [
            ("100", Status::Pending),
            ("200", Status::Accepted),
            ("300", Status::Processing),
            ("400", Status::Processing),
            ("500", Status::Shipped),
            ("600", Status::Delivered),
            ("700", Status::Cancelling),
            ("800", Status::Cancelled),
            ("900", Status::Rejected),
        ];
        for (wire, canonical) in table {
            assert_eq!(builtin_status(wire), Some(canonical), "{wire}");
        }
        assert_eq!(builtin_status("450"), None);
        assert_eq!(builtin_status("shipped"), None);
    }

    #[test]
    fn the_order_maps_number_amount_status_and_its_items() {
        let o = order(
            r#"{"id":"e8","number":"45243493","date_placed":"2019-01-01T00:00:00Z",
                "status":500,"currency":"usd","amount":"629.00","tracking_number":null}"#,
        );
        let items = settle_items(vec![
            item(r#"{"id":"b2","order":"e8","sku":"SP-B","status":800,"price":"29.00"}"#),
            item(
                r#"{"id":"a1","order":"e8","sku":"SP-A","status":500,"price":"600.00","tracking_number":"T1"}"#,
            ),
            item(r#"{"id":"b2","order":"e8","sku":"SP-B","status":800,"price":"29.00"}"#),
        ]);
        let c = to_canonical(o, &items, &BTreeMap::new(), utc()).unwrap();
        assert_eq!((c.order_id.as_str(), c.number.as_str()), ("e8", "45243493"));
        assert_eq!(
            (c.status, c.platform_status.as_str()),
            (Status::Shipped, "500")
        );
        assert_eq!(c.total.unwrap().to_string(), "629");
        assert_eq!(c.currency.as_deref(), Some("USD"));
        assert_eq!(c.tracking_number.as_deref(), Some("T1"));
        assert_eq!(
            c.placed_at.unwrap().to_rfc3339(),
            "2019-01-01T00:00:00+00:00"
        );
        assert_eq!(c.updated_at, None);
        let lines: Vec<(&str, Option<&str>)> = c
            .items
            .iter()
            .map(|i| (i.item_id.as_str(), i.status.as_deref()))
            .collect();
        assert_eq!(lines, [("a1", Some("500")), ("b2", Some("800"))]);
        assert_eq!(c.items[0].quantity, Decimal::ONE);
    }

    #[test]
    fn unknown_statuses_are_kept_and_status_map_overrides_the_table() {
        let o = order(r#"{"id":"x","number":"1","status":450}"#);
        let c = to_canonical(o.clone(), &[], &BTreeMap::new(), utc()).unwrap();
        assert_eq!(
            (c.status, c.platform_status.as_str()),
            (Status::Unknown, "450")
        );
        let map = BTreeMap::from([("450".to_string(), Status::Processing)]);
        assert_eq!(
            to_canonical(o, &[], &map, utc()).unwrap().status,
            Status::Processing
        );
        let c = to_canonical(order(r#"{"id":"y"}"#), &[], &BTreeMap::new(), utc()).unwrap();
        assert_eq!((c.number.as_str(), c.status), ("y", Status::Unknown));
    }

    #[test]
    fn the_raw_order_carries_its_items_and_stays_json() {
        let items = vec![item(r#"{"id":"a1","order":"e8","status":100}"#)];
        let raw = raw_with_items(r#"{"id":"e8","status":100}"#, false, &items);
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["status"], 100);
        assert_eq!(v[ITEMS_KEY][0]["id"], "a1");
        let raw = raw_with_items(r#"{"id":"e8","order_items":[]}"#, true, &items);
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["order"]["id"], "e8");
        assert_eq!(v[ITEMS_KEY][0]["id"], "a1");
    }
}
