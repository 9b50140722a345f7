//! The conformance scenarios against the Novashop simulator, a platform no built-in kind speaks:
//! it is read only through the shipped `rest` description (`config/platforms.d/rest-example.toml`),
//! so passing here shows a new platform can be added by configuration alone.

use chrono::{DateTime, Utc};
use ordersync_sim::novashop::{NovashopSim, SimOptions, TruthOrder};
use ordersync_sim::{Fault, Faults, RunningSim};
use rusqlite::Connection;
use rust_decimal::Decimal;

use super::{Credentials, Fixture, StatusChange};

const WRONG_SECRET: &str = "wrong-novashop-secret-4410";

/// One simulated Novashop shop.
pub struct Novashop {
    pub name: String,
    pub sim: NovashopSim,
    pub server: RunningSim,
    pub start: DateTime<Utc>,
}

impl Novashop {
    pub async fn open(name: &str, orders: usize) -> Novashop {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 1);
        let sim = NovashopSim::new(SimOptions {
            orders,
            start,
            spacing,
            ..SimOptions::default()
        });
        let server = sim.serve().await.unwrap();
        Novashop {
            name: name.to_string(),
            sim,
            server,
            start,
        }
    }

    /// The shipped description as this platform, with `extra` lines in its table.
    pub fn toml(&self, credentials: Credentials, extra: &str) -> String {
        let o = SimOptions::default();
        let secret = match credentials {
            Credentials::Right => o.client_secret.as_str(),
            Credentials::Wrong => WRONG_SECRET,
        };
        // Pages of 25, so the scenarios' 300 orders make a dozen pages for faults to land on.
        ordersync_sim::description::adapt(
            &super::described::example("rest-example.toml"),
            &self.name,
            &format!(
                "base_url = \"{url}\"\nbackfill_from = \"{from}\"\npage_size = 25\n\
                 max_requests_per_second = 1000\n{extra}",
                url = self.server.base_url(),
                from = (self.start - chrono::Duration::days(2)).to_rfc3339(),
            ),
            &format!(
                "client_id = \"{}\"\nclient_secret = \"{secret}\"",
                o.client_id
            ),
        )
    }

    /// The canonical status of a Novashop state, as the shipped `status_map` says.
    pub fn canonical(state: &str) -> &'static str {
        match state {
            "pending" => "pending",
            "paid" => "accepted",
            "packing" => "processing",
            "shipped" => "shipped",
            "delivered" => "delivered",
            "cancelled" => "cancelled",
            "refunded" => "returned",
            other => panic!("state {other} has no canonical status in the description"),
        }
    }

    /// The bearer tokens the simulator saw: credentials made from the secret.
    fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self
            .sim
            .requests()
            .into_iter()
            .flat_map(|r| r.headers)
            .filter(|(k, _)| k == "authorization")
            .filter_map(|(_, v)| v.strip_prefix("Bearer ").map(str::to_string))
            .collect();
        tokens.sort();
        tokens.dedup();
        tokens
    }
}

/// Asserts the store holds exactly `truth`, every field and line.
pub fn assert_store_matches(db: &Connection, platform: &str, truth: &[TruthOrder]) {
    let stored = crate::common::count(
        db,
        &format!("SELECT count(*) FROM orders WHERE platform = '{platform}'"),
    );
    assert_eq!(
        stored as usize,
        truth.len(),
        "orders stored vs on the platform"
    );
    let time = |s: Option<String>| {
        s.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .unwrap()
                .with_timezone(&Utc)
        })
    };
    let amount = |s: Option<String>| s.map(|s| s.parse::<Decimal>().unwrap());
    for t in truth {
        let id = t.id.to_string();
        let row: Vec<Option<String>> = db
            .query_row(
                "SELECT number, status, platform_status, placed_at, updated_at, currency, total, \
                        customer_name, tracking_number
                 FROM orders WHERE platform = ?1 AND order_id = ?2",
                [platform, &id],
                |r| (0..9).map(|i| r.get(i)).collect(),
            )
            .unwrap_or_else(|e| panic!("order {id} is not stored: {e}"));
        let text = |i: usize| row[i].clone();
        assert_eq!(text(0), Some(t.reference.clone()), "number of {id}");
        assert_eq!(
            text(1).as_deref(),
            Some(Novashop::canonical(&t.state)),
            "status of {id}"
        );
        assert_eq!(text(2), Some(t.state.clone()), "platform status of {id}");
        assert_eq!(time(text(3)), Some(t.created_at), "placed_at of {id}");
        assert_eq!(
            time(text(4)),
            DateTime::from_timestamp(t.updated, 0),
            "updated_at of {id}"
        );
        assert_eq!(text(5), Some(t.currency.clone()), "currency of {id}");
        assert_eq!(amount(text(6)), Some(t.total), "total of {id}");
        assert_eq!(text(7), Some(t.buyer_name.clone()), "buyer of {id}");
        assert_eq!(text(8), t.tracking_number, "tracking number of {id}");

        let lines: Vec<Vec<Option<String>>> = db
            .prepare(
                "SELECT item_id, sku, name, quantity, unit_price FROM order_items
                 WHERE platform = ?1 AND order_id = ?2 ORDER BY item_id",
            )
            .unwrap()
            .query_map([platform, &id], |r| (0..5).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut expected: Vec<_> = t.lines.iter().collect();
        expected.sort_by(|a, b| a.line_id.cmp(&b.line_id));
        assert_eq!(lines.len(), expected.len(), "lines of {id}");
        for (line, want) in lines.into_iter().zip(expected) {
            assert_eq!(
                line[0].as_deref(),
                Some(want.line_id.as_str()),
                "line of {id}"
            );
            assert_eq!(line[1].as_deref(), Some(want.sku.as_str()), "sku of {id}");
            assert_eq!(
                line[2].as_deref(),
                Some(want.title.as_str()),
                "title of {id}"
            );
            assert_eq!(
                amount(line[3].clone()),
                Some(Decimal::from(want.quantity)),
                "quantity of {id}"
            );
            assert_eq!(
                amount(line[4].clone()),
                Some(want.unit_price),
                "price of {id}"
            );
        }
    }
}

impl Fixture for Novashop {
    async fn start(name: &str, orders: usize) -> Self {
        Novashop::open(name, orders).await
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String {
        self.toml(credentials, extra)
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
            .find(|o| matches!(o.state.as_str(), "pending" | "paid"))
            .expect("the simulator has an open order");
        let next = if old.state == "pending" {
            "paid"
        } else {
            "packing"
        };
        self.sim.set_status(old.id, next);
        StatusChange {
            order_id: old.id.to_string(),
            new_status: Novashop::canonical(next),
        }
    }

    fn faults(&self) -> &Faults {
        self.sim.faults()
    }

    fn spoil_one_record(&self) {
        // A sync's first request is the login, which has no records to spoil.
        self.sim
            .faults()
            .push(Fault::Slow(std::time::Duration::ZERO));
        self.sim.faults().push(Fault::MalformedRecord);
    }

    fn list_path(&self) -> &'static str {
        "/v3/orders"
    }

    fn request_count(&self) -> usize {
        self.sim.request_count()
    }

    fn assert_requests_as_documented(&self) {
        for r in self.sim.requests() {
            assert!(
                r.status < 400,
                "answered {}: {} {}",
                r.status,
                r.method,
                r.path_and_query
            );
            if r.path_and_query.starts_with("/v3/") {
                assert!(
                    r.headers
                        .iter()
                        .any(|(k, v)| k == "authorization" && v.starts_with("Bearer ")),
                    "{} carries the Bearer token",
                    r.path_and_query
                );
            }
        }
    }

    fn secrets(&self) -> Vec<String> {
        let mut s = vec![
            SimOptions::default().client_secret,
            WRONG_SECRET.to_string(),
        ];
        s.extend(self.tokens());
        s
    }
}

super::scenarios::conformance_tests!(Novashop);
