//! Novashop's order data: the shop's state (the orders, the listing index by `updated`, the
//! transitions applied), what changes on an order, and the deterministic generation of orders
//! from `(seed, index)`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::render::render;
use super::{FIRST_ID, TruthLine, TruthOrder, now_secs};
use crate::core::data::{OrderBook, Placed, SimRng};

pub(super) struct Shop {
    /// By id (the order with id `FIRST_ID + i` is number `i`).
    pub(super) orders: OrderBook<StoredOrder>,
    /// `(updated, number)` of every order, ascending: the list's order, `updated` then id (ids
    /// ascend with numbers). Kept sorted on every change, so a filter and a page are a binary
    /// search and a slice.
    pub(super) by_updated: Vec<(i64, usize)>,
    /// `(id, to, tracking_number as sent)` of every transition the API applied, oldest first.
    pub(super) transitions: Vec<(u64, String, Option<String>)>,
}

pub(super) struct StoredOrder {
    pub(super) id: u64,
    pub(super) created: DateTime<Utc>,
    pub(super) facts: OrderFacts,
    pub(super) state: OrderState,
    /// The record as the API writes it.
    pub(super) json: String,
}

/// What never changes after an order is placed.
pub(super) struct OrderFacts {
    pub(super) reference: String,
    pub(super) currency: &'static str,
    /// The sum of the lines' `quantity × unit_price`.
    pub(super) total: Decimal,
    pub(super) buyer_name: String,
    pub(super) lines: Vec<Line>,
}

pub(super) struct Line {
    pub(super) sku: &'static str,
    pub(super) title: &'static str,
    pub(super) quantity: u32,
    pub(super) unit_price: Decimal,
}

/// What changes on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderState {
    pub(super) state: String,
    pub(super) tracking_number: Option<String>,
    /// Epoch seconds.
    pub(super) updated: i64,
}

impl Placed for StoredOrder {
    type At = DateTime<Utc>;

    fn placed(&self) -> Self::At {
        self.created
    }
}

impl StoredOrder {
    pub(super) fn new(
        id: u64,
        created: DateTime<Utc>,
        facts: OrderFacts,
        state: OrderState,
    ) -> Self {
        let mut order = StoredOrder {
            id,
            created,
            facts,
            state,
            json: String::new(),
        };
        order.json = render(&order);
        order
    }

    pub(super) fn truth(&self) -> TruthOrder {
        TruthOrder {
            id: self.id,
            reference: self.facts.reference.clone(),
            state: self.state.state.clone(),
            created_at: self.created,
            updated: self.state.updated,
            currency: self.facts.currency.to_owned(),
            total: self.facts.total,
            buyer_name: self.facts.buyer_name.clone(),
            tracking_number: self.state.tracking_number.clone(),
            lines: self
                .facts
                .lines
                .iter()
                .enumerate()
                .map(|(k, l)| TruthLine {
                    line_id: line_id(k),
                    sku: l.sku.to_owned(),
                    title: l.title.to_owned(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
        }
    }
}

/// A line's `line_id`: its position, from `L1`.
pub(super) fn line_id(k: usize) -> String {
    format!("L{}", k + 1)
}

impl Shop {
    pub(super) fn new(orders: OrderBook<StoredOrder>) -> Self {
        let mut by_updated: Vec<(i64, usize)> = orders
            .live_orders()
            .map(|(i, o)| (o.state.updated, i))
            .collect();
        by_updated.sort_unstable();
        Shop {
            orders,
            by_updated,
            transitions: Vec::new(),
        }
    }

    /// The number of order `id`.
    pub(super) fn index_of(&self, id: u64) -> Option<usize> {
        self.orders.index_of(id, FIRST_ID)
    }

    /// Where the listing of orders updated at or after `since` begins in [`Self::by_updated`].
    pub(super) fn listing_from(&self, since: i64) -> usize {
        self.by_updated
            .partition_point(|&(updated, _)| updated < since)
    }

    /// Applies `change` to order `index`; if it changed anything, bumps `updated` and re-renders.
    /// Returns whether anything changed.
    pub(super) fn change(&mut self, index: usize, change: impl FnOnce(&mut OrderState)) -> bool {
        let order = &mut self.orders[index];
        let before = order.state.clone();
        let mut state = before.clone();
        change(&mut state);
        if state == before {
            return false;
        }
        // Strictly later than before, so a client comparing `updated` sees every change even
        // when two land within the same second, and never earlier (generated data may lie in the
        // future of the wall clock).
        state.updated = now_secs().max(before.updated + 1);
        order.state = state;
        order.json = render(order);
        let old = (before.updated, index);
        let new = (order.state.updated, index);
        if let Ok(at) = self.by_updated.binary_search(&old) {
            self.by_updated.remove(at);
        }
        let at = self.by_updated.partition_point(|key| *key < new);
        self.by_updated.insert(at, new);
        true
    }

    /// Places `n` orders, the `k`-th built by `make(orders, number)`; their numbers.
    pub(super) fn place_each(
        &mut self,
        n: usize,
        mut make: impl FnMut(&OrderBook<StoredOrder>, usize) -> StoredOrder,
    ) -> Vec<usize> {
        let placed = self
            .orders
            .place_each(n, |orders, index, _| make(orders, index));
        for &index in &placed {
            let key = (self.orders[index].state.updated, index);
            let at = self.by_updated.partition_point(|k| *k < key);
            self.by_updated.insert(at, key);
        }
        placed
    }
}

/// The transitions the API allows (a repeat of the current state aside, which is always a
/// no-op): forward one step along pending → paid → packing → shipped → delivered, cancel before
/// shipping, refund after delivery. Nothing leaves cancelled or refunded.
pub(super) fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("pending", "paid" | "cancelled")
            | ("paid", "packing" | "cancelled")
            | ("packing", "shipped" | "cancelled")
            | ("shipped", "delivered")
            | ("delivered", "refunded")
    )
}

/// A newly placed order: generated lines and buyer, pending, not updated since `created`.
pub(super) fn new_order(seed: u64, index: usize, id: u64, created: DateTime<Utc>) -> StoredOrder {
    let (facts, _) = generate(seed, index as u64, created);
    let state = OrderState {
        state: "pending".to_owned(),
        tracking_number: None,
        updated: created.timestamp(),
    };
    StoredOrder::new(id, created, facts, state)
}

/// (sku, title, unit price in cents).
#[rustfmt::skip]
pub(super) const PRODUCTS: &[(&str, &str, i64)] = &[
    ("NS-LAMP-0142", "Arc floor lamp, brushed brass", 18900),
    ("NS-MUG-0007", "Stoneware mug 350 ml", 1250),
    ("NS-MUG-0008", "Stoneware mug 350 ml, set of 4", 4500),
    ("NS-THR-0311", "Wool throw 130×170, moss green", 8990),
    ("NS-CUSH-0020", "Linen cushion cover 50×50", 2490),
    ("NS-RUG-0404", "Jute rug 160×230", 14900),
    ("NS-VASE-0093", "Hand-blown glass vase", 3975),
    ("NS-CND-0016", "Soy candle, fig & cedar", 1890),
    ("NS-KNF-0502", "Chef's knife 20 cm", 6450),
    ("NS-BRD-0503", "Oak chopping board", 3200),
    ("NS-TWL-0110", "Cotton bath towel, sand", 1999),
    ("NS-SHF-0701", "Floating shelf 80 cm, walnut", 5600),
    ("NS-CLK-0250", "Wall clock, silent movement", 4290),
    ("NS-BSK-0330", "Seagrass basket, large", 2750),
    ("NS-PLT-0090", "Dinner plate, matte white", 995),
    ("NS-GLS-0091", "Tumbler glass, set of 6", 2100),
];

#[rustfmt::skip]
pub(super) const FIRST_NAMES: &[&str] = &[
    "Emma", "Lukas", "Zoë", "Mateo", "Chloé", "Jürgen", "Sofía", "Noah", "Åsa", "Luca",
    "Ingrid", "Tomás", "Amélie", "Finn", "Marta", "Björn", "Elif", "Pieter", "Nora", "Dávid",
];

#[rustfmt::skip]
pub(super) const LAST_NAMES: &[&str] = &[
    "Müller", "García", "Rossi", "Dubois", "Jansen", "Nowak", "Lindqvist", "O'Brien",
    "Kovačević", "Silva", "Schmidt", "Moreau", "Virtanen", "Horváth", "de Vries", "Fernández",
];

pub(super) const STATE_WEIGHTS: &[(u64, &str)] = &[
    (10, "pending"),
    (8, "paid"),
    (6, "packing"),
    (10, "shipped"),
    (55, "delivered"),
    (7, "cancelled"),
    (4, "refunded"),
];

pub(super) const CURRENCIES: &[(u64, &str)] = &[(88, "EUR"), (8, "GBP"), (4, "SEK")];

/// Order `index` as generated: its facts, and the state it is in with `updated` not yet capped
/// at the shop's snapshot.
pub(super) fn generate(seed: u64, index: u64, created: DateTime<Utc>) -> (OrderFacts, OrderState) {
    let mut rng = SimRng::for_record(seed, index);
    let id = FIRST_ID + index;

    let count = *rng.weighted(&[(50, 1usize), (30, 2), (13, 3), (7, 4)]);
    let lines: Vec<Line> = rng
        .distinct(count, PRODUCTS.len())
        .into_iter()
        .map(|p| {
            let (sku, title, cents) = PRODUCTS[p];
            Line {
                sku,
                title,
                quantity: *rng.weighted(&[(70, 1u32), (20, 2), (6, 3), (4, 6)]),
                unit_price: Decimal::new(cents, 2),
            }
        })
        .collect();
    let total = lines
        .iter()
        .map(|l| l.unit_price * Decimal::from(l.quantity))
        .sum();

    let state = *rng.weighted(STATE_WEIGHTS);
    let minutes = |lo: u64, hi: u64, rng: &mut SimRng| 60 * rng.between(lo, hi) as i64;
    let updated_after = match state {
        "pending" => 0,
        "paid" => minutes(1, 120, &mut rng),
        "packing" => minutes(60, 24 * 60, &mut rng),
        "shipped" => minutes(24 * 60, 3 * 24 * 60, &mut rng),
        "delivered" => minutes(2 * 24 * 60, 6 * 24 * 60, &mut rng),
        "cancelled" => minutes(5, 2 * 24 * 60, &mut rng),
        _ => minutes(7 * 24 * 60, 20 * 24 * 60, &mut rng),
    };
    let has_tracking = matches!(state, "shipped" | "delivered" | "refunded") && rng.percent(85);
    let tracking_number = has_tracking.then(|| match rng.below(3) {
        0 => format!("JJD{}", rng.digits(18)),
        1 => format!("1Z{}", rng.hex(16).to_ascii_uppercase()),
        _ => format!("NV{}EU", rng.digits(9)),
    });
    let buyer_name = format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
    let currency = *rng.weighted(CURRENCIES);
    let facts = OrderFacts {
        reference: format!("NS-{id}"),
        currency,
        total,
        buyer_name,
        lines,
    };
    let state = OrderState {
        state: state.to_owned(),
        tracking_number,
        updated: created.timestamp() + updated_after,
    };
    (facts, state)
}
