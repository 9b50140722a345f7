//! The conformance scenarios against the Novashop simulator, a platform no built-in kind speaks:
//! it is read only through the shipped `rest` description (`config/platforms.d/rest-example.toml`),
//! so passing here shows a new platform can be added by configuration alone.

use std::collections::BTreeMap;

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
        let settings = format!(
            "base_url = \"{url}\"\nbackfill_from = \"{from}\"\n\
             [platforms.{name}.auth]\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n",
            url = self.server.base_url(),
            from = (self.start - chrono::Duration::days(2)).to_rfc3339(),
            name = self.name,
            id = o.client_id,
        );
        // Pages of 25, so the scenarios' 300 orders make a dozen pages for faults to land on.
        super::described::describe("rest-example.toml", &self.name, &settings, extra)
            .replace("\npage_size = 100\n", "\npage_size = 25\n")
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
    type Row = (String, String, String, String, Option<String>, Option<String>);
    let stored: BTreeMap<String, (Row, Option<String>, Option<String>, Option<String>, Option<String>)> =
        db.prepare(
            "SELECT order_id, number, status, platform_status, placed_at, updated_at, currency, \
                    total, customer_name, tracking_number
             FROM orders WHERE platform = ?1",
        )
        .unwrap()
        .query_map([platform], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), truth.len(), "orders stored vs on the platform");
    let time = |s: &Option<String>| {
        s.as_deref()
            .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
    };
    for t in truth {
        let id = t.id.to_string();
        let ((_, number, status, platform_status, placed, updated), currency, total, name, tracking) =
            stored.get(&id).unwrap_or_else(|| panic!("order {id} is not stored"));
        assert_eq!(number, &t.reference, "number of {id}");
        assert_eq!(status, Novashop::canonical(&t.state), "status of {id}");
        assert_eq!(platform_status, &t.state, "platform status of {id}");
        assert_eq!(time(placed), Some(t.created_at), "placed_at of {id}");
        assert_eq!(
            time(updated),
            DateTime::from_timestamp(t.updated, 0),
            "updated_at of {id}"
        );
        assert_eq!(currency.as_deref(), Some(t.currency.as_str()), "currency of {id}");
        assert_eq!(
            total.as_deref().map(|s| s.parse::<Decimal>().unwrap()),
            Some(t.total),
            "total of {id}"
        );
        assert_eq!(name.as_deref(), Some(t.buyer_name.as_str()), "buyer of {id}");
        assert_eq!(tracking, &t.tracking_number, "tracking number of {id}");
        let lines: Vec<(String, Option<String>, Option<String>, String, Option<String>)> = db
            .prepare(
                "SELECT item_id, sku, name, quantity, unit_price FROM order_items
                 WHERE platform = ?1 AND order_id = ?2 ORDER BY item_id",
            )
            .unwrap()
            .query_map([platform, &id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut expected: Vec<_> = t
            .lines
            .iter()
            .map(|l| {
                (
                    l.line_id.clone(),
                    Some(l.sku.clone()),
                    Some(l.title.clone()),
                    Decimal::from(l.quantity),
                    Some(l.unit_price),
                )
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let lines: Vec<_> = lines
            .into_iter()
            .map(|(i, s, n, q, p)| {
                (
                    i,
                    s,
                    n,
                    q.parse::<Decimal>().unwrap(),
                    p.map(|p| p.parse::<Decimal>().unwrap()),
                )
            })
            .collect();
        assert_eq!(lines, expected, "lines of {id}");
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
        let next = if old.state == "pending" { "paid" } else { "packing" };
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
        self.sim.faults().push(Fault::Slow(std::time::Duration::ZERO));
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
            assert!(r.status < 400, "answered {}: {} {}", r.status, r.method, r.path_and_query);
            if r.path_and_query.starts_with("/v3/") {
                assert!(
                    r.headers.iter().any(|(k, v)| k == "authorization" && v.starts_with("Bearer ")),
                    "{} carries the Bearer token",
                    r.path_and_query
                );
            }
        }
    }

    fn secrets(&self) -> Vec<String> {
        let mut s = vec![SimOptions::default().client_secret, WRONG_SECRET.to_string()];
        s.extend(self.tokens());
        s
    }
}

super::scenarios::conformance_tests!(Novashop);
