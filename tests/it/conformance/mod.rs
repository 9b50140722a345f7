//! The conformance suite: the scenarios every platform kind must pass, written once in
//! [`scenarios`] and run against each kind's simulator through the [`Fixture`] that kind's module
//! implements. Each (scenario, kind) pair is a test of its own, named
//! `conformance::<kind>::<scenario>`, so a failure says at once which kind broke which promise.
//!
//! What only one kind does (MerchantPro's paging quirks, SIRCLO's reconcile windows,
//! Mitrabunso's SENT listing, the logins of Akinon and Epixel) stays in that kind's own module.

pub mod scenarios;

mod akinon;
pub mod described;
mod epixel;
mod merchantpro;
mod mitrabunso;
pub mod novashop;
mod sirclo;

use ordersync_sim::Faults;
use rusqlite::Connection;

/// Which credentials a platform file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The ones the simulator accepts.
    Right,
    /// The right ones with one secret replaced by a value the simulator refuses.
    Wrong,
}

/// A status change made on the simulator, as the store must come to show it.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The order's id as the store keys it.
    pub order_id: String,
    /// The canonical status the change maps to.
    pub new_status: &'static str,
}

/// One kind's simulator, driven the way the scenarios need it. Implemented once per kind.
#[allow(async_fn_in_trait)]
pub trait Fixture: Sized {
    /// Starts the kind's simulator with `orders` orders placed 90 s apart before now, for a
    /// platform named `name`.
    async fn start(name: &str, orders: usize) -> Self;

    /// The platform's name in its configuration.
    fn name(&self) -> &str;

    /// The platform file for the simulator; `extra` lines go inside `[platforms.<name>]`.
    fn platform_toml(&self, credentials: Credentials, extra: &str) -> String;

    /// How many orders the simulator holds now.
    fn truth_len(&self) -> usize;

    /// Asserts the store holds exactly the simulator's orders, every field and item.
    fn assert_store_equals_truth(&self, db: &Connection);

    /// Moves an open order placed long before any lookback window one status further along,
    /// as the platform would, and says what the store must show for it.
    fn change_an_old_orders_status(&self) -> StatusChange;

    /// The simulator's fault queue: the next requests consume what is pushed on it.
    fn faults(&self) -> &Faults;

    /// Makes one record of the next listing page the sync reads unreadable (once).
    fn spoil_one_record(&self);

    /// The path of the listing whose records the rejects table names.
    fn list_path(&self) -> &'static str;

    /// How many requests the simulator has received.
    fn request_count(&self) -> usize;

    /// Asserts every request the simulator received follows the kind's documented wire rules
    /// (headers, methods) and was answered; kinds with no rules beyond the scenarios' own keep
    /// this empty.
    fn assert_requests_as_documented(&self) {}

    /// Every secret value of the platform file, with either credentials, and the credentials
    /// derived from them that go on the wire.
    fn secrets(&self) -> Vec<String>;
}
