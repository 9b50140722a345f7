//! The HTTP layer every platform shares: one `reqwest` client for the whole process (its TLS
//! roots and connection pool shared by every platform), each platform's timeout and
//! request-rate limit, retries with jittered exponential backoff, `Retry-After` honoured up to
//! a cap, classification into typed errors, and redaction of secrets. Platform
//! code describes a request and how to read its body; this module decides whether to send it
//! again.

mod error;
mod redact;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backoff::backoff::Backoff;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use error::HttpError;
pub use redact::Redactor;

/// Retry policy for one request (a page, a push). The outbox keeps its own, longer schedule in
/// the database; this one only rides out blips within a run.
#[derive(Debug, Clone)]
pub struct RequestRetry {
    pub max_attempts: u32,
    pub initial_interval: Duration,
    pub max_interval: Duration,
    /// A platform asking for an hour's pause must not park a run for an hour: past this cap the
    /// run gives up and the next scheduled run tries again.
    pub retry_after_cap: Duration,
}

impl Default for RequestRetry {
    fn default() -> Self {
        RequestRetry {
            max_attempts: 6,
            initial_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(120),
        }
    }
}

impl RequestRetry {
    /// The jittered exponential policy (`backoff` computes the delays; the loop, the attempt
    /// count and the clock are ours, so paused-time tests control it).
    pub fn policy(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial_interval)
            .with_max_interval(self.max_interval)
            .with_multiplier(2.0)
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(None)
            .build()
    }
}

/// The largest response body read. A full page of the biggest kind is well under 1 MiB (100
/// MerchantPro orders with items: ~270 KB), so 32 MiB leaves room for shops with huge orders and
/// still bounds what one request can make the daemon hold.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A response with a success status, body fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    /// The process's shared client (see [`shared_client`]).
    client: reqwest::Client,
    /// The platform's whole-request timeout, set on each request: the shared client has none.
    timeout: Duration,
    platform: Arc<str>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    retry: RequestRetry,
    redactor: Redactor,
    cancel: CancellationToken,
    /// Pushes waiting for the rate limiter; while any wait, sync requests step aside, so a
    /// status change goes out before the next page of a long backfill.
    pushes_waiting: Arc<AtomicUsize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Sync,
    Push,
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub platform: String,
    pub timeout: Duration,
    /// 0 or less: unlimited.
    pub max_requests_per_second: f64,
    pub retry: RequestRetry,
}

impl HttpClient {
    pub fn new(
        opts: ClientOptions,
        redactor: Redactor,
        cancel: CancellationToken,
    ) -> Result<HttpClient, HttpError> {
        let client = shared_client(opts.timeout.min(Duration::from_secs(10)))?;
        let limiter =
            rate_quota(opts.max_requests_per_second).map(|q| Arc::new(RateLimiter::direct(q)));
        Ok(HttpClient {
            client,
            timeout: opts.timeout,
            platform: opts.platform.into(),
            limiter,
            retry: opts.retry,
            redactor,
            cancel,
            pushes_waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn platform(&self) -> &str {
        &self.platform
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Sends a request until it succeeds, fails permanently, or runs out of attempts.
    ///
    /// `build` makes the request afresh for every attempt (signatures and tokens may change
    /// between attempts). `parse` reads a successful body; an `Err` from it means a malformed
    /// page, which is retried like a 5xx: a proxy's truncated answer is usually transient.
    pub async fn execute<T>(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let mut policy = self.retry.policy();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_for_rate_limit(Priority::Sync).await?;
            let result = match self.send_once(&build).await {
                Ok(resp) => parse(&resp).map_err(|e| HttpError::Transient {
                    reason: self.redactor.redact(&format!(
                        "malformed response ({}): {e}",
                        describe_body(&resp, &self.redactor)
                    )),
                }),
                // Reads are idempotent: whether the lost request arrived does not matter.
                Err(HttpError::OutcomeUnknown { reason }) => Err(HttpError::Transient { reason }),
                Err(e) => Err(e),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            let backoff = policy.next_backoff().unwrap_or(self.retry.max_interval);
            let delay = match err.retry_after() {
                Some(asked) if asked > self.retry.retry_after_cap => {
                    warn!(platform = %self.platform, request = what, asked_secs = asked.as_secs(),
                          "platform asked to wait longer than the cap; giving up this run");
                    return Err(err);
                }
                Some(asked) => asked,
                None => backoff,
            };
            warn!(platform = %self.platform, request = what, attempt, delay_ms = delay.as_millis() as u64,
                  error = %err, "request failed, retrying");
            crate::telemetry::metrics::metrics().retry(&self.platform);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancel.cancelled() => return Err(HttpError::Cancelled),
            }
        }
    }

    /// Sends a push exactly once: the outbox, not this layer, decides about retries (its
    /// schedule survives restarts), and a push must not be re-sent blindly when its first
    /// attempt may have landed. Errors after the request left are `OutcomeUnknown`.
    pub async fn execute_push<T>(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let waited = {
            let _waiting = PushWaiting::new(&self.pushes_waiting);
            self.wait_for_rate_limit(Priority::Push).await
        };
        waited?;
        let resp = self
            .send_once(&build)
            .await
            .map_err(|e| match e {
                // The request was read and maybe applied; only its answer was refused.
                e @ HttpError::TooLarge { .. } => HttpError::OutcomeUnknown {
                    reason: e.to_string(),
                },
                e => e,
            })
            .inspect_err(|e| {
                if let HttpError::OutcomeUnknown { reason } = e {
                    warn!(platform = %self.platform, request = what, error = %reason, "push outcome unknown");
                }
            })?;
        parse(&resp).map_err(|e| HttpError::OutcomeUnknown {
            reason: format!("unreadable answer: {}", self.redactor.redact(&e)),
        })
    }

    async fn wait_for_rate_limit(&self, priority: Priority) -> Result<(), HttpError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // check() + tokio's sleep rather than governor's own timer, so shutdown can interrupt
        // the wait.
        let mut counted = false;
        loop {
            if priority == Priority::Sync && self.pushes_waiting.load(Ordering::SeqCst) > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                    _ = self.cancel.cancelled() => return Err(HttpError::Cancelled),
                }
            }
            match limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    if !counted {
                        counted = true;
                        crate::telemetry::metrics::metrics().rate_limit_wait(&self.platform);
                    }
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(
                        &governor::clock::DefaultClock::default(),
                    ));
                    tokio::select! {
                        _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                        _ = self.cancel.cancelled() => return Err(HttpError::Cancelled),
                    }
                }
            }
        }
    }

    async fn send_once(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Response, HttpError> {
        let m = crate::telemetry::metrics::metrics();
        let resp = build(&self.client)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                m.request(&self.platform, None);
                self.transport_error(e)
            })?;
        let status = resp.status().as_u16();
        m.request(&self.platform, Some(status));
        let headers = resp.headers().clone();
        let body = self.read_body(resp).await?;
        debug!(platform = %self.platform, status, bytes = body.len(), "response");
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if (300..400).contains(&status) {
            let location = headers
                .get(reqwest::header::LOCATION)
                .map(|v| self.redactor.redact(&String::from_utf8_lossy(v.as_bytes())));
            return Err(HttpError::Redirected { status, location });
        }
        let message = error_message(&body, &self.redactor);
        Err(HttpError::from_status(status, retry_after, message))
    }

    /// Reads the body up to [`MAX_BODY_BYTES`]: a platform (or a proxy) sending without end must
    /// not make the daemon buffer without end.
    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Bytes, HttpError> {
        let too_large = || {
            warn!(platform = %self.platform, limit = MAX_BODY_BYTES, "response body over the cap, not read");
            HttpError::TooLarge {
                limit: MAX_BODY_BYTES,
            }
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn transport_error(&self, e: reqwest::Error) -> HttpError {
        // reqwest's Display carries the URL; ours hold no secrets, but redact anyway in case a
        // platform puts one in a path.
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else if e.is_body() || e.is_decode() {
            "connection broke while reading the response"
        } else {
            "request failed"
        };
        let mut reason = format!("{kind}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason.push_str(&format!(": {s}"));
            src = s.source();
        }
        let reason = self.redactor.redact(&reason);
        // Only a failed connect proves the request never left.
        if e.is_connect() {
            HttpError::Transient { reason }
        } else {
            HttpError::OutcomeUnknown { reason }
        }
    }
}

/// Counts a push as waiting for as long as it exists: dropped on every path, cancellation
/// included, so sync requests never wait on a push that is gone.
struct PushWaiting<'a>(&'a AtomicUsize);

impl<'a> PushWaiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        PushWaiting(counter)
    }
}

impl Drop for PushWaiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn rate_quota(rps: f64) -> Option<Quota> {
    // Below one request a day is a typo, not a rate: treat as unlimited rather than overflow.
    if rps <= 0.0 || !rps.is_finite() || rps < 1.0 / 86_400.0 {
        return None;
    }
    if rps >= 1.0 && rps.fract() == 0.0 && rps <= u32::MAX as f64 {
        // Burst of one: the documented limits are per second, and a burst of n would put n
        // requests in the platform's same second.
        Some(
            Quota::per_second(NonZeroU32::new(rps as u32).expect("rps >= 1"))
                .allow_burst(NonZeroU32::MIN),
        )
    } else {
        Quota::with_period(Duration::from_secs_f64(1.0 / rps))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What an unreadable answer looked like, for the log: status, content type, size and its first
/// characters (an HTML error page or a cut body is recognised at a glance), secrets hidden.
fn describe_body(resp: &Response, redactor: &Redactor) -> String {
    let content_type = resp
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type");
    let head: String = redactor
        .redact_head(&resp.body, 60)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "HTTP {}, {content_type}, {} bytes, starting {:?}",
        resp.status,
        resp.body.len(),
        head.trim()
    )
}

/// The platform's own error text, from the usual JSON shapes, else the body's start; secrets
/// hidden before anything is cut.
fn error_message(body: &[u8], redactor: &Redactor) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for ptr in [
            "/error/message",
            "/message",
            "/detail",
            "/error",
            "/errors",
            "/non_field_errors",
        ] {
            match v.pointer(ptr) {
                Some(serde_json::Value::String(s)) => return redactor.redact(s),
                Some(other) if !other.is_null() && !other.is_object() => {
                    return redactor.redact(&other.to_string());
                }
                _ => {}
            }
        }
        return truncate(&redactor.redact(&v.to_string()), 300);
    }
    redactor.redact_head(body.trim_ascii(), 300)
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// reqwest is built without a bundled crypto provider (ring keeps the build light); install ring
/// once, before the first client exists.
/// The client every platform's requests go through, one per connect timeout (the only setting
/// that differs between platforms and cannot be set per request).
///
/// A client per platform cost about 80 KiB of TLS trust anchors each (the system's roots,
/// parsed per client) plus a connection pool each whose idle sockets kept their read buffers
/// (up to ~80 KiB) between runs: with 300 platforms, 24 MiB of roots and 40 MiB of buffers at
/// the peak in a heap profile. Shared, the roots are parsed once and idle connections are
/// pooled per host, so platforms on one host (a SaaS platform's API) reuse each other's.
fn shared_client(connect_timeout: Duration) -> Result<reqwest::Client, HttpError> {
    static CLIENTS: std::sync::Mutex<Vec<(Duration, reqwest::Client)>> =
        std::sync::Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = clients.iter().find(|(t, _)| *t == connect_timeout) {
        return Ok(c.clone());
    }
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("ordersync/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(4)
        // Closed after 20 s idle (reqwest's default, 90 s, outlives a once-a-minute schedule):
        // the pages of a pass follow each other at once and reuse it, while a daemon of
        // thousands of platforms does not keep sockets and their read buffers between runs.
        .pool_idle_timeout(Duration::from_secs(20))
        // Never follow a redirect: reqwest strips only `Authorization` on a cross-host hop, and
        // our platforms carry secrets in other headers (apikey, MAC) too. A 3xx is an error
        // that tells the operator to fix base_url.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HttpError::Transient {
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
    clients.push((connect_timeout, client.clone()));
    Ok(client)
}

pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_push_goes_before_a_waiting_sync_request() {
        let client = HttpClient::new(
            ClientOptions {
                platform: "p".into(),
                timeout: Duration::from_secs(5),
                max_requests_per_second: 4.0,
                retry: RequestRetry::default(),
            },
            Redactor::default(),
            CancellationToken::new(),
        )
        .unwrap();
        // Use up the current slot, so both next requests must wait.
        client.wait_for_rate_limit(Priority::Sync).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c1, o1) = (client.clone(), order.clone());
        let sync = tokio::spawn(async move {
            c1.wait_for_rate_limit(Priority::Sync).await.unwrap();
            o1.lock().unwrap().push("sync");
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (c2, o2) = (client.clone(), order.clone());
        let push = tokio::spawn(async move {
            let _waiting = PushWaiting::new(&c2.pushes_waiting);
            c2.wait_for_rate_limit(Priority::Push).await.unwrap();
            o2.lock().unwrap().push("push");
        });
        sync.await.unwrap();
        push.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["push", "sync"]);
    }

    #[test]
    fn statuses_are_classified_for_the_caller() {
        assert!(matches!(
            HttpError::from_status(401, None, String::new()),
            HttpError::Unauthorized { .. }
        ));
        assert!(HttpError::from_status(503, None, String::new()).is_retryable());
        assert!(HttpError::from_status(408, None, String::new()).is_retryable());
        assert_eq!(
            HttpError::from_status(429, Some(Duration::from_secs(7)), String::new()).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert!(!HttpError::from_status(400, None, "bad".into()).is_retryable());
        let moved = HttpError::from_status(301, None, String::new());
        assert!(matches!(moved, HttpError::Redirected { .. }) && !moved.is_retryable());
        assert!(moved.to_string().contains("base_url"), "{moved}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        let past = httpdate::fmt_http_date(std::time::UNIX_EPOCH);
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn a_malformed_answer_is_previewed_without_any_piece_of_a_secret() {
        let r = Redactor::default();
        r.add("SEKRIT-MPSECRET-1234");
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, "text/html".parse().unwrap());
        // The secret straddles the preview's 60-byte limit.
        let body = format!(
            "<html><body><p>{}secret=SEKRIT-MPSECRET-1234",
            "x".repeat(30)
        );
        let resp = Response {
            status: 200,
            headers,
            body: Bytes::from(body),
        };
        let preview = describe_body(&resp, &r);
        assert!(preview.contains("secret=[redacted]"), "{preview}");
        assert!(!preview.contains("SEKRIT"), "{preview}");
        let long = format!("{}SEKRIT-MPSECRET-1234 and more", "y".repeat(290));
        let message = error_message(long.as_bytes(), &r);
        assert!(message.ends_with("[redacted]…"), "{message}");
    }

    #[test]
    fn platform_error_text_is_found_in_the_usual_shapes() {
        assert_eq!(
            error_message(
                br#"{"error":{"name":"X","message":"Order status cannot be changed"}}"#,
                &Redactor::default()
            ),
            "Order status cannot be changed"
        );
        let none = Redactor::default();
        assert_eq!(
            error_message(br#"{"detail":"Not found."}"#, &none),
            "Not found."
        );
        assert_eq!(
            error_message(b"<html>oops</html>", &none),
            "<html>oops</html>"
        );
    }
}
