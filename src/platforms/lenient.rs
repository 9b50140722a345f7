//! Lenient readers for platform JSON. Real platforms send numbers as strings, ids as numbers or
//! strings and nulls where a document promises values; these accept every spelling of a value
//! and reject only what is truly not that value (an object where an id belongs), so one odd
//! field does not cost the whole record.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};

/// An id: a string or an integer, returned as text. Anything else is an error (the record is
/// rejected, since an order without an id cannot be stored).
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an id (string or integer)")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            let v = v.trim();
            if v.is_empty() {
                Err(E::custom("empty id"))
            } else {
                Ok(v.to_string())
            }
        }
    }
    d.deserialize_any(V)
}

/// Optional text: strings, and numbers or booleans written as text. Null gives `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("text")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }
    d.deserialize_any(V)
}

/// Optional exact decimal from a JSON number or a numeric string.
///
/// A JSON number arrives as f64; Rust prints an f64 as the shortest text that reads back to the
/// same value, which for money (at most 15 significant digits) is exactly the text the platform
/// wrote, so `526.55` stays `526.55`, never `526.5499999`.
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            decimal_text(&v.to_string()).map(Some).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            decimal_text(v).map(Some).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

fn decimal_text(s: &str) -> Result<Decimal, String> {
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map(|d| d.normalize())
        .map_err(|e| format!("'{s}' is not a decimal number: {e}"))
}

/// A list answer's body as text. Bytes that are not UTF-8 (a Latin-1 name from a PHP back end)
/// are replaced with U+FFFD rather than failing the page, which would fail it on every retry and
/// every run: the platform would be stuck on that page for good. `true` says the text was
/// repaired; the caller then rejects every record holding U+FFFD ([`damaged_record`]), since a
/// replaced byte may sit in an id and a guessed id would store an order that does not exist.
pub fn body_text(body: &[u8]) -> (std::borrow::Cow<'_, str>, bool) {
    // `from_utf8` first: it is vectorised, while `from_utf8_lossy` walks the body chunk by chunk
    // even when nothing needs replacing (7 % of a no-change pass's CPU).
    match std::str::from_utf8(body) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), false),
        Err(_) => (String::from_utf8_lossy(body), true),
    }
}

/// The reject reason for a record of a repaired body ([`body_text`]) that holds a replaced byte.
pub fn damaged_record(repaired: bool, raw: &str) -> Option<String> {
    (repaired && raw.contains('\u{FFFD}')).then(|| {
        "the record holds bytes that are not UTF-8 (shown as U+FFFD); not stored, since they may \
         be in its id"
            .to_string()
    })
}

/// One record of a list answer read on its own: a record damaged by the body's repair is
/// refused ([`damaged_record`]), any other is deserialized, and the error is the reject reason.
/// Every kind reads its records through this, so one bad record never fails its page.
pub fn read_record<T: serde::de::DeserializeOwned>(repaired: bool, raw: &str) -> Result<T, String> {
    match damaged_record(repaired, raw) {
        Some(reason) => Err(reason),
        None => serde_json::from_str::<T>(raw).map_err(|e| e.to_string()),
    }
}

/// A time field holding a form no platform document shows (epoch seconds or milliseconds,
/// `dd/mm/yyyy`, a word). Guessing could store a wrong instant, and storing no time would hide
/// the record from every window and report that reads by time, so its record is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} {value:?} is not a time this platform documents (RFC 3339, or YYYY-MM-DD HH:MM:SS \
     read in the platform's `timezone`); the record is stored once the platform sends a time"
)]
pub struct BadTime {
    pub field: &'static str,
    pub value: String,
}

/// A record's time field: absent, null or blank is no time; a documented form (see
/// [`parse_time`]) is its instant; anything else is [`BadTime`].
pub fn time_field(
    field: &'static str,
    value: Option<&str>,
    naive_zone: FixedOffset,
) -> Result<Option<DateTime<Utc>>, BadTime> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => parse_time(v, naive_zone).map(Some).ok_or_else(|| BadTime {
            field,
            value: v.to_string(),
        }),
    }
}

/// The order id of a record that could not be read, at `pointer` in its raw JSON, read as
/// [`id`] reads it: so a reject can be cleared once the order is stored. `None` when the record
/// has no usable id there, or one holding a replaced byte (U+FFFD), which cannot be trusted.
pub fn record_id(raw: &str, pointer: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let id = match v.pointer(pointer)? {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    (!id.is_empty() && !id.contains('\u{FFFD}')).then_some(id)
}

/// A time as platforms write it: RFC 3339 with an offset, or a naive `YYYY-MM-DD HH:MM:SS[.f]`
/// (also with `T`) read in `naive_zone`.
pub fn parse_time(s: &str, naive_zone: FixedOffset) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return naive_zone
                .from_local_datetime(&n)
                .single()
                .map(|t| t.with_timezone(&Utc));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return naive_zone
            .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .single()
            .map(|t| t.with_timezone(&Utc));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "id")]
        id: String,
        #[serde(default, deserialize_with = "opt_decimal")]
        amount: Option<Decimal>,
        #[serde(default, deserialize_with = "opt_string")]
        text: Option<String>,
    }

    #[test]
    fn money_written_as_a_float_keeps_its_exact_decimal_text() {
        let t: T = serde_json::from_str(r#"{"id": 7, "amount": 526.55}"#).unwrap();
        assert_eq!(t.amount.unwrap().to_string(), "526.55");
        let t: T = serde_json::from_str(r#"{"id": "7", "amount": "0.1"}"#).unwrap();
        assert_eq!(t.amount.unwrap().to_string(), "0.1");
        let t: T = serde_json::from_str(r#"{"id": 7, "amount": 13379.85}"#).unwrap();
        assert_eq!(t.amount.unwrap().to_string(), "13379.85");
    }

    #[test]
    fn ids_and_text_accept_numbers_and_strings_but_not_objects() {
        let t: T = serde_json::from_str(r#"{"id": "A-1", "text": 12}"#).unwrap();
        assert_eq!((t.id.as_str(), t.text.as_deref()), ("A-1", Some("12")));
        assert!(serde_json::from_str::<T>(r#"{"id": {"x": 1}}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"amount": 1}"#).is_err());
    }

    #[test]
    fn a_body_with_bad_bytes_is_repaired_and_only_its_damaged_records_flagged() {
        let (text, repaired) = body_text(br#"[{"id":1},{"id":2}]"#);
        assert!(!repaired && damaged_record(repaired, &text).is_none());
        let (text, repaired) = body_text(b"[{\"id\":1},{\"name\":\"Ana \xE9\"}]");
        assert!(repaired);
        let records: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text).unwrap();
        assert!(damaged_record(repaired, records[0].get()).is_none());
        assert!(
            damaged_record(repaired, records[1].get())
                .unwrap()
                .contains("not UTF-8")
        );
        // A U+FFFD the platform itself sent is data, not damage.
        assert!(damaged_record(false, "{\"name\":\"\u{FFFD}\"}").is_none());
    }

    #[test]
    fn times_with_and_without_zones_are_read() {
        let utc7 = FixedOffset::east_opt(7 * 3600).unwrap();
        assert_eq!(
            parse_time("2020-03-26T15:47:08+02:00", utc7)
                .unwrap()
                .to_rfc3339(),
            "2020-03-26T13:47:08+00:00"
        );
        assert_eq!(
            parse_time("2021-01-02 07:00:00", utc7)
                .unwrap()
                .to_rfc3339(),
            "2021-01-02T00:00:00+00:00"
        );
        assert!(parse_time("yesterday", utc7).is_none());
    }

    #[test]
    fn a_time_field_in_an_undocumented_form_names_the_field_and_the_value() {
        let utc7 = FixedOffset::east_opt(7 * 3600).unwrap();
        assert_eq!(time_field("createdAt", None, utc7), Ok(None));
        assert_eq!(time_field("createdAt", Some("  "), utc7), Ok(None));
        assert_eq!(
            time_field("createdAt", Some("2021-01-02 07:00:00"), utc7)
                .unwrap()
                .map(|t| t.to_rfc3339()),
            Some("2021-01-02T00:00:00+00:00".to_string())
        );
        for bad in ["1733140000", "1733140000000", "27/05/2019", "2022-02-30"] {
            let e = time_field("date_created", Some(bad), utc7).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!(
                    "date_created \"{bad}\" is not a time this platform documents"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn a_rejected_records_id_is_read_where_it_is_usable() {
        assert_eq!(
            record_id(r#"{"id": 7, "total": {}}"#, "/id").as_deref(),
            Some("7")
        );
        assert_eq!(
            record_id(r#"{"id": " A-1 "}"#, "/id").as_deref(),
            Some("A-1")
        );
        assert_eq!(
            record_id(r#"{"order": {"order_id": "x9"}}"#, "/order/order_id").as_deref(),
            Some("x9")
        );
        for raw in [
            r#"{"id": {"x": 1}}"#,
            r#"{"id": ""}"#,
            r#"{"id": 1.5}"#,
            r#"{"total": 1}"#,
            "{\"id\": \"1\u{FFFD}\"}",
            "not json",
        ] {
            assert_eq!(record_id(raw, "/id"), None, "{raw}");
        }
    }
}
