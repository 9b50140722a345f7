//! Simulated SIRCLO / Connexi partner API, as its API document and the records seen in the wild
//! describe it: deterministic order data, the paged list filtered on the order date, the
//! batched update endpoint (`PATCH /v1/order`), `partner_id` + `MAC` auth checked over the exact
//! bytes received (the update also takes `api_key`/`api_secret`), and the shared fault queue.
//!
//! The data keeps the quirks real records have: the number under `order_number` or
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

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::http::{HeaderMap, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use sha2::Sha256;

use self::data::{OrderState, Shop, StoredOrder, generate};
use crate::core::Harness;
use crate::core::data::{Locked, OrderBook, Schedule, generate_parallel};

/// How the simulator names its platform in a panic.
const PLATFORM: &str = "SIRCLO";

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
    harness: Harness,
    shop: Locked<Shop>,
    /// At most this many orders per page whatever `perpage` asks (a platform-side cap).
    page_cap: std::sync::atomic::AtomicUsize,
}

impl SircloSim {
    crate::core::harness_api!("account");

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
        let schedule = Schedule::new(opts.start.trunc_subsecs(0), opts.spacing, opts.orders);
        let seed = opts.seed;
        let build = |index: usize| {
            let placed = schedule.at(index).trunc_subsecs(0);
            let generated = generate(seed, index as u64, placed);
            let mut state = generated.initial.clone();
            state.updated = state
                .updated
                .min(schedule.snapshot().max(generated.created));
            StoredOrder::from_generated(generated, placed, state)
        };
        SircloSim {
            inner: Arc::new(Inner {
                seed: opts.seed,
                partner_id: opts.partner_id,
                secret: opts.secret,
                api_key: opts.api_key,
                api_secret: opts.api_secret,
                harness: Harness::default(),
                shop: Locked::new(Shop {
                    orders: OrderBook::new(generate_parallel(opts.orders, &build)),
                }),
                page_cap: std::sync::atomic::AtomicUsize::new(usize::MAX),
            }),
        }
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
        self.place(n, "pending", |orders, _| {
            // Never in the future: a list whose `until` is "now" must see an order placed now.
            let now = Utc::now().trunc_subsecs(0);
            orders.newest().map_or(now, |newest| now.max(newest))
        })
    }

    /// Sets `status` as the back office would, without moving `updatedAt`: a change no filter
    /// and no update time shows.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status_quietly(&self, id: u64, platform_status: &str) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        let order = &mut shop.orders[index];
        let mut state = order.state.clone();
        state.status = platform_status.to_owned();
        order.restate(self.inner.seed, index as u64, state);
    }

    /// Places `n` accepted orders dated `placed` (one second apart, last updated when they were
    /// created), where the order-date listing puts them: among the old orders, out of reach of
    /// a sync window that starts after them. Returns their ids.
    pub fn add_backdated_orders(&self, n: usize, placed: DateTime<Utc>) -> Vec<u64> {
        let placed = placed.trunc_subsecs(0);
        self.place(n, "accepted", |_, k| {
            placed + chrono::Duration::seconds(k as i64)
        })
    }

    /// Deletes order `id`: it leaves the listing, and updates no longer find it.
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

    /// Every live order, id ascending (which is also order-date order unless orders were
    /// placed backdated).
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.inner.shop.read();
        shop.orders
            .live_orders()
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

    /// Places `n` orders in `status`, the `k`-th dated `placed(orders, k)` and last updated when
    /// it was created; their ids.
    fn place(
        &self,
        n: usize,
        status: &str,
        placed: impl Fn(&OrderBook<StoredOrder>, usize) -> DateTime<Utc>,
    ) -> Vec<u64> {
        let seed = self.inner.seed;
        let mut shop = self.inner.shop.write();
        let numbers = shop.orders.place_each(n, |orders, index, k| {
            let placed = placed(orders, k);
            let generated = generate(seed, index as u64, placed);
            let state = OrderState {
                status: status.to_owned(),
                airwaybill: None,
                updated: generated.created,
                received_by: None,
                cancel_reason: None,
            };
            StoredOrder::from_generated(generated, placed, state)
        });
        numbers.into_iter().map(|i| FIRST_ID + i as u64).collect()
    }

    fn modify(&self, id: u64, change: impl FnOnce(&mut OrderState)) {
        let mut shop = self.inner.shop.write();
        let index = shop.orders.expect(id, FIRST_ID, PLATFORM);
        shop.orders[index].change(self.inner.seed, index as u64, change);
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
