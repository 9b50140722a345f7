//! The request log: every request a simulator received, with the status it was answered with,
//! for tests that assert on exactly what a client sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;

use super::server::json_response;

/// Largest request body the log buffers; the real platforms accept far less.
const MAX_REQUEST_BODY: usize = 8 * 1024 * 1024;

/// One request as the simulator saw it (for tests that assert on exactly what was sent).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    /// When the request reached the simulator and when its answer was ready: two requests whose
    /// spans cross were in flight at once (the multi-instance tests check that no platform's
    /// list requests ever are).
    pub received: std::time::Instant,
    pub answered: std::time::Instant,
}

impl RecordedRequest {
    /// Whether this request and `other` were in flight at the same time.
    pub fn overlaps(&self, other: &RecordedRequest) -> bool {
        self.received < other.answered && other.received < self.answered
    }
}

/// The request log: the most recent [`RequestLog::CAPACITY`] requests, and a total that is never
/// capped. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    recent: VecDeque<RecordedRequest>,
    total: usize,
}

impl RequestLog {
    /// A benchmark makes thousands of requests; only the tail is useful to a test.
    pub const CAPACITY: usize = 10_000;

    pub fn record(&self, req: RecordedRequest) {
        let mut log = self.lock();
        if log.recent.len() == Self::CAPACITY {
            log.recent.pop_front();
        }
        log.recent.push_back(req);
        log.total += 1;
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().recent.iter().cloned().collect()
    }

    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// `app` with every request recorded here. The outermost layer, so requests refused by auth
    /// or a fault are logged too, with their final status.
    pub fn record_all(&self, app: Router) -> Router {
        app.layer(middleware::from_fn_with_state(
            self.clone(),
            record_requests,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // Entries are pushed whole, so a poisoned log is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Middleware recording every request with the status it was answered with; see
/// [`RequestLog::record_all`].
pub async fn record_requests(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
    let received = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (bytes, response) = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(bytes) => {
            let req = Request::from_parts(parts, Body::from(bytes.clone()));
            (bytes, next.run(req).await)
        }
        Err(_) => (
            Bytes::new(),
            json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"error":{"name":"PayloadTooLarge","message":"Request body too large"}}"#,
            ),
        ),
    };
    log.record(RecordedRequest {
        method,
        path_and_query,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: response.status().as_u16(),
        received,
        answered: std::time::Instant::now(),
    });
    response
}
