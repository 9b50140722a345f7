//! The conformance scenarios against the Akinon simulator.

use ordersync_sim::{Fault, Faults};
use rusqlite::Connection;

use super::{Credentials, Fixture, StatusChange};
use crate::akinon_sync::{Creds, Shop, TOKEN, assert_store_matches, canonical, header};

const WRONG_TOKEN: &str = "wrong-akinon-token-7702";

impl Fixture for Shop {
    async fn start(name: &str, orders: usize) -> Self {
        Shop::open(name, orders).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        let token = match credentials {
            Credentials::Right => TOKEN,
            Credentials::Wrong => WRONG_TOKEN,
        };
        self.toml(Creds::Token(token), extra)
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
            .find(|o| matches!(o.status, 100 | 200 | 300))
            .expect("the simulator has an open order");
        self.sim.set_status(&old.id, 500);
        StatusChange {
            order_id: old.id,
            new_status: canonical(500),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/api/i1/orders/"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    /// JSON with the bearer token, and never the header name the document misspells.
    fn assert_requests_as_documented(&self) {
        for r in self.sim.requests() {
            assert_eq!(r.status, 200, "{} {}", r.method, r.path_and_query);
            assert_eq!(
                header(&r, "content-type"),
                Some("application/json"),
                "{}",
                r.path_and_query
            );
            assert_eq!(
                header(&r, "authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(
                header(&r, "authentication"),
                None,
                "the document's typo is not sent"
            );
        }
    }

    fn secrets(&self) -> Vec<String> {
        vec![TOKEN.to_string(), WRONG_TOKEN.to_string()]
    }
}

super::scenarios::conformance_tests!(Shop);
