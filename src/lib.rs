//! `ordersync`: a daemon that mirrors e-commerce platforms' orders into SQLite and pushes status
//! transitions back. The binary (`src/main.rs`) is a thin shell over [`cli`]; everything else is a
//! library so the integration tests and benchmarks drive exactly what the daemon runs.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod model;
pub mod outbox;
pub mod platforms;
pub mod sinks;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod verify;
