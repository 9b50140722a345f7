//! What every simulator shares: serving on loopback ([`server`]), the fault queue and how a fault
//! turns into a response ([`faults`]), the request log ([`log`]), credentials checks ([`auth`]),
//! query strings ([`query`]), the order data's building blocks ([`data`]) and shared wire-format
//! pieces ([`render`]).
//!
//! A platform simulator is an axum `Router` wrapped in two layers, outermost first: the request
//! log (so even refused requests are logged with their final status), then the platform's own
//! gate, which checks auth and then calls [`faults::apply_fault`] with the next queued fault.

pub mod auth;
pub mod data;
pub mod faults;
pub mod log;
pub mod query;
pub mod render;
pub mod server;

use axum::Router;

use self::faults::{Fault, Faults};
use self::log::{RecordedRequest, RequestLog};

/// A simulator's instruments, whatever its platform: the faults a test queued for it and the log
/// of what it was sent. Cheap to clone; clones share both.
#[derive(Debug, Clone, Default)]
pub struct Harness {
    faults: Faults,
    log: RequestLog,
}

impl Harness {
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The fault for the request at hand, if one is queued.
    pub fn next_fault(&self) -> Option<Fault> {
        self.faults.next()
    }

    /// The last [`RequestLog::CAPACITY`] requests received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.snapshot()
    }

    /// Every request ever received, including those no longer in [`Self::requests`].
    pub fn request_count(&self) -> usize {
        self.log.total()
    }

    /// The complete app: `gated` (the routes behind the platform's gate) with every request
    /// logged.
    pub fn app(&self, gated: Router) -> Router {
        self.log.record_all(gated)
    }
}

/// The part of every simulator handle's API that is the same for all kinds: serving it, its
/// faults and its request log. Invoked inside the handle's `impl`; the handle keeps its
/// [`Harness`] at `self.inner.harness` and its kind module has `routes::router`.
macro_rules! harness_api {
    ($what:literal) => {
        #[doc = concat!("Binds 127.0.0.1:0 and serves the ", $what, " until the returned")]
        /// handle is stopped or dropped.
        pub async fn serve(&self) -> std::io::Result<$crate::RunningSim> {
            $crate::serve(self.router()).await
        }

        /// The complete app (routes, auth, faults, request log), for callers that serve it
        /// themselves.
        pub fn router(&self) -> axum::Router {
            routes::router(self)
        }

        /// The faults queued for the next requests, one each.
        pub fn faults(&self) -> &$crate::Faults {
            self.inner.harness.faults()
        }

        /// The last [`RequestLog::CAPACITY`]($crate::RequestLog::CAPACITY) requests received,
        /// oldest first.
        pub fn requests(&self) -> Vec<$crate::RecordedRequest> {
            self.inner.harness.requests()
        }

        /// Every request ever received, including those no longer in [`Self::requests`].
        pub fn request_count(&self) -> usize {
            self.inner.harness.request_count()
        }
    };
}

pub(crate) use harness_api;

#[cfg(test)]
pub mod testing {
    //! What the simulators' own tests share: a client, and a simulator served for a test.

    use super::server::RunningSim;

    /// A reqwest client for a test. reqwest is built with `rustls-no-provider`: building any
    /// client panics until a process-wide provider exists, even for plain http.
    pub fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().build().expect("client builds")
    }

    /// A simulator, its server and a client for it.
    pub struct Served<S> {
        pub sim: S,
        pub running: RunningSim,
        pub http: reqwest::Client,
    }

    impl<S> Served<S> {
        pub fn new(sim: S, running: RunningSim) -> Self {
            Served {
                sim,
                running,
                http: client(),
            }
        }
    }

    /// An answer's status and JSON body, asserting that the body is JSON and says so (a 204
    /// has no body: `null`).
    pub async fn read_json(response: reqwest::Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let text = response.text().await.unwrap();
        if status == 204 {
            assert!(text.is_empty(), "204 has no body: {text}");
            return (status, serde_json::Value::Null);
        }
        assert_eq!(content_type.unwrap(), "application/json", "{text}");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }
}
