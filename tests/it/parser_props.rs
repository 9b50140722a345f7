//! Property tests of the platform parsers: arbitrary and mutated JSON pages never panic a
//! parser (each record becomes an order or a reject, a malformed page an error); the lenient
//! readers keep decimals exact and accept every spelling of an id; the SIRCLO signer is
//! deterministic, sensitive to every byte and matches the published test vector.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::FixedOffset;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use ordersync::platforms::{akinon, epixel, merchantpro, mitrabunso, sirclo};

/// Field names the five kinds read (plus camelCase spellings), so mutated records hit the
/// parsers' real fields with values of every type.
const KEYS: &[&str] = &[
    "access",
    "airwaybill_number",
    "amount",
    "awb",
    "billing_name",
    "count",
    "created",
    "created_at",
    "createdAt",
    "currency",
    "currency_code",
    "customer",
    "data",
    "date_created",
    "date_modified",
    "date_placed",
    "deleted_at",
    "delivery_name",
    "details",
    "has_order_items",
    "id",
    "invoice",
    "line_item_label",
    "line_items",
    "links",
    "meta",
    "modified",
    "modified_date",
    "name",
    "next",
    "number",
    "order",
    "order_date",
    "order_id",
    "order_number",
    "order_total",
    "order_items",
    "orders",
    "price",
    "processed_at",
    "processedAt",
    "product_id",
    "productId",
    "product_name",
    "productName",
    "product_price",
    "productPrice",
    "product_sku",
    "qty",
    "quantity",
    "raw_price",
    "results",
    "sent_at",
    "sentAt",
    "shipping_awb",
    "shipping_name",
    "shipping_status",
    "sku",
    "status",
    "total",
    "total_amount",
    "total_cost",
    "totalCost",
    "total_price",
    "totalPrice",
    "total_record",
    "tracking_number",
    "unit_price",
    "unit_price_gross",
    "updated_at",
    "updatedAt",
    "updated_awb",
    "updatedAWB",
    "updated_invoice",
    "updatedInvoice",
    "variant_name",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        "-?[0-9]{1,20}(\\.[0-9]{0,20})?".prop_map(Value::String),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][ T][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][01][0-9]:[0-5][0-9])?"
            .prop_map(Value::String),
        prop::sample::select(&["awaiting", "confirmed", "shipped", "new", "cancelled", "canceled", "", " "][..])
            .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record: mostly an object of known fields, sometimes anything at all.
fn record() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(key(), value(), 0..16)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => value(),
    ]
}

/// A page in the kind's shape holding mutated records, or arbitrary JSON, or arbitrary text.
fn page(kind: &'static str) -> impl Strategy<Value = String> {
    let shaped = (prop::collection::vec(record(), 0..6), value()).prop_map(move |(recs, extra)| {
        let page = match kind {
            "merchantpro" => json!({ "data": recs, "meta": extra }),
            "sirclo" => json!({ "data": recs, "total_record": extra }),
            "akinon" => json!({ "count": recs.len(), "next": extra, "results": recs }),
            "mitrabunso" => json!({ "data": recs, "total": extra }),
            _ => json!({ "data": { "orders": recs } }),
        };
        page.to_string()
    });
    prop_oneof![
        6 => shaped,
        2 => value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
    ]
}

#[derive(Debug, Default)]
struct Outcome {
    page_error: bool,
    orders: usize,
    rejects: usize,
}

fn zone() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

/// Reads a page the way the connector does: the page's shape, then each record on its own.
fn parse_page(kind: &str, text: &str) -> Outcome {
    let map = BTreeMap::new();
    let mut out = Outcome::default();
    let records: Vec<&RawValue> = match kind {
        "merchantpro" => match serde_json::from_str::<merchantpro::wire::ListPage>(text) {
            Ok(p) => p.data,
            Err(_) => {
                return Outcome {
                    page_error: true,
                    ..out
                };
            }
        },
        "sirclo" => match serde_json::from_str::<sirclo::wire::ListPage>(text) {
            Ok(p) => p.data.unwrap_or_default(),
            Err(_) => {
                return Outcome {
                    page_error: true,
                    ..out
                };
            }
        },
        "akinon" => match serde_json::from_str::<akinon::wire::ListPage>(text) {
            Ok(p) => p.results,
            Err(_) => {
                return Outcome {
                    page_error: true,
                    ..out
                };
            }
        },
        "mitrabunso" => match serde_json::from_str::<mitrabunso::wire::ListPage>(text) {
            Ok(p) => p.data,
            Err(_) => {
                return Outcome {
                    page_error: true,
                    ..out
                };
            }
        },
        _ => match serde_json::from_str::<epixel::wire::ListPage>(text) {
            Ok(p) => p.data.orders,
            Err(_) => {
                return Outcome {
                    page_error: true,
                    ..out
                };
            }
        },
    };
    for raw in records {
        let raw = raw.get();
        let ok = match kind {
            "merchantpro" => serde_json::from_str::<merchantpro::wire::Order>(raw)
                .is_ok_and(|w| merchantpro::map::to_canonical(w, &map, zone()).is_ok()),
            "sirclo" => serde_json::from_str::<sirclo::wire::Order>(raw)
                .is_ok_and(|w| sirclo::map::to_canonical(w, &map, zone()).is_ok()),
            "akinon" => serde_json::from_str::<akinon::wire::Order>(raw)
                .is_ok_and(|w| akinon::map::to_canonical(w, &[], &map, zone()).is_ok()),
            "mitrabunso" => serde_json::from_str::<mitrabunso::wire::Record>(raw)
                .is_ok_and(|w| mitrabunso::map::to_canonical(w, &map, zone()).is_ok()),
            _ => serde_json::from_str::<epixel::wire::Order>(raw).is_ok_and(|w| {
                let items = epixel::wire::parse_items(raw).ok();
                epixel::map::to_canonical(w, items, &map, zone()).is_ok()
            }),
        };
        if ok {
            out.orders += 1;
        } else {
            out.rejects += 1;
        }
    }
    out
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(128)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merchantpro_pages_never_panic(text in page("merchantpro")) {
        parse_page("merchantpro", &text);
    }

    #[test]
    fn sirclo_pages_never_panic(text in page("sirclo")) {
        parse_page("sirclo", &text);
    }

    #[test]
    fn akinon_pages_never_panic(text in page("akinon")) {
        parse_page("akinon", &text);
    }

    #[test]
    fn mitrabunso_pages_never_panic(text in page("mitrabunso")) {
        parse_page("mitrabunso", &text);
    }

    #[test]
    fn epixel_pages_never_panic(text in page("epixel"), details in value()) {
        parse_page("epixel", &text);
        let _ = epixel::wire::parse_items(&details.to_string());
    }

    #[test]
    fn a_page_of_good_shape_accounts_for_every_record(recs in prop::collection::vec(record(), 0..6)) {
        let text = json!({ "data": recs }).to_string();
        let o = parse_page("merchantpro", &text);
        prop_assert!(!o.page_error);
        prop_assert_eq!(o.orders + o.rejects, recs.len());
    }
}

#[derive(Deserialize)]
struct Dec {
    #[serde(
        default,
        deserialize_with = "ordersync::platforms::lenient::opt_decimal"
    )]
    v: Option<Decimal>,
}

#[derive(Deserialize)]
struct Id {
    #[serde(deserialize_with = "ordersync::platforms::lenient::id")]
    v: String,
}

/// Any decimal with at most 15 significant digits.
fn money() -> impl Strategy<Value = Decimal> {
    (-999_999_999_999_999i64..=999_999_999_999_999, 0u32..=15)
        .prop_map(|(m, scale)| Decimal::new(m, scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decimals_round_trip_exactly_as_numbers_and_strings(d in money()) {
        let text = d.normalize().to_string();
        let as_number: Dec = serde_json::from_str(&format!("{{\"v\":{text}}}")).unwrap();
        prop_assert_eq!(as_number.v, Some(d), "number {}", text);
        prop_assert_eq!(as_number.v.unwrap().normalize().to_string(), text.clone());
        let as_string: Dec = serde_json::from_str(&format!("{{\"v\":\"{text}\"}}")).unwrap();
        prop_assert_eq!(as_string.v, Some(d), "string {}", text);
        let exact = Decimal::from_str(&text).unwrap();
        prop_assert_eq!(exact, d);
    }

    #[test]
    fn ids_accept_any_integer(n in any::<i64>(), u in any::<u64>()) {
        let i: Id = serde_json::from_str(&format!("{{\"v\":{n}}}")).unwrap();
        prop_assert_eq!(i.v, n.to_string());
        let i: Id = serde_json::from_str(&format!("{{\"v\":{u}}}")).unwrap();
        prop_assert_eq!(i.v, u.to_string());
    }

    #[test]
    fn ids_accept_any_non_empty_string(s in ".{0,40}") {
        let doc = json!({ "v": s }).to_string();
        let read = serde_json::from_str::<Id>(&doc);
        if s.trim().is_empty() {
            prop_assert!(read.is_err(), "blank id {:?} rejected", s);
        } else {
            prop_assert_eq!(read.unwrap().v, s.trim());
        }
    }

    #[test]
    fn ids_refuse_objects_arrays_and_booleans(v in value()) {
        let read = serde_json::from_str::<Id>(&json!({ "v": v }).to_string());
        match &v {
            Value::Object(_) | Value::Array(_) | Value::Bool(_) | Value::Null => {
                prop_assert!(read.is_err(), "{} is no id", v)
            }
            _ => {}
        }
    }

    #[test]
    fn the_sirclo_mac_is_deterministic_and_sensitive_to_every_byte(
        secret in "[ -~]{1,40}",
        uri in "/[ -~]{0,60}",
        body in prop::collection::vec(any::<u8>(), 0..80),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mac = sirclo::sign(&secret, &uri, &body);
        prop_assert_eq!(&mac, &sirclo::sign(&secret, &uri, &body));
        // One byte of the message (URI followed by body) changed.
        let mut message = uri.clone().into_bytes();
        message.extend_from_slice(&body);
        let i = pos.index(message.len());
        message[i] ^= flip;
        // Sign the changed message with the whole of it as the body: the MAC covers the
        // concatenation, so splitting it differently must not matter.
        prop_assert_eq!(
            sirclo::sign(&secret, "", &{ let mut m = uri.clone().into_bytes(); m.extend_from_slice(&body); m }),
            mac.clone()
        );
        prop_assert_ne!(sirclo::sign(&secret, "", &message), mac);
    }
}

#[test]
fn the_sirclo_mac_matches_the_published_test_vector() {
    assert_eq!(
        sirclo::sign(
            "1IieSn9qXCYu3FeEG1eH05QxTMldKEiNIkLSN/5xtgc=",
            "/v1/partner/order?since=2018-10-13T13:34:52Z&until=2018-10-16T19:22:39Z&limit=100&offset=0",
            b"",
        ),
        "XoPRRDtfNWaGm4nbw7A0LY/c2U0+jg3F3Ay2d3VR3bM="
    );
}
