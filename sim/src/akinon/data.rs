//! Akinon's order data: the shop's state, what changes on an order, and the deterministic
//! generation of orders from `(seed, index)`.

use std::collections::HashMap;
use std::ops::Range;

use chrono::Utc;
use rust_decimal::Decimal;

use super::render::{Empty, ItemRecord, OrderRecord, money, render, render_time, to_cents};
use super::{DATASOURCE, FIRST_NUMBER};
use crate::core::data::{OrderBook, Placed, SimRng};

#[derive(Default)]
pub(super) struct Shop {
    /// In the order they were added, listed in placement order; the listing also orders the
    /// item list.
    pub(super) orders: OrderBook<SimOrder>,
    /// In the order of their orders' addition; each order's items are contiguous.
    pub(super) items: Vec<SimItem>,
    pub(super) by_id: HashMap<String, usize>,
    pub(super) by_number: HashMap<String, usize>,
    pub(super) item_by_id: HashMap<String, usize>,
}

pub(super) struct SimOrder {
    pub(super) rec: OrderRecord,
    /// Microseconds since the epoch.
    pub(super) placed: i64,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) items: Range<usize>,
    pub(super) json: String,
}

pub(super) struct SimItem {
    pub(super) rec: ItemRecord,
    pub(super) order: usize,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) json: String,
}

impl Shop {
    pub(super) fn push(&mut self, g: Generated) {
        let index = self.orders.len();
        let first_item = self.items.len();
        for (rec, item_updated) in g.items {
            self.item_by_id.insert(rec.id.clone(), self.items.len());
            let json = render(&rec);
            self.items.push(SimItem {
                rec,
                order: index,
                created: g.placed,
                updated: item_updated,
                json,
            });
        }
        self.by_id.insert(g.order.id.clone(), index);
        self.by_number.insert(g.order.number.clone(), index);
        let json = render(&g.order);
        self.orders.place(SimOrder {
            rec: g.order,
            placed: g.placed,
            created: g.placed,
            updated: g.updated,
            items: first_item..self.items.len(),
            json,
        });
    }
}

impl Placed for SimOrder {
    type At = i64;

    fn placed(&self) -> i64 {
        self.placed
    }
}

impl SimOrder {
    pub(super) fn set_status(&mut self, status: u16, now: i64) {
        if self.rec.status == status {
            return;
        }
        self.rec.status = status;
        self.rec.cancel_status = cancel_status(status);
        // Strictly later than before, so an `updated_at__gte` bound at the old time still
        // sees the change.
        self.updated = now.max(self.updated + 1);
        self.json = render(&self.rec);
    }
}

impl SimItem {
    pub(super) fn set_status(&mut self, status: u16, now: i64) {
        if self.rec.status == status {
            return;
        }
        self.rec.status = status;
        self.rec.cancel_status = cancel_status(status);
        self.updated = now.max(self.updated + 1);
        self.json = render(&self.rec);
    }
}

pub(super) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// One order as generated, before it joins the shop.
pub(super) struct Generated {
    pub(super) order: OrderRecord,
    /// With each item's update time.
    pub(super) items: Vec<(ItemRecord, i64)>,
    pub(super) placed: i64,
    pub(super) updated: i64,
}

impl Generated {
    /// Just placed: waiting for approval, nothing invoiced, shipped or touched since.
    pub(super) fn make_new(&mut self) {
        self.order.status = 100;
        self.order.cancel_status = None;
        self.order.invoice_number = None;
        self.order.invoice_date = None;
        self.order.e_archive_url = None;
        self.order.tracking_number = None;
        self.order.shipping_company = None;
        self.order.cargo_company = None;
        self.updated = self.placed;
        for (item, updated) in &mut self.items {
            item.status = 100;
            item.cancel_status = None;
            item.invoice_number = None;
            item.invoice_date = None;
            item.e_archive_url = None;
            item.tracking_number = None;
            item.shipping_company = None;
            item.shipped_date = None;
            item.delivered_date = None;
            *updated = self.placed;
        }
    }
}

/// The seller's statuses 400…900 record what the items went through; the `cancel_status`
/// text is what the document's enum calls it.
pub(super) fn cancel_status(status: u16) -> Option<&'static str> {
    match status {
        700 => Some("waiting"),
        800 | 900 => Some("completed"),
        _ => None,
    }
}

pub(super) struct Product {
    pub(super) sku: &'static str,
    pub(super) price_cents: i64,
    pub(super) tax_percent: i64,
}

pub(super) const PRODUCTS: &[Product] = &[
    Product {
        sku: "SP-A",
        price_cents: 62_900,
        tax_percent: 20,
    },
    Product {
        sku: "TSH-1001-BLK-M",
        price_cents: 29_990,
        tax_percent: 10,
    },
    Product {
        sku: "TSH-1001-WHT-L",
        price_cents: 29_990,
        tax_percent: 10,
    },
    Product {
        sku: "JEAN-2040-32-34",
        price_cents: 89_950,
        tax_percent: 10,
    },
    Product {
        sku: "SNK-3300-42",
        price_cents: 249_900,
        tax_percent: 10,
    },
    Product {
        sku: "BAG-410-CAMEL",
        price_cents: 134_500,
        tax_percent: 20,
    },
    Product {
        sku: "SCF-77-RED",
        price_cents: 19_999,
        tax_percent: 10,
    },
    Product {
        sku: "WTC-9001",
        price_cents: 459_000,
        tax_percent: 20,
    },
    Product {
        sku: "MUG-12",
        price_cents: 8_990,
        tax_percent: 20,
    },
    Product {
        sku: "BOOK-978-605-09",
        price_cents: 12_500,
        tax_percent: 0,
    },
    Product {
        sku: "PRF-50ML-OUD",
        price_cents: 179_900,
        tax_percent: 20,
    },
    Product {
        sku: "SOCK-3PK-39-42",
        price_cents: 9_950,
        tax_percent: 10,
    },
];

pub(super) const CARRIERS: &[&str] = &["yurtici", "aras", "mng", "hbexpress", "ups"];

pub(super) fn uuid(rng: &mut SimRng) -> String {
    let h = rng.hex(32);
    let variant = *rng.pick(&['8', '9', 'a', 'b']);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

pub(super) const DAY: i64 = 86_400_000_000;

/// Order `index`, placed at `placed`, last touched no later than `latest`.
pub(super) fn generate(rng: &mut SimRng, index: u64, placed: i64, latest: i64) -> Generated {
    let id = uuid(rng);
    let number = (FIRST_NUMBER + index * 10 + rng.below(10)).to_string();
    let status = *rng.weighted(&[
        (8, 100u16),
        (8, 200),
        (6, 300),
        (6, 400),
        (15, 500),
        (40, 600),
        (3, 700),
        (9, 800),
        (5, 900),
    ]);
    let currency = *rng.weighted(&[(85, "try"), (10, "usd"), (5, "eur")]);
    let n_items = *rng.weighted(&[(50, 1usize), (25, 2), (15, 3), (7, 4), (3, 6)]);
    let shipped = matches!(status, 500 | 600);
    let tracking = shipped.then(|| rng.hex(32));
    let carrier = shipped.then(|| *rng.pick(CARRIERS));
    let invoiced = matches!(status, 400..=600);
    let invoice_number = invoiced.then(|| format!("AKN{:09}", index + 1));
    let invoice_date = invoiced.then(|| render_time(placed + DAY / 2));
    let e_archive = invoice_number
        .as_ref()
        .map(|n| format!("https://earsiv.demo.akinon.test/{n}.pdf"));
    // A delivered order sometimes had one line cancelled on the way.
    let partial_cancel = status == 600 && n_items >= 2 && rng.percent(15);
    let updated = (placed + rng.below(3 * DAY as u64) as i64)
        .min(latest)
        .max(placed);

    let mut items = Vec::with_capacity(n_items);
    let mut discount_total = Decimal::ZERO;
    let mut subtotal = Decimal::ZERO;
    for k in 0..n_items {
        let p = rng.pick(PRODUCTS);
        let price = money(p.price_cents);
        let discount = if rng.percent(20) {
            to_cents(price / Decimal::from(10))
        } else {
            money(0)
        };
        let retail = rng
            .percent(50)
            .then(|| to_cents(price * Decimal::new(125, 2)));
        let item_status = if partial_cancel && k == n_items - 1 {
            800
        } else {
            status
        };
        let line_shipped = matches!(item_status, 500 | 600);
        subtotal += price - discount;
        discount_total += discount;
        items.push((
            ItemRecord {
                id: uuid(rng),
                order: id.clone(),
                sku: p.sku,
                status: item_status,
                price_currency: currency,
                price,
                tax_rate: money(p.tax_percent * 100),
                invoice_number: invoice_number.clone().filter(|_| item_status != 800),
                invoice_date: invoice_date.clone().filter(|_| item_status != 800),
                e_archive_url: e_archive.clone().filter(|_| item_status != 800),
                tracking_number: tracking.clone().filter(|_| line_shipped),
                shipping_company: carrier.filter(|_| line_shipped),
                retail_price: retail,
                extra_field: Empty {},
                estimated_delivery_date: line_shipped.then(|| render_time(placed + 3 * DAY)),
                discount_amount: discount,
                shipped_date: line_shipped.then(|| render_time(placed + 2 * DAY)),
                delivered_date: (item_status == 600).then(|| render_time(placed + 4 * DAY)),
                cancel_status: cancel_status(item_status),
            },
            updated,
        ));
    }
    let shipping = if subtotal < Decimal::from(500) {
        money(2_990)
    } else {
        money(0)
    };
    let address = uuid(rng);
    let gift = rng.percent(5);
    Generated {
        order: OrderRecord {
            id,
            number,
            datasource: DATASOURCE,
            billing_address: if rng.percent(90) {
                address.clone()
            } else {
                uuid(rng)
            },
            shipping_address: address,
            date_placed: render_time(placed),
            status,
            currency,
            amount: subtotal + shipping,
            discount_amount: discount_total,
            shipping_amount: shipping,
            shipping_tax_rate: (shipping > Decimal::ZERO).then(|| money(2_000)),
            refund_amount: money(0),
            discount_refund_amount: money(0),
            shipping_refund_amount: money(0),
            invoice_number,
            invoice_date,
            e_archive_url: e_archive,
            tracking_number: tracking,
            shipping_company: carrier,
            cargo_company: carrier,
            has_gift_box: gift,
            gift_box_note: gift.then_some("Iyi ki dogdun!"),
            language_code: Some(*rng.weighted(&[(90, "tr-tr"), (10, "en-us")])),
            notes: None,
            delivery_range: None,
            shipping_option_slug: Some(*rng.pick(&["standard", "express"])),
            extra_field: Empty {},
            cancel_status: cancel_status(status),
            shipping_interest_amount: money(0),
        },
        items,
        placed,
        updated,
    }
}
