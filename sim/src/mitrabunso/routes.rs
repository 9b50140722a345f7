//! Mitrabunso's HTTP side: the router, the gate (auth, then one queued fault), the error
//! bodies, and one handler per endpoint with the platform's validation.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::data::generate;
use super::render::render_details;
use super::{DOCUMENTED_STATUSES, MAX_LIMIT, MitrabunsoSim};
use crate::core::faults::{CorruptOneRecord, apply_fault};
use crate::core::query;
use crate::core::server::{Refusal, json_response};

/// The complete app: the routes behind the gate, every request logged.
pub(super) fn router(sim: &MitrabunsoSim) -> Router {
    let routes = Router::new()
        .route(
            "/public/order/orders/list/{id_user}/{offsite}/{limit}",
            get(list_orders),
        )
        .route(
            "/public/order/orders/details/{id_user}/{id_order}",
            get(order_details),
        )
        .route(
            "/public/order/orders/total_summary/{id_user}",
            get(total_summary),
        )
        .route(
            "/public/order/orders/processed_list/{id_user}",
            get(not_simulated),
        )
        .route("/public/order/orders/create/{id_user}", post(not_simulated))
        .route(
            "/public/order/orders/batch_create/{id_user}",
            post(not_simulated),
        )
        .route("/public/smartorder/fetch/{id_user}", post(not_simulated))
        .route(
            "/public/order/orders/print_order/{id_user}/{timestamp}/{print_status}",
            post(print_order),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

impl MitrabunsoSim {
    /// 401 unless the path's `id_user` is the token's user.
    pub(super) fn check_user(&self, id_user: &str) -> Result<(), ApiError> {
        if id_user == self.inner.user_id {
            Ok(())
        } else {
            Err(refuse(StatusCode::UNAUTHORIZED, "Unauthenticated."))
        }
    }
}

/// Auth first (a refused request leaves a queued fault for the next one), then one fault.
async fn gate(State(sim): State<MitrabunsoSim>, req: Request, next: Next) -> Response {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer")
                && sim.inner.bearer.split_once(' ').map(|(_, t)| t) == Some(token.trim())
        });
    if !authorized {
        return error_response(StatusCode::UNAUTHORIZED, "Unauthenticated.");
    }
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

/// The platform's answers carry `message`; errors are that alone.
pub(super) fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "message": message }).to_string())
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
    error_response(StatusCode::NOT_FOUND, "Route not found")
}

pub(super) async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

pub(super) async fn not_simulated(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        &format!("{} is documented but not simulated", uri.path()),
    )
}

pub(super) async fn print_order() -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "print_order counts label prints on the real platform: ordersync must never call it",
    )
}

/// The query's pairs, decoded; a parameter given twice is refused.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    query::query_pairs(uri).map_err(|e| bad_request(e.to_string()))
}

/// A path integer: digits only, as a PHP route constraint `[0-9]+` would take it.
pub(super) fn path_int(name: &str, value: &str, min: usize, max: usize) -> Result<usize, ApiError> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse::<usize>().ok())
        .flatten()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            bad_request(format!(
                "Invalid {name} '{value}': must be an integer from {min} to {max}"
            ))
        })
}

/// `GET /public/order/orders/list/{id_user}/{offsite}/{limit}[?status=…&q=…]`.
pub(super) async fn list_orders(
    State(sim): State<MitrabunsoSim>,
    Path((id_user, offsite, limit)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult {
    let corrupt = CorruptOneRecord::asked(&req);
    sim.check_user(&id_user)?;
    let offset = path_int("offsite", &offsite, 0, usize::MAX)?;
    let limit = path_int("limit", &limit, 1, MAX_LIMIT)?;
    let mut status = None;
    let mut search = None;
    for (key, value) in query_pairs(req.uri())? {
        match key.as_str() {
            "status" if value.trim().is_empty() => {
                return Err(bad_request("Invalid status: must not be empty"));
            }
            "status" => status = Some(value),
            // An empty search searches nothing out.
            "q" => search = Some(value.trim().to_lowercase()).filter(|q| !q.is_empty()),
            other => return Err(bad_request(format!("Unknown query parameter: {other}"))),
        }
    }

    let account = sim.inner.account.read();
    let all: &[usize] = match &status {
        Some(s) => account.by_status.get(s).map_or(&[], Vec::as_slice),
        None => &account.live,
    };
    let searched: Vec<usize>;
    let positions = match &search {
        Some(q) => {
            searched = all
                .iter()
                .copied()
                .filter(|&p| account.orders[p].matches(q))
                .collect();
            searched.as_slice()
        }
        None => all,
    };
    let total = positions.len();
    let page = offset.min(total)..offset.saturating_add(limit).min(total);
    let shown = page.len();
    let mut body = String::with_capacity(
        shown * account.orders.first().map_or(0, |o| o.json.len() + 64) + 128,
    );
    body.push_str(r#"{"message":"Data retrieved successfully","data":["#);
    for (n, k) in page.enumerate() {
        if n > 0 {
            body.push(',');
        }
        // Newest first: the k-th of the listing is the k-th from the end of `positions`.
        let order = &account.orders[positions[total - 1 - k]];
        if corrupt && CorruptOneRecord::is_target(n, shown) {
            body.push_str(&order.json[..order.id_at.start]);
            body.push_str(r#"{"oops":true}"#);
            body.push_str(&order.json[order.id_at.end..]);
        } else {
            body.push_str(&order.json);
        }
    }
    drop(account);
    body.push_str(&format!(r#"],"total":{total},"show":{shown}}}"#));

    let inserts = sim.inner.inserts_per_page.load(Ordering::SeqCst);
    if inserts > 0 {
        sim.add_orders_with_status(inserts, status.as_deref().unwrap_or("NEW"));
    }
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /public/order/orders/details/{id_user}/{id_order}`, in the document's other shape.
pub(super) async fn order_details(
    State(sim): State<MitrabunsoSim>,
    Path((id_user, id_order)): Path<(String, String)>,
) -> ApiResult {
    sim.check_user(&id_user)?;
    let account = sim.inner.account.read();
    let index = *account
        .positions
        .get(&id_order)
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "Data not found"))?;
    let order = &account.orders[index];
    let parts = generate(sim.inner.seed, index as u64, order.created);
    let body = render_details(&parts, &order.state, order.created);
    drop(account);
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /public/order/orders/total_summary/{id_user}`: live orders per status.
pub(super) async fn total_summary(
    State(sim): State<MitrabunsoSim>,
    Path(id_user): Path<String>,
) -> ApiResult {
    sim.check_user(&id_user)?;
    let account = sim.inner.account.read();
    let mut counts = serde_json::Map::new();
    for s in DOCUMENTED_STATUSES {
        counts.insert(s.to_owned(), json!(0));
    }
    // Statuses beyond the documented four (set by a test) are counted too.
    for (status, positions) in &account.by_status {
        counts.insert(status.clone(), json!(positions.len()));
    }
    let body = json!({ "message": "data retrieved successfully", "data": counts });
    Ok(json_response(StatusCode::OK, body.to_string()))
}
