//! What every simulator shares: serving on loopback ([`server`]), the fault queue and how a fault
//! turns into a response ([`faults`]), the request log ([`log`]), credentials checks ([`auth`]),
//! query strings ([`query`]), and the order data's building blocks ([`data`]).
//!
//! A platform simulator is an axum `Router` wrapped in two layers, outermost first: the request
//! log (so even refused requests are logged with their final status), then the platform's own
//! gate, which checks auth and then calls [`faults::apply_fault`] with the next queued fault.

pub mod auth;
pub mod data;
pub mod faults;
pub mod log;
pub mod query;
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
}
