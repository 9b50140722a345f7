//! Fuzzes Akinon's list pages as the connector reads them (`read_list`): the page shape, each
//! result read as an order and as an order item, and the order mapped with the page's items
//! attached (as the connector attaches the items it found for it).
#![no_main]

use std::collections::BTreeMap;

use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use ordersync::platforms::akinon::map::{self, RawItem};
use ordersync::platforms::akinon::wire;
use ordersync::platforms::lenient;
use ordersync::store::Incoming;

fuzz_target!(|data: &[u8]| {
    let (text, repaired) = lenient::body_text(data);
    let Ok(list) = serde_json::from_str::<wire::ListPage<'_>>(&text) else {
        return;
    };
    let items: Vec<RawItem> = list
        .results
        .iter()
        .filter(|r| lenient::damaged_record(repaired, r.get()).is_none())
        .filter_map(|r| {
            let item = serde_json::from_str::<wire::Item>(r.get()).ok()?;
            let _ = serde_json::from_str::<wire::ItemOrder>(r.get());
            Some(RawItem {
                item,
                raw: r.get().to_string(),
            })
        })
        .collect();
    let zone = FixedOffset::east_opt(0).unwrap();
    for raw in &list.results {
        if lenient::damaged_record(repaired, raw.get()).is_some() {
            continue;
        }
        if let Ok(o) = serde_json::from_str::<wire::Order>(raw.get()) {
            // A time in an undocumented form rejects the record, as the connector does.
            if let Ok(order) = map::to_canonical(o, &items, &BTreeMap::new(), zone) {
                let _ = Incoming::new(order, raw.get().to_string());
            }
        }
    }
});
