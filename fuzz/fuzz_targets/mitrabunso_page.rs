//! Fuzzes Mitrabunso's order-list page and details answer as the connector reads them
//! (`read_list`, `whereabouts`): the page shape, then each record on its own, mapped to the
//! canonical order and hashed for the store.
#![no_main]

use std::collections::BTreeMap;

use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use ordersync::platforms::mitrabunso::{map, wire};
use ordersync::platforms::lenient;
use ordersync::store::Incoming;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<wire::DetailsPage>(data);
    let (text, repaired) = lenient::body_text(data);
    let Ok(list) = serde_json::from_str::<wire::ListPage<'_>>(&text) else {
        return;
    };
    let zone = FixedOffset::east_opt(7 * 3600).unwrap();
    for raw in &list.data {
        if lenient::damaged_record(repaired, raw.get()).is_some() {
            continue;
        }
        if let Ok(w) = serde_json::from_str::<wire::Record>(raw.get()) {
            // A time in an undocumented form rejects the record, as the connector does.
            if let Ok(order) = map::to_canonical(w, &BTreeMap::new(), zone) {
                let _ = Incoming::new(order, raw.get().to_string());
            }
        }
    }
});
