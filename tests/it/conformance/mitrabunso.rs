//! The conformance scenarios against the Mitrabunso simulator.

use ordersync_sim::mitrabunso::SimOptions;
use ordersync_sim::{Fault, Faults};
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};
use crate::mitrabunso_sync::{Account, assert_store_matches, canonical};

const WRONG_TOKEN: &str = "wrong-mitrabunso-token-6253";

impl Fixture for Account {
    async fn start(name: &str, orders: usize) -> Self {
        Account::open(name, orders).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let toml = Account::platform_toml(self, extra);
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
            .find(|o| o.status == "NEW")
            .expect("the simulator has a NEW order");
        self.sim.set_status(&old.id, "PROCESSED");
        StatusChange {
            order_id: old.id,
            new_status: canonical("PROCESSED"),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/public/order/orders/list/"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    /// A sync only reads.
    fn assert_requests_as_documented(&self) {
        for r in self.sim.requests() {
            assert_eq!(r.method, "GET", "a sync only reads: {}", r.path_and_query);
        }
    }

    fn secrets(&self) -> Vec<String> {
        vec![SimOptions::default().token, WRONG_TOKEN.to_string()]
    }
}

super::scenarios::conformance_tests!(Account);
