//! Platforms: one folder per kind (its wire types, the mapping to the canonical model, its
//! requests, its push and one [`Descriptor`]), the [`Source`] and [`Push`] contracts the sync
//! engine and the outbox drive, and [`Connector`], which holds any kind behind one type. Adding
//! a kind is its folder and one line in [`KINDS`].

pub mod akinon;
pub mod epixel;
pub mod lenient;
pub mod merchantpro;
pub mod mitrabunso;
pub mod rest;
pub mod sirclo;

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Kind, Kinds, PlatformConfig};
use crate::http::{ClientOptions, HttpClient, HttpError, Redactor, RequestRetry};
use crate::model::{Action, Entry, Order, Params, Status};
use crate::store::{Incoming, RejectRecord, Store};

/// The frozen window of an incremental pass: `[cursor − lookback, pass start]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One page of a platform's order list, read and mapped.
#[derive(Debug, Default)]
pub struct Page {
    pub orders: Vec<Incoming>,
    pub rejects: Vec<RejectRecord>,
    /// The token of the next page, `None` at the end of the pass.
    pub next: Option<String>,
    /// How many orders the whole listing holds, where the platform says.
    pub total: Option<u64>,
}

/// A record that could not be read, put aside for `rejects` and logged. Every secret the
/// platform's client knows is hidden in it first: a platform that echoes the request into a
/// record must not get the credentials stored, or logged, with it.
pub(crate) fn reject(
    http: &HttpClient,
    position: &str,
    reason: &str,
    raw: &str,
    order_id: Option<String>,
) -> RejectRecord {
    let redactor = http.redactor();
    let reject = RejectRecord {
        position: redactor.redact(position),
        reason: redactor.redact(reason),
        raw: redactor.redact(raw),
        order_id,
    };
    tracing::warn!(platform = %http.platform(), position = %reject.position, error = %reject.reason,
                   "malformed order record skipped (kept in rejects)");
    reject
}

/// Reads, maps and sorts the records of one list answer into `page`: each record on its own
/// ([`lenient::read_record`]), mapped by `map`, then kept as an order or put aside as a reject
/// naming its position (`GET <position> record <i>`) and, where the record shows one, its id
/// (at the JSON pointer `id_pointer`).
pub(crate) fn map_records<'r, W: serde::de::DeserializeOwned>(
    http: &HttpClient,
    position: &str,
    repaired: bool,
    records: impl IntoIterator<Item = &'r serde_json::value::RawValue>,
    id_pointer: &str,
    map: impl Fn(W) -> Result<Order, String>,
    page: &mut Page,
) {
    for (i, raw) in records.into_iter().enumerate() {
        match lenient::read_record::<W>(repaired, raw.get()).and_then(&map) {
            Ok(order) => page
                .orders
                .push(Incoming::new(order, raw.get().to_string())),
            Err(e) => page.rejects.push(reject(
                http,
                &format!("GET {position} record {i}"),
                &e,
                raw.get(),
                lenient::record_id(raw.get(), id_pointer),
            )),
        }
    }
}

/// The signatures one request sent, registered with the redactor while the request runs and
/// forgotten after: a signature is a credential (docs/contract.md §2) but is good for one request
/// only, and a daemon signing every page would otherwise grow the redactor without bound.
pub(crate) struct SentSecrets<'r> {
    redactor: &'r Redactor,
    sent: Mutex<Vec<String>>,
}

impl<'r> SentSecrets<'r> {
    pub(crate) fn new(redactor: &'r Redactor) -> Self {
        SentSecrets {
            redactor,
            sent: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn register(&self, mac: &str) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if !sent.iter().any(|m| m == mac) {
            self.redactor.add(mac);
            sent.push(mac.to_string());
        }
    }
}

impl Drop for SentSecrets<'_> {
    fn drop(&mut self) {
        let sent = self.sent.get_mut().unwrap_or_else(|e| e.into_inner());
        for mac in sent.drain(..) {
            self.redactor.forget(&mac);
        }
    }
}

/// How a kind finds changes to orders its incremental filter cannot see. The orders it
/// watches are the stored open orders, however old, and the final ones the store saw become
/// final within `final_watch` (a return after delivery, a refund); `reconcile_horizon`, when
/// set, caps how old a watched order may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// The incremental pass sees every change.
    NotNeeded,
    /// Re-read the watched orders by id, this many per request ([`Source::fetch_ids`]).
    ByIds { batch: usize },
    /// Re-read narrow windows of the listing around the watched orders' placing times, for
    /// kinds whose list filters and sorts by placing time and cannot fetch by id. Windows
    /// closer than one page of stored orders are merged, so the cost grows with the number
    /// of watched orders (and falls when they cluster), never with the age of the oldest.
    Windows { per_page: usize },
    /// The incremental pass reads every order that may still move except those in
    /// `platform_status`, which its scan stops reading once known (Mitrabunso's `SENT`): those
    /// that entered it within `final_watch` are looked up one by one by number
    /// ([`Source::fetch_by_number`]), at most `per_pass` a pass, the least recently read first.
    ByNumber {
        platform_status: &'static str,
        per_pass: usize,
    },
}

/// What a page request may consult besides its token: the pass's frozen window, and the store
/// (read-only), for kinds that decide what to fetch next from what is already stored (stop a
/// scan at known orders, fetch details only for new or changed ones).
pub struct PassCtx<'a> {
    pub platform: &'a str,
    pub window: Window,
    pub store: &'a Store,
    /// Read every order the listing holds and take no shortcut from what is stored (`verify`):
    /// a kind that stops at known orders or reuses stored details would otherwise hide the very
    /// drift being measured. Sync passes leave it `false`.
    pub exhaustive: bool,
}

/// What the sync engine needs from a platform. Tokens are opaque text the engine stores as the
/// pass checkpoint, so a pass killed mid-way resumes at the page it had not committed.
pub trait Source: Send + Sync {
    /// The token of the first page of a pass over `window`.
    fn first_token(&self, window: &Window) -> String;

    /// Reads the page `token` points at. The engine fetches the next page while the previous
    /// one commits, so a lookup in `ctx.store` sees every page but the one just before.
    fn fetch_page(
        &self,
        ctx: &PassCtx<'_>,
        token: &str,
    ) -> impl Future<Output = Result<Page, HttpError>> + Send;

    fn reconcile(&self) -> Reconcile;

    /// Re-reads one order found by its number (reconcile by number). Absent when the platform
    /// no longer lists it.
    fn fetch_by_number(
        &self,
        _order_id: &str,
        _number: &str,
    ) -> impl Future<Output = Result<Page, HttpError>> + Send {
        async {
            Err(HttpError::NotSent {
                reason: "this kind cannot look an order up by number".into(),
            })
        }
    }

    /// Which of the kind's listings the page `token` belongs to, for kinds whose pass walks
    /// several (one per status, orders then items): an order may rightly appear in more than
    /// one, so the engine's no-progress guard counts repeats within one listing only.
    fn listing(&self, _token: &str) -> String {
        String::new()
    }

    /// Whether a stored resume token can still be fetched (it may come from an older version,
    /// or name a link this version refuses). The default trusts every token.
    fn check_token(&self, _token: &str) -> Result<(), HttpError> {
        Ok(())
    }

    /// Re-reads the given orders (reconcile). Orders the platform no longer returns are absent.
    fn fetch_ids(&self, ids: &[String]) -> impl Future<Output = Result<Page, HttpError>> + Send;
}

/// How one push attempt ended.
#[derive(Debug, Clone)]
pub enum PushOutcome {
    Done,
    /// Sending again cannot help (a 4xx, the platform's refusal); the text is the platform's.
    Failed(String),
    /// Worth another attempt later.
    Retry(HttpError),
}

/// Why a platform could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("{0}")]
    Config(String),
}

/// What a kind that writes back implements: sending claimed outbox entries, and reading an
/// order back when a previous attempt's outcome is unknown.
pub trait Push: Send + Sync {
    /// One outcome per entry, in order.
    fn push(&self, entries: &[Entry]) -> impl Future<Output = Vec<PushOutcome>> + Send;

    /// Does the platform already show the entry applied?
    fn already_applied(
        &self,
        entry: &Entry,
    ) -> impl Future<Output = Result<bool, HttpError>> + Send;
}

/// One kind of platform, everything the rest of the daemon needs to know about it: the facts
/// configuration validates against, how to connect a configured platform of the kind, and what
/// a transition needs beside its action. Each `platforms/<kind>/` exports one, and [`KINDS`]
/// lists them.
pub struct Descriptor {
    pub kind: Kind,
    /// Builds the kind's connector for one configured platform (its client already made), with
    /// [`Connector::read_only`] or [`Connector::read_write`].
    pub connect: Connect,
    /// Refuses a transition the kind could not send, before it is queued (SIRCLO's `shipped`
    /// needs the air waybill). `None`: every listed action is complete on its own.
    pub check_push_params: Option<CheckParams>,
}

/// How a descriptor builds a kind's driver.
pub type Connect = fn(&PlatformConfig, HttpClient) -> Result<Connector, ConnectorError>;

/// How a descriptor checks a transition's parameters; the error says what is missing.
pub type CheckParams = fn(Action, &Params) -> Result<(), String>;

/// The built-in kinds, one registration line each.
pub static KINDS: &[&Descriptor] = &[
    &sirclo::DESCRIPTOR,
    &akinon::DESCRIPTOR,
    &mitrabunso::DESCRIPTOR,
    &merchantpro::DESCRIPTOR,
    &epixel::DESCRIPTOR,
    &rest::DESCRIPTOR,
];

/// The kinds as configuration sees them, for [`crate::config::load`].
pub fn kinds() -> Kinds {
    static LIST: std::sync::LazyLock<Vec<Kind>> =
        std::sync::LazyLock::new(|| KINDS.iter().map(|d| d.kind).collect());
    Kinds(&LIST)
}

/// The descriptor of a configured kind. Every [`Kind`] a configuration holds came from
/// [`kinds`], so it is always found.
pub fn descriptor(kind: Kind) -> &'static Descriptor {
    KINDS
        .iter()
        .find(|d| d.kind == kind)
        .copied()
        .unwrap_or_else(|| panic!("kind {kind} is not registered in platforms::KINDS"))
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Source`] as an object: its futures boxed, so [`Connector`] can hold any kind. Every
/// `Source` is one, by the blanket impl below; kinds never implement it themselves.
trait DynSource: Send + Sync {
    fn first_token(&self, window: &Window) -> String;
    fn fetch_page<'a>(
        &'a self,
        ctx: &'a PassCtx<'a>,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Page, HttpError>>;
    fn reconcile(&self) -> Reconcile;
    fn fetch_by_number<'a>(
        &'a self,
        order_id: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Page, HttpError>>;
    fn listing(&self, token: &str) -> String;
    fn check_token(&self, token: &str) -> Result<(), HttpError>;
    fn fetch_ids<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Page, HttpError>>;
}

impl<S: Source> DynSource for S {
    fn first_token(&self, window: &Window) -> String {
        Source::first_token(self, window)
    }
    fn fetch_page<'a>(
        &'a self,
        ctx: &'a PassCtx<'a>,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Page, HttpError>> {
        Box::pin(Source::fetch_page(self, ctx, token))
    }
    fn reconcile(&self) -> Reconcile {
        Source::reconcile(self)
    }
    fn fetch_by_number<'a>(
        &'a self,
        order_id: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Page, HttpError>> {
        Box::pin(Source::fetch_by_number(self, order_id, number))
    }
    fn listing(&self, token: &str) -> String {
        Source::listing(self, token)
    }
    fn check_token(&self, token: &str) -> Result<(), HttpError> {
        Source::check_token(self, token)
    }
    fn fetch_ids<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Page, HttpError>> {
        Box::pin(Source::fetch_ids(self, ids))
    }
}

/// [`Push`] as an object, likewise.
trait DynPush: Send + Sync {
    fn push<'a>(&'a self, entries: &'a [Entry]) -> BoxFuture<'a, Vec<PushOutcome>>;
    fn already_applied<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<bool, HttpError>>;
}

impl<P: Push> DynPush for P {
    fn push<'a>(&'a self, entries: &'a [Entry]) -> BoxFuture<'a, Vec<PushOutcome>> {
        Box::pin(Push::push(self, entries))
    }
    fn already_applied<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<bool, HttpError>> {
        Box::pin(Push::already_applied(self, entry))
    }
}

/// A configured platform, ready to be driven: its kind's source, and its push for kinds that
/// write back, behind one type. It is itself a [`Source`], so the sync engine stays generic over
/// sources and never names a kind.
pub struct Connector {
    source: Arc<dyn DynSource>,
    /// The same object as `source`, for kinds that push; `None` for read-only kinds.
    push: Option<Arc<dyn DynPush>>,
}

impl Connector {
    pub fn new(
        cfg: &PlatformConfig,
        redactor: &Redactor,
        cancel: CancellationToken,
    ) -> Result<Connector, ConnectorError> {
        Connector::with_retry(cfg, redactor, cancel, RequestRetry::default())
    }

    /// [`Connector::new`] with another retry policy for each request (tests use a fast one).
    pub fn with_retry(
        cfg: &PlatformConfig,
        redactor: &Redactor,
        cancel: CancellationToken,
        retry: RequestRetry,
    ) -> Result<Connector, ConnectorError> {
        for s in cfg.auth.secrets(cfg.kind) {
            redactor.add(s.expose());
        }
        let http = HttpClient::new(
            ClientOptions {
                platform: cfg.name.clone(),
                timeout: cfg.timeout,
                max_requests_per_second: cfg.max_requests_per_second,
                retry,
            },
            redactor.clone(),
            cancel,
        )?;
        (descriptor(cfg.kind).connect)(cfg, http)
    }

    /// A kind that only reads (a descriptor's `connect`).
    pub fn read_only<S: Source + 'static>(source: S) -> Connector {
        Connector {
            source: Arc::new(source),
            push: None,
        }
    }

    /// A kind that reads and pushes (a descriptor's `connect`).
    pub fn read_write<S: Source + Push + 'static>(source: S) -> Connector {
        let both = Arc::new(source);
        Connector {
            source: both.clone(),
            push: Some(both),
        }
    }

    /// Sends entries of this platform; `None` for read-only kinds (which `transition` refuses,
    /// so nothing should reach here).
    pub async fn push(&self, entries: &[Entry]) -> Option<Vec<PushOutcome>> {
        match &self.push {
            Some(p) => Some(p.push(entries).await),
            None => None,
        }
    }

    /// Reads the order back: does the platform already show the entry applied?
    pub async fn already_applied(&self, entry: &Entry) -> Option<Result<bool, HttpError>> {
        match &self.push {
            Some(p) => Some(p.already_applied(entry).await),
            None => None,
        }
    }
}

impl Source for Connector {
    fn first_token(&self, window: &Window) -> String {
        self.source.first_token(window)
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        self.source.fetch_page(ctx, token).await
    }

    fn reconcile(&self) -> Reconcile {
        self.source.reconcile()
    }

    async fn fetch_by_number(&self, order_id: &str, number: &str) -> Result<Page, HttpError> {
        self.source.fetch_by_number(order_id, number).await
    }

    fn listing(&self, token: &str) -> String {
        self.source.listing(token)
    }

    fn check_token(&self, token: &str) -> Result<(), HttpError> {
        self.source.check_token(token)
    }

    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        self.source.fetch_ids(ids).await
    }
}

/// What a kind needs beside the action (SIRCLO's `packed` carries the air waybill).
pub fn check_push_params(kind: Kind, action: Action, params: &Params) -> Result<(), String> {
    match descriptor(kind).check_push_params {
        Some(check) => check(action, params),
        None => Ok(()),
    }
}

/// Maps a platform status to canonical: the config's `status_map` first (case-insensitive), then
/// the kind's built-in table, else `unknown` (kept as it came in `platform_status`).
pub fn map_status(
    status_map: &std::collections::BTreeMap<String, Status>,
    platform_status: &str,
    builtin: impl Fn(&str) -> Option<Status>,
) -> Status {
    if !status_map.is_empty()
        && let Some(s) = status_map.get(&platform_status.trim().to_lowercase())
    {
        return *s;
    }
    builtin(platform_status.trim()).unwrap_or(Status::Unknown)
}

#[cfg(test)]
mod tests {
    use crate::http::Redactor;

    #[test]
    fn macs_are_hidden_while_their_request_runs_and_forgotten_after() {
        let redactor = Redactor::default();
        let mac = "XoPRRDtfNWaGm4nbw7A0LY/c2U0+jg3F3Ay2d3VR3bM=";
        {
            let sent = super::SentSecrets::new(&redactor);
            sent.register(mac);
            sent.register(mac);
            assert_eq!(redactor.redact(&format!("echo {mac}")), "echo [redacted]");
        }
        assert_eq!(redactor.redact(mac), mac);
    }
}
