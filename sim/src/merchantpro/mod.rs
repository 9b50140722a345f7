//! Simulated MerchantPro shop (Orders API v2, `platform-docs/merchantpro.md` and the MerchantPro
//! section of `NOTES.md`): deterministic order data, the list / single / update / processing
//! endpoints with the platform's validation and error bodies. Auth, faults, the request log and
//! the server itself are the shared pieces of [`super`].
//!
//! Built for volume: every order's JSON is rendered once into a `String` (again only when that
//! order changes) and pages are built by concatenation; orders live in a `Vec` in id order, so an
//! id is its own index, and the listing keeps the live ones in creation order, so date filters
//! are binary searches.
//!
//! For the drift tests (`verify`), the back office can also do what a sync cannot see: change a
//! status without moving `date_modified`, place orders created in the past, and delete orders.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use chrono::{DateTime, FixedOffset, NaiveDate, SubsecRound, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    AuthOutcome, BasicAuth, CorruptOneRecord, Faults, RecordedRequest, RequestLog, RunningSim,
    SimRng, apply_fault, json_response, record_requests,
};

/// The document's example ids start here (`ids=12345001,12345002,12345003`).
const FIRST_ID: u64 = 12_345_001;
const MAX_LIMIT: usize = 100;
/// Bad attempts answered 401 before the shop answers 403.
const ALLOWED_AUTH_FAILURES: usize = 5;
const SHOP_URL: &str = "https://shop.demo.ro";
/// Invoices issued through `create_invoice` are numbered from here, clear of generated ones.
const FIRST_NEW_INVOICE: u64 = 1_000_001;
const LIST_PATH: &str = "/api/v2/orders";

/// The shop's zone. The document's examples show +02:00 and, in summer, +03:00 (Bucharest time);
/// the simulator keeps to +02:00 all year so every date it writes has one offset.
fn shop_tz() -> FixedOffset {
    FixedOffset::east_opt(2 * 3600).expect("+02:00 is a valid offset")
}

fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The simulator's clock: wall time in the shop's zone, whole seconds (the wire format has none).
fn shop_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&shop_tz()).trunc_subsecs(0)
}

/// How a [`MerchantProSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub api_key: String,
    pub api_secret: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `date_created` of the first generated order.
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative (orders are kept in creation
    /// order).
    pub spacing: chrono::Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            api_key: "demo-key".to_owned(),
            api_secret: "demo-secret".to_owned(),
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
    pub shipping_status: String,
    pub total_amount: Decimal,
    pub currency: String,
    pub billing_name: String,
    pub shipping_name: String,
    pub shipping_awb: Option<String>,
    pub line_items: usize,
    pub date_created: String,
    pub date_modified: String,
}

/// A simulated MerchantPro shop. Cheap to clone; clones share the shop.
#[derive(Clone)]
pub struct MerchantProSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    auth: BasicAuth,
    faults: Faults,
    log: RequestLog,
    shop: RwLock<Shop>,
    paging: std::sync::Mutex<Paging>,
}

/// How the list walks its pages: as documented, or in one of the ways a broken platform (or a
/// proxy in front of it) has been seen to, for the tests of what the daemon does about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Paging {
    #[default]
    AsDocumented,
    /// Every `start` answers the first page, and every page links to a next one.
    IgnoresStart,
    /// At most this many orders per page whatever `limit` asks, while the `next` links still
    /// step by `limit` and `meta.count.total` tells the whole listing.
    CapsPagesAt(usize),
    /// The first page's `next` link is absolute and names this other origin.
    NextLinkTo(String),
}

struct Shop {
    /// In id order (deleted ones stay, out of the listing); the order with id `FIRST_ID + i` is
    /// at index `i`.
    orders: Vec<StoredOrder>,
    /// Indexes of the live orders in `date_created` order (ties in id order): the listing. Id
    /// order too, unless orders were placed backdated.
    listing: Vec<usize>,
    next_invoice: u64,
}

struct StoredOrder {
    created: DateTime<FixedOffset>,
    deleted: bool,
    /// `created`'s calendar day in the shop's zone, what `created_after`/`created_before` compare.
    day: NaiveDate,
    state: OrderState,
    facts: OrderFacts,
    /// The full order object, line items included.
    json: String,
    /// The `,"line_items":[…]` part of `json`, cut out for list answers without `include`.
    items: Range<usize>,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone)]
struct OrderState {
    shipping_status: String,
    payment_status: &'static str,
    shipping_awb: Option<String>,
    date_modified: DateTime<FixedOffset>,
    invoice: Option<u64>,
}

/// Generated values kept for filters and [`TruthOrder`], so neither has to parse JSON.
struct OrderFacts {
    total: Decimal,
    billing_name: String,
    shipping_name: String,
    line_items: usize,
    payment_method_code: &'static str,
    shipping_method_id: u32,
    customer_id: u64,
    customer_email: Option<String>,
}

impl MerchantProSim {
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
        // Generated orders were last touched no later than the newest order was placed, as if the
        // shop had been snapshotted at that moment.
        let snapshot = start + opts.spacing * (n.saturating_sub(1) as i32);
        let seed = opts.seed;
        let build = |index: usize| {
            let created = start + opts.spacing * (index as i32);
            let generated = generate(seed, index as u64, created);
            let mut state = generated.initial.clone();
            state.date_modified = state.date_modified.min(snapshot.max(created));
            StoredOrder::from_generated(generated, created, state)
        };
        let orders = super::generate_parallel(n, &build);
        MerchantProSim {
            inner: Arc::new(Inner {
                seed,
                auth: BasicAuth::new(&opts.api_key, &opts.api_secret, ALLOWED_AUTH_FAILURES),
                faults: Faults::default(),
                log: RequestLog::default(),
                shop: RwLock::new(Shop {
                    listing: (0..orders.len()).collect(),
                    orders,
                    next_invoice: FIRST_NEW_INVOICE,
                }),
                paging: std::sync::Mutex::default(),
            }),
        }
    }

    /// Binds 127.0.0.1:0 and serves the shop until the returned handle is stopped or dropped.
    pub async fn serve(&self) -> std::io::Result<RunningSim> {
        super::serve(self.router()).await
    }

    /// The complete app (routes, auth, faults, request log), for callers that serve it
    /// themselves.
    pub fn router(&self) -> Router {
        Router::new()
            .route(LIST_PATH, get(list_orders))
            .route("/api/v2/orders/{id}", get(get_order).patch(update_order))
            .route("/api/v2/orders/{id}/{handler}", patch(process_order))
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

    /// Sets `shipping_status` (and its text) as the shop's back office would, bypassing the
    /// transition rules of the API, and bumps `date_modified`. Any string is accepted, so tests
    /// can produce statuses the daemon does not know.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: u64, shipping_status: &str) {
        self.modify(id, |state| {
            state.shipping_status = shipping_status.to_owned();
        });
    }

    /// Sets `shipping_awb` and bumps `date_modified`.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_awb(&self, id: u64, awb: &str) {
        self.modify(id, |state| {
            state.shipping_awb = Some(awb.to_owned());
        });
    }

    /// Places `n` new orders (awaiting, unpaid) after the newest one: each is created at the
    /// sim's current time, or one second after the previous order if that is later. Returns their
    /// ids.
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
            let generated = generate(seed, index, created);
            let state = OrderState {
                shipping_status: "awaiting".to_owned(),
                payment_status: "awaiting",
                shipping_awb: None,
                date_modified: created,
                invoice: None,
            };
            shop.place(StoredOrder::from_generated(generated, created, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Sets `shipping_status` as the back office would, without moving `date_modified`: a
    /// change no filter and no update time shows.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, shipping_status: &str) {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the MerchantPro simulator has no order {id}"));
        let order = &mut shop.orders[index];
        let mut state = order.state.clone();
        state.shipping_status = shipping_status.to_owned();
        order.restate(seed, index as u64, state);
    }

    /// Places `n` confirmed orders created at `created` (one second apart, not modified since),
    /// where the creation-date listing puts them: among the old orders, before any
    /// `created_after` a sync has moved past. Returns their ids.
    pub fn add_backdated_orders(&self, n: usize, created: DateTime<Utc>) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.write();
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let index = shop.orders.len() as u64;
            let created = created.with_timezone(&shop_tz()).trunc_subsecs(0)
                + chrono::Duration::seconds(k as i64);
            let generated = generate(seed, index, created);
            let state = OrderState {
                shipping_status: "confirmed".to_owned(),
                payment_status: "awaiting",
                shipping_awb: None,
                date_modified: created,
                invoice: None,
            };
            shop.place(StoredOrder::from_generated(generated, created, state));
            ids.push(FIRST_ID + index);
        }
        ids
    }

    /// Deletes order `id`: it leaves the listing, and reads and updates no longer find it.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: u64) {
        let mut shop = self.write();
        let index = shop
            .index_of(id)
            .unwrap_or_else(|| panic!("the MerchantPro simulator has no order {id}"));
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

    /// Every live order, id ascending.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.read();
        shop.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.deleted)
            .map(|(i, o)| TruthOrder {
                id: FIRST_ID + i as u64,
                shipping_status: o.state.shipping_status.clone(),
                total_amount: o.facts.total,
                currency: "RON".to_owned(),
                billing_name: o.facts.billing_name.clone(),
                shipping_name: o.facts.shipping_name.clone(),
                shipping_awb: o.state.shipping_awb.clone(),
                line_items: o.facts.line_items,
                date_created: format_time(o.created),
                date_modified: format_time(o.state.date_modified),
            })
            .collect()
    }

    /// The last [`RequestLog::CAPACITY`] requests received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.log.snapshot()
    }

    /// Makes the list page as `paging` says from the next request on.
    pub fn set_paging(&self, paging: Paging) {
        *self.inner.paging.lock().unwrap_or_else(|e| e.into_inner()) = paging;
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
            .unwrap_or_else(|| panic!("the MerchantPro simulator has no order {id}"));
        shop.orders[index].change(seed, index as u64, change);
    }
}

impl Shop {
    /// The index of live order `id`.
    fn index_of(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(FIRST_ID)?).ok()?;
        (index < self.orders.len() && !self.orders[index].deleted).then_some(index)
    }

    /// Where live order `index` is in the listing.
    fn position_of(&self, index: usize) -> Option<usize> {
        let key = (self.orders[index].created, index);
        self.listing
            .binary_search_by(|&i| (self.orders[i].created, i).cmp(&key))
            .ok()
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
    fn from_generated(
        mut generated: Generated,
        created: DateTime<FixedOffset>,
        state: OrderState,
    ) -> Self {
        let facts = OrderFacts {
            total: generated.head.total_amount.0,
            billing_name: generated.head.billing_name.clone(),
            shipping_name: generated.head.shipping_name.clone(),
            line_items: generated.items.len(),
            payment_method_code: generated.head.payment_method_code,
            shipping_method_id: generated.head.shipping_method_id,
            customer_id: generated.head.customer_id,
            customer_email: generated.head.customer_email.clone(),
        };
        let (json, items) = render(&mut generated, &state);
        StoredOrder {
            created,
            deleted: false,
            day: created.date_naive(),
            state,
            facts,
            json,
            items,
        }
    }

    /// Applies `change`; if it changed anything, bumps `date_modified` and re-renders.
    fn change(&mut self, seed: u64, index: u64, change: impl FnOnce(&mut OrderState)) {
        let mut state = self.state.clone();
        change(&mut state);
        if state.shipping_status == self.state.shipping_status
            && state.shipping_awb == self.state.shipping_awb
            && state.invoice == self.state.invoice
        {
            return;
        }
        // Strictly later than before, so a client comparing `date_modified` sees every change
        // even when two land within the same second.
        state.date_modified =
            shop_now().max(self.state.date_modified + chrono::Duration::seconds(1));
        self.restate(seed, index, state);
    }

    /// Takes `state` as it is and re-renders.
    fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        let mut generated = generate(seed, index, self.created);
        let (json, items) = render(&mut generated, &state);
        self.json = json;
        self.items = items;
        self.state = state;
    }

    /// The order object as a list answer shows it.
    fn list_json(&self, line_items: bool) -> Cow<'_, str> {
        if line_items {
            Cow::Borrowed(&self.json)
        } else {
            let mut s = String::with_capacity(self.json.len() - self.items.len());
            s.push_str(&self.json[..self.items.start]);
            s.push_str(&self.json[self.items.end..]);
            Cow::Owned(s)
        }
    }

    fn field_value(&self, field: Filter) -> Cow<'_, str> {
        match field {
            Filter::ShippingStatus => Cow::Borrowed(&self.state.shipping_status),
            Filter::PaymentStatus => Cow::Borrowed(self.state.payment_status),
            Filter::PaymentMethodCode => Cow::Borrowed(self.facts.payment_method_code),
            Filter::ShippingMethodId => Cow::Owned(self.facts.shipping_method_id.to_string()),
            Filter::ShippingAwb => Cow::Borrowed(self.state.shipping_awb.as_deref().unwrap_or("")),
            Filter::CustomerId => Cow::Owned(self.facts.customer_id.to_string()),
            Filter::CustomerEmail => {
                Cow::Borrowed(self.facts.customer_email.as_deref().unwrap_or(""))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

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
    apply_fault(sim.inner.faults.next(), req, next, error_response).await
}

/// The platform's error body, `{"error":{"name","message"}}`, `name` being the status's reason
/// phrase without spaces (`NotFound`, `BadRequest`, …).
fn error_response(status: StatusCode, message: &str) -> Response {
    let name: String = status
        .canonical_reason()
        .unwrap_or("Error")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let body = json!({ "error": { "name": name, "message": message } });
    json_response(status, body.to_string())
}

/// A refusal, rendered as the platform's error body; small, unlike a `Response`, so validation
/// code can return it in a `Result`.
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

fn order_not_found(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("Order {id} not found"),
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Resource not found")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The query's pairs, decoded, in order; duplicates are refused (which value would win is
/// undocumented, and a client sending one twice has a bug).
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| bad_request("Malformed query string"))?;
    let mut seen = HashSet::new();
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(bad_request(format!("Duplicate query parameter: {key}")));
        }
    }
    Ok(pairs)
}

/// Equality filters of the list endpoint beyond ids and dates.
#[derive(Debug, Clone, Copy)]
enum Filter {
    ShippingStatus,
    PaymentStatus,
    PaymentMethodCode,
    ShippingMethodId,
    ShippingAwb,
    CustomerId,
    CustomerEmail,
}

impl Filter {
    fn from_param(name: &str) -> Option<Self> {
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
const UNSIMULATED_FILTERS: &[&str] = &[
    "payment_substatus_id",
    "payment_transaction_id",
    "shipping_substatus_id",
    "tag_name",
    "tag_ids",
];

#[derive(Debug)]
struct ListQuery {
    start: usize,
    limit: usize,
    line_items: bool,
    fields: Option<Vec<String>>,
    descending: bool,
    created_after: Option<NaiveDate>,
    created_before: Option<NaiveDate>,
    /// From `ids` and `id` together (both must match when both are given).
    ids: Option<Vec<u64>>,
    filters: Vec<(Filter, String)>,
}

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
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
fn parse_day(param: &str, value: &str) -> Result<NaiveDate, ApiError> {
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

fn parse_fields(value: &str) -> Result<Vec<String>, ApiError> {
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
const DOCUMENTED_FIELDS: &[&str] = &[
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
fn push_record(out: &mut String, record: &str, fields: Option<&[String]>, corrupt: bool) {
    let selected;
    let record = match fields {
        Some(fields) => {
            selected = select_fields(record, fields);
            selected.as_str()
        }
        None => record,
    };
    if corrupt {
        // Every record starts with its id (`{"id":12345001,…`), so the id's digits are found
        // without parsing.
        let digits_start = r#"{"id":"#.len();
        let digits_end = record[digits_start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(record.len(), |n| digits_start + n);
        out.push_str(r#"{"id":{"oops":true}"#);
        out.push_str(&record[digits_end..]);
    } else {
        out.push_str(record);
    }
}

fn select_fields(record: &str, fields: &[String]) -> String {
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
async fn list_orders(State(sim): State<MerchantProSim>, req: Request) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
    let uri = req.uri();
    let q = ListQuery::parse(&query_pairs(uri)?)?;

    let shop = sim.read();
    let (orders, listing) = (&shop.orders, &shop.listing);
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
            .filter_map(|i| shop.position_of(i))
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
    let paging = sim
        .inner
        .paging
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
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
        let corrupt_this = corrupt && (n == 1 || (n == 0 && current == 1));
        push_record(&mut body, &record, q.fields.as_deref(), corrupt_this);
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
fn page_links(
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
async fn get_order(
    State(sim): State<MerchantProSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
    let mut fields = None;
    for (key, value) in query_pairs(req.uri())? {
        if key != "fields" {
            return Err(bad_request(format!("Unknown query parameter: {key}")));
        }
        fields = Some(parse_fields(&value)?);
    }
    let shop = sim.read();
    let index = id
        .parse()
        .ok()
        .and_then(|id| shop.index_of(id))
        .ok_or_else(|| order_not_found(&id))?;
    let mut body = String::new();
    push_record(
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
async fn update_order(
    State(sim): State<MerchantProSim>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
    let id_num = id
        .parse::<u64>()
        .ok()
        .filter(|&n| sim.read().index_of(n).is_some())
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
    let mut shop = sim.write();
    let index = shop.index_of(id_num).ok_or_else(|| order_not_found(&id))?;
    let order = &mut shop.orders[index];
    if let Some(awb) = awb {
        order.change(seed, index as u64, |state| state.shipping_awb = awb);
    }
    let mut body = String::new();
    push_record(&mut body, &order.json, None, corrupt);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// `PATCH /api/v2/orders/{id}/{handler}`: the processing handlers.
async fn process_order(
    State(sim): State<MerchantProSim>,
    Path((id, handler)): Path<(String, String)>,
) -> ApiResult {
    let seed = sim.inner.seed;
    let mut shop = sim.write();
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
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("Unknown request handler: {handler}"),
            });
        }
    }
    drop(shop);
    Ok(json_response(StatusCode::OK, r#"{"ok":true}"#))
}

/// The shop's own rules for its processing handlers: forward along
/// awaiting → confirmed → in_process → shipped → delivered (skipping steps is allowed), cancel
/// before shipping, return after shipping; nothing leaves cancelled or returned.
fn shop_allows(from: &str, to: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Data: generation and rendering

/// Money as the shop writes it: a JSON number with at most two decimals and no trailing zeros
/// (`109`, `30.2`, `526.55`). Serialized from the decimal's text, never through `f64`.
#[derive(Debug, Clone, Copy)]
struct Money(Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The net part of a tax-inclusive amount, as the shop rounds it (109 at 19% → 91.60).
fn net_of(gross: Decimal, tax_percent: u32) -> Decimal {
    round2(gross * Decimal::from(100) / Decimal::from(100 + tax_percent))
}

/// The order object's fields up to `line_items`, in the document's order.
#[derive(Serialize)]
struct OrderHead {
    id: u64,
    payment_status: &'static str,
    payment_status_text: &'static str,
    payment_method_code: &'static str,
    payment_method_name: &'static str,
    shipping_status: String,
    shipping_status_text: String,
    shipping_method_id: u32,
    shipping_method_name: Option<&'static str>,
    shipping_awb: Option<String>,
    shipping_amount: Option<Money>,
    shipping_tax_amount: Option<Money>,
    total_amount: Money,
    currency: &'static str,
    customer_id: u64,
    customer_email: Option<String>,
    customer_ip_address: String,
    customer_ip_country: &'static str,
    customer_device: &'static str,
    customer_lang: Option<&'static str>,
    customer_note: Option<&'static str>,
    customer_notification: Option<&'static str>,
    date_created: String,
    date_modified: String,
    created_by: &'static str,
    meta_fields: Option<Value>,
    tags: Option<Vec<Tag>>,
    billing_type: &'static str,
    billing_name: String,
    billing_company_name: Option<String>,
    billing_company_number: Option<String>,
    billing_company_vat: Option<String>,
    billing_company_bank_name: Option<&'static str>,
    billing_company_bank_account: Option<String>,
    billing_country_code: &'static str,
    billing_country_name: &'static str,
    billing_state: &'static str,
    billing_city: &'static str,
    billing_address: String,
    billing_postal_code: String,
    billing_phone: String,
    shipping_name: String,
    shipping_country_code: &'static str,
    shipping_country_name: &'static str,
    shipping_state: &'static str,
    shipping_city: &'static str,
    shipping_address: Option<String>,
    shipping_postal_code: Option<String>,
    shipping_phone: Option<String>,
}

/// The fields after `line_items`.
#[derive(Serialize)]
struct OrderTail {
    invoice: Option<Invoice>,
    info_url: String,
    proforma_url: String,
}

#[derive(Serialize)]
struct Invoice {
    prefix: &'static str,
    number: String,
    app: &'static str,
    cancelled: bool,
    url: String,
}

#[derive(Serialize)]
struct Tag {
    id: u32,
    name: &'static str,
}

#[derive(Serialize)]
struct LineItem {
    item_type: &'static str,
    product_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant_options: Option<[VariantOption; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_sku: Option<&'static str>,
    product_sku: Option<String>,
    product_ean: Option<String>,
    product_name: &'static str,
    product_url: String,
    product_image_url: String,
    product_tax_name: &'static str,
    product_tax_percent: u32,
    category_id: u32,
    category_name: &'static str,
    manufacturer_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    manufacturer_name: Option<&'static str>,
    quantity: u32,
    unit_price_net: Money,
    unit_tax_amount: Money,
    unit_price_gross: Money,
    line_subtotal_net: Money,
    line_tax_amount: Money,
    line_subtotal_gross: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_fields: Option<ItemMeta>,
}

#[derive(Serialize)]
struct VariantOption {
    id: u32,
    name: &'static str,
    value: &'static str,
}

#[derive(Serialize)]
struct ItemMeta {
    prod_id_ref: String,
}

/// One order as generated from `(seed, index)`, before its [`OrderState`] is applied.
struct Generated {
    head: OrderHead,
    items: Vec<LineItem>,
    /// The per-order hash in `info_url`/`proforma_url`/invoice `url`.
    hash: String,
    /// The state the order was generated in (its `date_modified` not yet capped).
    initial: OrderState,
}

/// Renders the order with `state` applied; returns the JSON and where its line items are.
fn render(g: &mut Generated, state: &OrderState) -> (String, Range<usize>) {
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

fn shipping_status_text(status: &str) -> Cow<'static, str> {
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

fn payment_status_text(status: &str) -> &'static str {
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

struct Product {
    id: u32,
    name: &'static str,
    /// `None`: the product has no SKU (`product_sku: null`, no `family_sku`), as in the
    /// document's examples.
    sku: Option<&'static str>,
    category: (u32, &'static str),
    manufacturer: Option<(u32, &'static str)>,
    price_cents: i64,
    tax_percent: u32,
    variants: Variants,
}

#[derive(Clone, Copy)]
enum Variants {
    None,
    Size(&'static [&'static str]),
    Color(&'static [&'static str]),
}

const SHOE_SIZES: &[&str] = &["35", "36", "37", "38", "39", "40", "41"];
const CLOTHES_SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];
const COLORS: &[&str] = &["alb", "negru", "bej", "rosu", "albastru"];

#[rustfmt::skip]
const PRODUCTS: &[Product] = &[
    Product { id: 5087, name: "Pantofi Inko Nude 2", sku: Some("V01 nude pu"), category: (6, "Pantofi"), manufacturer: None, price_cents: 10900, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 5088, name: "Pantofi Gabel Bej 2", sku: Some("JA-1388-C BEIGE 2"), category: (6, "Pantofi"), manufacturer: None, price_cents: 6900, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 259, name: "Giuseppe Zanotti Women's Swarovski Sandal", sku: None, category: (18, "Sandale"), manufacturer: Some((1000050, "Giuseppe-Zanotti")), price_cents: 21899, tax_percent: 19, variants: Variants::None },
    Product { id: 260, name: "Women's Nunaked Dress Sandal", sku: None, category: (18, "Sandale"), manufacturer: Some((1000061, "Joop")), price_cents: 11703, tax_percent: 19, variants: Variants::None },
    Product { id: 53, name: "Floral Laser Suede Dress", sku: None, category: (9, "Rochii"), manufacturer: Some((1000017, "Michael Kors")), price_cents: 89199, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 1958, name: "Massive Menelaus 37511/48/10", sku: Some("3484"), category: (2, "Lustre"), manufacturer: None, price_cents: 36539, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 1960, name: "Aplica perete Eglo Fornes", sku: Some("EG-96221"), category: (3, "Aplice"), manufacturer: Some((1000102, "Eglo")), price_cents: 14990, tax_percent: 19, variants: Variants::None },
    Product { id: 2101, name: "Veioza Philips Hue Go", sku: Some("PH-7602031P7"), category: (4, "Veioze"), manufacturer: Some((1000110, "Philips")), price_cents: 42900, tax_percent: 19, variants: Variants::None },
    Product { id: 3011, name: "Tricou barbati bumbac organic", sku: Some("TB-3011"), category: (12, "Tricouri"), manufacturer: None, price_cents: 4990, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 3012, name: "Hanorac unisex cu gluga", sku: Some("HN-3012"), category: (13, "Hanorace"), manufacturer: None, price_cents: 15900, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 3020, name: "Blugi dama slim fit", sku: Some("LV-3020"), category: (14, "Blugi"), manufacturer: Some((1000033, "Levi's")), price_cents: 34900, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 4100, name: "Amintiri din copilarie - Ion Creanga", sku: Some("978-973-46-1234-5"), category: (21, "Carti"), manufacturer: Some((1000201, "Humanitas")), price_cents: 3020, tax_percent: 5, variants: Variants::None },
    Product { id: 4101, name: "Enigma Otiliei - George Calinescu", sku: Some("978-973-46-5678-1"), category: (21, "Carti"), manufacturer: Some((1000201, "Humanitas")), price_cents: 2990, tax_percent: 5, variants: Variants::None },
    Product { id: 4200, name: "Cafea boabe Arabica 1kg", sku: Some("LV-QR-1000"), category: (22, "Cafea"), manufacturer: Some((1000301, "Lavazza")), price_cents: 8999, tax_percent: 9, variants: Variants::None },
    Product { id: 4201, name: "Ceai verde bio 100g", sku: Some("CV-BIO-100"), category: (23, "Ceai"), manufacturer: None, price_cents: 1850, tax_percent: 9, variants: Variants::None },
    Product { id: 5100, name: "Geanta din piele naturala", sku: Some("GP-5100"), category: (7, "Genti"), manufacturer: None, price_cents: 29900, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5101, name: "Rucsac laptop 15.6 inch", sku: Some("RL-5101"), category: (7, "Genti"), manufacturer: Some((1000120, "Samsonite")), price_cents: 17900, tax_percent: 19, variants: Variants::None },
    Product { id: 5200, name: "Ceas smartwatch Active 2", sku: Some("SW-A2-44"), category: (30, "Ceasuri"), manufacturer: Some((1000130, "Samsung")), price_cents: 79999, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5300, name: "Set lenjerie pat bumbac satinat", sku: Some("LJ-5300"), category: (31, "Lenjerii"), manufacturer: None, price_cents: 18950, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5301, name: "Perna memory foam", sku: Some("PM-5301"), category: (31, "Lenjerii"), manufacturer: None, price_cents: 12000, tax_percent: 19, variants: Variants::None },
    Product { id: 5400, name: "Parfum Eau de Parfum 100ml", sku: Some("EDP-5400"), category: (32, "Parfumuri"), manufacturer: Some((1000140, "Hugo Boss")), price_cents: 45000, tax_percent: 19, variants: Variants::None },
    Product { id: 5500, name: "Sosete bumbac set 5 perechi", sku: Some("SB-5500"), category: (12, "Tricouri"), manufacturer: None, price_cents: 3500, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 5600, name: "Esarfa matase naturala", sku: Some("EM-5600"), category: (33, "Accesorii"), manufacturer: None, price_cents: 9990, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5700, name: "Cana ceramica pictata manual", sku: Some("CC-5700"), category: (34, "Casa"), manufacturer: None, price_cents: 4500, tax_percent: 19, variants: Variants::None },
];

/// (display form, ASCII form for emails).
#[rustfmt::skip]
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Andrei", "andrei"), ("Maria", "maria"), ("Ioana", "ioana"), ("Alexandru", "alexandru"),
    ("Elena", "elena"), ("Mihai", "mihai"), ("Ștefan", "stefan"), ("Mădălina", "madalina"),
    ("Ionuț", "ionut"), ("Cristina", "cristina"), ("Bogdan", "bogdan"), ("Ana", "ana"),
    ("Gabriel", "gabriel"), ("Raluca", "raluca"), ("Vlad", "vlad"), ("Andreea", "andreea"),
    ("Florin", "florin"), ("Simona", "simona"), ("Răzvan", "razvan"), ("Diana", "diana"),
];

#[rustfmt::skip]
const LAST_NAMES: &[(&str, &str)] = &[
    ("Popescu", "popescu"), ("Ionescu", "ionescu"), ("Popa", "popa"), ("Dumitru", "dumitru"),
    ("Stan", "stan"), ("Stoica", "stoica"), ("Gheorghe", "gheorghe"), ("Matei", "matei"),
    ("Ciobanu", "ciobanu"), ("Rusu", "rusu"), ("Munteanu", "munteanu"), ("Constantin", "constantin"),
    ("Răducanu", "raducanu"), ("Țurcanu", "turcanu"), ("Marin", "marin"), ("Lazăr", "lazar"),
];

/// (county, city, postal code prefix).
const PLACES: &[(&str, &str, &str)] = &[
    ("Bucuresti", "Bucuresti", "0"),
    ("Cluj", "Cluj-Napoca", "400"),
    ("Iasi", "Iasi", "700"),
    ("Timis", "Timisoara", "300"),
    ("Constanta", "Constanta", "900"),
    ("Brasov", "Brasov", "500"),
    ("Bacau", "Bacau", "600"),
    ("Prahova", "Ploiesti", "100"),
    ("Dolj", "Craiova", "200"),
    ("Sibiu", "Sibiu", "550"),
];

#[rustfmt::skip]
const STREETS: &[&str] = &[
    "str. Mihai Eminescu", "bd. Unirii", "str. Rose Hill", "calea Victoriei", "str. Republicii",
    "bd. Independentei", "str. Avram Iancu", "str. Lalelelor", "sos. Colentina", "str. Zorilor",
];

const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "yahoo.ro",
    "outlook.com",
    "example.com",
];

/// (code, name, weight).
const PAYMENT_METHODS: &[(u64, (&str, &str))] = &[
    (55, ("cash_delivery", "Plata in sistem ramburs")),
    (25, ("mobilpay", "Plata online cu cardul")),
    (10, ("wire", "Ordin de plata")),
    (5, ("paypal", "PayPal")),
    (5, ("in_store", "Plata la sediu")),
];

/// (id, name, price in cents); id 0 is the document's "no method" case.
const SHIPPING_METHODS: &[(u64, (u32, &str, i64))] = &[
    (30, (3, "Speedy", 1500)),
    (30, (5, "Fan Courier", 1999)),
    (15, (7, "Cargus", 1750)),
    (15, (9, "Sameday easybox", 1290)),
    (5, (11, "Ridicare personala din magazin", 0)),
];

const SHIPPING_STATUSES: &[(u64, &str)] = &[
    (68, "delivered"),
    (7, "shipped"),
    (5, "in_process"),
    (4, "confirmed"),
    (7, "awaiting"),
    (6, "cancelled"),
    (3, "returned"),
];

const CUSTOMER_NOTES: &[&str] = &[
    "Va rog sunati inainte de livrare",
    "Livrare dupa ora 17",
    "Interfon 23",
    "Lasati coletul la receptie",
];

const TAGS: &[(u32, &str)] = &[
    (1, "Feedback excelent"),
    (2, "Client fidel"),
    (3, "Comanda telefonica"),
];

fn generate(seed: u64, index: u64, created: DateTime<FixedOffset>) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let id = FIRST_ID + index;

    let items = generate_items(&mut rng);
    let subtotal: Decimal = items.iter().map(|i| i.line_subtotal_gross.0).sum();

    let &(method_id, method_name, method_cents) = rng.weighted(SHIPPING_METHODS);
    let (shipping_method_id, shipping_method_name, shipping_amount) = if rng.percent(5) {
        (0, None, None)
    } else if subtotal >= Decimal::from(300) {
        (method_id, Some(method_name), Some(Decimal::ZERO))
    } else {
        (method_id, Some(method_name), Some(cents(method_cents)))
    };
    let shipping_tax = shipping_amount.map(|a| a - net_of(a, 19));
    let total = subtotal + shipping_amount.unwrap_or_default();

    let &(payment_code, payment_name) = rng.weighted(PAYMENT_METHODS);
    let shipping_status = *rng.weighted(SHIPPING_STATUSES);
    let paid_upfront = matches!(payment_code, "mobilpay" | "paypal");
    let payment_status = match shipping_status {
        "delivered" => "paid",
        "returned" => "refunded",
        "cancelled" if paid_upfront => "refunded",
        "cancelled" => "canceled",
        "awaiting" if paid_upfront && rng.percent(20) => "failed",
        _ if paid_upfront => "paid",
        _ => "awaiting",
    };
    let minutes =
        |lo: u64, hi: u64, rng: &mut SimRng| chrono::Duration::minutes(rng.between(lo, hi) as i64);
    let modified_after = match shipping_status {
        "awaiting" => chrono::Duration::zero(),
        "confirmed" => minutes(10, 24 * 60, &mut rng),
        "in_process" => minutes(60, 2 * 24 * 60, &mut rng),
        "shipped" => minutes(24 * 60, 3 * 24 * 60, &mut rng),
        "delivered" => minutes(2 * 24 * 60, 6 * 24 * 60, &mut rng),
        "cancelled" => minutes(10, 2 * 24 * 60, &mut rng),
        _ => minutes(7 * 24 * 60, 20 * 24 * 60, &mut rng),
    };
    let has_awb = match shipping_status {
        "shipped" | "delivered" | "returned" => rng.percent(85),
        "in_process" => rng.percent(20),
        _ => false,
    } && shipping_method_id != 11;
    let awb = has_awb.then(|| match shipping_method_id {
        5 => format!("2{}", rng.digits(12)),
        7 => rng.digits(10),
        9 => format!("1ONB{}", rng.digits(9)),
        _ => rng.digits(11),
    });
    let invoice = (shipping_status == "delivered" && rng.percent(60)).then_some(index + 1);

    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let billing_name = format!("{} {}", first.0, last.0);
    let email = (!rng.percent(4)).then(|| {
        format!(
            "{}.{}{}@{}",
            first.1,
            last.1,
            rng.below(100),
            rng.pick(EMAIL_DOMAINS)
        )
    });
    let device = *rng.weighted(&[(45, "desktop"), (50, "mobile"), (5, "manual")]);
    let (ip, ip_country) = if device == "manual" {
        (String::new(), "")
    } else {
        let ip = format!(
            "{}.{}.{}.{}",
            rng.between(2, 223),
            rng.below(256),
            rng.below(256),
            rng.between(1, 254)
        );
        (ip, if rng.percent(5) { "ro" } else { "RO" })
    };

    let place = *rng.pick(PLACES);
    let address = random_address(&mut rng);
    let postal = format!("{}{}", place.2, rng.digits(6 - place.2.len()));
    let phone = format!("07{}", rng.digits(8));
    let company = rng.percent(12);
    let company_fields = company.then(|| {
        (
            format!(
                "SC {} {} SRL",
                last.0,
                rng.pick(&["Impex", "Trading", "Consult", "Design"])
            ),
            format!(
                "J{:02}/{}/{}",
                rng.between(1, 52),
                rng.between(100, 9999),
                rng.between(2005, 2023)
            ),
            format!("RO{}", rng.digits(8)),
            *rng.pick(&["Banca Transilvania", "BCR", "ING Bank", "BRD"]),
            format!("RO{}BTRL{}", rng.digits(2), rng.digits(16)),
        )
    });
    let other_recipient = rng.percent(12);
    let (shipping_name, ship_place, ship_address, ship_postal, ship_phone) = if other_recipient {
        let first = rng.pick(FIRST_NAMES).0;
        let last = rng.pick(LAST_NAMES).0;
        let place = *rng.pick(PLACES);
        let postal = format!("{}{}", place.2, rng.digits(6 - place.2.len()));
        (
            format!("{first} {last}"),
            place,
            random_address(&mut rng),
            postal,
            format!("07{}", rng.digits(8)),
        )
    } else {
        (
            billing_name.clone(),
            place,
            address.clone(),
            postal.clone(),
            phone.clone(),
        )
    };
    // The document's records leave some contact fields empty ("") or null: keep a few.
    let blank_if = |empty: bool, s: String| if empty { String::new() } else { s };
    let null_if = |null: bool, s: String| (!null).then_some(s);

    let head = OrderHead {
        id,
        payment_status,
        payment_status_text: payment_status_text(payment_status),
        payment_method_code: payment_code,
        payment_method_name: payment_name,
        shipping_status: shipping_status.to_owned(),
        shipping_status_text: String::new(),
        shipping_method_id,
        shipping_method_name,
        shipping_awb: awb.clone(),
        shipping_amount: shipping_amount.map(Money),
        shipping_tax_amount: shipping_tax.map(Money),
        total_amount: Money(total),
        currency: "RON",
        customer_id: rng.between(1, 60_000),
        customer_email: email,
        customer_ip_address: ip,
        customer_ip_country: ip_country,
        customer_device: device,
        customer_lang: *rng.weighted(&[(90, Some("ro_RO")), (5, Some("en_US")), (5, None)]),
        customer_note: rng.percent(15).then(|| *rng.pick(CUSTOMER_NOTES)),
        customer_notification: rng.percent(20).then_some(""),
        date_created: format_time(created),
        date_modified: String::new(),
        created_by: if device == "manual" { "account" } else { "customer" },
        meta_fields: rng.percent(20).then(|| {
            json!({ "utm_source": rng.pick(&["google", "facebook", "newsletter"]), "utm_medium": "cpc" })
        }),
        tags: rng.percent(15).then(|| {
            let &(id, name) = rng.pick(TAGS);
            vec![Tag { id, name }]
        }),
        billing_type: if company { "company" } else { "individual" },
        billing_name,
        billing_company_name: company_fields.as_ref().map(|c| c.0.clone()),
        billing_company_number: company_fields.as_ref().map(|c| c.1.clone()),
        billing_company_vat: company_fields.as_ref().map(|c| c.2.clone()),
        billing_company_bank_name: company_fields.as_ref().map(|c| c.3),
        billing_company_bank_account: company_fields.as_ref().map(|c| c.4.clone()),
        billing_country_code: "RO",
        billing_country_name: "România",
        billing_state: place.0,
        billing_city: place.1,
        billing_address: blank_if(rng.percent(3), address),
        billing_postal_code: blank_if(rng.percent(5), postal),
        billing_phone: blank_if(rng.percent(3), phone),
        shipping_name,
        shipping_country_code: "RO",
        shipping_country_name: "România",
        shipping_state: ship_place.0,
        shipping_city: ship_place.1,
        shipping_address: null_if(rng.percent(2), ship_address),
        shipping_postal_code: null_if(rng.percent(3), ship_postal),
        shipping_phone: null_if(rng.percent(2), ship_phone),
    };
    Generated {
        head,
        items,
        hash: rng.hex(32),
        initial: OrderState {
            shipping_status: shipping_status.to_owned(),
            payment_status,
            shipping_awb: awb,
            date_modified: created + modified_after,
            invoice,
        },
    }
}

fn random_address(rng: &mut SimRng) -> String {
    let street = rng.pick(STREETS);
    let number = rng.between(1, 180);
    if rng.percent(40) {
        format!(
            "{street}, nr. {number}, bl. {}{}, sc. {}, ap. {}",
            char::from(b'A' + rng.below(8) as u8),
            rng.between(1, 20),
            rng.between(1, 4),
            rng.between(1, 80)
        )
    } else {
        format!("{street}, nr. {number}")
    }
}

fn generate_items(rng: &mut SimRng) -> Vec<LineItem> {
    // Most shop orders have a single line; this mix also lands on ~2.7 KB per order.
    let count = *rng.weighted(&[(65, 1), (28, 2), (7, 3)]);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count {
        let i = rng.below(PRODUCTS.len() as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
        .into_iter()
        .map(|i| {
            let p = &PRODUCTS[i];
            let quantity = *rng.weighted(&[(75, 1u32), (18, 2), (5, 3), (2, 5)]);
            let gross = cents(p.price_cents);
            let net = net_of(gross, p.tax_percent);
            let q = Decimal::from(quantity);
            let variant = match p.variants {
                Variants::None => None,
                Variants::Size(values) => {
                    Some((rng.below(values.len() as u64), 27884, "Size", values))
                }
                Variants::Color(values) => {
                    Some((rng.below(values.len() as u64), 1, "Culoare", values))
                }
            };
            let variant_value = variant.map(|(i, _, _, values)| values[i as usize]);
            LineItem {
                item_type: "product",
                product_id: p.id,
                variant_id: variant.map(|(i, ..)| 10_000_000 + u64::from(p.id) * 10 + i),
                variant_name: variant
                    .map(|(i, _, name, values)| format!("{name}: {}", values[i as usize])),
                variant_options: variant.map(|(i, option_id, name, values)| {
                    [VariantOption {
                        id: option_id,
                        name,
                        value: values[i as usize],
                    }]
                }),
                family_sku: p.sku.filter(|_| variant.is_some()),
                product_sku: p.sku.map(|sku| match variant_value {
                    Some(v) => format!("{sku} {v}"),
                    None => sku.to_owned(),
                }),
                product_ean: p
                    .id
                    .is_multiple_of(2)
                    .then(|| format!("59{:011}", u64::from(p.id) * 7_654_321 % 100_000_000_000)),
                product_name: p.name,
                product_url: format!("{SHOP_URL}/cumpara?id={}", p.id),
                product_image_url: format!(
                    "https://s.cdnmpro.com/272414248/p/l/{}/{}~{}.jpg",
                    p.id % 10,
                    slug(p.name),
                    p.id
                ),
                product_tax_name: "TVA",
                product_tax_percent: p.tax_percent,
                category_id: p.category.0,
                category_name: p.category.1,
                manufacturer_id: p.manufacturer.map_or(0, |m| m.0),
                manufacturer_name: p.manufacturer.map(|m| m.1),
                quantity,
                unit_price_net: Money(net),
                unit_tax_amount: Money(gross - net),
                unit_price_gross: Money(gross),
                line_subtotal_net: Money(net * q),
                line_tax_amount: Money((gross - net) * q),
                line_subtotal_gross: Money(gross * q),
                meta_fields: p.id.is_multiple_of(3).then(|| ItemMeta {
                    prod_id_ref: format!("7777{:03}", p.id % 1000),
                }),
            }
        })
        .collect()
}

fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Fault, basic_auth_header};

    struct Served {
        sim: MerchantProSim,
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
        let sim = MerchantProSim::new(opts);
        let running = sim.serve().await.expect("sim starts");
        // reqwest is built with `rustls-no-provider`: building any Client panics until a
        // process-wide provider exists, even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().expect("client builds");
        Served { sim, running, http }
    }

    impl Served {
        fn request(
            &self,
            method: reqwest::Method,
            path_and_query: &str,
        ) -> reqwest::RequestBuilder {
            self.http
                .request(
                    method,
                    format!("{}{path_and_query}", self.running.base_url()),
                )
                .header(
                    "Authorization",
                    basic_auth_header("demo-key", "demo-secret"),
                )
        }

        async fn get(&self, path_and_query: &str) -> (u16, Value) {
            let response = self
                .request(reqwest::Method::GET, path_and_query)
                .send()
                .await
                .unwrap();
            read_json(response).await
        }

        async fn patch(&self, path_and_query: &str, body: Option<&str>) -> (u16, Value) {
            let mut request = self.request(reqwest::Method::PATCH, path_and_query);
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_owned());
            }
            read_json(request.send().await.unwrap()).await
        }
    }

    async fn read_json(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "every answer is JSON"
        );
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

    fn dec(raw: &RawValue) -> Decimal {
        Decimal::from_str(raw.get()).unwrap()
    }

    #[tokio::test]
    async fn paging_with_next_returns_every_order_once() {
        let shop = shop(250).await;
        let mut next = Some("/api/v2/orders?include=line_items&sort=date_created".to_owned());
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(link) = next {
            let (status, page) = shop.get(&link).await;
            assert_eq!(status, 200);
            assert_eq!(page["meta"]["count"]["total"], 250);
            assert_eq!(page["meta"]["links"]["current"], link.as_str());
            for order in page["data"].as_array().unwrap() {
                assert!(
                    order["line_items"]
                        .as_array()
                        .is_some_and(|l| !l.is_empty())
                );
            }
            seen.extend(ids_of(&page));
            next = page["meta"]["links"]["next"].as_str().map(str::to_owned);
            pages += 1;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, shop.sim.order_ids());
        let (_, last) = shop
            .get("/api/v2/orders?sort=date_created&start=200&limit=100")
            .await;
        assert_eq!(
            last["meta"]["links"]["prev"],
            "/api/v2/orders?sort=date_created&start=100&limit=100"
        );
        assert!(
            last["data"][0].get("line_items").is_none(),
            "only when included"
        );
    }

    #[tokio::test]
    async fn generated_orders_match_the_document_and_the_truth() {
        let sim = MerchantProSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        let again = MerchantProSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        let truth = sim.truth();
        let shop = sim.read();
        let mut bytes = 0;
        let mut trailing_zero_cents = 0;
        for (stored, truth) in shop.orders.iter().zip(&truth) {
            bytes += stored.json.len();
            let o: BTreeMap<String, &RawValue> = serde_json::from_str(&stored.json).unwrap();
            assert_eq!(o["id"].get(), truth.id.to_string());
            let items: Vec<BTreeMap<String, &RawValue>> =
                serde_json::from_str(o["line_items"].get()).unwrap();
            assert_eq!(items.len(), truth.line_items);
            let shipping = match o["shipping_amount"].get() {
                "null" => Decimal::ZERO,
                _ => dec(o["shipping_amount"]),
            };
            let sum: Decimal = items.iter().map(|i| dec(i["line_subtotal_gross"])).sum();
            assert_eq!(dec(o["total_amount"]), sum + shipping);
            assert_eq!(dec(o["total_amount"]), truth.total_amount);
            let total_text = o["total_amount"].get();
            assert_eq!(total_text, dec(o["total_amount"]).normalize().to_string());
            if !total_text.contains('.') || total_text.split('.').nth(1).unwrap().len() == 1 {
                trailing_zero_cents += 1;
            }
            assert_eq!(
                o["date_created"].get(),
                format!("\"{}\"", truth.date_created)
            );
            assert!(truth.date_created.ends_with("+02:00"));
            assert!(truth.date_modified >= truth.date_created);
        }
        let average = bytes / truth.len();
        assert!(
            (2_500..=2_900).contains(&average),
            "average order is {average} bytes"
        );
        assert!(
            trailing_zero_cents > 20,
            "{trailing_zero_cents} totals like 109 or 30.2"
        );
        let count = |s: &str| truth.iter().filter(|t| t.shipping_status == s).count();
        assert!(count("delivered") > truth.len() / 2);
        for s in [
            "awaiting",
            "confirmed",
            "in_process",
            "shipped",
            "cancelled",
            "returned",
        ] {
            assert!(count(s) > 0, "no {s} order");
        }
        assert!(truth.iter().any(|t| t.shipping_awb.is_some()));
        assert!(
            shop.orders
                .iter()
                .any(|o| o.json.contains(r#""customer_email":null"#))
        );
        assert!(
            shop.orders
                .iter()
                .any(|o| o.json.contains(r#""shipping_amount":null"#))
        );
        assert_eq!(truth, again.truth(), "same seed, same shop");
    }

    #[tokio::test]
    async fn invalid_parameters_are_refused_naming_the_parameter() {
        let shop = shop(3).await;
        for (query, named) in [
            ("limit=101", "limit"),
            ("limit=0", "limit"),
            ("limit=ten", "limit"),
            ("start=-1", "start"),
            ("sort=id", "sort"),
            ("created_after=2025-01-01T00:00:00", "created_after"),
            ("created_before=2025-1-1", "created_before"),
            ("ids=12345001,abc", "ids"),
            ("id=x", "id"),
            ("include=customer", "include"),
            ("fields=id,nope", "fields"),
            ("status=awaiting", "status"),
            ("start=0&start=100", "start"),
        ] {
            let (status, body) = shop.get(&format!("/api/v2/orders?{query}")).await;
            assert_eq!(status, 400, "{query}");
            assert_eq!(body["error"]["name"], "BadRequest", "{query}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{query}: {message}");
        }
        let (status, page) = shop.get("/api/v2/orders?limit=100&start=0").await;
        assert_eq!((status, ids_of(&page).len()), (200, 3));
    }

    #[tokio::test]
    async fn wrong_credentials_get_401_then_403_after_five() {
        let shop = shop(1).await;
        let url = format!("{}/api/v2/orders", shop.running.base_url());
        let wrong = basic_auth_header("demo-key", "wrong");
        let mut statuses = Vec::new();
        for attempt in 0..7 {
            let mut request = shop.http.get(&url);
            if attempt > 0 {
                request = request.header("Authorization", &wrong);
            }
            let (status, body) = read_json(request.send().await.unwrap()).await;
            let name = if status == 401 {
                "Unauthorized"
            } else {
                "Forbidden"
            };
            assert_eq!(body["error"]["name"], name);
            statuses.push(status);
        }
        assert_eq!(statuses, [401, 401, 401, 401, 401, 403, 403]);
        assert_eq!(
            shop.get("/api/v2/orders").await.0,
            200,
            "good credentials still work"
        );
        let log = shop.sim.requests();
        assert_eq!(shop.sim.request_count(), 8);
        assert_eq!(
            log.iter().map(|r| r.status).collect::<Vec<_>>(),
            [401, 401, 401, 401, 401, 403, 403, 200]
        );
        assert!(
            log[1]
                .headers
                .contains(&("authorization".to_owned(), wrong.clone()))
        );
    }

    #[tokio::test]
    async fn created_after_and_before_filter_by_the_shops_day() {
        let shop = shop_with(SimOptions {
            orders: 100,
            spacing: chrono::Duration::hours(1),
            ..SimOptions::default()
        })
        .await;
        let truth = shop.sim.truth();
        let expect = |keep: &dyn Fn(&str) -> bool| -> Vec<u64> {
            truth
                .iter()
                .filter(|t| keep(&t.date_created[..10]))
                .map(|t| t.id)
                .collect()
        };
        // The first order is 2025-01-01T00:00Z, i.e. 02:00 on January 1st in the shop's zone;
        // hour 22 UTC is already January 2nd there.
        let (_, page) = shop.get("/api/v2/orders?created_after=2025-01-02").await;
        assert_eq!(ids_of(&page), expect(&|d| d >= "2025-01-02"));
        assert_eq!(ids_of(&page)[0], FIRST_ID + 22);
        let (_, page) = shop.get("/api/v2/orders?created_before=2025-01-03").await;
        assert_eq!(ids_of(&page), expect(&|d| d < "2025-01-03"));
        let (_, page) = shop
            .get("/api/v2/orders?created_after=2025-01-02&created_before=2025-01-03&sort=date_created.desc")
            .await;
        let mut day_two = expect(&|d| d == "2025-01-02");
        day_two.reverse();
        assert_eq!(ids_of(&page), day_two);
        assert_eq!(page["meta"]["count"]["total"], 24);
    }

    #[tokio::test]
    async fn ids_and_status_filters_return_just_those() {
        let shop = shop(40).await;
        let (_, page) = shop.get("/api/v2/orders?ids=12345003,12345001,99").await;
        assert_eq!(ids_of(&page), [12345001, 12345003]);
        assert_eq!(page["meta"]["count"]["total"], 2);
        let (_, page) = shop
            .get("/api/v2/orders?ids=12345003,12345004&id=12345004")
            .await;
        assert_eq!(ids_of(&page), [12345004]);
        let delivered: Vec<u64> = shop
            .sim
            .truth()
            .iter()
            .filter(|t| t.shipping_status == "delivered")
            .map(|t| t.id)
            .collect();
        let (_, page) = shop
            .get("/api/v2/orders?shipping_status=delivered&limit=100")
            .await;
        assert_eq!(ids_of(&page), delivered);
        let (_, page) = shop
            .get("/api/v2/orders?ids=12345001,12345002,12345003&fields=id,payment_status,total_amount")
            .await;
        let keys: Vec<&String> = page["data"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
    }

    #[tokio::test]
    async fn single_order_and_unknown_routes() {
        let shop = shop(5).await;
        let (status, order) = shop.get("/api/v2/orders/12345002").await;
        assert_eq!(status, 200);
        assert_eq!(order["id"], 12345002);
        assert!(order["line_items"].is_array());
        let (status, body) = shop.get("/api/v2/orders/12345999").await;
        assert_eq!((status, &body["error"]["name"]), (404, &json!("NotFound")));
        assert_eq!(shop.get("/api/v2/orders/abc").await.0, 404);
        assert_eq!(shop.get("/api/v2/products").await.0, 404);
        let (status, order) = shop
            .get("/api/v2/orders/12345002?fields=total_amount")
            .await;
        assert_eq!(status, 200);
        assert_eq!(order.as_object().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn processing_handlers_follow_the_shops_rules() {
        let shop = shop(60).await;
        let first_with = |status: &str| {
            shop.sim
                .truth()
                .into_iter()
                .find(|t| t.shipping_status == status)
                .unwrap()
        };
        let awaiting = first_with("awaiting");
        let path = |handler: &str| format!("/api/v2/orders/{}/{handler}", awaiting.id);
        assert_eq!(
            shop.patch(&path("shipped"), None).await,
            (200, json!({"ok": true}))
        );
        let after = shop
            .sim
            .truth()
            .into_iter()
            .find(|t| t.id == awaiting.id)
            .unwrap();
        assert_eq!(after.shipping_status, "shipped");
        assert!(after.date_modified > awaiting.date_modified);
        let (_, order) = shop.get(&format!("/api/v2/orders/{}", awaiting.id)).await;
        assert_eq!(order["shipping_status_text"], "Comanda expediata");

        let (status, body) = shop.patch(&path("in_process"), None).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["message"],
            "Order status cannot be changed from shipped to in_process"
        );
        assert_eq!(shop.patch(&path("confirmed"), None).await.0, 404);
        assert_eq!(shop.patch("/api/v2/orders/99/shipped", None).await.0, 404);
        assert_eq!(
            shop.patch(&path("shipped"), None).await.0,
            200,
            "no change is fine"
        );

        let cancelled = first_with("cancelled");
        let refused = format!("/api/v2/orders/{}/delivered", cancelled.id);
        assert_eq!(shop.patch(&refused, None).await.0, 400);

        let invoice = path("create_invoice");
        assert_eq!(shop.patch(&invoice, None).await.0, 200);
        let (_, order) = shop.get(&format!("/api/v2/orders/{}", awaiting.id)).await;
        assert_eq!(order["invoice"]["prefix"], "SERIE");
        assert_eq!(order["invoice"]["number"], "1000001");
        assert_eq!(shop.patch(&invoice, None).await.0, 400, "issued once");
    }

    #[tokio::test]
    async fn patch_sets_the_awb_and_validates_the_body() {
        let shop = shop(3).await;
        let (status, order) = shop
            .patch(
                "/api/v2/orders/12345001",
                Some(r#"{"shipping_awb":"2100000000001","shipping_amount":15}"#),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(order["shipping_awb"], "2100000000001");
        assert!(order["line_items"].is_array());
        let truth = &shop.sim.truth()[0];
        assert_eq!(truth.shipping_awb.as_deref(), Some("2100000000001"));
        for (body, want) in [
            ("{not json", 400),
            (r#"{"awb":"1"}"#, 400),
            (r#"{"shipping_awb":12}"#, 400),
            ("[]", 400),
        ] {
            assert_eq!(
                shop.patch("/api/v2/orders/12345001", Some(body)).await.0,
                want,
                "{body}"
            );
        }
        assert_eq!(
            shop.patch("/api/v2/orders/12345009", Some("{}")).await.0,
            404
        );
        let log = shop.sim.requests();
        assert_eq!(log[0].method, "PATCH");
        assert_eq!(log[0].path_and_query, "/api/v2/orders/12345001");
        assert!(log[0].body.contains("2100000000001"));
    }

    #[tokio::test]
    async fn sim_side_changes_show_in_the_api() {
        let shop = shop(2).await;
        shop.sim.set_status(12345001, "confirmed");
        shop.sim.set_awb(12345002, "AWB-7");
        let added = shop.sim.add_orders(2);
        assert_eq!(added, [12345003, 12345004]);
        let (_, page) = shop.get("/api/v2/orders").await;
        assert_eq!(ids_of(&page), [12345001, 12345002, 12345003, 12345004]);
        assert_eq!(page["data"][0]["shipping_status"], "confirmed");
        assert_eq!(
            page["data"][0]["shipping_status_text"],
            "Comanda confirmata"
        );
        assert_eq!(page["data"][1]["shipping_awb"], "AWB-7");
        assert_eq!(page["data"][2]["shipping_status"], "awaiting");
        let truth = shop.sim.truth();
        assert!(truth[3].date_created > truth[2].date_created);
        assert!(truth[2].date_created > truth[1].date_created);
    }

    #[tokio::test]
    async fn error_faults_answer_instead_of_the_shop() {
        let shop = shop(3).await;
        shop.sim.faults().push(Fault::Status(503));
        shop.sim.faults().push(Fault::TooManyRequests {
            retry_after_secs: 7,
        });
        let (status, body) = shop.get("/api/v2/orders").await;
        assert_eq!(
            (status, &body["error"]["name"]),
            (503, &json!("ServiceUnavailable"))
        );
        let response = shop
            .request(reqwest::Method::GET, "/api/v2/orders")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        assert_eq!(
            shop.get("/api/v2/orders").await.0,
            200,
            "one fault per request"
        );

        // Auth comes first, and a refused request leaves the fault for the next one.
        shop.sim.faults().push(Fault::Status(500));
        let unauthenticated = shop
            .http
            .get(format!("{}/api/v2/orders", shop.running.base_url()));
        assert_eq!(unauthenticated.send().await.unwrap().status(), 401);
        assert_eq!(shop.sim.faults().pending(), 1);
        assert_eq!(shop.get("/api/v2/orders").await.0, 500);
    }

    #[tokio::test]
    async fn malformed_faults_break_the_body() {
        let shop = shop(3).await;
        shop.sim.faults().push(Fault::MalformedJson);
        let response = shop
            .request(reqwest::Method::GET, "/api/v2/orders")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

        shop.sim.faults().push_n(Fault::MalformedRecord, 2);
        let (_, page) = shop.get("/api/v2/orders").await;
        assert_eq!(page["data"][0]["id"], 12345001);
        assert_eq!(page["data"][1]["id"], json!({"oops": true}));
        assert_eq!(page["data"][2]["id"], 12345003);
        assert_eq!(
            page["data"][1]["shipping_status"],
            shop.sim.truth()[1].shipping_status
        );
        let (_, page) = shop.get("/api/v2/orders?ids=12345003").await;
        assert_eq!(page["data"][0]["id"], json!({"oops": true}));
    }

    #[tokio::test]
    async fn drop_and_slow_faults() {
        let shop = shop(3).await;
        shop.sim.faults().push(Fault::DropConnection);
        let response = shop
            .request(reqwest::Method::GET, "/api/v2/orders")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.bytes().await.is_err(), "the body is cut off");

        shop.sim
            .faults()
            .push(Fault::Slow(Duration::from_millis(150)));
        let began = Instant::now();
        assert_eq!(shop.get("/api/v2/orders").await.0, 200);
        assert!(began.elapsed() >= Duration::from_millis(150));
        assert_eq!(shop.sim.faults().pending(), 0);
        shop.running.stop().await;
    }
}
