//! The Novashop simulator against its document, over HTTP.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{FIRST_ID, NovashopSim, STATES, SimOptions};
use crate::Fault;
use crate::core::testing::{self, read_json};

type Served = testing::Served<NovashopSim>;

const LOGIN: &str = r#"{"client_id":"novashop-client","client_secret":"novashop-secret-7731"}"#;

async fn shop(orders: usize) -> Served {
    shop_with(SimOptions {
        orders,
        ..SimOptions::default()
    })
    .await
}

async fn shop_with(opts: SimOptions) -> Served {
    let sim = NovashopSim::new(opts);
    let running = sim.serve().await.expect("sim starts");
    Served::new(sim, running)
}

impl Served {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.running.base_url())
    }

    async fn post_login(&self, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    async fn login(&self) -> String {
        let (status, body) = self.post_login(LOGIN).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get_raw(&self, token: &str, path_and_query: &str) -> reqwest::Response {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_owned()
        } else {
            self.url(path_and_query)
        };
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }

    async fn get(&self, token: &str, path_and_query: &str) -> (u16, Value) {
        read_json(self.get_raw(token, path_and_query).await).await
    }

    async fn transition(&self, token: &str, id: u64, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/v3/orders/{id}/transitions")))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    fn truth_of(&self, id: u64) -> super::TruthOrder {
        self.sim.truth().into_iter().find(|t| t.id == id).unwrap()
    }

    fn first_in(&self, state: &str) -> super::TruthOrder {
        self.sim
            .truth()
            .into_iter()
            .find(|t| t.state == state)
            .unwrap_or_else(|| panic!("no {state} order"))
    }
}

/// The `Link` header's targets by relation.
fn links(response: &reqwest::Response) -> BTreeMap<String, String> {
    let Some(header) = response.headers().get("link") else {
        return BTreeMap::new();
    };
    header
        .to_str()
        .unwrap()
        .split(", ")
        .map(|part| {
            let (target, rel) = part.split_once(">; rel=\"").unwrap();
            (
                rel.trim_end_matches('"').to_owned(),
                target.trim_start_matches('<').to_owned(),
            )
        })
        .collect()
}

fn ids_of(page: &Value) -> Vec<u64> {
    page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

/// The ids of `truth`'s orders updated at or after `since`, in the list's order.
fn listed_since(truth: &[super::TruthOrder], since: i64) -> Vec<u64> {
    let mut listed: Vec<(i64, u64)> = truth
        .iter()
        .filter(|t| t.updated >= since)
        .map(|t| (t.updated, t.id))
        .collect();
    listed.sort_unstable();
    listed.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn the_right_credentials_get_a_bearer_token_and_wrong_ones_get_401() {
    let shop = shop(1).await;
    let (status, body) = shop.post_login(LOGIN).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("nst_1_"), "{token}");
    assert_eq!(shop.sim.logins(), 1);

    let wrong = r#"{"client_id":"novashop-client","client_secret":"nope"}"#;
    assert_eq!(
        shop.post_login(wrong).await,
        (401, json!({"error": "invalid_client"}))
    );
    for bad in ["", "{not json", "[]", r#"{"client_id":"novashop-client"}"#] {
        assert_eq!(
            shop.post_login(bad).await,
            (400, json!({"error": "invalid_request"})),
            "{bad}"
        );
    }
    assert_eq!(shop.sim.logins(), 1, "only good logins issue tokens");
    let second = shop.login().await;
    assert!(second.starts_with("nst_2_") && second != token);
}

#[tokio::test]
async fn every_other_endpoint_needs_a_token_the_login_issued() {
    let shop = shop(2).await;
    let list = "/v3/orders?updated_since=0";
    let response = shop.http.get(shop.url(list)).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(
        read_json(response).await,
        (401, json!({"error": "invalid_token"}))
    );
    assert_eq!(shop.get("nst_1_forged", list).await.0, 401);
    let basic = shop
        .http
        .get(shop.url(list))
        .basic_auth("novashop-client", Some("novashop-secret-7731"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let token = shop.login().await;
    assert_eq!(shop.get(&token, list).await.0, 200);
    assert_eq!(shop.get("", &format!("/v3/orders/{FIRST_ID}")).await.0, 401);
    assert_eq!(
        shop.transition("", FIRST_ID, r#"{"to":"paid"}"#).await.0,
        401
    );
    assert!(shop.sim.transitions().is_empty());
    assert_eq!(shop.sim.request_count(), 7);
}

#[tokio::test]
async fn following_next_links_walks_every_order_exactly_once() {
    let shop = shop(260).await;
    let token = shop.login().await;
    let mut next = Some("/v3/orders?updated_since=0&per_page=100".to_owned());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(link) = next {
        let response = shop.get_raw(&token, &link).await;
        let rels = links(&response);
        let (status, page) = read_json(response).await;
        assert_eq!(status, 200);
        assert_eq!(page.as_object().unwrap().len(), 1, "only the records");
        pages += 1;
        if pages > 1 {
            assert_eq!(
                rels["first"],
                shop.url("/v3/orders?updated_since=0&per_page=100&page=1")
            );
        }
        seen.extend(ids_of(&page));
        next = rels.get("next").cloned();
        if let Some(next) = &next {
            assert_eq!(
                *next,
                shop.url(&format!(
                    "/v3/orders?updated_since=0&per_page=100&page={}",
                    pages + 1
                ))
            );
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, listed_since(&shop.sim.truth(), 0));
    let mut ids = seen.clone();
    ids.sort_unstable();
    assert_eq!(ids, shop.sim.order_ids());

    let response = shop
        .get_raw(&token, "/v3/orders?updated_since=0&per_page=100&page=9")
        .await;
    assert!(!links(&response).contains_key("next"));
    assert_eq!(read_json(response).await.1, json!({"orders": []}));
}

#[tokio::test]
async fn each_page_is_cut_from_the_listing_as_it_is_when_asked() {
    let shop = shop_with(SimOptions {
        orders: 6,
        spacing: chrono::Duration::days(30),
        ..SimOptions::default()
    })
    .await;
    let token = shop.login().await;
    let before = listed_since(&shop.sim.truth(), 0);
    let response = shop
        .get_raw(&token, "/v3/orders?updated_since=0&per_page=2")
        .await;
    let next = links(&response)["next"].clone();
    assert_eq!(ids_of(&read_json(response).await.1), before[..2]);
    // An order of the first page changes: it moves to the end, and the rest move up one place,
    // so the second page starts one order later than it would have.
    shop.sim.set_status(before[0], "cancelled");
    let (_, page) = shop.get(&token, &next).await;
    assert_eq!(ids_of(&page), before[3..5]);
}

#[tokio::test]
async fn updated_since_keeps_orders_updated_at_or_after_it() {
    // A day apart, so the orders' update times spread rather than pile up at the snapshot.
    let shop = shop_with(SimOptions {
        orders: 120,
        spacing: chrono::Duration::days(1),
        ..SimOptions::default()
    })
    .await;
    let token = shop.login().await;
    let truth = shop.sim.truth();
    let mut times: Vec<i64> = truth.iter().map(|t| t.updated).collect();
    times.sort_unstable();
    let since = times[70];
    let (status, page) = shop
        .get(
            &token,
            &format!("/v3/orders?updated_since={since}&per_page=100"),
        )
        .await;
    assert_eq!(status, 200);
    let listed = ids_of(&page);
    assert_eq!(listed, listed_since(&truth, since));
    assert!(listed.len() >= 50, "the boundary itself is included");
    let boundary = truth.iter().find(|t| t.updated == since).unwrap().id;
    assert!(listed.contains(&boundary));
    let (_, page) = shop
        .get(
            &token,
            &format!("/v3/orders?updated_since={}", times[119] + 1),
        )
        .await;
    assert_eq!(page, json!({"orders": []}));
}

#[tokio::test]
async fn per_page_defaults_to_25_and_bad_parameters_are_refused() {
    let shop = shop(30).await;
    let token = shop.login().await;
    let response = shop.get_raw(&token, "/v3/orders?updated_since=0").await;
    assert!(links(&response)["next"].ends_with("per_page=25&page=2"));
    assert_eq!(ids_of(&read_json(response).await.1).len(), 25);
    assert_eq!(
        ids_of(
            &shop
                .get(&token, "/v3/orders?updated_since=0&per_page=1")
                .await
                .1
        )
        .len(),
        1
    );
    for (query, error) in [
        ("", "updated_since is required"),
        ("?per_page=10", "updated_since is required"),
        ("?updated_since=-5", "updated_since is required"),
        ("?updated_since=%2B5", "updated_since is required"),
        ("?updated_since=1.5", "updated_since is required"),
        (
            "?updated_since=0&per_page=101",
            "per_page must be between 1 and 100",
        ),
        (
            "?updated_since=0&per_page=0",
            "per_page must be between 1 and 100",
        ),
        ("?updated_since=0&page=0", "page must be a positive integer"),
        ("?updated_since=0&sort=id", "unknown query parameter: sort"),
        (
            "?updated_since=0&updated_since=5",
            "updated_since is repeated",
        ),
    ] {
        let (status, body) = shop.get(&token, &format!("/v3/orders{query}")).await;
        assert_eq!((status, body), (400, json!({ "error": error })), "{query}");
    }
}

#[tokio::test]
async fn a_single_order_reads_as_in_the_list_and_unknown_ones_are_404() {
    let shop = shop(5).await;
    let token = shop.login().await;
    let (_, page) = shop.get(&token, "/v3/orders?updated_since=0").await;
    let listed = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == FIRST_ID + 2)
        .unwrap()
        .clone();
    assert_eq!(
        shop.get(&token, &format!("/v3/orders/{}", FIRST_ID + 2))
            .await,
        (200, listed)
    );
    let not_found = (404, json!({"error": "not_found"}));
    assert_eq!(shop.get(&token, "/v3/orders/5100999").await, not_found);
    assert_eq!(shop.get(&token, "/v3/orders/abc").await, not_found);
    assert_eq!(shop.get(&token, "/v3/products").await, not_found);
    assert_eq!(shop.get(&token, "/oauth/token").await.0, 405);
}

#[tokio::test]
async fn generated_orders_have_the_documented_shape_and_match_the_truth() {
    let opts = SimOptions {
        orders: 3_000,
        ..SimOptions::default()
    };
    let sim = NovashopSim::new(opts.clone());
    let truth = sim.truth();
    assert_eq!(
        truth,
        NovashopSim::new(opts).truth(),
        "same seed, same shop"
    );
    let shop = sim.inner.shop.read();
    for (order, t) in shop.orders.orders().iter().zip(&truth) {
        let o: Value = serde_json::from_str(&order.json).unwrap();
        let keys: Vec<&String> = o.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 9, "{keys:?}");
        assert_eq!(o["id"], t.id);
        assert_eq!(o["reference"], format!("NS-{}", t.id));
        assert_eq!(o["state"], t.state.as_str());
        assert_eq!(
            o["created_at"],
            t.created_at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
        );
        assert_eq!(o["updated"], t.updated);
        assert!(t.updated >= t.created_at.timestamp());
        assert_eq!(o["money"]["currency"], t.currency.as_str());
        let total = o["money"]["total"].as_str().unwrap();
        assert_eq!(total.split('.').nth(1).map(str::len), Some(2), "{total}");
        assert_eq!(dec(&o["money"]["total"]), t.total);
        assert_eq!(o["buyer"], json!({ "name": t.buyer_name }));
        match &t.tracking_number {
            Some(tracking) => assert_eq!(o["shipment"], json!({ "tracking_number": tracking })),
            None => assert!(o["shipment"].is_null()),
        }
        let lines = o["lines"].as_array().unwrap();
        assert!((1..=4).contains(&lines.len()));
        assert_eq!(lines.len(), t.lines.len());
        let mut sum = Decimal::ZERO;
        for (k, (line, tl)) in lines.iter().zip(&t.lines).enumerate() {
            assert_eq!(line["line_id"], format!("L{}", k + 1));
            assert_eq!(line["line_id"], tl.line_id.as_str());
            assert_eq!(line["sku"], tl.sku.as_str());
            assert_eq!(line["title"], tl.title.as_str());
            assert_eq!(line["quantity"], tl.quantity);
            assert_eq!(dec(&line["unit_price"]), tl.unit_price);
            assert_eq!(
                line["unit_price"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap()
                    .len(),
                2
            );
            sum += tl.unit_price * Decimal::from(tl.quantity);
        }
        assert_eq!(sum, t.total);
    }
    let ids: Vec<u64> = truth.iter().map(|t| t.id).collect();
    assert_eq!(ids, (FIRST_ID..FIRST_ID + 3_000).collect::<Vec<_>>());
    for state in STATES {
        assert!(truth.iter().any(|t| t.state == state), "no {state} order");
    }
    assert!(truth.iter().any(|t| t.lines.len() == 4));
    assert!(truth.iter().any(|t| t.tracking_number.is_some()));
    let newest = truth.last().unwrap().created_at.timestamp();
    assert!(
        truth.iter().all(|t| t.updated <= newest),
        "snapshotted at the newest order"
    );
}

#[tokio::test]
async fn allowed_transitions_apply_once_and_a_repeat_changes_nothing() {
    let shop = shop(60).await;
    let token = shop.login().await;
    let pending = shop.first_in("pending");
    let id = pending.id;
    for to in ["paid", "packing"] {
        let (status, order) = shop
            .transition(&token, id, &format!(r#"{{"to":"{to}"}}"#))
            .await;
        assert_eq!((status, &order["state"]), (200, &json!(to)));
    }
    let (status, order) = shop
        .transition(
            &token,
            id,
            r#"{"to":"shipped","tracking_number":"JJD0001"}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(order["state"], "shipped");
    assert_eq!(order["shipment"], json!({"tracking_number": "JJD0001"}));
    let shipped = shop.truth_of(id);
    assert_eq!(shipped.tracking_number.as_deref(), Some("JJD0001"));
    assert_eq!(order["updated"], shipped.updated);
    assert!(shipped.updated > pending.updated);
    assert!(shipped.updated >= chrono::Utc::now().timestamp() - 5);

    let (status, again) = shop
        .transition(&token, id, r#"{"to":"shipped","tracking_number":"OTHER"}"#)
        .await;
    assert_eq!((status, &again), (200, &order), "a repeat changes nothing");
    assert_eq!(
        shop.sim.transitions(),
        [
            (id, "paid".to_owned(), None),
            (id, "packing".to_owned(), None),
            (id, "shipped".to_owned(), Some("JJD0001".to_owned())),
        ]
    );
    let (_, page) = shop
        .get(
            &token,
            &format!("/v3/orders?updated_since={}", shipped.updated),
        )
        .await;
    assert!(
        ids_of(&page).contains(&id),
        "the change moves it up the list"
    );
}

#[tokio::test]
async fn refused_transitions_are_409_and_bad_bodies_422() {
    let shop = shop(60).await;
    let token = shop.login().await;
    let delivered = shop.first_in("delivered");
    let (status, body) = shop
        .transition(&token, delivered.id, r#"{"to":"paid"}"#)
        .await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"error": "invalid_transition", "detail": "cannot go from delivered to paid"})
        )
    );
    let cancelled = shop.first_in("cancelled");
    assert_eq!(
        shop.transition(&token, cancelled.id, r#"{"to":"refunded"}"#)
            .await
            .0,
        409
    );
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"to":"lost"}"#,
        r#"{"to":7}"#,
        r#"{"to":"refunded","note":"x"}"#,
        r#"{"to":"refunded","tracking_number":12}"#,
    ] {
        let (status, answer) = shop.transition(&token, delivered.id, body).await;
        assert_eq!(
            (status, &answer["error"]),
            (422, &json!("unprocessable")),
            "{body}"
        );
    }
    assert_eq!(
        shop.transition(&token, 5_199_999, r#"{"to":"paid"}"#).await,
        (404, json!({"error": "not_found"}))
    );
    assert!(shop.sim.transitions().is_empty());
    assert_eq!(shop.truth_of(delivered.id), delivered, "untouched");
    let (status, order) = shop
        .transition(
            &token,
            delivered.id,
            r#"{"to":"refunded","tracking_number":null}"#,
        )
        .await;
    assert_eq!((status, &order["state"]), (200, &json!("refunded")));
}

#[tokio::test]
async fn revoking_tokens_forces_a_new_login() {
    let shop = shop(3).await;
    let token = shop.login().await;
    let list = "/v3/orders?updated_since=0";
    assert_eq!(shop.get(&token, list).await.0, 200);
    shop.sim.revoke_tokens();
    assert_eq!(shop.get(&token, list).await.0, 401);
    let fresh = shop.login().await;
    assert_ne!(fresh, token);
    assert_eq!(shop.get(&fresh, list).await.0, 200);
    assert_eq!(
        shop.get(&token, list).await.0,
        401,
        "the old one stays revoked"
    );
    assert_eq!(shop.sim.logins(), 2);

    shop.sim.revoke_tokens_after(1);
    assert_eq!(shop.get(&fresh, list).await.0, 200);
    assert_eq!(shop.get(&fresh, list).await.0, 401);
}

#[tokio::test]
async fn back_office_changes_and_new_orders_show_at_the_end_of_the_list() {
    let shop = shop(4).await;
    let token = shop.login().await;
    let before = shop.truth_of(FIRST_ID);
    shop.sim.set_status(FIRST_ID, "on_hold");
    let after = shop.truth_of(FIRST_ID);
    assert_eq!(after.state, "on_hold");
    assert!(after.updated > before.updated);
    assert!(shop.sim.transitions().is_empty(), "not an API transition");
    let added = shop.sim.add_orders(2);
    assert_eq!(added, [FIRST_ID + 4, FIRST_ID + 5]);
    assert_eq!(shop.sim.order_ids().len(), 6);
    let new = shop.truth_of(added[1]);
    assert_eq!((new.state.as_str(), new.tracking_number), ("pending", None));
    assert!(new.created_at > shop.truth_of(added[0]).created_at);
    let (_, page) = shop.get(&token, "/v3/orders?updated_since=0").await;
    assert_eq!(ids_of(&page), listed_since(&shop.sim.truth(), 0));
    assert_eq!(page["orders"][3]["state"], "on_hold", "{page}");
}

#[tokio::test]
async fn queued_faults_are_applied_one_per_request() {
    let shop = shop(3).await;
    let list = "/v3/orders?updated_since=0";

    // Auth comes first: a refused request leaves the fault queued.
    shop.sim.faults().push(Fault::Status(503));
    assert_eq!(shop.get("nope", list).await.0, 401);
    assert_eq!(shop.sim.faults().pending(), 1);
    // The login takes faults like any request.
    assert_eq!(
        shop.post_login(LOGIN).await,
        (503, json!({"error": "Simulated failure"}))
    );
    let token = shop.login().await;

    shop.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    let response = shop.get_raw(&token, list).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    shop.sim.faults().push(Fault::MalformedRecord);
    let (status, page) = shop.get(&token, list).await;
    assert_eq!(status, 200);
    assert_eq!(page["orders"][1]["id"], json!({"oops": true}));
    assert!(page["orders"][0]["id"].is_u64() && page["orders"][2]["id"].is_u64());

    shop.sim.faults().push(Fault::RecordWithout("money.total"));
    let (_, page) = shop.get(&token, list).await;
    assert!(page["orders"][1]["money"].get("total").is_none());
    assert!(page["orders"][0]["money"]["total"].is_string());

    shop.sim.faults().push(Fault::MalformedJson);
    let text = shop.get_raw(&token, list).await.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    // A dropped answer still applies the transition: the case a client's retry must survive.
    let pending = shop.first_in("pending");
    shop.sim.faults().push(Fault::DropConnection);
    let response = shop
        .http
        .post(shop.url(&format!("/v3/orders/{}/transitions", pending.id)))
        .bearer_auth(&token)
        .body(r#"{"to":"paid"}"#)
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.is_err(), "the body is cut off");
    assert_eq!(shop.truth_of(pending.id).state, "paid");
    assert_eq!(shop.get(&token, list).await.0, 200, "one fault per request");
    assert_eq!(shop.sim.faults().pending(), 0);
}
