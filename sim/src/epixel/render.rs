//! Epixel's wire format: the records as the platform's JSON writes them, rendered once per
//! change.

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::data::{Generated, OrderState, cents};
use super::{FIRST_ID, item_id, number_of};
use crate::core::render::Money;

/// Django REST's default: microseconds and the offset.
pub(super) fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
}

/// Money as the details write `price`: text with two decimals (`"49.90"`).
pub(super) fn price_text(d: Decimal) -> String {
    format!("{:.2}", d)
}

/// The list record, fields in the document's order.
#[derive(Serialize)]
pub(super) struct ListRecord<'a> {
    pub(super) id: u64,
    pub(super) uid: &'a str,
    pub(super) order_number: u64,
    pub(super) data: &'a Value,
    pub(super) order_total: Money,
    pub(super) currency_symbol: &'a str,
    pub(super) currency_code: Option<&'a str>,
    pub(super) order_type: &'a str,
    pub(super) status: &'a str,
    pub(super) created: String,
    pub(super) modified: String,
    pub(super) shipping_id: Option<u64>,
    pub(super) billing_id: Option<u64>,
}

/// One details line, fields in the document's order.
#[derive(Serialize)]
pub(super) struct DetailsLine<'a> {
    pub(super) id: u64,
    pub(super) product_id: u32,
    pub(super) bundle_id: Option<u32>,
    pub(super) line_item_label: &'a str,
    pub(super) quantity: u32,
    pub(super) price: String,
    pub(super) data: Value,
    pub(super) order_id: u64,
    pub(super) currency_code: &'a str,
    pub(super) order_id_id: u64,
    pub(super) status: &'a str,
    pub(super) image_path: String,
}

/// Renders the list record and the details lines with `state` applied.
pub(super) fn render(
    g: &Generated,
    created: DateTime<FixedOffset>,
    state: &OrderState,
) -> (String, String) {
    let id = FIRST_ID + g.index;
    let (code, symbol) = g.currency.unwrap_or(("", ""));
    let record = ListRecord {
        id,
        uid: &g.uid,
        order_number: number_of(g.index),
        data: &g.data,
        order_total: Money(g.total),
        currency_symbol: symbol,
        currency_code: g.currency.map(|c| c.0),
        order_type: g.order_type,
        status: &state.status,
        created: format_time(created),
        modified: format_time(state.modified),
        shipping_id: g.shipping_id,
        billing_id: g.billing_id,
    };
    let lines: Vec<DetailsLine<'_>> = g
        .lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let p = line.product;
            let unit = cents(p.price_cents);
            let total = unit * Decimal::from(line.quantity);
            let price = json!({
                // The document's price block: PHP-style `[]` for empty data, one base_price
                // component holding the line's amount.
                "data": [],
                "items": {
                    "base_price": {
                        "data": [],
                        "title": "Base price",
                        "total": Money(total),
                        "included": true,
                        "quantity": line.quantity,
                        "description": "Base price",
                        "currency_code": code,
                    }
                },
                "title": "Subtotal",
                "total": Money(total),
                "quantity": line.quantity,
                "description": p.name,
                "currency_code": code,
                "revenue_total": Money(total),
            });
            let data = json!({
                "price": price,
                "modules": {},
                "product": {
                    "sku": p.sku,
                    "product_type": p.kind.0,
                    "product_type_code": p.kind.1,
                },
                "item_display": {
                    "items": {
                        "varient_attributes": {
                            "title": "Variant attributes",
                            "params": {
                                "price": { "value": price_text(unit) },
                                "images": { "value": format!("products/{}.png", p.id) },
                                "product-name": { "value": p.name },
                                "whole-sale-price": { "value": Money(cents(p.price_cents * 4 / 5)) },
                            },
                            "display": {},
                            "description": p.name,
                        }
                    }
                },
            });
            DetailsLine {
                id: item_id(g.index, n as u64),
                product_id: p.id,
                bundle_id: p.bundle,
                line_item_label: p.name,
                quantity: line.quantity,
                price: price_text(unit),
                data,
                order_id: id,
                currency_code: code,
                order_id_id: id,
                status: &state.status,
                image_path: format!("/media/products/{}.png", p.id),
            }
        })
        .collect();
    // These types serialize infallibly: string keys only, no failing Serialize impls.
    (
        serde_json::to_string(&record).expect("list record serializes"),
        serde_json::to_string(&lines).expect("details serialize"),
    )
}
