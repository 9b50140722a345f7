//! SIRCLO's wire format: the records as the platform's JSON writes them, rendered once per
//! change.

use serde::Serialize;

use super::data::OrderState;
use super::platform_time;
use crate::core::render::Money;

/// One order in the document's field order; `id` first (the corrupting fault relies on it).
#[derive(Serialize)]
pub(super) struct Record {
    pub(super) id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) order_id: Option<String>,
    pub(super) order_date: String,
    pub(super) customer_reference: String,
    pub(super) shipment_reference: String,
    pub(super) status: String,
    pub(super) delivery_name: String,
    pub(super) delivery_email: String,
    pub(super) delivery_street_address: String,
    pub(super) delivery_region: &'static str,
    pub(super) delivery_city: &'static str,
    pub(super) delivery_country: &'static str,
    pub(super) delivery_post_code: String,
    pub(super) delivery_method: &'static str,
    pub(super) delivery_mobile: String,
    pub(super) airwaybill_number: String,
    pub(super) currency_code: &'static str,
    pub(super) subtotal: Money,
    pub(super) discount_total: Money,
    pub(super) shipping_total: Money,
    pub(super) tax_total: Money,
    pub(super) total: Money,
    pub(super) line_items: Vec<LineItem>,
    #[serde(rename = "createdAt")]
    pub(super) created_at: String,
    #[serde(rename = "updatedAt")]
    pub(super) updated_at: String,
}

#[derive(Serialize)]
pub(super) struct LineItem {
    pub(super) id: u64,
    pub(super) sku: &'static str,
    pub(super) name: &'static str,
    pub(super) quantity: u32,
    pub(super) raw_price: Money,
    pub(super) discount: Money,
}

pub(super) fn render(record: &mut Record, state: &OrderState) -> String {
    record.status = state.status.clone();
    record.airwaybill_number = state.airwaybill.clone().unwrap_or_default();
    record.updated_at = platform_time(state.updated);
    // Plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_string(record).expect("an order record serializes")
}
