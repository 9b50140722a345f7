//! Credentials checks the platforms share: HTTP Basic auth with a lockout after repeated
//! failures, and bearer tokens that a login issues and a test can revoke.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

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
/// (repeated bad attempts get 403). Only bad attempts are refused with 403; a correct
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

/// The bearer tokens a platform accepts, as a token endpoint hands them out: valid until revoked,
/// all at once (as an expiry or a password change does), now or after a number of requests.
#[derive(Debug, Default)]
pub struct BearerTokens {
    state: Mutex<TokenState>,
}

#[derive(Debug, Default)]
struct TokenState {
    valid: HashSet<String>,
    issued: u64,
    /// Accepted requests left before every token is revoked.
    revoke_after: Option<usize>,
}

impl BearerTokens {
    /// Accepting `initial` (a token configured rather than issued) until revoked.
    pub fn new(initial: impl IntoIterator<Item = String>) -> Self {
        BearerTokens {
            state: Mutex::new(TokenState {
                valid: initial.into_iter().collect(),
                ..TokenState::default()
            }),
        }
    }

    /// Whether `token` is valid for this request. Counts the request against
    /// [`Self::revoke_after`]: the one that finds no request left revokes every token and is
    /// refused.
    pub fn admit(&self, token: &str) -> bool {
        let mut state = self.lock();
        if !state.valid.contains(token) {
            return false;
        }
        match state.revoke_after {
            Some(0) => {
                state.valid.clear();
                state.revoke_after = None;
                false
            }
            Some(n) => {
                state.revoke_after = Some(n - 1);
                true
            }
            None => true,
        }
    }

    /// Issues the `n`-th token pair (`n` from 1) as `make(n)` builds it, `(access, refresh)`; the
    /// access token is valid from now on.
    pub fn issue(&self, make: impl FnOnce(u64) -> (String, String)) -> (String, String) {
        let mut state = self.lock();
        state.issued += 1;
        let (access, refresh) = make(state.issued);
        state.valid.insert(access.clone());
        (access, refresh)
    }

    /// Token pairs issued so far.
    pub fn issued(&self) -> u64 {
        self.lock().issued
    }

    /// Every token accepted so far stops working now.
    pub fn revoke_all(&self) {
        self.lock().valid.clear();
    }

    /// Every token is revoked once `requests` more requests have been admitted: the next one is
    /// refused (a token expiring mid-run).
    pub fn revoke_after(&self, requests: usize) {
        self.lock().revoke_after = Some(requests);
    }

    fn lock(&self) -> MutexGuard<'_, TokenState> {
        // Every change is a single field update, so a poisoned lock still guards whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
