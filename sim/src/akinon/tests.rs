//! The Akinon simulator against its document, over HTTP.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use axum::http::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::data::now_micros;
use super::render::render_time;
use super::{AkinonSim, DEFAULT_PAGE_SIZE, STATUSES, SimOptions};
use crate::Fault;
use crate::core::testing::{self, read_json};

type Served = testing::Served<AkinonSim>;

async fn shop(orders: usize) -> Served {
    shop_with(SimOptions {
        orders,
        ..SimOptions::default()
    })
    .await
}

async fn shop_with(opts: SimOptions) -> Served {
    let sim = AkinonSim::new(opts);
    let running = sim.serve().await.expect("sim starts");
    Served::new(sim, running)
}

impl Served {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.running.base_url())
    }

    /// A request as the document says to send it.
    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path_and_query))
            .header("Authorization", "Bearer demo-akinon-api-token")
            .header("Content-Type", "application/json")
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        read_json(
            self.request(Method::GET, path_and_query)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path_and_query: &str, body: &str) -> (u16, Value) {
        let response = self
            .request(Method::POST, path_and_query)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    /// Follows `next` from `first`; every record, and how many pages.
    async fn all(&self, first: &str) -> (Vec<Value>, usize) {
        let mut next = Some(self.url(first));
        let (mut records, mut pages) = (Vec::new(), 0);
        while let Some(link) = next {
            let path = link
                .strip_prefix(&self.running.base_url())
                .expect("same host");
            let (status, page) = self.get(path).await;
            assert_eq!(status, 200, "{page}");
            records.extend(page["results"].as_array().unwrap().iter().cloned());
            next = page["next"].as_str().map(str::to_owned);
            pages += 1;
        }
        (records, pages)
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_page_with_absolute_sorted_next_links_and_cap_the_limit() {
    let shop = shop_with(SimOptions {
        orders: 130,
        max_page_size: 50,
        ..SimOptions::default()
    })
    .await;
    let (status, page) = shop.get("/api/i1/orders/?limit=500&page=1").await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 130);
    assert_eq!(
        page["results"].as_array().unwrap().len(),
        50,
        "limit is capped"
    );
    assert_eq!(page["previous"], Value::Null);
    assert_eq!(
        page["next"],
        format!(
            "{}/api/i1/orders/?limit=500&page=2",
            shop.running.base_url()
        )
    );
    let (orders, pages) = shop.all("/api/i1/orders/?limit=50").await;
    assert_eq!(pages, 3);
    assert_eq!(ids(&orders), shop.sim.order_ids());
    let (_, third) = shop.get("/api/i1/orders/?page=3&limit=50").await;
    assert_eq!(
        third["previous"],
        format!("{}/api/i1/orders/?limit=50&page=2", shop.running.base_url())
    );
    let (_, second) = shop.get("/api/i1/orders/?page=2&limit=50").await;
    assert_eq!(
        second["previous"],
        format!("{}/api/i1/orders/?limit=50", shop.running.base_url()),
        "page 1's link has no page, as DRF's"
    );
    assert_eq!(shop.get("/api/i1/orders/?page=4&limit=50").await.0, 404);
    let (_, no_limit) = shop.get("/api/i1/orders/").await;
    assert_eq!(
        no_limit["results"].as_array().unwrap().len(),
        DEFAULT_PAGE_SIZE
    );

    let (items, _) = shop.all("/api/i1/order-items/?limit=50").await;
    let truth = shop.sim.truth();
    assert_eq!(
        items.len(),
        truth.iter().map(|o| o.items.len()).sum::<usize>()
    );
}

#[tokio::test]
async fn records_have_the_documents_shape_and_match_the_truth() {
    let shop = shop(40).await;
    let (orders, _) = shop.all("/api/i1/orders/?limit=100").await;
    let (items, _) = shop.all("/api/i1/order-items/?limit=100").await;
    let truth = shop.sim.truth();
    assert_eq!(orders.len(), 40);
    for (o, t) in orders.iter().zip(&truth) {
        assert_eq!(o["id"], t.id.as_str());
        assert_eq!(o["number"], t.number.as_str());
        assert_eq!(o["status"], t.status);
        assert_eq!(o["amount"], t.amount.to_string(), "amounts are strings");
        assert!(o["amount"].as_str().unwrap().contains('.'));
        assert_eq!(o["currency"], t.currency.as_str());
        assert!(o.get("updated_at").is_none() && o.get("created_at").is_none());
        assert_eq!(o["extra_field"], json!({}));
        let own: Vec<&Value> = items.iter().filter(|i| i["order"] == o["id"]).collect();
        assert_eq!(own.len(), t.items.len());
        let sum: Decimal = own
            .iter()
            .map(|i| {
                Decimal::from_str(i["price"].as_str().unwrap()).unwrap()
                    - Decimal::from_str(i["discount_amount"].as_str().unwrap()).unwrap()
            })
            .sum();
        let shipping = Decimal::from_str(o["shipping_amount"].as_str().unwrap()).unwrap();
        assert_eq!(
            sum + shipping,
            t.amount,
            "amount is the lines, less discounts, plus shipping"
        );
    }
    assert!(
        STATUSES
            .iter()
            .filter(|s| truth.iter().any(|t| t.status == **s))
            .count()
            >= 5
    );
}

#[tokio::test]
async fn filters_work_as_documented_and_bad_ones_are_refused_by_name() {
    let shop = shop(60).await;
    let truth = shop.sim.truth();
    let t = &truth[17];
    let (_, one) = shop
        .get(&format!("/api/i1/orders/?number={}", t.number))
        .await;
    assert_eq!(ids(one["results"].as_array().unwrap()), vec![t.id.clone()]);
    let (_, items) = shop
        .get(&format!("/api/i1/order-items/?order__number={}", t.number))
        .await;
    assert_eq!(items["count"], t.items.len());

    // Placed-time bounds, inclusive, in UTC or as naive shop time (+03:00).
    let from = &truth[10].date_placed;
    let to = &truth[19].date_placed;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("order__date_placed__gte", from)
        .append_pair("order__date_placed__lte", to)
        .append_pair("limit", "100")
        .finish();
    let (_, span) = shop.get(&format!("/api/i1/order-items/?{q}")).await;
    let expected: usize = truth[10..20].iter().map(|o| o.items.len()).sum();
    assert_eq!(span["count"], expected);

    let status = truth[0].status;
    let (_, by_status) = shop
        .get(&format!("/api/i1/orders/?status={status}&limit=100"))
        .await;
    assert_eq!(
        by_status["count"],
        truth.iter().filter(|o| o.status == status).count()
    );

    // Nothing was updated after now; everything after the epoch.
    let (_, none) = shop
        .get("/api/i1/orders/?updated_at__gte=2100-01-01T00%3A00%3A00Z")
        .await;
    assert_eq!(none["count"], 0);
    let (_, all) = shop
        .get("/api/i1/order-items/?updated_at__gte=1970-01-02")
        .await;
    assert_eq!(
        all["count"],
        truth.iter().map(|o| o.items.len()).sum::<usize>()
    );

    for (query, field) in [
        (
            "/api/i1/orders/?updated_at__gte=yesterday",
            "updated_at__gte",
        ),
        // An unencoded `+` is a space: the offset is lost and the value is invalid.
        (
            "/api/i1/orders/?updated_at__gte=2024-01-01T00:00:00+03:00",
            "updated_at__gte",
        ),
        ("/api/i1/orders/?status=shipped", "status"),
        ("/api/i1/orders/?amount__gte=ten", "amount__gte"),
        ("/api/i1/orders/?currency=xyz", "currency"),
        ("/api/i1/orders/?limit=0", "limit"),
    ] {
        let (status, body) = shop.get(query).await;
        assert_eq!(status, 400, "{query}");
        assert!(body.get(field).is_some(), "{query}: {body}");
    }
    for query in [
        "/api/i1/orders/?ordering=-id",
        "/api/i1/order-items/?ordernumbercontains=45",
        "/api/i1/order-items/?order__number__in=1,2",
        "/api/i1/orders/?page=1&page=2",
    ] {
        let (status, body) = shop.get(query).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    assert_eq!(shop.get("/api/i1/orders/?page=zero").await.0, 404);
}

#[tokio::test]
async fn content_type_accept_and_bearer_auth_are_enforced() {
    let shop = shop(3).await;
    let url = shop.url("/api/i1/orders/");
    let no_type = shop
        .http
        .get(&url)
        .header("Authorization", "Bearer demo-akinon-api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 415);
    let (status, _) = read_json(
        shop.request(Method::GET, "/api/i1/orders/")
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 406);

    for auth in [
        None,
        Some(("Authorization", "Bearer wrong")),
        Some(("Authorization", "Token demo-akinon-api-token")),
        // The document's header name is a typo; the API does not read it.
        Some(("Authentication", "Bearer demo-akinon-api-token")),
    ] {
        let mut req = shop
            .http
            .get(&url)
            .header("Content-Type", "application/json");
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    assert_eq!(shop.get("/api/i1/orders/").await.0, 200);
    assert_eq!(shop.get("/api/i1/nothing/").await.0, 404);
    assert_eq!(shop.post("/api/i1/orders/", "{}").await.0, 405);
    assert_eq!(shop.get("/api/i1/cancellation-plans/").await.0, 501);
    assert_eq!(shop.sim.request_count(), 10);
}

#[tokio::test]
async fn logins_issue_tokens_that_can_be_revoked() {
    let shop = shop_with(SimOptions {
        orders: 3,
        token: String::new(),
        ..SimOptions::default()
    })
    .await;
    let (status, body) = shop
        .post(
            "/api/i1/token/obtain/",
            r#"{"email":"seller@demo.akinon.test","password":"nope"}"#,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = shop.post("/api/i1/token/obtain/", r#"{"email":"x"}"#).await;
    assert_eq!(
        (status, &body["password"][0]),
        (400, &json!("This field is required."))
    );
    let login = r#"{"email":"seller@demo.akinon.test","password":"demo-akinon-password"}"#;
    let (status, body) = shop.post("/api/i1/token/obtain/", login).await;
    assert_eq!(status, 200);
    let access = body["access"].as_str().unwrap().to_owned();
    assert!(body["refresh"].is_string());
    assert_eq!(shop.sim.logins(), 1);

    let get = |token: String| {
        shop.http
            .get(shop.url("/api/i1/orders/"))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {token}"))
            .send()
    };
    assert_eq!(get(access.clone()).await.unwrap().status(), 200);
    assert_eq!(
        get("demo-akinon-api-token".into()).await.unwrap().status(),
        401,
        "no API token configured"
    );
    shop.sim.revoke_tokens_after(2);
    assert_eq!(get(access.clone()).await.unwrap().status(), 200);
    assert_eq!(get(access.clone()).await.unwrap().status(), 200);
    assert_eq!(get(access.clone()).await.unwrap().status(), 401);
    let (_, body) = shop.post("/api/i1/token/obtain/", login).await;
    let fresh = body["access"].as_str().unwrap().to_owned();
    assert_ne!(fresh, access);
    assert_eq!(
        get(fresh.clone()).await.unwrap().status(),
        200,
        "revocation is once"
    );
    assert_eq!(get(access).await.unwrap().status(), 401);
    shop.sim.revoke_tokens();
    assert_eq!(get(fresh).await.unwrap().status(), 401);
}

#[tokio::test]
async fn rejecting_items_cancels_them_and_the_order_follows_the_last_one() {
    let shop = shop(0).await;
    let order = loop {
        let id = shop.sim.add_orders(1).remove(0);
        let order = shop.sim.truth().into_iter().find(|o| o.id == id).unwrap();
        if order.items.len() >= 2 {
            break order;
        }
    };
    let reject = |item: &str| format!("/api/i1/order-items/{item}/reject/");
    let (first, rest) = order.items.split_first().unwrap();

    assert_eq!(shop.post(&reject(&first.id), "{}").await.0, 204);
    let now = shop
        .sim
        .truth()
        .into_iter()
        .find(|o| o.id == order.id)
        .unwrap();
    assert_eq!(
        now.items.iter().find(|i| i.id == first.id).unwrap().status,
        800
    );
    assert_eq!(now.status, 100, "the order waits for its other items");
    let (status, body) = shop.post(&reject(&first.id), "{}").await;
    assert_eq!(status, 400, "{body}");

    for item in rest {
        assert_eq!(
            shop.post(&reject(&item.id), "").await.0,
            204,
            "an empty body is {{}}"
        );
    }
    let now = shop
        .sim
        .truth()
        .into_iter()
        .find(|o| o.id == order.id)
        .unwrap();
    assert_eq!(now.status, 800);
    let (_, items) = shop
        .get(&format!(
            "/api/i1/order-items/?order__number={}&status=800",
            order.number
        ))
        .await;
    assert_eq!(items["count"], order.items.len());

    // Packaged and later items cannot be rejected: a final 400 with the reason.
    let other = shop.sim.add_orders(1).remove(0);
    shop.sim.set_status(&other, 400);
    let item = shop
        .sim
        .truth()
        .into_iter()
        .find(|o| o.id == other)
        .unwrap()
        .items[0]
        .id
        .clone();
    let (status, body) = shop.post(&reject(&item), "{}").await;
    assert_eq!(
        (status, &body["detail"]),
        (400, &json!("Packaged order items cannot be rejected."))
    );
    assert_eq!(shop.post(&reject(&item), "[1]").await.0, 400);
    assert_eq!(shop.post(&reject("no-such-item"), "{}").await.0, 404);
    let posts = shop
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reject/"))
        .count();
    assert_eq!(posts, order.items.len() + 4, "every reject is recorded");
}

#[tokio::test]
async fn changes_show_in_updated_at_filters_and_a_line_change_leaves_the_order_alone() {
    let shop = shop(20).await;
    let truth = shop.sim.truth();
    let since = render_time(now_micros() - 1_000_000);
    let q = |list: &str| {
        format!(
            "/api/i1/{list}/?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("updated_at__gte", &since)
                .finish()
        )
    };
    shop.sim.set_status(&truth[3].id, 500);
    shop.sim.set_item_status(&truth[5].items[0].id, 450);
    let (_, orders) = shop.get(&q("orders")).await;
    assert_eq!(
        ids(orders["results"].as_array().unwrap()),
        [truth[3].id.clone()]
    );
    let (_, items) = shop.get(&q("order-items")).await;
    let changed: HashSet<String> = items["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["order"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changed,
        HashSet::from([truth[3].id.clone(), truth[5].id.clone()])
    );
    let now = shop.sim.truth();
    assert_eq!(now[5].status, truth[5].status);
    assert_eq!(now[5].items[0].status, 450);
    assert!(now[3].items.iter().all(|i| i.status == 500));
}

#[tokio::test]
async fn faults_replace_or_break_answers_one_request_each() {
    let shop = shop(5).await;
    shop.sim.faults().push(Fault::Status(503));
    assert_eq!(shop.get("/api/i1/orders/").await.0, 503);
    shop.sim.faults().push(Fault::MalformedRecord);
    let (_, page) = shop.get("/api/i1/orders/").await;
    assert_eq!(page["results"][1]["id"], json!({"oops": true}));
    assert_eq!(page["results"][0]["id"], shop.sim.truth()[0].id.as_str());
    shop.sim.faults().push(Fault::MalformedJson);
    let text = shop
        .request(Method::GET, "/api/i1/order-items/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    // A refused request does not consume the fault.
    shop.sim
        .faults()
        .push(Fault::Slow(Duration::from_millis(1)));
    let refused = shop
        .http
        .get(shop.url("/api/i1/orders/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    assert_eq!(shop.sim.faults().pending(), 1);
}
