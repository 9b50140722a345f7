//! Epixel's HTTP side: the router, the gate (auth, then one queued fault), the error
//! bodies, and one handler per endpoint with the platform's validation.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    DEFAULT_LIMIT, DETAILS_PATH, EpixelSim, LIST_PATH, LOGIN_PATH, MAX_LIMIT, number_of, shop_now,
};
use crate::core::data::SimRng;
use crate::core::faults::{CorruptOneRecord, apply_fault, push_record};
use crate::core::query::{self, QueryError};
use crate::core::server::json_response;

/// The complete app: the routes behind the gate (under the configured prefix), every request
/// logged.
pub(super) fn router(sim: &EpixelSim) -> Router {
    let p = &sim.inner.prefix;
    let routes = Router::new()
        .route(&format!("{p}{LIST_PATH}"), get(list_orders))
        .route(&format!("{p}{DETAILS_PATH}"), get(order_details))
        .route(&format!("{p}{LOGIN_PATH}"), post(login))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

/// Auth first (a refused request leaves the queued fault for the next one), then one fault. The
/// login endpoint needs the apikey only: it is where a bearer comes from.
async fn gate(State(sim): State<EpixelSim>, req: Request, next: Next) -> Response {
    let is_login = req.uri().path() == format!("{}{LOGIN_PATH}", sim.inner.prefix);
    if let Err(refusal) = sim.check_auth(req.headers(), !is_login) {
        return refusal.into_response();
    }
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

impl EpixelSim {
    pub(super) fn check_auth(
        &self,
        headers: &HeaderMap,
        bearer_needed: bool,
    ) -> Result<(), ApiError> {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        match text(header::HeaderName::from_static("apikey")) {
            None => return Err(unauthorized("Api key is required.")),
            Some(k) if k != self.inner.api_key => return Err(unauthorized("Invalid api key.")),
            Some(_) => {}
        }
        if !bearer_needed {
            return Ok(());
        }
        let Some(auth) = text(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "Authentication credentials were not provided.",
            ));
        };
        let token = match auth.split_once(' ') {
            Some(("Bearer", token)) => token.trim(),
            _ => {
                return Err(unauthorized(
                    "Authorization header must be 'Bearer <token>'.",
                ));
            }
        };
        if !self.inner.tokens.admit(token) {
            return Err(unauthorized("Given token not valid for any token type"));
        }
        Ok(())
    }
}

/// The platform's envelope, `{"status_code","errors","data"}`, with the errors by field.
pub(super) fn error_response(status: StatusCode, message: &str) -> Response {
    envelope_error(status, "detail", message)
}

pub(super) fn envelope_error(status: StatusCode, field: &str, message: &str) -> Response {
    let body = json!({
        "status_code": status.as_u16(),
        "errors": { field: [message] },
        "data": {},
    });
    json_response(status, body.to_string())
}

/// A refusal, rendered as the platform's error body.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) field: String,
    pub(super) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        envelope_error(self.status, &self.field, &self.message)
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        field: field.to_owned(),
        message: message.into(),
    }
}

pub(super) fn unauthorized(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        field: "detail".to_owned(),
        message: message.to_owned(),
    }
}

pub(super) async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found.")
}

pub(super) async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// The query's pairs, decoded, in order; a parameter given twice is refused.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    query::query_pairs(uri).map_err(|e| match e {
        QueryError::Malformed => bad_request("detail", "Malformed query string."),
        QueryError::Repeated(key) => bad_request(&key, "Given more than once."),
    })
}

#[derive(Debug)]
pub(super) struct ListQuery {
    pub(super) limit: usize,
    pub(super) offset: usize,
    pub(super) order_number: Option<u64>,
    pub(super) period: Option<(&'static str, chrono::Duration)>,
    pub(super) category: Option<&'static str>,
}

pub(super) const PERIODS: [(&str, i64); 4] =
    [("today", 1), ("week", 7), ("month", 30), ("year", 365)];

pub(super) const CATEGORIES: [&str; 3] = ["purchase", "upgrade", "renewal"];

impl ListQuery {
    pub(super) fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            limit: DEFAULT_LIMIT,
            offset: 0,
            order_number: None,
            period: None,
            category: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            bad_request(
                                "limit",
                                format!("Ensure limit is an integer between 1 and {MAX_LIMIT}."),
                            )
                        })?;
                }
                "offset" => {
                    q.offset = value.parse().map_err(|_| {
                        bad_request("offset", "Ensure offset is an integer of 0 or more.")
                    })?;
                }
                "order_number" => {
                    q.order_number = Some(
                        value
                            .parse()
                            .map_err(|_| bad_request("order_number", "Invalid order number."))?,
                    );
                }
                "period" => {
                    let (name, days) =
                        PERIODS
                            .into_iter()
                            .find(|(p, _)| p == value)
                            .ok_or_else(|| {
                                bad_request(
                                    "period",
                                    "Invalid period: use today, week, month or year.",
                                )
                            })?;
                    q.period = Some((name, chrono::Duration::days(days)));
                }
                "category" => {
                    q.category =
                        Some(CATEGORIES.into_iter().find(|c| c == value).ok_or_else(|| {
                            bad_request(
                                "category",
                                "Invalid category: use purchase, upgrade or renewal.",
                            )
                        })?);
                }
                other => return Err(bad_request(other, "Unknown query parameter.")),
            }
        }
        Ok(q)
    }
}

/// `GET …/commerce/all-orders/`: newest first.
pub(super) async fn list_orders(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let q = ListQuery::parse(&query_pairs(req.uri())?)?;
    let now = shop_now();
    let shop = sim.inner.shop.read();
    let (orders, listing) = (shop.orders(), shop.listing());
    let matches = |i: usize| {
        let o = &orders[i];
        q.order_number.is_none_or(|n| number_of(i as u64) == n)
            && q.period.is_none_or(|(_, d)| o.created >= now - d)
            && q.category.is_none_or(|c| o.facts.order_type == c)
    };
    let filtered = q.order_number.is_some() || q.period.is_some() || q.category.is_some();
    // Newest first; without filters the page is a plain range, with no scan.
    let page: Vec<usize> = if filtered {
        listing
            .iter()
            .rev()
            .copied()
            .filter(|&i| matches(i))
            .skip(q.offset)
            .take(q.limit)
            .collect()
    } else {
        let end = listing.len().saturating_sub(q.offset);
        let start = end.saturating_sub(q.limit);
        listing[start..end].iter().rev().copied().collect()
    };
    let mut body = String::with_capacity(page.len() * 900 + 256);
    body.push_str(r#"{"status_code":200,"errors":{},"data":{"orders":["#);
    for (n, &i) in page.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        let corrupt_this = corrupt && (n == 1 || (n == 0 && page.len() == 1));
        push_record(&mut body, &orders[i].json, corrupt_this);
    }
    drop(shop);
    let filter_data = json!({
        "order_number": q.order_number,
        "period": q.period.map(|(p, _)| p),
        "category": q.category,
        "limit": q.limit,
        "offset": q.offset,
    });
    body.push_str(r#"],"filter_data":"#);
    body.push_str(&filter_data.to_string());
    body.push_str("}}");
    Ok(json_response(StatusCode::OK, body))
}

/// `GET …/commerce/order-details/?order_number=…`, with the document's three refusals.
pub(super) async fn order_details(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let mut number = None;
    for (key, value) in query_pairs(req.uri())? {
        if key != "order_number" {
            return Err(bad_request(&key, "Unknown query parameter."));
        }
        number = Some(value);
    }
    let number = number.ok_or_else(|| bad_request("order_number", "Order Number is required."))?;
    if number.trim().is_empty() {
        return Err(bad_request("order_number", "Order Number maynot be blank."));
    }
    let shop = sim.inner.shop.read();
    let index = number
        .parse()
        .ok()
        .and_then(|n| shop.index_of_number(n))
        .ok_or_else(|| bad_request("order_number", "Invalid order number."))?;
    let details = &shop[index].details;
    let mut body = String::with_capacity(details.len() + 64);
    body.push_str(r#"{"status_code":200,"errors":{},"data":"#);
    if corrupt {
        // The lines are a list of records starting with their ids: break the 2nd, or the only.
        let lines: Vec<&RawValue> = serde_json::from_str(details).unwrap_or_default();
        body.push('[');
        for (n, line) in lines.iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            push_record(&mut body, line.get(), n == 1 || lines.len() == 1);
        }
        body.push(']');
    } else {
        body.push_str(details);
    }
    drop(shop);
    body.push('}');
    Ok(json_response(StatusCode::OK, body))
}

/// `POST …/user/login/` with JSON `{username, password}` → `{"refresh","access"}`.
pub(super) async fn login(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
    sim.inner.login_attempts.fetch_add(1, Ordering::SeqCst);
    if !query_pairs(req.uri())?.is_empty() {
        return Err(bad_request(
            "detail",
            "The login takes no query parameters.",
        ));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            field: "detail".to_owned(),
            message: "Content-Type must be application/json.".to_owned(),
        });
    }
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| bad_request("detail", "Could not read the request body."))?;
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(bad_request("detail", "JSON parse error."));
    };
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(bad_request(name, "This field may not be blank.")),
        Some(_) => Err(bad_request(name, "Not a valid string.")),
        None => Err(bad_request(name, "This field is required.")),
    };
    let (username, password) = (field("username")?, field("password")?);
    if let Some(key) = body
        .keys()
        .find(|k| !["username", "password"].contains(&k.as_str()))
    {
        return Err(bad_request(key, "Unknown field."));
    }
    if username != sim.inner.username || password != sim.inner.password {
        return Err(unauthorized(
            "No active account found with the given credentials",
        ));
    }
    let (access, refresh) = sim.inner.tokens.issue(|n| {
        let mut rng = SimRng::for_record(sim.inner.seed ^ 0x5eed, n);
        let access = format!("epx-access-{n}-{}", rng.hex(40));
        (access, format!("epx-refresh-{n}-{}", rng.hex(40)))
    });
    Ok(json_response(
        StatusCode::OK,
        json!({ "refresh": refresh, "access": access }).to_string(),
    ))
}
