//! The integration tests, one binary: every module below is a test file of its own, sharing the
//! fixtures in `common` and compiled and linked once.

mod akinon_push;
mod akinon_sync;
mod all_kinds;
mod architecture;
mod bad_input;
mod cli_queries;
mod common;
mod conformance;
mod crash_and_config;
mod daemon;
mod daemon_scheduling;
mod env_faults;
mod epixel_sync;
mod instances;
mod long_outage;
mod loud_failures;
mod man_and_completions;
mod merchantpro_push;
mod merchantpro_sync;
mod migrate_store;
mod mitrabunso_sync;
mod net_faults;
mod parser_props;
mod postgres_store;
mod prometheus;
mod rest;
mod scheduled_verify;
mod secrets;
mod sinks;
mod sirclo_push;
mod sirclo_sync;
mod status_and_events;
mod store_semantics;
mod verify_drift;
