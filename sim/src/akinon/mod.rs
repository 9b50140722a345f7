//! Simulated Akinon seller API (`platform-docs/akinon.md` and the Akinon section of NOTES.md):
//! deterministic orders and order items, the two Django-REST lists with every documented filter,
//! `POST /api/i1/order-items/{id}/reject/`, `POST /api/i1/token/obtain/`, Bearer auth with
//! tokens that can be revoked mid-run, and the shared fault queue.
//!
//! Strict where the document is, and where Django REST framework is: `Content-Type:
//! application/json` on every request (415), Bearer auth (401; the document's `Authentication:`
//! header is a typo and is refused), filter values validated (400 naming the filter), pages
//! out of range 404 (`Invalid page.`), `next`/`previous` absolute links with the query re-sorted
//! and re-encoded as DRF builds them, `limit` silently capped at the page-size maximum. Stricter
//! than DRF in one way, on purpose: a query parameter the document does not list is refused
//! (400) instead of ignored, so a client's misspelt filter cannot pass unnoticed. Like the
//! document's example, order and item records carry no created/updated times, although the
//! `created_at`/`updated_at` filters work.
//!
//! Built for volume: each record's JSON is rendered once (again only when it changes) and pages
//! are concatenated; the listing keeps the live orders in placement order, so placed-time
//! filters are binary searches, and an order's items are one contiguous range.
//!
//! For the drift tests (`verify`), the back office can also do what a sync cannot see: change a
//! status without moving `updated_at`, place orders last touched in the past, and delete
//! orders.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    CorruptOneRecord, Faults, RecordedRequest, RequestLog, RunningSim, SimRng, apply_fault,
    json_response, record_requests,
};

const ORDERS_PATH: &str = "/api/i1/orders/";
const ITEMS_PATH: &str = "/api/i1/order-items/";
const REJECT_PATH: &str = "/api/i1/order-items/{id}/reject/";
const TOKEN_PATH: &str = "/api/i1/token/obtain/";
/// Documented, but nothing the daemon reads: answered 501 so a caller learns why.
const UNSIMULATED_PATHS: [&str; 2] = ["/api/i1/cancellation-plans/", "/api/i1/customer-addresses/"];

/// DRF's `PAGE_SIZE`, used when a request has no `limit`.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// The document's status enum.
pub const STATUSES: [u16; 9] = [100, 200, 300, 400, 500, 600, 700, 800, 900];
/// The document's currency enum; records write it in lower case, as its example does.
const CURRENCIES: [&str; 21] = [
    "try", "usd", "eur", "egp", "gbp", "mad", "pln", "sar", "ron", "uah", "czk", "huf", "rub",
    "bgn", "iqd", "kwd", "bhd", "omr", "qar", "aed", "ngn",
];
const DATASOURCE: &str = "7371e321-9ae4-418d-8472-f4d13ce3da8d";
const FIRST_NUMBER: u64 = 45_000_000;

/// The shop's Django `TIME_ZONE` (Europe/Istanbul, +03:00 all year): how naive datetimes in
/// filters are read. A client sending times without a zone gets them shifted three hours.
fn shop_tz() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).expect("+03:00 is a valid offset")
}

/// How an [`AkinonSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// A token accepted as `Authorization: Bearer <token>` (an API token issued to the seller).
    /// Empty: only tokens obtained by logging in are accepted.
    pub token: String,
    pub email: String,
    pub password: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `date_placed` of the first generated order.
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative.
    pub spacing: chrono::Duration,
    /// The most records one page holds, whatever `limit` asks (DRF's `max_page_size`; the
    /// document states none).
    pub max_page_size: usize,
    /// What a rejected item reads back as: 800 (cancelled, the document's "will cancel the
    /// order item") or 900 (rejected).
    pub rejected_status: u16,
    /// `scheme://host[:port]` of the `next`/`previous` links, as a proxy in front of Django makes
    /// them; `None` builds them from the request's `Host`, as Django does.
    pub link_base: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            token: "demo-akinon-api-token".to_owned(),
            email: "seller@demo.akinon.test".to_owned(),
            password: "demo-akinon-password".to_owned(),
            orders: 0,
            seed: 1,
            start: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
            spacing: chrono::Duration::seconds(90),
            max_page_size: 100,
            rejected_status: 800,
            link_base: None,
        }
    }
}

/// What a test compares the store against.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthOrder {
    pub id: String,
    pub number: String,
    pub status: u16,
    pub amount: Decimal,
    /// As the platform writes it (lower case).
    pub currency: String,
    pub tracking_number: Option<String>,
    pub date_placed: String,
    /// By item id.
    pub items: Vec<TruthItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TruthItem {
    pub id: String,
    pub sku: String,
    pub status: u16,
    pub price: Decimal,
    pub tracking_number: Option<String>,
}

/// A simulated Akinon seller account. Cheap to clone; clones share the shop.
#[derive(Clone)]
pub struct AkinonSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    token: String,
    email: String,
    password: String,
    max_page_size: usize,
    rejected_status: u16,
    link_base: Option<String>,
    faults: Faults,
    log: RequestLog,
    auth: Mutex<AuthState>,
    shop: RwLock<Shop>,
}

#[derive(Default)]
struct AuthState {
    /// Access tokens handed out by `token/obtain` and still valid.
    issued: HashSet<String>,
    logins: u64,
    /// Authorized requests with an obtained token still allowed before every obtained token is
    /// revoked (once).
    revoke_after: Option<usize>,
}

#[derive(Default)]
struct Shop {
    /// In the order they were added (deleted ones stay, out of the listing).
    orders: Vec<SimOrder>,
    /// Indexes of the live orders in placement order (ties in the order they were added): the
    /// listing, which also orders the item list. `orders`' own order too, unless orders were
    /// placed backdated.
    listing: Vec<usize>,
    /// In the order of their orders' addition; each order's items are contiguous.
    items: Vec<SimItem>,
    by_id: HashMap<String, usize>,
    by_number: HashMap<String, usize>,
    item_by_id: HashMap<String, usize>,
}

struct SimOrder {
    rec: OrderRecord,
    deleted: bool,
    /// Microseconds since the epoch.
    placed: i64,
    created: i64,
    updated: i64,
    items: Range<usize>,
    json: String,
}

struct SimItem {
    rec: ItemRecord,
    order: usize,
    created: i64,
    updated: i64,
    json: String,
}

impl AkinonSim {
    /// Generates `opts.orders` orders with their items, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative or `opts.max_page_size` is 0.
    pub fn new(opts: SimOptions) -> Self {
        assert!(
            opts.spacing >= chrono::Duration::zero(),
            "SimOptions::spacing must not be negative"
        );
        assert!(
            opts.max_page_size > 0,
            "SimOptions::max_page_size must be positive"
        );
        let spacing = opts.spacing.num_microseconds().unwrap_or(i64::MAX);
        let start = opts.start.timestamp_micros();
        // Generated orders were last touched no later than the newest one was placed, as if the
        // shop had been snapshotted at that moment.
        let snapshot =
            start.saturating_add(spacing.saturating_mul(opts.orders.saturating_sub(1) as i64));
        let mut shop = Shop::default();
        for index in 0..opts.orders {
            let base = start.saturating_add(spacing.saturating_mul(index as i64));
            let mut rng = SimRng::for_record(opts.seed, index as u64);
            let jitter = rng.below(spacing.clamp(1, 1_000_000) as u64) as i64;
            let placed = base + if spacing > 0 { jitter } else { 0 };
            let generated = generate(&mut rng, index as u64, placed, snapshot.max(placed));
            shop.push(generated);
        }
        AkinonSim {
            inner: Arc::new(Inner {
                seed: opts.seed,
                token: opts.token,
                email: opts.email,
                password: opts.password,
                max_page_size: opts.max_page_size,
                rejected_status: opts.rejected_status,
                link_base: opts.link_base.map(|b| b.trim_end_matches('/').to_owned()),
                faults: Faults::default(),
                log: RequestLog::default(),
                auth: Mutex::new(AuthState::default()),
                shop: RwLock::new(shop),
            }),
        }
    }

    /// Binds 127.0.0.1:0 and serves the shop until the returned handle is stopped or dropped.
    pub async fn serve(&self) -> std::io::Result<RunningSim> {
        super::serve(self.router()).await
    }

    /// The complete app (routes, auth, faults, request log).
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route(ORDERS_PATH, get(list_orders))
            .route(ITEMS_PATH, get(list_items))
            .route(REJECT_PATH, post(reject_item))
            .route(TOKEN_PATH, post(obtain_token));
        for path in UNSIMULATED_PATHS {
            router = router.route(path, get(not_simulated));
        }
        router
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

    /// Moves order `id` and every one of its items to `status`, as the seller's back office
    /// does, bumping their update times. Any integer is accepted, so tests can produce statuses
    /// the document does not list.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: &str, status: u16) {
        let mut shop = self.write();
        let index = *shop
            .by_id
            .get(id)
            .unwrap_or_else(|| panic!("the Akinon simulator has no order {id}"));
        let now = now_micros();
        for item in shop.orders[index].items.clone() {
            shop.items[item].set_status(status, now);
        }
        shop.orders[index].set_status(status, now);
    }

    /// Moves one item to `status`, leaving its order untouched (its own status, its update
    /// time): a line-only change.
    ///
    /// # Panics
    /// If there is no item `item_id`.
    pub fn set_item_status(&self, item_id: &str, status: u16) {
        let mut shop = self.write();
        let index = *shop
            .item_by_id
            .get(item_id)
            .unwrap_or_else(|| panic!("the Akinon simulator has no order item {item_id}"));
        shop.items[index].set_status(status, now_micros());
    }

    /// Places `n` new orders (status 100, items 100) after the newest one, each at the current
    /// time or one second after the previous order if that is later. Returns their ids.
    pub fn add_orders(&self, n: usize) -> Vec<String> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let index = shop.orders.len() as u64;
            let now = now_micros();
            let placed = shop
                .newest()
                .map_or(now, |newest| now.max(newest + 1_000_000));
            let mut rng = SimRng::for_record(seed, index);
            let mut generated = generate(&mut rng, index, placed, placed);
            generated.make_new();
            ids.push(generated.order.id.clone());
            shop.push(generated);
        }
        ids
    }

    /// Moves order `id` and every one of its items to `status` without moving their update
    /// times: a change no `updated_at` filter shows.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: &str, status: u16) {
        let mut shop = self.write();
        let index = *shop
            .by_id
            .get(id)
            .unwrap_or_else(|| panic!("the Akinon simulator has no order {id}"));
        for item in shop.orders[index].items.clone() {
            let it = &mut shop.items[item];
            let updated = it.updated;
            it.set_status(status, updated);
            it.updated = updated;
        }
        let o = &mut shop.orders[index];
        let updated = o.updated;
        o.set_status(status, updated);
        o.updated = updated;
    }

    /// Places `n` orders at `placed` (one second apart), last touched then, where the
    /// placement-ordered listing puts them: among the old orders, and older than any
    /// `updated_at__gte` a sync has moved past. Returns their ids.
    pub fn add_backdated_orders(&self, n: usize, placed: DateTime<Utc>) -> Vec<String> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let index = shop.orders.len() as u64;
            let at = placed.timestamp() * 1_000_000 + k as i64 * 1_000_000;
            let mut rng = SimRng::for_record(seed, index);
            let generated = generate(&mut rng, index, at, at);
            ids.push(generated.order.id.clone());
            shop.push(generated);
        }
        ids
    }

    /// Deletes order `id` with its items: they leave both lists, and its items can no longer be
    /// rejected.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: &str) {
        let mut shop = self.write();
        let index = *shop
            .by_id
            .get(id)
            .unwrap_or_else(|| panic!("the Akinon simulator has no order {id}"));
        shop.orders[index].deleted = true;
        shop.listing.retain(|&i| i != index);
    }

    /// Live order ids, in placement order.
    pub fn order_ids(&self) -> Vec<String> {
        let shop = self.read();
        shop.listing
            .iter()
            .map(|&i| shop.orders[i].rec.id.clone())
            .collect()
    }

    /// Every live order with its items, in placement order.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.read();
        shop.listing
            .iter()
            .map(|&i| &shop.orders[i])
            .map(|o| {
                let mut items: Vec<TruthItem> = shop.items[o.items.clone()]
                    .iter()
                    .map(|i| TruthItem {
                        id: i.rec.id.clone(),
                        sku: i.rec.sku.to_owned(),
                        status: i.rec.status,
                        price: i.rec.price,
                        tracking_number: i.rec.tracking_number.clone(),
                    })
                    .collect();
                items.sort_by(|a, b| a.id.cmp(&b.id));
                TruthOrder {
                    id: o.rec.id.clone(),
                    number: o.rec.number.clone(),
                    status: o.rec.status,
                    amount: o.rec.amount,
                    currency: o.rec.currency.to_owned(),
                    tracking_number: o.rec.tracking_number.clone(),
                    date_placed: o.rec.date_placed.clone(),
                    items,
                }
            })
            .collect()
    }

    /// Every obtained token stops working now.
    pub fn revoke_tokens(&self) {
        self.auth().issued.clear();
    }

    /// After `requests` more requests authorized by an obtained token, every obtained token is
    /// revoked (once): the next such request gets 401, as when a token expires mid-run.
    pub fn revoke_tokens_after(&self, requests: usize) {
        self.auth().revoke_after = Some(requests);
    }

    /// Successful logins (`token/obtain` answers with a token) so far.
    pub fn logins(&self) -> u64 {
        self.auth().logins
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

    fn auth(&self) -> MutexGuard<'_, AuthState> {
        self.inner.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// simplejwt's `JWTAuthentication`: `Authorization: Bearer <token>`, nothing else. `None`
    /// when the request may proceed, else the 401.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = presented else {
            return Some(unauthorized(
                "Authentication credentials were not provided.",
                None,
            ));
        };
        if !self.inner.token.is_empty() && token == self.inner.token {
            return None;
        }
        let mut auth = self.auth();
        if auth.issued.contains(token) {
            match auth.revoke_after {
                Some(0) => {
                    auth.issued.clear();
                    auth.revoke_after = None;
                }
                Some(n) => {
                    auth.revoke_after = Some(n - 1);
                    return None;
                }
                None => return None,
            }
        }
        Some(unauthorized(
            "Given token not valid for any token type",
            Some("token_not_valid"),
        ))
    }

    fn issue_token(&self) -> (String, String) {
        let mut auth = self.auth();
        auth.logins += 1;
        let n = auth.logins;
        let mut rng = SimRng::for_record(self.inner.seed ^ 0x706b_656e, n);
        let jwt = |kind: &str, rng: &mut SimRng| {
            let payload = json!({"token_type": kind, "jti": rng.hex(32), "user_id": 1});
            format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
                URL_SAFE_NO_PAD.encode(payload.to_string()),
                URL_SAFE_NO_PAD.encode(rng.hex(32))
            )
        };
        let access = jwt("access", &mut rng);
        let refresh = jwt("refresh", &mut rng);
        auth.issued.insert(access.clone());
        (access, refresh)
    }
}

impl Shop {
    fn push(&mut self, g: Generated) {
        let index = self.orders.len();
        let first_item = self.items.len();
        for (rec, item_updated) in g.items {
            self.item_by_id.insert(rec.id.clone(), self.items.len());
            let json = render(&rec);
            self.items.push(SimItem {
                rec,
                order: index,
                created: g.placed,
                updated: item_updated,
                json,
            });
        }
        self.by_id.insert(g.order.id.clone(), index);
        self.by_number.insert(g.order.number.clone(), index);
        let json = render(&g.order);
        let at = self
            .listing
            .partition_point(|&i| self.orders[i].placed <= g.placed);
        self.listing.insert(at, index);
        self.orders.push(SimOrder {
            rec: g.order,
            deleted: false,
            placed: g.placed,
            created: g.placed,
            updated: g.updated,
            items: first_item..self.items.len(),
            json,
        });
    }

    /// Where live order `index` is in the listing.
    fn position_of(&self, index: usize) -> Option<usize> {
        let key = (self.orders[index].placed, index);
        self.listing
            .binary_search_by(|&i| (self.orders[i].placed, i).cmp(&key))
            .ok()
    }

    /// When the newest live order was placed.
    fn newest(&self) -> Option<i64> {
        self.listing.last().map(|&i| self.orders[i].placed)
    }
}

impl SimOrder {
    fn set_status(&mut self, status: u16, now: i64) {
        if self.rec.status == status {
            return;
        }
        self.rec.status = status;
        self.rec.cancel_status = cancel_status(status);
        // Strictly later than before, so an `updated_at__gte` bound at the old time still
        // sees the change.
        self.updated = now.max(self.updated + 1);
        self.json = render(&self.rec);
    }
}

impl SimItem {
    fn set_status(&mut self, status: u16, now: i64) {
        if self.rec.status == status {
            return;
        }
        self.rec.status = status;
        self.rec.cancel_status = cancel_status(status);
        self.updated = now.max(self.updated + 1);
        self.json = render(&self.rec);
    }
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn render<T: Serialize>(rec: &T) -> String {
    // Plain structs of strings, numbers and options: serialization cannot fail.
    serde_json::to_string(rec).expect("record serializes")
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Content type first (the document: 415 for a missing or invalid one), then `Accept` (406),
/// then auth (401; the login endpoint excepted), then one queued fault.
async fn gate(State(sim): State<AkinonSim>, req: Request, next: Next) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Unsupported media type \"{}\" in request.",
                content_type.unwrap_or_default()
            ),
        );
    }
    if !accepts_json(req.headers()) {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            "Could not satisfy the request Accept header.",
        );
    }
    if req.uri().path() != TOKEN_PATH
        && let Some(refused) = sim.refusal(req.headers())
    {
        return refused;
    }
    apply_fault(sim.inner.faults.next(), req, next, error_response).await
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        matches!(
            media.to_ascii_lowercase().as_str(),
            "application/json" | "application/*" | "*/*"
        )
    })
}

/// DRF's error body: `{"detail": "…"}`.
fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "detail": message }).to_string())
}

fn unauthorized(message: &str, code: Option<&str>) -> Response {
    let body = match code {
        Some(code) => json!({ "detail": message, "code": code }),
        None => json!({ "detail": message }),
    };
    let mut response = json_response(StatusCode::UNAUTHORIZED, body.to_string());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

/// A refusal, rendered as DRF renders it; small, so validation code can return it in a
/// `Result`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, self.body.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn detail(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        body: json!({ "detail": message.into() }),
    }
}

/// django-filter's answer to a bad value: the field, with its form error.
fn field_error(field: &str, message: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({ field: [message] }),
    }
}

fn invalid_page() -> ApiError {
    detail(StatusCode::NOT_FOUND, "Invalid page.")
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found.")
}

async fn not_simulated() -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "This documented endpoint is not simulated.",
    )
}

async fn method_not_allowed(method: Method) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{method}\" not allowed."),
    )
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    fn from_lookup(lookup: &str) -> Option<Cmp> {
        Some(match lookup {
            "lt" => Cmp::Lt,
            "lte" => Cmp::Lte,
            "gt" => Cmp::Gt,
            "gte" => Cmp::Gte,
            _ => return None,
        })
    }

    /// `value <op> bound`.
    fn holds<T: PartialOrd>(self, value: &T, bound: &T) -> bool {
        match self {
            Cmp::Lt => value < bound,
            Cmp::Lte => value <= bound,
            Cmp::Gt => value > bound,
            Cmp::Gte => value >= bound,
        }
    }

    /// Narrows `range` (positions in a list sorted by `key`) to those where `key <op> bound`.
    fn narrow(self, range: &mut Range<usize>, keys: impl Fn(usize) -> i64, bound: i64) {
        let (start, end) = (range.start, range.end);
        // The first position in `range` where `pred` holds (`pred` is monotonic over it).
        let first = |pred: &dyn Fn(i64) -> bool| {
            let (mut lo, mut hi) = (start, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if pred(keys(mid)) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        match self {
            Cmp::Gte => range.start = first(&|k| k >= bound),
            Cmp::Gt => range.start = first(&|k| k > bound),
            Cmp::Lt => range.end = first(&|k| k >= bound),
            Cmp::Lte => range.end = first(&|k| k > bound),
        }
        range.end = range.end.max(range.start);
    }
}

/// The filters of `GET /api/i1/orders/` (the document's table).
#[derive(Debug)]
enum OrderFilter {
    Number(String),
    NumberContains(String),
    NumberIContains(String),
    Status(i64),
    DatePlaced(Cmp, i64),
    Amount(Cmp, Decimal),
    DiscountAmount(Cmp, Decimal),
    Currency(String),
    HasGiftBox(bool),
    CreatedAt(Cmp, i64),
    UpdatedAt(Cmp, i64),
}

impl OrderFilter {
    fn parse(key: &str, value: &str) -> Result<Option<OrderFilter>, ApiError> {
        let (field, lookup) = split_lookup(key);
        Ok(Some(match (field, lookup) {
            ("number", None) => OrderFilter::Number(value.to_owned()),
            ("number", Some("contains")) => OrderFilter::NumberContains(value.to_owned()),
            ("number", Some("icontains")) => OrderFilter::NumberIContains(value.to_lowercase()),
            ("status", None) => OrderFilter::Status(parse_int(key, value)?),
            ("date_placed", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::DatePlaced(cmp(l), parse_datetime(key, value)?)
            }
            ("amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::Amount(cmp(l), parse_decimal(key, value)?)
            }
            ("discount_amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::DiscountAmount(cmp(l), parse_decimal(key, value)?)
            }
            ("currency", None) => OrderFilter::Currency(parse_currency(key, value)?),
            ("has_gift_box", None) => OrderFilter::HasGiftBox(parse_bool(key, value)?),
            ("created_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::CreatedAt(cmp(l), parse_datetime(key, value)?)
            }
            ("updated_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::UpdatedAt(cmp(l), parse_datetime(key, value)?)
            }
            _ => return Ok(None),
        }))
    }

    fn matches(&self, o: &SimOrder) -> bool {
        match self {
            OrderFilter::Number(n) => o.rec.number == *n,
            OrderFilter::NumberContains(s) => o.rec.number.contains(s.as_str()),
            OrderFilter::NumberIContains(s) => o.rec.number.to_lowercase().contains(s.as_str()),
            OrderFilter::Status(s) => i64::from(o.rec.status) == *s,
            OrderFilter::DatePlaced(c, t) => c.holds(&o.placed, t),
            OrderFilter::Amount(c, d) => c.holds(&o.rec.amount, d),
            OrderFilter::DiscountAmount(c, d) => c.holds(&o.rec.discount_amount, d),
            OrderFilter::Currency(cur) => o.rec.currency == cur.as_str(),
            OrderFilter::HasGiftBox(b) => o.rec.has_gift_box == *b,
            OrderFilter::CreatedAt(c, t) => c.holds(&o.created, t),
            OrderFilter::UpdatedAt(c, t) => c.holds(&o.updated, t),
        }
    }
}

/// The filters of `GET /api/i1/order-items/`, with the document's Markdown-eaten names
/// restored (`ordernumbercontains` is `order__number__contains`, and so on).
#[derive(Debug)]
enum ItemFilter {
    OrderNumber(String),
    OrderStatus(i64),
    OrderNumberContains(String),
    OrderNumberIContains(String),
    Status(i64),
    OrderDatePlaced(Cmp, i64),
    Price(Cmp, Decimal),
    RetailPrice(Cmp, Decimal),
    DiscountAmount(Cmp, Decimal),
    PriceCurrency(String),
    CreatedAt(Cmp, i64),
    UpdatedAt(Cmp, i64),
}

impl ItemFilter {
    fn parse(key: &str, value: &str) -> Result<Option<ItemFilter>, ApiError> {
        let (field, lookup) = split_lookup(key);
        Ok(Some(match (field, lookup) {
            ("order__number", None) => ItemFilter::OrderNumber(value.to_owned()),
            ("order__number", Some("contains")) => {
                ItemFilter::OrderNumberContains(value.to_owned())
            }
            ("order__number", Some("icontains")) => {
                ItemFilter::OrderNumberIContains(value.to_lowercase())
            }
            ("order__status", None) => ItemFilter::OrderStatus(parse_int(key, value)?),
            ("status", None) => ItemFilter::Status(parse_int(key, value)?),
            ("order__date_placed", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::OrderDatePlaced(cmp(l), parse_datetime(key, value)?)
            }
            ("price", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::Price(cmp(l), parse_decimal(key, value)?)
            }
            ("retail_price", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::RetailPrice(cmp(l), parse_decimal(key, value)?)
            }
            ("discount_amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::DiscountAmount(cmp(l), parse_decimal(key, value)?)
            }
            ("price_currency", None) => ItemFilter::PriceCurrency(parse_currency(key, value)?),
            ("created_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::CreatedAt(cmp(l), parse_datetime(key, value)?)
            }
            ("updated_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::UpdatedAt(cmp(l), parse_datetime(key, value)?)
            }
            _ => return Ok(None),
        }))
    }

    fn matches(&self, i: &SimItem, o: &SimOrder) -> bool {
        match self {
            ItemFilter::OrderNumber(n) => o.rec.number == *n,
            ItemFilter::OrderStatus(s) => i64::from(o.rec.status) == *s,
            ItemFilter::OrderNumberContains(s) => o.rec.number.contains(s.as_str()),
            ItemFilter::OrderNumberIContains(s) => o.rec.number.to_lowercase().contains(s.as_str()),
            ItemFilter::Status(s) => i64::from(i.rec.status) == *s,
            ItemFilter::OrderDatePlaced(c, t) => c.holds(&o.placed, t),
            ItemFilter::Price(c, d) => c.holds(&i.rec.price, d),
            // SQL: a comparison with NULL matches nothing.
            ItemFilter::RetailPrice(c, d) => i.rec.retail_price.is_some_and(|p| c.holds(&p, d)),
            ItemFilter::DiscountAmount(c, d) => c.holds(&i.rec.discount_amount, d),
            ItemFilter::PriceCurrency(cur) => i.rec.price_currency == cur.as_str(),
            ItemFilter::CreatedAt(c, t) => c.holds(&i.created, t),
            ItemFilter::UpdatedAt(c, t) => c.holds(&i.updated, t),
        }
    }
}

fn split_lookup(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once("__") {
        Some((field, lookup))
            if matches!(
                lookup,
                "lt" | "lte" | "gt" | "gte" | "contains" | "icontains"
            ) =>
        {
            (field, Some(lookup))
        }
        _ => (key, None),
    }
}

fn cmp(lookup: &str) -> Cmp {
    Cmp::from_lookup(lookup).expect("checked by the caller")
}

fn parse_int(key: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| field_error(key, "Enter a number."))
}

fn parse_decimal(key: &str, value: &str) -> Result<Decimal, ApiError> {
    Decimal::from_str(value.trim()).map_err(|_| field_error(key, "Enter a number."))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(field_error(key, "Select a valid choice.")),
    }
}

fn parse_currency(key: &str, value: &str) -> Result<String, ApiError> {
    let lower = value.trim().to_ascii_lowercase();
    if CURRENCIES.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(field_error(
            key,
            &format!("Select a valid choice. {value} is not one of the available choices."),
        ))
    }
}

/// Django's `DateTimeField`: ISO 8601 with `T` or a space, optional fraction, optional zone
/// (naive times are in the shop's zone), or a bare date (its midnight). Microseconds.
fn parse_datetime(key: &str, value: &str) -> Result<i64, ApiError> {
    let v = value.trim();
    let invalid = || field_error(key, "Enter a valid date/time.");
    if let Ok(t) = DateTime::parse_from_rfc3339(v)
        .or_else(|_| DateTime::parse_from_rfc3339(&v.replacen(' ', "T", 1)))
    {
        return Ok(t.timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(v, fmt) {
            return shop_tz()
                .from_local_datetime(&n)
                .single()
                .map(|t| t.timestamp_micros())
                .ok_or_else(invalid);
        }
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| invalid())?;
    shop_tz()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).ok_or_else(invalid)?)
        .single()
        .map(|t| t.timestamp_micros())
        .ok_or_else(invalid)
}

#[derive(Debug, Clone, Copy)]
enum PageNumber {
    N(usize),
    Last,
}

/// A list request: DRF's `page` and `limit`, then the endpoint's filters.
#[derive(Debug)]
struct ListQuery<F> {
    page: PageNumber,
    limit: Option<usize>,
    filters: Vec<F>,
}

impl<F> ListQuery<F> {
    fn parse(
        uri: &Uri,
        filter: impl Fn(&str, &str) -> Result<Option<F>, ApiError>,
    ) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut seen = HashSet::new();
        let mut q = ListQuery {
            page: PageNumber::N(1),
            limit: None,
            filters: Vec::new(),
        };
        for (key, value) in &pairs {
            if !seen.insert(key.as_str()) {
                return Err(detail(
                    StatusCode::BAD_REQUEST,
                    format!("Duplicate query parameter: {key}"),
                ));
            }
            match key.as_str() {
                // DRF answers any page it cannot serve with 404 "Invalid page.".
                "page" => {
                    q.page = match value.as_str() {
                        "last" => PageNumber::Last,
                        v => PageNumber::N(
                            v.parse().ok().filter(|&n| n > 0).ok_or_else(invalid_page)?,
                        ),
                    }
                }
                "limit" => {
                    q.limit = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|&n: &usize| n > 0)
                            .ok_or_else(|| field_error("limit", "Enter a positive integer."))?,
                    );
                }
                _ => match filter(key, value)? {
                    Some(f) => q.filters.push(f),
                    None => {
                        return Err(detail(
                            StatusCode::BAD_REQUEST,
                            format!("Unknown query parameter: {key}"),
                        ));
                    }
                },
            }
        }
        Ok(q)
    }
}

/// Which slice of `count` matches a page shows, and its `next`/`previous` page numbers.
struct Paged {
    range: Range<usize>,
    next: Option<usize>,
    previous: Option<usize>,
}

fn paginate(
    count: usize,
    page: PageNumber,
    limit: Option<usize>,
    max: usize,
) -> Result<Paged, ApiError> {
    let size = limit.unwrap_or(DEFAULT_PAGE_SIZE).min(max);
    let pages = count.div_ceil(size).max(1);
    let n = match page {
        PageNumber::N(n) => n,
        PageNumber::Last => pages,
    };
    if n > pages {
        return Err(invalid_page());
    }
    Ok(Paged {
        range: (n - 1) * size..(n * size).min(count),
        next: (n < pages).then_some(n + 1),
        previous: (n > 1).then_some(n - 1),
    })
}

/// A page link as DRF builds it: absolute, the query parsed, `page` replaced (or, for page 1,
/// removed), sorted by key and re-encoded (`:` becomes `%3A`).
fn page_link(base: &str, path: &str, query: Option<&str>, page: usize) -> String {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "page")
            .collect();
    if page > 1 {
        pairs.push(("page".to_owned(), page.to_string()));
    }
    pairs.sort();
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if encoded.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{encoded}")
    }
}

impl AkinonSim {
    /// `http://<Host>` as Django sees it, unless a proxy's base is configured.
    fn link_base(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.inner.link_base {
            return b.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// `{count, next, previous, results}` with the records at `positions` (already the page).
    fn list_body<'a>(
        &self,
        req: &Request,
        count: usize,
        paged: &Paged,
        records: impl ExactSizeIterator<Item = &'a str>,
    ) -> String {
        let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
        let base = self.link_base(req.headers());
        let link =
            |p: Option<usize>| p.map(|p| page_link(&base, req.uri().path(), req.uri().query(), p));
        let envelope = json!({
            "count": count,
            "next": link(paged.next),
            "previous": link(paged.previous),
        })
        .to_string();
        let n = records.len();
        let mut body = String::with_capacity(envelope.len() + n * 1200 + 16);
        body.push_str(&envelope[..envelope.len() - 1]);
        body.push_str(",\"results\":[");
        for (k, record) in records.enumerate() {
            if k > 0 {
                body.push(',');
            }
            if corrupt && (k == 1 || (k == 0 && n == 1)) {
                push_corrupted(&mut body, record);
            } else {
                body.push_str(record);
            }
        }
        body.push_str("]}");
        body
    }
}

/// Appends `record` with its id broken: every record starts with `{"id":"<uuid>"`.
fn push_corrupted(out: &mut String, record: &str) {
    const ID_START: &str = r#"{"id":""#;
    let end = record[ID_START.len()..]
        .find('"')
        .map_or(record.len(), |n| ID_START.len() + n + 1);
    out.push_str(r#"{"id":{"oops":true}"#);
    out.push_str(&record[end..]);
}

/// `GET /api/i1/orders/`, oldest placed first.
async fn list_orders(State(sim): State<AkinonSim>, req: Request) -> ApiResult {
    let q = ListQuery::parse(req.uri(), OrderFilter::parse)?;
    let shop = sim.read();
    let (orders, listing) = (&shop.orders, &shop.listing);
    // Positions in the listing.
    let mut range = 0..listing.len();
    for f in &q.filters {
        match f {
            OrderFilter::DatePlaced(c, t) => {
                c.narrow(&mut range, |p| orders[listing[p]].placed, *t)
            }
            OrderFilter::Number(n) => {
                range = match shop.by_number.get(n).and_then(|&i| shop.position_of(i)) {
                    Some(p) if range.contains(&p) => p..p + 1,
                    _ => 0..0,
                }
            }
            _ => {}
        }
    }
    let matches: Vec<usize> = listing[range]
        .iter()
        .copied()
        .filter(|&i| q.filters.iter().all(|f| f.matches(&orders[i])))
        .collect();
    let paged = paginate(matches.len(), q.page, q.limit, sim.inner.max_page_size)?;
    let records = matches[paged.range.clone()]
        .iter()
        .map(|&i| orders[i].json.as_str());
    let body = sim.list_body(&req, matches.len(), &paged, records);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /api/i1/order-items/`, in the order of their orders.
async fn list_items(State(sim): State<AkinonSim>, req: Request) -> ApiResult {
    let q = ListQuery::parse(req.uri(), ItemFilter::parse)?;
    let shop = sim.read();
    let (orders, listing) = (&shop.orders, &shop.listing);
    // Positions in the listing.
    let mut order_range = 0..listing.len();
    for f in &q.filters {
        match f {
            ItemFilter::OrderDatePlaced(c, t) => {
                c.narrow(&mut order_range, |p| orders[listing[p]].placed, *t)
            }
            ItemFilter::OrderNumber(n) => {
                order_range = match shop.by_number.get(n).and_then(|&i| shop.position_of(i)) {
                    Some(p) if order_range.contains(&p) => p..p + 1,
                    _ => 0..0,
                }
            }
            _ => {}
        }
    }
    let matches: Vec<usize> = listing[order_range]
        .iter()
        .flat_map(|&o| orders[o].items.clone())
        .filter(|&i| {
            let item = &shop.items[i];
            q.filters
                .iter()
                .all(|f| f.matches(item, &orders[item.order]))
        })
        .collect();
    let paged = paginate(matches.len(), q.page, q.limit, sim.inner.max_page_size)?;
    let records = matches[paged.range.clone()]
        .iter()
        .map(|&i| shop.items[i].json.as_str());
    let body = sim.list_body(&req, matches.len(), &paged, records);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// The body of a POST: empty, or a JSON object (DRF parses an empty body as `{}`).
fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "non_field_errors": [format!(
                "Invalid data. Expected a dictionary, but got {}.",
                match other { Value::Array(_) => "list", Value::String(_) => "str", Value::Number(_) => "int", Value::Bool(_) => "bool", _ => "NoneType" }
            )] }),
        }),
        Err(e) => Err(detail(
            StatusCode::BAD_REQUEST,
            format!("JSON parse error - {e}"),
        )),
    }
}

/// `POST /api/i1/order-items/{id}/reject/`: items not yet packaged (100, 200, 300) become
/// [`SimOptions::rejected_status`]; the order follows once every one of its items is 800 or 900.
async fn reject_item(
    State(sim): State<AkinonSim>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    json_object(&body)?;
    let rejected = sim.inner.rejected_status;
    let mut shop = sim.write();
    let index = *shop
        .item_by_id
        .get(&id)
        .filter(|&&i| !shop.orders[shop.items[i].order].deleted)
        .ok_or_else(|| detail(StatusCode::NOT_FOUND, "Not found."))?;
    let status = shop.items[index].rec.status;
    match status {
        100 | 200 | 300 => {}
        400..=600 => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                "Packaged order items cannot be rejected.",
            ));
        }
        700..=900 => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                "This order item is already cancelled.",
            ));
        }
        other => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                format!("Order items in status {other} cannot be rejected."),
            ));
        }
    }
    let now = now_micros();
    shop.items[index].set_status(rejected, now);
    let order = shop.items[index].order;
    let statuses: Vec<u16> = shop.items[shop.orders[order].items.clone()]
        .iter()
        .map(|i| i.rec.status)
        .collect();
    if statuses.iter().all(|s| matches!(s, 800 | 900)) {
        let follows = if statuses.iter().all(|&s| s == 900) {
            900
        } else {
            800
        };
        shop.orders[order].set_status(follows, now);
    }
    drop(shop);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/i1/token/obtain/` `{"email", "password"}` → `{"refresh", "access"}` (simplejwt).
async fn obtain_token(State(sim): State<AkinonSim>, body: Bytes) -> ApiResult {
    let fields = json_object(&body)?;
    let mut missing = serde_json::Map::new();
    for key in ["email", "password"] {
        match fields.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => {
                missing.insert(key.into(), json!(["This field may not be blank."]));
            }
            Some(_) => {
                missing.insert(key.into(), json!(["Not a valid string."]));
            }
            None => {
                missing.insert(key.into(), json!(["This field is required."]));
            }
        }
    }
    if !missing.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: Value::Object(missing),
        });
    }
    if fields["email"] != sim.inner.email.as_str()
        || fields["password"] != sim.inner.password.as_str()
    {
        return Err(detail(
            StatusCode::UNAUTHORIZED,
            "No active account found with the given credentials",
        ));
    }
    let (access, refresh) = sim.issue_token();
    Ok(json_response(
        StatusCode::OK,
        json!({ "refresh": refresh, "access": access }).to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Data: generation

/// An empty JSON object (`extra_field`).
#[derive(Debug, Clone, Serialize)]
struct Empty {}

/// The order object, fields in the document example's order.
#[derive(Debug, Clone, Serialize)]
struct OrderRecord {
    id: String,
    number: String,
    datasource: &'static str,
    shipping_address: String,
    billing_address: String,
    date_placed: String,
    status: u16,
    currency: &'static str,
    amount: Decimal,
    discount_amount: Decimal,
    shipping_amount: Decimal,
    shipping_tax_rate: Option<Decimal>,
    refund_amount: Decimal,
    discount_refund_amount: Decimal,
    shipping_refund_amount: Decimal,
    invoice_number: Option<String>,
    invoice_date: Option<String>,
    e_archive_url: Option<String>,
    tracking_number: Option<String>,
    shipping_company: Option<&'static str>,
    cargo_company: Option<&'static str>,
    has_gift_box: bool,
    gift_box_note: Option<&'static str>,
    language_code: Option<&'static str>,
    notes: Option<&'static str>,
    delivery_range: Option<String>,
    shipping_option_slug: Option<&'static str>,
    extra_field: Empty,
    cancel_status: Option<&'static str>,
    shipping_interest_amount: Decimal,
}

/// The order-item object, fields in the document example's order.
#[derive(Debug, Clone, Serialize)]
struct ItemRecord {
    id: String,
    order: String,
    sku: &'static str,
    status: u16,
    price_currency: &'static str,
    price: Decimal,
    tax_rate: Decimal,
    invoice_number: Option<String>,
    invoice_date: Option<String>,
    e_archive_url: Option<String>,
    tracking_number: Option<String>,
    shipping_company: Option<&'static str>,
    retail_price: Option<Decimal>,
    extra_field: Empty,
    estimated_delivery_date: Option<String>,
    discount_amount: Decimal,
    shipped_date: Option<String>,
    delivered_date: Option<String>,
    cancel_status: Option<&'static str>,
}

/// One order as generated, before it joins the shop.
struct Generated {
    order: OrderRecord,
    /// With each item's update time.
    items: Vec<(ItemRecord, i64)>,
    placed: i64,
    updated: i64,
}

impl Generated {
    /// Just placed: waiting for approval, nothing invoiced, shipped or touched since.
    fn make_new(&mut self) {
        self.order.status = 100;
        self.order.cancel_status = None;
        self.order.invoice_number = None;
        self.order.invoice_date = None;
        self.order.e_archive_url = None;
        self.order.tracking_number = None;
        self.order.shipping_company = None;
        self.order.cargo_company = None;
        self.updated = self.placed;
        for (item, updated) in &mut self.items {
            item.status = 100;
            item.cancel_status = None;
            item.invoice_number = None;
            item.invoice_date = None;
            item.e_archive_url = None;
            item.tracking_number = None;
            item.shipping_company = None;
            item.shipped_date = None;
            item.delivered_date = None;
            *updated = self.placed;
        }
    }
}

/// The seller's statuses 400…900 record what the items went through; the `cancel_status`
/// text is what the document's enum calls it.
fn cancel_status(status: u16) -> Option<&'static str> {
    match status {
        700 => Some("waiting"),
        800 | 900 => Some("completed"),
        _ => None,
    }
}

struct Product {
    sku: &'static str,
    price_cents: i64,
    tax_percent: i64,
}

const PRODUCTS: &[Product] = &[
    Product {
        sku: "SP-A",
        price_cents: 62_900,
        tax_percent: 20,
    },
    Product {
        sku: "TSH-1001-BLK-M",
        price_cents: 29_990,
        tax_percent: 10,
    },
    Product {
        sku: "TSH-1001-WHT-L",
        price_cents: 29_990,
        tax_percent: 10,
    },
    Product {
        sku: "JEAN-2040-32-34",
        price_cents: 89_950,
        tax_percent: 10,
    },
    Product {
        sku: "SNK-3300-42",
        price_cents: 249_900,
        tax_percent: 10,
    },
    Product {
        sku: "BAG-410-CAMEL",
        price_cents: 134_500,
        tax_percent: 20,
    },
    Product {
        sku: "SCF-77-RED",
        price_cents: 19_999,
        tax_percent: 10,
    },
    Product {
        sku: "WTC-9001",
        price_cents: 459_000,
        tax_percent: 20,
    },
    Product {
        sku: "MUG-12",
        price_cents: 8_990,
        tax_percent: 20,
    },
    Product {
        sku: "BOOK-978-605-09",
        price_cents: 12_500,
        tax_percent: 0,
    },
    Product {
        sku: "PRF-50ML-OUD",
        price_cents: 179_900,
        tax_percent: 20,
    },
    Product {
        sku: "SOCK-3PK-39-42",
        price_cents: 9_950,
        tax_percent: 10,
    },
];

const CARRIERS: &[&str] = &["yurtici", "aras", "mng", "hbexpress", "ups"];

fn uuid(rng: &mut SimRng) -> String {
    let h = rng.hex(32);
    let variant = *rng.pick(&['8', '9', 'a', 'b']);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// DRF's rendering of an aware UTC datetime: `Z`, microseconds only when there are any.
fn render_time(micros: i64) -> String {
    let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
    if micros.rem_euclid(1_000_000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

fn money(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// Rounded to cents and written with two decimals, as a `DecimalField(decimal_places=2)`.
fn to_cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

const DAY: i64 = 86_400_000_000;

/// Order `index`, placed at `placed`, last touched no later than `latest`.
fn generate(rng: &mut SimRng, index: u64, placed: i64, latest: i64) -> Generated {
    let id = uuid(rng);
    let number = (FIRST_NUMBER + index * 10 + rng.below(10)).to_string();
    let status = *rng.weighted(&[
        (8, 100u16),
        (8, 200),
        (6, 300),
        (6, 400),
        (15, 500),
        (40, 600),
        (3, 700),
        (9, 800),
        (5, 900),
    ]);
    let currency = *rng.weighted(&[(85, "try"), (10, "usd"), (5, "eur")]);
    let n_items = *rng.weighted(&[(50, 1usize), (25, 2), (15, 3), (7, 4), (3, 6)]);
    let shipped = matches!(status, 500 | 600);
    let tracking = shipped.then(|| rng.hex(32));
    let carrier = shipped.then(|| *rng.pick(CARRIERS));
    let invoiced = matches!(status, 400..=600);
    let invoice_number = invoiced.then(|| format!("AKN{:09}", index + 1));
    let invoice_date = invoiced.then(|| render_time(placed + DAY / 2));
    let e_archive = invoice_number
        .as_ref()
        .map(|n| format!("https://earsiv.demo.akinon.test/{n}.pdf"));
    // A delivered order sometimes had one line cancelled on the way.
    let partial_cancel = status == 600 && n_items >= 2 && rng.percent(15);
    let updated = (placed + rng.below(3 * DAY as u64) as i64)
        .min(latest)
        .max(placed);

    let mut items = Vec::with_capacity(n_items);
    let mut discount_total = Decimal::ZERO;
    let mut subtotal = Decimal::ZERO;
    for k in 0..n_items {
        let p = rng.pick(PRODUCTS);
        let price = money(p.price_cents);
        let discount = if rng.percent(20) {
            to_cents(price / Decimal::from(10))
        } else {
            money(0)
        };
        let retail = rng
            .percent(50)
            .then(|| to_cents(price * Decimal::new(125, 2)));
        let item_status = if partial_cancel && k == n_items - 1 {
            800
        } else {
            status
        };
        let line_shipped = matches!(item_status, 500 | 600);
        subtotal += price - discount;
        discount_total += discount;
        items.push((
            ItemRecord {
                id: uuid(rng),
                order: id.clone(),
                sku: p.sku,
                status: item_status,
                price_currency: currency,
                price,
                tax_rate: money(p.tax_percent * 100),
                invoice_number: invoice_number.clone().filter(|_| item_status != 800),
                invoice_date: invoice_date.clone().filter(|_| item_status != 800),
                e_archive_url: e_archive.clone().filter(|_| item_status != 800),
                tracking_number: tracking.clone().filter(|_| line_shipped),
                shipping_company: carrier.filter(|_| line_shipped),
                retail_price: retail,
                extra_field: Empty {},
                estimated_delivery_date: line_shipped.then(|| render_time(placed + 3 * DAY)),
                discount_amount: discount,
                shipped_date: line_shipped.then(|| render_time(placed + 2 * DAY)),
                delivered_date: (item_status == 600).then(|| render_time(placed + 4 * DAY)),
                cancel_status: cancel_status(item_status),
            },
            updated,
        ));
    }
    let shipping = if subtotal < Decimal::from(500) {
        money(2_990)
    } else {
        money(0)
    };
    let address = uuid(rng);
    let gift = rng.percent(5);
    Generated {
        order: OrderRecord {
            id,
            number,
            datasource: DATASOURCE,
            billing_address: if rng.percent(90) {
                address.clone()
            } else {
                uuid(rng)
            },
            shipping_address: address,
            date_placed: render_time(placed),
            status,
            currency,
            amount: subtotal + shipping,
            discount_amount: discount_total,
            shipping_amount: shipping,
            shipping_tax_rate: (shipping > Decimal::ZERO).then(|| money(2_000)),
            refund_amount: money(0),
            discount_refund_amount: money(0),
            shipping_refund_amount: money(0),
            invoice_number,
            invoice_date,
            e_archive_url: e_archive,
            tracking_number: tracking,
            shipping_company: carrier,
            cargo_company: carrier,
            has_gift_box: gift,
            gift_box_note: gift.then_some("Iyi ki dogdun!"),
            language_code: Some(*rng.weighted(&[(90, "tr-tr"), (10, "en-us")])),
            notes: None,
            delivery_range: None,
            shipping_option_slug: Some(*rng.pick(&["standard", "express"])),
            extra_field: Empty {},
            cancel_status: cancel_status(status),
            shipping_interest_amount: money(0),
        },
        items,
        placed,
        updated,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Fault;

    struct Served {
        sim: AkinonSim,
        running: RunningSim,
        http: reqwest::Client,
    }

    async fn shop(orders: usize) -> Served {
        shop_with(SimOptions {
            orders,
            ..SimOptions::default()
        })
        .await
    }

    async fn shop_with(opts: SimOptions) -> Served {
        let sim = AkinonSim::new(opts);
        let running = sim.serve().await.expect("sim starts");
        // reqwest is built with `rustls-no-provider`: a provider must exist before any Client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().expect("client builds");
        Served { sim, running, http }
    }

    impl Served {
        fn url(&self, path_and_query: &str) -> String {
            format!("{}{path_and_query}", self.running.base_url())
        }

        /// A request as the document says to send it.
        fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
            self.http
                .request(method, self.url(path_and_query))
                .header("Authorization", "Bearer demo-akinon-api-token")
                .header("Content-Type", "application/json")
        }

        async fn get(&self, path_and_query: &str) -> (u16, Value) {
            read_json(
                self.request(Method::GET, path_and_query)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }

        async fn post(&self, path_and_query: &str, body: &str) -> (u16, Value) {
            let response = self
                .request(Method::POST, path_and_query)
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            read_json(response).await
        }

        /// Follows `next` from `first`; every record, and how many pages.
        async fn all(&self, first: &str) -> (Vec<Value>, usize) {
            let mut next = Some(self.url(first));
            let (mut records, mut pages) = (Vec::new(), 0);
            while let Some(link) = next {
                let path = link
                    .strip_prefix(&self.running.base_url())
                    .expect("same host");
                let (status, page) = self.get(path).await;
                assert_eq!(status, 200, "{page}");
                records.extend(page["results"].as_array().unwrap().iter().cloned());
                next = page["next"].as_str().map(str::to_owned);
                pages += 1;
            }
            (records, pages)
        }
    }

    async fn read_json(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if status == 204 {
            assert!(text.is_empty(), "204 has no body: {text}");
            return (status, Value::Null);
        }
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }

    fn ids(records: &[Value]) -> Vec<String> {
        records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn lists_page_with_absolute_sorted_next_links_and_cap_the_limit() {
        let shop = shop_with(SimOptions {
            orders: 130,
            max_page_size: 50,
            ..SimOptions::default()
        })
        .await;
        let (status, page) = shop.get("/api/i1/orders/?limit=500&page=1").await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 130);
        assert_eq!(
            page["results"].as_array().unwrap().len(),
            50,
            "limit is capped"
        );
        assert_eq!(page["previous"], Value::Null);
        assert_eq!(
            page["next"],
            format!(
                "{}/api/i1/orders/?limit=500&page=2",
                shop.running.base_url()
            )
        );
        let (orders, pages) = shop.all("/api/i1/orders/?limit=50").await;
        assert_eq!(pages, 3);
        assert_eq!(ids(&orders), shop.sim.order_ids());
        let (_, third) = shop.get("/api/i1/orders/?page=3&limit=50").await;
        assert_eq!(
            third["previous"],
            format!("{}/api/i1/orders/?limit=50&page=2", shop.running.base_url())
        );
        let (_, second) = shop.get("/api/i1/orders/?page=2&limit=50").await;
        assert_eq!(
            second["previous"],
            format!("{}/api/i1/orders/?limit=50", shop.running.base_url()),
            "page 1's link has no page, as DRF's"
        );
        assert_eq!(shop.get("/api/i1/orders/?page=4&limit=50").await.0, 404);
        let (_, no_limit) = shop.get("/api/i1/orders/").await;
        assert_eq!(
            no_limit["results"].as_array().unwrap().len(),
            DEFAULT_PAGE_SIZE
        );

        let (items, _) = shop.all("/api/i1/order-items/?limit=50").await;
        let truth = shop.sim.truth();
        assert_eq!(
            items.len(),
            truth.iter().map(|o| o.items.len()).sum::<usize>()
        );
    }

    #[tokio::test]
    async fn records_have_the_documents_shape_and_match_the_truth() {
        let shop = shop(40).await;
        let (orders, _) = shop.all("/api/i1/orders/?limit=100").await;
        let (items, _) = shop.all("/api/i1/order-items/?limit=100").await;
        let truth = shop.sim.truth();
        assert_eq!(orders.len(), 40);
        for (o, t) in orders.iter().zip(&truth) {
            assert_eq!(o["id"], t.id.as_str());
            assert_eq!(o["number"], t.number.as_str());
            assert_eq!(o["status"], t.status);
            assert_eq!(o["amount"], t.amount.to_string(), "amounts are strings");
            assert!(o["amount"].as_str().unwrap().contains('.'));
            assert_eq!(o["currency"], t.currency.as_str());
            assert!(o.get("updated_at").is_none() && o.get("created_at").is_none());
            assert_eq!(o["extra_field"], json!({}));
            let own: Vec<&Value> = items.iter().filter(|i| i["order"] == o["id"]).collect();
            assert_eq!(own.len(), t.items.len());
            let sum: Decimal = own
                .iter()
                .map(|i| {
                    Decimal::from_str(i["price"].as_str().unwrap()).unwrap()
                        - Decimal::from_str(i["discount_amount"].as_str().unwrap()).unwrap()
                })
                .sum();
            let shipping = Decimal::from_str(o["shipping_amount"].as_str().unwrap()).unwrap();
            assert_eq!(
                sum + shipping,
                t.amount,
                "amount is the lines, less discounts, plus shipping"
            );
        }
        assert!(
            STATUSES
                .iter()
                .filter(|s| truth.iter().any(|t| t.status == **s))
                .count()
                >= 5
        );
    }

    #[tokio::test]
    async fn filters_work_as_documented_and_bad_ones_are_refused_by_name() {
        let shop = shop(60).await;
        let truth = shop.sim.truth();
        let t = &truth[17];
        let (_, one) = shop
            .get(&format!("/api/i1/orders/?number={}", t.number))
            .await;
        assert_eq!(ids(one["results"].as_array().unwrap()), vec![t.id.clone()]);
        let (_, items) = shop
            .get(&format!("/api/i1/order-items/?order__number={}", t.number))
            .await;
        assert_eq!(items["count"], t.items.len());

        // Placed-time bounds, inclusive, in UTC or as naive shop time (+03:00).
        let from = &truth[10].date_placed;
        let to = &truth[19].date_placed;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("order__date_placed__gte", from)
            .append_pair("order__date_placed__lte", to)
            .append_pair("limit", "100")
            .finish();
        let (_, span) = shop.get(&format!("/api/i1/order-items/?{q}")).await;
        let expected: usize = truth[10..20].iter().map(|o| o.items.len()).sum();
        assert_eq!(span["count"], expected);

        let status = truth[0].status;
        let (_, by_status) = shop
            .get(&format!("/api/i1/orders/?status={status}&limit=100"))
            .await;
        assert_eq!(
            by_status["count"],
            truth.iter().filter(|o| o.status == status).count()
        );

        // Nothing was updated after now; everything after the epoch.
        let (_, none) = shop
            .get("/api/i1/orders/?updated_at__gte=2100-01-01T00%3A00%3A00Z")
            .await;
        assert_eq!(none["count"], 0);
        let (_, all) = shop
            .get("/api/i1/order-items/?updated_at__gte=1970-01-02")
            .await;
        assert_eq!(
            all["count"],
            truth.iter().map(|o| o.items.len()).sum::<usize>()
        );

        for (query, field) in [
            (
                "/api/i1/orders/?updated_at__gte=yesterday",
                "updated_at__gte",
            ),
            // An unencoded `+` is a space: the offset is lost and the value is invalid.
            (
                "/api/i1/orders/?updated_at__gte=2024-01-01T00:00:00+03:00",
                "updated_at__gte",
            ),
            ("/api/i1/orders/?status=shipped", "status"),
            ("/api/i1/orders/?amount__gte=ten", "amount__gte"),
            ("/api/i1/orders/?currency=xyz", "currency"),
            ("/api/i1/orders/?limit=0", "limit"),
        ] {
            let (status, body) = shop.get(query).await;
            assert_eq!(status, 400, "{query}");
            assert!(body.get(field).is_some(), "{query}: {body}");
        }
        for query in [
            "/api/i1/orders/?ordering=-id",
            "/api/i1/order-items/?ordernumbercontains=45",
            "/api/i1/order-items/?order__number__in=1,2",
            "/api/i1/orders/?page=1&page=2",
        ] {
            let (status, body) = shop.get(query).await;
            assert_eq!(status, 400, "{query}: {body}");
        }
        assert_eq!(shop.get("/api/i1/orders/?page=zero").await.0, 404);
    }

    #[tokio::test]
    async fn content_type_accept_and_bearer_auth_are_enforced() {
        let shop = shop(3).await;
        let url = shop.url("/api/i1/orders/");
        let no_type = shop
            .http
            .get(&url)
            .header("Authorization", "Bearer demo-akinon-api-token")
            .send()
            .await
            .unwrap();
        assert_eq!(no_type.status(), 415);
        let (status, _) = read_json(
            shop.request(Method::GET, "/api/i1/orders/")
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 406);

        for auth in [
            None,
            Some(("Authorization", "Bearer wrong")),
            Some(("Authorization", "Token demo-akinon-api-token")),
            // The document's header name is a typo; the API does not read it.
            Some(("Authentication", "Bearer demo-akinon-api-token")),
        ] {
            let mut req = shop
                .http
                .get(&url)
                .header("Content-Type", "application/json");
            if let Some((name, value)) = auth {
                req = req.header(name, value);
            }
            let response = req.send().await.unwrap();
            assert_eq!(response.status(), 401, "{auth:?}");
            assert!(response.headers().contains_key("www-authenticate"));
        }
        assert_eq!(shop.get("/api/i1/orders/").await.0, 200);
        assert_eq!(shop.get("/api/i1/nothing/").await.0, 404);
        assert_eq!(shop.post("/api/i1/orders/", "{}").await.0, 405);
        assert_eq!(shop.get("/api/i1/cancellation-plans/").await.0, 501);
        assert_eq!(shop.sim.request_count(), 10);
    }

    #[tokio::test]
    async fn logins_issue_tokens_that_can_be_revoked() {
        let shop = shop_with(SimOptions {
            orders: 3,
            token: String::new(),
            ..SimOptions::default()
        })
        .await;
        let (status, body) = shop
            .post(
                "/api/i1/token/obtain/",
                r#"{"email":"seller@demo.akinon.test","password":"nope"}"#,
            )
            .await;
        assert_eq!(status, 401, "{body}");
        let (status, body) = shop.post("/api/i1/token/obtain/", r#"{"email":"x"}"#).await;
        assert_eq!(
            (status, &body["password"][0]),
            (400, &json!("This field is required."))
        );
        let login = r#"{"email":"seller@demo.akinon.test","password":"demo-akinon-password"}"#;
        let (status, body) = shop.post("/api/i1/token/obtain/", login).await;
        assert_eq!(status, 200);
        let access = body["access"].as_str().unwrap().to_owned();
        assert!(body["refresh"].is_string());
        assert_eq!(shop.sim.logins(), 1);

        let get = |token: String| {
            shop.http
                .get(shop.url("/api/i1/orders/"))
                .header("Content-Type", "application/json")
                .header("Authorization", format!("Bearer {token}"))
                .send()
        };
        assert_eq!(get(access.clone()).await.unwrap().status(), 200);
        assert_eq!(
            get("demo-akinon-api-token".into()).await.unwrap().status(),
            401,
            "no API token configured"
        );
        shop.sim.revoke_tokens_after(2);
        assert_eq!(get(access.clone()).await.unwrap().status(), 200);
        assert_eq!(get(access.clone()).await.unwrap().status(), 200);
        assert_eq!(get(access.clone()).await.unwrap().status(), 401);
        let (_, body) = shop.post("/api/i1/token/obtain/", login).await;
        let fresh = body["access"].as_str().unwrap().to_owned();
        assert_ne!(fresh, access);
        assert_eq!(
            get(fresh.clone()).await.unwrap().status(),
            200,
            "revocation is once"
        );
        assert_eq!(get(access).await.unwrap().status(), 401);
        shop.sim.revoke_tokens();
        assert_eq!(get(fresh).await.unwrap().status(), 401);
    }

    #[tokio::test]
    async fn rejecting_items_cancels_them_and_the_order_follows_the_last_one() {
        let shop = shop(0).await;
        let order = loop {
            let id = shop.sim.add_orders(1).remove(0);
            let order = shop.sim.truth().into_iter().find(|o| o.id == id).unwrap();
            if order.items.len() >= 2 {
                break order;
            }
        };
        let reject = |item: &str| format!("/api/i1/order-items/{item}/reject/");
        let (first, rest) = order.items.split_first().unwrap();

        assert_eq!(shop.post(&reject(&first.id), "{}").await.0, 204);
        let now = shop
            .sim
            .truth()
            .into_iter()
            .find(|o| o.id == order.id)
            .unwrap();
        assert_eq!(
            now.items.iter().find(|i| i.id == first.id).unwrap().status,
            800
        );
        assert_eq!(now.status, 100, "the order waits for its other items");
        let (status, body) = shop.post(&reject(&first.id), "{}").await;
        assert_eq!(status, 400, "{body}");

        for item in rest {
            assert_eq!(
                shop.post(&reject(&item.id), "").await.0,
                204,
                "an empty body is {{}}"
            );
        }
        let now = shop
            .sim
            .truth()
            .into_iter()
            .find(|o| o.id == order.id)
            .unwrap();
        assert_eq!(now.status, 800);
        let (_, items) = shop
            .get(&format!(
                "/api/i1/order-items/?order__number={}&status=800",
                order.number
            ))
            .await;
        assert_eq!(items["count"], order.items.len());

        // Packaged and later items cannot be rejected: a final 400 with the reason.
        let other = shop.sim.add_orders(1).remove(0);
        shop.sim.set_status(&other, 400);
        let item = shop
            .sim
            .truth()
            .into_iter()
            .find(|o| o.id == other)
            .unwrap()
            .items[0]
            .id
            .clone();
        let (status, body) = shop.post(&reject(&item), "{}").await;
        assert_eq!(
            (status, &body["detail"]),
            (400, &json!("Packaged order items cannot be rejected."))
        );
        assert_eq!(shop.post(&reject(&item), "[1]").await.0, 400);
        assert_eq!(shop.post(&reject("no-such-item"), "{}").await.0, 404);
        let posts = shop
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reject/"))
            .count();
        assert_eq!(posts, order.items.len() + 4, "every reject is recorded");
    }

    #[tokio::test]
    async fn changes_show_in_updated_at_filters_and_a_line_change_leaves_the_order_alone() {
        let shop = shop(20).await;
        let truth = shop.sim.truth();
        let since = render_time(now_micros() - 1_000_000);
        let q = |list: &str| {
            format!(
                "/api/i1/{list}/?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("updated_at__gte", &since)
                    .finish()
            )
        };
        shop.sim.set_status(&truth[3].id, 500);
        shop.sim.set_item_status(&truth[5].items[0].id, 450);
        let (_, orders) = shop.get(&q("orders")).await;
        assert_eq!(
            ids(orders["results"].as_array().unwrap()),
            [truth[3].id.clone()]
        );
        let (_, items) = shop.get(&q("order-items")).await;
        let changed: HashSet<String> = items["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["order"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            changed,
            HashSet::from([truth[3].id.clone(), truth[5].id.clone()])
        );
        let now = shop.sim.truth();
        assert_eq!(now[5].status, truth[5].status);
        assert_eq!(now[5].items[0].status, 450);
        assert!(now[3].items.iter().all(|i| i.status == 500));
    }

    #[tokio::test]
    async fn faults_replace_or_break_answers_one_request_each() {
        let shop = shop(5).await;
        shop.sim.faults().push(Fault::Status(503));
        assert_eq!(shop.get("/api/i1/orders/").await.0, 503);
        shop.sim.faults().push(Fault::MalformedRecord);
        let (_, page) = shop.get("/api/i1/orders/").await;
        assert_eq!(page["results"][1]["id"], json!({"oops": true}));
        assert_eq!(page["results"][0]["id"], shop.sim.truth()[0].id.as_str());
        shop.sim.faults().push(Fault::MalformedJson);
        let text = shop
            .request(Method::GET, "/api/i1/order-items/")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err());
        // A refused request does not consume the fault.
        shop.sim
            .faults()
            .push(Fault::Slow(Duration::from_millis(1)));
        let refused = shop
            .http
            .get(shop.url("/api/i1/orders/"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 415);
        assert_eq!(shop.sim.faults().pending(), 1);
    }
}
