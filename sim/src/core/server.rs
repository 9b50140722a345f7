//! Simulated platform APIs served on loopback, for integration tests, benchmarks and
//! `ordersync demo`. This module owns the pieces every simulator shares: starting and stopping the
//! server ([`serve`], [`RunningSim`]), the request log ([`RequestLog`], [`record_requests`]), Basic
//! auth with lockout ([`BasicAuth`]), the fault queue and how a fault turns into a response
//! ([`Faults`], [`apply_fault`]), and a small deterministic generator ([`SimRng`]). Each platform
//! module (today [`merchantpro`]) owns its routes, data and wire format.
//!
//! A platform simulator is an axum `Router` wrapped in two layers, outermost first:
//! [`record_requests`] (so even refused requests are logged with their final status), then the
//! platform's own gate, which checks auth and then calls [`apply_fault`] with the next queued fault.

pub mod akinon;
pub mod epixel;
pub mod faults;
pub mod fleet;
pub mod merchantpro;
pub mod mitrabunso;
pub mod sirclo;

pub use faults::{Fault, Faults};

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`RunningSim::stop`] lets in-flight requests (a `Slow` fault, say) finish before the
/// server task is aborted; a test sim must never hold up a test for long.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Largest request body the log buffers; the real platforms accept far less.
const MAX_REQUEST_BODY: usize = 8 * 1024 * 1024;

/// A simulator bound to 127.0.0.1; dropping it (or calling stop) shuts the server down.
pub struct RunningSim {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits (briefly) for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        // The signal must be sent even when aborting: axum's graceful shutdown keeps a helper
        // task waiting on it, and open keep-alive connections are only closed by it.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves `router` on 127.0.0.1 with an OS-chosen port.
pub async fn serve(router: Router) -> io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a keep-alive client can stall ~40 ms per response on delayed ACKs,
    // which would dominate the benchmarks.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "simulator server stopped with an error");
        }
    });
    Ok(RunningSim {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// One request as the simulator saw it (for tests that assert on exactly what was sent).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
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

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // Entries are pushed whole, so a poisoned log is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Middleware recording every request with the status it was answered with. Install it as the
/// outermost layer so refused requests (bad auth, faults) are logged too.
pub async fn record_requests(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
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
    });
    response
}

/// The outcome of a credentials check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Accepted,
    /// Wrong or missing credentials, still within the allowed number of failures.
    Unauthorized,
    /// Wrong or missing credentials after too many failures.
    Forbidden,
}

/// HTTP Basic auth as the shop platforms do it, including the lockout after repeated failures
/// (NOTES: "repeated bad attempts give 403"). Only bad attempts are refused with 403; a correct
/// request is still served, so a test can recover without restarting the sim.
#[derive(Debug)]
pub struct BasicAuth {
    expected: Vec<u8>,
    failures: AtomicUsize,
    allowed_failures: usize,
}

impl BasicAuth {
    /// `allowed_failures` bad attempts get 401; every later one gets 403.
    pub fn new(user: &str, password: &str, allowed_failures: usize) -> Self {
        BasicAuth {
            expected: format!("{user}:{password}").into_bytes(),
            failures: AtomicUsize::new(0),
            allowed_failures,
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> AuthOutcome {
        if self.credentials_match(headers) {
            return AuthOutcome::Accepted;
        }
        let failures_before = self.failures.fetch_add(1, Ordering::SeqCst);
        if failures_before < self.allowed_failures {
            AuthOutcome::Unauthorized
        } else {
            AuthOutcome::Forbidden
        }
    }

    /// Bad attempts so far.
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }

    fn credentials_match(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && BASE64
                .decode(encoded.trim())
                .is_ok_and(|decoded| decoded == self.expected)
    }
}

/// The `Authorization` header value for Basic credentials.
pub fn basic_auth_header(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// Renders a platform's error response for a status and a human message; each platform has its
/// own error body shape.
pub type ErrorBody = fn(StatusCode, &str) -> Response;

/// Request extension set by [`apply_fault`] for [`Fault::MalformedRecord`]: the handler must break
/// the id of one record in its answer (the 2nd on a page, or the only one). Only the platform
/// knows its record shape, so this cannot be done here.
#[derive(Debug, Clone, Copy)]
pub struct CorruptOneRecord;

/// Carries out `fault` (if any) for this request, calling the handler (`next`) when the fault
/// lets the request through.
///
/// Faults that answer with an error status (`Status`, `TooManyRequests`, `Redirect`) stop the
/// request before the handler, so nothing changes on the platform. Faults that answer 200
/// (`MalformedJson`, `MalformedRecord`, `DropConnection`, `Slow`, and the body rewrites of
/// [`faults::rewrite_body`] and [`faults::echo_body`]) run the handler first, so a PATCH takes
/// effect even though the client cannot read the answer: the case a client's retry must survive.
pub async fn apply_fault(
    fault: Option<Fault>,
    mut req: Request,
    next: Next,
    error: ErrorBody,
) -> Response {
    match fault {
        None => next.run(req).await,
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, "Simulated failure")
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Some(Fault::Redirect { status, location }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            let location = HeaderValue::from_static(location);
            (status, [(header::LOCATION, location)]).into_response()
        }
        Some(Fault::MalformedJson) => {
            let (mut parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            // Half of a JSON object is never JSON: its closing brace is gone.
            let cut = bytes.slice(..bytes.len() / 2);
            let cut = if cut.is_empty() {
                Bytes::from_static(b"{")
            } else {
                cut
            };
            parts.status = StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
        Some(Fault::MalformedRecord) => {
            req.extensions_mut().insert(CorruptOneRecord);
            next.run(req).await
        }
        Some(Fault::DropConnection) => drop_mid_body(next.run(req).await).await,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
        Some(fault) => {
            debug_assert!(fault.rewrites_body());
            let echo = fault.echoes_request().then(|| faults::RequestEcho {
                request_line: format!("{} {}", req.method(), req.uri()),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        (k.as_str().to_owned(), v)
                    })
                    .collect(),
            });
            let (mut parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let rewritten = match &echo {
                Some(echo) => faults::echo_body(&fault, echo, &bytes),
                None => faults::rewrite_body(&fault, &bytes),
            };
            let Some((rewritten, content_type)) = rewritten else {
                return Response::from_parts(parts, Body::from(bytes));
            };
            parts.status = StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            if let Some(ct) = content_type {
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            Response::from_parts(parts, Body::from(rewritten))
        }
    }
}

/// Sends the head and the first half of `response`'s body, then fails the body stream, which
/// makes hyper abort the connection: the client sees a truncated body.
async fn drop_mid_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // A 204 has no body to break: hyper would send it whole. Its head goes out as 200 instead,
    // so the client still loses the answer after the handler acted (Akinon's reject).
    if parts.status == StatusCode::NO_CONTENT {
        parts.status = StatusCode::OK;
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let head = bytes.slice(..bytes.len() / 2);
    enum Step {
        Head(Bytes),
        Abort,
        Done,
    }
    let stream = futures_util::stream::unfold(Step::Head(head), |step| async move {
        match step {
            Step::Head(head) => Some((Ok(head), Step::Abort)),
            Step::Abort => {
                // Pausing makes hyper flush the head and the first bytes before the abort, so the
                // client fails while reading the body rather than while waiting for headers.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let err = io::Error::new(io::ErrorKind::ConnectionAborted, "simulated drop");
                Some((Err(err), Step::Done))
            }
            Step::Done => None,
        }
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(stream))
}

/// A response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// A small deterministic generator (SplitMix64). The simulators use their own rather than `rand`
/// so a seed yields the same data whatever `rand`'s algorithms become, and so each record can be
/// regenerated on its own from `(seed, index)`.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// An independent stream for record `index` of a data set seeded with `seed`.
    pub fn for_record(seed: u64, index: u64) -> Self {
        let mut mixer = SimRng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        SimRng(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant for test data.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Picks from `(weight, item)` pairs in proportion to the weights.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u64, T)]) -> &'a T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for (weight, item) in items {
            if roll < *weight {
                return item;
            }
            roll -= weight;
        }
        &items[items.len() - 1].1
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| DIGITS[self.below(16) as usize] as char)
            .collect()
    }

    /// `len` decimal digits (leading zeros allowed).
    pub fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Builds records `0..n` on every core: simulators generate up to 100,000 orders for the
/// benchmark, seconds of work on one core. Small shops stay on the calling thread.
pub fn generate_parallel<T: Send>(n: usize, build: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    if n < 2_000 || threads < 2 {
        return (0..n).map(build).collect();
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                scope.spawn(move || (from..(from + chunk).min(n)).map(build).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("record generation panicked"))
            .collect()
    })
}
