//! Delivery to an HTTP receiver as Standard Webhooks 1.0 describes it: `webhook-id`,
//! `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature` (`v1,` and the
//! base64 HMAC-SHA256 of `id.timestamp.body`, one per secret, space-separated). A 2xx is
//! delivered, a 410 asks us to stop, anything else is retried.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use sha2::Sha256;

use super::Failure;
use super::payload::Prepared;
use crate::config::Secret;

pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The decoded secrets, newest first as configured.
    keys: Vec<Vec<u8>>,
    timeout: Duration,
}

impl Webhook {
    pub fn new(
        url: &reqwest::Url,
        secrets: &[Secret],
        timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Webhook, String> {
        crate::http::install_crypto_provider();
        let keys = secrets
            .iter()
            .map(|s| {
                let b64 = s.expose().strip_prefix("whsec_").unwrap_or(s.expose());
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| "a webhook secret is not base64 (check runs first)".to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ordersync/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(max_in_flight)
            // A redirect would re-send a signed body somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Webhook {
            client,
            url: url.clone(),
            keys,
            timeout,
        })
    }

    /// `webhook-signature` for one attempt.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::new();
        for key in &self.keys {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            out.push_str(
                &base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
            );
        }
        out
    }

    pub async fn send(&self, p: &Prepared) -> Result<(), Failure> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.signature(&p.message_id, timestamp, &p.body);
        let sent = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", &p.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(p.body.clone())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(Failure::retry(format!(
                    "no answer within {} (the sink's timeout)",
                    humantime::format_duration(self.timeout)
                )));
            }
            Err(e) => {
                return Err(Failure::retry(format!(
                    "cannot reach {}: {}",
                    self.url,
                    chain(&e)
                )));
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::parse_retry_after);
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Read the body so the connection goes back to the pool (and, on an error, to quote it).
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let head: String = String::from_utf8_lossy(&body[..body.len().min(200)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut reason = format!("HTTP {} from {}", status.as_u16(), self.url);
        if !head.trim().is_empty() {
            reason.push_str(&format!(": {}", head.trim()));
        }
        if let Some(l) = location {
            reason.push_str(&format!(" (redirected to {l}: webhooks do not follow redirects; set url to the final address)"));
        }
        if status.as_u16() == 410 {
            return Err(Failure::Gone { reason });
        }
        Err(Failure::Retry {
            reason,
            retry_after,
        })
    }
}

/// An error with its causes, which is where reqwest says what actually failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}
