//! Simulated platform APIs served on loopback, for ordersync's integration tests, benchmarks and
//! `ordersync demo`: one module per platform kind ([`merchantpro`], [`sirclo`], [`akinon`],
//! [`mitrabunso`], [`epixel`]), each with its routes, data and wire format, over the pieces they
//! share in [`core`] (serving, faults, the request log, auth). [`fleet`] runs one shop of each.
//! [`novashop`] is a platform no built-in kind speaks, for platforms described to the daemon in
//! TOML; it is not part of the fleet.
//!
//! Each simulator is deterministic from a seed, answers as its platform's documents say (errors
//! and quirks included), and can be made to fail on cue: tests queue [`Fault`]s that the next
//! requests consume, and read back every request in the log.

pub mod akinon;
pub mod core;
pub mod description;
pub mod epixel;
pub mod fleet;
pub mod merchantpro;
pub mod mitrabunso;
pub mod novashop;
pub mod sirclo;

pub use crate::core::auth::basic_auth_header;
pub use crate::core::faults::{Fault, Faults};
pub use crate::core::log::{RecordedRequest, RequestLog};
pub use crate::core::server::{RunningSim, serve};
