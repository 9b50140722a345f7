//! Reading a described platform's records into the canonical order by JSON pointers, as leniently
//! as the built-in kinds read theirs (ids as numbers or text, money as numbers or text, nulls
//! wherever a value is optional), and naming the field's key and pointer when a record cannot be
//! read, so the reject says what to fix.

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use serde_json::value::RawValue;

use super::request::Platform;
use crate::config::api::{Field, ItemsSpec, Pointer, RecordsSpec, TimeFormat};
use crate::model::{Item, Order};
use crate::platforms::{lenient, map_status};

/// An object key, borrowed from the answer unless it holds an escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One level of an object: its keys and their values, still raw. Reading a record this way
/// skips over what the mapping does not name without building it (a typed built-in kind skips
/// unknown fields the same way), which is most of a record.
fn members(raw: &RawValue) -> Option<Vec<(Key<'_>, &RawValue)>> {
    if !raw.get().trim_start().starts_with('{') {
        return None;
    }
    let map: Vec<(Key<'_>, &RawValue)> = serde_json::from_str::<MapVec<'_>>(raw.get()).ok()?.0;
    Some(map)
}

/// An object read into a list of members, in order.
struct MapVec<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for MapVec<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MapVec<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<MapVec<'de>, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(16));
                while let Some((k, v)) = a.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(MapVec(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The value at `tokens` below `raw`, reading only the objects and lists on the way.
fn walk<'a>(raw: &'a RawValue, tokens: &[String]) -> Option<&'a RawValue> {
    let mut at = raw;
    for token in tokens {
        let text = at.get().trim_start();
        at = if text.starts_with('{') {
            members(at)?
                .into_iter()
                .find(|(k, _)| k.0 == token.as_str())
                .map(|(_, v)| v)?
        } else if text.starts_with('[') {
            let list: Vec<&'a RawValue> = serde_json::from_str(at.get()).ok()?;
            list.get(token.parse::<usize>().ok()?).copied()?
        } else {
            return None;
        };
    }
    Some(at)
}

/// The raw value at `pointer` in `raw`, for a single lookup; `None` where the pointer leads
/// nowhere. A document read by several pointers is a [`Record`].
pub fn raw_at<'a>(raw: &'a RawValue, pointer: &Pointer) -> Option<&'a RawValue> {
    walk(raw, pointer.tokens())
}

/// A JSON document (an answer, a record) read by several pointers: its top level is read once,
/// where most pointers start, and only the values they lead to below it.
pub struct Record<'a> {
    raw: &'a RawValue,
    top: Option<Vec<(Key<'a>, &'a RawValue)>>,
}

impl<'a> Record<'a> {
    pub fn new(raw: &'a RawValue) -> Self {
        Record {
            raw,
            top: members(raw),
        }
    }

    /// The value at `pointer`, `None` when absent or null.
    pub fn at(&self, pointer: &Pointer) -> Option<&'a RawValue> {
        self.get(pointer.tokens())
    }

    fn get(&self, tokens: &[String]) -> Option<&'a RawValue> {
        let found = match (tokens.split_first(), &self.top) {
            (None, _) => Some(self.raw),
            (Some((first, rest)), Some(top)) => top
                .iter()
                .find(|(k, _)| k.0 == first.as_str())
                .and_then(|(_, v)| walk(v, rest)),
            (Some(_), None) => walk(self.raw, tokens),
        };
        found.filter(|v| v.get() != "null")
    }
}

/// A count written as a number or numeric text.
pub fn count(raw: &str) -> Option<u64> {
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text written as a string or a number (a cursor, a link).
pub fn text_of(raw: &str) -> Option<String> {
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One record, from its raw JSON; the error is the reject's reason.
pub fn read(spec: &RecordsSpec, platform: &Platform, raw: &RawValue) -> Result<Order, String> {
    let record = &Record::new(raw);
    let get = |f: &Option<Field>| f.as_ref().and_then(|f| lookup(f, record, None));
    let order_id = match lookup(&spec.id, record, None) {
        Some(v) => id(&spec.id, &v)?,
        None => {
            return Err(format!(
                "no order id at {} ({})",
                spec.id.describe(),
                spec.id.key
            ));
        }
    };
    let text = |f: &Option<Field>| -> Result<Option<String>, String> {
        match (f, get(f)) {
            (Some(f), Some(v)) => text(f, &v),
            _ => Ok(None),
        }
    };
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let time = |f: &Option<Field>| -> Result<Option<DateTime<Utc>>, String> {
        match (f, get(f)) {
            (Some(f), Some(v)) => time(f, &v, platform.zone),
            _ => Ok(None),
        }
    };
    let platform_status = text(&spec.status)?.unwrap_or_default();
    let items = match &spec.items {
        Some(items) => self::items(items, record)?,
        None => Vec::new(),
    };
    Ok(Order {
        number: nonempty(text(&spec.number)?).unwrap_or_else(|| order_id.clone()),
        status: map_status(&platform.status_map, &platform_status, |_| None),
        platform_status,
        placed_at: time(&spec.placed_at)?,
        updated_at: time(&spec.updated_at)?,
        currency: nonempty(text(&spec.currency)?),
        total: match (&spec.total, get(&spec.total)) {
            (Some(f), Some(v)) => decimal(f, &v)?,
            _ => None,
        },
        customer_name: nonempty(text(&spec.customer_name)?),
        tracking_number: nonempty(text(&spec.tracking_number)?),
        order_id,
        items,
    })
}

/// The lines; a missing id is the line's position, a repeated one gets `#<position>` added, so
/// two lines never share a row.
fn items(spec: &ItemsSpec, record: &Record<'_>) -> Result<Vec<Item>, String> {
    let Some(raw) = record.get(spec.list.tokens()) else {
        return Ok(Vec::new());
    };
    let lines: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
        format!(
            "`{}` (records.items.list) holds something other than a list of lines",
            spec.list
        )
    })?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let position = i + 1;
        let line = &Record::new(line);
        let get = |f: &Option<Field>| f.as_ref().and_then(|f| lookup(f, line, Some(position)));
        let text = |f: &Option<Field>| -> Result<Option<String>, String> {
            match (f, get(f)) {
                (Some(f), Some(v)) => text(f, &v),
                _ => Ok(None),
            }
        };
        let dec = |f: &Option<Field>| -> Result<Option<Decimal>, String> {
            match (f, get(f)) {
                (Some(f), Some(v)) => decimal(f, &v),
                _ => Ok(None),
            }
        };
        let item_id = match text(&spec.id)?.map(|s| s.trim().to_string()) {
            Some(id) if !id.is_empty() && seen.insert(id.clone()) => id,
            Some(id) if !id.is_empty() => format!("{id}#{position}"),
            _ if spec.id.is_none() => position.to_string(),
            _ => format!("#{position}"),
        };
        out.push(Item {
            item_id,
            sku: text(&spec.sku)?,
            name: text(&spec.name)?,
            quantity: dec(&spec.quantity)?.unwrap_or(Decimal::ONE),
            unit_price: dec(&spec.unit_price)?,
            status: text(&spec.status)?,
        });
    }
    Ok(out)
}

/// What a field found: a value in the record, or its template's rendering.
enum Found {
    Value(Value),
    Text(String),
}

/// A leaf of a record as a value; an object or a list is not built, only named.
fn leaf(raw: &RawValue) -> Value {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Value::Object(serde_json::Map::new()),
        Some(b'[') => Value::Array(Vec::new()),
        _ => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
    }
}

/// The field's value: its template when every pointer it names holds a value, else the first
/// of its pointers holding one that is neither blank nor ignored; failing that, a blank text
/// the pointers did hold (a blank SKU is the platform's, not missing).
fn lookup(f: &Field, record: &Record<'_>, index: Option<usize>) -> Option<Found> {
    if let Some(t) = &f.template {
        let rendered = t.render(|name| {
            if name == "index" {
                return index.map(|i| Cow::Owned(i.to_string()));
            }
            let p = Pointer::parse(name).ok()?;
            let s = scalar_text(&leaf(record.get(p.tokens())?))?;
            (!s.trim().is_empty()).then_some(Cow::Owned(s))
        });
        if let Some(text) = rendered {
            return Some(Found::Text(text));
        }
    }
    let mut blank = None;
    for p in &f.pointers {
        let Some(raw) = record.get(p.tokens()) else {
            continue;
        };
        let v = leaf(raw);
        let ignored =
            scalar_text(&v).is_some_and(|s| f.ignore.iter().any(|i| i.trim() == s.trim()));
        if ignored {
            continue;
        }
        if matches!(&v, Value::String(s) if s.trim().is_empty()) {
            blank.get_or_insert(v);
            continue;
        }
        return Some(Found::Value(v));
    }
    blank.map(Found::Value)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number's text as the built-in kinds write it: an integer as such, a float as the shortest
/// text that reads back to it.
fn number_text(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => u.to_string(),
        (_, Some(i), _) => i.to_string(),
        (_, _, Some(f)) => f.to_string(),
        _ => n.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Null => "null",
    }
}

fn wrong(f: &Field, v: &Value, expected: &str) -> String {
    format!(
        "{} holds {} where {expected} is expected ({})",
        f.describe(),
        kind_of(v),
        f.key
    )
}

fn id(f: &Field, found: &Found) -> Result<String, String> {
    let id = match found {
        Found::Text(t) => t.trim().to_string(),
        Found::Value(Value::String(s)) => s.trim().to_string(),
        Found::Value(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Found::Value(v) => return Err(wrong(f, v, "an id (text or a whole number)")),
    };
    if id.is_empty() {
        return Err(format!(
            "the order id at {} is empty ({})",
            f.describe(),
            f.key
        ));
    }
    Ok(id)
}

fn text(f: &Field, found: &Found) -> Result<Option<String>, String> {
    match found {
        Found::Text(t) => Ok(Some(t.clone())),
        Found::Value(v) => match scalar_text(v) {
            Some(s) => Ok(Some(s)),
            None => Err(wrong(f, v, "text")),
        },
    }
}

fn decimal(f: &Field, found: &Found) -> Result<Option<Decimal>, String> {
    let text = match found {
        Found::Text(t) => t.clone(),
        Found::Value(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(Decimal::from(u)));
            }
            if let Some(i) = n.as_i64() {
                return Ok(Some(Decimal::from(i)));
            }
            number_text(n)
        }
        Found::Value(Value::String(s)) => s.clone(),
        Found::Value(v) => return Err(wrong(f, v, "an amount (a number or numeric text)")),
    };
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map(|d| Some(d.normalize()))
        .map_err(|_| {
            format!(
                "{} holds {t:?}, which is not an amount ({})",
                f.describe(),
                f.key
            )
        })
}

fn time(f: &Field, found: &Found, zone: FixedOffset) -> Result<Option<DateTime<Utc>>, String> {
    let (text, number) = match found {
        Found::Text(t) => (t.clone(), None),
        Found::Value(Value::String(s)) => (s.clone(), None),
        Found::Value(Value::Number(n)) => (number_text(n), n.as_i64()),
        Found::Value(v) => return Err(wrong(f, v, "a time")),
    };
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let local = |n: NaiveDateTime| {
        zone.from_local_datetime(&n)
            .single()
            .map(|t| t.with_timezone(&Utc))
    };
    let parsed = match &f.format {
        TimeFormat::Auto => lenient::parse_time(t, zone),
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        TimeFormat::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .and_then(|d| local(d.and_hms_opt(0, 0, 0)?)),
        TimeFormat::EpochSeconds => number
            .or_else(|| t.parse().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        TimeFormat::EpochMillis => number
            .or_else(|| t.parse().ok())
            .and_then(DateTime::from_timestamp_millis),
        TimeFormat::Pattern(p) => DateTime::parse_from_str(t, p)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(t, p).ok().and_then(local)),
    };
    match parsed {
        Some(t) => Ok(Some(t)),
        None => Err(format!(
            "{} holds {t:?}, which is not a time in the configured format ({}): {}",
            f.describe(),
            match &f.format {
                TimeFormat::Auto =>
                    "RFC 3339, or YYYY-MM-DD HH:MM:SS in the platform's timezone".to_string(),
                TimeFormat::Rfc3339 => "RFC 3339".to_string(),
                TimeFormat::Date => "YYYY-MM-DD".to_string(),
                TimeFormat::EpochSeconds => "epoch seconds".to_string(),
                TimeFormat::EpochMillis => "epoch milliseconds".to_string(),
                TimeFormat::Pattern(p) => format!("pattern {p:?}"),
            },
            f.key
        )),
    }
}
