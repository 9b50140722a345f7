//! Platforms: one folder per kind (its wire types, the mapping to the canonical model, its
//! requests), the [`Source`] contract the sync engine drives, and [`Connector`], the one enum
//! that names every built-in kind. Adding a kind is one folder, one variant and one arm in
//! [`Connector::new`] and in [`with_source!`].

pub mod akinon;
pub mod epixel;
pub mod lenient;
pub mod merchantpro;
pub mod mitrabunso;

pub mod sirclo;

use std::future::Future;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Kind, PlatformConfig};
use crate::http::{ClientOptions, HttpClient, HttpError, Redactor, RequestRetry};
use crate::model::{Action, Entry, Params, Status};
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

/// A configured platform, ready to be driven.
pub enum Connector {
    Akinon(akinon::Akinon),
    Epixel(epixel::Epixel),
    Merchantpro(merchantpro::MerchantPro),
    Mitrabunso(mitrabunso::Mitrabunso),
    Sirclo(sirclo::Sirclo),
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
        for s in cfg.auth.secrets() {
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
        Ok(match cfg.kind {
            Kind::Akinon => Connector::Akinon(akinon::Akinon::new(cfg, http)?),
            Kind::Epixel => Connector::Epixel(epixel::Epixel::new(cfg, http)?),
            Kind::Merchantpro => Connector::Merchantpro(merchantpro::MerchantPro::new(cfg, http)?),
            Kind::Mitrabunso => Connector::Mitrabunso(mitrabunso::Mitrabunso::new(cfg, http)?),
            Kind::Sirclo => Connector::Sirclo(sirclo::Sirclo::new(cfg, http)?),
        })
    }
}

impl Connector {
    /// Sends entries of this platform; `None` for read-only kinds (which `transition` refuses,
    /// so nothing should reach here).
    pub async fn push(&self, entries: &[Entry]) -> Option<Vec<PushOutcome>> {
        match self {
            Connector::Merchantpro(p) => Some(p.push(entries).await),
            Connector::Akinon(p) => Some(p.push(entries).await),
            Connector::Sirclo(p) => Some(p.push(entries).await),
            Connector::Mitrabunso(_) | Connector::Epixel(_) => None,
        }
    }

    /// Reads the order back: does the platform already show the entry applied?
    pub async fn already_applied(&self, entry: &Entry) -> Option<Result<bool, HttpError>> {
        match self {
            Connector::Merchantpro(p) => Some(p.already_applied(entry).await),
            Connector::Akinon(p) => Some(p.already_applied(entry).await),
            Connector::Sirclo(p) => Some(p.already_applied(entry).await),
            Connector::Mitrabunso(_) | Connector::Epixel(_) => None,
        }
    }
}

/// The actions a kind can push (SPEC section 4, push mapping); empty for read-only kinds.
pub fn push_actions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Merchantpro => merchantpro::PUSH_ACTIONS,
        Kind::Sirclo => sirclo::push::PUSH_ACTIONS,
        Kind::Akinon => akinon::push::PUSH_ACTIONS,
        Kind::Mitrabunso | Kind::Epixel => &[],
    }
}

/// What a kind needs beside the action (SIRCLO's `packed` carries the air waybill).
pub fn check_push_params(kind: Kind, action: Action, params: &Params) -> Result<(), String> {
    match (kind, action) {
        (Kind::Sirclo, Action::Status(Status::Shipped)) if params.tracking_number.is_none() => Err(
            "sirclo needs --tracking-number to mark an order shipped (sent as airwaybill_number)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Runs `$body` with `$s` bound to the connector's concrete [`Source`]: the one place the kinds
/// are matched, so the engine stays generic and monomorphic.
#[macro_export]
macro_rules! with_source {
    ($connector:expr, $s:ident => $body:expr) => {
        match $connector {
            $crate::platforms::Connector::Akinon($s) => $body,
            $crate::platforms::Connector::Epixel($s) => $body,
            $crate::platforms::Connector::Merchantpro($s) => $body,
            $crate::platforms::Connector::Mitrabunso($s) => $body,
            $crate::platforms::Connector::Sirclo($s) => $body,
        }
    };
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
