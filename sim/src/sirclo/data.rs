//! SIRCLO's order data: the shop's state, what changes on an order, and the deterministic
//! generation of orders from `(seed, index)`.

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::render::{LineItem, Record, render};
use super::{FIRST_ID, platform_time, wib};
use crate::core::data::{OrderBook, Placed, SimRng};
use crate::core::render::Money;

/// The simulator's clock, at the platform's precision.
pub(super) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(super) struct Shop {
    /// By id (the order with id `FIRST_ID + i` is number `i`), listed in order-date order.
    pub(super) orders: OrderBook<StoredOrder>,
}

pub(super) struct StoredOrder {
    pub(super) placed: DateTime<Utc>,
    pub(super) state: OrderState,
    pub(super) facts: Facts,
    pub(super) json: String,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OrderState {
    pub(super) status: String,
    pub(super) airwaybill: Option<String>,
    pub(super) updated: DateTime<Utc>,
    pub(super) received_by: Option<String>,
    pub(super) cancel_reason: Option<String>,
}

/// Generated values kept for [`TruthOrder`] and the update checks, so neither parses JSON.
pub(super) struct Facts {
    pub(super) number: String,
    pub(super) order_date: String,
    pub(super) total: Decimal,
    pub(super) delivery_name: String,
    pub(super) item_ids: Vec<String>,
}

impl Shop {
    /// The number of live order `id`.
    pub(super) fn index_of(&self, id: u64) -> Option<usize> {
        self.orders.index_of(id, FIRST_ID)
    }
}

impl Placed for StoredOrder {
    type At = DateTime<Utc>;

    fn placed(&self) -> Self::At {
        self.placed
    }
}

impl StoredOrder {
    pub(super) fn from_generated(
        mut generated: Generated,
        placed: DateTime<Utc>,
        state: OrderState,
    ) -> Self {
        let facts = Facts {
            number: generated.number.clone(),
            order_date: generated.record.order_date.clone(),
            total: generated.record.total.0,
            delivery_name: generated.record.delivery_name.clone(),
            item_ids: generated
                .record
                .line_items
                .iter()
                .map(|i| i.id.to_string())
                .collect(),
        };
        let json = render(&mut generated.record, &state);
        StoredOrder {
            placed,
            state,
            facts,
            json,
        }
    }

    /// Applies `change`; if it changed anything, bumps `updatedAt` and re-renders.
    pub(super) fn change(&mut self, seed: u64, index: u64, change: impl FnOnce(&mut OrderState)) {
        let mut state = self.state.clone();
        change(&mut state);
        if state == self.state {
            return;
        }
        // Strictly later than before, so every change shows in `updatedAt`'s text even when two
        // land within the same microsecond.
        state.updated = now_micros().max(self.state.updated + chrono::Duration::microseconds(1));
        self.restate(seed, index, state);
    }

    /// Takes `state` as it is and re-renders.
    pub(super) fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        let mut generated = generate(seed, index, self.placed);
        self.json = render(&mut generated.record, &state);
        self.state = state;
    }
}

pub(super) struct Generated {
    pub(super) record: Record,
    pub(super) number: String,
    pub(super) created: DateTime<Utc>,
    /// The state the order was generated in (its `updated` not yet capped).
    pub(super) initial: OrderState,
}

pub(super) struct Product {
    pub(super) id: u64,
    pub(super) sku: &'static str,
    pub(super) name: &'static str,
    pub(super) price: i64,
}

pub(super) const PRODUCTS: &[Product] = &[
    Product {
        id: 20417,
        sku: "KMJ-BTK-001-M",
        name: "Kemeja Batik Pria Lengan Panjang - M",
        price: 289_000,
    },
    Product {
        id: 20418,
        sku: "KMJ-BTK-001-L",
        name: "Kemeja Batik Pria Lengan Panjang - L",
        price: 289_000,
    },
    Product {
        id: 31002,
        sku: "SRM-VITC-30",
        name: "Serum Wajah Vitamin C 30ml",
        price: 129_000,
    },
    Product {
        id: 31007,
        sku: "SNS-SPF50-50",
        name: "Sunscreen Gel SPF 50 PA++++ 50ml",
        price: 89_000,
    },
    Product {
        id: 31011,
        sku: "TNR-HYD-100",
        name: "Hydrating Toner 100ml",
        price: 75_000,
    },
    Product {
        id: 40120,
        sku: "HJB-PSM-BLK",
        name: "Hijab Pashmina Ceruty Hitam",
        price: 59_000,
    },
    Product {
        id: 40121,
        sku: "HJB-PSM-NVY",
        name: "Hijab Pashmina Ceruty Navy",
        price: 59_000,
    },
    Product {
        id: 52001,
        sku: "SPT-SNK-W-38",
        name: "Sepatu Sneakers Wanita Putih 38",
        price: 349_000,
    },
    Product {
        id: 52002,
        sku: "SPT-SNK-W-39",
        name: "Sepatu Sneakers Wanita Putih 39",
        price: 349_000,
    },
    Product {
        id: 60310,
        sku: "KOPI-ARB-250",
        name: "Kopi Arabika Gayo 250g",
        price: 98_500,
    },
    Product {
        id: 60311,
        sku: "TEH-MLT-20",
        name: "Teh Melati Celup isi 20",
        price: 12_500,
    },
    Product {
        id: 71004,
        sku: "TAS-TOTE-CNV",
        name: "Tas Tote Kanvas Motif Tenun",
        price: 165_000,
    },
    Product {
        id: 80050,
        sku: "PRF-EDP-30",
        name: "Parfum EDP Vanilla Musk 30ml",
        price: 219_000,
    },
    Product {
        id: 90002,
        sku: "KAOS-OVS-L",
        name: "Kaos Oversize Katun Combed 30s - L",
        price: 99_000,
    },
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Artia", "Budi", "Siti", "Dewi", "Agus", "Rina", "Andi", "Putri", "Yosua", "Rizky", "Nur",
    "Fajar", "Ayu", "Wahyu", "Indah", "Bayu", "Made", "Kevin",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Santoso",
    "Wijaya",
    "Saputra",
    "Pratama",
    "Lestari",
    "Hidayat",
    "Kusuma",
    "Nugroho",
    "Sari",
    "Siregar",
    "Simanjuntak",
    "Halim",
    "Tanoto",
    "Permana",
];

pub(super) const STREETS: &[&str] = &[
    "Jl. Anggrek",
    "Jl. Jend. Sudirman",
    "Jl. Gatot Subroto",
    "Jl. Diponegoro",
    "Jl. Merdeka",
    "Jl. Kebon Jeruk Raya",
    "Jl. Ir. H. Juanda",
    "Jl. Pemuda",
    "Jl. Kaliurang",
];

/// (region, city - district, post code prefix)
pub(super) const PLACES: &[(&str, &str, &str)] = &[
    ("DKI Jakarta", "Kota Jakarta Barat - Cengkareng", "117"),
    (
        "DKI Jakarta",
        "Kota Jakarta Selatan - Kebayoran Baru",
        "121",
    ),
    ("Jawa Barat", "Kota Bandung - Coblong", "401"),
    ("Jawa Timur", "Kota Surabaya - Gubeng", "602"),
    ("Banten", "Kota Tangerang Selatan - Serpong", "153"),
    ("Bali", "Kota Denpasar - Denpasar Selatan", "802"),
    ("Sumatera Utara", "Kota Medan - Medan Baru", "201"),
    ("DI Yogyakarta", "Kab. Sleman - Depok", "552"),
    ("Sulawesi Selatan", "Kota Makassar - Panakkukang", "902"),
];

pub(super) const EMAIL_DOMAINS: &[&str] = &["gmail.com", "yahoo.co.id", "outlook.com", "ymail.com"];

/// (weight, delivery method, shipping cost)
pub(super) const DELIVERY_METHODS: &[(u64, (&str, i64))] = &[
    (30, ("JNE REG", 18_000)),
    (10, ("JNE YES", 35_000)),
    (20, ("J&T EZ", 15_000)),
    (15, ("SiCepat REG", 14_000)),
    (10, ("AnterAja Regular", 13_000)),
    (10, ("GoSend Instant", 32_000)),
    (5, ("Ninja Xpress Standard", 16_000)),
];

pub(super) const STATUSES: &[(u64, &str)] = &[
    (8, "pending"),
    (12, "accepted"),
    (15, "packed"),
    (50, "completed"),
    (10, "canceled"),
    (5, "cancelled"),
];

pub(super) fn generate(seed: u64, index: u64, placed: DateTime<Utc>) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let id = FIRST_ID + index;

    let channel = *rng.weighted(&[(45, "tokopedia"), (35, "shopee"), (20, "web")]);
    let local = placed.with_timezone(&wib());
    let number = match channel {
        "tokopedia" => format!(
            "INV/{}/MPL/{}{:06}",
            local.format("%Y%m%d"),
            rng.digits(4),
            index % 1_000_000
        ),
        "shopee" => format!(
            "{}{}{:05}",
            local.format("%y%m%d"),
            rng.hex(4).to_ascii_uppercase(),
            index % 100_000
        ),
        _ => format!("SO{}{:07}", local.format("%y"), index + 1),
    };
    // Some records carry the number as `order_id`, as the create endpoint names it.
    let (order_number, order_id) = if rng.percent(15) {
        (None, Some(number.clone()))
    } else {
        (Some(number.clone()), None)
    };
    let order_date = if rng.percent(80) {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        placed.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };

    let count = *rng.weighted(&[(60, 1usize), (28, 2), (12, 3)]);
    let chosen = rng.distinct(count, PRODUCTS.len());
    let line_items: Vec<LineItem> = chosen
        .into_iter()
        .map(|i| {
            let p = &PRODUCTS[i];
            let quantity = *rng.weighted(&[(75, 1u32), (18, 2), (5, 3), (2, 6)]);
            let line = p.price * i64::from(quantity);
            // Campaign discounts are whole hundreds of rupiah.
            let discount = if rng.percent(40) {
                line * rng.between(5, 20) as i64 / 100 / 100 * 100
            } else {
                0
            };
            LineItem {
                id: p.id,
                sku: p.sku,
                name: p.name,
                quantity,
                raw_price: Money(Decimal::from(p.price)),
                discount: Money(Decimal::from(discount)),
            }
        })
        .collect();
    let subtotal: Decimal = line_items
        .iter()
        .map(|l| l.raw_price.0 * Decimal::from(l.quantity))
        .sum();
    let discount_total: Decimal = line_items.iter().map(|l| l.discount.0).sum();
    let &(method, cost) = rng.weighted(DELIVERY_METHODS);
    let shipping = if rng.percent(25) { 0 } else { cost };
    let shipping_total = Decimal::from(shipping);
    // A few channels charge a service fee with cents, carried in `tax_total`.
    let tax_total = if rng.percent(10) {
        ((subtotal - discount_total) * Decimal::new(11, 4))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    } else {
        Decimal::ZERO
    };
    let total = subtotal - discount_total + shipping_total + tax_total;

    let status = *rng.weighted(STATUSES);
    let airwaybill =
        (matches!(status, "packed" | "completed") && rng.percent(92)).then(|| match method {
            "JNE REG" | "JNE YES" => format!("CGK{}", rng.digits(13)),
            "J&T EZ" => format!("JP{}", rng.digits(10)),
            "SiCepat REG" => format!("00{}", rng.digits(10)),
            "AnterAja Regular" => format!("10000{}", rng.digits(10)),
            "GoSend Instant" => format!("GK-11-{}", rng.digits(8)),
            _ => format!("NLIDAP{}", rng.digits(8)),
        });
    let micros = |rng: &mut SimRng| chrono::Duration::microseconds(rng.below(1_000_000) as i64);
    let created = placed + chrono::Duration::seconds(rng.between(2, 300) as i64) + micros(&mut rng);
    let minutes = |lo: u64, hi: u64, rng: &mut SimRng| {
        chrono::Duration::minutes(rng.between(lo, hi) as i64) + micros(rng)
    };
    let updated = created
        + match status {
            "pending" => chrono::Duration::zero(),
            "accepted" => minutes(5, 12 * 60, &mut rng),
            "packed" => minutes(12 * 60, 2 * 24 * 60, &mut rng),
            "completed" => minutes(2 * 24 * 60, 7 * 24 * 60, &mut rng),
            _ => minutes(10, 2 * 24 * 60, &mut rng),
        };

    let first = *rng.pick(FIRST_NAMES);
    // Many Indonesians have a single name.
    let delivery_name = if rng.percent(2) {
        String::new()
    } else if rng.percent(10) {
        first.to_owned()
    } else {
        format!("{first} {}", rng.pick(LAST_NAMES))
    };
    let delivery_email = if rng.percent(5) {
        String::new()
    } else {
        format!(
            "{}{}@{}",
            first.to_ascii_lowercase(),
            rng.below(1000),
            rng.pick(EMAIL_DOMAINS)
        )
    };
    let place = *rng.pick(PLACES);
    let street = format!(
        "{} No.{}{}",
        rng.pick(STREETS),
        rng.between(1, 250),
        if rng.percent(30) {
            format!(
                " Blok {}{}",
                char::from(b'A' + rng.below(8) as u8),
                rng.between(1, 12)
            )
        } else {
            String::new()
        }
    );
    let post_code = format!("{}{}", place.2, rng.digits(5 - place.2.len()));
    let mobile_digits = rng.between(9, 10) as usize;
    let mobile = format!("08{}", rng.digits(mobile_digits));
    let customer_reference = match channel {
        "shopee" => format!("shp_{}", rng.hex(8)),
        "tokopedia" => format!("TKP{}", rng.digits(9)),
        _ => format!("CUST-{}", rng.hex(6).to_ascii_uppercase()),
    };
    let shipment_reference = if rng.percent(30) {
        format!("BK{}", rng.digits(10))
    } else {
        String::new()
    };

    let record = Record {
        id,
        order_number,
        order_id,
        order_date,
        customer_reference,
        shipment_reference,
        status: status.to_owned(),
        delivery_name,
        delivery_email,
        delivery_street_address: street,
        delivery_region: place.0,
        delivery_city: place.1,
        delivery_country: "Indonesia",
        delivery_post_code: post_code,
        delivery_method: method,
        delivery_mobile: mobile,
        airwaybill_number: String::new(),
        currency_code: "IDR",
        subtotal: Money(subtotal),
        discount_total: Money(discount_total),
        shipping_total: Money(shipping_total),
        tax_total: Money(tax_total),
        total: Money(total),
        line_items,
        created_at: platform_time(created),
        updated_at: String::new(),
    };
    Generated {
        record,
        number,
        created,
        initial: OrderState {
            status: status.to_owned(),
            airwaybill,
            updated,
            received_by: None,
            cancel_reason: None,
        },
    }
}
