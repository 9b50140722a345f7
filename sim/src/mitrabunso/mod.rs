//! Simulated Mitrabunso account (`platform-docs/mitrabunso.md` and the Mitrabunso section of
//! `NOTES.md`): deterministic order data in the document's shape and quirks (numbers sometimes
//! written as text, `updatedAWB`/`updatedInvoice` beside `order.awb`/`order.invoice`, zone-less
//! UTC+7 times, nulls and empty strings for missing values), the read endpoints (`list`,
//! `details`, `total_summary`) with strict validation, Bearer auth, the shared fault queue and
//! request log, and a hook that places new orders while a client pages through a listing.
//!
//! The platform has no status-update endpoint; its write endpoints (`create`, `batch_create`,
//! `smartorder/fetch`) and `processed_list` are answered 501 so a client using one learns it is
//! not simulated, and `print_order` (which counts label prints on the real platform) is refused
//! the same way: ordersync must never call it, and the request log shows it if it did.
//!
//! Decisions where the document is silent: listings are newest first (by `createdAt`, the head
//! of a listing is where new orders appear); `limit` is at most [`MAX_LIMIT`]; `status` matches
//! exactly; `q` searches invoices, AWBs, customer name and phone, case-insensitively; a wrong
//! token or a path `id_user` that is not the token's user is 401 `{"message": …}`; a deleted
//! order leaves every listing and its details show `deleted_at`.
//!
//! Built for volume like the MerchantPro simulator: each order's JSON is rendered once (again
//! only when it changes) and pages are concatenated from those strings; per-status position
//! lists make a filtered page an index lookup.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    CorruptOneRecord, Faults, RecordedRequest, RequestLog, RunningSim, SimRng, apply_fault,
    json_response, record_requests,
};

/// The largest `limit` the simulator serves (the document names none; see the module doc).
pub const MAX_LIMIT: usize = 100;
/// The statuses `total_summary` shows, in the document's order.
pub const DOCUMENTED_STATUSES: [&str; 4] = ["NEW", "PROCESSED", "SENT", "DRAFT"];
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Salts separating the random streams of one order's parts, birth state and products.
const STATE_SALT: u64 = 0x5EED_57A7_E000_0001;
const PRODUCT_SALT: u64 = 0x5EED_960D_0C70_0002;

/// Asia/Bangkok, the platform's zone (NOTES); it has no daylight saving.
fn platform_tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

fn platform_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&platform_tz()).trunc_subsecs(0)
}

fn format_time(t: DateTime<FixedOffset>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// How a [`MitrabunsoSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The 36-character account id the paths carry.
    pub user_id: String,
    /// The Bearer token the account accepts.
    pub token: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `createdAt` of the first generated order.
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative.
    pub spacing: chrono::Duration,
    /// `(weight, status)` of generated orders.
    pub statuses: Vec<(u64, String)>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            user_id: "9d1c6f3e-5b2a-4e7d-8c41-2f0a7b3e6d15".to_owned(),
            token: "demo-mitrabunso-token".to_owned(),
            orders: 0,
            seed: 1,
            start: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date"),
            spacing: chrono::Duration::seconds(90),
            // A reseller account is mostly shipped orders with a small open tail
            // (`total_summary` in the document: 18591 SENT against about a hundred open).
            statuses: vec![
                (80, "SENT".to_owned()),
                (8, "PROCESSED".to_owned()),
                (8, "NEW".to_owned()),
                (4, "DRAFT".to_owned()),
            ],
        }
    }
}

/// What a test compares the store against.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthOrder {
    /// `order.order_id`.
    pub id: String,
    /// SPEC: `updatedInvoice` when not empty, else `order.invoice`.
    pub number: String,
    pub status: String,
    /// `order.totalCost`.
    pub total: Decimal,
    /// The platform sends none.
    pub currency: Option<String>,
    pub customer_name: String,
    /// `updatedAWB` when not empty, else `order.awb` when not empty.
    pub tracking_number: Option<String>,
    pub invoice: String,
    pub updated_invoice: Option<String>,
    pub awb: Option<String>,
    pub updated_awb: Option<String>,
    /// As the platform writes them: `YYYY-MM-DD HH:MM:SS`, UTC+7, no zone.
    pub created_at: String,
    pub processed_at: Option<String>,
    pub sent_at: Option<String>,
    pub items: Vec<TruthItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TruthItem {
    pub product_id: String,
    pub name: String,
    pub qty: Decimal,
    pub price: Decimal,
}

/// A simulated Mitrabunso account. Cheap to clone; clones share the account.
#[derive(Clone)]
pub struct MitrabunsoSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    user_id: String,
    bearer: String,
    faults: Faults,
    log: RequestLog,
    /// Orders placed after every list page served (0: none).
    inserts_per_page: AtomicUsize,
    account: RwLock<Account>,
}

struct Account {
    /// In the order they were added (deleted ones stay, out of every listing).
    orders: Vec<StoredOrder>,
    positions: HashMap<String, usize>,
    /// Positions of the live orders, oldest first (by `createdAt`, ties in the order they were
    /// added): ascending positions, unless orders were placed backdated.
    live: Vec<usize>,
    /// Positions of the live orders of each status, ordered as `live`.
    by_status: HashMap<String, Vec<usize>>,
}

struct StoredOrder {
    created: DateTime<FixedOffset>,
    state: OrderState,
    facts: Facts,
    /// The record as the list endpoint shows it.
    json: String,
    /// Where `"<order_id>"` is in `json`, for the malformed-record fault.
    id_at: Range<usize>,
}

/// What changes after birth; the rest is regenerated from `(seed, index)`.
#[derive(Debug, Clone, PartialEq)]
struct OrderState {
    status: String,
    awb: Option<String>,
    updated_awb: Option<String>,
    updated_invoice: Option<String>,
    processed_at: Option<DateTime<FixedOffset>>,
    sent_at: Option<DateTime<FixedOffset>>,
    deleted_at: Option<DateTime<FixedOffset>>,
}

/// Generated values kept for search and [`TruthOrder`], so neither has to parse JSON.
struct Facts {
    id: String,
    invoice: String,
    customer_name: String,
    phone: String,
    total: Decimal,
    items: Vec<TruthItem>,
}

impl MitrabunsoSim {
    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative or `opts.statuses` has no positive weight.
    pub fn new(opts: SimOptions) -> Self {
        assert!(
            opts.spacing >= chrono::Duration::zero(),
            "SimOptions::spacing must not be negative"
        );
        assert!(
            opts.statuses.iter().any(|(w, _)| *w > 0),
            "SimOptions::statuses needs a positive weight"
        );
        let start = opts.start.with_timezone(&platform_tz());
        let n = opts.orders;
        // Nothing generated happened after the newest order was placed, as if the account had
        // been snapshotted at that moment.
        let snapshot = start + opts.spacing * (n.saturating_sub(1) as i32);
        let seed = opts.seed;
        let statuses: Vec<(u64, &str)> = opts
            .statuses
            .iter()
            .map(|(w, s)| (*w, s.as_str()))
            .collect();
        let build = |index: usize| {
            let created = start + opts.spacing * (index as i32);
            let mut pick = SimRng::for_record(seed ^ STATE_SALT, index as u64);
            let status = *pick.weighted(&statuses);
            let parts = generate(seed, index as u64, created);
            let state = born(seed, index as u64, &parts, status, created, snapshot);
            StoredOrder::new(&parts, created, state)
        };
        let orders = super::generate_parallel(n, &build);
        let mut account = Account {
            orders: Vec::with_capacity(n),
            positions: HashMap::with_capacity(n),
            live: Vec::with_capacity(n),
            by_status: HashMap::new(),
        };
        for order in orders {
            account.push(order);
        }
        MitrabunsoSim {
            inner: Arc::new(Inner {
                seed,
                user_id: opts.user_id,
                bearer: format!("Bearer {}", opts.token),
                faults: Faults::default(),
                log: RequestLog::default(),
                inserts_per_page: AtomicUsize::new(0),
                account: RwLock::new(account),
            }),
        }
    }

    /// Binds 127.0.0.1:0 and serves the account until the returned handle is stopped or dropped.
    pub async fn serve(&self) -> std::io::Result<RunningSim> {
        super::serve(self.router()).await
    }

    /// The complete app (routes, auth, faults, request log).
    pub fn router(&self) -> Router {
        Router::new()
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

    /// After every list page served from now on, places `k` new orders at the head of that
    /// listing (in the page's `status`, or `NEW` for an unfiltered page); 0 turns it off. For
    /// tests of paging while the platform's listing moves.
    pub fn insert_after_each_page(&self, k: usize) {
        self.inner.inserts_per_page.store(k, Ordering::SeqCst);
    }

    /// Sets the status as the platform's back office would, stamping `processedAt`/`sentAt` on
    /// the way to `PROCESSED`/`SENT` if not stamped yet. Any string is accepted, so tests can
    /// produce statuses the document does not list.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: &str, status: &str) {
        self.modify(id, |state| {
            let now = platform_now();
            match status {
                "PROCESSED" => {
                    state.processed_at.get_or_insert(now);
                }
                "SENT" => {
                    state.processed_at.get_or_insert(now);
                    state.sent_at.get_or_insert(now);
                }
                _ => {}
            }
            state.status = status.to_owned();
        });
    }

    /// Sets `updatedAWB` (the courier booking changed).
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_updated_awb(&self, id: &str, awb: &str) {
        self.modify(id, |state| state.updated_awb = Some(awb.to_owned()));
    }

    /// Sets `updatedInvoice`.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_updated_invoice(&self, id: &str, invoice: &str) {
        self.modify(id, |state| state.updated_invoice = Some(invoice.to_owned()));
    }

    /// Deletes the order: it leaves every listing; its details show `deleted_at`.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: &str) {
        self.modify(id, |state| {
            state.deleted_at.get_or_insert_with(platform_now);
        });
    }

    /// Places `n` new `NEW` orders; returns their ids.
    pub fn add_orders(&self, n: usize) -> Vec<String> {
        self.add_orders_with_status(n, "NEW")
    }

    /// Places `n` new orders in `status`, each created at the platform's current time or one
    /// second after the newest order if that is later; returns their ids.
    pub fn add_orders_with_status(&self, n: usize, status: &str) -> Vec<String> {
        let seed = self.inner.seed;
        let mut account = self.write();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let index = account.orders.len();
            let now = platform_now();
            let newest = account.live.last().map(|&p| account.orders[p].created);
            let created =
                newest.map_or(now, |newest| now.max(newest + chrono::Duration::seconds(1)));
            let parts = generate(seed, index as u64, created);
            let state = born(seed, index as u64, &parts, status, created, created);
            ids.push(parts.id.clone());
            account.push(StoredOrder::new(&parts, created, state));
        }
        ids
    }

    /// Places `n` orders in `status` created at `created` (one second apart), where a listing
    /// by creation date puts them: deep in the list among the old orders, past where a scan
    /// that stops at known orders looks. Returns their ids.
    pub fn add_backdated_orders(
        &self,
        n: usize,
        created: DateTime<Utc>,
        status: &str,
    ) -> Vec<String> {
        let seed = self.inner.seed;
        let mut account = self.write();
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let index = account.orders.len();
            let created = created.with_timezone(&platform_tz()).trunc_subsecs(0)
                + chrono::Duration::seconds(k as i64);
            let parts = generate(seed, index as u64, created);
            let state = born(seed, index as u64, &parts, status, created, created);
            ids.push(parts.id.clone());
            account.push(StoredOrder::new(&parts, created, state));
        }
        ids
    }

    /// Live order ids, oldest first.
    pub fn order_ids(&self) -> Vec<String> {
        let account = self.read();
        account
            .live
            .iter()
            .map(|&p| account.orders[p].facts.id.clone())
            .collect()
    }

    /// Every live order, oldest first.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let account = self.read();
        account
            .live
            .iter()
            .map(|&p| account.orders[p].truth())
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

    fn read(&self) -> RwLockReadGuard<'_, Account> {
        // Every write replaces whole values, so a poisoned lock still guards a consistent account.
        self.inner.account.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Account> {
        self.inner
            .account
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn modify(&self, id: &str, change: impl FnOnce(&mut OrderState)) {
        let seed = self.inner.seed;
        let mut account = self.write();
        let index = *account
            .positions
            .get(id)
            .unwrap_or_else(|| panic!("the Mitrabunso simulator has no order {id}"));
        let order = &mut account.orders[index];
        let mut state = order.state.clone();
        change(&mut state);
        if state == order.state {
            return;
        }
        let was_listed = (order.state.deleted_at.is_none()).then(|| order.state.status.clone());
        let parts = generate(seed, index as u64, order.created);
        *order = StoredOrder::new(&parts, order.created, state);
        let now_listed = (order.state.deleted_at.is_none()).then(|| order.state.status.clone());
        if was_listed != now_listed {
            account.relist(index, was_listed.as_deref(), now_listed.as_deref());
        }
    }

    /// 401 unless the path's `id_user` is the token's user.
    fn check_user(&self, id_user: &str) -> Result<(), ApiError> {
        if id_user == self.inner.user_id {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthenticated."))
        }
    }
}

/// Where order `p` belongs in a listing of `orders`' positions ordered by creation.
fn listing_slot(orders: &[StoredOrder], list: &[usize], p: usize) -> Result<usize, usize> {
    let key = (orders[p].created, p);
    list.binary_search_by(|&q| (orders[q].created, q).cmp(&key))
}

fn list_insert(orders: &[StoredOrder], list: &mut Vec<usize>, p: usize) {
    if let Err(i) = listing_slot(orders, list, p) {
        list.insert(i, p);
    }
}

fn list_remove(orders: &[StoredOrder], list: &mut Vec<usize>, p: usize) {
    if let Ok(i) = listing_slot(orders, list, p) {
        list.remove(i);
    }
}

impl Account {
    fn push(&mut self, order: StoredOrder) {
        let p = self.orders.len();
        self.positions.insert(order.facts.id.clone(), p);
        let status = order
            .state
            .deleted_at
            .is_none()
            .then(|| order.state.status.clone());
        self.orders.push(order);
        if let Some(status) = status {
            list_insert(&self.orders, &mut self.live, p);
            list_insert(&self.orders, self.by_status.entry(status).or_default(), p);
        }
    }

    /// Moves order `p` between listings (`None`: deleted) after a status change or deletion.
    fn relist(&mut self, p: usize, from: Option<&str>, to: Option<&str>) {
        if let Some(from) = from
            && let Some(list) = self.by_status.get_mut(from)
        {
            list_remove(&self.orders, list, p);
        }
        match to {
            Some(to) => {
                list_insert(
                    &self.orders,
                    self.by_status.entry(to.to_owned()).or_default(),
                    p,
                );
                list_insert(&self.orders, &mut self.live, p);
            }
            None => list_remove(&self.orders, &mut self.live, p),
        }
    }
}

impl StoredOrder {
    fn new(parts: &Parts, created: DateTime<FixedOffset>, state: OrderState) -> Self {
        let (json, id_at) = render(parts, &state, created);
        StoredOrder {
            created,
            facts: Facts {
                id: parts.id.clone(),
                invoice: parts.invoice.clone(),
                customer_name: parts.customer.name.clone(),
                phone: parts.customer.phone.clone(),
                total: parts.total,
                items: parts.items.clone(),
            },
            state,
            json,
            id_at,
        }
    }

    fn truth(&self) -> TruthOrder {
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let s = &self.state;
        TruthOrder {
            id: self.facts.id.clone(),
            number: nonempty(&s.updated_invoice).unwrap_or_else(|| self.facts.invoice.clone()),
            status: s.status.clone(),
            total: self.facts.total,
            currency: None,
            customer_name: self.facts.customer_name.clone(),
            tracking_number: nonempty(&s.updated_awb).or_else(|| nonempty(&s.awb)),
            invoice: self.facts.invoice.clone(),
            updated_invoice: s.updated_invoice.clone(),
            awb: s.awb.clone(),
            updated_awb: s.updated_awb.clone(),
            created_at: format_time(self.created),
            processed_at: s.processed_at.map(format_time),
            sent_at: s.sent_at.map(format_time),
            items: self.facts.items.clone(),
        }
    }

    fn matches(&self, needle: &str) -> bool {
        let f = &self.facts;
        let s = &self.state;
        [
            Some(f.invoice.as_str()),
            s.updated_invoice.as_deref(),
            s.awb.as_deref(),
            s.updated_awb.as_deref(),
            Some(f.customer_name.as_str()),
            Some(f.phone.as_str()),
        ]
        .into_iter()
        .flatten()
        .any(|v| v.to_lowercase().contains(needle))
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

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
    apply_fault(sim.inner.faults.next(), req, next, error_response).await
}

/// The platform's answers carry `message`; errors are that alone.
fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "message": message }).to_string())
}

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Route not found")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

async fn not_simulated(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        &format!("{} is documented but not simulated", uri.path()),
    )
}

async fn print_order() -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "print_order counts label prints on the real platform: ordersync must never call it",
    )
}

/// The query's pairs, decoded; a parameter given twice is refused (which one wins is
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

/// A path integer: digits only, as a PHP route constraint `[0-9]+` would take it.
fn path_int(name: &str, value: &str, min: usize, max: usize) -> Result<usize, ApiError> {
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
async fn list_orders(
    State(sim): State<MitrabunsoSim>,
    Path((id_user, offsite, limit)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult {
    let corrupt = req.extensions().get::<CorruptOneRecord>().is_some();
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

    let account = sim.read();
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
        if corrupt && (n == 1 || (n == 0 && shown == 1)) {
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
async fn order_details(
    State(sim): State<MitrabunsoSim>,
    Path((id_user, id_order)): Path<(String, String)>,
) -> ApiResult {
    sim.check_user(&id_user)?;
    let account = sim.read();
    let index = *account
        .positions
        .get(&id_order)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Data not found"))?;
    let order = &account.orders[index];
    let parts = generate(sim.inner.seed, index as u64, order.created);
    let body = render_details(&parts, &order.state, order.created);
    drop(account);
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /public/order/orders/total_summary/{id_user}`: live orders per status.
async fn total_summary(State(sim): State<MitrabunsoSim>, Path(id_user): Path<String>) -> ApiResult {
    sim.check_user(&id_user)?;
    let account = sim.read();
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

// ---------------------------------------------------------------------------------------------
// Data: generation and rendering

/// A JSON number, or the same digits as a string, as the platform mixes them.
fn number(n: Decimal, as_text: bool) -> Value {
    let text = n.normalize().to_string();
    if as_text {
        Value::String(text)
    } else {
        serde_json::from_str(&text).expect("a decimal's text is a JSON number")
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Customer {
    name: String,
    phone: String,
    address: String,
    province_code: Option<&'static str>,
    province_name: &'static str,
    city_code: Option<&'static str>,
    city_name: &'static str,
    district_code: Option<&'static str>,
    district_name: &'static str,
    post_code: Option<&'static str>,
}

#[derive(Serialize, Clone)]
struct Sender {
    name: &'static str,
    phone: &'static str,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Detail {
    product_id: String,
    qty: Value,
    product_price: Value,
    total_price: Value,
    product_name: &'static str,
}

/// The `order` object; `awb` comes from the state.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderPart<'a> {
    invoice: &'a str,
    courier_id: &'static str,
    courier_name: &'static str,
    shipping_cost: &'a Value,
    shop_id: &'static str,
    shop_name: &'static str,
    awb: Option<&'a str>,
    admin_note: Option<&'a str>,
    customer_note: Option<&'a str>,
    total_cost: &'a Value,
    label_image: Option<()>,
    print_type: &'static str,
    assign: Option<()>,
    #[serde(rename = "order_id")]
    order_id: &'a str,
}

#[derive(Serialize)]
struct ListRecord<'a> {
    customer: &'a Customer,
    sender: &'a Sender,
    order: OrderPart<'a>,
    details: &'a [Detail],
    #[serde(rename = "updatedAWB")]
    updated_awb: Option<&'a str>,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "processedAt")]
    processed_at: Option<String>,
    #[serde(rename = "sentAt")]
    sent_at: Option<String>,
    status: &'a str,
    #[serde(rename = "updatedInvoice")]
    updated_invoice: Option<&'a str>,
}

/// One order's generated content, independent of its status.
struct Parts {
    id: String,
    customer: Customer,
    customer_id: String,
    sender: Sender,
    sender_id: String,
    invoice: String,
    courier: &'static Courier,
    shop: &'static ShopInfo,
    shipping_cost: Value,
    admin_note: Option<String>,
    customer_note: Option<String>,
    total: Decimal,
    total_cost: Value,
    details: Vec<Detail>,
    /// The `detailsId` of each line, which only the details endpoint shows.
    details_ids: Vec<String>,
    items: Vec<TruthItem>,
}

impl Parts {
    fn order_part<'a>(&'a self, awb: Option<&'a str>) -> OrderPart<'a> {
        OrderPart {
            invoice: &self.invoice,
            courier_id: self.courier.id,
            courier_name: self.courier.name,
            shipping_cost: &self.shipping_cost,
            shop_id: self.shop.id,
            shop_name: self.shop.name,
            awb,
            admin_note: self.admin_note.as_deref(),
            customer_note: self.customer_note.as_deref(),
            total_cost: &self.total_cost,
            label_image: None,
            print_type: "2",
            assign: None,
            order_id: &self.id,
        }
    }
}

/// The list record and where its order id is.
fn render(
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
fn render_details(parts: &Parts, state: &OrderState, created: DateTime<FixedOffset>) -> String {
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

fn uuid(rng: &mut SimRng) -> String {
    let variant = *rng.pick(&['8', '9', 'a', 'b']);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.hex(3),
        rng.hex(12)
    )
}

struct Courier {
    id: &'static str,
    name: &'static str,
    /// AWB prefix and digit count.
    awb: (&'static str, usize),
}

const COURIERS: &[(u64, Courier)] = &[
    (
        30,
        Courier {
            id: "a9727718-2ab9-4a90-8b94-d2ca8ded9b8a",
            name: "JNE(OKE)",
            awb: ("TJE", 13),
        },
    ),
    (
        25,
        Courier {
            id: "17cd69d0-0c3d-4886-9c93-7977000bade1",
            name: "JNT Reguler",
            awb: ("JP", 10),
        },
    ),
    (
        15,
        Courier {
            id: "1ce46391-c1d1-4dc9-bcad-8d7a8140714c",
            name: "Lion Parcel",
            awb: ("11", 11),
        },
    ),
    (
        15,
        Courier {
            id: "4b0c2f61-7c2e-4d6a-9b51-0e8f3c9d2a47",
            name: "SiCepat REG",
            awb: ("00", 10),
        },
    ),
    (
        10,
        Courier {
            id: "e2f7a3d9-5c41-4b8e-a6f0-3d9c1b7e5a22",
            name: "AnterAja",
            awb: ("10", 13),
        },
    ),
    (
        5,
        Courier {
            id: "66e7219a-2fc3-40b1-b795-baaccd9d894c",
            name: "GoSendInstant Courier",
            awb: ("GK-", 10),
        },
    ),
];

struct ShopInfo {
    id: &'static str,
    name: &'static str,
}

const SHOPS: &[ShopInfo] = &[
    ShopInfo {
        id: "22ba9428-a4d2-4c44-ba35-417c6878f16a",
        name: "Ebar Kennedy",
    },
    ShopInfo {
        id: "02badb7c-a3ff-4e64-97f7-a3b82044dd83",
        name: "ALTHASHOP",
    },
    ShopInfo {
        id: "06d48eba-b46c-439f-b82a-212456a97f2f",
        name: "CESING HOKI",
    },
    ShopInfo {
        id: "13d15650-d87a-4fa3-9fd3-19435a73c752",
        name: "Tokopedia Hoolo",
    },
];

const SENDERS: &[(&str, &str)] = &[
    ("Ebar Kennedy", "6282165077777"),
    ("ALTHACELL.COM", "628382888888"),
    ("Cesing Hoki", "6282389877777"),
    ("Hoolo", "6285375777777"),
];

/// (name, price in rupiah).
const PRODUCTS: &[(&str, i64)] = &[
    ("Silicone Cover Iphone XR Pink (Phone Case)", 70_000),
    (
        "Silicone Cover Samsung Note 10 plus Pink (Phone Case)",
        30_000,
    ),
    ("Silicone Cover Samsung S9 Abu-abu (Phone Case)", 10_000),
    ("DOUBLE GLASS Magnetic Samsung S10 Plus Silver ", 105_000),
    (
        "Samsung Galaxy A53 5G GKK Armor 360 Full Protective Slim Back Matte Cover Case Casing",
        50_000,
    ),
    ("Tempered Glass Full Cover Oppo A5s", 15_000),
    ("Kabel Data Type-C Fast Charging 1m", 25_000),
    ("Charger Adaptor 18W Quick Charge 3.0", 85_000),
    ("Earphone Bluetooth TWS i12 Putih", 65_000),
    ("Ring Holder Magnetic Hitam", 12_500),
    ("Powerbank 10000mAh Slim", 145_000),
    ("Softcase Bening Anti Crack Xiaomi Redmi Note 11", 17_500),
];

const FIRST_NAMES: &[&str] = &[
    "Luthfi", "Deasy", "Basry", "Siti", "Dewi", "Agus", "Budi", "Rina", "Wahyu", "Putri", "Fajar",
    "Indah", "Rizky", "Ayu", "Hendra", "Nur", "Yusuf", "Ratna", "Eko", "Lestari",
];

const LAST_NAMES: &[&str] = &[
    "Santoso",
    "Wijaya",
    "Saputra",
    "Hidayat",
    "Kusuma",
    "Pratama",
    "Nugroho",
    "Siregar",
    "Halim",
    "Rahmawati",
    "Setiawan",
    "Purnomo",
];

/// (province code, province, city code, city, district code, district, post code).
type Place = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const PLACES: &[Place] = &[
    (
        "PR009",
        "Jawa Barat",
        "C072",
        "Kab. Karawang",
        "D0722",
        "Tirtamulya",
        "41372",
    ),
    (
        "PR003",
        "Banten",
        "C021",
        "Kota Tangerang",
        "D0226",
        "Ciledug",
        "15153",
    ),
    (
        "PR002",
        "Bangka Belitung",
        "C011",
        "Kab. Bangka Barat",
        "D0060",
        "Tempilang",
        "33365",
    ),
    (
        "PR006",
        "DKI Jakarta",
        "C051",
        "Kota Jakarta Selatan",
        "D0512",
        "Kebayoran Baru",
        "12110",
    ),
    (
        "PR011",
        "Jawa Timur",
        "C101",
        "Kota Surabaya",
        "D1015",
        "Wonokromo",
        "60243",
    ),
    (
        "PR010",
        "Jawa Tengah",
        "C093",
        "Kota Semarang",
        "D0931",
        "Tembalang",
        "50275",
    ),
];

const STREETS: &[&str] = &[
    "Jl. Raya Barat",
    "Jl. Mahkota V blok C2",
    "Perum Bumi Telukjambe Jl. Baladewa Blok U",
    "Jl. Kenanga",
    "Jl. Merdeka",
    "Gg. Bintang",
    "Jl. Diponegoro",
];

const ADMIN_NOTES: &[&str] = &[
    "PEMBELI BUTUH CEPAT",
    "Bonus stiker",
    "Cek warna sebelum kirim",
];
const CUSTOMER_NOTES: &[&str] = &["Warna HITAM FULL", "Tolong packing aman", "Kirim sore"];

fn generate(seed: u64, index: u64, created: DateTime<FixedOffset>) -> Parts {
    let mut rng = SimRng::for_record(seed, index);
    let id = uuid(&mut rng);
    let invoice = if rng.percent(70) {
        format!("INV{}MPL{}", created.format("%Y%m%d"), rng.digits(10))
    } else {
        format!("ANDI{}{}", created.format("%Y%m%d%H%M%S"), rng.digits(2))
    };

    let name = if rng.percent(30) {
        (*rng.pick(FIRST_NAMES)).to_owned()
    } else {
        format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
    };
    let phone_digits = rng.between(9, 10) as usize;
    let phone = format!("628{}", rng.digits(phone_digits));
    let place = *rng.pick(PLACES);
    let street = format!(
        "{} no {}, RT.0{}/RW.0{}",
        rng.pick(STREETS),
        rng.between(1, 300),
        rng.between(1, 9),
        rng.between(1, 9)
    );
    // Half the document's records carry the region only inside the address text, with codes
    // null and names empty.
    let customer = if rng.percent(45) {
        Customer {
            name,
            phone,
            address: format!(
                "{street}, {}, {}.\r\n{} {}",
                place.5, place.3, place.5, place.6
            ),
            province_code: None,
            province_name: "",
            city_code: None,
            city_name: "",
            district_code: None,
            district_name: "",
            post_code: None,
        }
    } else {
        Customer {
            name,
            phone,
            address: street,
            province_code: Some(place.0),
            province_name: place.1,
            city_code: Some(place.2),
            city_name: place.3,
            district_code: Some(place.4),
            district_name: place.5,
            post_code: Some(place.6),
        }
    };
    let shop_index = rng.below(SHOPS.len() as u64) as usize;
    let (sender_name, sender_phone) = SENDERS[shop_index];

    let lines = *rng.weighted(&[(70, 1usize), (22, 2), (8, 3)]);
    let mut chosen: Vec<usize> = Vec::with_capacity(lines);
    while chosen.len() < lines {
        let p = rng.below(PRODUCTS.len() as u64) as usize;
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    let mut details = Vec::with_capacity(lines);
    let mut items = Vec::with_capacity(lines);
    let mut total = Decimal::ZERO;
    for p in chosen {
        let (product_name, price) = PRODUCTS[p];
        let qty = Decimal::from(*rng.weighted(&[(80, 1i64), (15, 2), (5, 3)]));
        let price = Decimal::from(price);
        let product_id = uuid(&mut SimRng::for_record(PRODUCT_SALT, p as u64));
        details.push(Detail {
            product_id: product_id.clone(),
            qty: number(qty, rng.percent(25)),
            product_price: number(price, rng.percent(15)),
            total_price: number(price * qty, rng.percent(10)),
            product_name,
        });
        items.push(TruthItem {
            product_id,
            name: product_name.to_owned(),
            qty,
            price,
        });
        total += price * qty;
    }
    let shipping = Decimal::from(*rng.weighted(&[
        (60, 0i64),
        (10, 9_000),
        (15, 10_000),
        (10, 12_000),
        (5, 51_000),
    ]));
    Parts {
        id,
        customer,
        customer_id: uuid(&mut rng),
        sender: Sender {
            name: sender_name,
            phone: sender_phone,
        },
        sender_id: uuid(&mut rng),
        invoice,
        courier: rng.weighted(COURIERS),
        shop: &SHOPS[shop_index],
        // The document writes it as text every time; NOTES says sometimes.
        shipping_cost: number(shipping, rng.percent(85)),
        admin_note: match rng.below(10) {
            0..=5 => None,
            6 => Some(String::new()),
            _ => Some((*rng.pick(ADMIN_NOTES)).to_owned()),
        },
        customer_note: match rng.below(10) {
            0..=4 => Some(String::new()),
            5..=7 => None,
            _ => Some((*rng.pick(CUSTOMER_NOTES)).to_owned()),
        },
        total,
        total_cost: number(total, rng.percent(10)),
        details_ids: (0..details.len()).map(|_| uuid(&mut rng)).collect(),
        details,
        items,
    }
}

/// The state an order is generated in: AWBs, an updated invoice, and the lifecycle stamps its
/// status implies (never after `snapshot`).
fn born(
    seed: u64,
    index: u64,
    parts: &Parts,
    status: &str,
    created: DateTime<FixedOffset>,
    snapshot: DateTime<FixedOffset>,
) -> OrderState {
    let mut rng = SimRng::for_record(seed ^ STATE_SALT ^ 0xB0A7, index);
    let (prefix, digits) = parts.courier.awb;
    let new_awb = |rng: &mut SimRng| format!("{prefix}{}", rng.digits(digits));
    // Marketplace orders often arrive with their AWB booked already.
    let awb_percent = match status {
        "DRAFT" => 30,
        "NEW" => 50,
        "PROCESSED" => 70,
        _ => 90,
    };
    let awb = rng.percent(awb_percent).then(|| new_awb(&mut rng));
    let updated_awb = match &awb {
        Some(a) => match rng.below(100) {
            0..=69 => Some(a.clone()),
            70..=84 => Some(new_awb(&mut rng)),
            _ => None,
        },
        None if matches!(status, "PROCESSED" | "SENT") && rng.percent(60) => {
            Some(new_awb(&mut rng))
        }
        None => None,
    };
    let updated_invoice = match rng.below(100) {
        0..=49 => Some(format!(
            "{}{}",
            &parts.invoice[..parts.invoice.len() - 4],
            rng.digits(6)
        )),
        50..=74 => Some(parts.invoice.clone()),
        75..=89 => Some(String::new()),
        _ => None,
    };
    let hours = |rng: &mut SimRng, lo, hi| chrono::Duration::hours(rng.between(lo, hi) as i64);
    let latest = snapshot.max(created);
    let processed_at = matches!(status, "PROCESSED" | "SENT")
        .then(|| (created + hours(&mut rng, 1, 48)).min(latest));
    let sent_at = processed_at
        .filter(|_| status == "SENT")
        .map(|p| (p + hours(&mut rng, 1, 24)).min(latest));
    OrderState {
        status: status.to_owned(),
        awb,
        updated_awb,
        updated_invoice,
        processed_at,
        sent_at,
        deleted_at: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Fault;

    struct Served {
        sim: MitrabunsoSim,
        running: RunningSim,
        http: reqwest::Client,
        user: String,
    }

    async fn account(orders: usize) -> Served {
        account_with(SimOptions {
            orders,
            ..SimOptions::default()
        })
        .await
    }

    async fn account_with(opts: SimOptions) -> Served {
        let user = opts.user_id.clone();
        let sim = MitrabunsoSim::new(opts);
        let running = sim.serve().await.expect("sim starts");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().expect("client builds");
        Served {
            sim,
            running,
            http,
            user,
        }
    }

    impl Served {
        fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
            self.http
                .request(method, format!("{}{path}", self.running.base_url()))
                .header("Authorization", "Bearer demo-mitrabunso-token")
        }

        async fn get(&self, path: &str) -> (u16, Value) {
            read_json(
                self.request(reqwest::Method::GET, path)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }

        fn list(&self, offset: usize, limit: usize, query: &str) -> String {
            format!(
                "/public/order/orders/list/{}/{offset}/{limit}{query}",
                self.user
            )
        }
    }

    async fn read_json(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], "application/json");
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }

    fn ids_of(page: &Value) -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order"]["order_id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn dec(v: &Value) -> Decimal {
        match v {
            Value::String(s) => Decimal::from_str(s).unwrap(),
            other => Decimal::from_str(&other.to_string()).unwrap(),
        }
    }

    #[tokio::test]
    async fn offset_pages_list_every_order_once_newest_first() {
        let shop = account(250).await;
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let (status, page) = shop.get(&shop.list(offset, 100, "")).await;
            assert_eq!(status, 200);
            assert_eq!(page["message"], "Data retrieved successfully");
            assert_eq!(page["total"], 250);
            let ids = ids_of(&page);
            assert_eq!(page["show"], ids.len());
            if ids.is_empty() {
                break;
            }
            offset += ids.len();
            seen.extend(ids);
        }
        let mut newest_first = shop.sim.order_ids();
        newest_first.reverse();
        assert_eq!(seen, newest_first);
    }

    #[tokio::test]
    async fn generated_records_have_the_documents_shape_and_quirks() {
        let sim = MitrabunsoSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        let truth = sim.truth();
        let account = sim.read();
        let mut quirks = BTreeMap::<&str, usize>::new();
        for (stored, t) in account.orders.iter().zip(&truth) {
            let r: Value = serde_json::from_str(&stored.json).unwrap();
            let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
            for k in [
                "customer",
                "sender",
                "order",
                "details",
                "updatedAWB",
                "createdAt",
                "processedAt",
                "sentAt",
                "status",
                "updatedInvoice",
            ] {
                assert!(keys.contains(&k), "{k} missing");
            }
            assert_eq!(r["order"]["order_id"], t.id.as_str());
            assert_eq!(t.id.len(), 36);
            assert_eq!(r["status"], t.status.as_str());
            assert_eq!(dec(&r["order"]["totalCost"]), t.total);
            let details = r["details"].as_array().unwrap();
            assert_eq!(details.len(), t.items.len());
            let sum: Decimal = details.iter().map(|d| dec(&d["totalPrice"])).sum();
            assert_eq!(sum, t.total, "totalCost is the sum of the lines");
            for d in details {
                assert_eq!(
                    dec(&d["productPrice"]) * dec(&d["qty"]),
                    dec(&d["totalPrice"])
                );
                if d["qty"].is_string() {
                    *quirks.entry("qty as text").or_default() += 1;
                }
            }
            if r["order"]["shippingCost"].is_string() {
                *quirks.entry("shippingCost as text").or_default() += 1;
            }
            if r["order"]["totalCost"].is_string() {
                *quirks.entry("totalCost as text").or_default() += 1;
            }
            if t.updated_invoice
                .as_deref()
                .is_some_and(|u| !u.is_empty() && u != t.invoice)
            {
                *quirks.entry("updatedInvoice differs").or_default() += 1;
            }
            if matches!(t.updated_invoice.as_deref(), None | Some("")) {
                *quirks.entry("updatedInvoice empty").or_default() += 1;
            }
            if t.updated_awb.is_some() && t.updated_awb != t.awb {
                *quirks.entry("updatedAWB differs").or_default() += 1;
            }
            if r["customer"]["provinceCode"].is_null() {
                *quirks.entry("provinceCode null").or_default() += 1;
            }
            let created = r["createdAt"].as_str().unwrap();
            assert_eq!(created.len(), 19, "{created}");
            assert_eq!(created, t.created_at);
            match t.status.as_str() {
                "SENT" => assert!(t.sent_at.is_some() && t.processed_at.is_some()),
                "PROCESSED" => assert!(t.sent_at.is_none() && t.processed_at.is_some()),
                _ => assert!(t.sent_at.is_none() && t.processed_at.is_none()),
            }
        }
        for quirk in [
            "qty as text",
            "shippingCost as text",
            "totalCost as text",
            "updatedInvoice differs",
            "updatedInvoice empty",
            "updatedAWB differs",
            "provinceCode null",
        ] {
            assert!(
                quirks.get(quirk).is_some_and(|n| *n > 20),
                "{quirk}: {quirks:?}"
            );
        }
        for s in DOCUMENTED_STATUSES {
            assert!(truth.iter().filter(|t| t.status == s).count() > 20, "{s}");
        }
        drop(account);
        let again = MitrabunsoSim::new(SimOptions {
            orders: 2_000,
            ..SimOptions::default()
        });
        assert_eq!(truth, again.truth(), "same seed, same account");
    }

    #[tokio::test]
    async fn invalid_requests_are_refused_naming_what_is_wrong() {
        let shop = account(3).await;
        for (path, named) in [
            (shop.list(0, 101, ""), "limit"),
            (shop.list(0, 0, ""), "limit"),
            (
                format!("/public/order/orders/list/{}/0/ten", shop.user),
                "limit",
            ),
            (
                format!("/public/order/orders/list/{}/-1/10", shop.user),
                "offsite",
            ),
            (
                format!("/public/order/orders/list/{}/1.5/10", shop.user),
                "offsite",
            ),
            (shop.list(0, 10, "?status="), "status"),
            (shop.list(0, 10, "?sort=createdAt"), "sort"),
            (shop.list(0, 10, "?status=NEW&status=SENT"), "status"),
        ] {
            let (status, body) = shop.get(&path).await;
            assert_eq!(status, 400, "{path}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains(named), "{path}: {message}");
        }
        assert_eq!(
            shop.get("/public/order/orders/list/x/0/10").await.0,
            401,
            "another user"
        );
        assert_eq!(
            shop.get(&format!("/public/order/orders/list/{}/0", shop.user))
                .await
                .0,
            404
        );
        let (status, page) = shop.get(&shop.list(0, 100, "")).await;
        assert_eq!((status, ids_of(&page).len()), (200, 3));
    }

    #[tokio::test]
    async fn the_token_is_checked_before_anything_else() {
        let shop = account(1).await;
        let url = format!("{}{}", shop.running.base_url(), shop.list(0, 10, ""));
        shop.sim.faults().push(Fault::Status(500));
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic demo-mitrabunso-token"),
        ] {
            let mut req = shop.http.get(&url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let (status, body) = read_json(req.send().await.unwrap()).await;
            assert_eq!(
                (status, &body["message"]),
                (401, &json!("Unauthenticated."))
            );
        }
        assert_eq!(
            shop.sim.faults().pending(),
            1,
            "refused requests leave the fault queued"
        );
        assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 500);
        assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 200);
        let statuses: Vec<u16> = shop.sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [401, 401, 401, 500, 200]);
    }

    #[tokio::test]
    async fn status_and_search_filter_the_listing() {
        let shop = account(300).await;
        let truth = shop.sim.truth();
        for s in DOCUMENTED_STATUSES {
            let mut want: Vec<String> = truth
                .iter()
                .filter(|t| t.status == s)
                .map(|t| t.id.clone())
                .rev()
                .collect();
            let (_, page) = shop.get(&shop.list(0, 100, &format!("?status={s}"))).await;
            assert_eq!(page["total"], want.len());
            want.truncate(100);
            assert_eq!(ids_of(&page), want, "{s}");
        }
        let (_, page) = shop.get(&shop.list(0, 10, "?status=new")).await;
        assert_eq!(page["total"], 0, "statuses match exactly");
        let target = &truth[17];
        let (_, page) = shop
            .get(&shop.list(0, 10, &format!("?q={}", target.invoice.to_lowercase())))
            .await;
        assert!(ids_of(&page).contains(&target.id));
        let (_, summary) = shop
            .get(&format!("/public/order/orders/total_summary/{}", shop.user))
            .await;
        let sent = truth.iter().filter(|t| t.status == "SENT").count();
        assert_eq!(summary["data"]["SENT"], sent);
    }

    #[tokio::test]
    async fn account_changes_show_in_the_api_and_details_follow_deletions() {
        let shop = account_with(SimOptions {
            orders: 3,
            statuses: vec![(1, "NEW".to_owned())],
            ..SimOptions::default()
        })
        .await;
        let ids = shop.sim.order_ids();
        shop.sim.set_status(&ids[0], "SENT");
        let (_, sent) = shop.get(&shop.list(0, 10, "?status=SENT")).await;
        let (_, new) = shop.get(&shop.list(0, 10, "?status=NEW")).await;
        assert_eq!(ids_of(&sent), [ids[0].clone()]);
        assert_eq!(ids_of(&new), [ids[2].clone(), ids[1].clone()]);
        shop.sim.set_updated_awb(&ids[1], "JP0000000001");
        shop.sim.set_updated_invoice(&ids[1], "INV-NEW-1");
        let added = shop.sim.add_orders(2);
        let (_, page) = shop.get(&shop.list(0, 10, "")).await;
        assert_eq!(
            ids_of(&page)[..2],
            [added[1].clone(), added[0].clone()],
            "newest first"
        );
        let rec = |id: &str| {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["order"]["order_id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(rec(&ids[0])["status"], "SENT");
        assert!(rec(&ids[0])["sentAt"].is_string());
        assert_eq!(rec(&ids[1])["updatedAWB"], "JP0000000001");
        assert_eq!(rec(&added[0])["status"], "NEW");
        let truth = shop.sim.truth();
        assert_eq!(truth[1].number, "INV-NEW-1");
        assert_eq!(truth[1].tracking_number.as_deref(), Some("JP0000000001"));

        let details = format!("/public/order/orders/details/{}/{}", shop.user, ids[2]);
        let (status, body) = shop.get(&details).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["order"][0]["id"], ids[2].as_str());
        assert!(body["data"]["order"][0]["deleted_at"].is_null());
        assert!(body["data"]["order"][0]["order_first_state"].is_string());
        shop.sim.delete_order(&ids[2]);
        let (_, body) = shop.get(&details).await;
        assert!(body["data"]["order"][0]["deleted_at"].is_string());
        let (_, page) = shop.get(&shop.list(0, 10, "")).await;
        assert!(!ids_of(&page).contains(&ids[2]));
        assert_eq!(page["total"], 4);
        let (status, _) = shop
            .get(&format!("/public/order/orders/details/{}/nope", shop.user))
            .await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn the_insert_hook_places_orders_at_the_head_of_the_listing_served() {
        let shop = account_with(SimOptions {
            orders: 30,
            statuses: vec![(1, "PROCESSED".to_owned())],
            ..SimOptions::default()
        })
        .await;
        shop.sim.insert_after_each_page(3);
        let (_, first) = shop.get(&shop.list(0, 10, "?status=PROCESSED")).await;
        let (_, second) = shop.get(&shop.list(10, 10, "?status=PROCESSED")).await;
        assert_eq!(
            (first["total"].as_u64(), second["total"].as_u64()),
            (Some(30), Some(33))
        );
        // The three placed after the first page pushed its last three onto the second.
        assert_eq!(ids_of(&first)[7..], ids_of(&second)[..3]);
        shop.sim.insert_after_each_page(0);
        assert_eq!(shop.sim.truth().len(), 36);
    }

    #[tokio::test]
    async fn unsimulated_and_forbidden_endpoints_say_so_and_are_logged() {
        let shop = account(1).await;
        let print = format!(
            "/public/order/orders/print_order/{}/2022-09-02%2016:11:21/1",
            shop.user
        );
        let (status, body) = read_json(
            shop.request(reqwest::Method::POST, &print)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 501);
        assert!(body["message"].as_str().unwrap().contains("never"));
        let create = format!("/public/order/orders/create/{}", shop.user);
        let response = shop
            .request(reqwest::Method::POST, &create)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 501);
        assert_eq!(shop.get(&create).await.0, 405);
        assert_eq!(shop.get("/public/order/orders/nothing").await.0, 404);
        assert!(
            shop.sim.requests()[0]
                .path_and_query
                .contains("print_order")
        );
    }

    #[tokio::test]
    async fn faults_break_the_answer_as_asked() {
        let shop = account(3).await;
        shop.sim.faults().push(Fault::TooManyRequests {
            retry_after_secs: 7,
        });
        let response = shop
            .request(reqwest::Method::GET, &shop.list(0, 10, ""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");

        shop.sim.faults().push(Fault::MalformedRecord);
        let (_, page) = shop.get(&shop.list(0, 10, "")).await;
        let data = page["data"].as_array().unwrap();
        assert_eq!(data[1]["order"]["order_id"], json!({"oops": true}));
        assert!(
            data[0]["order"]["order_id"].is_string() && data[2]["order"]["order_id"].is_string()
        );

        shop.sim.faults().push(Fault::MalformedJson);
        let text = shop
            .request(reqwest::Method::GET, &shop.list(0, 10, ""))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err());

        shop.sim.faults().push(Fault::DropConnection);
        let response = shop
            .request(reqwest::Method::GET, &shop.list(0, 10, ""))
            .send()
            .await
            .unwrap();
        assert!(response.bytes().await.is_err(), "the body is cut off");

        shop.sim
            .faults()
            .push(Fault::Slow(Duration::from_millis(150)));
        let began = Instant::now();
        assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 200);
        assert!(began.elapsed() >= Duration::from_millis(150));
    }
}
