//! MerchantPro records to the canonical model (docs/contract.md §4): `shipping_status` carries the
//! order's lifecycle, the id is also the number, items have no ids of their own.

use std::collections::BTreeMap;

use chrono::FixedOffset;
use rust_decimal::Decimal;

use super::wire;
use crate::model::{Item, Order, Status};
use crate::platforms::lenient::{BadTime, time_field};
use crate::platforms::map_status;

pub fn builtin_status(s: &str) -> Option<Status> {
    Some(match s.to_ascii_lowercase().as_str() {
        "awaiting" => Status::Pending,
        "confirmed" => Status::Accepted,
        "in_process" => Status::Processing,
        "shipped" => Status::Shipped,
        "delivered" => Status::Delivered,
        "returned" => Status::Returned,
        "cancelled" | "canceled" => Status::Cancelled,
        _ => return None,
    })
}

/// `Err` when a time is in a form the platform does not document: the record is rejected.
pub fn to_canonical(
    w: wire::Order,
    status_map: &BTreeMap<String, Status>,
    zone: FixedOffset,
) -> Result<Order, BadTime> {
    let placed_at = time_field("date_created", w.date_created.as_deref(), zone)?;
    let updated_at = time_field("date_modified", w.date_modified.as_deref(), zone)?;
    let platform_status = w.shipping_status.unwrap_or_default();
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let items = w
        .line_items
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, li)| Item {
            item_id: (i + 1).to_string(),
            sku: li.product_sku,
            name: match (li.product_name, li.variant_name) {
                (Some(n), Some(v)) if !v.is_empty() => Some(format!("{n} ({v})")),
                (n, _) => n,
            },
            quantity: li.quantity.unwrap_or(Decimal::ONE),
            unit_price: li.unit_price_gross,
            status: None,
        })
        .collect();
    Ok(Order {
        number: w.id.clone(),
        order_id: w.id,
        status: map_status(status_map, &platform_status, builtin_status),
        platform_status,
        placed_at,
        updated_at,
        currency: nonempty(w.currency),
        total: w.total_amount,
        customer_name: nonempty(w.billing_name).or(nonempty(w.shipping_name)),
        tracking_number: nonempty(w.shipping_awb),
        items,
    })
}
