//! MerchantPro's order data: the shop's state, what changes on an order, and the deterministic
//! generation of orders from `(seed, index)`.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::json;

use super::render::{
    ItemMeta, LineItem, OrderHead, Tag, VariantOption, format_time, payment_status_text, render,
};
use super::routes::Filter;
use super::{FIRST_ID, SHOP_URL, shop_now};
use crate::core::data::{OrderBook, Placed, SimRng};
use crate::core::render::Money;

pub(super) struct Shop {
    /// By id (the order with id `FIRST_ID + i` is number `i`), listed in `date_created` order.
    pub(super) orders: OrderBook<StoredOrder>,
    pub(super) next_invoice: u64,
}

pub(super) struct StoredOrder {
    pub(super) created: DateTime<FixedOffset>,
    /// `created`'s calendar day in the shop's zone, what `created_after`/`created_before` compare.
    pub(super) day: NaiveDate,
    pub(super) state: OrderState,
    pub(super) facts: OrderFacts,
    /// The full order object, line items included.
    pub(super) json: String,
    /// The `,"line_items":[…]` part of `json`, cut out for list answers without `include`.
    pub(super) items: Range<usize>,
}

/// What changes after generation; everything else is regenerated from `(seed, index)`.
#[derive(Debug, Clone)]
pub(super) struct OrderState {
    pub(super) shipping_status: String,
    pub(super) payment_status: &'static str,
    pub(super) shipping_awb: Option<String>,
    pub(super) date_modified: DateTime<FixedOffset>,
    pub(super) invoice: Option<u64>,
}

/// Generated values kept for filters and [`TruthOrder`], so neither has to parse JSON.
pub(super) struct OrderFacts {
    pub(super) total: Decimal,
    pub(super) billing_name: String,
    pub(super) shipping_name: String,
    pub(super) line_items: usize,
    pub(super) payment_method_code: &'static str,
    pub(super) shipping_method_id: u32,
    pub(super) customer_id: u64,
    pub(super) customer_email: Option<String>,
}

impl Shop {
    /// The number of live order `id`.
    pub(super) fn index_of(&self, id: u64) -> Option<usize> {
        self.orders.index_of(id, FIRST_ID)
    }
}

impl Placed for StoredOrder {
    type At = DateTime<FixedOffset>;

    fn placed(&self) -> Self::At {
        self.created
    }
}

impl StoredOrder {
    pub(super) fn from_generated(
        mut generated: Generated,
        created: DateTime<FixedOffset>,
        state: OrderState,
    ) -> Self {
        let facts = OrderFacts {
            total: generated.head.total_amount.0,
            billing_name: generated.head.billing_name.clone(),
            shipping_name: generated.head.shipping_name.clone(),
            line_items: generated.items.len(),
            payment_method_code: generated.head.payment_method_code,
            shipping_method_id: generated.head.shipping_method_id,
            customer_id: generated.head.customer_id,
            customer_email: generated.head.customer_email.clone(),
        };
        let (json, items) = render(&mut generated, &state);
        StoredOrder {
            created,
            day: created.date_naive(),
            state,
            facts,
            json,
            items,
        }
    }

    /// Applies `change`; if it changed anything, bumps `date_modified` and re-renders.
    pub(super) fn change(&mut self, seed: u64, index: u64, change: impl FnOnce(&mut OrderState)) {
        let mut state = self.state.clone();
        change(&mut state);
        if state.shipping_status == self.state.shipping_status
            && state.shipping_awb == self.state.shipping_awb
            && state.invoice == self.state.invoice
        {
            return;
        }
        // Strictly later than before, so a client comparing `date_modified` sees every change
        // even when two land within the same second.
        state.date_modified =
            shop_now().max(self.state.date_modified + chrono::Duration::seconds(1));
        self.restate(seed, index, state);
    }

    /// Takes `state` as it is and re-renders.
    pub(super) fn restate(&mut self, seed: u64, index: u64, state: OrderState) {
        let mut generated = generate(seed, index, self.created);
        let (json, items) = render(&mut generated, &state);
        self.json = json;
        self.items = items;
        self.state = state;
    }

    /// The order object as a list answer shows it.
    pub(super) fn list_json(&self, line_items: bool) -> Cow<'_, str> {
        if line_items {
            Cow::Borrowed(&self.json)
        } else {
            let mut s = String::with_capacity(self.json.len() - self.items.len());
            s.push_str(&self.json[..self.items.start]);
            s.push_str(&self.json[self.items.end..]);
            Cow::Owned(s)
        }
    }

    pub(super) fn field_value(&self, field: Filter) -> Cow<'_, str> {
        match field {
            Filter::ShippingStatus => Cow::Borrowed(&self.state.shipping_status),
            Filter::PaymentStatus => Cow::Borrowed(self.state.payment_status),
            Filter::PaymentMethodCode => Cow::Borrowed(self.facts.payment_method_code),
            Filter::ShippingMethodId => Cow::Owned(self.facts.shipping_method_id.to_string()),
            Filter::ShippingAwb => Cow::Borrowed(self.state.shipping_awb.as_deref().unwrap_or("")),
            Filter::CustomerId => Cow::Owned(self.facts.customer_id.to_string()),
            Filter::CustomerEmail => {
                Cow::Borrowed(self.facts.customer_email.as_deref().unwrap_or(""))
            }
        }
    }
}

pub(super) fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

pub(super) fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The net part of a tax-inclusive amount, as the shop rounds it (109 at 19% → 91.60).
pub(super) fn net_of(gross: Decimal, tax_percent: u32) -> Decimal {
    round2(gross * Decimal::from(100) / Decimal::from(100 + tax_percent))
}

/// One order as generated from `(seed, index)`, before its [`OrderState`] is applied.
pub(super) struct Generated {
    pub(super) head: OrderHead,
    pub(super) items: Vec<LineItem>,
    /// The per-order hash in `info_url`/`proforma_url`/invoice `url`.
    pub(super) hash: String,
    /// The state the order was generated in (its `date_modified` not yet capped).
    pub(super) initial: OrderState,
}

pub(super) struct Product {
    pub(super) id: u32,
    pub(super) name: &'static str,
    /// `None`: the product has no SKU (`product_sku: null`, no `family_sku`), as in the
    /// document's examples.
    pub(super) sku: Option<&'static str>,
    pub(super) category: (u32, &'static str),
    pub(super) manufacturer: Option<(u32, &'static str)>,
    pub(super) price_cents: i64,
    pub(super) tax_percent: u32,
    pub(super) variants: Variants,
}

#[derive(Clone, Copy)]
pub(super) enum Variants {
    None,
    Size(&'static [&'static str]),
    Color(&'static [&'static str]),
}

pub(super) const SHOE_SIZES: &[&str] = &["35", "36", "37", "38", "39", "40", "41"];

pub(super) const CLOTHES_SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];

pub(super) const COLORS: &[&str] = &["alb", "negru", "bej", "rosu", "albastru"];

#[rustfmt::skip]
pub(super) const PRODUCTS: &[Product] = &[
    Product { id: 5087, name: "Pantofi Inko Nude 2", sku: Some("V01 nude pu"), category: (6, "Pantofi"), manufacturer: None, price_cents: 10900, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 5088, name: "Pantofi Gabel Bej 2", sku: Some("JA-1388-C BEIGE 2"), category: (6, "Pantofi"), manufacturer: None, price_cents: 6900, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 259, name: "Giuseppe Zanotti Women's Swarovski Sandal", sku: None, category: (18, "Sandale"), manufacturer: Some((1000050, "Giuseppe-Zanotti")), price_cents: 21899, tax_percent: 19, variants: Variants::None },
    Product { id: 260, name: "Women's Nunaked Dress Sandal", sku: None, category: (18, "Sandale"), manufacturer: Some((1000061, "Joop")), price_cents: 11703, tax_percent: 19, variants: Variants::None },
    Product { id: 53, name: "Floral Laser Suede Dress", sku: None, category: (9, "Rochii"), manufacturer: Some((1000017, "Michael Kors")), price_cents: 89199, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 1958, name: "Massive Menelaus 37511/48/10", sku: Some("3484"), category: (2, "Lustre"), manufacturer: None, price_cents: 36539, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 1960, name: "Aplica perete Eglo Fornes", sku: Some("EG-96221"), category: (3, "Aplice"), manufacturer: Some((1000102, "Eglo")), price_cents: 14990, tax_percent: 19, variants: Variants::None },
    Product { id: 2101, name: "Veioza Philips Hue Go", sku: Some("PH-7602031P7"), category: (4, "Veioze"), manufacturer: Some((1000110, "Philips")), price_cents: 42900, tax_percent: 19, variants: Variants::None },
    Product { id: 3011, name: "Tricou barbati bumbac organic", sku: Some("TB-3011"), category: (12, "Tricouri"), manufacturer: None, price_cents: 4990, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 3012, name: "Hanorac unisex cu gluga", sku: Some("HN-3012"), category: (13, "Hanorace"), manufacturer: None, price_cents: 15900, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 3020, name: "Blugi dama slim fit", sku: Some("LV-3020"), category: (14, "Blugi"), manufacturer: Some((1000033, "Levi's")), price_cents: 34900, tax_percent: 19, variants: Variants::Size(CLOTHES_SIZES) },
    Product { id: 4100, name: "Amintiri din copilarie - Ion Creanga", sku: Some("978-973-46-1234-5"), category: (21, "Carti"), manufacturer: Some((1000201, "Humanitas")), price_cents: 3020, tax_percent: 5, variants: Variants::None },
    Product { id: 4101, name: "Enigma Otiliei - George Calinescu", sku: Some("978-973-46-5678-1"), category: (21, "Carti"), manufacturer: Some((1000201, "Humanitas")), price_cents: 2990, tax_percent: 5, variants: Variants::None },
    Product { id: 4200, name: "Cafea boabe Arabica 1kg", sku: Some("LV-QR-1000"), category: (22, "Cafea"), manufacturer: Some((1000301, "Lavazza")), price_cents: 8999, tax_percent: 9, variants: Variants::None },
    Product { id: 4201, name: "Ceai verde bio 100g", sku: Some("CV-BIO-100"), category: (23, "Ceai"), manufacturer: None, price_cents: 1850, tax_percent: 9, variants: Variants::None },
    Product { id: 5100, name: "Geanta din piele naturala", sku: Some("GP-5100"), category: (7, "Genti"), manufacturer: None, price_cents: 29900, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5101, name: "Rucsac laptop 15.6 inch", sku: Some("RL-5101"), category: (7, "Genti"), manufacturer: Some((1000120, "Samsonite")), price_cents: 17900, tax_percent: 19, variants: Variants::None },
    Product { id: 5200, name: "Ceas smartwatch Active 2", sku: Some("SW-A2-44"), category: (30, "Ceasuri"), manufacturer: Some((1000130, "Samsung")), price_cents: 79999, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5300, name: "Set lenjerie pat bumbac satinat", sku: Some("LJ-5300"), category: (31, "Lenjerii"), manufacturer: None, price_cents: 18950, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5301, name: "Perna memory foam", sku: Some("PM-5301"), category: (31, "Lenjerii"), manufacturer: None, price_cents: 12000, tax_percent: 19, variants: Variants::None },
    Product { id: 5400, name: "Parfum Eau de Parfum 100ml", sku: Some("EDP-5400"), category: (32, "Parfumuri"), manufacturer: Some((1000140, "Hugo Boss")), price_cents: 45000, tax_percent: 19, variants: Variants::None },
    Product { id: 5500, name: "Sosete bumbac set 5 perechi", sku: Some("SB-5500"), category: (12, "Tricouri"), manufacturer: None, price_cents: 3500, tax_percent: 19, variants: Variants::Size(SHOE_SIZES) },
    Product { id: 5600, name: "Esarfa matase naturala", sku: Some("EM-5600"), category: (33, "Accesorii"), manufacturer: None, price_cents: 9990, tax_percent: 19, variants: Variants::Color(COLORS) },
    Product { id: 5700, name: "Cana ceramica pictata manual", sku: Some("CC-5700"), category: (34, "Casa"), manufacturer: None, price_cents: 4500, tax_percent: 19, variants: Variants::None },
];

/// (display form, ASCII form for emails).
#[rustfmt::skip]
pub(super) const FIRST_NAMES: &[(&str, &str)] = &[
    ("Andrei", "andrei"), ("Maria", "maria"), ("Ioana", "ioana"), ("Alexandru", "alexandru"),
    ("Elena", "elena"), ("Mihai", "mihai"), ("Ștefan", "stefan"), ("Mădălina", "madalina"),
    ("Ionuț", "ionut"), ("Cristina", "cristina"), ("Bogdan", "bogdan"), ("Ana", "ana"),
    ("Gabriel", "gabriel"), ("Raluca", "raluca"), ("Vlad", "vlad"), ("Andreea", "andreea"),
    ("Florin", "florin"), ("Simona", "simona"), ("Răzvan", "razvan"), ("Diana", "diana"),
];

#[rustfmt::skip]
pub(super) const LAST_NAMES: &[(&str, &str)] = &[
    ("Popescu", "popescu"), ("Ionescu", "ionescu"), ("Popa", "popa"), ("Dumitru", "dumitru"),
    ("Stan", "stan"), ("Stoica", "stoica"), ("Gheorghe", "gheorghe"), ("Matei", "matei"),
    ("Ciobanu", "ciobanu"), ("Rusu", "rusu"), ("Munteanu", "munteanu"), ("Constantin", "constantin"),
    ("Răducanu", "raducanu"), ("Țurcanu", "turcanu"), ("Marin", "marin"), ("Lazăr", "lazar"),
];

/// (county, city, postal code prefix).
pub(super) const PLACES: &[(&str, &str, &str)] = &[
    ("Bucuresti", "Bucuresti", "0"),
    ("Cluj", "Cluj-Napoca", "400"),
    ("Iasi", "Iasi", "700"),
    ("Timis", "Timisoara", "300"),
    ("Constanta", "Constanta", "900"),
    ("Brasov", "Brasov", "500"),
    ("Bacau", "Bacau", "600"),
    ("Prahova", "Ploiesti", "100"),
    ("Dolj", "Craiova", "200"),
    ("Sibiu", "Sibiu", "550"),
];

#[rustfmt::skip]
pub(super) const STREETS: &[&str] = &[
    "str. Mihai Eminescu", "bd. Unirii", "str. Rose Hill", "calea Victoriei", "str. Republicii",
    "bd. Independentei", "str. Avram Iancu", "str. Lalelelor", "sos. Colentina", "str. Zorilor",
];

pub(super) const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "yahoo.ro",
    "outlook.com",
    "example.com",
];

/// (code, name, weight).
pub(super) const PAYMENT_METHODS: &[(u64, (&str, &str))] = &[
    (55, ("cash_delivery", "Plata in sistem ramburs")),
    (25, ("mobilpay", "Plata online cu cardul")),
    (10, ("wire", "Ordin de plata")),
    (5, ("paypal", "PayPal")),
    (5, ("in_store", "Plata la sediu")),
];

/// (id, name, price in cents); id 0 is the document's "no method" case.
pub(super) const SHIPPING_METHODS: &[(u64, (u32, &str, i64))] = &[
    (30, (3, "Speedy", 1500)),
    (30, (5, "Fan Courier", 1999)),
    (15, (7, "Cargus", 1750)),
    (15, (9, "Sameday easybox", 1290)),
    (5, (11, "Ridicare personala din magazin", 0)),
];

pub(super) const SHIPPING_STATUSES: &[(u64, &str)] = &[
    (68, "delivered"),
    (7, "shipped"),
    (5, "in_process"),
    (4, "confirmed"),
    (7, "awaiting"),
    (6, "cancelled"),
    (3, "returned"),
];

pub(super) const CUSTOMER_NOTES: &[&str] = &[
    "Va rog sunati inainte de livrare",
    "Livrare dupa ora 17",
    "Interfon 23",
    "Lasati coletul la receptie",
];

pub(super) const TAGS: &[(u32, &str)] = &[
    (1, "Feedback excelent"),
    (2, "Client fidel"),
    (3, "Comanda telefonica"),
];

pub(super) fn generate(seed: u64, index: u64, created: DateTime<FixedOffset>) -> Generated {
    let mut rng = SimRng::for_record(seed, index);
    let id = FIRST_ID + index;

    let items = generate_items(&mut rng);
    let subtotal: Decimal = items.iter().map(|i| i.line_subtotal_gross.0).sum();

    let &(method_id, method_name, method_cents) = rng.weighted(SHIPPING_METHODS);
    let (shipping_method_id, shipping_method_name, shipping_amount) = if rng.percent(5) {
        (0, None, None)
    } else if subtotal >= Decimal::from(300) {
        (method_id, Some(method_name), Some(Decimal::ZERO))
    } else {
        (method_id, Some(method_name), Some(cents(method_cents)))
    };
    let shipping_tax = shipping_amount.map(|a| a - net_of(a, 19));
    let total = subtotal + shipping_amount.unwrap_or_default();

    let &(payment_code, payment_name) = rng.weighted(PAYMENT_METHODS);
    let shipping_status = *rng.weighted(SHIPPING_STATUSES);
    let paid_upfront = matches!(payment_code, "mobilpay" | "paypal");
    let payment_status = match shipping_status {
        "delivered" => "paid",
        "returned" => "refunded",
        "cancelled" if paid_upfront => "refunded",
        "cancelled" => "canceled",
        "awaiting" if paid_upfront && rng.percent(20) => "failed",
        _ if paid_upfront => "paid",
        _ => "awaiting",
    };
    let minutes =
        |lo: u64, hi: u64, rng: &mut SimRng| chrono::Duration::minutes(rng.between(lo, hi) as i64);
    let modified_after = match shipping_status {
        "awaiting" => chrono::Duration::zero(),
        "confirmed" => minutes(10, 24 * 60, &mut rng),
        "in_process" => minutes(60, 2 * 24 * 60, &mut rng),
        "shipped" => minutes(24 * 60, 3 * 24 * 60, &mut rng),
        "delivered" => minutes(2 * 24 * 60, 6 * 24 * 60, &mut rng),
        "cancelled" => minutes(10, 2 * 24 * 60, &mut rng),
        _ => minutes(7 * 24 * 60, 20 * 24 * 60, &mut rng),
    };
    let has_awb = match shipping_status {
        "shipped" | "delivered" | "returned" => rng.percent(85),
        "in_process" => rng.percent(20),
        _ => false,
    } && shipping_method_id != 11;
    let awb = has_awb.then(|| match shipping_method_id {
        5 => format!("2{}", rng.digits(12)),
        7 => rng.digits(10),
        9 => format!("1ONB{}", rng.digits(9)),
        _ => rng.digits(11),
    });
    let invoice = (shipping_status == "delivered" && rng.percent(60)).then_some(index + 1);

    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let billing_name = format!("{} {}", first.0, last.0);
    let email = (!rng.percent(4)).then(|| {
        format!(
            "{}.{}{}@{}",
            first.1,
            last.1,
            rng.below(100),
            rng.pick(EMAIL_DOMAINS)
        )
    });
    let device = *rng.weighted(&[(45, "desktop"), (50, "mobile"), (5, "manual")]);
    let (ip, ip_country) = if device == "manual" {
        (String::new(), "")
    } else {
        let ip = format!(
            "{}.{}.{}.{}",
            rng.between(2, 223),
            rng.below(256),
            rng.below(256),
            rng.between(1, 254)
        );
        (ip, if rng.percent(5) { "ro" } else { "RO" })
    };

    let place = *rng.pick(PLACES);
    let address = random_address(&mut rng);
    let postal = format!("{}{}", place.2, rng.digits(6 - place.2.len()));
    let phone = format!("07{}", rng.digits(8));
    let company = rng.percent(12);
    let company_fields = company.then(|| {
        (
            format!(
                "SC {} {} SRL",
                last.0,
                rng.pick(&["Impex", "Trading", "Consult", "Design"])
            ),
            format!(
                "J{:02}/{}/{}",
                rng.between(1, 52),
                rng.between(100, 9999),
                rng.between(2005, 2023)
            ),
            format!("RO{}", rng.digits(8)),
            *rng.pick(&["Banca Transilvania", "BCR", "ING Bank", "BRD"]),
            format!("RO{}BTRL{}", rng.digits(2), rng.digits(16)),
        )
    });
    let other_recipient = rng.percent(12);
    let (shipping_name, ship_place, ship_address, ship_postal, ship_phone) = if other_recipient {
        let first = rng.pick(FIRST_NAMES).0;
        let last = rng.pick(LAST_NAMES).0;
        let place = *rng.pick(PLACES);
        let postal = format!("{}{}", place.2, rng.digits(6 - place.2.len()));
        (
            format!("{first} {last}"),
            place,
            random_address(&mut rng),
            postal,
            format!("07{}", rng.digits(8)),
        )
    } else {
        (
            billing_name.clone(),
            place,
            address.clone(),
            postal.clone(),
            phone.clone(),
        )
    };
    // The document's records leave some contact fields empty ("") or null: keep a few.
    let blank_if = |empty: bool, s: String| if empty { String::new() } else { s };
    let null_if = |null: bool, s: String| (!null).then_some(s);

    let head = OrderHead {
        id,
        payment_status,
        payment_status_text: payment_status_text(payment_status),
        payment_method_code: payment_code,
        payment_method_name: payment_name,
        shipping_status: shipping_status.to_owned(),
        shipping_status_text: String::new(),
        shipping_method_id,
        shipping_method_name,
        shipping_awb: awb.clone(),
        shipping_amount: shipping_amount.map(Money),
        shipping_tax_amount: shipping_tax.map(Money),
        total_amount: Money(total),
        currency: "RON",
        customer_id: rng.between(1, 60_000),
        customer_email: email,
        customer_ip_address: ip,
        customer_ip_country: ip_country,
        customer_device: device,
        customer_lang: *rng.weighted(&[(90, Some("ro_RO")), (5, Some("en_US")), (5, None)]),
        customer_note: rng.percent(15).then(|| *rng.pick(CUSTOMER_NOTES)),
        customer_notification: rng.percent(20).then_some(""),
        date_created: format_time(created),
        date_modified: String::new(),
        created_by: if device == "manual" { "account" } else { "customer" },
        meta_fields: rng.percent(20).then(|| {
            json!({ "utm_source": rng.pick(&["google", "facebook", "newsletter"]), "utm_medium": "cpc" })
        }),
        tags: rng.percent(15).then(|| {
            let &(id, name) = rng.pick(TAGS);
            vec![Tag { id, name }]
        }),
        billing_type: if company { "company" } else { "individual" },
        billing_name,
        billing_company_name: company_fields.as_ref().map(|c| c.0.clone()),
        billing_company_number: company_fields.as_ref().map(|c| c.1.clone()),
        billing_company_vat: company_fields.as_ref().map(|c| c.2.clone()),
        billing_company_bank_name: company_fields.as_ref().map(|c| c.3),
        billing_company_bank_account: company_fields.as_ref().map(|c| c.4.clone()),
        billing_country_code: "RO",
        billing_country_name: "România",
        billing_state: place.0,
        billing_city: place.1,
        billing_address: blank_if(rng.percent(3), address),
        billing_postal_code: blank_if(rng.percent(5), postal),
        billing_phone: blank_if(rng.percent(3), phone),
        shipping_name,
        shipping_country_code: "RO",
        shipping_country_name: "România",
        shipping_state: ship_place.0,
        shipping_city: ship_place.1,
        shipping_address: null_if(rng.percent(2), ship_address),
        shipping_postal_code: null_if(rng.percent(3), ship_postal),
        shipping_phone: null_if(rng.percent(2), ship_phone),
    };
    Generated {
        head,
        items,
        hash: rng.hex(32),
        initial: OrderState {
            shipping_status: shipping_status.to_owned(),
            payment_status,
            shipping_awb: awb,
            date_modified: created + modified_after,
            invoice,
        },
    }
}

pub(super) fn random_address(rng: &mut SimRng) -> String {
    let street = rng.pick(STREETS);
    let number = rng.between(1, 180);
    if rng.percent(40) {
        format!(
            "{street}, nr. {number}, bl. {}{}, sc. {}, ap. {}",
            char::from(b'A' + rng.below(8) as u8),
            rng.between(1, 20),
            rng.between(1, 4),
            rng.between(1, 80)
        )
    } else {
        format!("{street}, nr. {number}")
    }
}

pub(super) fn generate_items(rng: &mut SimRng) -> Vec<LineItem> {
    // Most shop orders have a single line; this mix also lands on ~2.7 KB per order.
    let count = *rng.weighted(&[(65, 1), (28, 2), (7, 3)]);
    let chosen = rng.distinct(count, PRODUCTS.len());
    chosen
        .into_iter()
        .map(|i| {
            let p = &PRODUCTS[i];
            let quantity = *rng.weighted(&[(75, 1u32), (18, 2), (5, 3), (2, 5)]);
            let gross = cents(p.price_cents);
            let net = net_of(gross, p.tax_percent);
            let q = Decimal::from(quantity);
            let variant = match p.variants {
                Variants::None => None,
                Variants::Size(values) => {
                    Some((rng.below(values.len() as u64), 27884, "Size", values))
                }
                Variants::Color(values) => {
                    Some((rng.below(values.len() as u64), 1, "Culoare", values))
                }
            };
            let variant_value = variant.map(|(i, _, _, values)| values[i as usize]);
            LineItem {
                item_type: "product",
                product_id: p.id,
                variant_id: variant.map(|(i, ..)| 10_000_000 + u64::from(p.id) * 10 + i),
                variant_name: variant
                    .map(|(i, _, name, values)| format!("{name}: {}", values[i as usize])),
                variant_options: variant.map(|(i, option_id, name, values)| {
                    [VariantOption {
                        id: option_id,
                        name,
                        value: values[i as usize],
                    }]
                }),
                family_sku: p.sku.filter(|_| variant.is_some()),
                product_sku: p.sku.map(|sku| match variant_value {
                    Some(v) => format!("{sku} {v}"),
                    None => sku.to_owned(),
                }),
                product_ean: p
                    .id
                    .is_multiple_of(2)
                    .then(|| format!("59{:011}", u64::from(p.id) * 7_654_321 % 100_000_000_000)),
                product_name: p.name,
                product_url: format!("{SHOP_URL}/cumpara?id={}", p.id),
                product_image_url: format!(
                    "https://s.cdnmpro.com/272414248/p/l/{}/{}~{}.jpg",
                    p.id % 10,
                    slug(p.name),
                    p.id
                ),
                product_tax_name: "TVA",
                product_tax_percent: p.tax_percent,
                category_id: p.category.0,
                category_name: p.category.1,
                manufacturer_id: p.manufacturer.map_or(0, |m| m.0),
                manufacturer_name: p.manufacturer.map(|m| m.1),
                quantity,
                unit_price_net: Money(net),
                unit_tax_amount: Money(gross - net),
                unit_price_gross: Money(gross),
                line_subtotal_net: Money(net * q),
                line_tax_amount: Money((gross - net) * q),
                line_subtotal_gross: Money(gross * q),
                meta_fields: p.id.is_multiple_of(3).then(|| ItemMeta {
                    prod_id_ref: format!("7777{:03}", p.id % 1000),
                }),
            }
        })
        .collect()
}

pub(super) fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}
