//! Fuzzes Epixel's order-list page and order-details answer as the connector reads them
//! (`read_list`, `details`): the page shape, each record on its own, the details lines
//! (`parse_items`), and the order mapped with them.
#![no_main]

use std::collections::BTreeMap;

use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use ordersync::platforms::epixel::{map, wire};
use ordersync::platforms::lenient;
use ordersync::store::Incoming;

fuzz_target!(|data: &[u8]| {
    let details = serde_json::from_slice::<wire::DetailsPage<'_>>(data)
        .ok()
        .and_then(|d| wire::parse_items(d.data.get()).ok());
    let (text, repaired) = lenient::body_text(data);
    let Ok(list) = serde_json::from_str::<wire::ListPage<'_>>(&text) else {
        return;
    };
    let zone = FixedOffset::east_opt(0).unwrap();
    let mut details = details;
    for raw in &list.data.orders {
        if lenient::damaged_record(repaired, raw.get()).is_some() {
            continue;
        }
        if let Ok(w) = serde_json::from_str::<wire::Order>(raw.get()) {
            // A time in an undocumented form rejects the record, as the connector does.
            if let Ok(order) = map::to_canonical(w, details.take(), &BTreeMap::new(), zone) {
                let _ = Incoming::new(order, raw.get().to_string());
            }
        }
    }
});
