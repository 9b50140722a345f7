//! MerchantPro's HTTP side: the router, the gate (auth, then one queued fault), the error
//! bodies, and one handler per endpoint with the platform's validation.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch};
use chrono::NaiveDate;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{LIST_PATH, MAX_LIMIT, MerchantProSim, Paging};
use crate::core::auth::AuthOutcome;
use crate::core::data::lock;
use crate::core::faults::{CorruptOneRecord, apply_fault, push_record};
use crate::core::query;
use crate::core::server::{Refusal, json_response};

/// The complete app: the routes behind the gate, every request logged.
pub(super) fn router(sim: &MerchantProSim) -> Router {
    let routes = Router::new()
        .route(LIST_PATH, get(list_orders))
        .route("/api/v2/orders/{id}", get(get_order).patch(update_order))
        .route("/api/v2/orders/{id}/{handler}", patch(process_order))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

/// Auth first (a bad-auth request is refused even when a fault is queued), then one fault.
async fn gate(State(sim): State<MerchantProSim>, req: Request, next: Next) -> Response {
    match sim.inner.auth.check(req.headers()) {
        AuthOutcome::Accepted => {}
        AuthOutcome::Unauthorized => {
            return error_response(StatusCode::UNAUTHORIZED, "Invalid credentials");
        }
        AuthOutcome::Forbidden => {
            return error_response(
                StatusCode::FORBIDDEN,
                "Access denied after too many failed authentication attempts",
            );
        }
    }
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

/// The platform's error body, `{"error":{"name","message"}}`, `name` being the status's reason
/// phrase without spaces (`NotFound`, `BadRequest`, …).
pub(super) fn error_response(status: StatusCode, message: &str) -> Response {
    let name: String = status
        .canonical_reason()
        .unwrap_or("Error")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let body = json!({ "error": { "name": name, "message": message } });
    json_response(status, body.to_string())
}

/// A refusal, answered with the platform's error body.
pub(super) type ApiError = Refusal;

pub(super) type ApiResult = Result<Response, ApiError>;

fn refuse(status: StatusCode, message: impl Into<String>) -> ApiError {
    Refusal::new(status, message, error_response)
}

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    refuse(StatusCode::BAD_REQUEST, message)
}

pub(super) fn order_not_found(id: &str) -> ApiError {
    refuse(StatusCode::NOT_FOUND, format!("Order {id} not found"))
}

pub(super) async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Resource not found")
}

pub(super) async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The query's pairs, decoded, in order; a parameter given twice is refused.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    query::query_pairs(uri).map_err(|e| bad_request(e.to_string()))
}

/// Equality filters of the list endpoint beyond ids and dates.
#[derive(Debug, Clone, Copy)]
pub(super) enum Filter {
    ShippingStatus,
    PaymentStatus,
    PaymentMethodCode,
    ShippingMethodId,
    ShippingAwb,
    CustomerId,
    CustomerEmail,
}

impl Filter {
    pub(super) fn from_param(name: &str) -> Option<Self> {
        Some(match name {
            "shipping_status" => Filter::ShippingStatus,
            "payment_status" => Filter::PaymentStatus,
            "payment_method_code" => Filter::PaymentMethodCode,
            "shipping_method_id" => Filter::ShippingMethodId,
            "shipping_awb" => Filter::ShippingAwb,
            "customer_id" => Filter::CustomerId,
            "customer_email" => Filter::CustomerEmail,
            _ => return None,
        })
    }
}

/// Filters the document lists that the simulator does not model; refused by name so a test
/// using one learns why instead of getting a silently unfiltered list.
pub(super) const UNSIMULATED_FILTERS: &[&str] = &[
    "payment_substatus_id",
    "payment_transaction_id",
    "shipping_substatus_id",
    "tag_name",
    "tag_ids",
];

#[derive(Debug)]
pub(super) struct ListQuery {
    pub(super) start: usize,
    pub(super) limit: usize,
    pub(super) line_items: bool,
    pub(super) fields: Option<Vec<String>>,
    pub(super) descending: bool,
    pub(super) created_after: Option<NaiveDate>,
    pub(super) created_before: Option<NaiveDate>,
    /// From `ids` and `id` together (both must match when both are given).
    pub(super) ids: Option<Vec<u64>>,
    pub(super) filters: Vec<(Filter, String)>,
}

impl ListQuery {
    pub(super) fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            start: 0,
            limit: MAX_LIMIT,
            line_items: false,
            fields: None,
            descending: false,
            created_after: None,
            created_before: None,
            ids: None,
            filters: Vec::new(),
        };
        let mut id: Option<u64> = None;
        for (key, value) in pairs {
            match key.as_str() {
                "start" => {
                    q.start = value.parse().map_err(|_| {
                        bad_request("Invalid value for parameter 'start': must be an integer >= 0")
                    })?;
                }
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            bad_request(format!(
                                "Invalid value for parameter 'limit': must be an integer between \
                                 1 and {MAX_LIMIT}"
                            ))
                        })?;
                }
                "include" => {
                    for name in value.split(',') {
                        if name != "line_items" {
                            return Err(bad_request(format!(
                                "Invalid value for parameter 'include': '{name}' cannot be \
                                 included (allowed: line_items)"
                            )));
                        }
                    }
                    q.line_items = true;
                }
                "fields" => q.fields = Some(parse_fields(value)?),
                "sort" => {
                    q.descending = match value.as_str() {
                        "date_created" => false,
                        "date_created.desc" => true,
                        _ => {
                            return Err(bad_request(
                                "Invalid value for parameter 'sort': allowed values are \
                                 date_created and date_created.desc",
                            ));
                        }
                    }
                }
                "created_after" => q.created_after = Some(parse_day("created_after", value)?),
                "created_before" => q.created_before = Some(parse_day("created_before", value)?),
                "ids" => {
                    let ids = value
                        .split(',')
                        .map(|s| s.parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| {
                            bad_request(
                                "Invalid value for parameter 'ids': must be a comma-separated \
                                 list of order ids",
                            )
                        })?;
                    q.ids = Some(ids);
                }
                "id" => {
                    id = Some(value.parse().map_err(|_| {
                        bad_request("Invalid value for parameter 'id': must be an order id")
                    })?);
                }
                other => {
                    if let Some(filter) = Filter::from_param(other) {
                        q.filters.push((filter, value.clone()));
                    } else if UNSIMULATED_FILTERS.contains(&other) {
                        return Err(bad_request(format!(
                            "Query parameter '{other}' is not supported by the simulator"
                        )));
                    } else {
                        return Err(bad_request(format!("Unknown query parameter: {other}")));
                    }
                }
            }
        }
        if let Some(id) = id {
            q.ids = Some(match q.ids.take() {
                Some(ids) => ids.into_iter().filter(|&i| i == id).collect(),
                None => vec![id],
            });
        }
        Ok(q)
    }
}

/// `YYYY-MM-DD` and nothing else: the document's examples are all plain dates.
pub(super) fn parse_day(param: &str, value: &str) -> Result<NaiveDate, ApiError> {
    let shape_ok = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shape_ok
        .then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            bad_request(format!(
                "Invalid value for parameter '{param}': expected a date as YYYY-MM-DD"
            ))
        })
}

pub(super) fn parse_fields(value: &str) -> Result<Vec<String>, ApiError> {
    let mut fields = Vec::new();
    for name in value.split(',') {
        if !DOCUMENTED_FIELDS.contains(&name) {
            return Err(bad_request(format!(
                "Invalid value for parameter 'fields': unknown field '{name}'"
            )));
        }
        if !fields.iter().any(|f| f == name) {
            fields.push(name.to_owned());
        }
    }
    Ok(fields)
}

/// The document's field table, plus the fields its examples show that the table leaves out.
#[rustfmt::skip]
pub(super) const DOCUMENTED_FIELDS: &[&str] = &[
    "id", "parent_id", "return_source_id", "rma_orders", "channel_name",
    "channel_ref_id", "payment_status", "payment_status_text", "payment_substatus_id", "payment_substatus_text",
    "payment_method_code", "payment_method_name", "payment_transaction_id", "shipping_status", "shipping_status_text",
    "shipping_substatus_id", "shipping_substatus_text", "shipping_method_id", "shipping_method_name", "shipping_delivery_info",
    "shipping_carrier_id", "shipping_awb", "shipping_amount", "shipping_tax_amount", "total_amount",
    "currency", "original_currency", "currency_rate", "coupon_code", "customer_id",
    "customer_email", "customer_ip_address", "customer_ip_country", "customer_device", "customer_lang",
    "customer_note", "customer_notification", "date_created", "date_modified", "date_shipped",
    "date_delivered", "created_by", "meta_fields", "internal_notes", "tags",
    "billing_type", "billing_name", "billing_identity_number", "billing_company_name", "billing_company_number",
    "billing_company_vat", "billing_company_bank_name", "billing_company_bank_account", "billing_country_code", "billing_country_name",
    "billing_state", "billing_city", "billing_address", "billing_postal_code", "billing_phone",
    "shipping_name", "shipping_country_code", "shipping_country_name", "shipping_state", "shipping_city",
    "shipping_address", "shipping_postal_code", "shipping_phone", "line_items", "invoice",
    "info_url", "proforma_url",
];

/// Appends one order object, reduced to `fields` (plus `id`, always first) when given, and with
/// its id broken when `corrupt`.
fn push_selected(out: &mut String, record: &str, fields: Option<&[String]>, corrupt: bool) {
    match fields {
        Some(fields) => push_record(out, &select_fields(record, fields), corrupt),
        None => push_record(out, record, corrupt),
    }
}

pub(super) fn select_fields(record: &str, fields: &[String]) -> String {
    let Ok(map) = serde_json::from_str::<BTreeMap<String, &RawValue>>(record) else {
        return record.to_owned();
    };
    let mut out = String::from("{");
    let wanted =
        std::iter::once("id").chain(fields.iter().map(String::as_str).filter(|f| *f != "id"));
    for name in wanted {
        if let Some(value) = map.get(name) {
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            out.push_str(value.get());
        }
    }
    out.push('}');
    out
}

/// `GET /api/v2/orders`.
pub(super) async fn list_orders(State(sim): State<MerchantProSim>, req: Request) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let uri = req.uri();
    let q = ListQuery::parse(&query_pairs(uri)?)?;

    let shop = sim.inner.shop.read();
    let (orders, listing) = (shop.orders.orders(), shop.orders.listing());
    let lo = q
        .created_after
        .map_or(0, |d| listing.partition_point(|&i| orders[i].day < d));
    let hi = q
        .created_before
        .map_or(listing.len(), |d| {
            listing.partition_point(|&i| orders[i].day < d)
        })
        .max(lo);
    // The matching positions in the listing, ascending; `None` while every position in lo..hi
    // matches, which keeps the common unfiltered page free of any scan.
    let mut positions: Option<Vec<usize>> = q.ids.as_ref().map(|ids| {
        let mut p: Vec<usize> = ids
            .iter()
            .filter_map(|&id| shop.index_of(id))
            .filter_map(|i| shop.orders.position_of(i))
            .filter(|p| (lo..hi).contains(p))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    });
    if !q.filters.is_empty() {
        let matches = |p: &usize| {
            q.filters
                .iter()
                .all(|(f, v)| orders[listing[*p]].field_value(*f) == v.as_str())
        };
        positions = Some(match positions {
            Some(p) => p.into_iter().filter(matches).collect(),
            None => (lo..hi).filter(matches).collect(),
        });
    }
    let total = positions.as_ref().map_or(hi - lo, Vec::len);
    let nth = |k: usize| {
        let k = if q.descending { total - 1 - k } else { k };
        positions.as_ref().map_or(lo + k, |p| p[k])
    };
    let paging = lock(&sim.inner.paging).clone();
    let first = match paging {
        Paging::IgnoresStart => 0,
        _ => q.start,
    };
    let size = match paging {
        Paging::CapsPagesAt(cap) => q.limit.min(cap),
        _ => q.limit,
    };
    let page = first.min(total)..first.saturating_add(size).min(total);
    let current = page.len();

    let mut body =
        String::with_capacity(current * orders.first().map_or(0, |o| o.json.len() + 256) + 512);
    body.push_str(r#"{"data":["#);
    for (n, k) in page.enumerate() {
        if n > 0 {
            body.push(',');
        }
        let record = orders[listing[nth(k)]].list_json(q.line_items);
        let corrupt_this = corrupt && CorruptOneRecord::is_target(n, current);
        push_selected(&mut body, &record, q.fields.as_deref(), corrupt_this);
    }
    drop(shop);

    // The broken pagings keep the request's other parameters in their links, as the real
    // platform does; only the stepping goes wrong.
    let mut links = match paging {
        Paging::IgnoresStart => page_links(uri.query(), q.start, q.limit, 0, usize::MAX),
        Paging::CapsPagesAt(_) => page_links(uri.query(), q.start, q.limit, q.limit, total),
        _ => page_links(uri.query(), q.start, q.limit, current, total),
    };
    if let Paging::NextLinkTo(origin) = &paging
        && let Some(next) = links["next"].as_str()
    {
        links["next"] = json!(format!("{origin}{next}"));
    }
    let meta = json!({
        "count": { "total": total, "current": current, "start": q.start, "limit": q.limit },
        "links": links,
    });
    body.push_str(r#"],"meta":"#);
    body.push_str(&meta.to_string());
    body.push('}');
    Ok(json_response(StatusCode::OK, body))
}

/// `current` is the request as sent; `prev`/`next` keep its other parameters as sent and set
/// `start` and `limit`. All relative, as in the document.
pub(super) fn page_links(
    raw_query: Option<&str>,
    start: usize,
    limit: usize,
    current: usize,
    total: usize,
) -> Value {
    let raw = raw_query.unwrap_or("");
    let others: Vec<&str> = raw
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && key != "start" && key != "limit"
        })
        .collect();
    let link = |start: usize| {
        let mut query = others.join("&");
        if !query.is_empty() {
            query.push('&');
        }
        format!("{LIST_PATH}?{query}start={start}&limit={limit}")
    };
    let current_link = if raw.is_empty() {
        LIST_PATH.to_owned()
    } else {
        format!("{LIST_PATH}?{raw}")
    };
    let next = (start + current < total).then(|| link(start + limit));
    let prev = (start > 0).then(|| link(start.saturating_sub(limit)));
    json!({ "prev": prev, "current": current_link, "next": next })
}

/// `GET /api/v2/orders/{id}` (line items always included; `fields` allowed).
pub(super) async fn get_order(
    State(sim): State<MerchantProSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let mut fields = None;
    for (key, value) in query_pairs(req.uri())? {
        if key != "fields" {
            return Err(bad_request(format!("Unknown query parameter: {key}")));
        }
        fields = Some(parse_fields(&value)?);
    }
    let shop = sim.inner.shop.read();
    let index = id
        .parse()
        .ok()
        .and_then(|id| shop.index_of(id))
        .ok_or_else(|| order_not_found(&id))?;
    let mut body = String::new();
    push_selected(
        &mut body,
        &shop.orders[index].json,
        fields.as_deref(),
        corrupt,
    );
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// `PATCH /api/v2/orders/{id}`: applies `shipping_awb`; other documented fields are accepted and
/// ignored. Answers with the updated order.
pub(super) async fn update_order(
    State(sim): State<MerchantProSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let id_num = id
        .parse::<u64>()
        .ok()
        .filter(|&n| sim.inner.shop.read().index_of(n).is_some())
        .ok_or_else(|| order_not_found(&id))?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(bad_request("Content-Type must be application/json"));
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(|_| bad_request("Could not read the request body"))?;
    let Ok(Value::Object(update)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(bad_request("Request body must be a JSON object"));
    };
    if let Some(key) = update
        .keys()
        .find(|k| !DOCUMENTED_FIELDS.contains(&k.as_str()))
    {
        return Err(bad_request(format!("Unknown field: {key}")));
    }
    let awb = match update.get("shipping_awb") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => {
            return Err(bad_request(
                "Invalid value for field 'shipping_awb': must be a string",
            ));
        }
    };

    let seed = sim.inner.seed;
    let mut shop = sim.inner.shop.write();
    let index = shop.index_of(id_num).ok_or_else(|| order_not_found(&id))?;
    let order = &mut shop.orders[index];
    if let Some(awb) = awb {
        order.change(seed, index as u64, |state| state.shipping_awb = awb);
    }
    let mut body = String::new();
    push_record(&mut body, &order.json, corrupt);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// `PATCH /api/v2/orders/{id}/{handler}`: the processing handlers.
pub(super) async fn process_order(
    State(sim): State<MerchantProSim>,
    Path((id, handler)): Path<(String, String)>,
) -> ApiResult {
    let seed = sim.inner.seed;
    let mut shop = sim.inner.shop.write();
    let index = id
        .parse()
        .ok()
        .and_then(|n| shop.index_of(n))
        .ok_or_else(|| order_not_found(&id))?;
    let next_invoice = shop.next_invoice;
    let order = &mut shop.orders[index];
    let from = order.state.shipping_status.clone();
    match handler.as_str() {
        "in_process" | "shipped" | "delivered" | "returned" | "cancelled" => {
            let to = handler.as_str();
            if from != to && !shop_allows(&from, to) {
                return Err(bad_request(format!(
                    "Order status cannot be changed from {from} to {to}"
                )));
            }
            order.change(seed, index as u64, |state| {
                state.shipping_status = to.to_owned();
            });
        }
        "create_invoice" => {
            if order.state.invoice.is_some() {
                return Err(bad_request(format!(
                    "An invoice was already issued for order {id}"
                )));
            }
            if from == "cancelled" {
                return Err(bad_request(format!(
                    "An invoice cannot be issued for cancelled order {id}"
                )));
            }
            order.change(seed, index as u64, |state| {
                state.invoice = Some(next_invoice);
            });
            shop.next_invoice += 1;
        }
        _ => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("Unknown request handler: {handler}"),
            ));
        }
    }
    drop(shop);
    Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
}

/// The shop's own rules for its processing handlers: forward along
/// awaiting → confirmed → in_process → shipped → delivered (skipping steps is allowed), cancel
/// before shipping, return after shipping; nothing leaves cancelled or returned.
pub(super) fn shop_allows(from: &str, to: &str) -> bool {
    const FLOW: [&str; 5] = [
        "awaiting",
        "confirmed",
        "in_process",
        "shipped",
        "delivered",
    ];
    let rank = |s: &str| FLOW.iter().position(|f| *f == s);
    match to {
        "cancelled" => matches!(from, "awaiting" | "confirmed" | "in_process"),
        "returned" => matches!(from, "shipped" | "delivered"),
        _ => matches!((rank(from), rank(to)), (Some(f), Some(t)) if f < t),
    }
}
