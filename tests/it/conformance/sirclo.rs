//! The conformance scenarios against the SIRCLO simulator.

use chrono::Utc;
use ordersync_sim::sirclo::SimOptions;
use ordersync_sim::{Fault, Faults};
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};
use crate::sirclo_sync::{
    Account, assert_store_matches, canonical, is_open, next_status, since_of_order,
};

const WRONG_SECRET: &str = "wrong-sirclo-secret-5120";

impl Fixture for Account {
    async fn start(name: &str, orders: usize) -> Self {
        Account::open(name, orders, chrono::Duration::seconds(90)).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let toml = Account::platform_toml(self, extra);
        match credentials {
            Credentials::Right => toml,
            Credentials::Wrong => toml.replace(&SimOptions::default().secret, WRONG_SECRET),
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
            .find(|t| is_open(t) && since_of_order(t) < Utc::now() - chrono::Duration::hours(1))
            .expect("the simulator has an old open order");
        let next = next_status(&old.status);
        self.sim.set_status(old.id, next);
        StatusChange {
            order_id: old.id.to_string(),
            new_status: canonical(next),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/v1/partner/page/"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    fn secrets(&self) -> Vec<String> {
        vec![SimOptions::default().secret, WRONG_SECRET.to_string()]
    }
}

super::scenarios::conformance_tests!(Account);
