//! MerchantPro's wire format: the records as the platform's JSON writes them, rendered once per
//! change.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::Value;

use super::SHOP_URL;
use super::data::{Generated, OrderState};
use crate::core::render::Money;

pub(super) fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The order object's fields up to `line_items`, in the document's order.
#[derive(Serialize)]
pub(super) struct OrderHead {
    pub(super) id: u64,
    pub(super) payment_status: &'static str,
    pub(super) payment_status_text: &'static str,
    pub(super) payment_method_code: &'static str,
    pub(super) payment_method_name: &'static str,
    pub(super) shipping_status: String,
    pub(super) shipping_status_text: String,
    pub(super) shipping_method_id: u32,
    pub(super) shipping_method_name: Option<&'static str>,
    pub(super) shipping_awb: Option<String>,
    pub(super) shipping_amount: Option<Money>,
    pub(super) shipping_tax_amount: Option<Money>,
    pub(super) total_amount: Money,
    pub(super) currency: &'static str,
    pub(super) customer_id: u64,
    pub(super) customer_email: Option<String>,
    pub(super) customer_ip_address: String,
    pub(super) customer_ip_country: &'static str,
    pub(super) customer_device: &'static str,
    pub(super) customer_lang: Option<&'static str>,
    pub(super) customer_note: Option<&'static str>,
    pub(super) customer_notification: Option<&'static str>,
    pub(super) date_created: String,
    pub(super) date_modified: String,
    pub(super) created_by: &'static str,
    pub(super) meta_fields: Option<Value>,
    pub(super) tags: Option<Vec<Tag>>,
    pub(super) billing_type: &'static str,
    pub(super) billing_name: String,
    pub(super) billing_company_name: Option<String>,
    pub(super) billing_company_number: Option<String>,
    pub(super) billing_company_vat: Option<String>,
    pub(super) billing_company_bank_name: Option<&'static str>,
    pub(super) billing_company_bank_account: Option<String>,
    pub(super) billing_country_code: &'static str,
    pub(super) billing_country_name: &'static str,
    pub(super) billing_state: &'static str,
    pub(super) billing_city: &'static str,
    pub(super) billing_address: String,
    pub(super) billing_postal_code: String,
    pub(super) billing_phone: String,
    pub(super) shipping_name: String,
    pub(super) shipping_country_code: &'static str,
    pub(super) shipping_country_name: &'static str,
    pub(super) shipping_state: &'static str,
    pub(super) shipping_city: &'static str,
    pub(super) shipping_address: Option<String>,
    pub(super) shipping_postal_code: Option<String>,
    pub(super) shipping_phone: Option<String>,
}

/// The fields after `line_items`.
#[derive(Serialize)]
pub(super) struct OrderTail {
    pub(super) invoice: Option<Invoice>,
    pub(super) info_url: String,
    pub(super) proforma_url: String,
}

#[derive(Serialize)]
pub(super) struct Invoice {
    pub(super) prefix: &'static str,
    pub(super) number: String,
    pub(super) app: &'static str,
    pub(super) cancelled: bool,
    pub(super) url: String,
}

#[derive(Serialize)]
pub(super) struct Tag {
    pub(super) id: u32,
    pub(super) name: &'static str,
}

#[derive(Serialize)]
pub(super) struct LineItem {
    pub(super) item_type: &'static str,
    pub(super) product_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) variant_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) variant_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) variant_options: Option<[VariantOption; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) family_sku: Option<&'static str>,
    pub(super) product_sku: Option<String>,
    pub(super) product_ean: Option<String>,
    pub(super) product_name: &'static str,
    pub(super) product_url: String,
    pub(super) product_image_url: String,
    pub(super) product_tax_name: &'static str,
    pub(super) product_tax_percent: u32,
    pub(super) category_id: u32,
    pub(super) category_name: &'static str,
    pub(super) manufacturer_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) manufacturer_name: Option<&'static str>,
    pub(super) quantity: u32,
    pub(super) unit_price_net: Money,
    pub(super) unit_tax_amount: Money,
    pub(super) unit_price_gross: Money,
    pub(super) line_subtotal_net: Money,
    pub(super) line_tax_amount: Money,
    pub(super) line_subtotal_gross: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) meta_fields: Option<ItemMeta>,
}

#[derive(Serialize)]
pub(super) struct VariantOption {
    pub(super) id: u32,
    pub(super) name: &'static str,
    pub(super) value: &'static str,
}

#[derive(Serialize)]
pub(super) struct ItemMeta {
    pub(super) prod_id_ref: String,
}

/// Renders the order with `state` applied; returns the JSON and where its line items are.
pub(super) fn render(g: &mut Generated, state: &OrderState) -> (String, Range<usize>) {
    let h = &mut g.head;
    h.shipping_status_text = shipping_status_text(&state.shipping_status).into_owned();
    h.shipping_status = state.shipping_status.clone();
    h.payment_status = state.payment_status;
    h.payment_status_text = payment_status_text(state.payment_status);
    h.shipping_awb = state.shipping_awb.clone();
    h.date_modified = format_time(state.date_modified);
    let id = h.id;
    let tail = OrderTail {
        invoice: state.invoice.map(|number| Invoice {
            prefix: "SERIE",
            number: format!("{number:07}"),
            app: "billing",
            cancelled: false,
            url: format!("{SHOP_URL}/comanda/invoice/{}/{id}", g.hash),
        }),
        info_url: format!("{SHOP_URL}/comanda/info/{}/{id}", g.hash),
        proforma_url: format!("{SHOP_URL}/comanda/proforma/{}/{id}", g.hash),
    };
    let mut out = Vec::with_capacity(3072);
    // These types serialize infallibly: no maps with non-string keys, no failing Serialize impls.
    serde_json::to_writer(&mut out, &g.head).expect("order head serializes");
    out.pop(); // its closing brace: the object continues
    let items_start = out.len();
    out.extend_from_slice(br#","line_items":"#);
    serde_json::to_writer(&mut out, &g.items).expect("line items serialize");
    let items_end = out.len();
    out.push(b',');
    let tail_start = out.len();
    serde_json::to_writer(&mut out, &tail).expect("order tail serializes");
    out.remove(tail_start); // its opening brace: it continues the object
    let json = String::from_utf8(out).expect("serde_json writes UTF-8");
    (json, items_start..items_end)
}

pub(super) fn shipping_status_text(status: &str) -> Cow<'static, str> {
    Cow::Borrowed(match status {
        "awaiting" => "Comanda in asteptare",
        "confirmed" => "Comanda confirmata",
        "in_process" => "Comanda in procesare",
        "shipped" => "Comanda expediata",
        "delivered" => "Comanda livrata",
        "returned" => "Comanda returnata",
        "cancelled" => "Comanda anulata",
        other => return Cow::Owned(other.to_owned()),
    })
}

pub(super) fn payment_status_text(status: &str) -> &'static str {
    match status {
        "temporary" => "Plata temporara",
        "awaiting" => "Plata in asteptare",
        "paid" => "Plata confirmata",
        "failed" => "Plata esuata",
        "canceled" => "Plata anulata",
        "refunded" => "Plata rambursata",
        "rejected" => "Plata respinsa",
        _ => "",
    }
}
