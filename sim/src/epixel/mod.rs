//! Simulated Epixel MLM commerce API (`platform-docs/epixel.md` and the Epixel section of
//! `NOTES.md`): deterministic order data, the list and order-details endpoints with the
//! platform's validation and response envelope, `apikey` + Bearer auth with a login endpoint
//! that issues access tokens (and a way to revoke them mid-sync), and the shared fault queue.
//! The platform has no update or processing endpoint (it is read-only), so none is served; the
//! document's create-order and package endpoints are not simulated either.
//!
//! Decisions where the document is silent: `limit` is 1..=100 (more is a 400) and defaults to
//! 20; `offset` (undocumented, common on this API) is a 0-based record offset; the list is
//! newest first; `order_number` filters exactly, `period` is `today`/`week`/`month`/`year`
//! (created within the last 1/7/30/365 days) and `category` is the order type
//! (`purchase`/`upgrade`/`renewal`); anything else in a query is a 400. Login takes JSON
//! `{username, password}` and answers `{"refresh","access"}`; a wrong apikey, token or password
//! is a 401 (there is no documented lockout).
//!
//! Built for volume like the MerchantPro simulator: each order's list record and details are
//! rendered once (again only when the order changes) and pages are concatenated from them;
//! orders live in a `Vec` in id order, so an id or an order number is its own index, and the
//! listing keeps the live ones in creation order.
//!
//! For the drift tests (`verify`), the back office can also do what a sync would not expect:
//! change a status without moving `modified`, place orders created in the past, and delete
//! orders.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    CorruptOneRecord, Faults, RecordedRequest, RequestLog, RunningSim, SimRng, apply_fault,
    json_response, record_requests,
};

/// Ids of generated orders start here; an order's id is `FIRST_ID + index`.
pub const FIRST_ID: u64 = 501;
/// Order numbers are `FIRST_NUMBER + 3 × index`: unlike the ids, so a client mixing them up is
/// caught, and still computable back to the order.
pub const FIRST_NUMBER: u64 = 240_001;
const NUMBER_STEP: u64 = 3;
pub const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 20;
/// Item ids are `FIRST_ITEM_ID + 10 × index + line`.
const FIRST_ITEM_ID: u64 = 90_001;
const LIST_PATH: &str = "/commerce/all-orders/";
const DETAILS_PATH: &str = "/commerce/order-details/";
const LOGIN_PATH: &str = "/user/login/";

/// The platform's zone: Epixel runs its stores on Indian time, and writes every time with it.
fn shop_tz() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 1800).expect("+05:30 is a valid offset")
}

/// Django REST's default: microseconds and the offset.
fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
}

fn shop_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&shop_tz()).trunc_subsecs(6)
}

/// How an [`EpixelSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub api_key: String,
    /// A long-lived access token the platform accepts as it is (`auth.token`).
    pub token: String,
    pub username: String,
    pub password: String,
    /// `/<api prefix>/<version>`, where every endpoint lives.
    pub api_prefix: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `created` of the first generated order.
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative.
    pub spacing: chrono::Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            api_key: "demo-apikey".to_owned(),
            token: "demo-access-token".to_owned(),
            username: "demo-admin".to_owned(),
            password: "demo-password".to_owned(),
            api_prefix: "/api/v1".to_owned(),
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
    pub order_number: String,
    /// The status text exactly as the platform writes it.
    pub status: String,
    pub total: Decimal,
    pub currency: Option<String>,
    /// From the order's address; `None` where its `data` carries none.
    pub customer_name: Option<String>,
    pub item_ids: Vec<u64>,
    /// Each line's own status text, in line order.
    pub item_statuses: Vec<String>,
    pub created: String,
    pub modified: String,
}

/// A simulated Epixel store. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct EpixelSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    api_key: String,
    username: String,
    password: String,
    prefix: String,
    faults: Faults,
    log: RequestLog,
    tokens: Mutex<Tokens>,
    login_attempts: AtomicUsize,
    shop: RwLock<Shop>,
}

struct Tokens {
    valid: HashSet<String>,
    issued: u64,
    /// Accepted requests left before every token is revoked.
    revoke_after: Option<usize>,
}

struct Shop {
    /// In id order (deleted ones stay, out of the listing); the order with id `FIRST_ID + i` is
    /// at index `i`.
    orders: Vec<StoredOrder>,
    /// Indexes of the live orders in creation order (ties in id order): the listing, read from
    /// its end. Id order too, unless orders were placed backdated.
    listing: Vec<usize>,
}

struct StoredOrder {
    created: DateTime<FixedOffset>,
    deleted: bool,
    state: OrderState,
    facts: Facts,
    /// The list record.
    json: String,
    /// The details' `data` list.
    details: String,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone)]
struct OrderState {
    status: String,
    modified: DateTime<FixedOffset>,
}

/// Generated values kept for filters and [`TruthOrder`], so neither has to parse JSON.
struct Facts {
    total: Decimal,
    currency: Option<&'static str>,
    customer_name: Option<String>,
    lines: usize,
    order_type: &'static str,
}

impl EpixelSim {
    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative.
    pub fn new(opts: SimOptions) -> Self {
        assert!(
            opts.spacing >= chrono::Duration::zero(),
            "SimOptions::spacing must not be negative"
        );
        let start = opts.start.with_timezone(&shop_tz());
        let n = opts.orders;
        // Generated orders were last touched no later than the newest one was placed, as if the
        // store had been snapshotted then.
        let snapshot = start + opts.spacing * (n.saturating_sub(1) as i32);
        let seed = opts.seed;
        let build = |index: usize| {
            let created = start + opts.spacing * (index as i32);
            let g = generate(seed, index as u64);
            let state = OrderState {
                status: g.status.to_owned(),
                modified: (created + g.modified_after).min(snapshot.max(created)),
            };
            StoredOrder::new(g, created, state)
        };
        let orders = super::generate_parallel(n, &build);
        let prefix = format!("/{}", opts.api_prefix.trim_matches('/'));
        EpixelSim {
            inner: Arc::new(Inner {
                seed,
                api_key: opts.api_key,
                username: opts.username,
                password: opts.password,
                prefix: if prefix == "/" { String::new() } else { prefix },
                faults: Faults::default(),
                log: RequestLog::default(),
                tokens: Mutex::new(Tokens {
                    valid: HashSet::from([opts.token]),
                    issued: 0,
                    revoke_after: None,
                }),
                login_attempts: AtomicUsize::new(0),
                shop: RwLock::new(Shop {
                    listing: (0..orders.len()).collect(),
                    orders,
                }),
            }),
        }
    }

    /// Binds 127.0.0.1:0 and serves the store until the returned handle is stopped or dropped.
    pub async fn serve(&self) -> std::io::Result<RunningSim> {
        super::serve(self.router()).await
    }

    /// The complete app (routes, auth, faults, request log), for callers that serve it
    /// themselves.
    pub fn router(&self) -> Router {
        let p = &self.inner.prefix;
        Router::new()
            .route(&format!("{p}{LIST_PATH}"), get(list_orders))
            .route(&format!("{p}{DETAILS_PATH}"), get(order_details))
            .route(&format!("{p}{LOGIN_PATH}"), post(login))
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

    /// Sets an order's status text as the back office would (any text, so tests can produce
    /// statuses the daemon does not know); its lines take the same status, and `modified`
    /// moves. Setting the status it already has changes nothing.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: u64, status: &str) {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the Epixel simulator has no order {id}"));
        shop.orders[index].change(seed, index as u64, status);
    }

    /// Places `n` new orders (`Pending`) after the newest one, each created at the sim's current
    /// time or one second after the previous order if that is later. Returns their ids.
    pub fn add_orders(&self, n: usize) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let index = shop.orders.len() as u64;
            let now = shop_now();
            let created = shop
                .newest()
                .map_or(now, |newest| now.max(newest + chrono::Duration::seconds(1)));
            let g = generate(seed, index);
            let state = OrderState {
                status: "Pending".to_owned(),
                modified: created,
            };
            shop.place(StoredOrder::new(g, created, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Sets an order's status text (its lines' too) without moving `modified`, as a back
    /// office writing the database directly would.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, status: &str) {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the Epixel simulator has no order {id}"));
        let order = &mut shop.orders[index];
        let state = OrderState {
            status: status.to_owned(),
            modified: order.state.modified,
        };
        order.restate(seed, index as u64, state);
    }

    /// Places `n` orders created at `created` (one second apart, not modified since), where
    /// the creation-ordered listing puts them: deep in the list, among the old orders. Returns
    /// their ids.
    pub fn add_backdated_orders(&self, n: usize, created: DateTime<Utc>) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let index = shop.orders.len() as u64;
            let created = created.with_timezone(&shop_tz()).trunc_subsecs(6)
                + chrono::Duration::seconds(k as i64);
            let g = generate(seed, index);
            let state = OrderState {
                status: g.status.to_owned(),
                modified: created,
            };
            shop.place(StoredOrder::new(g, created, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Deletes order `id`: it leaves the list, and its details are refused as for an unknown
    /// order number.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: u64) {
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the Epixel simulator has no order {id}"));
        shop.orders[index].deleted = true;
        shop.listing.retain(|&i| i != index);
    }

    /// Every live order id, ascending.
    pub fn order_ids(&self) -> Vec<u64> {
        let shop = self.read();
        (0..shop.orders.len())
            .filter(|&i| !shop.orders[i].deleted)
            .map(|i| FIRST_ID + i as u64)
            .collect()
    }

    /// Every live order, id ascending.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.read();
        shop.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.deleted)
            .map(|(i, o)| TruthOrder {
                id: FIRST_ID + i as u64,
                order_number: number_of(i as u64).to_string(),
                status: o.state.status.clone(),
                total: o.facts.total,
                currency: o.facts.currency.map(str::to_owned),
                customer_name: o.facts.customer_name.clone(),
                item_ids: (0..o.facts.lines as u64)
                    .map(|line| item_id(i as u64, line))
                    .collect(),
                item_statuses: vec![o.state.status.clone(); o.facts.lines],
                created: format_time(o.created),
                modified: format_time(o.state.modified),
            })
            .collect()
    }

    /// Makes every access token issued so far (the configured one included) invalid at once, as
    /// an expiry or a password change on the platform would.
    pub fn revoke_tokens(&self) {
        self.tokens().valid.clear();
    }

    /// Revokes every token once `n` more authenticated requests have been served: the
    /// `n + 1`-th is refused (a token expiring mid-sync).
    pub fn revoke_tokens_after(&self, n: usize) {
        self.tokens().revoke_after = Some(n);
    }

    /// Calls of the login endpoint, accepted or not.
    pub fn login_attempts(&self) -> usize {
        self.inner.login_attempts.load(Ordering::SeqCst)
    }

    /// The last [`RequestLog::CAPACITY`] requests received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.log.snapshot()
    }

    /// Every request ever received, including those no longer in [`Self::requests`].
    pub fn request_count(&self) -> usize {
        self.inner.log.total()
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Shop> {
        // Every write replaces whole values, so a poisoned lock still guards a consistent store.
        self.inner.shop.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Shop> {
        self.inner.shop.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn number_of(index: u64) -> u64 {
    FIRST_NUMBER + NUMBER_STEP * index
}

fn item_id(index: u64, line: u64) -> u64 {
    FIRST_ITEM_ID + 10 * index + line
}

impl Shop {
    /// The index of live order `id`.
    fn index_of(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(FIRST_ID)?).ok()?;
        self.live(index)
    }

    fn index_of_number(&self, number: u64) -> Option<usize> {
        let offset = number.checked_sub(FIRST_NUMBER)?;
        if !offset.is_multiple_of(NUMBER_STEP) {
            return None;
        }
        let index = usize::try_from(offset / NUMBER_STEP).ok()?;
        self.live(index)
    }

    fn live(&self, index: usize) -> Option<usize> {
        (index < self.orders.len() && !self.orders[index].deleted).then_some(index)
    }

    /// When the newest live order was created.
    fn newest(&self) -> Option<DateTime<FixedOffset>> {
        self.listing.last().map(|&i| self.orders[i].created)
    }

    /// Adds a new order (the next id) at its place in the listing.
    fn place(&mut self, order: StoredOrder) {
        let index = self.orders.len();
        let at = self
            .listing
            .partition_point(|&i| self.orders[i].created <= order.created);
        self.orders.push(order);
        self.listing.insert(at, index);
    }
}

impl StoredOrder {
    fn new(g: Generated, created: DateTime<FixedOffset>, state: OrderState) -> Self {
        let facts = Facts {
            total: g.total,
            currency: g.currency.map(|c| c.0),
            customer_name: g.customer_name.clone(),
            lines: g.lines.len(),
            order_type: g.order_type,
        };
        let (json, details) = render(&g, created, &state);
        StoredOrder {
            created,
            deleted: false,
            state,
            facts,
            json,
            details,
        }
    }

    fn change(&mut self, seed: u64, index: u64, status: &str) {
        if self.state.status == status {
            return;
        }
        // Strictly later than before, so a client comparing `modified` sees every change even
        // when two land within the same microsecond.
        let modified = shop_now().max(self.state.modified + chrono::Duration::microseconds(1));
        self.restate(
            seed,
            index,
            OrderState {
                status: status.to_owned(),
                modified,
            },
        );
    }

    /// Takes `state` as it is and re-renders.
    fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        self.state = state;
        let g = generate(seed, index);
        (self.json, self.details) = render(&g, self.created, &self.state);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Auth first (a refused request leaves the queued fault for the next one), then one fault. The
/// login endpoint needs the apikey only: it is where a bearer comes from.
async fn gate(State(sim): State<EpixelSim>, req: Request, next: Next) -> Response {
    let is_login = req.uri().path() == format!("{}{LOGIN_PATH}", sim.inner.prefix);
    if let Err(refusal) = sim.check_auth(req.headers(), !is_login) {
        return refusal.into_response();
    }
    apply_fault(sim.inner.faults.next(), req, next, error_response).await
}

impl EpixelSim {
    fn check_auth(&self, headers: &HeaderMap, bearer_needed: bool) -> Result<(), ApiError> {
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
        let mut tokens = self.tokens();
        if !tokens.valid.contains(token) {
            return Err(unauthorized("Given token not valid for any token type"));
        }
        match tokens.revoke_after {
            Some(0) => {
                tokens.valid.clear();
                tokens.revoke_after = None;
                return Err(unauthorized("Given token not valid for any token type"));
            }
            Some(n) => tokens.revoke_after = Some(n - 1),
            None => {}
        }
        Ok(())
    }
}

/// The platform's envelope, `{"status_code","errors","data"}`, with the errors by field.
fn error_response(status: StatusCode, message: &str) -> Response {
    envelope_error(status, "detail", message)
}

fn envelope_error(status: StatusCode, field: &str, message: &str) -> Response {
    let body = json!({
        "status_code": status.as_u16(),
        "errors": { field: [message] },
        "data": {},
    });
    json_response(status, body.to_string())
}

/// A refusal, rendered as the platform's error body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    field: String,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        envelope_error(self.status, &self.field, &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        field: field.to_owned(),
        message: message.into(),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        field: "detail".to_owned(),
        message: message.to_owned(),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found.")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// The query's pairs, decoded, in order; a parameter given twice is refused.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| bad_request("detail", "Malformed query string."))?;
    let mut seen = HashSet::new();
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(bad_request(key, "Given more than once."));
        }
    }
    Ok(pairs)
}

#[derive(Debug)]
struct ListQuery {
    limit: usize,
    offset: usize,
    order_number: Option<u64>,
    period: Option<(&'static str, chrono::Duration)>,
    category: Option<&'static str>,
}

const PERIODS: [(&str, i64); 4] = [("today", 1), ("week", 7), ("month", 30), ("year", 365)];
const CATEGORIES: [&str; 3] = ["purchase", "upgrade", "renewal"];

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
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

/// Appends one record, with the id of the first field broken when `corrupt`. Every record the
/// simulator renders starts with its id (`{"id":501,…`), so the digits are found without
/// parsing.
fn push_record(out: &mut String, record: &str, corrupt: bool) {
    if !corrupt {
        out.push_str(record);
        return;
    }
    let digits_start = r#"{"id":"#.len();
    let digits_end = record[digits_start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(record.len(), |n| digits_start + n);
    out.push_str(r#"{"id":{"oops":true}"#);
    out.push_str(&record[digits_end..]);
}

/// `GET …/commerce/all-orders/`: newest first.
async fn list_orders(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
    let q = ListQuery::parse(&query_pairs(req.uri())?)?;
    let now = shop_now();
    let shop = sim.read();
    let (orders, listing) = (&shop.orders, &shop.listing);
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
async fn order_details(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
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
    let shop = sim.read();
    let index = number
        .parse()
        .ok()
        .and_then(|n| shop.index_of_number(n))
        .ok_or_else(|| bad_request("order_number", "Invalid order number."))?;
    let details = &shop.orders[index].details;
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
async fn login(State(sim): State<EpixelSim>, req: Request) -> ApiResult {
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
    let mut tokens = sim.tokens();
    tokens.issued += 1;
    let mut rng = SimRng::for_record(sim.inner.seed ^ 0x5eed, tokens.issued);
    let access = format!("epx-access-{}-{}", tokens.issued, rng.hex(40));
    let refresh = format!("epx-refresh-{}-{}", tokens.issued, rng.hex(40));
    tokens.valid.insert(access.clone());
    drop(tokens);
    Ok(json_response(
        StatusCode::OK,
        json!({ "refresh": refresh, "access": access }).to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Data: generation and rendering

/// Money as a JSON number with its decimals as written (`149.5`, `80`), never through `f64`.
#[derive(Debug, Clone, Copy)]
struct Money(Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Money as the details write `price`: text with two decimals (`"49.90"`).
fn price_text(d: Decimal) -> String {
    format!("{:.2}", d)
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

/// The list record, fields in the document's order.
#[derive(Serialize)]
struct ListRecord<'a> {
    id: u64,
    uid: &'a str,
    order_number: u64,
    data: &'a Value,
    order_total: Money,
    currency_symbol: &'a str,
    currency_code: Option<&'a str>,
    order_type: &'a str,
    status: &'a str,
    created: String,
    modified: String,
    shipping_id: Option<u64>,
    billing_id: Option<u64>,
}

/// One details line, fields in the document's order.
#[derive(Serialize)]
struct DetailsLine<'a> {
    id: u64,
    product_id: u32,
    bundle_id: Option<u32>,
    line_item_label: &'a str,
    quantity: u32,
    price: String,
    data: Value,
    order_id: u64,
    currency_code: &'a str,
    order_id_id: u64,
    status: &'a str,
    image_path: String,
}

/// One order as generated from `(seed, index)`, before its [`OrderState`] is applied.
struct Generated {
    index: u64,
    uid: String,
    order_type: &'static str,
    /// (code, symbol).
    currency: Option<(&'static str, &'static str)>,
    total: Decimal,
    data: Value,
    customer_name: Option<String>,
    shipping_id: Option<u64>,
    billing_id: Option<u64>,
    lines: Vec<Line>,
    status: &'static str,
    modified_after: chrono::Duration,
}

struct Line {
    product: &'static Product,
    quantity: u32,
}

/// Renders the list record and the details lines with `state` applied.
fn render(g: &Generated, created: DateTime<FixedOffset>, state: &OrderState) -> (String, String) {
    let id = FIRST_ID + g.index;
    let (code, symbol) = g.currency.unwrap_or(("", ""));
    let record = ListRecord {
        id,
        uid: &g.uid,
        order_number: number_of(g.index),
        data: &g.data,
        order_total: Money(g.total),
        currency_symbol: symbol,
        currency_code: g.currency.map(|c| c.0),
        order_type: g.order_type,
        status: &state.status,
        created: format_time(created),
        modified: format_time(state.modified),
        shipping_id: g.shipping_id,
        billing_id: g.billing_id,
    };
    let lines: Vec<DetailsLine<'_>> = g
        .lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let p = line.product;
            let unit = cents(p.price_cents);
            let total = unit * Decimal::from(line.quantity);
            let price = json!({
                // The document's price block: PHP-style `[]` for empty data, one base_price
                // component holding the line's amount.
                "data": [],
                "items": {
                    "base_price": {
                        "data": [],
                        "title": "Base price",
                        "total": Money(total),
                        "included": true,
                        "quantity": line.quantity,
                        "description": "Base price",
                        "currency_code": code,
                    }
                },
                "title": "Subtotal",
                "total": Money(total),
                "quantity": line.quantity,
                "description": p.name,
                "currency_code": code,
                "revenue_total": Money(total),
            });
            let data = json!({
                "price": price,
                "modules": {},
                "product": {
                    "sku": p.sku,
                    "product_type": p.kind.0,
                    "product_type_code": p.kind.1,
                },
                "item_display": {
                    "items": {
                        "varient_attributes": {
                            "title": "Variant attributes",
                            "params": {
                                "price": { "value": price_text(unit) },
                                "images": { "value": format!("products/{}.png", p.id) },
                                "product-name": { "value": p.name },
                                "whole-sale-price": { "value": Money(cents(p.price_cents * 4 / 5)) },
                            },
                            "display": {},
                            "description": p.name,
                        }
                    }
                },
            });
            DetailsLine {
                id: item_id(g.index, n as u64),
                product_id: p.id,
                bundle_id: p.bundle,
                line_item_label: p.name,
                quantity: line.quantity,
                price: price_text(unit),
                data,
                order_id: id,
                currency_code: code,
                order_id_id: id,
                status: &state.status,
                image_path: format!("/media/products/{}.png", p.id),
            }
        })
        .collect();
    // These types serialize infallibly: string keys only, no failing Serialize impls.
    (
        serde_json::to_string(&record).expect("list record serializes"),
        serde_json::to_string(&lines).expect("details serialize"),
    )
}

struct Product {
    id: u32,
    name: &'static str,
    sku: &'static str,
    price_cents: i64,
    /// (product_type, product_type_code).
    kind: (&'static str, &'static str),
    bundle: Option<u32>,
}

const PACKAGE: (&str, &str) = ("Package", "package");
const GOODS: (&str, &str) = ("Product", "product");

const PRODUCTS: &[Product] = &[
    Product {
        id: 46363,
        name: "Starter Package",
        sku: "PKG-STARTER",
        price_cents: 9900,
        kind: PACKAGE,
        bundle: None,
    },
    Product {
        id: 46364,
        name: "Business Package",
        sku: "PKG-BUSINESS",
        price_cents: 29900,
        kind: PACKAGE,
        bundle: None,
    },
    Product {
        id: 46365,
        name: "Premium Package",
        sku: "PKG-PREMIUM",
        price_cents: 59900,
        kind: PACKAGE,
        bundle: Some(12),
    },
    Product {
        id: 51001,
        name: "Green Tea Detox 250g",
        sku: "WL-GTD-250",
        price_cents: 2450,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51002,
        name: "Protein Shake Vanilla 1kg",
        sku: "WL-PSV-1000",
        price_cents: 4990,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51003,
        name: "Omega-3 Capsules x90",
        sku: "WL-OM3-90",
        price_cents: 1875,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51004,
        name: "Aloe Vera Gel 500ml",
        sku: "BC-AVG-500",
        price_cents: 1599,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51005,
        name: "Herbal Toothpaste",
        sku: "BC-HTP-150",
        price_cents: 499,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51006,
        name: "Vitamin C Effervescent x20",
        sku: "WL-VCE-20",
        price_cents: 875,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51007,
        name: "Collagen Beauty Drink",
        sku: "BC-CBD-30",
        price_cents: 6500,
        kind: GOODS,
        bundle: Some(7),
    },
    Product {
        id: 51008,
        name: "Ayurvedic Hair Oil 200ml",
        sku: "BC-AHO-200",
        price_cents: 1225,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51009,
        name: "Coffee Ganoderma x30",
        sku: "WL-CGN-30",
        price_cents: 3300,
        kind: GOODS,
        bundle: None,
    },
];

/// What the back office writes, by weight; a few spelled in lower case, and one text no
/// built-in table knows (`Refund Requested`).
const STATUSES: &[(u64, &str)] = &[
    (40, "Completed"),
    (6, "completed"),
    (12, "Delivered"),
    (8, "Shipped"),
    (7, "Processing"),
    (5, "Confirmed"),
    (7, "Pending"),
    (2, "On Hold"),
    (8, "Cancelled"),
    (5, "Refund Requested"),
];

const CURRENCIES: &[(u64, Option<(&str, &str)>)] = &[
    (72, Some(("USD", "$"))),
    (22, Some(("INR", "₹"))),
    (3, Some(("AED", "AED"))),
    (3, None),
];

const FIRST_NAMES: &[&str] = &[
    "Asha", "Rahul", "Priya", "Vikram", "Meera", "Arjun", "Fatima", "John", "Grace", "Ahmed",
    "Lakshmi", "Joseph", "Anjali", "Suresh", "Maria", "Noor",
];
const LAST_NAMES: &[&str] = &[
    "Nair",
    "Menon",
    "Sharma",
    "Pillai",
    "Khan",
    "Thomas",
    "Iyer",
    "Das",
    "Varghese",
    "Reddy",
    "Mathew",
    "Al Mansoori",
    "Fernandes",
];
/// (locality, state code, country code, postal prefix).
const PLACES: &[(&str, &str, &str, &str)] = &[
    ("Kochi", "KL", "IN", "682"),
    ("Thiruvananthapuram", "KL", "IN", "695"),
    ("Bengaluru", "KA", "IN", "560"),
    ("Chennai", "TN", "IN", "600"),
    ("Mumbai", "MH", "IN", "400"),
    ("Dubai", "DU", "AE", "00"),
    ("Houston", "TX", "US", "770"),
];
const PAYMENT_METHODS: &[(u64, &str)] = &[
    (50, "E-Wallet"),
    (30, "Card"),
    (15, "Bank Transfer"),
    (5, "Cash"),
];

fn generate(seed: u64, index: u64) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let count = *rng.weighted(&[(60, 1usize), (28, 2), (12, 3)]);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count {
        let i = rng.below(PRODUCTS.len() as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let lines: Vec<Line> = chosen
        .into_iter()
        .map(|i| Line {
            product: &PRODUCTS[i],
            quantity: *rng.weighted(&[(70, 1u32), (20, 2), (8, 3), (2, 6)]),
        })
        .collect();
    // Create-order's own rule: the order total is the sum of the line totals.
    let total: Decimal = lines
        .iter()
        .map(|l| cents(l.product.price_cents) * Decimal::from(l.quantity))
        .sum();
    let order_type = if lines.iter().any(|l| l.product.kind == PACKAGE) {
        *rng.weighted(&[(70, "purchase"), (18, "upgrade"), (12, "renewal")])
    } else {
        "purchase"
    };
    let currency = *rng.weighted(CURRENCIES);
    let status = *rng.weighted(STATUSES);
    let minutes = |lo: u64, hi: u64, rng: &mut SimRng| {
        chrono::Duration::minutes(rng.between(lo, hi) as i64)
            + chrono::Duration::microseconds(rng.below(1_000_000) as i64)
    };
    let modified_after = match status {
        "Pending" => chrono::Duration::zero(),
        "On Hold" | "Confirmed" => minutes(5, 24 * 60, &mut rng),
        "Processing" => minutes(60, 2 * 24 * 60, &mut rng),
        "Shipped" => minutes(24 * 60, 3 * 24 * 60, &mut rng),
        "Cancelled" => minutes(10, 2 * 24 * 60, &mut rng),
        _ => minutes(2 * 24 * 60, 9 * 24 * 60, &mut rng),
    };
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let place = *rng.pick(PLACES);
    let email_user = format!(
        "{}.{}{}",
        first.to_lowercase(),
        last.to_lowercase().replace(' ', ""),
        rng.below(100)
    );
    // Some records carry no address at all: the PHP-style empty `[]` the document shows for
    // empty data elsewhere.
    let (data, customer_name) = if rng.percent(4) {
        (json!([]), None)
    } else {
        (
            json!({
                "address": {
                    "address_first_name": first,
                    "address_last_name": last,
                    "address_mail_id": format!("{email_user}@example.com"),
                    "address_phone_number": format!("+91{}", rng.digits(10)),
                    "address_name_line": format!("{}", rng.between(1, 400)),
                    "address_premise": format!("{} Road", rng.pick(&["MG", "Church", "Temple", "Beach", "Palace"])),
                    "address_locality": place.0,
                    "address_postal_code": format!("{}{}", place.3, rng.digits(6 - place.3.len())),
                    "address_country_code": place.2,
                    "address_state_code": place.1,
                },
                "payment_method": rng.weighted(PAYMENT_METHODS),
            }),
            Some(format!("{first} {last}")),
        )
    };
    let address_id = 7_000 + index * 2;
    Generated {
        index,
        uid: format!("EPX{:07}", rng.between(1, 9_999_999)),
        order_type,
        currency,
        total,
        data,
        customer_name,
        shipping_id: (!rng.percent(10)).then_some(address_id),
        billing_id: (!rng.percent(5)).then_some(address_id + 1),
        lines,
        status,
        modified_after,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use super::*;
    use crate::Fault;

    struct Served {
        sim: EpixelSim,
        running: RunningSim,
        http: reqwest::Client,
    }

    async fn store(orders: usize) -> Served {
        let sim = EpixelSim::new(SimOptions {
            orders,
            ..SimOptions::default()
        });
        let running = sim.serve().await.expect("sim starts");
        // reqwest is built with `rustls-no-provider`: building any Client panics until a
        // process-wide provider exists, even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().expect("client builds");
        Served { sim, running, http }
    }

    impl Served {
        fn url(&self, path_and_query: &str) -> String {
            format!("{}/api/v1{path_and_query}", self.running.base_url())
        }

        async fn get_with(&self, path_and_query: &str, bearer: &str) -> (u16, Value) {
            let response = self
                .http
                .get(self.url(path_and_query))
                .header("apikey", "demo-apikey")
                .header("Authorization", format!("Bearer {bearer}"))
                .send()
                .await
                .unwrap();
            read_json(response).await
        }

        async fn get(&self, path_and_query: &str) -> (u16, Value) {
            self.get_with(path_and_query, "demo-access-token").await
        }

        async fn login(&self, body: &str) -> (u16, Value) {
            let response = self
                .http
                .post(self.url("/user/login/"))
                .header("apikey", "demo-apikey")
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            read_json(response).await
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
        page["data"]["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn offset_paging_returns_every_order_once_newest_first() {
        let s = store(250).await;
        let mut seen: Vec<u64> = Vec::new();
        let mut offset = 0;
        loop {
            let (status, page) = s
                .get(&format!("/commerce/all-orders/?limit=100&offset={offset}"))
                .await;
            assert_eq!(status, 200);
            assert_eq!(
                (page["status_code"].as_u64(), &page["errors"]),
                (Some(200), &json!({}))
            );
            let ids = ids_of(&page);
            seen.extend(&ids);
            if ids.len() < 100 {
                break;
            }
            offset += 100;
        }
        let mut expected = s.sim.order_ids();
        expected.reverse();
        assert_eq!(seen, expected);
        let (_, page) = s.get("/commerce/all-orders/").await;
        assert_eq!(ids_of(&page).len(), DEFAULT_LIMIT);
        assert_eq!(page["data"]["filter_data"]["limit"], 20);
    }

    #[tokio::test]
    async fn generated_orders_match_the_document_and_the_truth() {
        let sim = EpixelSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        let again = EpixelSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        let truth = sim.truth();
        assert_eq!(truth, again.truth(), "same seed, same store");
        let shop = sim.read();
        for (o, t) in shop.orders.iter().zip(&truth) {
            let record: Value = serde_json::from_str(&o.json).unwrap();
            let keys: Vec<&str> = record
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys.len(), 13, "the document's 13 fields: {keys:?}");
            assert_eq!(record["id"], t.id);
            assert_eq!(record["order_number"].to_string(), t.order_number);
            assert_eq!(record["status"], t.status.as_str());
            assert_eq!(record["modified"], t.modified.as_str());
            let lines: Vec<Value> = serde_json::from_str(&o.details).unwrap();
            assert_eq!(lines.len(), t.item_ids.len());
            let mut sum = Decimal::ZERO;
            for (line, item) in lines.iter().zip(&t.item_ids) {
                assert_eq!(line["id"], *item);
                assert_eq!(line["order_id"], t.id);
                assert!(line["price"].is_string(), "price is text in the document");
                let price = Decimal::from_str(line["price"].as_str().unwrap()).unwrap();
                sum += price * Decimal::from(line["quantity"].as_u64().unwrap());
                assert!(line["data"]["item_display"]["items"]["varient_attributes"]["params"]["product-name"]["value"].is_string());
            }
            assert_eq!(sum, t.total, "order_total is the sum of its lines");
            assert_eq!(
                Decimal::from_str(&record["order_total"].to_string()).unwrap(),
                t.total
            );
        }
        let count = |s: &str| truth.iter().filter(|t| t.status == s).count();
        for s in [
            "Completed",
            "completed",
            "Pending",
            "Shipped",
            "Cancelled",
            "Refund Requested",
        ] {
            assert!(count(s) > 0, "no {s} order");
        }
        assert!(truth.iter().any(|t| t.currency.is_none()));
        assert!(truth.iter().any(|t| t.customer_name.is_none()));
        assert!(truth.iter().any(|t| t.item_ids.len() == 3));
        assert!(truth.iter().all(|t| t.modified >= t.created));
    }

    #[tokio::test]
    async fn invalid_parameters_are_refused_naming_the_parameter() {
        let s = store(3).await;
        for (query, named) in [
            ("limit=101", "limit"),
            ("limit=0", "limit"),
            ("limit=ten", "limit"),
            ("offset=-1", "offset"),
            ("order_number=abc", "order_number"),
            ("period=decade", "period"),
            ("category=gift", "category"),
            ("page=2", "page"),
            ("start=0", "start"),
            ("limit=10&limit=20", "limit"),
        ] {
            let (status, body) = s.get(&format!("/commerce/all-orders/?{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["status_code"], 400, "{query}");
            assert!(body["errors"][named].is_array(), "{query}: {body}");
        }
        let (status, page) = s.get("/commerce/all-orders/?limit=100&offset=0").await;
        assert_eq!((status, ids_of(&page).len()), (200, 3));
    }

    #[tokio::test]
    async fn filters_select_by_number_period_and_category() {
        let s = store(120).await;
        let truth = s.sim.truth();
        let (_, page) = s
            .get(&format!(
                "/commerce/all-orders/?order_number={}",
                truth[7].order_number
            ))
            .await;
        assert_eq!(ids_of(&page), [truth[7].id]);
        let (_, page) = s
            .get(&format!(
                "/commerce/all-orders/?order_number={}",
                truth[7].id
            ))
            .await;
        assert_eq!(
            ids_of(&page),
            Vec::<u64>::new(),
            "an id is not an order number"
        );
        // Generated orders are from 2025; only the new one is from this week.
        let new = s.sim.add_orders(1);
        let (_, page) = s.get("/commerce/all-orders/?period=week&limit=100").await;
        assert_eq!(ids_of(&page), new);
        let (_, page) = s
            .get("/commerce/all-orders/?category=upgrade&limit=100")
            .await;
        let ids = ids_of(&page);
        assert!(!ids.is_empty());
        let shop = s.sim.read();
        assert!(
            ids.iter()
                .all(|&id| shop.orders[(id - FIRST_ID) as usize].facts.order_type == "upgrade")
        );
    }

    #[tokio::test]
    async fn details_follow_the_document_and_its_three_refusals() {
        let s = store(5).await;
        let t = &s.sim.truth()[2];
        let (status, body) = s
            .get(&format!(
                "/commerce/order-details/?order_number={}",
                t.order_number
            ))
            .await;
        assert_eq!(status, 200);
        let lines = body["data"].as_array().unwrap();
        assert_eq!(
            lines
                .iter()
                .map(|l| l["id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            t.item_ids
        );
        for (query, message) in [
            ("", "Order Number is required."),
            ("?order_number=", "Order Number maynot be blank."),
            ("?order_number=999", "Invalid order number."),
            ("?order_number=x", "Invalid order number."),
        ] {
            let (status, body) = s.get(&format!("/commerce/order-details/{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["errors"]["order_number"][0], message, "{query}");
        }
        let (status, _) = s
            .get(&format!(
                "/commerce/order-details/?order_number={}&x=1",
                t.order_number
            ))
            .await;
        assert_eq!(status, 400);
        let response = s
            .http
            .post(s.url("/commerce/order-details/"))
            .header("apikey", "demo-apikey")
            .header("Authorization", "Bearer demo-access-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "details are read with GET");
        assert_eq!(
            s.get("/commerce/all-orders").await.0,
            404,
            "paths end with a slash"
        );
        assert_eq!(
            s.get("/commerce/update-order/").await.0,
            404,
            "no update endpoint"
        );
    }

    #[tokio::test]
    async fn auth_needs_the_apikey_and_a_valid_bearer() {
        let s = store(2).await;
        let list = s.url("/commerce/all-orders/");
        let no_key = s
            .http
            .get(&list)
            .header("Authorization", "Bearer demo-access-token");
        assert_eq!(read_json(no_key.send().await.unwrap()).await.0, 401);
        let wrong_key = s
            .http
            .get(&list)
            .header("apikey", "nope")
            .header("Authorization", "Bearer demo-access-token");
        assert_eq!(read_json(wrong_key.send().await.unwrap()).await.0, 401);
        assert_eq!(s.get_with("/commerce/all-orders/", "forged").await.0, 401);
        let basic = s
            .http
            .get(&list)
            .header("apikey", "demo-apikey")
            .header("Authorization", "Basic demo-access-token");
        assert_eq!(read_json(basic.send().await.unwrap()).await.0, 401);
        assert_eq!(s.get("/commerce/all-orders/").await.0, 200);

        let (status, body) = s
            .login(r#"{"username":"demo-admin","password":"wrong"}"#)
            .await;
        assert_eq!((status, body["status_code"].as_u64()), (401, Some(401)));
        assert_eq!(s.login(r#"{"username":"demo-admin"}"#).await.0, 400);
        let (status, tokens) = s
            .login(r#"{"username":"demo-admin","password":"demo-password"}"#)
            .await;
        assert_eq!(status, 200);
        let access = tokens["access"].as_str().unwrap().to_owned();
        assert!(tokens["refresh"].is_string());
        assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 200);
        assert_eq!(s.sim.login_attempts(), 3);

        s.sim.revoke_tokens_after(1);
        assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 200);
        assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 401);
        assert_eq!(
            s.get("/commerce/all-orders/").await.0,
            401,
            "the configured token too"
        );
        let (_, tokens) = s
            .login(r#"{"username":"demo-admin","password":"demo-password"}"#)
            .await;
        assert_eq!(
            s.get_with("/commerce/all-orders/", tokens["access"].as_str().unwrap())
                .await
                .0,
            200
        );
        let log = s.sim.requests();
        assert_eq!(log[0].status, 401);
        assert!(
            log.iter()
                .any(|r| r.method == "POST" && r.path_and_query == "/api/v1/user/login/")
        );
    }

    #[tokio::test]
    async fn status_changes_move_modified_and_the_lines() {
        let s = store(3).await;
        let before = s.sim.truth()[1].clone();
        s.sim.set_status(before.id, "SHIPPED");
        let after = s.sim.truth()[1].clone();
        assert!(after.modified > before.modified);
        assert_eq!(
            after.item_statuses,
            vec!["SHIPPED".to_owned(); after.item_ids.len()]
        );
        let (_, page) = s
            .get(&format!(
                "/commerce/all-orders/?order_number={}",
                after.order_number
            ))
            .await;
        assert_eq!(page["data"]["orders"][0]["status"], "SHIPPED");
        assert_eq!(
            page["data"]["orders"][0]["modified"],
            after.modified.as_str()
        );
        s.sim.set_status(before.id, "SHIPPED");
        assert_eq!(s.sim.truth()[1], after, "the same status changes nothing");
        let new = s.sim.add_orders(2);
        let truth = s.sim.truth();
        assert_eq!(new, [truth[3].id, truth[4].id]);
        assert_eq!(truth[4].status, "Pending");
        assert!(truth[4].created > truth[3].created);
    }

    #[tokio::test]
    async fn faults_answer_break_or_delay_one_request_each() {
        let s = store(3).await;
        s.sim.faults().push(Fault::Status(503));
        s.sim.faults().push(Fault::TooManyRequests {
            retry_after_secs: 7,
        });
        s.sim.faults().push(Fault::MalformedRecord);
        s.sim.faults().push(Fault::MalformedRecord);
        let (status, body) = s.get("/commerce/all-orders/").await;
        assert_eq!((status, body["status_code"].as_u64()), (503, Some(503)));
        let response = s
            .http
            .get(s.url("/commerce/all-orders/"))
            .header("apikey", "demo-apikey")
            .header("Authorization", "Bearer demo-access-token")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                response.status().as_u16(),
                response.headers()["retry-after"].to_str().unwrap()
            ),
            (429, "7")
        );
        let (_, page) = s.get("/commerce/all-orders/").await;
        assert_eq!(page["data"]["orders"][1]["id"], json!({"oops": true}));
        assert_eq!(page["data"]["orders"][0]["id"], 503);
        let number = &s.sim.truth()[0].order_number;
        let (_, details) = s
            .get(&format!("/commerce/order-details/?order_number={number}"))
            .await;
        let lines = details["data"].as_array().unwrap();
        let broken = if lines.len() == 1 { 0 } else { 1 };
        assert_eq!(lines[broken]["id"], json!({"oops": true}));

        // Auth comes first: a refused request leaves the fault for the next.
        s.sim.faults().push(Fault::Status(500));
        assert_eq!(s.get_with("/commerce/all-orders/", "forged").await.0, 401);
        assert_eq!(s.sim.faults().pending(), 1);
        assert_eq!(s.get("/commerce/all-orders/").await.0, 500);

        s.sim.faults().push(Fault::MalformedJson);
        let response = s
            .http
            .get(s.url("/commerce/all-orders/"))
            .header("apikey", "demo-apikey")
            .header("Authorization", "Bearer demo-access-token")
            .send()
            .await
            .unwrap();
        assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());
        s.sim.faults().push(Fault::DropConnection);
        let response = s
            .http
            .get(s.url("/commerce/all-orders/"))
            .header("apikey", "demo-apikey")
            .header("Authorization", "Bearer demo-access-token")
            .send()
            .await
            .unwrap();
        assert!(response.bytes().await.is_err(), "the body is cut off");
        s.sim.faults().push(Fault::Slow(Duration::from_millis(100)));
        let began = std::time::Instant::now();
        assert_eq!(s.get("/commerce/all-orders/").await.0, 200);
        assert!(began.elapsed() >= Duration::from_millis(100));
        s.running.stop().await;
    }
}
