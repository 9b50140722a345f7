//! The MerchantPro simulator against its document, over HTTP.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{FIRST_ID, MerchantProSim, SimOptions};
use crate::core::testing::{self, read_json};
use crate::{Fault, basic_auth_header};

type Served = testing::Served<MerchantProSim>;

async fn shop(orders: usize) -> Served {
    shop_with(SimOptions {
        orders,
        ..SimOptions::default()
    })
    .await
}

async fn shop_with(opts: SimOptions) -> Served {
    let sim = MerchantProSim::new(opts);
    let running = sim.serve().await.expect("sim starts");
    Served::new(sim, running)
}

impl Served {
    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{path_and_query}", self.running.base_url()),
            )
            .header(
                "Authorization",
                basic_auth_header("demo-key", "demo-secret"),
            )
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path_and_query)
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    async fn patch(&self, path_and_query: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.request(reqwest::Method::PATCH, path_and_query);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_owned());
        }
        read_json(request.send().await.unwrap()).await
    }
}

fn ids_of(page: &Value) -> Vec<u64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

fn dec(raw: &RawValue) -> Decimal {
    Decimal::from_str(raw.get()).unwrap()
}

#[tokio::test]
async fn paging_with_next_returns_every_order_once() {
    let shop = shop(250).await;
    let mut next = Some("/api/v2/orders?include=line_items&sort=date_created".to_owned());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(link) = next {
        let (status, page) = shop.get(&link).await;
        assert_eq!(status, 200);
        assert_eq!(page["meta"]["count"]["total"], 250);
        assert_eq!(page["meta"]["links"]["current"], link.as_str());
        for order in page["data"].as_array().unwrap() {
            assert!(
                order["line_items"]
                    .as_array()
                    .is_some_and(|l| !l.is_empty())
            );
        }
        seen.extend(ids_of(&page));
        next = page["meta"]["links"]["next"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, shop.sim.order_ids());
    let (_, last) = shop
        .get("/api/v2/orders?sort=date_created&start=200&limit=100")
        .await;
    assert_eq!(
        last["meta"]["links"]["prev"],
        "/api/v2/orders?sort=date_created&start=100&limit=100"
    );
    assert!(
        last["data"][0].get("line_items").is_none(),
        "only when included"
    );
}

#[tokio::test]
async fn generated_orders_match_the_document_and_the_truth() {
    let sim = MerchantProSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    let again = MerchantProSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    let truth = sim.truth();
    let shop = sim.inner.shop.read();
    let mut bytes = 0;
    let mut trailing_zero_cents = 0;
    for (stored, truth) in shop.orders.orders().iter().zip(&truth) {
        bytes += stored.json.len();
        let o: BTreeMap<String, &RawValue> = serde_json::from_str(&stored.json).unwrap();
        assert_eq!(o["id"].get(), truth.id.to_string());
        let items: Vec<BTreeMap<String, &RawValue>> =
            serde_json::from_str(o["line_items"].get()).unwrap();
        assert_eq!(items.len(), truth.line_items);
        let shipping = match o["shipping_amount"].get() {
            "null" => Decimal::ZERO,
            _ => dec(o["shipping_amount"]),
        };
        let sum: Decimal = items.iter().map(|i| dec(i["line_subtotal_gross"])).sum();
        assert_eq!(dec(o["total_amount"]), sum + shipping);
        assert_eq!(dec(o["total_amount"]), truth.total_amount);
        let total_text = o["total_amount"].get();
        assert_eq!(total_text, dec(o["total_amount"]).normalize().to_string());
        if !total_text.contains('.') || total_text.split('.').nth(1).unwrap().len() == 1 {
            trailing_zero_cents += 1;
        }
        assert_eq!(
            o["date_created"].get(),
            format!("\"{}\"", truth.date_created)
        );
        assert!(truth.date_created.ends_with("+02:00"));
        assert!(truth.date_modified >= truth.date_created);
    }
    let average = bytes / truth.len();
    assert!(
        (2_500..=2_900).contains(&average),
        "average order is {average} bytes"
    );
    assert!(
        trailing_zero_cents > 20,
        "{trailing_zero_cents} totals like 109 or 30.2"
    );
    let count = |s: &str| truth.iter().filter(|t| t.shipping_status == s).count();
    assert!(count("delivered") > truth.len() / 2);
    for s in [
        "awaiting",
        "confirmed",
        "in_process",
        "shipped",
        "cancelled",
        "returned",
    ] {
        assert!(count(s) > 0, "no {s} order");
    }
    assert!(truth.iter().any(|t| t.shipping_awb.is_some()));
    assert!(
        shop.orders
            .orders()
            .iter()
            .any(|o| o.json.contains(r#""customer_email":null"#))
    );
    assert!(
        shop.orders
            .orders()
            .iter()
            .any(|o| o.json.contains(r#""shipping_amount":null"#))
    );
    assert_eq!(truth, again.truth(), "same seed, same shop");
}

#[tokio::test]
async fn invalid_parameters_are_refused_naming_the_parameter() {
    let shop = shop(3).await;
    for (query, named) in [
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("start=-1", "start"),
        ("sort=id", "sort"),
        ("created_after=2025-01-01T00:00:00", "created_after"),
        ("created_before=2025-1-1", "created_before"),
        ("ids=12345001,abc", "ids"),
        ("id=x", "id"),
        ("include=customer", "include"),
        ("fields=id,nope", "fields"),
        ("status=awaiting", "status"),
        ("start=0&start=100", "start"),
    ] {
        let (status, body) = shop.get(&format!("/api/v2/orders?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["name"], "BadRequest", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
    let (status, page) = shop.get("/api/v2/orders?limit=100&start=0").await;
    assert_eq!((status, ids_of(&page).len()), (200, 3));
}

#[tokio::test]
async fn wrong_credentials_get_401_then_403_after_five() {
    let shop = shop(1).await;
    let url = format!("{}/api/v2/orders", shop.running.base_url());
    let wrong = basic_auth_header("demo-key", "wrong");
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let mut request = shop.http.get(&url);
        if attempt > 0 {
            request = request.header("Authorization", &wrong);
        }
        let (status, body) = read_json(request.send().await.unwrap()).await;
        let name = if status == 401 {
            "Unauthorized"
        } else {
            "Forbidden"
        };
        assert_eq!(body["error"]["name"], name);
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 403, 403]);
    assert_eq!(
        shop.get("/api/v2/orders").await.0,
        200,
        "good credentials still work"
    );
    let log = shop.sim.requests();
    assert_eq!(shop.sim.request_count(), 8);
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 401, 401, 401, 403, 403, 200]
    );
    assert!(
        log[1]
            .headers
            .contains(&("authorization".to_owned(), wrong.clone()))
    );
}

#[tokio::test]
async fn created_after_and_before_filter_by_the_shops_day() {
    let shop = shop_with(SimOptions {
        orders: 100,
        spacing: chrono::Duration::hours(1),
        ..SimOptions::default()
    })
    .await;
    let truth = shop.sim.truth();
    let expect = |keep: &dyn Fn(&str) -> bool| -> Vec<u64> {
        truth
            .iter()
            .filter(|t| keep(&t.date_created[..10]))
            .map(|t| t.id)
            .collect()
    };
    // The first order is 2025-01-01T00:00Z, i.e. 02:00 on January 1st in the shop's zone;
    // hour 22 UTC is already January 2nd there.
    let (_, page) = shop.get("/api/v2/orders?created_after=2025-01-02").await;
    assert_eq!(ids_of(&page), expect(&|d| d >= "2025-01-02"));
    assert_eq!(ids_of(&page)[0], FIRST_ID + 22);
    let (_, page) = shop.get("/api/v2/orders?created_before=2025-01-03").await;
    assert_eq!(ids_of(&page), expect(&|d| d < "2025-01-03"));
    let (_, page) = shop
        .get("/api/v2/orders?created_after=2025-01-02&created_before=2025-01-03&sort=date_created.desc")
        .await;
    let mut day_two = expect(&|d| d == "2025-01-02");
    day_two.reverse();
    assert_eq!(ids_of(&page), day_two);
    assert_eq!(page["meta"]["count"]["total"], 24);
}

#[tokio::test]
async fn ids_and_status_filters_return_just_those() {
    let shop = shop(40).await;
    let (_, page) = shop.get("/api/v2/orders?ids=12345003,12345001,99").await;
    assert_eq!(ids_of(&page), [12345001, 12345003]);
    assert_eq!(page["meta"]["count"]["total"], 2);
    let (_, page) = shop
        .get("/api/v2/orders?ids=12345003,12345004&id=12345004")
        .await;
    assert_eq!(ids_of(&page), [12345004]);
    let delivered: Vec<u64> = shop
        .sim
        .truth()
        .iter()
        .filter(|t| t.shipping_status == "delivered")
        .map(|t| t.id)
        .collect();
    let (_, page) = shop
        .get("/api/v2/orders?shipping_status=delivered&limit=100")
        .await;
    assert_eq!(ids_of(&page), delivered);
    let (_, page) = shop
        .get("/api/v2/orders?ids=12345001,12345002,12345003&fields=id,payment_status,total_amount")
        .await;
    let keys: Vec<&String> = page["data"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
}

#[tokio::test]
async fn single_order_and_unknown_routes() {
    let shop = shop(5).await;
    let (status, order) = shop.get("/api/v2/orders/12345002").await;
    assert_eq!(status, 200);
    assert_eq!(order["id"], 12345002);
    assert!(order["line_items"].is_array());
    let (status, body) = shop.get("/api/v2/orders/12345999").await;
    assert_eq!((status, &body["error"]["name"]), (404, &json!("NotFound")));
    assert_eq!(shop.get("/api/v2/orders/abc").await.0, 404);
    assert_eq!(shop.get("/api/v2/products").await.0, 404);
    let (status, order) = shop
        .get("/api/v2/orders/12345002?fields=total_amount")
        .await;
    assert_eq!(status, 200);
    assert_eq!(order.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn processing_handlers_follow_the_shops_rules() {
    let shop = shop(60).await;
    let first_with = |status: &str| {
        shop.sim
            .truth()
            .into_iter()
            .find(|t| t.shipping_status == status)
            .unwrap()
    };
    let awaiting = first_with("awaiting");
    let path = |handler: &str| format!("/api/v2/orders/{}/{handler}", awaiting.id);
    assert_eq!(
        shop.patch(&path("shipped"), None).await,
        (200, json!({"ok": true}))
    );
    let after = shop
        .sim
        .truth()
        .into_iter()
        .find(|t| t.id == awaiting.id)
        .unwrap();
    assert_eq!(after.shipping_status, "shipped");
    assert!(after.date_modified > awaiting.date_modified);
    let (_, order) = shop.get(&format!("/api/v2/orders/{}", awaiting.id)).await;
    assert_eq!(order["shipping_status_text"], "Comanda expediata");

    let (status, body) = shop.patch(&path("in_process"), None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Order status cannot be changed from shipped to in_process"
    );
    assert_eq!(shop.patch(&path("confirmed"), None).await.0, 404);
    assert_eq!(shop.patch("/api/v2/orders/99/shipped", None).await.0, 404);
    assert_eq!(
        shop.patch(&path("shipped"), None).await.0,
        200,
        "no change is fine"
    );

    let cancelled = first_with("cancelled");
    let refused = format!("/api/v2/orders/{}/delivered", cancelled.id);
    assert_eq!(shop.patch(&refused, None).await.0, 400);

    let invoice = path("create_invoice");
    assert_eq!(shop.patch(&invoice, None).await.0, 200);
    let (_, order) = shop.get(&format!("/api/v2/orders/{}", awaiting.id)).await;
    assert_eq!(order["invoice"]["prefix"], "SERIE");
    assert_eq!(order["invoice"]["number"], "1000001");
    assert_eq!(shop.patch(&invoice, None).await.0, 400, "issued once");
}

#[tokio::test]
async fn patch_sets_the_awb_and_validates_the_body() {
    let shop = shop(3).await;
    let (status, order) = shop
        .patch(
            "/api/v2/orders/12345001",
            Some(r#"{"shipping_awb":"2100000000001","shipping_amount":15}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(order["shipping_awb"], "2100000000001");
    assert!(order["line_items"].is_array());
    let truth = &shop.sim.truth()[0];
    assert_eq!(truth.shipping_awb.as_deref(), Some("2100000000001"));
    for (body, want) in [
        ("{not json", 400),
        (r#"{"awb":"1"}"#, 400),
        (r#"{"shipping_awb":12}"#, 400),
        ("[]", 400),
    ] {
        assert_eq!(
            shop.patch("/api/v2/orders/12345001", Some(body)).await.0,
            want,
            "{body}"
        );
    }
    assert_eq!(
        shop.patch("/api/v2/orders/12345009", Some("{}")).await.0,
        404
    );
    let log = shop.sim.requests();
    assert_eq!(log[0].method, "PATCH");
    assert_eq!(log[0].path_and_query, "/api/v2/orders/12345001");
    assert!(log[0].body.contains("2100000000001"));
}

#[tokio::test]
async fn sim_side_changes_show_in_the_api() {
    let shop = shop(2).await;
    shop.sim.set_status(12345001, "confirmed");
    shop.sim.set_awb(12345002, "AWB-7");
    let added = shop.sim.add_orders(2);
    assert_eq!(added, [12345003, 12345004]);
    let (_, page) = shop.get("/api/v2/orders").await;
    assert_eq!(ids_of(&page), [12345001, 12345002, 12345003, 12345004]);
    assert_eq!(page["data"][0]["shipping_status"], "confirmed");
    assert_eq!(
        page["data"][0]["shipping_status_text"],
        "Comanda confirmata"
    );
    assert_eq!(page["data"][1]["shipping_awb"], "AWB-7");
    assert_eq!(page["data"][2]["shipping_status"], "awaiting");
    let truth = shop.sim.truth();
    assert!(truth[3].date_created > truth[2].date_created);
    assert!(truth[2].date_created > truth[1].date_created);
}

#[tokio::test]
async fn error_faults_answer_instead_of_the_shop() {
    let shop = shop(3).await;
    shop.sim.faults().push(Fault::Status(503));
    shop.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    let (status, body) = shop.get("/api/v2/orders").await;
    assert_eq!(
        (status, &body["error"]["name"]),
        (503, &json!("ServiceUnavailable"))
    );
    let response = shop
        .request(reqwest::Method::GET, "/api/v2/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        shop.get("/api/v2/orders").await.0,
        200,
        "one fault per request"
    );

    // Auth comes first, and a refused request leaves the fault for the next one.
    shop.sim.faults().push(Fault::Status(500));
    let unauthenticated = shop
        .http
        .get(format!("{}/api/v2/orders", shop.running.base_url()));
    assert_eq!(unauthenticated.send().await.unwrap().status(), 401);
    assert_eq!(shop.sim.faults().pending(), 1);
    assert_eq!(shop.get("/api/v2/orders").await.0, 500);
}

#[tokio::test]
async fn malformed_faults_break_the_body() {
    let shop = shop(3).await;
    shop.sim.faults().push(Fault::MalformedJson);
    let response = shop
        .request(reqwest::Method::GET, "/api/v2/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    shop.sim.faults().push_n(Fault::MalformedRecord, 2);
    let (_, page) = shop.get("/api/v2/orders").await;
    assert_eq!(page["data"][0]["id"], 12345001);
    assert_eq!(page["data"][1]["id"], json!({"oops": true}));
    assert_eq!(page["data"][2]["id"], 12345003);
    assert_eq!(
        page["data"][1]["shipping_status"],
        shop.sim.truth()[1].shipping_status
    );
    let (_, page) = shop.get("/api/v2/orders?ids=12345003").await;
    assert_eq!(page["data"][0]["id"], json!({"oops": true}));
}

#[tokio::test]
async fn drop_and_slow_faults() {
    let shop = shop(3).await;
    shop.sim.faults().push(Fault::DropConnection);
    let response = shop
        .request(reqwest::Method::GET, "/api/v2/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body is cut off");

    shop.sim
        .faults()
        .push(Fault::Slow(Duration::from_millis(150)));
    let began = Instant::now();
    assert_eq!(shop.get("/api/v2/orders").await.0, 200);
    assert!(began.elapsed() >= Duration::from_millis(150));
    assert_eq!(shop.sim.faults().pending(), 0);
    shop.running.stop().await;
}
