//! A webhook receiver on loopback, as a downstream system would run one: it checks every
//! signature with an independent Standard Webhooks implementation (the `standardwebhooks`
//! crate), records what it accepted, and answers with the faults a test lines up (errors,
//! `Retry-After`, a hang past the sender's timeout, a dropped connection, 410).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;

/// A Standard Webhooks secret for the tests (32 bytes of base64).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw0Bn8DuSyhmU=";

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// 503 with `Retry-After: secs`.
    RetryAfter(u64),
    /// Waits this long (past the sender's timeout), then answers 503.
    Hang(Duration),
    /// Closes the connection without an answer.
    Drop,
    /// Takes the event, then answers only after this long (past the sender's timeout): the
    /// sender must send it again, and the receiver sees a repeat.
    LateAccept(Duration),
}

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub event_id: i64,
    pub platform: String,
    pub order_id: String,
    pub kind: String,
    pub body: serde_json::Value,
    pub at: std::time::Instant,
}

struct Inner {
    verifier: standardwebhooks::Webhook,
    accepted: Mutex<Vec<Delivery>>,
    plan: Mutex<VecDeque<Answer>>,
    /// Answered this way to every request, after the plan, until changed.
    steady: Mutex<Option<Answer>>,
    bad_signatures: AtomicU64,
    requests: AtomicU64,
    /// How long each accepted request takes, in milliseconds: a receiver with work to do.
    latency_ms: AtomicU64,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    /// Starts on a free loopback port, checking signatures against `secret`.
    pub async fn start(secret: &str) -> Receiver {
        let inner = Arc::new(Inner {
            verifier: standardwebhooks::Webhook::new(secret).expect("a valid secret"),
            accepted: Mutex::new(Vec::new()),
            plan: Mutex::new(VecDeque::new()),
            steady: Mutex::new(None),
            bad_signatures: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency_ms: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/orders", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/orders", axum::routing::post(handle))
            .with_state(inner.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Receiver { url, inner, stop }
    }

    /// Answers the next requests this way, in order, before going back to accepting.
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.plan.lock().unwrap().extend(answers);
    }

    /// Answers every request this way (after the plan) until [`Self::accept_all`].
    pub fn answer_always(&self, a: Answer) {
        *self.inner.steady.lock().unwrap() = Some(a);
    }

    /// Takes `d` over every accepted request from now on.
    pub fn set_latency(&self, d: Duration) {
        self.inner
            .latency_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn accept_all(&self) {
        *self.inner.steady.lock().unwrap() = None;
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        self.inner.accepted.lock().unwrap().clone()
    }

    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub fn bad_signatures(&self) -> u64 {
        self.inner.bad_signatures.load(Ordering::Relaxed)
    }

    pub fn pending_plan(&self) -> usize {
        self.inner.plan.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    // standardwebhooks speaks the `http` crate's types, as axum does.
    if inner.verifier.verify(&body, &headers).is_err() {
        inner.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let planned = inner.plan.lock().unwrap().pop_front();
    let answer = planned.or_else(|| inner.steady.lock().unwrap().clone());
    match answer {
        Some(Answer::Status(code)) => {
            return (StatusCode::from_u16(code).unwrap(), "not now").into_response();
        }
        Some(Answer::RetryAfter(secs)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", secs.to_string())],
                "busy",
            )
                .into_response();
        }
        Some(Answer::Hang(d)) => {
            tokio::time::sleep(d).await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        // Unwinding the connection's task closes its socket before any answer; resume_unwind
        // skips the panic hook, so nothing is printed.
        Some(Answer::Drop) => std::panic::resume_unwind(Box::new("dropping the connection")),
        Some(Answer::LateAccept(_)) | None => {}
    }
    let v: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    let event = &v["data"]["event"];
    let d = Delivery {
        webhook_id: headers["webhook-id"].to_str().unwrap().to_string(),
        event_id: event["id"].as_i64().expect("data.event.id"),
        platform: event["platform"].as_str().unwrap().to_string(),
        order_id: event["order_id"].as_str().unwrap().to_string(),
        kind: event["kind"].as_str().unwrap().to_string(),
        body: v.clone(),
        at: std::time::Instant::now(),
    };
    inner.accepted.lock().unwrap().push(d);
    if let Some(Answer::LateAccept(d)) = answer {
        tokio::time::sleep(d).await;
    }
    let latency = inner.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Every event of the feed: (id, platform, order_id, kind), in id order.
pub fn feed(db: &Connection) -> Vec<(i64, String, String, String)> {
    let mut stmt = db
        .prepare("SELECT id, platform, order_id, kind FROM order_events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What a receiver got, checked against the feed: every event is there; a repeat only ever
/// carries the id of the first; ids are one per event; and, counting each id once, every
/// order's events arrived in the feed's order. Returns how many deliveries were repeats.
pub fn assert_holds_the_feed(feed: &[(i64, String, String, String)], got: &[Delivery]) -> usize {
    let mut id_of: HashMap<i64, &str> = HashMap::new();
    let mut event_of: HashMap<&str, i64> = HashMap::new();
    let mut repeats = 0;
    let mut per_order: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for d in got {
        let first = *id_of.entry(d.event_id).or_insert(&d.webhook_id);
        assert_eq!(
            first, d.webhook_id,
            "event {} came with two webhook-ids",
            d.event_id
        );
        let e = *event_of.entry(&d.webhook_id).or_insert(d.event_id);
        assert_eq!(
            e, d.event_id,
            "webhook-id {} named two events",
            d.webhook_id
        );
        if per_order
            .get(&(d.platform.as_str(), d.order_id.as_str()))
            .is_some_and(|seen| seen.contains(&d.event_id))
        {
            repeats += 1;
            continue;
        }
        per_order
            .entry((&d.platform, &d.order_id))
            .or_default()
            .push(d.event_id);
    }
    let want: std::collections::BTreeSet<i64> = feed.iter().map(|e| e.0).collect();
    let have: std::collections::BTreeSet<i64> = id_of.keys().copied().collect();
    let missing: Vec<_> = want.difference(&have).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never arrived, first {missing:?}",
        want.difference(&have).count(),
        want.len()
    );
    let extra: Vec<_> = have.difference(&want).take(10).collect();
    assert!(
        extra.is_empty(),
        "events not in the feed arrived: {extra:?}"
    );
    for ((p, o), ids) in &per_order {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "order {p}/{o}: events arrived as {ids:?}"
        );
    }
    for (id, platform, order_id, kind) in feed {
        let d = got.iter().find(|d| d.event_id == *id).unwrap();
        assert_eq!(
            (&d.platform, &d.order_id, &d.kind),
            (platform, order_id, kind),
            "event {id}"
        );
    }
    repeats
}
