//! Simulated Akinon seller API, as its API document and the records seen in the wild describe it:
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

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{Shop, generate, now_micros};
use crate::core::Harness;
use crate::core::auth::BearerTokens;
use crate::core::data::Locked;
use crate::core::data::SimRng;

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
    harness: Harness,
    /// The tokens `token/obtain` handed out (the configured one is not among them: it is never
    /// revoked).
    tokens: BearerTokens,
    shop: Locked<Shop>,
}

impl AkinonSim {
    crate::core::harness_api!("shop");

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
                harness: Harness::default(),
                tokens: BearerTokens::default(),
                shop: Locked::new(shop),
            }),
        }
    }

    /// Moves order `id` and every one of its items to `status`, as the seller's back office
    /// does, bumping their update times. Any integer is accepted, so tests can produce statuses
    /// the document does not list.
    ///
    /// # Panics
    /// If there is no order `id`.
    pub fn set_status(&self, id: &str, status: u16) {
        let mut shop = self.inner.shop.write();
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
        let mut shop = self.inner.shop.write();
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
        let mut shop = self.inner.shop.write();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let index = shop.orders.len() as u64;
            let now = now_micros();
            let placed = shop
                .orders
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
        let mut shop = self.inner.shop.write();
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
        let mut shop = self.inner.shop.write();
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
        let mut shop = self.inner.shop.write();
        let index = *shop
            .by_id
            .get(id)
            .unwrap_or_else(|| panic!("the Akinon simulator has no order {id}"));
        shop.orders.delete(index);
    }

    /// Live order ids, in placement order.
    pub fn order_ids(&self) -> Vec<String> {
        let shop = self.inner.shop.read();
        shop.orders
            .listing()
            .iter()
            .map(|&i| shop.orders[i].rec.id.clone())
            .collect()
    }

    /// Every live order with its items, in placement order.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let shop = self.inner.shop.read();
        shop.orders
            .listing()
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
        self.inner.tokens.revoke_all();
    }

    /// After `requests` more requests authorized by an obtained token, every obtained token is
    /// revoked (once): the next such request gets 401, as when a token expires mid-run.
    pub fn revoke_tokens_after(&self, requests: usize) {
        self.inner.tokens.revoke_after(requests);
    }

    /// Successful logins (`token/obtain` answers with a token) so far.
    pub fn logins(&self) -> u64 {
        self.inner.tokens.issued()
    }
}
