//! Novashop's HTTP side: the router, the gate (a bearer token on everything but the login, then
//! one queued fault), the error bodies, and one handler per endpoint with the platform's
//! validation.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::data::allowed;
use super::{
    DEFAULT_PER_PAGE, LIST_PATH, LOGIN_PATH, MAX_PER_PAGE, NovashopSim, ORDER_PATH, STATES,
    TOKEN_LIFETIME_SECS, TRANSITIONS_PATH,
};
use crate::core::data::SimRng;
use crate::core::faults::{CorruptOneRecord, apply_fault, push_record};
use crate::core::query;
use crate::core::server::json_response;

/// The complete app: the routes behind the gate, every request logged.
pub(super) fn router(sim: &NovashopSim) -> Router {
    let routes = Router::new()
        .route(LOGIN_PATH, post(login))
        .route(LIST_PATH, get(list_orders))
        .route(ORDER_PATH, get(get_order))
        .route(TRANSITIONS_PATH, post(transition))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

/// The token first (a refused request leaves a queued fault for the next one), the login
/// excepted, then one fault: the login takes faults like any other request.
async fn gate(State(sim): State<NovashopSim>, req: Request, next: Next) -> Response {
    if req.uri().path() != LOGIN_PATH && !sim.admits(req.headers()) {
        let mut refused = error_response(StatusCode::UNAUTHORIZED, "invalid_token");
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        return refused;
    }
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

impl NovashopSim {
    /// Whether the request carries `Authorization: Bearer <token>` with a token the login issued
    /// and nobody revoked since.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        presented.is_some_and(|token| self.inner.tokens.admit(token))
    }

    /// A new token, `nst_<n>_<32 hex digits>` for the `n`-th login: opaque to a client, and the
    /// same sequence for the same seed.
    fn issue_token(&self) -> String {
        let (access, _) = self.inner.tokens.issue(|n| {
            let mut rng = SimRng::for_record(self.inner.seed ^ 0x6e6f_7661, n);
            (format!("nst_{n}_{}", rng.hex(32)), String::new())
        });
        access
    }
}

/// The platform's error body, `{"error": "<code or message>"}`; also what faults answer with.
pub(super) fn error_response(status: StatusCode, error: &str) -> Response {
    json_response(status, json!({ "error": error }).to_string())
}

/// A refusal with the platform's error body, and a `detail` where the platform gives one.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    error: String,
    detail: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.detail {
            None => error_response(self.status, &self.error),
            Some(detail) => json_response(
                self.status,
                json!({ "error": self.error, "detail": detail }).to_string(),
            ),
        }
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

fn refuse(status: StatusCode, error: impl Into<String>) -> ApiError {
    ApiError {
        status,
        error: error.into(),
        detail: None,
    }
}

/// A 400 whose `error` is the message itself, as the list endpoint words them.
fn bad_query(error: impl Into<String>) -> ApiError {
    refuse(StatusCode::BAD_REQUEST, error)
}

fn order_not_found() -> ApiError {
    refuse(StatusCode::NOT_FOUND, "not_found")
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        error: "unprocessable".to_owned(),
        detail: Some(detail.into()),
    }
}

async fn not_found() -> Response {
    order_not_found().into_response()
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
}

/// `POST /oauth/token` `{"client_id", "client_secret"}` → a bearer token.
async fn login(State(sim): State<NovashopSim>, body: Bytes) -> ApiResult {
    let invalid_request = || refuse(StatusCode::BAD_REQUEST, "invalid_request");
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(invalid_request());
    };
    let (Some(Value::String(id)), Some(Value::String(secret))) =
        (fields.get("client_id"), fields.get("client_secret"))
    else {
        return Err(invalid_request());
    };
    if *id != sim.inner.client_id || *secret != sim.inner.client_secret {
        return Err(refuse(StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    let body = json!({
        "access_token": sim.issue_token(),
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// A list request's parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct ListQuery {
    pub(super) updated_since: i64,
    pub(super) per_page: usize,
    /// From 1.
    pub(super) page: usize,
}

impl ListQuery {
    pub(super) fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let pairs = query::query_pairs(uri).map_err(|e| match e {
            query::QueryError::Malformed => bad_query("malformed query string"),
            query::QueryError::Repeated(key) => bad_query(format!("{key} is repeated")),
        })?;
        let mut updated_since = None;
        let mut q = ListQuery {
            updated_since: 0,
            per_page: DEFAULT_PER_PAGE,
            page: 1,
        };
        for (key, value) in &pairs {
            match key.as_str() {
                "updated_since" => {
                    updated_since = Some(
                        digits(value)
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| bad_query("updated_since is required"))?,
                    );
                }
                "per_page" => {
                    q.per_page = digits(value)
                        .and_then(|v| v.parse().ok())
                        .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                        .ok_or_else(|| bad_query("per_page must be between 1 and 100"))?;
                }
                "page" => {
                    q.page = digits(value)
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| bad_query("page must be a positive integer"))?;
                }
                other => return Err(bad_query(format!("unknown query parameter: {other}"))),
            }
        }
        q.updated_since = updated_since.ok_or_else(|| bad_query("updated_since is required"))?;
        Ok(q)
    }

    /// The absolute link to `page` of this listing.
    pub(super) fn link(&self, base: &str, page: usize) -> String {
        format!(
            "{base}{LIST_PATH}?updated_since={}&per_page={}&page={page}",
            self.updated_since, self.per_page
        )
    }
}

/// `value` if it is a non-empty run of ASCII digits: no sign, no spaces, no fraction (Rust's
/// integer parsing alone would take a leading `+`).
fn digits(value: &str) -> Option<&str> {
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())).then_some(value)
}

/// `http://<Host>`: links name the address the client reached the shop at.
fn link_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `GET /v3/orders?updated_since=…[&per_page=…][&page=…]`: orders with `updated >=
/// updated_since`, by `updated` then id, one page of them. The body holds only the records; the
/// next page is named by the `Link` header. Each page is cut from the listing as it is when that
/// page is requested, so an order updated between two page requests moves to the end and shifts
/// the rest.
async fn list_orders(State(sim): State<NovashopSim>, req: Request) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let q = ListQuery::parse(req.uri())?;
    let base = link_base(req.headers());

    let shop = sim.inner.shop.read();
    let listing = &shop.by_updated[shop.listing_from(q.updated_since)..];
    let start = (q.page - 1).saturating_mul(q.per_page).min(listing.len());
    let end = start.saturating_add(q.per_page).min(listing.len());
    let page = &listing[start..end];
    let record_len = page.first().map_or(0, |&(_, i)| shop.orders[i].json.len());
    let mut body = String::with_capacity(page.len() * (record_len + 64) + 16);
    body.push_str(r#"{"orders":["#);
    for (k, &(_, index)) in page.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        let corrupt_this = corrupt && CorruptOneRecord::is_target(k, page.len());
        push_record(&mut body, &shop.orders[index].json, corrupt_this);
    }
    let has_next = end < listing.len();
    drop(shop);
    body.push_str("]}");

    let mut links = Vec::new();
    if q.page > 1 {
        links.push(format!("<{}>; rel=\"first\"", q.link(&base, 1)));
    }
    if has_next {
        links.push(format!("<{}>; rel=\"next\"", q.link(&base, q.page + 1)));
    }
    let mut response = json_response(StatusCode::OK, body);
    // A Host header that cannot be written back leaves the page without links; only a broken
    // client sends one.
    if let Ok(value) = HeaderValue::from_str(&links.join(", "))
        && !links.is_empty()
    {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET /v3/orders/{id}`.
async fn get_order(
    State(sim): State<NovashopSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let shop = sim.inner.shop.read();
    let index = id
        .parse()
        .ok()
        .and_then(|id| shop.index_of(id))
        .ok_or_else(order_not_found)?;
    let mut body = String::new();
    push_record(&mut body, &shop.orders[index].json, corrupt);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// A transition request's body: `{"to": <state>[, "tracking_number": <text or null>]}`, nothing
/// else.
fn parse_transition(body: &[u8]) -> Result<(&'static str, Option<String>), ApiError> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(unprocessable("the body must be a JSON object"));
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "to" | "tracking_number"))
    {
        return Err(unprocessable(format!("unknown field: {key}")));
    }
    let to = match fields.get("to") {
        None => return Err(unprocessable("to is required")),
        Some(Value::String(to)) => STATES.iter().find(|s| **s == to.as_str()),
        Some(_) => None,
    }
    .ok_or_else(|| unprocessable(format!("to must be one of: {}", STATES.join(", "))))?;
    let tracking_number = match fields.get("tracking_number") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.trim().is_empty() => Some(t.clone()),
        Some(_) => {
            return Err(unprocessable(
                "tracking_number must be a non-empty string or null",
            ));
        }
    };
    Ok((to, tracking_number))
}

/// `POST /v3/orders/{id}/transitions`: moves the order to `to` if the rules allow it (setting
/// the tracking number when shipping with one); a repeat of the current state is a no-op.
/// Answers with the order as it now is.
async fn transition(
    State(sim): State<NovashopSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    let id = id
        .parse::<u64>()
        .ok()
        .filter(|&id| sim.inner.shop.read().index_of(id).is_some())
        .ok_or_else(order_not_found)?;
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(|_| unprocessable("the body could not be read"))?;
    let (to, tracking_number) = parse_transition(&bytes)?;

    let mut shop = sim.inner.shop.write();
    let index = shop.index_of(id).ok_or_else(order_not_found)?;
    let from = shop.orders[index].state.state.clone();
    if from != to {
        if !allowed(&from, to) {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                error: "invalid_transition".to_owned(),
                detail: Some(format!("cannot go from {from} to {to}")),
            });
        }
        shop.change(index, |state| {
            state.state = to.to_owned();
            if to == "shipped"
                && let Some(tracking) = &tracking_number
            {
                state.tracking_number = Some(tracking.clone());
            }
        });
        shop.transitions.push((id, to.to_owned(), tracking_number));
    }
    let mut body = String::new();
    push_record(&mut body, &shop.orders[index].json, corrupt);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}
