//! Epixel's JSON as its document shows it, read leniently: ids and numbers as numbers or text,
//! nulls anywhere a value is optional, and the free-form `data` objects (PHP-style `[]` where an
//! object is empty) read by path rather than by type, so their shape cannot cost a record. Also
//! owns the raw form an order is stored in (list record plus details), which must come out byte
//! for byte the same when nothing changed, because the store hashes it.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::platforms::lenient;

/// `GET …/commerce/all-orders/`: `{"status_code","errors","data":{"orders":[…],"filter_data"}}`.
/// The records stay raw until each is read on its own, so one bad record is rejected alone.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    #[serde(borrow)]
    pub data: ListData<'a>,
}

#[derive(Debug, Deserialize)]
pub struct ListData<'a> {
    #[serde(borrow)]
    pub orders: Vec<&'a RawValue>,
}

/// One record of the order list. Only what the canonical model needs is typed.
#[derive(Debug, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    /// Required: it is the order's public number and the only key order-details accepts.
    #[serde(deserialize_with = "lenient::id")]
    pub order_number: String,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub order_total: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency_code: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub modified: Option<String>,
    /// Free-form; the address names are looked up in it by path.
    #[serde(default)]
    pub data: Option<Value>,
}

/// What tells whether a list record changed, read from what was stored before.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Marks {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub modified: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
}

/// `GET …/commerce/order-details/?order_number=…`: `{"status_code","errors","data":[items]}`.
#[derive(Debug, Deserialize)]
pub struct DetailsPage<'a> {
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// One line of an order's details.
#[derive(Debug, Deserialize)]
pub struct Item {
    #[serde(default, deserialize_with = "opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub line_item_label: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub quantity: Option<Decimal>,
    /// The unit price, as text in the document (`"price": "<price>"`).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
}

/// An id that may be absent or null, but when present must be an id (an object is an error).
fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Id(#[serde(deserialize_with = "lenient::id")] String);
    Ok(Option::<Id>::deserialize(d)?.map(|Id(id)| id))
}

/// The details lines of one order, read one by one; the first bad line fails the order (its
/// items would be incomplete), naming the line.
pub fn parse_items(details: &str) -> Result<Vec<Item>, String> {
    let lines: Vec<&RawValue> = serde_json::from_str(details)
        .map_err(|e| format!("order details are not a list of lines: {e}"))?;
    lines
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_str::<Item>(raw.get()).map_err(|e| format!("details line {i}: {e}"))
        })
        .collect()
}

/// What is stored as an order's `raw`: the list record and the `data` of its details, both as
/// received, side by side (`details` is `null` while they could not be read). Built from the
/// received bytes, so the same inputs always give the same text and the same content hash.
pub fn stored_raw(order: &str, details: Option<&str>) -> String {
    let details = details.unwrap_or("null");
    let mut s = String::with_capacity(order.len() + details.len() + 24);
    s.push_str(r#"{"order":"#);
    s.push_str(order);
    s.push_str(r#","details":"#);
    s.push_str(details);
    s.push('}');
    s
}

/// A stored raw taken apart again.
#[derive(Debug, Deserialize)]
pub struct StoredRaw<'a> {
    #[serde(borrow)]
    pub order: &'a RawValue,
    #[serde(borrow, default)]
    pub details: Option<&'a RawValue>,
}

impl StoredRaw<'_> {
    /// The details as stored, `None` when they were never read.
    pub fn details(&self) -> Option<&str> {
        self.details.map(RawValue::get).filter(|d| *d != "null")
    }

    pub fn marks(&self) -> Option<Marks> {
        serde_json::from_str(self.order.get()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_raw_round_trips_byte_for_byte() {
        let order = r#"{"id":7,"order_number":100007,"modified":"2025-01-01T10:00:00+05:30"}"#;
        let details = r#"[{"id":1,"quantity":2,"price":"10.50","data":{"price":{"data":[]}}}]"#;
        let raw = stored_raw(order, Some(details));
        assert_eq!(raw, stored_raw(order, Some(details)));
        let back: StoredRaw<'_> = serde_json::from_str(&raw).unwrap();
        assert_eq!(back.order.get(), order);
        assert_eq!(back.details(), Some(details));
        assert_eq!(
            back.marks(),
            Some(Marks {
                modified: Some("2025-01-01T10:00:00+05:30".to_owned()),
                status: None
            })
        );
        let raw = stored_raw(order, None);
        let without: StoredRaw<'_> = serde_json::from_str(&raw).unwrap();
        assert_eq!(without.details(), None);
    }

    #[test]
    fn a_details_line_with_a_broken_id_fails_its_order_naming_the_line() {
        let ok = parse_items(r#"[{"id":"5","quantity":"2","price":"1.5","data":[]},{"id":null}]"#)
            .unwrap();
        assert_eq!(ok[0].id.as_deref(), Some("5"));
        assert_eq!(ok[0].quantity, Some(Decimal::from(2)));
        assert_eq!(ok[1].id, None);
        let err = parse_items(r#"[{"id":1},{"id":{"oops":true}}]"#).unwrap_err();
        assert!(err.starts_with("details line 1"), "{err}");
        assert!(parse_items(r#"{"id":1}"#).is_err());
    }

    #[test]
    fn a_list_record_needs_an_id_and_an_order_number() {
        let o: Order = serde_json::from_str(
            r#"{"id":"12","order_number":100012,"order_total":"19.9","status":"Shipped","data":[]}"#,
        )
        .unwrap();
        assert_eq!((o.id.as_str(), o.order_number.as_str()), ("12", "100012"));
        assert_eq!(o.order_total.unwrap().to_string(), "19.9");
        assert!(serde_json::from_str::<Order>(r#"{"id":12}"#).is_err());
        assert!(serde_json::from_str::<Order>(r#"{"id":[1],"order_number":1}"#).is_err());
    }
}
