//! Simulated SIRCLO / Connexi partner API (`platform-docs/sirclo.md` and the SIRCLO section of
//! `NOTES.md`): deterministic order data, the paged list filtered on the order date, the
//! batched update endpoint (`PATCH /v1/order`), `partner_id` + `MAC` auth checked over the exact
//! bytes received (the update also takes `api_key`/`api_secret`), and the shared fault queue.
//!
//! The data keeps the quirks real records have (NOTES): the number under `order_number` or
//! `order_id`, both `canceled` and `cancelled`, `createdAt`/`updatedAt` without a zone and with
//! trailing zeros of the microseconds dropped (as Postgres prints them), `order_date` in +07:00
//! or `Z`.
//!
//! Built for volume: every order's JSON is rendered once (again only when it changes); the
//! listing keeps the live orders in order-date order, so the `since`/`until` filter is two
//! binary searches and a page is a concatenation of ready strings.
//!
//! For the drift tests (`verify`), the back office can also do what a sync cannot see: change a
//! status without moving `updatedAt`, place orders dated in the past, and delete orders.

use std::collections::HashSet;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::{
    CorruptOneRecord, Faults, RecordedRequest, RequestLog, RunningSim, SimRng, apply_fault,
    json_response, record_requests,
};

/// Ids of generated orders start here (order `FIRST_ID + i` is at index `i`).
const FIRST_ID: u64 = 100_001;
const MAX_PERPAGE: usize = 100;
const LIST_ROUTE: &str = "/v1/partner/page/{page_no}";
const UPDATE_PATH: &str = "/v1/order";
/// Largest body the gate reads to check a MAC.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The failure text of the document's update example ("the given parameters are wrong").
const WRONG_PARAMETERS: &str = "Parameter yang diberikan salah";
/// The update groups, in the order the document lists them.
const UPDATE_GROUPS: [&str; 4] = ["accepted", "packed", "completed", "cancelled"];

/// Western Indonesia Time, the zone `order_date` is usually written in.
fn wib() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

/// `createdAt`/`updatedAt` as SIRCLO writes them: UTC without a zone, microseconds with their
/// trailing zeros dropped (none at all on a whole second).
pub fn platform_time(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.timestamp_subsec_micros();
    if micros == 0 {
        base
    } else {
        format!("{base}.{}", format!("{micros:06}").trim_end_matches('0'))
    }
}

/// The simulator's clock, at the platform's precision.
fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// How a [`SircloSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub partner_id: String,
    /// The HMAC key of the list (and, in later revisions, the update).
    pub secret: String,
    /// The update endpoint's own credentials, as the document has them.
    pub api_key: String,
    pub api_secret: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `order_date` of the first generated order.
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative (orders are kept in
    /// order-date order).
    pub spacing: chrono::Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            // The document's example partner.
            partner_id: "B98KL87".to_owned(),
            secret: "demo-sirclo-secret".to_owned(),
            api_key: "demo-sirclo-api-key".to_owned(),
            api_secret: "demo-sirclo-api-secret".to_owned(),
            orders: 0,
            seed: 1,
            start: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
            spacing: chrono::Duration::seconds(90),
        }
    }
}

/// What a test compares the store against: the fields of each order that the daemon maps.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthOrder {
    pub id: u64,
    /// `order_number`, or `order_id` for the records that carry that instead.
    pub number: String,
    /// As the platform reports it (`canceled` or `cancelled` for cancelled orders).
    pub status: String,
    pub total: Decimal,
    pub currency: Option<String>,
    pub items: usize,
    /// SIRCLO's item ids, in line order.
    pub item_ids: Vec<String>,
    /// Empty when the record has none.
    pub delivery_name: String,
    pub airwaybill_number: Option<String>,
    pub order_date: String,
    /// `updatedAt` exactly as the list shows it (what the update endpoint compares).
    pub updated_at: String,
    /// Set by a `completed` update.
    pub received_by: Option<String>,
    /// Set by a `cancelled` update.
    pub cancel_reason: Option<String>,
}

/// A simulated SIRCLO partner account. Cheap to clone; clones share the account.
#[derive(Clone)]
pub struct SircloSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    partner_id: String,
    secret: String,
    api_key: String,
    api_secret: String,
    faults: Faults,
    log: RequestLog,
    shop: RwLock<Shop>,
    /// At most this many orders per page whatever `perpage` asks (a platform-side cap).
    page_cap: std::sync::atomic::AtomicUsize,
}

struct Shop {
    /// In id order (deleted ones stay, out of the listing); the order with id `FIRST_ID + i` is
    /// at index `i`.
    orders: Vec<StoredOrder>,
    /// Indexes of the live orders in order-date order (ties in id order): the listing. Id
    /// order too, unless orders were placed backdated.
    listing: Vec<usize>,
}

struct StoredOrder {
    placed: DateTime<Utc>,
    deleted: bool,
    state: OrderState,
    facts: Facts,
    json: String,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone, PartialEq)]
struct OrderState {
    status: String,
    airwaybill: Option<String>,
    updated: DateTime<Utc>,
    received_by: Option<String>,
    cancel_reason: Option<String>,
}

/// Generated values kept for [`TruthOrder`] and the update checks, so neither parses JSON.
struct Facts {
    number: String,
    order_date: String,
    total: Decimal,
    delivery_name: String,
    item_ids: Vec<String>,
}

impl SircloSim {
    /// From the next request on, answers at most `cap` orders per page whatever `perpage`
    /// asks, while `total_record` still counts the whole listing.
    pub fn cap_pages_at(&self, cap: usize) {
        self.inner
            .page_cap
            .store(cap, std::sync::atomic::Ordering::Relaxed);
    }

    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative.
    pub fn new(opts: SimOptions) -> Self {
        assert!(
            opts.spacing >= chrono::Duration::zero(),
            "SimOptions::spacing must not be negative"
        );
        let start = opts.start.trunc_subsecs(0);
        let n = opts.orders;
        // Generated orders were last touched no later than the newest one was placed, as if the
        // account had been snapshotted then.
        let snapshot = start + opts.spacing * (n.saturating_sub(1) as i32);
        let seed = opts.seed;
        let build = |index: usize| {
            let placed = (start + opts.spacing * (index as i32)).trunc_subsecs(0);
            let generated = generate(seed, index as u64, placed);
            let mut state = generated.initial.clone();
            state.updated = state.updated.min(snapshot.max(generated.created));
            StoredOrder::from_generated(generated, placed, state)
        };
        let orders = super::generate_parallel(n, &build);
        SircloSim {
            inner: Arc::new(Inner {
                seed: opts.seed,
                partner_id: opts.partner_id,
                secret: opts.secret,
                api_key: opts.api_key,
                api_secret: opts.api_secret,
                faults: Faults::default(),
                log: RequestLog::default(),
                shop: RwLock::new(Shop {
                    listing: (0..orders.len()).collect(),
                    orders,
                }),
                page_cap: std::sync::atomic::AtomicUsize::new(usize::MAX),
            }),
        }
    }

    /// Binds 127.0.0.1:0 and serves the account until the returned handle is stopped or
    /// dropped.
    pub async fn serve(&self) -> std::io::Result<RunningSim> {
        super::serve(self.router()).await
    }

    /// The complete app (routes, auth, faults, request log), for callers that serve it
    /// themselves.
    pub fn router(&self) -> Router {
        Router::new()
            .route(LIST_ROUTE, get(list_orders))
            .route(UPDATE_PATH, patch(update_orders))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
            .layer(middleware::from_fn_with_state(self.clone(), gate))
            .layer(middleware::from_fn_with_state(
                self.inner.log.clone(),
                record_requests,
            ))
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Sets `status` as SIRCLO's back office would, bypassing the update endpoint's rules, and
    /// bumps `updatedAt`. Any string is accepted, so tests can produce statuses the daemon does
    /// not know.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: u64, platform_status: &str) {
        self.modify(id, |state| state.status = platform_status.to_owned());
    }

    /// Sets `airwaybill_number` and bumps `updatedAt`.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_airwaybill(&self, id: u64, airwaybill: &str) {
        self.modify(id, |state| state.airwaybill = Some(airwaybill.to_owned()));
    }

    /// Places `n` new pending orders, dated now (never before the newest order). Returns their
    /// ids.
    pub fn add_orders(&self, n: usize) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let index = shop.orders.len() as u64;
            // Never in the future: a list whose `until` is "now" must see an order placed now.
            let now = Utc::now().trunc_subsecs(0);
            let placed = shop.newest().map_or(now, |newest| now.max(newest));
            let generated = generate(seed, index, placed);
            let state = OrderState {
                status: "pending".to_owned(),
                airwaybill: None,
                updated: generated.created,
                received_by: None,
                cancel_reason: None,
            };
            shop.place(StoredOrder::from_generated(generated, placed, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Sets `status` as the back office would, without moving `updatedAt`: a change no filter
    /// and no update time shows.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, platform_status: &str) {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the SIRCLO simulator has no order {id}"));
        let order = &mut shop.orders[index];
        let mut state = order.state.clone();
        state.status = platform_status.to_owned();
        order.restate(seed, index as u64, state);
    }

    /// Places `n` accepted orders dated `placed` (one second apart, last updated when they were
    /// created), where the order-date listing puts them: among the old orders, out of reach of
    /// a sync window that starts after them. Returns their ids.
    pub fn add_backdated_orders(&self, n: usize, placed: DateTime<Utc>) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let index = shop.orders.len() as u64;
            let placed = placed.trunc_subsecs(0) + chrono::Duration::seconds(k as i64);
            let generated = generate(seed, index, placed);
            let state = OrderState {
                status: "accepted".to_owned(),
                airwaybill: None,
                updated: generated.created,
                received_by: None,
                cancel_reason: None,
            };
            shop.place(StoredOrder::from_generated(generated, placed, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Deletes order `id`: it leaves the listing, and updates no longer find it.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: u64) {
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the SIRCLO simulator has no order {id}"));
        shop.orders[index].deleted = true;
        shop.listing.retain(|&i| i != index);
    }

    /// Live order ids, ascending.
    pub fn order_ids(&self) -> Vec<u64> {
        let shop = self.read();
        (0..shop.orders.len())
            .filter(|&i| !shop.orders[i].deleted)
            .map(|i| FIRST_ID + i as u64)
            .collect()
    }

    /// Every live order, id ascending (which is also order-date order unless orders were
    /// placed backdated).
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.read();
        shop.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.deleted)
            .map(|(i, o)| TruthOrder {
                id: FIRST_ID + i as u64,
                number: o.facts.number.clone(),
                status: o.state.status.clone(),
                total: o.facts.total,
                currency: Some("IDR".to_owned()),
                items: o.facts.item_ids.len(),
                item_ids: o.facts.item_ids.clone(),
                delivery_name: o.facts.delivery_name.clone(),
                airwaybill_number: o.state.airwaybill.clone().filter(|a| !a.is_empty()),
                order_date: o.facts.order_date.clone(),
                updated_at: platform_time(o.state.updated),
                received_by: o.state.received_by.clone(),
                cancel_reason: o.state.cancel_reason.clone(),
            })
            .collect()
    }

    /// The last [`RequestLog::CAPACITY`] requests received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.log.snapshot()
    }

    /// Every request ever received, including those no longer in [`Self::requests`].
    pub fn request_count(&self) -> usize {
        self.inner.log.total()
    }

    fn read(&self) -> RwLockReadGuard<'_, Shop> {
        // Every write replaces whole values, so a poisoned lock still guards a consistent shop.
        self.inner.shop.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Shop> {
        self.inner.shop.write().unwrap_or_else(|e| e.into_inner())
    }

    fn modify(&self, id: u64, change: impl FnOnce(&mut OrderState)) {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the SIRCLO simulator has no order {id}"));
        shop.orders[index].change(seed, index as u64, change);
    }

    /// `partner_id` (either spelling) and a MAC (`MAC`, or `secret` as later revisions name
    /// it) over the request URI exactly as received, followed by the body.
    fn mac_accepted(&self, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let partner = match (text("partner_id"), text("partner-id")) {
            (Some(a), Some(b)) if a != b => return false,
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => return false,
        };
        if partner != self.inner.partner_id {
            return false;
        }
        let Some(tag) = text("mac")
            .or_else(|| text("secret"))
            .and_then(|m| BASE64.decode(m.trim()).ok())
        else {
            return false;
        };
        let request_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |pq| pq.as_str());
        let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(request_uri.as_bytes());
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    }

    fn api_key_accepted(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        text("api_key") == Some(self.inner.api_key.as_str())
            && text("api_secret") == Some(self.inner.api_secret.as_str())
    }
}

impl Shop {
    /// The index of live order `id`.
    fn index_of(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(FIRST_ID)?).ok()?;
        (index < self.orders.len() && !self.orders[index].deleted).then_some(index)
    }

    /// When the newest live order was placed.
    fn newest(&self) -> Option<DateTime<Utc>> {
        self.listing.last().map(|&i| self.orders[i].placed)
    }

    /// Adds a new order (the next id) at its place in the listing.
    fn place(&mut self, order: StoredOrder) {
        let index = self.orders.len();
        let at = self
            .listing
            .partition_point(|&i| self.orders[i].placed <= order.placed);
        self.orders.push(order);
        self.listing.insert(at, index);
    }
}

impl StoredOrder {
    fn from_generated(mut generated: Generated, placed: DateTime<Utc>, state: OrderState) -> Self {
        let facts = Facts {
            number: generated.number.clone(),
            order_date: generated.record.order_date.clone(),
            total: generated.record.total.0,
            delivery_name: generated.record.delivery_name.clone(),
            item_ids: generated
                .record
                .line_items
                .iter()
                .map(|i| i.id.to_string())
                .collect(),
        };
        let json = render(&mut generated.record, &state);
        StoredOrder {
            placed,
            deleted: false,
            state,
            facts,
            json,
        }
    }

    /// Applies `change`; if it changed anything, bumps `updatedAt` and re-renders.
    fn change(&mut self, seed: u64, index: u64, change: impl FnOnce(&mut OrderState)) {
        let mut state = self.state.clone();
        change(&mut state);
        if state == self.state {
            return;
        }
        // Strictly later than before, so every change shows in `updatedAt`'s text even when two
        // land within the same microsecond.
        state.updated = now_micros().max(self.state.updated + chrono::Duration::microseconds(1));
        self.restate(seed, index, state);
    }

    /// Takes `state` as it is and re-renders.
    fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        let mut generated = generate(seed, index, self.placed);
        self.json = render(&mut generated.record, &state);
        self.state = state;
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

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
    apply_fault(sim.inner.faults.next(), req, next, error_response).await
}

/// SIRCLO's envelope, `{"data", "message", "reference"}`, with no data.
fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({ "data": null, "message": message, "reference": "" });
    json_response(status, body.to_string())
}

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The list query: the document marks `since`, `until` and `perpage` required and lists no
/// other parameter.
struct ListQuery {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    perpage: usize,
}

impl ListQuery {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
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

fn parse_rfc3339(param: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
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
async fn list_orders(
    State(sim): State<SircloSim>,
    Path(page_no): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
    let page_no = Some(page_no.as_str())
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .ok_or_else(|| bad_request("Invalid pageNo: must be an integer from 1"))?;
    let q = ListQuery::parse(req.uri())?;

    let shop = sim.read();
    let (orders, listing) = (&shop.orders, &shop.listing);
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
        let corrupt_this = corrupt && (n == 1 || (n == 0 && count == 1));
        push_record(&mut body, &order.json, corrupt_this);
    }
    drop(shop);
    body.push_str(&format!(
        r#"],"total_record":{total},"message":"","reference":""}}"#
    ));
    Ok(json_response(StatusCode::OK, body))
}

/// Appends one order object, with its id broken when `corrupt`.
fn push_record(out: &mut String, record: &str, corrupt: bool) {
    if !corrupt {
        out.push_str(record);
        return;
    }
    // Every record starts with its id (`{"id":100001,…`), so the digits are found without
    // parsing.
    let digits_start = r#"{"id":"#.len();
    let digits_end = record[digits_start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(record.len(), |n| digits_start + n);
    out.push_str(r#"{"id":{"oops":true}"#);
    out.push_str(&record[digits_end..]);
}

/// `PATCH /v1/order`: entries grouped by target status; each order succeeds or fails on its
/// own, and the answer lists both.
async fn update_orders(State(sim): State<SircloSim>, headers: HeaderMap, body: Bytes) -> ApiResult {
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
    let mut shop = sim.write();
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
    fn update(
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
            // Read back with the spelling the platform uses for its own cancellations (NOTES).
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
fn platform_allows(from: &str, to: &str) -> bool {
    matches!(
        (from.to_ascii_lowercase().as_str(), to),
        ("pending", "accepted" | "cancelled")
            | ("accepted", "packed" | "cancelled")
            | ("packed", "completed")
    )
}

// ---------------------------------------------------------------------------------------------
// Data: generation and rendering

/// Money as the platform writes it: a JSON number (integer rupiah, a few with cents),
/// serialized from the decimal's text, never through `f64`.
#[derive(Debug, Clone, Copy)]
struct Money(Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// One order in the document's field order; `id` first (the corrupting fault relies on it).
#[derive(Serialize)]
struct Record {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
    order_date: String,
    customer_reference: String,
    shipment_reference: String,
    status: String,
    delivery_name: String,
    delivery_email: String,
    delivery_street_address: String,
    delivery_region: &'static str,
    delivery_city: &'static str,
    delivery_country: &'static str,
    delivery_post_code: String,
    delivery_method: &'static str,
    delivery_mobile: String,
    airwaybill_number: String,
    currency_code: &'static str,
    subtotal: Money,
    discount_total: Money,
    shipping_total: Money,
    tax_total: Money,
    total: Money,
    line_items: Vec<LineItem>,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

#[derive(Serialize)]
struct LineItem {
    id: u64,
    sku: &'static str,
    name: &'static str,
    quantity: u32,
    raw_price: Money,
    discount: Money,
}

struct Generated {
    record: Record,
    number: String,
    created: DateTime<Utc>,
    /// The state the order was generated in (its `updated` not yet capped).
    initial: OrderState,
}

fn render(record: &mut Record, state: &OrderState) -> String {
    record.status = state.status.clone();
    record.airwaybill_number = state.airwaybill.clone().unwrap_or_default();
    record.updated_at = platform_time(state.updated);
    // Plain structs of strings and numbers: serialization cannot fail.
    serde_json::to_string(record).expect("an order record serializes")
}

struct Product {
    id: u64,
    sku: &'static str,
    name: &'static str,
    price: i64,
}

const PRODUCTS: &[Product] = &[
    Product {
        id: 20417,
        sku: "KMJ-BTK-001-M",
        name: "Kemeja Batik Pria Lengan Panjang - M",
        price: 289_000,
    },
    Product {
        id: 20418,
        sku: "KMJ-BTK-001-L",
        name: "Kemeja Batik Pria Lengan Panjang - L",
        price: 289_000,
    },
    Product {
        id: 31002,
        sku: "SRM-VITC-30",
        name: "Serum Wajah Vitamin C 30ml",
        price: 129_000,
    },
    Product {
        id: 31007,
        sku: "SNS-SPF50-50",
        name: "Sunscreen Gel SPF 50 PA++++ 50ml",
        price: 89_000,
    },
    Product {
        id: 31011,
        sku: "TNR-HYD-100",
        name: "Hydrating Toner 100ml",
        price: 75_000,
    },
    Product {
        id: 40120,
        sku: "HJB-PSM-BLK",
        name: "Hijab Pashmina Ceruty Hitam",
        price: 59_000,
    },
    Product {
        id: 40121,
        sku: "HJB-PSM-NVY",
        name: "Hijab Pashmina Ceruty Navy",
        price: 59_000,
    },
    Product {
        id: 52001,
        sku: "SPT-SNK-W-38",
        name: "Sepatu Sneakers Wanita Putih 38",
        price: 349_000,
    },
    Product {
        id: 52002,
        sku: "SPT-SNK-W-39",
        name: "Sepatu Sneakers Wanita Putih 39",
        price: 349_000,
    },
    Product {
        id: 60310,
        sku: "KOPI-ARB-250",
        name: "Kopi Arabika Gayo 250g",
        price: 98_500,
    },
    Product {
        id: 60311,
        sku: "TEH-MLT-20",
        name: "Teh Melati Celup isi 20",
        price: 12_500,
    },
    Product {
        id: 71004,
        sku: "TAS-TOTE-CNV",
        name: "Tas Tote Kanvas Motif Tenun",
        price: 165_000,
    },
    Product {
        id: 80050,
        sku: "PRF-EDP-30",
        name: "Parfum EDP Vanilla Musk 30ml",
        price: 219_000,
    },
    Product {
        id: 90002,
        sku: "KAOS-OVS-L",
        name: "Kaos Oversize Katun Combed 30s - L",
        price: 99_000,
    },
];

const FIRST_NAMES: &[&str] = &[
    "Artia", "Budi", "Siti", "Dewi", "Agus", "Rina", "Andi", "Putri", "Yosua", "Rizky", "Nur",
    "Fajar", "Ayu", "Wahyu", "Indah", "Bayu", "Made", "Kevin",
];
const LAST_NAMES: &[&str] = &[
    "Santoso",
    "Wijaya",
    "Saputra",
    "Pratama",
    "Lestari",
    "Hidayat",
    "Kusuma",
    "Nugroho",
    "Sari",
    "Siregar",
    "Simanjuntak",
    "Halim",
    "Tanoto",
    "Permana",
];
const STREETS: &[&str] = &[
    "Jl. Anggrek",
    "Jl. Jend. Sudirman",
    "Jl. Gatot Subroto",
    "Jl. Diponegoro",
    "Jl. Merdeka",
    "Jl. Kebon Jeruk Raya",
    "Jl. Ir. H. Juanda",
    "Jl. Pemuda",
    "Jl. Kaliurang",
];
/// (region, city - district, post code prefix)
const PLACES: &[(&str, &str, &str)] = &[
    ("DKI Jakarta", "Kota Jakarta Barat - Cengkareng", "117"),
    (
        "DKI Jakarta",
        "Kota Jakarta Selatan - Kebayoran Baru",
        "121",
    ),
    ("Jawa Barat", "Kota Bandung - Coblong", "401"),
    ("Jawa Timur", "Kota Surabaya - Gubeng", "602"),
    ("Banten", "Kota Tangerang Selatan - Serpong", "153"),
    ("Bali", "Kota Denpasar - Denpasar Selatan", "802"),
    ("Sumatera Utara", "Kota Medan - Medan Baru", "201"),
    ("DI Yogyakarta", "Kab. Sleman - Depok", "552"),
    ("Sulawesi Selatan", "Kota Makassar - Panakkukang", "902"),
];
const EMAIL_DOMAINS: &[&str] = &["gmail.com", "yahoo.co.id", "outlook.com", "ymail.com"];
/// (weight, delivery method, shipping cost)
const DELIVERY_METHODS: &[(u64, (&str, i64))] = &[
    (30, ("JNE REG", 18_000)),
    (10, ("JNE YES", 35_000)),
    (20, ("J&T EZ", 15_000)),
    (15, ("SiCepat REG", 14_000)),
    (10, ("AnterAja Regular", 13_000)),
    (10, ("GoSend Instant", 32_000)),
    (5, ("Ninja Xpress Standard", 16_000)),
];
const STATUSES: &[(u64, &str)] = &[
    (8, "pending"),
    (12, "accepted"),
    (15, "packed"),
    (50, "completed"),
    (10, "canceled"),
    (5, "cancelled"),
];

fn generate(seed: u64, index: u64, placed: DateTime<Utc>) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let id = FIRST_ID + index;

    let channel = *rng.weighted(&[(45, "tokopedia"), (35, "shopee"), (20, "web")]);
    let local = placed.with_timezone(&wib());
    let number = match channel {
        "tokopedia" => format!(
            "INV/{}/MPL/{}{:06}",
            local.format("%Y%m%d"),
            rng.digits(4),
            index % 1_000_000
        ),
        "shopee" => format!(
            "{}{}{:05}",
            local.format("%y%m%d"),
            rng.hex(4).to_ascii_uppercase(),
            index % 100_000
        ),
        _ => format!("SO{}{:07}", local.format("%y"), index + 1),
    };
    // Some records carry the number as `order_id`, as the create endpoint names it (NOTES).
    let (order_number, order_id) = if rng.percent(15) {
        (None, Some(number.clone()))
    } else {
        (Some(number.clone()), None)
    };
    let order_date = if rng.percent(80) {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        placed.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };

    let count = *rng.weighted(&[(60, 1usize), (28, 2), (12, 3)]);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count {
        let i = rng.below(PRODUCTS.len() as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let line_items: Vec<LineItem> = chosen
        .into_iter()
        .map(|i| {
            let p = &PRODUCTS[i];
            let quantity = *rng.weighted(&[(75, 1u32), (18, 2), (5, 3), (2, 6)]);
            let line = p.price * i64::from(quantity);
            // Campaign discounts are whole hundreds of rupiah.
            let discount = if rng.percent(40) {
                line * rng.between(5, 20) as i64 / 100 / 100 * 100
            } else {
                0
            };
            LineItem {
                id: p.id,
                sku: p.sku,
                name: p.name,
                quantity,
                raw_price: Money(Decimal::from(p.price)),
                discount: Money(Decimal::from(discount)),
            }
        })
        .collect();
    let subtotal: Decimal = line_items
        .iter()
        .map(|l| l.raw_price.0 * Decimal::from(l.quantity))
        .sum();
    let discount_total: Decimal = line_items.iter().map(|l| l.discount.0).sum();
    let &(method, cost) = rng.weighted(DELIVERY_METHODS);
    let shipping = if rng.percent(25) { 0 } else { cost };
    let shipping_total = Decimal::from(shipping);
    // A few channels charge a service fee with cents, carried in `tax_total`.
    let tax_total = if rng.percent(10) {
        ((subtotal - discount_total) * Decimal::new(11, 4))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    } else {
        Decimal::ZERO
    };
    let total = subtotal - discount_total + shipping_total + tax_total;

    let status = *rng.weighted(STATUSES);
    let airwaybill =
        (matches!(status, "packed" | "completed") && rng.percent(92)).then(|| match method {
            "JNE REG" | "JNE YES" => format!("CGK{}", rng.digits(13)),
            "J&T EZ" => format!("JP{}", rng.digits(10)),
            "SiCepat REG" => format!("00{}", rng.digits(10)),
            "AnterAja Regular" => format!("10000{}", rng.digits(10)),
            "GoSend Instant" => format!("GK-11-{}", rng.digits(8)),
            _ => format!("NLIDAP{}", rng.digits(8)),
        });
    let micros = |rng: &mut SimRng| chrono::Duration::microseconds(rng.below(1_000_000) as i64);
    let created = placed + chrono::Duration::seconds(rng.between(2, 300) as i64) + micros(&mut rng);
    let minutes = |lo: u64, hi: u64, rng: &mut SimRng| {
        chrono::Duration::minutes(rng.between(lo, hi) as i64) + micros(rng)
    };
    let updated = created
        + match status {
            "pending" => chrono::Duration::zero(),
            "accepted" => minutes(5, 12 * 60, &mut rng),
            "packed" => minutes(12 * 60, 2 * 24 * 60, &mut rng),
            "completed" => minutes(2 * 24 * 60, 7 * 24 * 60, &mut rng),
            _ => minutes(10, 2 * 24 * 60, &mut rng),
        };

    let first = *rng.pick(FIRST_NAMES);
    // Many Indonesians have a single name.
    let delivery_name = if rng.percent(2) {
        String::new()
    } else if rng.percent(10) {
        first.to_owned()
    } else {
        format!("{first} {}", rng.pick(LAST_NAMES))
    };
    let delivery_email = if rng.percent(5) {
        String::new()
    } else {
        format!(
            "{}{}@{}",
            first.to_ascii_lowercase(),
            rng.below(1000),
            rng.pick(EMAIL_DOMAINS)
        )
    };
    let place = *rng.pick(PLACES);
    let street = format!(
        "{} No.{}{}",
        rng.pick(STREETS),
        rng.between(1, 250),
        if rng.percent(30) {
            format!(
                " Blok {}{}",
                char::from(b'A' + rng.below(8) as u8),
                rng.between(1, 12)
            )
        } else {
            String::new()
        }
    );
    let post_code = format!("{}{}", place.2, rng.digits(5 - place.2.len()));
    let mobile_digits = rng.between(9, 10) as usize;
    let mobile = format!("08{}", rng.digits(mobile_digits));
    let customer_reference = match channel {
        "shopee" => format!("shp_{}", rng.hex(8)),
        "tokopedia" => format!("TKP{}", rng.digits(9)),
        _ => format!("CUST-{}", rng.hex(6).to_ascii_uppercase()),
    };
    let shipment_reference = if rng.percent(30) {
        format!("BK{}", rng.digits(10))
    } else {
        String::new()
    };

    let record = Record {
        id,
        order_number,
        order_id,
        order_date,
        customer_reference,
        shipment_reference,
        status: status.to_owned(),
        delivery_name,
        delivery_email,
        delivery_street_address: street,
        delivery_region: place.0,
        delivery_city: place.1,
        delivery_country: "Indonesia",
        delivery_post_code: post_code,
        delivery_method: method,
        delivery_mobile: mobile,
        airwaybill_number: String::new(),
        currency_code: "IDR",
        subtotal: Money(subtotal),
        discount_total: Money(discount_total),
        shipping_total: Money(shipping_total),
        tax_total: Money(tax_total),
        total: Money(total),
        line_items,
        created_at: platform_time(created),
        updated_at: String::new(),
    };
    Generated {
        record,
        number,
        created,
        initial: OrderState {
            status: status.to_owned(),
            airwaybill,
            updated,
            received_by: None,
            cancel_reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::Fault;

    /// The MAC as a partner computes it: base64 of HMAC-SHA256 over the request URI and body.
    fn sign(secret: &str, request_uri: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(request_uri.as_bytes());
        mac.update(body);
        BASE64.encode(mac.finalize().into_bytes())
    }

    struct Served {
        sim: SircloSim,
        running: RunningSim,
        http: reqwest::Client,
    }

    async fn account(orders: usize) -> Served {
        let sim = SircloSim::new(SimOptions {
            orders,
            ..SimOptions::default()
        });
        let running = sim.serve().await.expect("sim starts");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().expect("client builds");
        Served { sim, running, http }
    }

    const SINCE: &str = "2024-12-31T00:00:00Z";
    const UNTIL: &str = "2025-02-01T00:00:00Z";

    impl Served {
        /// A request signed over `signed` (the request URI and body), sent to `sent`.
        fn signed(
            &self,
            method: reqwest::Method,
            sent: &str,
            signed: &str,
            body: &str,
        ) -> reqwest::RequestBuilder {
            let opts = SimOptions::default();
            self.http
                .request(method, format!("{}{sent}", self.running.base_url()))
                .header("partner_id", opts.partner_id)
                .header("MAC", sign(&opts.secret, signed, body.as_bytes()))
        }

        async fn get(&self, path_and_query: &str) -> (u16, Value) {
            let request = self.signed(reqwest::Method::GET, path_and_query, path_and_query, "");
            read_json(request.send().await.unwrap()).await
        }

        async fn page(&self, page_no: usize, perpage: usize) -> (u16, Value) {
            self.get(&format!(
                "/v1/partner/page/{page_no}?since={SINCE}&until={UNTIL}&perpage={perpage}"
            ))
            .await
        }

        async fn update(&self, body: &Value) -> (u16, Value) {
            let body = body.to_string();
            let request = self
                .signed(reqwest::Method::PATCH, UPDATE_PATH, UPDATE_PATH, &body)
                .header("Content-Type", "application/json")
                .body(body);
            read_json(request.send().await.unwrap()).await
        }
    }

    async fn read_json(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], "application/json");
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }

    fn ids_of(page: &Value) -> Vec<u64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn pages_return_every_order_once_oldest_first_with_the_total() {
        let acct = account(250).await;
        let mut seen = Vec::new();
        for page_no in 1..=4 {
            let (status, page) = acct.page(page_no, 100).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["total_record"], 250);
            assert_eq!(
                (page["message"].as_str(), page["reference"].as_str()),
                (Some(""), Some(""))
            );
            seen.extend(ids_of(&page));
        }
        assert_eq!(
            seen,
            acct.sim.order_ids(),
            "pages 1-3 hold everything, page 4 is empty"
        );
    }

    #[tokio::test]
    async fn since_and_until_filter_on_the_order_date_inclusively() {
        let acct = account(100).await;
        let truth = acct.sim.truth();
        // Orders are 90 s apart from 2025-01-01T00:00:00Z: 10 through 20 inclusive.
        let from = "2025-01-01T00:15:00Z";
        let to = "2025-01-01T07:30:00%2B07:00";
        let (status, page) = acct
            .get(&format!(
                "/v1/partner/page/1?since={from}&until={to}&perpage=100"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            ids_of(&page),
            (10..=20).map(|i| truth[i].id).collect::<Vec<_>>()
        );
        assert_eq!(page["total_record"], 11);
    }

    #[tokio::test]
    async fn records_match_the_document_and_the_truth() {
        let acct = account(300).await;
        let truth = acct.sim.truth();
        let (_, page) = acct.page(1, 100).await;
        let mut statuses = HashSet::new();
        let mut with_order_id = 0;
        for (record, t) in page["data"].as_array().unwrap().iter().zip(&truth) {
            let o = record.as_object().unwrap();
            for key in [
                "id",
                "order_date",
                "customer_reference",
                "shipment_reference",
                "status",
                "delivery_name",
                "delivery_street_address",
                "delivery_method",
                "airwaybill_number",
                "currency_code",
                "subtotal",
                "discount_total",
                "shipping_total",
                "tax_total",
                "total",
                "line_items",
                "createdAt",
                "updatedAt",
            ] {
                assert!(o.contains_key(key), "{key} in {record}");
            }
            assert_eq!(o["id"], t.id);
            let number = o.get("order_number").or(o.get("order_id")).unwrap();
            with_order_id += usize::from(o.contains_key("order_id"));
            assert_eq!(number, &t.number);
            assert_eq!(o["status"], t.status.as_str());
            statuses.insert(t.status.clone());
            assert_eq!(Decimal::from_str(&o["total"].to_string()).unwrap(), t.total);
            let money = |k: &str| Decimal::from_str(&o[k].to_string()).unwrap();
            assert_eq!(
                money("subtotal") - money("discount_total")
                    + money("shipping_total")
                    + money("tax_total"),
                t.total
            );
            assert_eq!(o["line_items"].as_array().unwrap().len(), t.items);
            assert_eq!(o["updatedAt"], t.updated_at.as_str());
            assert!(DateTime::parse_from_rfc3339(o["order_date"].as_str().unwrap()).is_ok());
            assert!(
                !o["createdAt"].as_str().unwrap().contains('T'),
                "no zone, no T"
            );
        }
        assert!(
            with_order_id > 0,
            "some records carry order_id instead of order_number"
        );
        for s in [
            "pending",
            "accepted",
            "packed",
            "completed",
            "canceled",
            "cancelled",
        ] {
            assert!(statuses.contains(s), "{s} among the first 100");
        }
    }

    #[tokio::test]
    async fn invalid_queries_are_refused_naming_the_parameter() {
        let acct = account(5).await;
        for (query, expected) in [
            (
                format!("since={SINCE}&until={UNTIL}&perpage=101"),
                "perpage",
            ),
            (format!("since={SINCE}&until={UNTIL}&perpage=0"), "perpage"),
            (format!("since={SINCE}&until={UNTIL}"), "perpage"),
            (format!("until={UNTIL}&perpage=10"), "since"),
            (format!("since=yesterday&until={UNTIL}&perpage=10"), "since"),
            // An unencoded `+` reads as a space.
            (
                format!("since=2025-01-01T07:00:00+07:00&until={UNTIL}&perpage=10"),
                "since",
            ),
            (
                format!("since={SINCE}&until={UNTIL}&perpage=10&limit=5"),
                "limit",
            ),
            (
                format!("since={SINCE}&until={UNTIL}&perpage=10&perpage=10"),
                "perpage",
            ),
            (format!("since={UNTIL}&until={SINCE}&perpage=10"), "since"),
        ] {
            let (status, body) = acct.get(&format!("/v1/partner/page/1?{query}")).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert!(
                body["message"].as_str().unwrap().contains(expected),
                "{query}: {body}"
            );
        }
        for page_no in ["0", "x", "-1"] {
            let (status, _) = acct
                .get(&format!(
                    "/v1/partner/page/{page_no}?since={SINCE}&until={UNTIL}&perpage=1"
                ))
                .await;
            assert_eq!(status, 400, "page {page_no}");
        }
        let (status, _) = acct.get("/v1/partner/orders").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn the_mac_is_checked_over_the_exact_bytes_received() {
        let acct = account(5).await;
        let sent = format!("/v1/partner/page/1?since={SINCE}&until={UNTIL}&perpage=5");
        let get = reqwest::Method::GET;
        let ok = acct
            .signed(get.clone(), &sent, &sent, "")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let other_query = sent.replace("perpage=5", "perpage=4");
        let r = acct
            .signed(get.clone(), &sent, &other_query, "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "a MAC over another query");
        let encoded = sent.replace(':', "%3A");
        let r = acct
            .signed(get.clone(), &encoded, &sent, "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "signed unencoded, sent encoded");
        let r = acct
            .signed(get.clone(), &encoded, &encoded, "")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "signed as sent, encoded: the values decode the same"
        );

        let opts = SimOptions::default();
        let mac = sign(&opts.secret, &sent, b"");
        let url = format!("{}{sent}", acct.running.base_url());
        let with = |headers: &[(&str, &str)]| {
            let mut r = acct.http.get(&url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send()
        };
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(
            status(
                with(&[("partner-id", &opts.partner_id), ("MAC", &mac)])
                    .await
                    .unwrap()
            ),
            200
        );
        assert_eq!(
            status(
                with(&[("partner_id", &opts.partner_id), ("secret", &mac)])
                    .await
                    .unwrap()
            ),
            200
        );
        assert_eq!(
            status(
                with(&[("partner_id", "OTHER"), ("MAC", &mac)])
                    .await
                    .unwrap()
            ),
            401
        );
        assert_eq!(status(with(&[("MAC", &mac)]).await.unwrap()), 401);
        assert_eq!(
            status(with(&[("partner_id", &opts.partner_id)]).await.unwrap()),
            401
        );
        let wrong_key = sign("not-the-secret", &sent, b"");
        assert_eq!(
            status(
                with(&[("partner_id", &opts.partner_id), ("MAC", &wrong_key)])
                    .await
                    .unwrap()
            ),
            401
        );
        assert_eq!(acct.sim.request_count(), 10);
    }

    #[tokio::test]
    async fn updates_move_orders_along_the_lifecycle_and_report_each_order() {
        let acct = account(200).await;
        let truth = acct.sim.truth();
        let find = |s: &str| truth.iter().find(|t| t.status == s).unwrap().clone();
        let (pending, accepted, packed) = (find("pending"), find("accepted"), find("packed"));
        let completed = find("completed");
        let body = json!({
            "accepted": [{"id": pending.id, "order_number": pending.number,
                          "updated_at": pending.updated_at}],
            "packed": [{"id": accepted.id, "order_number": accepted.number,
                        "airwaybill_number": "JP1234567890", "updated_at": accepted.updated_at}],
            "completed": [{"id": packed.id, "order_number": packed.number,
                           "received_by": "Yosua", "updated_at": "2019-05-27 06:05:11.979185"}],
            "cancelled": [{"id": completed.id, "order_number": completed.number,
                           "cancel_reason": "", "updated_at": completed.updated_at},
                          {"id": 1, "order_number": "X", "cancel_reason": "", "updated_at": ""}],
        });
        let (status, answer) = acct.update(&body).await;
        assert_eq!(status, 200, "{answer}");
        let succeed = answer["data"]["succeed"].as_array().unwrap();
        let failed = answer["data"]["failed"].as_array().unwrap();
        assert_eq!(
            succeed
                .iter()
                .map(|s| s["id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [pending.id, accepted.id]
        );
        assert_eq!(
            failed
                .iter()
                .map(|s| s["id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [packed.id, completed.id, 1]
        );
        assert!(
            failed[0]["message"].as_str().unwrap().contains("berubah"),
            "stale updated_at"
        );
        assert_eq!(failed[0]["updated_at"], packed.updated_at.as_str());
        assert!(
            failed[1]["message"].as_str().unwrap().contains("completed"),
            "{}",
            failed[1]
        );

        let after = acct.sim.truth();
        let now = |id: u64| after.iter().find(|t| t.id == id).unwrap().clone();
        assert_eq!(now(pending.id).status, "accepted");
        assert_eq!(
            succeed[0]["updated_at"],
            now(pending.id).updated_at.as_str()
        );
        assert_ne!(now(pending.id).updated_at, pending.updated_at);
        assert_eq!(
            now(accepted.id).airwaybill_number.as_deref(),
            Some("JP1234567890")
        );
        assert_eq!(now(packed.id), packed, "a failed entry changes nothing");

        // The old updated_at no longer matches; the new one does, and cancelling reads back as
        // `canceled`.
        let fresh = now(pending.id);
        let cancel = |updated_at: &str| {
            json!({"cancelled": [{"id": fresh.id, "order_number": fresh.number,
                                  "cancel_reason": "Stok habis", "updated_at": updated_at}]})
        };
        let (_, answer) = acct.update(&cancel(&pending.updated_at)).await;
        assert_eq!(answer["data"]["failed"].as_array().unwrap().len(), 1);
        let (_, answer) = acct.update(&cancel(&fresh.updated_at)).await;
        assert_eq!(answer["data"]["succeed"][0]["order_status"], "canceled");
        assert_eq!(
            now(fresh.id).status,
            "accepted",
            "the earlier snapshot is unchanged"
        );
        let cancelled = acct
            .sim
            .truth()
            .into_iter()
            .find(|t| t.id == fresh.id)
            .unwrap();
        assert_eq!(cancelled.status, "canceled");
        assert_eq!(cancelled.cancel_reason.as_deref(), Some("Stok habis"));
    }

    #[tokio::test]
    async fn updates_take_api_key_headers_or_a_mac_over_the_body_and_validate_the_shape() {
        let acct = account(50).await;
        let t = acct
            .sim
            .truth()
            .into_iter()
            .find(|t| t.status == "pending")
            .unwrap();
        let body = json!({"accepted": [{"id": t.id, "order_number": t.number,
                                        "updated_at": t.updated_at}]})
        .to_string();
        let opts = SimOptions::default();
        let url = format!("{}{UPDATE_PATH}", acct.running.base_url());
        let by_key = acct
            .http
            .patch(&url)
            .header("api_key", &opts.api_key)
            .header("api_secret", &opts.api_secret)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(by_key.status(), 200);
        let bad_key = acct
            .http
            .patch(&url)
            .header("api_key", &opts.api_key)
            .header("api_secret", "wrong")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(bad_key.status(), 401);
        let mac_over_other_body = acct
            .signed(reqwest::Method::PATCH, UPDATE_PATH, UPDATE_PATH, "{}")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(mac_over_other_body.status(), 401);

        for bad in [
            json!([]),
            json!({"canceled": []}),
            json!({"accepted": {}}),
            json!({"accepted": [{"order_number": "x"}]}),
            json!({}),
        ] {
            let (status, answer) = acct.update(&bad).await;
            assert_eq!(status, 400, "{bad}: {answer}");
        }
    }

    #[tokio::test]
    async fn sim_side_changes_bump_updated_at_and_new_orders_are_pending_and_dated_now() {
        let acct = account(20).await;
        let before = acct.sim.truth();
        acct.sim.set_status(before[3].id, "packed");
        let after = acct.sim.truth();
        assert_eq!(after[3].status, "packed");
        assert!(after[3].updated_at > before[3].updated_at);
        assert_eq!(after[4], before[4]);
        let ids = acct.sim.add_orders(3);
        assert_eq!(ids, [FIRST_ID + 20, FIRST_ID + 21, FIRST_ID + 22]);
        let now = Utc::now();
        let (_, page) = acct
            .get(&format!(
                "/v1/partner/page/1?since={}&until={}&perpage=10",
                (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ"),
                (now + chrono::Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ"),
            ))
            .await;
        assert_eq!(ids_of(&page), ids);
        assert!(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["status"] == "pending")
        );
    }

    #[tokio::test]
    async fn faults_answer_instead_of_the_platform_or_break_its_answer() {
        let acct = account(10).await;
        let faults = acct.sim.faults();
        faults.push(Fault::Status(503));
        faults.push(Fault::TooManyRequests {
            retry_after_secs: 3,
        });
        faults.push(Fault::MalformedRecord);
        faults.push(Fault::MalformedJson);
        let (status, _) = acct.page(1, 5).await;
        assert_eq!(status, 503);
        let url = format!(
            "{}/v1/partner/page/1?since={SINCE}&until={UNTIL}&perpage=5",
            acct.running.base_url()
        );
        let path = url.trim_start_matches(&acct.running.base_url()).to_owned();
        let r = acct
            .signed(reqwest::Method::GET, &path, &path, "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
        let (_, page) = acct.page(1, 5).await;
        assert_eq!(page["data"][1]["id"], json!({"oops": true}));
        assert_eq!(page["data"][2]["id"], acct.sim.truth()[2].id);
        let r = acct
            .signed(reqwest::Method::GET, &path, &path, "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
        assert_eq!(faults.pending(), 0);
    }

    #[test]
    fn platform_times_drop_trailing_zeros_like_postgres() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            platform_time(t("2019-05-27T06:05:11.979185Z")),
            "2019-05-27 06:05:11.979185"
        );
        assert_eq!(
            platform_time(t("2019-05-27T06:05:11.9791Z")),
            "2019-05-27 06:05:11.9791"
        );
        assert_eq!(
            platform_time(t("2019-05-27T06:05:11Z")),
            "2019-05-27 06:05:11"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_orders() {
        let a = SircloSim::new(SimOptions {
            orders: 50,
            ..SimOptions::default()
        });
        let b = SircloSim::new(SimOptions {
            orders: 50,
            ..SimOptions::default()
        });
        assert_eq!(a.truth(), b.truth());
        let c = SircloSim::new(SimOptions {
            orders: 50,
            seed: 2,
            ..SimOptions::default()
        });
        assert_ne!(a.truth(), c.truth());
    }
}
