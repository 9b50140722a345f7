//! The Epixel simulator against its document, over HTTP.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{DEFAULT_LIMIT, EpixelSim, FIRST_ID, SimOptions};
use crate::Fault;
use crate::core::testing::{self, read_json};

type Served = testing::Served<EpixelSim>;

async fn store(orders: usize) -> Served {
    let sim = EpixelSim::new(SimOptions {
        orders,
        ..SimOptions::default()
    });
    let running = sim.serve().await.expect("sim starts");
    Served::new(sim, running)
}

impl Served {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}/api/v1{path_and_query}", self.running.base_url())
    }

    async fn get_with(&self, path_and_query: &str, bearer: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path_and_query))
            .header("apikey", "demo-apikey")
            .header("Authorization", format!("Bearer {bearer}"))
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        self.get_with(path_and_query, "demo-access-token").await
    }

    async fn login(&self, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/user/login/"))
            .header("apikey", "demo-apikey")
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        read_json(response).await
    }
}

fn ids_of(page: &Value) -> Vec<u64> {
    page["data"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn offset_paging_returns_every_order_once_newest_first() {
    let s = store(250).await;
    let mut seen: Vec<u64> = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = s
            .get(&format!("/commerce/all-orders/?limit=100&offset={offset}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (page["status_code"].as_u64(), &page["errors"]),
            (Some(200), &json!({}))
        );
        let ids = ids_of(&page);
        seen.extend(&ids);
        if ids.len() < 100 {
            break;
        }
        offset += 100;
    }
    let mut expected = s.sim.order_ids();
    expected.reverse();
    assert_eq!(seen, expected);
    let (_, page) = s.get("/commerce/all-orders/").await;
    assert_eq!(ids_of(&page).len(), DEFAULT_LIMIT);
    assert_eq!(page["data"]["filter_data"]["limit"], 20);
}

#[tokio::test]
async fn generated_orders_match_the_document_and_the_truth() {
    let sim = EpixelSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    let again = EpixelSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    let truth = sim.truth();
    assert_eq!(truth, again.truth(), "same seed, same store");
    let shop = sim.inner.shop.read();
    for (o, t) in shop.orders().iter().zip(&truth) {
        let record: Value = serde_json::from_str(&o.json).unwrap();
        let keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 13, "the document's 13 fields: {keys:?}");
        assert_eq!(record["id"], t.id);
        assert_eq!(record["order_number"].to_string(), t.order_number);
        assert_eq!(record["status"], t.status.as_str());
        assert_eq!(record["modified"], t.modified.as_str());
        let lines: Vec<Value> = serde_json::from_str(&o.details).unwrap();
        assert_eq!(lines.len(), t.item_ids.len());
        let mut sum = Decimal::ZERO;
        for (line, item) in lines.iter().zip(&t.item_ids) {
            assert_eq!(line["id"], *item);
            assert_eq!(line["order_id"], t.id);
            assert!(line["price"].is_string(), "price is text in the document");
            let price = Decimal::from_str(line["price"].as_str().unwrap()).unwrap();
            sum += price * Decimal::from(line["quantity"].as_u64().unwrap());
            assert!(line["data"]["item_display"]["items"]["varient_attributes"]["params"]["product-name"]["value"].is_string());
        }
        assert_eq!(sum, t.total, "order_total is the sum of its lines");
        assert_eq!(
            Decimal::from_str(&record["order_total"].to_string()).unwrap(),
            t.total
        );
    }
    let count = |s: &str| truth.iter().filter(|t| t.status == s).count();
    for s in [
        "Completed",
        "completed",
        "Pending",
        "Shipped",
        "Cancelled",
        "Refund Requested",
    ] {
        assert!(count(s) > 0, "no {s} order");
    }
    assert!(truth.iter().any(|t| t.currency.is_none()));
    assert!(truth.iter().any(|t| t.customer_name.is_none()));
    assert!(truth.iter().any(|t| t.item_ids.len() == 3));
    assert!(truth.iter().all(|t| t.modified >= t.created));
}

#[tokio::test]
async fn invalid_parameters_are_refused_naming_the_parameter() {
    let s = store(3).await;
    for (query, named) in [
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("order_number=abc", "order_number"),
        ("period=decade", "period"),
        ("category=gift", "category"),
        ("page=2", "page"),
        ("start=0", "start"),
        ("limit=10&limit=20", "limit"),
    ] {
        let (status, body) = s.get(&format!("/commerce/all-orders/?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["status_code"], 400, "{query}");
        assert!(body["errors"][named].is_array(), "{query}: {body}");
    }
    let (status, page) = s.get("/commerce/all-orders/?limit=100&offset=0").await;
    assert_eq!((status, ids_of(&page).len()), (200, 3));
}

#[tokio::test]
async fn filters_select_by_number_period_and_category() {
    let s = store(120).await;
    let truth = s.sim.truth();
    let (_, page) = s
        .get(&format!(
            "/commerce/all-orders/?order_number={}",
            truth[7].order_number
        ))
        .await;
    assert_eq!(ids_of(&page), [truth[7].id]);
    let (_, page) = s
        .get(&format!(
            "/commerce/all-orders/?order_number={}",
            truth[7].id
        ))
        .await;
    assert_eq!(
        ids_of(&page),
        Vec::<u64>::new(),
        "an id is not an order number"
    );
    // Generated orders are from 2025; only the new one is from this week.
    let new = s.sim.add_orders(1);
    let (_, page) = s.get("/commerce/all-orders/?period=week&limit=100").await;
    assert_eq!(ids_of(&page), new);
    let (_, page) = s
        .get("/commerce/all-orders/?category=upgrade&limit=100")
        .await;
    let ids = ids_of(&page);
    assert!(!ids.is_empty());
    let shop = s.sim.inner.shop.read();
    assert!(
        ids.iter()
            .all(|&id| shop[(id - FIRST_ID) as usize].facts.order_type == "upgrade")
    );
}

#[tokio::test]
async fn details_follow_the_document_and_its_three_refusals() {
    let s = store(5).await;
    let t = &s.sim.truth()[2];
    let (status, body) = s
        .get(&format!(
            "/commerce/order-details/?order_number={}",
            t.order_number
        ))
        .await;
    assert_eq!(status, 200);
    let lines = body["data"].as_array().unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        t.item_ids
    );
    for (query, message) in [
        ("", "Order Number is required."),
        ("?order_number=", "Order Number maynot be blank."),
        ("?order_number=999", "Invalid order number."),
        ("?order_number=x", "Invalid order number."),
    ] {
        let (status, body) = s.get(&format!("/commerce/order-details/{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["errors"]["order_number"][0], message, "{query}");
    }
    let (status, _) = s
        .get(&format!(
            "/commerce/order-details/?order_number={}&x=1",
            t.order_number
        ))
        .await;
    assert_eq!(status, 400);
    let response = s
        .http
        .post(s.url("/commerce/order-details/"))
        .header("apikey", "demo-apikey")
        .header("Authorization", "Bearer demo-access-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "details are read with GET");
    assert_eq!(
        s.get("/commerce/all-orders").await.0,
        404,
        "paths end with a slash"
    );
    assert_eq!(
        s.get("/commerce/update-order/").await.0,
        404,
        "no update endpoint"
    );
}

#[tokio::test]
async fn auth_needs_the_apikey_and_a_valid_bearer() {
    let s = store(2).await;
    let list = s.url("/commerce/all-orders/");
    let no_key = s
        .http
        .get(&list)
        .header("Authorization", "Bearer demo-access-token");
    assert_eq!(read_json(no_key.send().await.unwrap()).await.0, 401);
    let wrong_key = s
        .http
        .get(&list)
        .header("apikey", "nope")
        .header("Authorization", "Bearer demo-access-token");
    assert_eq!(read_json(wrong_key.send().await.unwrap()).await.0, 401);
    assert_eq!(s.get_with("/commerce/all-orders/", "forged").await.0, 401);
    let basic = s
        .http
        .get(&list)
        .header("apikey", "demo-apikey")
        .header("Authorization", "Basic demo-access-token");
    assert_eq!(read_json(basic.send().await.unwrap()).await.0, 401);
    assert_eq!(s.get("/commerce/all-orders/").await.0, 200);

    let (status, body) = s
        .login(r#"{"username":"demo-admin","password":"wrong"}"#)
        .await;
    assert_eq!((status, body["status_code"].as_u64()), (401, Some(401)));
    assert_eq!(s.login(r#"{"username":"demo-admin"}"#).await.0, 400);
    let (status, tokens) = s
        .login(r#"{"username":"demo-admin","password":"demo-password"}"#)
        .await;
    assert_eq!(status, 200);
    let access = tokens["access"].as_str().unwrap().to_owned();
    assert!(tokens["refresh"].is_string());
    assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 200);
    assert_eq!(s.sim.login_attempts(), 3);

    s.sim.revoke_tokens_after(1);
    assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 200);
    assert_eq!(s.get_with("/commerce/all-orders/", &access).await.0, 401);
    assert_eq!(
        s.get("/commerce/all-orders/").await.0,
        401,
        "the configured token too"
    );
    let (_, tokens) = s
        .login(r#"{"username":"demo-admin","password":"demo-password"}"#)
        .await;
    assert_eq!(
        s.get_with("/commerce/all-orders/", tokens["access"].as_str().unwrap())
            .await
            .0,
        200
    );
    let log = s.sim.requests();
    assert_eq!(log[0].status, 401);
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.path_and_query == "/api/v1/user/login/")
    );
}

#[tokio::test]
async fn status_changes_move_modified_and_the_lines() {
    let s = store(3).await;
    let before = s.sim.truth()[1].clone();
    s.sim.set_status(before.id, "SHIPPED");
    let after = s.sim.truth()[1].clone();
    assert!(after.modified > before.modified);
    assert_eq!(
        after.item_statuses,
        vec!["SHIPPED".to_owned(); after.item_ids.len()]
    );
    let (_, page) = s
        .get(&format!(
            "/commerce/all-orders/?order_number={}",
            after.order_number
        ))
        .await;
    assert_eq!(page["data"]["orders"][0]["status"], "SHIPPED");
    assert_eq!(
        page["data"]["orders"][0]["modified"],
        after.modified.as_str()
    );
    s.sim.set_status(before.id, "SHIPPED");
    assert_eq!(s.sim.truth()[1], after, "the same status changes nothing");
    let new = s.sim.add_orders(2);
    let truth = s.sim.truth();
    assert_eq!(new, [truth[3].id, truth[4].id]);
    assert_eq!(truth[4].status, "Pending");
    assert!(truth[4].created > truth[3].created);
}

#[tokio::test]
async fn faults_answer_break_or_delay_one_request_each() {
    let s = store(3).await;
    s.sim.faults().push(Fault::Status(503));
    s.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    s.sim.faults().push(Fault::MalformedRecord);
    s.sim.faults().push(Fault::MalformedRecord);
    let (status, body) = s.get("/commerce/all-orders/").await;
    assert_eq!((status, body["status_code"].as_u64()), (503, Some(503)));
    let response = s
        .http
        .get(s.url("/commerce/all-orders/"))
        .header("apikey", "demo-apikey")
        .header("Authorization", "Bearer demo-access-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            response.status().as_u16(),
            response.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "7")
    );
    let (_, page) = s.get("/commerce/all-orders/").await;
    assert_eq!(page["data"]["orders"][1]["id"], json!({"oops": true}));
    assert_eq!(page["data"]["orders"][0]["id"], 503);
    let number = &s.sim.truth()[0].order_number;
    let (_, details) = s
        .get(&format!("/commerce/order-details/?order_number={number}"))
        .await;
    let lines = details["data"].as_array().unwrap();
    let broken = if lines.len() == 1 { 0 } else { 1 };
    assert_eq!(lines[broken]["id"], json!({"oops": true}));

    // Auth comes first: a refused request leaves the fault for the next.
    s.sim.faults().push(Fault::Status(500));
    assert_eq!(s.get_with("/commerce/all-orders/", "forged").await.0, 401);
    assert_eq!(s.sim.faults().pending(), 1);
    assert_eq!(s.get("/commerce/all-orders/").await.0, 500);

    s.sim.faults().push(Fault::MalformedJson);
    let response = s
        .http
        .get(s.url("/commerce/all-orders/"))
        .header("apikey", "demo-apikey")
        .header("Authorization", "Bearer demo-access-token")
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());
    s.sim.faults().push(Fault::DropConnection);
    let response = s
        .http
        .get(s.url("/commerce/all-orders/"))
        .header("apikey", "demo-apikey")
        .header("Authorization", "Bearer demo-access-token")
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.is_err(), "the body is cut off");
    s.sim.faults().push(Fault::Slow(Duration::from_millis(100)));
    let began = std::time::Instant::now();
    assert_eq!(s.get("/commerce/all-orders/").await.0, 200);
    assert!(began.elapsed() >= Duration::from_millis(100));
    s.running.stop().await;
}
