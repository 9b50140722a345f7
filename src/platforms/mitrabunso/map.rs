//! Mitrabunso records to the canonical model (docs/contract.md §4): the top-level `status` is the
//! lifecycle (`DRAFT` → `NEW` → `PROCESSED` → `SENT`); `updatedInvoice` and `updatedAWB`, when
//! not empty, supersede `order.invoice` and `order.awb`; `total` is `order.totalCost`;
//! items have no ids of their own, so their id is their 1-based position. Times carry no zone and
//! are read in the configured one (UTC+7 unless `timezone` says otherwise).

use std::collections::BTreeMap;

use chrono::FixedOffset;
use rust_decimal::Decimal;

use super::wire;
use crate::model::{Item, Order, Status};
use crate::platforms::lenient::{BadTime, time_field};
use crate::platforms::map_status;

/// Per docs/contract.md §4. The platform writes its statuses in capitals; other spellings of
/// the same words are accepted, since nothing is gained by calling them unknown.
pub fn builtin_status(s: &str) -> Option<Status> {
    Some(match s.to_ascii_uppercase().as_str() {
        "DRAFT" => Status::Pending,
        "NEW" => Status::Accepted,
        "PROCESSED" => Status::Processing,
        "SENT" => Status::Shipped,
        _ => return None,
    })
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `Err` when a time is in a form the platform does not document: the record is rejected.
pub fn to_canonical(
    w: wire::Record,
    status_map: &BTreeMap<String, Status>,
    zone: FixedOffset,
) -> Result<Order, BadTime> {
    let platform_status = w.status.unwrap_or_default();
    let placed_at = time_field("createdAt", w.created_at.as_deref(), zone)?;
    // The record has no "modified" time; the latest lifecycle stamp is the last thing the
    // platform says happened to the order.
    let updated_at = [
        placed_at,
        time_field("processedAt", w.processed_at.as_deref(), zone)?,
        time_field("sentAt", w.sent_at.as_deref(), zone)?,
    ]
    .into_iter()
    .flatten()
    .max();
    let items = w
        .details
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let quantity = d.qty.unwrap_or(Decimal::ONE);
            let unit_price = d.product_price.or_else(|| {
                d.total_price
                    .filter(|_| !quantity.is_zero())
                    .map(|t| (t / quantity).normalize())
            });
            Item {
                item_id: (i + 1).to_string(),
                // The platform's product id is what identifies the article; there is no SKU.
                sku: nonempty(d.product_id),
                name: nonempty(d.product_name),
                quantity,
                unit_price,
                status: None,
            }
        })
        .collect();
    let order_id = w.order.order_id;
    Ok(Order {
        number: nonempty(w.updated_invoice)
            .or(nonempty(w.order.invoice))
            .unwrap_or_else(|| order_id.clone()),
        order_id,
        status: map_status(status_map, &platform_status, builtin_status),
        platform_status,
        placed_at,
        updated_at,
        // The platform never names a currency (every amount is rupiah in practice); storing a
        // guess would pass an assumption off as the platform's word.
        currency: None,
        total: w.order.total_cost,
        customer_name: w.customer.and_then(|c| nonempty(c.name)),
        tracking_number: nonempty(w.updated_awb).or(nonempty(w.order.awb)),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> wire::Record {
        serde_json::from_str(json).unwrap()
    }

    fn utc7() -> FixedOffset {
        FixedOffset::east_opt(7 * 3600).unwrap()
    }

    #[test]
    fn updated_invoice_and_awb_supersede_the_originals_unless_empty() {
        let o = to_canonical(
            record(
                r#"{"order":{"order_id":"a","invoice":"INV-1","awb":"JP1"},
                    "updatedInvoice":"INV-1b","updatedAWB":"JP2","status":"NEW"}"#,
            ),
            &BTreeMap::new(),
            utc7(),
        )
        .unwrap();
        assert_eq!(
            (o.number.as_str(), o.tracking_number.as_deref()),
            ("INV-1b", Some("JP2"))
        );
        let o = to_canonical(
            record(
                r#"{"order":{"order_id":"a","invoice":"INV-1","awb":"JP1"},
                    "updatedInvoice":" ","updatedAWB":null,"status":"NEW"}"#,
            ),
            &BTreeMap::new(),
            utc7(),
        )
        .unwrap();
        assert_eq!(
            (o.number.as_str(), o.tracking_number.as_deref()),
            ("INV-1", Some("JP1"))
        );
        let o = to_canonical(
            record(r#"{"order":{"order_id":"a","invoice":"","awb":""},"status":"NEW"}"#),
            &BTreeMap::new(),
            utc7(),
        )
        .unwrap();
        assert_eq!(
            (o.number.as_str(), o.tracking_number),
            ("a", None),
            "no invoice: the id"
        );
    }

    #[test]
    fn statuses_follow_the_spec_table_the_config_and_keep_unknown_ones() {
        let map = |s: &str, overrides: &BTreeMap<String, Status>| {
            let json = format!(r#"{{"order":{{"order_id":"a"}},"status":"{s}"}}"#);
            let o = to_canonical(record(&json), overrides, utc7()).unwrap();
            (o.status, o.platform_status)
        };
        let none = BTreeMap::new();
        assert_eq!(map("DRAFT", &none).0, Status::Pending);
        assert_eq!(map("NEW", &none).0, Status::Accepted);
        assert_eq!(map("PROCESSED", &none).0, Status::Processing);
        assert_eq!(map("SENT", &none).0, Status::Shipped);
        assert_eq!(
            map("RETURNED", &none),
            (Status::Unknown, "RETURNED".to_string())
        );
        let overrides = BTreeMap::from([
            ("returned".to_string(), Status::Returned),
            ("sent".to_string(), Status::Delivered),
        ]);
        assert_eq!(map("RETURNED", &overrides).0, Status::Returned);
        assert_eq!(map("SENT", &overrides).0, Status::Delivered);
    }

    #[test]
    fn times_are_read_in_the_configured_zone_and_the_latest_stamp_is_the_update() {
        let json = r#"{"order":{"order_id":"a"},"status":"SENT","createdAt":"2022-09-20 05:36:50",
                       "processedAt":"2022-09-21 08:00:00","sentAt":"2022-09-21 07:00:00"}"#;
        let o = to_canonical(record(json), &BTreeMap::new(), utc7()).unwrap();
        assert_eq!(
            o.placed_at.unwrap().to_rfc3339(),
            "2022-09-19T22:36:50+00:00"
        );
        assert_eq!(
            o.updated_at.unwrap().to_rfc3339(),
            "2022-09-21T01:00:00+00:00"
        );
        let utc = FixedOffset::east_opt(0).unwrap();
        let o = to_canonical(record(json), &BTreeMap::new(), utc).unwrap();
        assert_eq!(
            o.placed_at.unwrap().to_rfc3339(),
            "2022-09-20T05:36:50+00:00"
        );
    }

    #[test]
    fn items_are_numbered_by_position_with_string_numbers_read() {
        let o = to_canonical(
            record(
                r#"{"order":{"order_id":"a","totalCost":"105000"},"status":"NEW",
                    "details":[{"productId":"p1","qty":"2","productPrice":"35000","productName":"A"},
                               {"productId":"p2","qty":1,"totalPrice":35000,"productName":"B"}]}"#,
            ),
            &BTreeMap::new(),
            utc7(),
        ).unwrap();
        assert_eq!(o.total, Some(Decimal::from(105000)));
        assert_eq!(o.currency, None);
        let items: Vec<_> = o
            .items
            .iter()
            .map(|i| {
                (
                    i.item_id.as_str(),
                    i.sku.as_deref(),
                    i.quantity,
                    i.unit_price,
                )
            })
            .collect();
        assert_eq!(
            items,
            [
                (
                    "1",
                    Some("p1"),
                    Decimal::from(2),
                    Some(Decimal::from(35000))
                ),
                ("2", Some("p2"), Decimal::ONE, Some(Decimal::from(35000))),
            ]
        );
    }
}
