//! Simulated Novashop shop (API v3, as `docs/platforms/novashop.md` describes it): a platform no
//! built-in kind speaks, for the daemon's declarative (TOML-described) platforms. It owns the
//! deterministic order data, the client-credentials login (`POST /oauth/token`), the bearer-token
//! check, the order list paged by `Link` headers, the single-order read and the state transitions
//! with their rules. Faults, the request log and the server itself are the shared pieces of
//! [`crate::core`].
//!
//! Deliberately unlike the built-in kinds' formats: records nest their money, buyer and shipment
//! in objects, write `updated` as epoch seconds next to an RFC 3339 `created_at`, and write
//! amounts as strings; the list body holds nothing but the records, and the next page is only
//! named by the `Link` response header.
//!
//! Built for volume: every order's JSON is rendered once (again only when it changes), and the
//! listing is an index sorted by `(updated, id)`, so an `updated_since` filter and a page are
//! binary searches and slices.

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{Shop, StoredOrder, generate, new_order};
use crate::core::Harness;
use crate::core::auth::BearerTokens;
use crate::core::data::{Locked, OrderBook, Schedule, generate_parallel};

/// How the simulator names its platform in a panic.
const PLATFORM: &str = "Novashop";

/// Order ids count up from here.
const FIRST_ID: u64 = 5_100_001;

const LOGIN_PATH: &str = "/oauth/token";

const LIST_PATH: &str = "/v3/orders";

const ORDER_PATH: &str = "/v3/orders/{id}";

const TRANSITIONS_PATH: &str = "/v3/orders/{id}/transitions";

/// `per_page` when a list request names none.
const DEFAULT_PER_PAGE: usize = 25;

const MAX_PER_PAGE: usize = 100;

/// `expires_in` of an issued token. Only informative: a token is valid until revoked.
const TOKEN_LIFETIME_SECS: u64 = 3600;

/// The platform's order states, in the order an order normally moves through them.
pub const STATES: [&str; 7] = [
    "pending",
    "paid",
    "packing",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
];

/// The simulator's clock in the platform's unit: epoch seconds.
fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// How a [`NovashopSim`] is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub client_id: String,
    pub client_secret: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// `created_at` of the first generated order (whole seconds are kept).
    pub start: DateTime<Utc>,
    /// Between consecutive generated orders; must not be negative (orders are generated in
    /// creation order).
    pub spacing: chrono::Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            client_id: "novashop-client".to_owned(),
            client_secret: "novashop-secret-7731".to_owned(),
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

/// What a test compares the store against: every field of an order record.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthOrder {
    pub id: u64,
    pub reference: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    /// Epoch seconds.
    pub updated: i64,
    pub currency: String,
    pub total: Decimal,
    pub buyer_name: String,
    pub tracking_number: Option<String>,
    pub lines: Vec<TruthLine>,
}

/// One line of a [`TruthOrder`].
#[derive(Debug, Clone, PartialEq)]
pub struct TruthLine {
    pub line_id: String,
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Decimal,
}

/// A simulated Novashop shop. Cheap to clone; clones share the shop.
#[derive(Clone)]
pub struct NovashopSim {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    client_id: String,
    client_secret: String,
    /// The tokens `POST /oauth/token` handed out.
    tokens: BearerTokens,
    harness: Harness,
    shop: Locked<Shop>,
}

impl NovashopSim {
    crate::core::harness_api!("shop");

    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative.
    pub fn new(opts: SimOptions) -> Self {
        let schedule = Schedule::new(opts.start.trunc_subsecs(0), opts.spacing, opts.orders);
        let seed = opts.seed;
        // Nothing generated was touched after the newest order was placed, as if the shop had
        // been snapshotted at that moment.
        let snapshot = schedule.snapshot().trunc_subsecs(0).timestamp();
        let build = |index: usize| {
            let created = schedule.at(index).trunc_subsecs(0);
            let (facts, mut state) = generate(seed, index as u64, created);
            state.updated = state.updated.min(snapshot.max(created.timestamp()));
            StoredOrder::new(FIRST_ID + index as u64, created, facts, state)
        };
        let orders = OrderBook::new(generate_parallel(opts.orders, &build));
        NovashopSim {
            inner: Arc::new(Inner {
                seed,
                client_id: opts.client_id,
                client_secret: opts.client_secret,
                tokens: BearerTokens::default(),
                harness: Harness::default(),
                shop: Locked::new(Shop::new(orders)),
            }),
        }
    }

    /// Sets the order's `state` as the shop's back office would, bypassing the transition rules,
    /// and bumps `updated` to now. Any string is accepted, so tests can produce states the
    /// document does not list. Not listed in [`Self::transitions`].
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: u64, state: &str) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        shop.change(index, |s| s.state = state.to_owned());
    }

    /// Places `n` new pending orders: each created at the current time, or one second after the
    /// previous order if that is later, and not updated since. Returns their ids.
    pub fn add_orders(&self, n: usize) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.inner.shop.write();
        let placed = shop.place_each(n, |orders, index| {
            let now = Utc::now().trunc_subsecs(0);
            let created = orders
                .newest()
                .map_or(now, |newest| now.max(newest + chrono::Duration::seconds(1)));
            new_order(seed, index, FIRST_ID + index as u64, created)
        });
        placed.into_iter().map(|i| FIRST_ID + i as u64).collect()
    }

    /// Order ids, ascending.
    pub fn order_ids(&self) -> Vec<u64> {
        self.inner.shop.read().orders.live_ids(FIRST_ID)
    }

    /// Every order, id ascending.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.inner.shop.read();
        shop.orders.live_orders().map(|(_, o)| o.truth()).collect()
    }

    /// Every transition the API applied, oldest first, as `(id, to, tracking_number)`: one entry
    /// per state change made through `POST /v3/orders/{id}/transitions`. A repeated transition
    /// (the order already in `to`) changes nothing and is not listed; the request log has every
    /// attempt.
    pub fn transitions(&self) -> Vec<(u64, String, Option<String>)> {
        self.inner.shop.read().transitions.clone()
    }

    /// Every issued token stops working now: the next request with one gets 401 and the client
    /// must log in again.
    pub fn revoke_tokens(&self) {
        self.inner.tokens.revoke_all();
    }

    /// After `requests` more requests authorized by a token, every issued token is revoked
    /// (once): the next such request gets 401, as when a token expires mid-run.
    pub fn revoke_tokens_after(&self, requests: usize) {
        self.inner.tokens.revoke_after(requests);
    }

    /// Successful logins (`POST /oauth/token` answered with a token) so far.
    pub fn logins(&self) -> u64 {
        self.inner.tokens.issued()
    }
}
