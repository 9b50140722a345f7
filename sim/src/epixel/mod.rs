//! Simulated Epixel MLM commerce API, as its API document and the records seen in the wild
//! describe it: deterministic order data, the list and order-details endpoints with the
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

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{OrderState, Shop, StoredOrder, generate};
use self::render::format_time;
use crate::core::Harness;
use crate::core::auth::BearerTokens;
use crate::core::data::{Locked, OrderBook, Schedule, generate_parallel};

/// How the simulator names its platform in a panic.
const PLATFORM: &str = "Epixel";

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
    harness: Harness,
    tokens: BearerTokens,
    login_attempts: AtomicUsize,
    shop: Locked<Shop>,
}

impl EpixelSim {
    crate::core::harness_api!("store");

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
            let g = generate(seed, index as u64);
            let state = OrderState {
                status: g.status.to_owned(),
                modified: (created + g.modified_after).min(schedule.snapshot().max(created)),
            };
            StoredOrder::new(g, created, state)
        };
        let prefix = format!("/{}", opts.api_prefix.trim_matches('/'));
        EpixelSim {
            inner: Arc::new(Inner {
                seed,
                api_key: opts.api_key,
                username: opts.username,
                password: opts.password,
                prefix: if prefix == "/" { String::new() } else { prefix },
                harness: Harness::default(),
                tokens: BearerTokens::new([opts.token]),
                login_attempts: AtomicUsize::new(0),
                shop: Locked::new(OrderBook::new(generate_parallel(opts.orders, &build))),
            }),
        }
    }

    /// Sets an order's status text as the back office would (any text, so tests can produce
    /// statuses the daemon does not know); its lines take the same status, and `modified`
    /// moves. Setting the status it already has changes nothing.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: u64, status: &str) {
        let mut shop = self.inner.shop.write();
        let index = shop.expect(id, FIRST_ID, PLATFORM);
        shop[index].change(self.inner.seed, index as u64, status);
    }

    /// Places `n` new orders (`Pending`) after the newest one, each created at the sim's current
    /// time or one second after the previous order if that is later. Returns their ids.
    pub fn add_orders(&self, n: usize) -> Vec<u64> {
        self.place(n, Some("Pending"), |shop, _| {
            let now = shop_now();
            shop.newest()
                .map_or(now, |newest| now.max(newest + chrono::Duration::seconds(1)))
        })
    }

    /// Sets an order's status text (its lines' too) without moving `modified`, as a back
    /// office writing the database directly would.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, status: &str) {
        let mut shop = self.inner.shop.write();
        let index = shop.expect(id, FIRST_ID, PLATFORM);
        let order = &mut shop[index];
        let state = OrderState {
            status: status.to_owned(),
            modified: order.state.modified,
        };
        order.restate(self.inner.seed, index as u64, state);
    }

    /// Places `n` orders created at `created` (one second apart, not modified since), where
    /// the creation-ordered listing puts them: deep in the list, among the old orders. Returns
    /// their ids.
    pub fn add_backdated_orders(&self, n: usize, created: DateTime<Utc>) -> Vec<u64> {
        let created = created.with_timezone(&shop_tz()).trunc_subsecs(6);
        self.place(n, None, |_, k| {
            created + chrono::Duration::seconds(k as i64)
        })
    }

    /// Deletes order `id`: it leaves the list, and its details are refused as for an unknown
    /// order number.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn delete_order(&self, id: u64) {
        let mut shop = self.inner.shop.write();
        let index = shop.expect(id, FIRST_ID, PLATFORM);
        shop.delete(index);
    }

    /// Every live order id, ascending.
    pub fn order_ids(&self) -> Vec<u64> {
        self.inner.shop.read().live_ids(FIRST_ID)
    }

    /// Every live order, id ascending.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.inner.shop.read();
        shop.live_orders()
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
        self.inner.tokens.revoke_all();
    }

    /// Revokes every token once `n` more authenticated requests have been served: the
    /// `n + 1`-th is refused (a token expiring mid-sync).
    pub fn revoke_tokens_after(&self, n: usize) {
        self.inner.tokens.revoke_after(n);
    }

    /// Calls of the login endpoint, accepted or not.
    pub fn login_attempts(&self) -> usize {
        self.inner.login_attempts.load(Ordering::SeqCst)
    }

    /// Places `n` orders, the `k`-th created at `created(shop, k)` and not modified since, in
    /// `status` or else their generated one; their ids.
    fn place(
        &self,
        n: usize,
        status: Option<&str>,
        created: impl Fn(&Shop, usize) -> DateTime<FixedOffset>,
    ) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.inner.shop.write();
        let numbers = shop.place_each(n, |shop, index, k| {
            let created = created(shop, k);
            let g = generate(seed, index as u64);
            let state = OrderState {
                status: status.unwrap_or(g.status).to_owned(),
                modified: created,
            };
            StoredOrder::new(g, created, state)
        });
        numbers.into_iter().map(|i| FIRST_ID + i as u64).collect()
    }
}

fn number_of(index: u64) -> u64 {
    FIRST_NUMBER + NUMBER_STEP * index
}

fn item_id(index: u64, line: u64) -> u64 {
    FIRST_ITEM_ID + 10 * index + line
}
