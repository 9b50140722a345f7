//! The conformance scenarios against built-in kinds' simulators, read through their `rest`
//! descriptions (`config/platforms.d/<kind>-rest-example.toml`): the same simulator, the same
//! scenarios, and a platform file that is the shipped example with the test's address and
//! credentials. A kind described this way must keep every promise its built-in driver keeps.

use std::path::Path;

use ordersync_sim::Faults;
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};

/// A built-in kind's fixture, its platform file replaced by the kind's `rest` description.
pub struct Described<F> {
    pub inner: F,
}

/// Which shipped description belongs to a fixture.
pub trait Description {
    /// The example file under `config/platforms.d/`.
    const FILE: &'static str;
}

impl Description for crate::common::Shop {
    const FILE: &'static str = "merchantpro-rest-example.toml";
}

impl Description for crate::sirclo_sync::Account {
    const FILE: &'static str = "sirclo-rest-example.toml";
}

/// The shipped description `file`, as the platform `name` at the address, start and
/// credentials of `builtin` (a built-in platform file for the same simulator, whose auth table
/// holds the same keys as the description's), with `extra` lines in its table.
pub fn describe(file: &str, name: &str, builtin: &str, extra: &str) -> String {
    let line = |key: &str| {
        builtin
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {builtin}"))
    };
    let auth = builtin
        .split_once(&format!("[platforms.{name}.auth]\n"))
        .expect("the built-in file has an auth table")
        .1;
    ordersync_sim::description::adapt(
        &example(file),
        name,
        &format!(
            "{}\n{}\nmax_requests_per_second = 1000\n{extra}",
            line("base_url"),
            line("backfill_from")
        ),
        auth.trim_end(),
    )
}

/// The shipped example `file` under `config/platforms.d/`.
pub fn example(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/platforms.d")
            .join(file),
    )
    .unwrap()
}

impl<F: Fixture + Description> Fixture for Described<F> {
    async fn start(name: &str, orders: usize) -> Self {
        Described {
            inner: F::start(name, orders).await,
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let builtin = self.inner.platform_toml(credentials, "");
        describe(F::FILE, self.inner.name(), &builtin, extra)
    }

    fn truth_len(&self) -> usize {
        self.inner.truth_len()
    }

    fn assert_store_equals_truth(&self, db: &Connection) {
        self.inner.assert_store_equals_truth(db)
    }

    fn change_an_old_orders_status(&self) -> StatusChange {
        self.inner.change_an_old_orders_status()
    }

    fn faults(&self) -> &Faults {
        self.inner.faults()
    }

    fn spoil_one_record(&self) {
        self.inner.spoil_one_record()
    }

    fn list_path(&self) -> &'static str {
        self.inner.list_path()
    }

    fn request_count(&self) -> usize {
        self.inner.request_count()
    }

    fn assert_requests_as_documented(&self) {
        self.inner.assert_requests_as_documented()
    }

    fn secrets(&self) -> Vec<String> {
        self.inner.secrets()
    }
}

/// Every stored order with its items, and every event in order, of `platform`, as text without
/// the platform's name or the times of the store's own bookkeeping.
fn stored(db: &Connection, platform: &str) -> (Vec<String>, Vec<String>) {
    let rows = |sql: &str| -> Vec<String> {
        let mut stmt = db.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([platform], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join(" "))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut orders = rows(
        "SELECT order_id, number, status, platform_status, placed_at, updated_at, currency, \
                total, customer_name, tracking_number, content_hash, raw
         FROM orders WHERE platform = ?1 ORDER BY order_id",
    );
    orders.extend(rows(
        "SELECT order_id, item_id, sku, name, quantity, unit_price, status
         FROM order_items WHERE platform = ?1 ORDER BY order_id, item_id",
    ));
    let events = rows(
        "SELECT order_id, kind, old_status, new_status, changes
         FROM order_events WHERE platform = ?1 ORDER BY id",
    );
    (orders, events)
}

/// The description and the built-in kind, syncing the same simulator side by side through a
/// first sync, status changes on old orders (found by each one's reconcile) and a full
/// re-read, store the same orders, items and events, row for row.
async fn the_description_stores_what_the_built_in_kind_stores<F: Fixture + Description>() {
    use ordersync::cli::SyncArgs;

    let shop = F::start("builtin", 300).await;
    let extra = "lookback = \"15m\"";
    let builtin = shop.platform_toml(Credentials::Right, extra);
    let renamed = builtin.replace("[platforms.builtin", "[platforms.described");
    let setup = crate::common::Setup::new();
    setup.add_platform_file("builtin.toml", &builtin);
    setup.add_platform_file(
        "described.toml",
        &describe(F::FILE, "described", &renamed, extra),
    );
    let sync = |full: bool| {
        let config = setup.config();
        async move {
            ordersync::cli::sync(
                config,
                SyncArgs {
                    full,
                    ..SyncArgs::default()
                },
            )
            .await
            .map_err(|e| format!("{:#}", e.error.expect("an error")))
            .unwrap()
        }
    };

    sync(false).await;
    let db = setup.db();
    let (orders, events) = stored(&db, "builtin");
    assert_eq!(
        events.len(),
        shop.truth_len(),
        "one created event per order"
    );
    assert_eq!(
        stored(&db, "described"),
        (orders, events),
        "after the first sync"
    );

    for _ in 0..2 {
        shop.change_an_old_orders_status();
        sync(false).await;
    }
    sync(true).await;

    let (orders, events) = stored(&db, "builtin");
    assert_eq!(events.len(), shop.truth_len() + 2, "one event per change");
    assert_eq!(
        stored(&db, "described"),
        (orders, events),
        "after the changes"
    );
    shop.assert_store_equals_truth(&db);
}

mod merchantpro_rest {
    use super::Described;
    use crate::common::Shop;

    crate::conformance::scenarios::conformance_tests!(Described<Shop>);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_description_stores_what_the_built_in_kind_stores() {
        super::the_description_stores_what_the_built_in_kind_stores::<Shop>().await;
    }
}

mod sirclo_rest {
    use super::Described;
    use crate::sirclo_sync::Account;

    crate::conformance::scenarios::conformance_tests!(Described<Account>);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_description_stores_what_the_built_in_kind_stores() {
        super::the_description_stores_what_the_built_in_kind_stores::<Account>().await;
    }
}
