//! The typed outcome of a failed request. Callers branch on it: the retry loop on
//! `is_retryable`, the sync engine on `Unauthorized` (stop the run, never hammer), the outbox on
//! `Permanent` (fail the entry at once with the platform's own text).

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// 401/403: the platform refused the credentials. Retrying only earns a lockout.
    #[error("the platform refused the credentials (HTTP {status}{}): check the auth keys of this platform", detail(.message))]
    Unauthorized { status: u16, message: String },
    /// 429, still limited after every retry. `retry_after` is the platform's `Retry-After`,
    /// when it sent one; without it the caller backs off on its own schedule.
    #[error("rate limited by the platform (HTTP 429): lower max_requests_per_second")]
    RateLimited { retry_after: Option<Duration> },
    /// Connection failures, timeouts, 5xx, 408 and malformed pages, after every retry.
    #[error("{reason}")]
    Transient { reason: String },
    /// A push whose request may have reached the platform (timed out or broke after sending):
    /// before sending it again, read the order back.
    #[error("no answer after sending ({reason}); the platform may have applied it")]
    OutcomeUnknown { reason: String },
    /// A 3xx. Redirects are never followed (reqwest would carry headers holding credentials to
    /// the new host); `location` is where the platform pointed, secrets hidden.
    #[error(
        "the platform redirected the request (HTTP {status}){}: redirects are not followed, since they could carry the credentials to another host; set base_url to the address the platform answers at now",
        match .location { Some(l) => format!(" to {l}"), None => " without saying where".to_string() }
    )]
    Redirected {
        status: u16,
        location: Option<String>,
    },
    /// Any other 4xx: the request itself is wrong, sending it again cannot help.
    #[error("the platform rejected the request (HTTP {status}){}", detail(.message))]
    Permanent { status: u16, message: String },
    /// The answer's body grew past `limit` bytes ([`crate::http::MAX_BODY_BYTES`]) and was not
    /// read further. The same request would bring the same body, so it is not retried.
    #[error(
        "the response body is larger than the {} MiB cap (checked while reading, never buffered whole): lower page_size for this platform",
        .limit / (1024 * 1024)
    )]
    TooLarge { limit: usize },
    /// The request was never sent: what it should have gone to is not acceptable (a page link
    /// that leaves the platform's host, a token that is not one of ours). Sending cannot be
    /// retried into working; the platform or the configuration must change.
    #[error("{reason} (no request was sent)")]
    NotSent { reason: String },
    /// The platform's answers contradict each other in a way that would lose orders if the
    /// pass went on (its pages hold fewer orders than it says, or the same ones again and
    /// again). Not retried: the same requests would bring the same answers.
    #[error("{reason}")]
    Inconsistent { reason: String },
    /// The run was told to stop (shutdown) while waiting to retry.
    #[error("cancelled by shutdown")]
    Cancelled,
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl HttpError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HttpError::RateLimited { .. }
                | HttpError::Transient { .. }
                | HttpError::OutcomeUnknown { .. }
        )
    }

    /// The delay the platform asked for, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Classifies an HTTP status that is not a success. `message` is the platform's own error
    /// text, already redacted.
    pub fn from_status(status: u16, retry_after: Option<Duration>, message: String) -> HttpError {
        match status {
            401 | 403 => HttpError::Unauthorized { status, message },
            429 => HttpError::RateLimited { retry_after },
            300..=399 => HttpError::Redirected {
                status,
                location: None,
            },
            408 | 500..=599 => HttpError::Transient {
                reason: format!("HTTP {status}{}", detail(&message)),
            },
            _ => HttpError::Permanent { status, message },
        }
    }
}
