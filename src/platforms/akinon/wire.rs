//! Akinon's JSON as the document shows it, read leniently: Django-REST list envelopes
//! (`{count, next, previous, results}`), order and order-item records, and the token answer of
//! `POST /api/i1/token/obtain/`. Only the fields the canonical model needs are typed; each record
//! stays raw beside its typed form, so one bad record is rejected alone.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::value::RawValue;

use crate::platforms::lenient;

/// A DRF list page. The records stay raw until each is read on its own.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub next: Option<String>,
    #[serde(borrow)]
    pub results: Vec<&'a RawValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub number: Option<String>,
    /// An integer enum (100…900) on the wire; text here, so unknown values are kept as sent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date_placed: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub tracking_number: Option<String>,
    // The document's example has no update time at all (docs/platforms/akinon.md: tolerated); other
    // Akinon endpoints call it `modified_date`, so either spelling is taken when present.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub modified_date: Option<String>,
    /// Whether the record has an `order_items` key of its own (even null): the stored raw
    /// order carries its items under that key, and must not get it twice.
    #[serde(default, rename = "order_items", deserialize_with = "present")]
    pub has_order_items: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    #[serde(deserialize_with = "order_ref")]
    pub order: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub tracking_number: Option<String>,
}

/// The one field of an item that says where it belongs, for records too broken to read whole.
#[derive(Debug, Deserialize)]
pub struct ItemOrder {
    #[serde(deserialize_with = "order_ref")]
    pub order: String,
}

/// `POST /api/i1/token/obtain/` (simplejwt: `{"refresh", "access"}`).
#[derive(Debug, Deserialize)]
pub struct TokenPair {
    pub access: String,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    de::IgnoredAny::deserialize(d).map(|_| true)
}

/// An item's `order`: the order's id, or (as some Akinon endpoints expand it) an object
/// holding that id.
fn order_ref<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ref {
        Id(#[serde(deserialize_with = "lenient::id")] String),
        Expanded {
            #[serde(deserialize_with = "lenient::id")]
            id: String,
        },
    }
    match Ref::deserialize(d) {
        Ok(Ref::Id(id) | Ref::Expanded { id }) => Ok(id),
        Err(_) => Err(de::Error::custom(
            "`order` is not an order id (string, integer, or object with an id)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_order_is_an_id_or_an_object_holding_one() {
        let i: Item = serde_json::from_str(r#"{"id":"a1","order":"o1","status":100}"#).unwrap();
        assert_eq!((i.order.as_str(), i.status.as_deref()), ("o1", Some("100")));
        let i: Item = serde_json::from_str(r#"{"id":"a1","order":{"id":"o2"}}"#).unwrap();
        assert_eq!(i.order, "o2");
        assert!(serde_json::from_str::<Item>(r#"{"id":"a1","order":[1]}"#).is_err());
        assert!(serde_json::from_str::<Item>(r#"{"id":"a1"}"#).is_err());
    }

    #[test]
    fn orders_without_times_or_optional_fields_are_read() {
        let o: Order = serde_json::from_str(
            r#"{"id":"e819386c","number":"45243493","status":100,"amount":"629.00",
                "currency":"usd","tracking_number":null}"#,
        )
        .unwrap();
        assert_eq!(o.amount.unwrap().to_string(), "629");
        assert!(o.updated_at.is_none() && o.date_placed.is_none() && !o.has_order_items);
        let o: Order = serde_json::from_str(r#"{"id":"e8","order_items":null}"#).unwrap();
        assert!(o.has_order_items);
        assert!(serde_json::from_str::<Order>(r#"{"id":{"oops":true}}"#).is_err());
    }
}
