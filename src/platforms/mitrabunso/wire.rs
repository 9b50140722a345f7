//! Mitrabunso's JSON as `docs/platforms/mitrabunso.md` describes it, read leniently: numbers as
//! numbers or text (`"qty":"1"`, `"shippingCost":"0"`), nulls wherever a value may be missing.
//! Only the fields the canonical model needs are typed, so an odd value in a field ordersync does
//! not use never costs a record; the whole record is kept raw beside them.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::platforms::lenient;

/// `GET /public/order/orders/list/…`: `{"message", "data": [...], "total", "show"}`. The records
/// stay raw until each is read on its own, so one bad record is rejected alone.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    /// Required: an answer without `data` is not a list (a 200 carrying only an error message
    /// must fail the request, not read as an empty page that ends the scan). `null` is an empty
    /// list, as PHP back ends write it.
    #[serde(borrow, deserialize_with = "nullable_records")]
    pub data: Vec<&'a RawValue>,
    /// The size of the whole (filtered) listing.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total: Option<Decimal>,
}

fn nullable_records<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<&'de RawValue>, D::Error> {
    Ok(Option::<Vec<&'de RawValue>>::deserialize(d)?.unwrap_or_default())
}

/// One element of `data`.
#[derive(Debug, Deserialize)]
pub struct Record {
    /// Carries the id, so it is the one part a record cannot do without.
    pub order: OrderPart,
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    pub details: Option<Vec<Detail>>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(
        rename = "updatedAWB",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub updated_awb: Option<String>,
    #[serde(
        rename = "updatedInvoice",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub updated_invoice: Option<String>,
    #[serde(
        rename = "createdAt",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub created_at: Option<String>,
    #[serde(
        rename = "processedAt",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub processed_at: Option<String>,
    #[serde(rename = "sentAt", default, deserialize_with = "lenient::opt_string")]
    pub sent_at: Option<String>,
}

/// The record's `order` object.
#[derive(Debug, Deserialize)]
pub struct OrderPart {
    #[serde(deserialize_with = "lenient::id")]
    pub order_id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub invoice: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub awb: Option<String>,
    #[serde(
        rename = "totalCost",
        default,
        deserialize_with = "lenient::opt_decimal"
    )]
    pub total_cost: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
pub struct Customer {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
}

/// One line of `details`.
#[derive(Debug, Deserialize)]
pub struct Detail {
    #[serde(
        rename = "productId",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub product_id: Option<String>,
    #[serde(
        rename = "productName",
        default,
        deserialize_with = "lenient::opt_string"
    )]
    pub product_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub qty: Option<Decimal>,
    #[serde(
        rename = "productPrice",
        default,
        deserialize_with = "lenient::opt_decimal"
    )]
    pub product_price: Option<Decimal>,
    #[serde(
        rename = "totalPrice",
        default,
        deserialize_with = "lenient::opt_decimal"
    )]
    pub total_price: Option<Decimal>,
}

/// `GET /public/order/orders/details/{id_user}/{id_order}`: only what tells where an order went
/// (its status, or that it was deleted). The document shows `data.order` as a one-element list;
/// a bare object is read the same way.
#[derive(Debug, Deserialize)]
pub struct DetailsPage {
    pub data: Option<DetailsData>,
}

#[derive(Debug, Deserialize)]
pub struct DetailsData {
    #[serde(default, deserialize_with = "one_or_many")]
    pub order: Vec<DetailsOrder>,
}

#[derive(Debug, Deserialize)]
pub struct DetailsOrder {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub deleted_at: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DetailsOrder>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<DetailsOrder>),
        One(DetailsOrder),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(o)) => vec![o],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_example_record_reads_with_its_string_numbers() {
        let r: Record = serde_json::from_str(
            r#"{"customer":{"name":"Luthfi","provinceCode":null},"sender":{"name":"E"},
                "order":{"invoice":"INV1","shippingCost":"0","awb":"TJE1","totalCost":70000,
                         "printType":"2","order_id":"b5d588bc-afc5-45f5-a6d5-dde8ef3a20b0"},
                "details":[{"productId":"p1","qty":"1","productPrice":"70000","totalPrice":70000,
                            "productName":"Case"}],
                "updatedAWB":"TJE2","createdAt":"2022-09-20 05:36:50","processedAt":null,
                "sentAt":null,"status":"NEW","updatedInvoice":"INV2"}"#,
        )
        .unwrap();
        assert_eq!(r.order.order_id, "b5d588bc-afc5-45f5-a6d5-dde8ef3a20b0");
        assert_eq!(r.order.total_cost, Some(Decimal::from(70000)));
        let d = &r.details.as_ref().unwrap()[0];
        assert_eq!(
            (d.qty, d.product_price),
            (Some(Decimal::ONE), Some(Decimal::from(70000)))
        );
        assert_eq!(r.updated_awb.as_deref(), Some("TJE2"));
    }

    #[test]
    fn a_record_without_an_order_id_or_with_an_object_for_it_is_refused() {
        assert!(serde_json::from_str::<Record>(r#"{"order":{"invoice":"X"}}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"order":{"order_id":{"oops":true}}}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"status":"NEW"}"#).is_err());
    }

    #[test]
    fn a_list_needs_data_but_takes_null_for_none() {
        let p: ListPage<'_> = serde_json::from_str(r#"{"data":null,"total":"0"}"#).unwrap();
        assert!(p.data.is_empty());
        assert_eq!(p.total, Some(Decimal::ZERO));
        assert!(serde_json::from_str::<ListPage<'_>>(r#"{"message":"Unauthenticated."}"#).is_err());
    }

    #[test]
    fn details_read_a_list_or_a_bare_object() {
        let p: DetailsPage =
            serde_json::from_str(r#"{"data":{"order":[{"status":"SENT","deleted_at":null}]}}"#)
                .unwrap();
        assert_eq!(p.data.unwrap().order[0].status.as_deref(), Some("SENT"));
        let p: DetailsPage = serde_json::from_str(
            r#"{"data":{"order":{"status":"NEW","deleted_at":"2022-10-11 15:08:14"}}}"#,
        )
        .unwrap();
        assert!(p.data.unwrap().order[0].deleted_at.is_some());
    }
}
