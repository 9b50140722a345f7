//! Simulated Mitrabunso account, as its API document and the records seen in the wild describe
//! it: deterministic order data in the document's shape and quirks (numbers sometimes
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

mod data;
mod render;
mod routes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, FixedOffset, SubsecRound, TimeZone, Utc};
use rust_decimal::Decimal;

use self::data::{Account, OrderState, StoredOrder, born, generate};
use crate::core::Harness;
use crate::core::data::{Locked, Schedule, SimRng, generate_parallel};

/// The largest `limit` the simulator serves (the document names none; see the module doc).
pub const MAX_LIMIT: usize = 100;

/// The statuses `total_summary` shows, in the document's order.
pub const DOCUMENTED_STATUSES: [&str; 4] = ["NEW", "PROCESSED", "SENT", "DRAFT"];

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Salts separating the random streams of one order's parts, birth state and products.
const STATE_SALT: u64 = 0x5EED_57A7_E000_0001;

const PRODUCT_SALT: u64 = 0x5EED_960D_0C70_0002;

/// Asia/Bangkok, the platform's zone; it has no daylight saving.
fn platform_tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

fn platform_now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&platform_tz()).trunc_subsecs(0)
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
    /// `updatedInvoice` when not empty, else `order.invoice` (what the daemon takes as the
    /// order's number).
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
    harness: Harness,
    /// Orders placed after every list page served (0: none).
    inserts_per_page: AtomicUsize,
    account: Locked<Account>,
}

impl MitrabunsoSim {
    crate::core::harness_api!("account");

    /// Generates `opts.orders` orders, deterministically from `opts.seed`.
    ///
    /// # Panics
    /// If `opts.spacing` is negative or `opts.statuses` has no positive weight.
    pub fn new(opts: SimOptions) -> Self {
        assert!(
            opts.statuses.iter().any(|(w, _)| *w > 0),
            "SimOptions::statuses needs a positive weight"
        );
        let n = opts.orders;
        let schedule = Schedule::new(opts.start.with_timezone(&platform_tz()), opts.spacing, n);
        let seed = opts.seed;
        let statuses: Vec<(u64, &str)> = opts
            .statuses
            .iter()
            .map(|(w, s)| (*w, s.as_str()))
            .collect();
        let build = |index: usize| {
            let created = schedule.at(index);
            let mut pick = SimRng::for_record(seed ^ STATE_SALT, index as u64);
            let status = *pick.weighted(&statuses);
            let parts = generate(seed, index as u64, created);
            let state = born(
                seed,
                index as u64,
                &parts,
                status,
                created,
                schedule.snapshot(),
            );
            StoredOrder::new(&parts, created, state)
        };
        let orders = generate_parallel(n, &build);
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
                harness: Harness::default(),
                inserts_per_page: AtomicUsize::new(0),
                account: Locked::new(account),
            }),
        }
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
        let mut account = self.inner.account.write();
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
        let mut account = self.inner.account.write();
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
        let account = self.inner.account.read();
        account
            .live
            .iter()
            .map(|&p| account.orders[p].facts.id.clone())
            .collect()
    }

    /// Every live order, oldest first.
    pub fn truth(&self) -> Vec<TruthOrder> {
        let account = self.inner.account.read();
        account
            .live
            .iter()
            .map(|&p| account.orders[p].truth())
            .collect()
    }

    fn modify(&self, id: &str, change: impl FnOnce(&mut OrderState)) {
        let seed = self.inner.seed;
        let mut account = self.inner.account.write();
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
}
