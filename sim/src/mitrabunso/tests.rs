//! The Mitrabunso simulator against its document, over HTTP.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{DOCUMENTED_STATUSES, MitrabunsoSim, SimOptions};
use crate::Fault;
use crate::core::server::RunningSim;
use crate::core::testing::{self, read_json};

struct Served {
    sim: MitrabunsoSim,
    running: RunningSim,
    http: reqwest::Client,
    user: String,
}

async fn account(orders: usize) -> Served {
    account_with(SimOptions {
        orders,
        ..SimOptions::default()
    })
    .await
}

async fn account_with(opts: SimOptions) -> Served {
    let user = opts.user_id.clone();
    let sim = MitrabunsoSim::new(opts);
    let running = sim.serve().await.expect("sim starts");
    let http = testing::client();
    Served {
        sim,
        running,
        http,
        user,
    }
}

impl Served {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.running.base_url()))
            .header("Authorization", "Bearer demo-mitrabunso-token")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        read_json(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    fn list(&self, offset: usize, limit: usize, query: &str) -> String {
        format!(
            "/public/order/orders/list/{}/{offset}/{limit}{query}",
            self.user
        )
    }
}

fn ids_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order"]["order_id"].as_str().unwrap().to_owned())
        .collect()
}

fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        other => Decimal::from_str(&other.to_string()).unwrap(),
    }
}

#[tokio::test]
async fn offset_pages_list_every_order_once_newest_first() {
    let shop = account(250).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = shop.get(&shop.list(offset, 100, "")).await;
        assert_eq!(status, 200);
        assert_eq!(page["message"], "Data retrieved successfully");
        assert_eq!(page["total"], 250);
        let ids = ids_of(&page);
        assert_eq!(page["show"], ids.len());
        if ids.is_empty() {
            break;
        }
        offset += ids.len();
        seen.extend(ids);
    }
    let mut newest_first = shop.sim.order_ids();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
}

#[tokio::test]
async fn generated_records_have_the_documents_shape_and_quirks() {
    let sim = MitrabunsoSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    let truth = sim.truth();
    let account = sim.inner.account.read();
    let mut quirks = BTreeMap::<&str, usize>::new();
    for (stored, t) in account.orders.iter().zip(&truth) {
        let r: Value = serde_json::from_str(&stored.json).unwrap();
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "customer",
            "sender",
            "order",
            "details",
            "updatedAWB",
            "createdAt",
            "processedAt",
            "sentAt",
            "status",
            "updatedInvoice",
        ] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(r["order"]["order_id"], t.id.as_str());
        assert_eq!(t.id.len(), 36);
        assert_eq!(r["status"], t.status.as_str());
        assert_eq!(dec(&r["order"]["totalCost"]), t.total);
        let details = r["details"].as_array().unwrap();
        assert_eq!(details.len(), t.items.len());
        let sum: Decimal = details.iter().map(|d| dec(&d["totalPrice"])).sum();
        assert_eq!(sum, t.total, "totalCost is the sum of the lines");
        for d in details {
            assert_eq!(
                dec(&d["productPrice"]) * dec(&d["qty"]),
                dec(&d["totalPrice"])
            );
            if d["qty"].is_string() {
                *quirks.entry("qty as text").or_default() += 1;
            }
        }
        if r["order"]["shippingCost"].is_string() {
            *quirks.entry("shippingCost as text").or_default() += 1;
        }
        if r["order"]["totalCost"].is_string() {
            *quirks.entry("totalCost as text").or_default() += 1;
        }
        if t.updated_invoice
            .as_deref()
            .is_some_and(|u| !u.is_empty() && u != t.invoice)
        {
            *quirks.entry("updatedInvoice differs").or_default() += 1;
        }
        if matches!(t.updated_invoice.as_deref(), None | Some("")) {
            *quirks.entry("updatedInvoice empty").or_default() += 1;
        }
        if t.updated_awb.is_some() && t.updated_awb != t.awb {
            *quirks.entry("updatedAWB differs").or_default() += 1;
        }
        if r["customer"]["provinceCode"].is_null() {
            *quirks.entry("provinceCode null").or_default() += 1;
        }
        let created = r["createdAt"].as_str().unwrap();
        assert_eq!(created.len(), 19, "{created}");
        assert_eq!(created, t.created_at);
        match t.status.as_str() {
            "SENT" => assert!(t.sent_at.is_some() && t.processed_at.is_some()),
            "PROCESSED" => assert!(t.sent_at.is_none() && t.processed_at.is_some()),
            _ => assert!(t.sent_at.is_none() && t.processed_at.is_none()),
        }
    }
    for quirk in [
        "qty as text",
        "shippingCost as text",
        "totalCost as text",
        "updatedInvoice differs",
        "updatedInvoice empty",
        "updatedAWB differs",
        "provinceCode null",
    ] {
        assert!(
            quirks.get(quirk).is_some_and(|n| *n > 20),
            "{quirk}: {quirks:?}"
        );
    }
    for s in DOCUMENTED_STATUSES {
        assert!(truth.iter().filter(|t| t.status == s).count() > 20, "{s}");
    }
    drop(account);
    let again = MitrabunsoSim::new(SimOptions {
        orders: 2_000,
        ..SimOptions::default()
    });
    assert_eq!(truth, again.truth(), "same seed, same account");
}

#[tokio::test]
async fn invalid_requests_are_refused_naming_what_is_wrong() {
    let shop = account(3).await;
    for (path, named) in [
        (shop.list(0, 101, ""), "limit"),
        (shop.list(0, 0, ""), "limit"),
        (
            format!("/public/order/orders/list/{}/0/ten", shop.user),
            "limit",
        ),
        (
            format!("/public/order/orders/list/{}/-1/10", shop.user),
            "offsite",
        ),
        (
            format!("/public/order/orders/list/{}/1.5/10", shop.user),
            "offsite",
        ),
        (shop.list(0, 10, "?status="), "status"),
        (shop.list(0, 10, "?sort=createdAt"), "sort"),
        (shop.list(0, 10, "?status=NEW&status=SENT"), "status"),
    ] {
        let (status, body) = shop.get(&path).await;
        assert_eq!(status, 400, "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(named), "{path}: {message}");
    }
    assert_eq!(
        shop.get("/public/order/orders/list/x/0/10").await.0,
        401,
        "another user"
    );
    assert_eq!(
        shop.get(&format!("/public/order/orders/list/{}/0", shop.user))
            .await
            .0,
        404
    );
    let (status, page) = shop.get(&shop.list(0, 100, "")).await;
    assert_eq!((status, ids_of(&page).len()), (200, 3));
}

#[tokio::test]
async fn the_token_is_checked_before_anything_else() {
    let shop = account(1).await;
    let url = format!("{}{}", shop.running.base_url(), shop.list(0, 10, ""));
    shop.sim.faults().push(Fault::Status(500));
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic demo-mitrabunso-token"),
    ] {
        let mut req = shop.http.get(&url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let (status, body) = read_json(req.send().await.unwrap()).await;
        assert_eq!(
            (status, &body["message"]),
            (401, &json!("Unauthenticated."))
        );
    }
    assert_eq!(
        shop.sim.faults().pending(),
        1,
        "refused requests leave the fault queued"
    );
    assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 500);
    assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 200);
    let statuses: Vec<u16> = shop.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 500, 200]);
}

#[tokio::test]
async fn status_and_search_filter_the_listing() {
    let shop = account(300).await;
    let truth = shop.sim.truth();
    for s in DOCUMENTED_STATUSES {
        let mut want: Vec<String> = truth
            .iter()
            .filter(|t| t.status == s)
            .map(|t| t.id.clone())
            .rev()
            .collect();
        let (_, page) = shop.get(&shop.list(0, 100, &format!("?status={s}"))).await;
        assert_eq!(page["total"], want.len());
        want.truncate(100);
        assert_eq!(ids_of(&page), want, "{s}");
    }
    let (_, page) = shop.get(&shop.list(0, 10, "?status=new")).await;
    assert_eq!(page["total"], 0, "statuses match exactly");
    let target = &truth[17];
    let (_, page) = shop
        .get(&shop.list(0, 10, &format!("?q={}", target.invoice.to_lowercase())))
        .await;
    assert!(ids_of(&page).contains(&target.id));
    let (_, summary) = shop
        .get(&format!("/public/order/orders/total_summary/{}", shop.user))
        .await;
    let sent = truth.iter().filter(|t| t.status == "SENT").count();
    assert_eq!(summary["data"]["SENT"], sent);
}

#[tokio::test]
async fn account_changes_show_in_the_api_and_details_follow_deletions() {
    let shop = account_with(SimOptions {
        orders: 3,
        statuses: vec![(1, "NEW".to_owned())],
        ..SimOptions::default()
    })
    .await;
    let ids = shop.sim.order_ids();
    shop.sim.set_status(&ids[0], "SENT");
    let (_, sent) = shop.get(&shop.list(0, 10, "?status=SENT")).await;
    let (_, new) = shop.get(&shop.list(0, 10, "?status=NEW")).await;
    assert_eq!(ids_of(&sent), [ids[0].clone()]);
    assert_eq!(ids_of(&new), [ids[2].clone(), ids[1].clone()]);
    shop.sim.set_updated_awb(&ids[1], "JP0000000001");
    shop.sim.set_updated_invoice(&ids[1], "INV-NEW-1");
    let added = shop.sim.add_orders(2);
    let (_, page) = shop.get(&shop.list(0, 10, "")).await;
    assert_eq!(
        ids_of(&page)[..2],
        [added[1].clone(), added[0].clone()],
        "newest first"
    );
    let rec = |id: &str| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["order"]["order_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(rec(&ids[0])["status"], "SENT");
    assert!(rec(&ids[0])["sentAt"].is_string());
    assert_eq!(rec(&ids[1])["updatedAWB"], "JP0000000001");
    assert_eq!(rec(&added[0])["status"], "NEW");
    let truth = shop.sim.truth();
    assert_eq!(truth[1].number, "INV-NEW-1");
    assert_eq!(truth[1].tracking_number.as_deref(), Some("JP0000000001"));

    let details = format!("/public/order/orders/details/{}/{}", shop.user, ids[2]);
    let (status, body) = shop.get(&details).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["order"][0]["id"], ids[2].as_str());
    assert!(body["data"]["order"][0]["deleted_at"].is_null());
    assert!(body["data"]["order"][0]["order_first_state"].is_string());
    shop.sim.delete_order(&ids[2]);
    let (_, body) = shop.get(&details).await;
    assert!(body["data"]["order"][0]["deleted_at"].is_string());
    let (_, page) = shop.get(&shop.list(0, 10, "")).await;
    assert!(!ids_of(&page).contains(&ids[2]));
    assert_eq!(page["total"], 4);
    let (status, _) = shop
        .get(&format!("/public/order/orders/details/{}/nope", shop.user))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_insert_hook_places_orders_at_the_head_of_the_listing_served() {
    let shop = account_with(SimOptions {
        orders: 30,
        statuses: vec![(1, "PROCESSED".to_owned())],
        ..SimOptions::default()
    })
    .await;
    shop.sim.insert_after_each_page(3);
    let (_, first) = shop.get(&shop.list(0, 10, "?status=PROCESSED")).await;
    let (_, second) = shop.get(&shop.list(10, 10, "?status=PROCESSED")).await;
    assert_eq!(
        (first["total"].as_u64(), second["total"].as_u64()),
        (Some(30), Some(33))
    );
    // The three placed after the first page pushed its last three onto the second.
    assert_eq!(ids_of(&first)[7..], ids_of(&second)[..3]);
    shop.sim.insert_after_each_page(0);
    assert_eq!(shop.sim.truth().len(), 36);
}

#[tokio::test]
async fn unsimulated_and_forbidden_endpoints_say_so_and_are_logged() {
    let shop = account(1).await;
    let print = format!(
        "/public/order/orders/print_order/{}/2022-09-02%2016:11:21/1",
        shop.user
    );
    let (status, body) = read_json(
        shop.request(reqwest::Method::POST, &print)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 501);
    assert!(body["message"].as_str().unwrap().contains("never"));
    let create = format!("/public/order/orders/create/{}", shop.user);
    let response = shop
        .request(reqwest::Method::POST, &create)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    assert_eq!(shop.get(&create).await.0, 405);
    assert_eq!(shop.get("/public/order/orders/nothing").await.0, 404);
    assert!(
        shop.sim.requests()[0]
            .path_and_query
            .contains("print_order")
    );
}

#[tokio::test]
async fn faults_break_the_answer_as_asked() {
    let shop = account(3).await;
    shop.sim.faults().push(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    let response = shop
        .request(reqwest::Method::GET, &shop.list(0, 10, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");

    shop.sim.faults().push(Fault::MalformedRecord);
    let (_, page) = shop.get(&shop.list(0, 10, "")).await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data[1]["order"]["order_id"], json!({"oops": true}));
    assert!(data[0]["order"]["order_id"].is_string() && data[2]["order"]["order_id"].is_string());

    shop.sim.faults().push(Fault::MalformedJson);
    let text = shop
        .request(reqwest::Method::GET, &shop.list(0, 10, ""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    shop.sim.faults().push(Fault::DropConnection);
    let response = shop
        .request(reqwest::Method::GET, &shop.list(0, 10, ""))
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.is_err(), "the body is cut off");

    shop.sim
        .faults()
        .push(Fault::Slow(Duration::from_millis(150)));
    let began = Instant::now();
    assert_eq!(shop.get(&shop.list(0, 10, "")).await.0, 200);
    assert!(began.elapsed() >= Duration::from_millis(150));
}
