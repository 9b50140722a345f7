//! The conformance scenarios against the MerchantPro simulator.

use ordersync_sim::merchantpro::SimOptions;
use ordersync_sim::{Fault, Faults};
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};
use crate::common::{Shop, assert_store_matches, canonical};

const WRONG_SECRET: &str = "wrong-merchantpro-secret-3318";

impl Fixture for Shop {
    async fn start(name: &str, orders: usize) -> Self {
        Shop::open(name, orders).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let toml = Shop::platform_toml(self, extra);
        match credentials {
            Credentials::Right => toml,
            Credentials::Wrong => toml.replace(&SimOptions::default().api_secret, WRONG_SECRET),
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
            .find(|o| matches!(o.shipping_status.as_str(), "awaiting" | "confirmed"))
            .expect("the simulator has an open order");
        self.sim.set_status(old.id, "shipped");
        StatusChange {
            order_id: old.id.to_string(),
            new_status: canonical("shipped"),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/api/v2/orders"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    fn secrets(&self) -> Vec<String> {
        let o = SimOptions::default();
        let basic = |secret: &str| {
            ordersync_sim::basic_auth_header(&o.api_key, secret)
                .trim_start_matches("Basic ")
                .to_string()
        };
        vec![
            o.api_key.clone(),
            o.api_secret.clone(),
            WRONG_SECRET.to_string(),
            basic(&o.api_secret),
            basic(WRONG_SECRET),
        ]
    }
}

super::scenarios::conformance_tests!(Shop);
