//! MerchantPro's JSON as the document shows it, read leniently: ids as numbers or text, amounts
//! as numbers or text, nulls anywhere a value is optional. Only the fields the canonical model
//! needs are typed; the whole record is kept raw beside them.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::platforms::lenient;

/// `GET /api/v2/orders`: the records stay raw until each is read on its own, so one bad record
/// is rejected alone instead of failing its page.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    #[serde(borrow)]
    pub data: Vec<&'a RawValue>,
    #[serde(default)]
    pub meta: Option<Meta>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Meta {
    #[serde(default)]
    pub count: Option<Count>,
    #[serde(default)]
    pub links: Option<Links>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Count {
    #[serde(default)]
    pub total: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Links {
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Order {
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub shipping_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date_created: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub date_modified: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub billing_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub shipping_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub shipping_awb: Option<String>,
    #[serde(default)]
    pub line_items: Option<Vec<LineItem>>,
}

#[derive(Debug, Deserialize)]
pub struct LineItem {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub product_sku: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub product_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub variant_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub unit_price_gross: Option<Decimal>,
}
