//! The conformance scenarios against the Epixel simulator.

use ordersync_sim::epixel::SimOptions;
use ordersync_sim::{Fault, Faults};
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};
use crate::epixel_sync::{Auth, Store, assert_store_matches, canonical};

const WRONG_TOKEN: &str = "wrong-epixel-token-4491";

impl Fixture for Store {
    async fn start(name: &str, orders: usize) -> Self {
        Store::open(name, orders).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let toml = Store::platform_toml(self, Auth::Token, extra);
        match credentials {
            Credentials::Right => toml,
            Credentials::Wrong => toml.replace(&SimOptions::default().token, WRONG_TOKEN),
        }
    }

    fn truth_len(&self) -> usize {
        self.sim.truth().len()
    }

    fn assert_store_equals_truth(&self, db: &Connection) {
        assert_store_matches(db, &self.name, &self.sim.truth());
    }

    fn change_an_old_orders_status(&self) -> StatusChange {
        let old = self
            .sim
            .truth()
            .into_iter()
            .find(|o| ["Pending", "Confirmed", "Processing"].contains(&o.status.as_str()))
            .expect("the simulator has an open order");
        self.sim.set_status(old.id, "Shipped");
        StatusChange {
            order_id: old.id.to_string(),
            new_status: canonical("Shipped"),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/api/v1/commerce/all-orders/"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    fn secrets(&self) -> Vec<String> {
        let o = SimOptions::default();
        vec![o.api_key, o.token, WRONG_TOKEN.to_string()]
    }
}

super::scenarios::conformance_tests!(Store);
