//! Simulated MerchantPro shop (Orders API v2, as its API document and the records seen in the wild
//! describe it): deterministic order data, the list / single / update / processing
//! endpoints with the platform's validation and error bodies. Auth, faults, the request log and
//! the server itself are the shared pieces of [`crate::core`].
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

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{OrderState, Shop, StoredOrder, generate};
use self::render::format_time;
use crate::core::Harness;
use crate::core::auth::BasicAuth;
use crate::core::data::{Locked, OrderBook, Schedule, generate_parallel, lock};

/// How the simulator names its platform in a panic.
const PLATFORM: &str = "MerchantPro";

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
    harness: Harness,
    shop: Locked<Shop>,
    paging: Mutex<Paging>,
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
    crate::core::harness_api!("shop");

    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative.
    pub fn new(opts: SimOptions) -> Self {
        let schedule = Schedule::new(
            opts.start.with_timezone(&shop_tz()),
            opts.spacing,
            opts.orders,
        );
        let seed = opts.seed;
        let build = |index: usize| {
            let created = schedule.at(index);
            let generated = generate(seed, index as u64, created);
            let mut state = generated.initial.clone();
            state.date_modified = state.date_modified.min(schedule.snapshot().max(created));
            StoredOrder::from_generated(generated, created, state)
        };
        MerchantProSim {
            inner: Arc::new(Inner {
                seed,
                auth: BasicAuth::new(&opts.api_key, &opts.api_secret, ALLOWED_AUTH_FAILURES),
                harness: Harness::default(),
                shop: Locked::new(Shop {
                    orders: OrderBook::new(generate_parallel(opts.orders, &build)),
                    next_invoice: FIRST_NEW_INVOICE,
                }),
                paging: Mutex::default(),
            }),
        }
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
        self.place(n, "awaiting", |orders, _| {
            let now = shop_now();
            orders
                .newest()
                .map_or(now, |newest| now.max(newest + chrono::Duration::seconds(1)))
        })
    }

    /// Sets `shipping_status` as the back office would, without moving `date_modified`: a
    /// change no filter and no update time shows.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, shipping_status: &str) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        let order = &mut shop.orders[index];
        let mut state = order.state.clone();
        state.shipping_status = shipping_status.to_owned();
        order.restate(self.inner.seed, index as u64, state);
    }

    /// Places `n` confirmed orders created at `created` (one second apart, not modified since),
    /// where the creation-date listing puts them: among the old orders, before any
    /// `created_after` a sync has moved past. Returns their ids.
    pub fn add_backdated_orders(&self, n: usize, created: DateTime<Utc>) -> Vec<u64> {
        let created = created.with_timezone(&shop_tz()).trunc_subsecs(0);
        self.place(n, "confirmed", |_, k| {
            created + chrono::Duration::seconds(k as i64)
        })
    }

    /// Deletes order `id`: it leaves the listing, and reads and updates no longer find it.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: u64) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        shop.orders.delete(index);
    }

    /// Live order ids, ascending.
    pub fn order_ids(&self) -> Vec<u64> {
        self.inner.shop.read().orders.live_ids(FIRST_ID)
    }

    /// Every live order, id ascending.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.inner.shop.read();
        shop.orders
            .live_orders()
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

    /// Makes the list page as `paging` says from the next request on.
    pub fn set_paging(&self, paging: Paging) {
        *lock(&self.inner.paging) = paging;
    }

    /// Places `n` unpaid orders in `shipping_status`, the `k`-th created at `created(orders, k)`,
    /// not modified since; their ids.
    fn place(
        &self,
        n: usize,
        shipping_status: &str,
        created: impl Fn(&OrderBook<StoredOrder>, usize) -> DateTime<FixedOffset>,
    ) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.inner.shop.write();
        let placed = shop.orders.place_each(n, |orders, index, k| {
            let created = created(orders, k);
            let state = OrderState {
                shipping_status: shipping_status.to_owned(),
                payment_status: "awaiting",
                shipping_awb: None,
                date_modified: created,
                invoice: None,
            };
            StoredOrder::from_generated(generate(seed, index as u64, created), created, state)
        });
        placed.into_iter().map(|i| FIRST_ID + i as u64).collect()
    }

    fn modify(&self, id: u64, change: impl FnOnce(&mut OrderState)) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        shop.orders[index].change(self.inner.seed, index as u64, change);
    }
}
