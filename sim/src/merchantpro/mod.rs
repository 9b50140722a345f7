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

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::middleware::{self};
use axum::routing::{get, patch};
use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{OrderState, Shop, StoredOrder, generate};
use self::render::format_time;
use self::routes::{
    gate, get_order, list_orders, method_not_allowed, not_found, process_order, update_order,
};
use crate::core::auth::BasicAuth;
use crate::core::data::generate_parallel;
use crate::core::faults::Faults;
use crate::core::log::{RecordedRequest, RequestLog, record_requests};
use crate::core::server::{RunningSim, serve};

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
        let orders = generate_parallel(n, &build);
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
        serve(self.router()).await
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
