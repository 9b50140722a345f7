//! Akinon's wire format: the records as the platform's JSON writes them, rendered once per
//! change.

use chrono::DateTime;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

pub(super) fn render<T: Serialize>(rec: &T) -> String {
    // Plain structs of strings, numbers and options: serialization cannot fail.
    serde_json::to_string(rec).expect("record serializes")
}

/// An empty JSON object (`extra_field`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Empty {}

/// The order object, fields in the document example's order.
#[derive(Debug, Clone, Serialize)]
pub(super) struct OrderRecord {
    pub(super) id: String,
    pub(super) number: String,
    pub(super) datasource: &'static str,
    pub(super) shipping_address: String,
    pub(super) billing_address: String,
    pub(super) date_placed: String,
    pub(super) status: u16,
    pub(super) currency: &'static str,
    pub(super) amount: Decimal,
    pub(super) discount_amount: Decimal,
    pub(super) shipping_amount: Decimal,
    pub(super) shipping_tax_rate: Option<Decimal>,
    pub(super) refund_amount: Decimal,
    pub(super) discount_refund_amount: Decimal,
    pub(super) shipping_refund_amount: Decimal,
    pub(super) invoice_number: Option<String>,
    pub(super) invoice_date: Option<String>,
    pub(super) e_archive_url: Option<String>,
    pub(super) tracking_number: Option<String>,
    pub(super) shipping_company: Option<&'static str>,
    pub(super) cargo_company: Option<&'static str>,
    pub(super) has_gift_box: bool,
    pub(super) gift_box_note: Option<&'static str>,
    pub(super) language_code: Option<&'static str>,
    pub(super) notes: Option<&'static str>,
    pub(super) delivery_range: Option<String>,
    pub(super) shipping_option_slug: Option<&'static str>,
    pub(super) extra_field: Empty,
    pub(super) cancel_status: Option<&'static str>,
    pub(super) shipping_interest_amount: Decimal,
}

/// The order-item object, fields in the document example's order.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ItemRecord {
    pub(super) id: String,
    pub(super) order: String,
    pub(super) sku: &'static str,
    pub(super) status: u16,
    pub(super) price_currency: &'static str,
    pub(super) price: Decimal,
    pub(super) tax_rate: Decimal,
    pub(super) invoice_number: Option<String>,
    pub(super) invoice_date: Option<String>,
    pub(super) e_archive_url: Option<String>,
    pub(super) tracking_number: Option<String>,
    pub(super) shipping_company: Option<&'static str>,
    pub(super) retail_price: Option<Decimal>,
    pub(super) extra_field: Empty,
    pub(super) estimated_delivery_date: Option<String>,
    pub(super) discount_amount: Decimal,
    pub(super) shipped_date: Option<String>,
    pub(super) delivered_date: Option<String>,
    pub(super) cancel_status: Option<&'static str>,
}

/// DRF's rendering of an aware UTC datetime: `Z`, microseconds only when there are any.
pub(super) fn render_time(micros: i64) -> String {
    let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
    if micros.rem_euclid(1_000_000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

pub(super) fn money(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// Rounded to cents and written with two decimals, as a `DecimalField(decimal_places=2)`.
pub(super) fn to_cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}
