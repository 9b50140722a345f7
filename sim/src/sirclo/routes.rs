//! SIRCLO's HTTP side: the router, the gate (auth, then one queued fault), the error
//! bodies, and one handler per endpoint with the platform's validation.

use std::collections::HashSet;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::data::Shop;
use super::{
    LIST_ROUTE, MAX_BODY, MAX_PERPAGE, SircloSim, UPDATE_GROUPS, UPDATE_PATH, WRONG_PARAMETERS,
    platform_time,
};
use crate::core::faults::{CorruptOneRecord, apply_fault, push_record};
use crate::core::server::{Refusal, json_response};

/// The complete app: the routes behind the gate, every request logged.
pub(super) fn router(sim: &SircloSim) -> Router {
    let routes = Router::new()
        .route(LIST_ROUTE, get(list_orders))
        .route(UPDATE_PATH, patch(update_orders))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

/// Auth first (a refused request is refused even when a fault is queued), then one fault.
async fn gate(State(sim): State<SircloSim>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    };
    let is_update = parts.method == Method::PATCH && parts.uri.path() == UPDATE_PATH;
    let accepted = sim.mac_accepted(&parts.uri, &parts.headers, &body)
        || (is_update && sim.api_key_accepted(&parts.headers));
    if !accepted {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: invalid partner_id or MAC",
        );
    }
    let req = Request::from_parts(parts, Body::from(body));
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

/// SIRCLO's envelope, `{"data", "message", "reference"}`, with no data.
pub(super) fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({ "data": null, "message": message, "reference": "" });
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

pub(super) async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found")
}

pub(super) async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The list query: the document marks `since`, `until` and `perpage` required and lists no
/// other parameter.
pub(super) struct ListQuery {
    pub(super) since: DateTime<Utc>,
    pub(super) until: DateTime<Utc>,
    pub(super) perpage: usize,
}

impl ListQuery {
    pub(super) fn parse(uri: &Uri) -> Result<Self, ApiError> {
        // Form decoding, as the platform's Go server does: `%3A` reads as `:`, and an
        // unencoded `+` as a space (so `+07:00` must be sent as `%2B07:00`).
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| bad_request("Malformed query string"))?;
        let mut seen = HashSet::new();
        let (mut since, mut until, mut perpage) = (None, None, None);
        for (key, value) in &pairs {
            if !seen.insert(key.as_str()) {
                return Err(bad_request(format!("Duplicate query parameter: {key}")));
            }
            match key.as_str() {
                "since" => since = Some(parse_rfc3339("since", value)?),
                "until" => until = Some(parse_rfc3339("until", value)?),
                "perpage" => {
                    perpage = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|p| (1..=MAX_PERPAGE).contains(p))
                            .ok_or_else(|| {
                                bad_request(format!(
                                    "Invalid value for parameter 'perpage': must be an integer \
                                     between 1 and {MAX_PERPAGE}"
                                ))
                            })?,
                    );
                }
                other => return Err(bad_request(format!("Unknown query parameter: {other}"))),
            }
        }
        let missing = |name: &str| bad_request(format!("Missing required query parameter: {name}"));
        let q = ListQuery {
            since: since.ok_or_else(|| missing("since"))?,
            until: until.ok_or_else(|| missing("until"))?,
            perpage: perpage.ok_or_else(|| missing("perpage"))?,
        };
        if q.since > q.until {
            return Err(bad_request("'since' must not be after 'until'"));
        }
        Ok(q)
    }
}

pub(super) fn parse_rfc3339(param: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            bad_request(format!(
                "Invalid value for parameter '{param}': expected an RFC3339 timestamp"
            ))
        })
}

/// `GET /v1/partner/page/{pageNo}`: orders whose order date is in `[since, until]`, oldest
/// first, `perpage` per page.
pub(super) async fn list_orders(
    State(sim): State<SircloSim>,
    Path(page_no): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let page_no = Some(page_no.as_str())
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .ok_or_else(|| bad_request("Invalid pageNo: must be an integer from 1"))?;
    let q = ListQuery::parse(req.uri())?;

    let shop = sim.inner.shop.read();
    let (orders, listing) = (shop.orders.orders(), shop.orders.listing());
    let lo = listing.partition_point(|&i| orders[i].placed < q.since);
    let hi = listing
        .partition_point(|&i| orders[i].placed <= q.until)
        .max(lo);
    let total = hi - lo;
    let from = (page_no - 1).saturating_mul(q.perpage).min(total);
    let cap = sim
        .inner
        .page_cap
        .load(std::sync::atomic::Ordering::Relaxed);
    let to = from.saturating_add(q.perpage.min(cap)).min(total);
    let count = to - from;

    let mut body =
        String::with_capacity(count * orders.first().map_or(0, |o| o.json.len() + 64) + 128);
    body.push_str(r#"{"data":["#);
    for (n, order) in listing[lo + from..lo + to]
        .iter()
        .map(|&i| &orders[i])
        .enumerate()
    {
        if n > 0 {
            body.push(',');
        }
        let corrupt_this = corrupt && CorruptOneRecord::is_target(n, count);
        push_record(&mut body, &order.json, corrupt_this);
    }
    drop(shop);
    body.push_str(&format!(
        r#"],"total_record":{total},"message":"","reference":""}}"#
    ));
    Ok(json_response(StatusCode::OK, body))
}

/// `PATCH /v1/order`: entries grouped by target status; each order succeeds or fails on its
/// own, and the answer lists both.
pub(super) async fn update_orders(
    State(sim): State<SircloSim>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(bad_request("Content-Type must be application/json"));
    }
    let Ok(Value::Object(groups)) = serde_json::from_slice::<Value>(&body) else {
        return Err(bad_request("Request body must be a JSON object"));
    };
    if let Some(key) = groups.keys().find(|k| !UPDATE_GROUPS.contains(&k.as_str())) {
        return Err(bad_request(format!(
            "Unknown status group '{key}' (allowed: {})",
            UPDATE_GROUPS.join(", ")
        )));
    }
    let mut entries = Vec::new();
    for group in UPDATE_GROUPS {
        match groups.get(group) {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for entry in list {
                    let Value::Object(entry) = entry else {
                        return Err(bad_request(format!(
                            "Every entry of '{group}' must be an object"
                        )));
                    };
                    let Some(id) = entry.get("id").and_then(Value::as_u64) else {
                        return Err(bad_request(format!(
                            "Every entry of '{group}' needs an integer 'id'"
                        )));
                    };
                    entries.push((group, id, entry));
                }
            }
            Some(_) => return Err(bad_request(format!("'{group}' must be a list"))),
        }
    }
    if entries.is_empty() {
        return Err(bad_request("No order to update"));
    }

    let seed = sim.inner.seed;
    let mut shop = sim.inner.shop.write();
    let (mut succeed, mut failed) = (Vec::new(), Vec::new());
    for (group, id, entry) in entries {
        match shop.update(seed, group, id, entry) {
            Ok(v) => succeed.push(v),
            Err(v) => failed.push(v),
        }
    }
    drop(shop);
    let body = json!({
        "data": { "succeed": succeed, "failed": failed },
        "message": "",
        "reference": "",
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

impl Shop {
    /// One entry of an update: `Ok` is its `succeed` item, `Err` its `failed` item.
    pub(super) fn update(
        &mut self,
        seed: u64,
        group: &str,
        id: u64,
        entry: &Map<String, Value>,
    ) -> Result<Value, Value> {
        let Some(index) = self.index_of(id) else {
            return Err(json!({
                "id": id, "order_status": "", "message": "Pesanan tidak ditemukan",
                "updated_at": "",
            }));
        };
        let order = &mut self.orders[index];
        let current = order.state.status.clone();
        let current_updated = platform_time(order.state.updated);
        let fail = |message: String| {
            json!({
                "id": id, "order_status": current, "message": message,
                "updated_at": current_updated,
            })
        };
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        if text("order_number") != Some(order.facts.number.as_str()) {
            return Err(fail(WRONG_PARAMETERS.to_owned()));
        }
        match text("updated_at") {
            None => return Err(fail(WRONG_PARAMETERS.to_owned())),
            // Byte for byte: the platform's optimistic lock on the order.
            Some(t) if t != current_updated => {
                return Err(fail(
                    "Data pesanan sudah berubah, silakan muat ulang".to_owned(),
                ));
            }
            Some(_) => {}
        }
        let nonempty = |name: &str| text(name).filter(|s| !s.trim().is_empty());
        let (airwaybill, received_by, cancel_reason) = match group {
            "packed" => match nonempty("airwaybill_number") {
                Some(awb) => (Some(awb), None, None),
                None => return Err(fail(WRONG_PARAMETERS.to_owned())),
            },
            "completed" => match nonempty("received_by") {
                Some(who) => (None, Some(who), None),
                None => return Err(fail(WRONG_PARAMETERS.to_owned())),
            },
            // The document's own example sends an empty reason.
            "cancelled" => match text("cancel_reason") {
                Some(reason) => (None, None, Some(reason)),
                None => return Err(fail(WRONG_PARAMETERS.to_owned())),
            },
            _ => (None, None, None),
        };
        if !platform_allows(&current, group) {
            return Err(fail(format!(
                "Status pesanan tidak dapat diubah dari {current} ke {group}"
            )));
        }
        order.change(seed, index as u64, |state| {
            // Read back with the spelling the platform uses for its own cancellations.
            state.status = if group == "cancelled" {
                "canceled".to_owned()
            } else {
                group.to_owned()
            };
            if let Some(awb) = airwaybill {
                state.airwaybill = Some(awb.to_owned());
            }
            if let Some(who) = received_by {
                state.received_by = Some(who.to_owned());
            }
            if let Some(reason) = cancel_reason {
                state.cancel_reason = Some(reason.to_owned());
            }
        });
        Ok(json!({
            "id": id,
            "order_status": order.state.status,
            "updated_at": platform_time(order.state.updated),
        }))
    }
}

/// The platform's lifecycle: pending → accepted → packed → completed, cancel before packing;
/// nothing leaves completed or cancelled, and an order is never moved to where it is.
pub(super) fn platform_allows(from: &str, to: &str) -> bool {
    matches!(
        (from.to_ascii_lowercase().as_str(), to),
        ("pending", "accepted" | "cancelled")
            | ("accepted", "packed" | "cancelled")
            | ("packed", "completed")
    )
}
