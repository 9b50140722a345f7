//! Epixel's order data: the shop's state, what changes on an order, and the deterministic
//! generation of orders from `(seed, index)`.

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::render::render;
use super::{FIRST_NUMBER, NUMBER_STEP, shop_now};
use crate::core::data::{OrderBook, Placed, SimRng};

/// By id (the order with id `FIRST_ID + i` is number `i`), listed in creation order and read
/// from the listing's end.
pub(super) type Shop = OrderBook<StoredOrder>;

pub(super) struct StoredOrder {
    pub(super) created: DateTime<FixedOffset>,
    pub(super) state: OrderState,
    pub(super) facts: Facts,
    /// The list record.
    pub(super) json: String,
    /// The details' `data` list.
    pub(super) details: String,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone)]
pub(super) struct OrderState {
    pub(super) status: String,
    pub(super) modified: DateTime<FixedOffset>,
}

/// Generated values kept for filters and [`TruthOrder`], so neither has to parse JSON.
pub(super) struct Facts {
    pub(super) total: Decimal,
    pub(super) currency: Option<&'static str>,
    pub(super) customer_name: Option<String>,
    pub(super) lines: usize,
    pub(super) order_type: &'static str,
}

impl Shop {
    /// The number of live order `number`.
    pub(super) fn index_of_number(&self, number: u64) -> Option<usize> {
        let offset = number.checked_sub(FIRST_NUMBER)?;
        if !offset.is_multiple_of(NUMBER_STEP) {
            return None;
        }
        self.live(usize::try_from(offset / NUMBER_STEP).ok()?)
    }
}

impl Placed for StoredOrder {
    type At = DateTime<FixedOffset>;

    fn placed(&self) -> Self::At {
        self.created
    }
}

impl StoredOrder {
    pub(super) fn new(g: Generated, created: DateTime<FixedOffset>, state: OrderState) -> Self {
        let facts = Facts {
            total: g.total,
            currency: g.currency.map(|c| c.0),
            customer_name: g.customer_name.clone(),
            lines: g.lines.len(),
            order_type: g.order_type,
        };
        let (json, details) = render(&g, created, &state);
        StoredOrder {
            created,
            state,
            facts,
            json,
            details,
        }
    }

    pub(super) fn change(&mut self, seed: u64, index: u64, status: &str) {
        if self.state.status == status {
            return;
        }
        // Strictly later than before, so a client comparing `modified` sees every change even
        // when two land within the same microsecond.
        let modified = shop_now().max(self.state.modified + chrono::Duration::microseconds(1));
        self.restate(
            seed,
            index,
            OrderState {
                status: status.to_owned(),
                modified,
            },
        );
    }

    /// Takes `state` as it is and re-renders.
    pub(super) fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        self.state = state;
        let g = generate(seed, index);
        (self.json, self.details) = render(&g, self.created, &self.state);
    }
}

pub(super) fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

/// One order as generated from `(seed, index)`, before its [`OrderState`] is applied.
pub(super) struct Generated {
    pub(super) index: u64,
    pub(super) uid: String,
    pub(super) order_type: &'static str,
    /// (code, symbol).
    pub(super) currency: Option<(&'static str, &'static str)>,
    pub(super) total: Decimal,
    pub(super) data: Value,
    pub(super) customer_name: Option<String>,
    pub(super) shipping_id: Option<u64>,
    pub(super) billing_id: Option<u64>,
    pub(super) lines: Vec<Line>,
    pub(super) status: &'static str,
    pub(super) modified_after: chrono::Duration,
}

pub(super) struct Line {
    pub(super) product: &'static Product,
    pub(super) quantity: u32,
}

pub(super) struct Product {
    pub(super) id: u32,
    pub(super) name: &'static str,
    pub(super) sku: &'static str,
    pub(super) price_cents: i64,
    /// (product_type, product_type_code).
    pub(super) kind: (&'static str, &'static str),
    pub(super) bundle: Option<u32>,
}

pub(super) const PACKAGE: (&str, &str) = ("Package", "package");

pub(super) const GOODS: (&str, &str) = ("Product", "product");

pub(super) const PRODUCTS: &[Product] = &[
    Product {
        id: 46363,
        name: "Starter Package",
        sku: "PKG-STARTER",
        price_cents: 9900,
        kind: PACKAGE,
        bundle: None,
    },
    Product {
        id: 46364,
        name: "Business Package",
        sku: "PKG-BUSINESS",
        price_cents: 29900,
        kind: PACKAGE,
        bundle: None,
    },
    Product {
        id: 46365,
        name: "Premium Package",
        sku: "PKG-PREMIUM",
        price_cents: 59900,
        kind: PACKAGE,
        bundle: Some(12),
    },
    Product {
        id: 51001,
        name: "Green Tea Detox 250g",
        sku: "WL-GTD-250",
        price_cents: 2450,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51002,
        name: "Protein Shake Vanilla 1kg",
        sku: "WL-PSV-1000",
        price_cents: 4990,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51003,
        name: "Omega-3 Capsules x90",
        sku: "WL-OM3-90",
        price_cents: 1875,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51004,
        name: "Aloe Vera Gel 500ml",
        sku: "BC-AVG-500",
        price_cents: 1599,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51005,
        name: "Herbal Toothpaste",
        sku: "BC-HTP-150",
        price_cents: 499,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51006,
        name: "Vitamin C Effervescent x20",
        sku: "WL-VCE-20",
        price_cents: 875,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51007,
        name: "Collagen Beauty Drink",
        sku: "BC-CBD-30",
        price_cents: 6500,
        kind: GOODS,
        bundle: Some(7),
    },
    Product {
        id: 51008,
        name: "Ayurvedic Hair Oil 200ml",
        sku: "BC-AHO-200",
        price_cents: 1225,
        kind: GOODS,
        bundle: None,
    },
    Product {
        id: 51009,
        name: "Coffee Ganoderma x30",
        sku: "WL-CGN-30",
        price_cents: 3300,
        kind: GOODS,
        bundle: None,
    },
];

/// What the back office writes, by weight; a few spelled in lower case, and one text no
/// built-in table knows (`Refund Requested`).
pub(super) const STATUSES: &[(u64, &str)] = &[
    (40, "Completed"),
    (6, "completed"),
    (12, "Delivered"),
    (8, "Shipped"),
    (7, "Processing"),
    (5, "Confirmed"),
    (7, "Pending"),
    (2, "On Hold"),
    (8, "Cancelled"),
    (5, "Refund Requested"),
];

pub(super) const CURRENCIES: &[(u64, Option<(&str, &str)>)] = &[
    (72, Some(("USD", "$"))),
    (22, Some(("INR", "₹"))),
    (3, Some(("AED", "AED"))),
    (3, None),
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Asha", "Rahul", "Priya", "Vikram", "Meera", "Arjun", "Fatima", "John", "Grace", "Ahmed",
    "Lakshmi", "Joseph", "Anjali", "Suresh", "Maria", "Noor",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Nair",
    "Menon",
    "Sharma",
    "Pillai",
    "Khan",
    "Thomas",
    "Iyer",
    "Das",
    "Varghese",
    "Reddy",
    "Mathew",
    "Al Mansoori",
    "Fernandes",
];

/// (locality, state code, country code, postal prefix).
pub(super) const PLACES: &[(&str, &str, &str, &str)] = &[
    ("Kochi", "KL", "IN", "682"),
    ("Thiruvananthapuram", "KL", "IN", "695"),
    ("Bengaluru", "KA", "IN", "560"),
    ("Chennai", "TN", "IN", "600"),
    ("Mumbai", "MH", "IN", "400"),
    ("Dubai", "DU", "AE", "00"),
    ("Houston", "TX", "US", "770"),
];

pub(super) const PAYMENT_METHODS: &[(u64, &str)] = &[
    (50, "E-Wallet"),
    (30, "Card"),
    (15, "Bank Transfer"),
    (5, "Cash"),
];

pub(super) fn generate(seed: u64, index: u64) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let count = *rng.weighted(&[(60, 1usize), (28, 2), (12, 3)]);
    let chosen = rng.distinct(count, PRODUCTS.len());
    let lines: Vec<Line> = chosen
        .into_iter()
        .map(|i| Line {
            product: &PRODUCTS[i],
            quantity: *rng.weighted(&[(70, 1u32), (20, 2), (8, 3), (2, 6)]),
        })
        .collect();
    // Create-order's own rule: the order total is the sum of the line totals.
    let total: Decimal = lines
        .iter()
        .map(|l| cents(l.product.price_cents) * Decimal::from(l.quantity))
        .sum();
    let order_type = if lines.iter().any(|l| l.product.kind == PACKAGE) {
        *rng.weighted(&[(70, "purchase"), (18, "upgrade"), (12, "renewal")])
    } else {
        "purchase"
    };
    let currency = *rng.weighted(CURRENCIES);
    let status = *rng.weighted(STATUSES);
    let minutes = |lo: u64, hi: u64, rng: &mut SimRng| {
        chrono::Duration::minutes(rng.between(lo, hi) as i64)
            + chrono::Duration::microseconds(rng.below(1_000_000) as i64)
    };
    let modified_after = match status {
        "Pending" => chrono::Duration::zero(),
        "On Hold" | "Confirmed" => minutes(5, 24 * 60, &mut rng),
        "Processing" => minutes(60, 2 * 24 * 60, &mut rng),
        "Shipped" => minutes(24 * 60, 3 * 24 * 60, &mut rng),
        "Cancelled" => minutes(10, 2 * 24 * 60, &mut rng),
        _ => minutes(2 * 24 * 60, 9 * 24 * 60, &mut rng),
    };
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let place = *rng.pick(PLACES);
    let email_user = format!(
        "{}.{}{}",
        first.to_lowercase(),
        last.to_lowercase().replace(' ', ""),
        rng.below(100)
    );
    // Some records carry no address at all: the PHP-style empty `[]` the document shows for
    // empty data elsewhere.
    let (data, customer_name) = if rng.percent(4) {
        (json!([]), None)
    } else {
        (
            json!({
                "address": {
                    "address_first_name": first,
                    "address_last_name": last,
                    "address_mail_id": format!("{email_user}@example.com"),
                    "address_phone_number": format!("+91{}", rng.digits(10)),
                    "address_name_line": format!("{}", rng.between(1, 400)),
                    "address_premise": format!("{} Road", rng.pick(&["MG", "Church", "Temple", "Beach", "Palace"])),
                    "address_locality": place.0,
                    "address_postal_code": format!("{}{}", place.3, rng.digits(6 - place.3.len())),
                    "address_country_code": place.2,
                    "address_state_code": place.1,
                },
                "payment_method": rng.weighted(PAYMENT_METHODS),
            }),
            Some(format!("{first} {last}")),
        )
    };
    let address_id = 7_000 + index * 2;
    Generated {
        index,
        uid: format!("EPX{:07}", rng.between(1, 9_999_999)),
        order_type,
        currency,
        total,
        data,
        customer_name,
        shipping_id: (!rng.percent(10)).then_some(address_id),
        billing_id: (!rng.percent(5)).then_some(address_id + 1),
        lines,
        status,
        modified_after,
    }
}
