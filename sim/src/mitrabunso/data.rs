//! Mitrabunso's order data: the shop's state, what changes on an order, and the deterministic
//! generation of orders from `(seed, index)`.

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde_json::Value;

use super::render::{Customer, Detail, OrderPart, Sender, format_time, number, render};
use super::{PRODUCT_SALT, STATE_SALT, TruthItem, TruthOrder};
use crate::core::data::SimRng;

pub(super) struct Account {
    /// In the order they were added (deleted ones stay, out of every listing).
    pub(super) orders: Vec<StoredOrder>,
    pub(super) positions: HashMap<String, usize>,
    /// Positions of the live orders, oldest first (by `createdAt`, ties in the order they were
    /// added): ascending positions, unless orders were placed backdated.
    pub(super) live: Vec<usize>,
    /// Positions of the live orders of each status, ordered as `live`.
    pub(super) by_status: HashMap<String, Vec<usize>>,
}

pub(super) struct StoredOrder {
    pub(super) created: DateTime<FixedOffset>,
    pub(super) state: OrderState,
    pub(super) facts: Facts,
    /// The record as the list endpoint shows it.
    pub(super) json: String,
    /// Where `"<order_id>"` is in `json`, for the malformed-record fault.
    pub(super) id_at: Range<usize>,
}

/// What changes after birth; the rest is regenerated from `(seed, index)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OrderState {
    pub(super) status: String,
    pub(super) awb: Option<String>,
    pub(super) updated_awb: Option<String>,
    pub(super) updated_invoice: Option<String>,
    pub(super) processed_at: Option<DateTime<FixedOffset>>,
    pub(super) sent_at: Option<DateTime<FixedOffset>>,
    pub(super) deleted_at: Option<DateTime<FixedOffset>>,
}

/// Generated values kept for search and [`TruthOrder`], so neither has to parse JSON.
pub(super) struct Facts {
    pub(super) id: String,
    pub(super) invoice: String,
    pub(super) customer_name: String,
    pub(super) phone: String,
    pub(super) total: Decimal,
    pub(super) items: Vec<TruthItem>,
}

/// Where order `p` belongs in a listing of `orders`' positions ordered by creation.
pub(super) fn listing_slot(
    orders: &[StoredOrder],
    list: &[usize],
    p: usize,
) -> Result<usize, usize> {
    let key = (orders[p].created, p);
    list.binary_search_by(|&q| (orders[q].created, q).cmp(&key))
}

pub(super) fn list_insert(orders: &[StoredOrder], list: &mut Vec<usize>, p: usize) {
    if let Err(i) = listing_slot(orders, list, p) {
        list.insert(i, p);
    }
}

pub(super) fn list_remove(orders: &[StoredOrder], list: &mut Vec<usize>, p: usize) {
    if let Ok(i) = listing_slot(orders, list, p) {
        list.remove(i);
    }
}

impl Account {
    pub(super) fn push(&mut self, order: StoredOrder) {
        let p = self.orders.len();
        self.positions.insert(order.facts.id.clone(), p);
        let status = order
            .state
            .deleted_at
            .is_none()
            .then(|| order.state.status.clone());
        self.orders.push(order);
        if let Some(status) = status {
            list_insert(&self.orders, &mut self.live, p);
            list_insert(&self.orders, self.by_status.entry(status).or_default(), p);
        }
    }

    /// Moves order `p` between listings (`None`: deleted) after a status change or deletion.
    pub(super) fn relist(&mut self, p: usize, from: Option<&str>, to: Option<&str>) {
        if let Some(from) = from
            && let Some(list) = self.by_status.get_mut(from)
        {
            list_remove(&self.orders, list, p);
        }
        match to {
            Some(to) => {
                list_insert(
                    &self.orders,
                    self.by_status.entry(to.to_owned()).or_default(),
                    p,
                );
                list_insert(&self.orders, &mut self.live, p);
            }
            None => list_remove(&self.orders, &mut self.live, p),
        }
    }
}

impl StoredOrder {
    pub(super) fn new(parts: &Parts, created: DateTime<FixedOffset>, state: OrderState) -> Self {
        let (json, id_at) = render(parts, &state, created);
        StoredOrder {
            created,
            facts: Facts {
                id: parts.id.clone(),
                invoice: parts.invoice.clone(),
                customer_name: parts.customer.name.clone(),
                phone: parts.customer.phone.clone(),
                total: parts.total,
                items: parts.items.clone(),
            },
            state,
            json,
            id_at,
        }
    }

    pub(super) fn truth(&self) -> TruthOrder {
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let s = &self.state;
        TruthOrder {
            id: self.facts.id.clone(),
            number: nonempty(&s.updated_invoice).unwrap_or_else(|| self.facts.invoice.clone()),
            status: s.status.clone(),
            total: self.facts.total,
            currency: None,
            customer_name: self.facts.customer_name.clone(),
            tracking_number: nonempty(&s.updated_awb).or_else(|| nonempty(&s.awb)),
            invoice: self.facts.invoice.clone(),
            updated_invoice: s.updated_invoice.clone(),
            awb: s.awb.clone(),
            updated_awb: s.updated_awb.clone(),
            created_at: format_time(self.created),
            processed_at: s.processed_at.map(format_time),
            sent_at: s.sent_at.map(format_time),
            items: self.facts.items.clone(),
        }
    }

    pub(super) fn matches(&self, needle: &str) -> bool {
        let f = &self.facts;
        let s = &self.state;
        [
            Some(f.invoice.as_str()),
            s.updated_invoice.as_deref(),
            s.awb.as_deref(),
            s.updated_awb.as_deref(),
            Some(f.customer_name.as_str()),
            Some(f.phone.as_str()),
        ]
        .into_iter()
        .flatten()
        .any(|v| v.to_lowercase().contains(needle))
    }
}

/// One order's generated content, independent of its status.
pub(super) struct Parts {
    pub(super) id: String,
    pub(super) customer: Customer,
    pub(super) customer_id: String,
    pub(super) sender: Sender,
    pub(super) sender_id: String,
    pub(super) invoice: String,
    pub(super) courier: &'static Courier,
    pub(super) shop: &'static ShopInfo,
    pub(super) shipping_cost: Value,
    pub(super) admin_note: Option<String>,
    pub(super) customer_note: Option<String>,
    pub(super) total: Decimal,
    pub(super) total_cost: Value,
    pub(super) details: Vec<Detail>,
    /// The `detailsId` of each line, which only the details endpoint shows.
    pub(super) details_ids: Vec<String>,
    pub(super) items: Vec<TruthItem>,
}

impl Parts {
    pub(super) fn order_part<'a>(&'a self, awb: Option<&'a str>) -> OrderPart<'a> {
        OrderPart {
            invoice: &self.invoice,
            courier_id: self.courier.id,
            courier_name: self.courier.name,
            shipping_cost: &self.shipping_cost,
            shop_id: self.shop.id,
            shop_name: self.shop.name,
            awb,
            admin_note: self.admin_note.as_deref(),
            customer_note: self.customer_note.as_deref(),
            total_cost: &self.total_cost,
            label_image: None,
            print_type: "2",
            assign: None,
            order_id: &self.id,
        }
    }
}

pub(super) fn uuid(rng: &mut SimRng) -> String {
    let variant = *rng.pick(&['8', '9', 'a', 'b']);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.hex(3),
        rng.hex(12)
    )
}

pub(super) struct Courier {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    /// AWB prefix and digit count.
    pub(super) awb: (&'static str, usize),
}

pub(super) const COURIERS: &[(u64, Courier)] = &[
    (
        30,
        Courier {
            id: "a9727718-2ab9-4a90-8b94-d2ca8ded9b8a",
            name: "JNE(OKE)",
            awb: ("TJE", 13),
        },
    ),
    (
        25,
        Courier {
            id: "17cd69d0-0c3d-4886-9c93-7977000bade1",
            name: "JNT Reguler",
            awb: ("JP", 10),
        },
    ),
    (
        15,
        Courier {
            id: "1ce46391-c1d1-4dc9-bcad-8d7a8140714c",
            name: "Lion Parcel",
            awb: ("11", 11),
        },
    ),
    (
        15,
        Courier {
            id: "4b0c2f61-7c2e-4d6a-9b51-0e8f3c9d2a47",
            name: "SiCepat REG",
            awb: ("00", 10),
        },
    ),
    (
        10,
        Courier {
            id: "e2f7a3d9-5c41-4b8e-a6f0-3d9c1b7e5a22",
            name: "AnterAja",
            awb: ("10", 13),
        },
    ),
    (
        5,
        Courier {
            id: "66e7219a-2fc3-40b1-b795-baaccd9d894c",
            name: "GoSendInstant Courier",
            awb: ("GK-", 10),
        },
    ),
];

pub(super) struct ShopInfo {
    pub(super) id: &'static str,
    pub(super) name: &'static str,
}

pub(super) const SHOPS: &[ShopInfo] = &[
    ShopInfo {
        id: "22ba9428-a4d2-4c44-ba35-417c6878f16a",
        name: "Ebar Kennedy",
    },
    ShopInfo {
        id: "02badb7c-a3ff-4e64-97f7-a3b82044dd83",
        name: "ALTHASHOP",
    },
    ShopInfo {
        id: "06d48eba-b46c-439f-b82a-212456a97f2f",
        name: "CESING HOKI",
    },
    ShopInfo {
        id: "13d15650-d87a-4fa3-9fd3-19435a73c752",
        name: "Tokopedia Hoolo",
    },
];

pub(super) const SENDERS: &[(&str, &str)] = &[
    ("Ebar Kennedy", "6282165077777"),
    ("ALTHACELL.COM", "628382888888"),
    ("Cesing Hoki", "6282389877777"),
    ("Hoolo", "6285375777777"),
];

/// (name, price in rupiah).
pub(super) const PRODUCTS: &[(&str, i64)] = &[
    ("Silicone Cover Iphone XR Pink (Phone Case)", 70_000),
    (
        "Silicone Cover Samsung Note 10 plus Pink (Phone Case)",
        30_000,
    ),
    ("Silicone Cover Samsung S9 Abu-abu (Phone Case)", 10_000),
    ("DOUBLE GLASS Magnetic Samsung S10 Plus Silver ", 105_000),
    (
        "Samsung Galaxy A53 5G GKK Armor 360 Full Protective Slim Back Matte Cover Case Casing",
        50_000,
    ),
    ("Tempered Glass Full Cover Oppo A5s", 15_000),
    ("Kabel Data Type-C Fast Charging 1m", 25_000),
    ("Charger Adaptor 18W Quick Charge 3.0", 85_000),
    ("Earphone Bluetooth TWS i12 Putih", 65_000),
    ("Ring Holder Magnetic Hitam", 12_500),
    ("Powerbank 10000mAh Slim", 145_000),
    ("Softcase Bening Anti Crack Xiaomi Redmi Note 11", 17_500),
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Luthfi", "Deasy", "Basry", "Siti", "Dewi", "Agus", "Budi", "Rina", "Wahyu", "Putri", "Fajar",
    "Indah", "Rizky", "Ayu", "Hendra", "Nur", "Yusuf", "Ratna", "Eko", "Lestari",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Santoso",
    "Wijaya",
    "Saputra",
    "Hidayat",
    "Kusuma",
    "Pratama",
    "Nugroho",
    "Siregar",
    "Halim",
    "Rahmawati",
    "Setiawan",
    "Purnomo",
];

/// (province code, province, city code, city, district code, district, post code).
pub(super) type Place = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

pub(super) const PLACES: &[Place] = &[
    (
        "PR009",
        "Jawa Barat",
        "C072",
        "Kab. Karawang",
        "D0722",
        "Tirtamulya",
        "41372",
    ),
    (
        "PR003",
        "Banten",
        "C021",
        "Kota Tangerang",
        "D0226",
        "Ciledug",
        "15153",
    ),
    (
        "PR002",
        "Bangka Belitung",
        "C011",
        "Kab. Bangka Barat",
        "D0060",
        "Tempilang",
        "33365",
    ),
    (
        "PR006",
        "DKI Jakarta",
        "C051",
        "Kota Jakarta Selatan",
        "D0512",
        "Kebayoran Baru",
        "12110",
    ),
    (
        "PR011",
        "Jawa Timur",
        "C101",
        "Kota Surabaya",
        "D1015",
        "Wonokromo",
        "60243",
    ),
    (
        "PR010",
        "Jawa Tengah",
        "C093",
        "Kota Semarang",
        "D0931",
        "Tembalang",
        "50275",
    ),
];

pub(super) const STREETS: &[&str] = &[
    "Jl. Raya Barat",
    "Jl. Mahkota V blok C2",
    "Perum Bumi Telukjambe Jl. Baladewa Blok U",
    "Jl. Kenanga",
    "Jl. Merdeka",
    "Gg. Bintang",
    "Jl. Diponegoro",
];

pub(super) const ADMIN_NOTES: &[&str] = &[
    "PEMBELI BUTUH CEPAT",
    "Bonus stiker",
    "Cek warna sebelum kirim",
];

pub(super) const CUSTOMER_NOTES: &[&str] =
    &["Warna HITAM FULL", "Tolong packing aman", "Kirim sore"];

pub(super) fn generate(seed: u64, index: u64, created: DateTime<FixedOffset>) -> Parts {
    let mut rng = SimRng::for_record(seed, index);
    let id = uuid(&mut rng);
    let invoice = if rng.percent(70) {
        format!("INV{}MPL{}", created.format("%Y%m%d"), rng.digits(10))
    } else {
        format!("ANDI{}{}", created.format("%Y%m%d%H%M%S"), rng.digits(2))
    };

    let name = if rng.percent(30) {
        (*rng.pick(FIRST_NAMES)).to_owned()
    } else {
        format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
    };
    let phone_digits = rng.between(9, 10) as usize;
    let phone = format!("628{}", rng.digits(phone_digits));
    let place = *rng.pick(PLACES);
    let street = format!(
        "{} no {}, RT.0{}/RW.0{}",
        rng.pick(STREETS),
        rng.between(1, 300),
        rng.between(1, 9),
        rng.between(1, 9)
    );
    // Half the document's records carry the region only inside the address text, with codes
    // null and names empty.
    let customer = if rng.percent(45) {
        Customer {
            name,
            phone,
            address: format!(
                "{street}, {}, {}.\r\n{} {}",
                place.5, place.3, place.5, place.6
            ),
            province_code: None,
            province_name: "",
            city_code: None,
            city_name: "",
            district_code: None,
            district_name: "",
            post_code: None,
        }
    } else {
        Customer {
            name,
            phone,
            address: street,
            province_code: Some(place.0),
            province_name: place.1,
            city_code: Some(place.2),
            city_name: place.3,
            district_code: Some(place.4),
            district_name: place.5,
            post_code: Some(place.6),
        }
    };
    let shop_index = rng.below(SHOPS.len() as u64) as usize;
    let (sender_name, sender_phone) = SENDERS[shop_index];

    let lines = *rng.weighted(&[(70, 1usize), (22, 2), (8, 3)]);
    let chosen = rng.distinct(lines, PRODUCTS.len());
    let mut details = Vec::with_capacity(lines);
    let mut items = Vec::with_capacity(lines);
    let mut total = Decimal::ZERO;
    for p in chosen {
        let (product_name, price) = PRODUCTS[p];
        let qty = Decimal::from(*rng.weighted(&[(80, 1i64), (15, 2), (5, 3)]));
        let price = Decimal::from(price);
        let product_id = uuid(&mut SimRng::for_record(PRODUCT_SALT, p as u64));
        details.push(Detail {
            product_id: product_id.clone(),
            qty: number(qty, rng.percent(25)),
            product_price: number(price, rng.percent(15)),
            total_price: number(price * qty, rng.percent(10)),
            product_name,
        });
        items.push(TruthItem {
            product_id,
            name: product_name.to_owned(),
            qty,
            price,
        });
        total += price * qty;
    }
    let shipping = Decimal::from(*rng.weighted(&[
        (60, 0i64),
        (10, 9_000),
        (15, 10_000),
        (10, 12_000),
        (5, 51_000),
    ]));
    Parts {
        id,
        customer,
        customer_id: uuid(&mut rng),
        sender: Sender {
            name: sender_name,
            phone: sender_phone,
        },
        sender_id: uuid(&mut rng),
        invoice,
        courier: rng.weighted(COURIERS),
        shop: &SHOPS[shop_index],
        // The document writes it as text every time; real records only sometimes.
        shipping_cost: number(shipping, rng.percent(85)),
        admin_note: match rng.below(10) {
            0..=5 => None,
            6 => Some(String::new()),
            _ => Some((*rng.pick(ADMIN_NOTES)).to_owned()),
        },
        customer_note: match rng.below(10) {
            0..=4 => Some(String::new()),
            5..=7 => None,
            _ => Some((*rng.pick(CUSTOMER_NOTES)).to_owned()),
        },
        total,
        total_cost: number(total, rng.percent(10)),
        details_ids: (0..details.len()).map(|_| uuid(&mut rng)).collect(),
        details,
        items,
    }
}

/// The state an order is generated in: AWBs, an updated invoice, and the lifecycle stamps its
/// status implies (never after `snapshot`).
pub(super) fn born(
    seed: u64,
    index: u64,
    parts: &Parts,
    status: &str,
    created: DateTime<FixedOffset>,
    snapshot: DateTime<FixedOffset>,
) -> OrderState {
    let mut rng = SimRng::for_record(seed ^ STATE_SALT ^ 0xB0A7, index);
    let (prefix, digits) = parts.courier.awb;
    let new_awb = |rng: &mut SimRng| format!("{prefix}{}", rng.digits(digits));
    // Marketplace orders often arrive with their AWB booked already.
    let awb_percent = match status {
        "DRAFT" => 30,
        "NEW" => 50,
        "PROCESSED" => 70,
        _ => 90,
    };
    let awb = rng.percent(awb_percent).then(|| new_awb(&mut rng));
    let updated_awb = match &awb {
        Some(a) => match rng.below(100) {
            0..=69 => Some(a.clone()),
            70..=84 => Some(new_awb(&mut rng)),
            _ => None,
        },
        None if matches!(status, "PROCESSED" | "SENT") && rng.percent(60) => {
            Some(new_awb(&mut rng))
        }
        None => None,
    };
    let updated_invoice = match rng.below(100) {
        0..=49 => Some(format!(
            "{}{}",
            &parts.invoice[..parts.invoice.len() - 4],
            rng.digits(6)
        )),
        50..=74 => Some(parts.invoice.clone()),
        75..=89 => Some(String::new()),
        _ => None,
    };
    let hours = |rng: &mut SimRng, lo, hi| chrono::Duration::hours(rng.between(lo, hi) as i64);
    let latest = snapshot.max(created);
    let processed_at = matches!(status, "PROCESSED" | "SENT")
        .then(|| (created + hours(&mut rng, 1, 48)).min(latest));
    let sent_at = processed_at
        .filter(|_| status == "SENT")
        .map(|p| (p + hours(&mut rng, 1, 24)).min(latest));
    OrderState {
        status: status.to_owned(),
        awb,
        updated_awb,
        updated_invoice,
        processed_at,
        sent_at,
        deleted_at: None,
    }
}
