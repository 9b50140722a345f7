//! Mitrabunso's wire format: the records as the platform's JSON writes them, rendered once per
//! change.

use std::ops::Range;

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::TIME_FORMAT;
use super::data::{OrderState, Parts};

pub(super) fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// A JSON number, or the same digits as a string, as the platform mixes them.
pub(super) fn number(n: Decimal, as_text: bool) -> Value {
    let text = n.normalize().to_string();
    if as_text {
        Value::String(text)
    } else {
        serde_json::from_str(&text).expect("a decimal's text is a JSON number")
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct Customer {
    pub(super) name: String,
    pub(super) phone: String,
    pub(super) address: String,
    pub(super) province_code: Option<&'static str>,
    pub(super) province_name: &'static str,
    pub(super) city_code: Option<&'static str>,
    pub(super) city_name: &'static str,
    pub(super) district_code: Option<&'static str>,
    pub(super) district_name: &'static str,
    pub(super) post_code: Option<&'static str>,
}

#[derive(Serialize, Clone)]
pub(super) struct Sender {
    pub(super) name: &'static str,
    pub(super) phone: &'static str,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct Detail {
    pub(super) product_id: String,
    pub(super) qty: Value,
    pub(super) product_price: Value,
    pub(super) total_price: Value,
    pub(super) product_name: &'static str,
}

/// The `order` object; `awb` comes from the state.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderPart<'a> {
    pub(super) invoice: &'a str,
    pub(super) courier_id: &'static str,
    pub(super) courier_name: &'static str,
    pub(super) shipping_cost: &'a Value,
    pub(super) shop_id: &'static str,
    pub(super) shop_name: &'static str,
    pub(super) awb: Option<&'a str>,
    pub(super) admin_note: Option<&'a str>,
    pub(super) customer_note: Option<&'a str>,
    pub(super) total_cost: &'a Value,
    pub(super) label_image: Option<()>,
    pub(super) print_type: &'static str,
    pub(super) assign: Option<()>,
    #[serde(rename = "order_id")]
    pub(super) order_id: &'a str,
}

#[derive(Serialize)]
pub(super) struct ListRecord<'a> {
    pub(super) customer: &'a Customer,
    pub(super) sender: &'a Sender,
    pub(super) order: OrderPart<'a>,
    pub(super) details: &'a [Detail],
    #[serde(rename = "updatedAWB")]
    pub(super) updated_awb: Option<&'a str>,
    #[serde(rename = "createdAt")]
    pub(super) created_at: String,
    #[serde(rename = "processedAt")]
    pub(super) processed_at: Option<String>,
    #[serde(rename = "sentAt")]
    pub(super) sent_at: Option<String>,
    pub(super) status: &'a str,
    #[serde(rename = "updatedInvoice")]
    pub(super) updated_invoice: Option<&'a str>,
}

/// The list record and where its order id is.
pub(super) fn render(
    parts: &Parts,
    state: &OrderState,
    created: DateTime<FixedOffset>,
) -> (String, Range<usize>) {
    let record = ListRecord {
        customer: &parts.customer,
        sender: &parts.sender,
        order: parts.order_part(state.awb.as_deref()),
        details: &parts.details,
        updated_awb: state.updated_awb.as_deref(),
        created_at: format_time(created),
        processed_at: state.processed_at.map(format_time),
        sent_at: state.sent_at.map(format_time),
        status: &state.status,
        updated_invoice: state.updated_invoice.as_deref(),
    };
    // Plain structs, string keys, infallible Serialize impls: serialization cannot fail.
    let json = serde_json::to_string(&record).expect("a record serializes");
    let key = format!(r#""order_id":"{}""#, parts.id);
    let at = json.find(&key).expect("the record carries its id") + r#""order_id":"#.len();
    (json, at..at + parts.id.len() + 2)
}

/// `details` as the document shows it: `data.order` (one element) and `data.products`.
pub(super) fn render_details(
    parts: &Parts,
    state: &OrderState,
    created: DateTime<FixedOffset>,
) -> String {
    let stamp = |t: DateTime<FixedOffset>| {
        json!({
            "date": t.format("%Y-%m-%d %H:%M:%S.000000").to_string(),
            "timezone_type": 3,
            "timezone": "Asia/Bangkok",
        })
    };
    let first_state = json!({
        "customer": parts.customer,
        "sender": parts.sender,
        "order": parts.order_part(state.awb.as_deref()),
        "details": parts.details,
    });
    let updated = [
        Some(created),
        state.processed_at,
        state.sent_at,
        state.deleted_at,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(created);
    let print_status = match state.status.as_str() {
        "SENT" => "2",
        "PROCESSED" => "1",
        _ => "0",
    };
    let order = json!({
        "order_first_state": first_state.to_string(),
        "deleted_at": state.deleted_at.map(format_time),
        "id": parts.id,
        "customerId": parts.customer_id,
        "customerName": parts.customer.name,
        "customerAddress": parts.customer.address,
        "senderAddress": null,
        "senderId": parts.sender_id,
        "senderName": parts.sender.name,
        "courierId": parts.courier.id,
        "courierName": parts.courier.name,
        "shippingCost": parts.shipping_cost.as_str().map_or_else(|| parts.shipping_cost.to_string(), str::to_owned),
        "status": state.status,
        "printStatus": print_status,
        "labelImage": null,
        "shopId": parts.shop.id,
        "shopName": parts.shop.name,
        "invoice": state.updated_invoice.as_deref().filter(|s| !s.is_empty()).unwrap_or(&parts.invoice),
        "awb": state.updated_awb.as_deref().or(state.awb.as_deref()).unwrap_or(""),
        "totalPrice": null,
        "totalProduct": null,
        "customerNote": parts.customer_note,
        "adminNote": parts.admin_note.as_deref().unwrap_or(""),
        "created": stamp(created),
        "updated": stamp(updated),
        "processed": state.processed_at.map(stamp),
        "sent": state.sent_at.map(stamp),
        "createdBy": "",
        "updatedBy": "",
        "createdByName": null,
        "updatedByName": null,
    });
    let products: Vec<Value> = parts
        .items
        .iter()
        .zip(&parts.details_ids)
        .map(|(item, details_id)| {
            json!({
                "detailsId": details_id,
                "productId": item.product_id,
                "productName": item.name,
                "productPrice": item.price.to_string(),
                "qty": item.qty.to_string(),
            })
        })
        .collect();
    json!({
        "message": "Data retrieved successfully",
        "data": { "order": [order], "products": products },
    })
    .to_string()
}
