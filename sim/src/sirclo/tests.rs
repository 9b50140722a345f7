//! The SIRCLO simulator against its document, over HTTP.

use std::collections::HashSet;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{FIRST_ID, SimOptions, SircloSim, UPDATE_PATH, platform_time};
use crate::Fault;
use crate::core::testing::{self, read_json};

/// The MAC as a partner computes it: base64 of HMAC-SHA256 over the request URI and body.
fn sign(secret: &str, request_uri: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(request_uri.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

type Served = testing::Served<SircloSim>;

async fn account(orders: usize) -> Served {
    let sim = SircloSim::new(SimOptions {
        orders,
        ..SimOptions::default()
    });
    let running = sim.serve().await.expect("sim starts");
    Served::new(sim, running)
}

const SINCE: &str = "2024-12-31T00:00:00Z";
const UNTIL: &str = "2025-02-01T00:00:00Z";

impl Served {
    /// A request signed over `signed` (the request URI and body), sent to `sent`.
    fn signed(
        &self,
        method: reqwest::Method,
        sent: &str,
        signed: &str,
        body: &str,
    ) -> reqwest::RequestBuilder {
        let opts = SimOptions::default();
        self.http
            .request(method, format!("{}{sent}", self.running.base_url()))
            .header("partner_id", opts.partner_id)
            .header("MAC", sign(&opts.secret, signed, body.as_bytes()))
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let request = self.signed(reqwest::Method::GET, path_and_query, path_and_query, "");
        read_json(request.send().await.unwrap()).await
    }

    async fn page(&self, page_no: usize, perpage: usize) -> (u16, Value) {
        self.get(&format!(
            "/v1/partner/page/{page_no}?since={SINCE}&until={UNTIL}&perpage={perpage}"
        ))
        .await
    }

    async fn update(&self, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let request = self
            .signed(reqwest::Method::PATCH, UPDATE_PATH, UPDATE_PATH, &body)
            .header("Content-Type", "application/json")
            .body(body);
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

#[tokio::test]
async fn pages_return_every_order_once_oldest_first_with_the_total() {
    let acct = account(250).await;
    let mut seen = Vec::new();
    for page_no in 1..=4 {
        let (status, page) = acct.page(page_no, 100).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total_record"], 250);
        assert_eq!(
            (page["message"].as_str(), page["reference"].as_str()),
            (Some(""), Some(""))
        );
        seen.extend(ids_of(&page));
    }
    assert_eq!(
        seen,
        acct.sim.order_ids(),
        "pages 1-3 hold everything, page 4 is empty"
    );
}

#[tokio::test]
async fn since_and_until_filter_on_the_order_date_inclusively() {
    let acct = account(100).await;
    let truth = acct.sim.truth();
    // Orders are 90 s apart from 2025-01-01T00:00:00Z: 10 through 20 inclusive.
    let from = "2025-01-01T00:15:00Z";
    let to = "2025-01-01T07:30:00%2B07:00";
    let (status, page) = acct
        .get(&format!(
            "/v1/partner/page/1?since={from}&until={to}&perpage=100"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        ids_of(&page),
        (10..=20).map(|i| truth[i].id).collect::<Vec<_>>()
    );
    assert_eq!(page["total_record"], 11);
}

#[tokio::test]
async fn records_match_the_document_and_the_truth() {
    let acct = account(300).await;
    let truth = acct.sim.truth();
    let (_, page) = acct.page(1, 100).await;
    let mut statuses = HashSet::new();
    let mut with_order_id = 0;
    for (record, t) in page["data"].as_array().unwrap().iter().zip(&truth) {
        let o = record.as_object().unwrap();
        for key in [
            "id",
            "order_date",
            "customer_reference",
            "shipment_reference",
            "status",
            "delivery_name",
            "delivery_street_address",
            "delivery_method",
            "airwaybill_number",
            "currency_code",
            "subtotal",
            "discount_total",
            "shipping_total",
            "tax_total",
            "total",
            "line_items",
            "createdAt",
            "updatedAt",
        ] {
            assert!(o.contains_key(key), "{key} in {record}");
        }
        assert_eq!(o["id"], t.id);
        let number = o.get("order_number").or(o.get("order_id")).unwrap();
        with_order_id += usize::from(o.contains_key("order_id"));
        assert_eq!(number, &t.number);
        assert_eq!(o["status"], t.status.as_str());
        statuses.insert(t.status.clone());
        assert_eq!(Decimal::from_str(&o["total"].to_string()).unwrap(), t.total);
        let money = |k: &str| Decimal::from_str(&o[k].to_string()).unwrap();
        assert_eq!(
            money("subtotal") - money("discount_total")
                + money("shipping_total")
                + money("tax_total"),
            t.total
        );
        assert_eq!(o["line_items"].as_array().unwrap().len(), t.items);
        assert_eq!(o["updatedAt"], t.updated_at.as_str());
        assert!(DateTime::parse_from_rfc3339(o["order_date"].as_str().unwrap()).is_ok());
        assert!(
            !o["createdAt"].as_str().unwrap().contains('T'),
            "no zone, no T"
        );
    }
    assert!(
        with_order_id > 0,
        "some records carry order_id instead of order_number"
    );
    for s in [
        "pending",
        "accepted",
        "packed",
        "completed",
        "canceled",
        "cancelled",
    ] {
        assert!(statuses.contains(s), "{s} among the first 100");
    }
}

#[tokio::test]
async fn invalid_queries_are_refused_naming_the_parameter() {
    let acct = account(5).await;
    for (query, expected) in [
        (
            format!("since={SINCE}&until={UNTIL}&perpage=101"),
            "perpage",
        ),
        (format!("since={SINCE}&until={UNTIL}&perpage=0"), "perpage"),
        (format!("since={SINCE}&until={UNTIL}"), "perpage"),
        (format!("until={UNTIL}&perpage=10"), "since"),
        (format!("since=yesterday&until={UNTIL}&perpage=10"), "since"),
        // An unencoded `+` reads as a space.
        (
            format!("since=2025-01-01T07:00:00+07:00&until={UNTIL}&perpage=10"),
            "since",
        ),
        (
            format!("since={SINCE}&until={UNTIL}&perpage=10&limit=5"),
            "limit",
        ),
        (
            format!("since={SINCE}&until={UNTIL}&perpage=10&perpage=10"),
            "perpage",
        ),
        (format!("since={UNTIL}&until={SINCE}&perpage=10"), "since"),
    ] {
        let (status, body) = acct.get(&format!("/v1/partner/page/1?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
    for page_no in ["0", "x", "-1"] {
        let (status, _) = acct
            .get(&format!(
                "/v1/partner/page/{page_no}?since={SINCE}&until={UNTIL}&perpage=1"
            ))
            .await;
        assert_eq!(status, 400, "page {page_no}");
    }
    let (status, _) = acct.get("/v1/partner/orders").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_mac_is_checked_over_the_exact_bytes_received() {
    let acct = account(5).await;
    let sent = format!("/v1/partner/page/1?since={SINCE}&until={UNTIL}&perpage=5");
    let get = reqwest::Method::GET;
    let ok = acct
        .signed(get.clone(), &sent, &sent, "")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let other_query = sent.replace("perpage=5", "perpage=4");
    let r = acct
        .signed(get.clone(), &sent, &other_query, "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a MAC over another query");
    let encoded = sent.replace(':', "%3A");
    let r = acct
        .signed(get.clone(), &encoded, &sent, "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "signed unencoded, sent encoded");
    let r = acct
        .signed(get.clone(), &encoded, &encoded, "")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "signed as sent, encoded: the values decode the same"
    );

    let opts = SimOptions::default();
    let mac = sign(&opts.secret, &sent, b"");
    let url = format!("{}{sent}", acct.running.base_url());
    let with = |headers: &[(&str, &str)]| {
        let mut r = acct.http.get(&url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            with(&[("partner-id", &opts.partner_id), ("MAC", &mac)])
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            with(&[("partner_id", &opts.partner_id), ("secret", &mac)])
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            with(&[("partner_id", "OTHER"), ("MAC", &mac)])
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(status(with(&[("MAC", &mac)]).await.unwrap()), 401);
    assert_eq!(
        status(with(&[("partner_id", &opts.partner_id)]).await.unwrap()),
        401
    );
    let wrong_key = sign("not-the-secret", &sent, b"");
    assert_eq!(
        status(
            with(&[("partner_id", &opts.partner_id), ("MAC", &wrong_key)])
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(acct.sim.request_count(), 10);
}

#[tokio::test]
async fn updates_move_orders_along_the_lifecycle_and_report_each_order() {
    let acct = account(200).await;
    let truth = acct.sim.truth();
    let find = |s: &str| truth.iter().find(|t| t.status == s).unwrap().clone();
    let (pending, accepted, packed) = (find("pending"), find("accepted"), find("packed"));
    let completed = find("completed");
    let body = json!({
        "accepted": [{"id": pending.id, "order_number": pending.number,
                      "updated_at": pending.updated_at}],
        "packed": [{"id": accepted.id, "order_number": accepted.number,
                    "airwaybill_number": "JP1234567890", "updated_at": accepted.updated_at}],
        "completed": [{"id": packed.id, "order_number": packed.number,
                       "received_by": "Yosua", "updated_at": "2019-05-27 06:05:11.979185"}],
        "cancelled": [{"id": completed.id, "order_number": completed.number,
                       "cancel_reason": "", "updated_at": completed.updated_at},
                      {"id": 1, "order_number": "X", "cancel_reason": "", "updated_at": ""}],
    });
    let (status, answer) = acct.update(&body).await;
    assert_eq!(status, 200, "{answer}");
    let succeed = answer["data"]["succeed"].as_array().unwrap();
    let failed = answer["data"]["failed"].as_array().unwrap();
    assert_eq!(
        succeed
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [pending.id, accepted.id]
    );
    assert_eq!(
        failed
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [packed.id, completed.id, 1]
    );
    assert!(
        failed[0]["message"].as_str().unwrap().contains("berubah"),
        "stale updated_at"
    );
    assert_eq!(failed[0]["updated_at"], packed.updated_at.as_str());
    assert!(
        failed[1]["message"].as_str().unwrap().contains("completed"),
        "{}",
        failed[1]
    );

    let after = acct.sim.truth();
    let now = |id: u64| after.iter().find(|t| t.id == id).unwrap().clone();
    assert_eq!(now(pending.id).status, "accepted");
    assert_eq!(
        succeed[0]["updated_at"],
        now(pending.id).updated_at.as_str()
    );
    assert_ne!(now(pending.id).updated_at, pending.updated_at);
    assert_eq!(
        now(accepted.id).airwaybill_number.as_deref(),
        Some("JP1234567890")
    );
    assert_eq!(now(packed.id), packed, "a failed entry changes nothing");

    // The old updated_at no longer matches; the new one does, and cancelling reads back as
    // `canceled`.
    let fresh = now(pending.id);
    let cancel = |updated_at: &str| {
        json!({"cancelled": [{"id": fresh.id, "order_number": fresh.number,
                              "cancel_reason": "Stok habis", "updated_at": updated_at}]})
    };
    let (_, answer) = acct.update(&cancel(&pending.updated_at)).await;
    assert_eq!(answer["data"]["failed"].as_array().unwrap().len(), 1);
    let (_, answer) = acct.update(&cancel(&fresh.updated_at)).await;
    assert_eq!(answer["data"]["succeed"][0]["order_status"], "canceled");
    assert_eq!(
        now(fresh.id).status,
        "accepted",
        "the earlier snapshot is unchanged"
    );
    let cancelled = acct
        .sim
        .truth()
        .into_iter()
        .find(|t| t.id == fresh.id)
        .unwrap();
    assert_eq!(cancelled.status, "canceled");
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("Stok habis"));
}

#[tokio::test]
async fn updates_take_api_key_headers_or_a_mac_over_the_body_and_validate_the_shape() {
    let acct = account(50).await;
    let t = acct
        .sim
        .truth()
        .into_iter()
        .find(|t| t.status == "pending")
        .unwrap();
    let body = json!({"accepted": [{"id": t.id, "order_number": t.number,
                                    "updated_at": t.updated_at}]})
    .to_string();
    let opts = SimOptions::default();
    let url = format!("{}{UPDATE_PATH}", acct.running.base_url());
    let by_key = acct
        .http
        .patch(&url)
        .header("api_key", &opts.api_key)
        .header("api_secret", &opts.api_secret)
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);
    let bad_key = acct
        .http
        .patch(&url)
        .header("api_key", &opts.api_key)
        .header("api_secret", "wrong")
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    let mac_over_other_body = acct
        .signed(reqwest::Method::PATCH, UPDATE_PATH, UPDATE_PATH, "{}")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(mac_over_other_body.status(), 401);

    for bad in [
        json!([]),
        json!({"canceled": []}),
        json!({"accepted": {}}),
        json!({"accepted": [{"order_number": "x"}]}),
        json!({}),
    ] {
        let (status, answer) = acct.update(&bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
}

#[tokio::test]
async fn sim_side_changes_bump_updated_at_and_new_orders_are_pending_and_dated_now() {
    let acct = account(20).await;
    let before = acct.sim.truth();
    acct.sim.set_status(before[3].id, "packed");
    let after = acct.sim.truth();
    assert_eq!(after[3].status, "packed");
    assert!(after[3].updated_at > before[3].updated_at);
    assert_eq!(after[4], before[4]);
    let ids = acct.sim.add_orders(3);
    assert_eq!(ids, [FIRST_ID + 20, FIRST_ID + 21, FIRST_ID + 22]);
    let now = Utc::now();
    let (_, page) = acct
        .get(&format!(
            "/v1/partner/page/1?since={}&until={}&perpage=10",
            (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ"),
            (now + chrono::Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        ))
        .await;
    assert_eq!(ids_of(&page), ids);
    assert!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "pending")
    );
}

#[tokio::test]
async fn faults_answer_instead_of_the_platform_or_break_its_answer() {
    let acct = account(10).await;
    let faults = acct.sim.faults();
    faults.push(Fault::Status(503));
    faults.push(Fault::TooManyRequests {
        retry_after_secs: 3,
    });
    faults.push(Fault::MalformedRecord);
    faults.push(Fault::MalformedJson);
    let (status, _) = acct.page(1, 5).await;
    assert_eq!(status, 503);
    let url = format!(
        "{}/v1/partner/page/1?since={SINCE}&until={UNTIL}&perpage=5",
        acct.running.base_url()
    );
    let path = url.trim_start_matches(&acct.running.base_url()).to_owned();
    let r = acct
        .signed(reqwest::Method::GET, &path, &path, "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let (_, page) = acct.page(1, 5).await;
    assert_eq!(page["data"][1]["id"], json!({"oops": true}));
    assert_eq!(page["data"][2]["id"], acct.sim.truth()[2].id);
    let r = acct
        .signed(reqwest::Method::GET, &path, &path, "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    assert_eq!(faults.pending(), 0);
}

#[test]
fn platform_times_drop_trailing_zeros_like_postgres() {
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    assert_eq!(
        platform_time(t("2019-05-27T06:05:11.979185Z")),
        "2019-05-27 06:05:11.979185"
    );
    assert_eq!(
        platform_time(t("2019-05-27T06:05:11.9791Z")),
        "2019-05-27 06:05:11.9791"
    );
    assert_eq!(
        platform_time(t("2019-05-27T06:05:11Z")),
        "2019-05-27 06:05:11"
    );
}

#[test]
fn the_same_seed_gives_the_same_orders() {
    let a = SircloSim::new(SimOptions {
        orders: 50,
        ..SimOptions::default()
    });
    let b = SircloSim::new(SimOptions {
        orders: 50,
        ..SimOptions::default()
    });
    assert_eq!(a.truth(), b.truth());
    let c = SircloSim::new(SimOptions {
        orders: 50,
        seed: 2,
        ..SimOptions::default()
    });
    assert_ne!(a.truth(), c.truth());
}
