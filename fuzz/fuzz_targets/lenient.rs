//! Fuzzes the lenient readers every kind shares: times in any zone form (`parse_time`), ids,
//! decimals and text of any JSON type.
#![no_main]

use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use ordersync::platforms::lenient;
use rust_decimal::Decimal;
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Fields {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    text: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    amount: Option<Decimal>,
    #[serde(deserialize_with = "lenient::id")]
    id: String,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for hours in [-12, 0, 7, 14] {
            let _ = lenient::parse_time(s, FixedOffset::east_opt(hours * 3600).unwrap());
        }
    }
    let _ = serde_json::from_slice::<Fields>(data);
});
