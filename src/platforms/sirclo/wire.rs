//! SIRCLO's JSON as the document shows it, read leniently: ids and amounts as numbers or text,
//! nulls wherever a value is optional, `order_number` or `order_id` for the number, `createdAt`
//! or `created_at`. Only the fields the canonical model needs are typed; each record is kept raw
//! beside them (its `updatedAt` text must survive byte for byte: the update endpoint compares it).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::platforms::lenient;

/// `GET /v1/partner/page/{pageNo}`. The records stay raw until each is read on its own, so one
/// bad record is rejected alone instead of failing its page.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    /// `None` for `null` or a missing key: Go services write an empty slice as `null`.
    #[serde(borrow, default)]
    pub data: Option<Vec<&'a RawValue>>,
    #[serde(default, deserialize_with = "opt_count")]
    pub total_record: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub order_number: Option<String>,
    /// What the create endpoint and some records call the number (docs/platforms/sirclo.md).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub order_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub delivery_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub airwaybill_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency_code: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total: Option<Decimal>,
    #[serde(default)]
    pub line_items: Option<Vec<LineItem>>,
    #[serde(
        default,
        rename = "createdAt",
        alias = "created_at",
        deserialize_with = "lenient::opt_string"
    )]
    pub created_at: Option<String>,
    #[serde(
        default,
        rename = "updatedAt",
        alias = "updated_at",
        deserialize_with = "lenient::opt_string"
    )]
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LineItem {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub sku: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub quantity: Option<Decimal>,
    /// The list shows `raw_price`; the create document calls it `unit_price` (after discount).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub unit_price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub raw_price: Option<Decimal>,
}

/// A record count as a number or numeric text; a negative or fractional count is no count.
fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(lenient::opt_decimal(d)?
        .filter(|n| n.fract().is_zero())
        .and_then(|n| n.to_u64()))
}
