//! SIRCLO records to the canonical model (docs/contract.md §4): `status` carries the lifecycle,
//! `order_number` (or `order_id`) is the number, `total` the platform's own total, items keep
//! SIRCLO's item ids. `createdAt`/`updatedAt` carry no zone (UTC unless `timezone` says
//! otherwise); `order_date` is RFC 3339.

use std::collections::{BTreeMap, HashSet};

use chrono::FixedOffset;
use rust_decimal::Decimal;

use super::wire;
use crate::model::{Item, Order, Status};
use crate::platforms::lenient::{BadTime, time_field};
use crate::platforms::map_status;

/// docs/contract.md §4 (sirclo). An empty status is pending: the document says the platform
/// assigns "pending" to an order created without one.
pub fn builtin_status(s: &str) -> Option<Status> {
    Some(match s.to_ascii_lowercase().as_str() {
        "" | "pending" => Status::Pending,
        "accepted" => Status::Accepted,
        "packed" => Status::Shipped,
        "completed" => Status::Delivered,
        "canceled" | "cancelled" => Status::Cancelled,
        _ => return None,
    })
}

/// The document's `order_date` example: Go's layout string, not a date. A record carrying it
/// has no order date of its own.
const GO_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// `Err` when a time is in a form the platform does not document: the record is rejected.
pub fn to_canonical(
    w: wire::Order,
    status_map: &BTreeMap<String, Status>,
    zone: FixedOffset,
) -> Result<Order, BadTime> {
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let platform_status = w.status.unwrap_or_default();
    let created_at = time_field("createdAt", w.created_at.as_deref(), zone)?;
    let order_date = w.order_date.as_deref().filter(|d| d.trim() != GO_LAYOUT);
    // Without an order date of its own, the record's creation time is the next best thing.
    let placed_at = time_field("order_date", order_date, zone)?.or(created_at);
    let updated_at = time_field("updatedAt", w.updated_at.as_deref(), zone)?;
    Ok(Order {
        number: nonempty(w.order_number)
            .or(nonempty(w.order_id))
            .unwrap_or_else(|| w.id.clone()),
        order_id: w.id,
        status: map_status(status_map, &platform_status, builtin_status),
        platform_status,
        placed_at,
        updated_at,
        currency: nonempty(w.currency_code),
        total: w.total,
        customer_name: nonempty(w.delivery_name),
        tracking_number: nonempty(w.airwaybill_number),
        items: items(w.line_items.unwrap_or_default()),
    })
}

/// Items keyed by SIRCLO's item id. The document calls that id "id of the product", so one
/// product on two lines would collide in `order_items`; a repeated (or missing) id gets the
/// line's 1-based position instead, suffixed so it cannot collide with a real id.
fn items(lines: Vec<wire::LineItem>) -> Vec<Item> {
    let mut seen = HashSet::new();
    lines
        .into_iter()
        .enumerate()
        .map(|(i, li)| {
            let position = i + 1;
            let item_id = match li.id.map(|s| s.trim().to_string()) {
                Some(id) if !id.is_empty() && seen.insert(id.clone()) => id,
                Some(id) if !id.is_empty() => format!("{id}#{position}"),
                _ => format!("#{position}"),
            };
            Item {
                item_id,
                sku: li.sku,
                name: li.name,
                quantity: li.quantity.unwrap_or(Decimal::ONE),
                unit_price: li.unit_price.or(li.raw_price),
                status: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn read(json: &str) -> Order {
        to_canonical(serde_json::from_str(json).unwrap(), &BTreeMap::new(), utc()).unwrap()
    }

    #[test]
    fn the_documents_example_maps_field_by_field() {
        let o = read(
            r#"{"id": 1, "order_number": "ABC123", "order_date": "2006-01-02T15:04:05Z07:00",
                "status": "accepted", "delivery_name": "Artia", "airwaybill_number": "AWB12345678",
                "currency_code": "IDR", "total": 115000,
                "line_items": [{"id": 3, "sku": "DKL0907", "name": "Product ABC", "quantity": 2,
                                "raw_price": 100000, "discount": 10000}],
                "createdAt": "2019-05-27 06:05:11.979185", "updatedAt": "2019-05-27 06:05:11.979185"}"#,
        );
        assert_eq!((o.order_id.as_str(), o.number.as_str()), ("1", "ABC123"));
        assert_eq!(
            (o.status, o.platform_status.as_str()),
            (Status::Accepted, "accepted")
        );
        assert_eq!(o.total, Some(Decimal::from(115_000)));
        assert_eq!(o.currency.as_deref(), Some("IDR"));
        assert_eq!(o.customer_name.as_deref(), Some("Artia"));
        assert_eq!(o.tracking_number.as_deref(), Some("AWB12345678"));
        // The placeholder order_date does not parse: the creation time stands in.
        let placed = o.placed_at.unwrap().to_rfc3339();
        assert_eq!(placed, "2019-05-27T06:05:11.979185+00:00");
        assert_eq!(o.updated_at.unwrap().to_rfc3339(), placed);
        assert_eq!(o.items.len(), 1);
        let item = &o.items[0];
        assert_eq!(item.item_id, "3");
        assert_eq!(item.quantity, Decimal::from(2));
        assert_eq!(item.unit_price, Some(Decimal::from(100_000)));
        assert_eq!(item.status, None);
    }

    #[test]
    fn statuses_follow_the_spec_table_and_unknown_ones_are_kept() {
        for (platform, canonical) in [
            ("pending", Status::Pending),
            ("accepted", Status::Accepted),
            ("packed", Status::Shipped),
            ("completed", Status::Delivered),
            ("canceled", Status::Cancelled),
            ("cancelled", Status::Cancelled),
            ("Packed", Status::Shipped),
            ("returned_to_seller", Status::Unknown),
        ] {
            let o = read(&format!(r#"{{"id": 5, "status": "{platform}"}}"#));
            assert_eq!(o.status, canonical, "{platform}");
            assert_eq!(o.platform_status, platform);
        }
        let mut overrides = BTreeMap::new();
        overrides.insert("returned_to_seller".to_string(), Status::Returned);
        let w = serde_json::from_str(r#"{"id": 5, "status": "returned_to_seller"}"#).unwrap();
        assert_eq!(
            to_canonical(w, &overrides, utc()).unwrap().status,
            Status::Returned
        );
    }

    #[test]
    fn order_id_stands_in_for_a_missing_order_number_and_the_id_for_both() {
        assert_eq!(
            read(r#"{"id": 9, "order_id": "ORD-123"}"#).number,
            "ORD-123"
        );
        assert_eq!(
            read(r#"{"id": 9, "order_number": "", "order_id": "X"}"#).number,
            "X"
        );
        assert_eq!(read(r#"{"id": "9"}"#).number, "9");
    }

    #[test]
    fn order_date_wins_over_created_at_and_naive_times_follow_the_zone() {
        let w: wire::Order = serde_json::from_str(
            r#"{"id": 1, "order_date": "2025-03-01T10:00:00+07:00",
                "createdAt": "2025-03-01 03:00:05.5", "updatedAt": "2025-03-02 00:00:00"}"#,
        )
        .unwrap();
        let plus7 = FixedOffset::east_opt(7 * 3600).unwrap();
        let o = to_canonical(w, &BTreeMap::new(), plus7).unwrap();
        assert_eq!(
            o.placed_at.unwrap().to_rfc3339(),
            "2025-03-01T03:00:00+00:00"
        );
        assert_eq!(
            o.updated_at.unwrap().to_rfc3339(),
            "2025-03-01T17:00:00+00:00"
        );
    }

    #[test]
    fn repeated_or_missing_item_ids_get_their_position() {
        let o = read(
            r#"{"id": 1, "line_items": [{"id": 7, "quantity": "1", "unit_price": "10.5"},
                {"id": 7}, {"sku": "X"}, {"id": null, "raw_price": 3}]}"#,
        );
        let ids: Vec<&str> = o.items.iter().map(|i| i.item_id.as_str()).collect();
        assert_eq!(ids, ["7", "7#2", "#3", "#4"]);
        assert_eq!(o.items[0].unit_price, Some(Decimal::new(105, 1)));
        assert_eq!(o.items[1].quantity, Decimal::ONE);
    }

    #[test]
    fn records_without_a_usable_id_do_not_read() {
        for bad in [
            r#"{"order_number": "A"}"#,
            r#"{"id": {"x": 1}}"#,
            r#"{"id": ""}"#,
        ] {
            assert!(serde_json::from_str::<wire::Order>(bad).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<wire::Order>(r#"{"id": 1, "total": [1]}"#).is_err(),
            "a total of the wrong type rejects the record"
        );
    }
}
