//! Mitrabunso (`kind = "mitrabunso"`): `GET /public/order/orders/list/{id_user}/{offset}/{limit}`
//! with an optional `status` filter, Bearer auth, no date filter and no documented sort order.
//!
//! A pass (docs/platforms/mitrabunso.md) reads `DRAFT`, `NEW` and `PROCESSED` (open) whole, then
//! `SENT` from its head until two consecutive pages hold only orders already stored unchanged
//! (one page, plus one page of overlap). The open scans keep every open order current; the
//! kind's reconcile pass only looks up, one by one by number, the orders that entered `SENT`
//! within `final_watch` (a return or a correction after sending), which the stopping scan would
//! not read again.
//!
//! Stopping at known orders is only sound if an order that changes shows up before the stop. The
//! open scans see every change among open orders, and an order that moves on to `SENT` leaves
//! them; but nothing documents that such an order appears at the head of the `SENT` list (a
//! listing by creation date puts an old order deep inside it). So the `SENT` scan also stops
//! only once every open order stored before this pass that the open scans no longer returned has
//! been found again. One that is still missing after a few more known pages is looked up with
//! the documented details endpoint: still on its way to `SENT` (keep reading), deleted (stop
//! waiting, say so), or in a status the scans never list (read the unfiltered listing after
//! `SENT` until it is found, so it is stored with that status).
//!
//! Every page token is self-contained (phase, offset and what the `SENT` scan has learnt), since
//! the engine stores it as the checkpoint a killed pass resumes from.
//!
//! An exhaustive pass ([`PassCtx::exhaustive`], `verify`) reads the unfiltered listing from its
//! head to its end instead: every order the account holds, whatever its status, and the
//! listing's own `total`.

pub mod map;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::FixedOffset;
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use tracing::{debug, info, warn};

use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::PlatformConfig;
use crate::config::{AuthKey, Kind, KindSpec};
use crate::http::{HttpClient, HttpError, Response};
use crate::model::Status;
use crate::store::{Incoming, Store};

/// The kind as the rest of the daemon sees it.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "mitrabunso",
        auth_keys: &[AuthKey::public("user_id"), AuthKey::secret("token")],
        auth_requirements: &[&["user_id", "token"]],
        sees_updates: false,
        push_actions: &[],
        described: false,
    }),
    connect: |cfg, http| Ok(super::Connector::read_only(Mitrabunso::new(cfg, http)?)),
    check_push_params: None,
};

/// The document names no maximum page size; 100 keeps each answer small enough for the slow
/// links reseller back ends sit behind, and the simulator holds clients to it.
pub const MAX_LIMIT: u32 = 100;

/// The open statuses, in the order a pass reads them: an order moving forward during a pass
/// (`DRAFT` → `NEW` → `PROCESSED` → `SENT`) always lands in a list still to be read.
pub const OPEN_STATUSES: [&str; 3] = ["DRAFT", "NEW", "PROCESSED"];
pub const SENT: &str = "SENT";

/// The platform's zone (Asia/Bangkok, docs/platforms/mitrabunso.md): its times carry none.
pub const DEFAULT_UTC_OFFSET_SECS: i32 = 7 * 3600;

/// Consecutive fully known `SENT` pages after which the scan may stop.
const KNOWN_PAGES_TO_STOP: u32 = 2;
/// Known pages read past the stop point, hunting vanished open orders, before they are looked
/// up one by one: orders shipped in bulk are usually near the head and found without lookups.
const KNOWN_PAGES_BEFORE_LOOKUP: u32 = 4;
/// Details requests per pass at most; any vanished orders beyond are simply hunted in `SENT`.
const MAX_LOOKUPS: usize = 10;

/// How many `SENT` orders inside `final_watch` one reconcile pass searches for (one request
/// each). The least recently read go first, so successive passes take turns through them.
pub const SENT_PER_PASS: usize = 200;

pub struct Mitrabunso {
    http: HttpClient,
    /// `base_url` with `api_prefix` appended, as path segments are added onto it.
    base: Url,
    user_id: String,
    authorization: HeaderValue,
    limit: u32,
    status_map: BTreeMap<String, Status>,
    zone: FixedOffset,
}

impl Mitrabunso {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<Mitrabunso, ConnectorError> {
        let key = |k: &str| {
            cfg.auth
                .get(k)
                .map(|s| s.expose().trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "platforms.{}.auth.{k} is missing in {}",
                        cfg.name,
                        cfg.file.display()
                    ))
                })
        };
        let user_id = key("user_id")?;
        let token = key("token")?;
        let bearer = format!("Bearer {token}");
        http.redactor().add(&token);
        http.redactor().add(&bearer);
        let mut authorization = HeaderValue::from_str(&bearer)
            .map_err(|_| ConnectorError::Config("the token is not valid header text".into()))?;
        authorization.set_sensitive(true);

        let mut base = cfg.base_url.clone();
        if base.cannot_be_a_base() {
            return Err(ConnectorError::Config(format!(
                "platforms.{}.base_url cannot take a path",
                cfg.name
            )));
        }
        if let Some(prefix) = &cfg.api_prefix {
            extend_path(&mut base, prefix.split('/').filter(|s| !s.is_empty()));
        }
        Ok(Mitrabunso {
            http,
            base,
            user_id,
            authorization,
            limit: cfg.page_size.clamp(1, MAX_LIMIT),
            status_map: cfg.status_map.clone(),
            zone: cfg.timezone.unwrap_or(
                FixedOffset::east_opt(DEFAULT_UTC_OFFSET_SECS).expect("+07:00 is a valid offset"),
            ),
        })
    }

    fn endpoint<'s>(&self, segments: impl IntoIterator<Item = &'s str>) -> Url {
        let mut url = self.base.clone();
        extend_path(&mut url, segments);
        url
    }

    /// One page of the listing, `status` filtered or not.
    async fn get_list(&self, status: Option<&str>, offset: u64) -> Result<Listed, HttpError> {
        self.get_list_searched(status, None, offset).await
    }

    /// One page of the listing, narrowed by the `q` search (invoice, air waybill, name, phone).
    async fn get_list_searched(
        &self,
        status: Option<&str>,
        search: Option<&str>,
        offset: u64,
    ) -> Result<Listed, HttpError> {
        let (offset_text, limit_text) = (offset.to_string(), self.limit.to_string());
        let mut url = self.endpoint([
            "public",
            "order",
            "orders",
            "list",
            &self.user_id,
            &offset_text,
            &limit_text,
        ]);
        if let Some(s) = status {
            url.query_pairs_mut().append_pair("status", s);
        }
        if let Some(q) = search {
            url.query_pairs_mut().append_pair("q", q);
        }
        let what = url[url::Position::BeforePath..].to_string();
        self.http
            .execute(
                &what,
                |c| {
                    c.get(url.clone())
                        .header(AUTHORIZATION, self.authorization.clone())
                        .header(ACCEPT, "application/json")
                },
                |resp| self.read_list(&what, offset, resp),
            )
            .await
    }

    fn read_list(&self, position: &str, offset: u64, resp: &Response) -> Result<Listed, String> {
        let (text, repaired) = super::lenient::body_text(&resp.body);
        let list: wire::ListPage<'_> =
            serde_json::from_str(&text).map_err(|e| format!("not an order list: {e}"))?;
        let mut page = Page {
            orders: Vec::with_capacity(list.data.len()),
            ..Page::default()
        };
        let mut ids = HashSet::with_capacity(list.data.len());
        super::map_records(
            &self.http,
            position,
            repaired,
            list.data.iter().copied(),
            "/order/order_id",
            |w: wire::Record| {
                map::to_canonical(w, &self.status_map, self.zone).map_err(|e| e.to_string())
            },
            &mut page,
        );
        // Offsets shift when orders arrive during a scan, so one order can come twice; the
        // store would take it as unchanged anyway, this just saves work.
        page.orders.retain(|o| ids.insert(o.order.order_id.clone()));
        // Never more than asked for: a page holding one order twice (offsets shifting under the
        // scan) has `limit + 1` records, and advancing by that would skip the next order. Re-reading
        // one costs nothing; skipping one loses it.
        let count = (list.data.len() as u64).min(u64::from(self.limit));
        let total = list
            .total
            .and_then(|t| rust_decimal::prelude::ToPrimitive::to_u64(&t));
        // Advance by what came back, not by the limit asked for: a platform capping pages lower
        // than asked must not make the scan skip records. Without a total, only a short page
        // says the end has come.
        let more = count > 0
            && match total {
                Some(t) => offset + count < t,
                None => count >= u64::from(self.limit),
            };
        Ok(Listed {
            page,
            ids,
            count,
            more,
            total,
        })
    }

    /// Where an order went, from `GET …/details/{id_user}/{id_order}`.
    async fn whereabouts(&self, order_id: &str) -> Result<Whereabouts, HttpError> {
        let url = self.endpoint([
            "public",
            "order",
            "orders",
            "details",
            &self.user_id,
            order_id,
        ]);
        let what = url[url::Position::BeforePath..].to_string();
        let result = self
            .http
            .execute(
                &what,
                |c| {
                    c.get(url.clone())
                        .header(AUTHORIZATION, self.authorization.clone())
                        .header(ACCEPT, "application/json")
                },
                |resp| {
                    let page: wire::DetailsPage = serde_json::from_slice(&resp.body)
                        .map_err(|e| format!("not an order's details: {e}"))?;
                    let order = page.data.and_then(|d| d.order.into_iter().next());
                    Ok(match order {
                        None => Whereabouts::Gone,
                        Some(o)
                            if o.deleted_at
                                .as_deref()
                                .is_some_and(|d| !d.trim().is_empty()) =>
                        {
                            Whereabouts::Gone
                        }
                        Some(o) => match o.status.map(|s| s.trim().to_string()) {
                            Some(s) if !s.is_empty() => Whereabouts::Status(s),
                            _ => Whereabouts::Unknown,
                        },
                    })
                },
            )
            .await;
        match result {
            Ok(w) => Ok(w),
            Err(HttpError::Permanent { status: 404, .. }) => Ok(Whereabouts::Gone),
            Err(e @ (HttpError::Unauthorized { .. } | HttpError::Cancelled)) => Err(e),
            // Not knowing is no reason to fail the pass: the scan just keeps looking.
            Err(e) => {
                warn!(platform = %self.http.platform(), order = order_id, error = %e,
                      "could not look the order up; looking for it in the SENT list instead");
                Ok(Whereabouts::Unknown)
            }
        }
    }

    async fn open_scan(&self, i: usize, offset: u64) -> Result<Page, HttpError> {
        let listed = self.get_list(Some(OPEN_STATUSES[i]), offset).await?;
        let next = if listed.more {
            Cursor::open(i, offset + listed.count)
        } else if i + 1 < OPEN_STATUSES.len() {
            Cursor::open(i + 1, 0)
        } else {
            Cursor {
                list: List::Sent,
                ..Cursor::default()
            }
        };
        Ok(listed.into_page(Some(next)))
    }

    async fn sent_scan(&self, ctx: &PassCtx<'_>, mut cur: Cursor) -> Result<Page, HttpError> {
        let listed = self.get_list(Some(SENT), cur.offset).await?;
        let stored = stored_state(ctx, &listed.page.orders).await;
        let known_page = listed.page.rejects.is_empty()
            && !listed.page.orders.is_empty()
            && stored.as_ref().is_some_and(|s| s.all_unchanged);
        cur.known = if known_page { cur.known + 1 } else { 0 };
        // Orders of the page before may still be committing: the vanished-order check must
        // not count the open orders found there as missing.
        let found_before = std::mem::replace(
            &mut cur.found,
            stored.map(|s| s.open_ids).unwrap_or_default(),
        );
        let first_page = cur.offset == 0;
        cur.offset += listed.count;

        let at_end = !listed.more;
        if !at_end && cur.known < KNOWN_PAGES_TO_STOP {
            return Ok(listed.into_page(Some(cur)));
        }
        // On the first SENT page the last open page may not be committed yet, so what looks
        // vanished cannot be trusted; one more (normally empty) request settles it.
        if at_end && first_page && !cur.settle {
            let looks_vanished = self
                .vanished(ctx, &cur, &listed.ids, &found_before)
                .await
                .is_none_or(|v| !v.is_empty());
            if looks_vanished {
                cur.settle = true;
                return Ok(listed.into_page(Some(cur)));
            }
            return Ok(listed.into_page(cur.after_sent()));
        }
        let Some(mut vanished) = self.vanished(ctx, &cur, &listed.ids, &found_before).await else {
            // The store could not say; reading on is the safe answer.
            return Ok(listed.into_page((!at_end).then_some(cur)));
        };
        if !vanished.is_empty() && !cur.looked && (at_end || cur.known >= KNOWN_PAGES_BEFORE_LOOKUP)
        {
            cur.looked = true;
            self.look_up(&mut cur, &vanished).await?;
            vanished.retain(|id| !cur.skip.contains(id));
        }
        if at_end {
            if !vanished.is_empty() {
                info!(platform = %self.http.platform(), orders = vanished.len(),
                      "open orders left the open lists but were not found in SENT; the next pass looks again");
            }
            return Ok(listed.into_page(cur.after_sent()));
        }
        if vanished.is_empty() {
            return Ok(listed.into_page(cur.after_sent()));
        }
        debug!(platform = %self.http.platform(), vanished = vanished.len(), offset = cur.offset,
               "reading on in SENT for open orders that left the open lists");
        Ok(listed.into_page(Some(cur)))
    }

    /// Looks up the first vanished orders and decides what the scan still waits for.
    async fn look_up(&self, cur: &mut Cursor, vanished: &[String]) -> Result<(), HttpError> {
        let platform = self.http.platform();
        for id in vanished.iter().take(MAX_LOOKUPS) {
            match self.whereabouts(id).await? {
                Whereabouts::Status(s) if s.eq_ignore_ascii_case(SENT) => {}
                Whereabouts::Unknown => {}
                Whereabouts::Status(s)
                    if OPEN_STATUSES.iter().any(|o| s.eq_ignore_ascii_case(o)) =>
                {
                    // It moved while the open lists were read; the next pass reads it there.
                    debug!(platform, order = %id, status = %s, "open order moved during the pass");
                    cur.skip.push(id.clone());
                }
                Whereabouts::Status(s) => {
                    info!(platform, order = %id, status = %s,
                          "order moved to a status the scans do not list; reading the unfiltered list for it");
                    cur.skip.push(id.clone());
                    cur.elsewhere.push(id.clone());
                }
                Whereabouts::Gone => {
                    warn!(platform, order = %id,
                          "order is no longer on the platform (deleted); it stays stored as last seen");
                    cur.skip.push(id.clone());
                }
            }
        }
        Ok(())
    }

    /// Open orders stored before this pass that it has not read again, less the ones on this
    /// page and the previous one (maybe not committed yet) and those already accounted for.
    /// `None` when the store cannot be read.
    async fn vanished(
        &self,
        ctx: &PassCtx<'_>,
        cur: &Cursor,
        on_page: &HashSet<String>,
        found_before: &[String],
    ) -> Option<Vec<String>> {
        let pass_start = ctx.window.to;
        let result = ctx
            .store
            .orders_in_platform_statuses(ctx.platform, &OPEN_STATUSES)
            .await;
        match result {
            Ok(stored) => Some(
                stored
                    .into_iter()
                    // Every page of this pass commits after the pass started.
                    .filter(|o| o.last_seen_at.is_none_or(|t| t < pass_start))
                    .map(|o| o.order_id)
                    .filter(|id| {
                        !on_page.contains(id)
                            && !found_before.contains(id)
                            && !cur.skip.contains(id)
                    })
                    .collect(),
            ),
            Err(e) => {
                warn!(platform = %self.http.platform(), error = %e,
                      "could not read the store to decide where the SENT scan may stop");
                None
            }
        }
    }

    async fn elsewhere_scan(&self, mut cur: Cursor) -> Result<Page, HttpError> {
        let listed = self.get_list(None, cur.offset).await?;
        cur.elsewhere.retain(|id| !listed.ids.contains(id));
        cur.offset += listed.count;
        if cur.elsewhere.is_empty() {
            return Ok(listed.into_page(None));
        }
        if !listed.more {
            for id in &cur.elsewhere {
                warn!(platform = %self.http.platform(), order = %id,
                      "order was not found in the unfiltered list either; it stays stored as last seen");
            }
            return Ok(listed.into_page(None));
        }
        Ok(listed.into_page(Some(cur)))
    }

    /// One page of the unfiltered listing, for an exhaustive pass: no stop at known orders.
    async fn full_scan(&self, offset: u64) -> Result<Page, HttpError> {
        let listed = self.get_list(None, offset).await?;
        let next = listed.more.then(|| Cursor {
            list: List::All,
            offset: offset + listed.count,
            ..Cursor::default()
        });
        let total = listed.total;
        let mut page = listed.into_page(next);
        page.total = total;
        Ok(page)
    }
}

impl Source for Mitrabunso {
    /// Every pass reads the same lists from their heads; the window does not apply.
    fn first_token(&self, _window: &Window) -> String {
        Cursor::open(0, 0).encode()
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        let cur = Cursor::decode(token).unwrap_or_else(|e| {
            warn!(platform = %self.http.platform(), token, error = %e,
                  "unreadable checkpoint (from another version?); starting the pass over");
            Cursor::open(0, 0)
        });
        if ctx.exhaustive {
            // The pass's first token names the first open scan; an exhaustive pass reads the
            // unfiltered listing from its head instead.
            let offset = if cur.list == List::All { cur.offset } else { 0 };
            return self.full_scan(offset).await;
        }
        match cur.list {
            List::All => self.full_scan(cur.offset).await,
            List::Open(i) => self.open_scan(i, cur.offset).await,
            List::Sent => self.sent_scan(ctx, cur).await,
            List::Elsewhere => self.elsewhere_scan(cur).await,
        }
    }

    /// The open-status scans of every pass re-read every open order already.
    /// The open statuses are scanned in full every pass; what no pass sees is a new air waybill
    /// or a re-issued invoice on an order already `SENT`. Those are searched for one by one
    /// within `final_watch`, a bounded number per pass.
    fn reconcile(&self) -> Reconcile {
        Reconcile::ByNumber {
            platform_status: SENT,
            per_pass: SENT_PER_PASS,
        }
    }

    /// The `SENT` listing searched (`q`) for the order's invoice: the list's own shape, so an
    /// unchanged order reads as unchanged (the details endpoint answers in another shape).
    async fn fetch_by_number(&self, order_id: &str, number: &str) -> Result<Page, HttpError> {
        let listed = self.get_list_searched(Some(SENT), Some(number), 0).await?;
        let mut page = listed.page;
        page.orders.retain(|o| o.order.order_id == order_id);
        page.next = None;
        Ok(page)
    }

    fn listing(&self, token: &str) -> String {
        url::form_urlencoded::parse(token.as_bytes())
            .find(|(k, _)| k == "list")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// The list endpoint cannot select ids, and the details endpoint answers in another shape
    /// (whose raw JSON would read as a change next time the list shows the order). Never
    /// called: reconcile searches by number ([`Source::fetch_by_number`]).
    async fn fetch_ids(&self, _ids: &[String]) -> Result<Page, HttpError> {
        Err(HttpError::NotSent {
            reason: "mitrabunso cannot fetch orders by id; its passes re-read open orders".into(),
        })
    }
}

fn extend_path<'s>(url: &mut Url, segments: impl IntoIterator<Item = &'s str>) {
    // Checked in `Mitrabunso::new`: an http(s) base URL always has a path.
    let mut path = url
        .path_segments_mut()
        .expect("base_url can take a path (checked at start)");
    path.pop_if_empty();
    path.extend(segments);
}

/// A page as read, with what the scan logic needs beyond the [`Page`].
struct Listed {
    page: Page,
    /// Every order id on the page (rejected records have none).
    ids: HashSet<String>,
    /// Records in `data`, rejected ones included: what the offset advances by.
    count: u64,
    more: bool,
    /// How many orders the listing holds, where the platform says.
    total: Option<u64>,
}

impl Listed {
    fn into_page(self, next: Option<Cursor>) -> Page {
        Page {
            next: next.map(|c| c.encode()),
            ..self.page
        }
    }
}

enum Whereabouts {
    Status(String),
    Gone,
    Unknown,
}

/// What the store holds for one page's orders.
struct StoredState {
    /// Every order is stored, with the same content hash.
    all_unchanged: bool,
    /// Orders on the page stored with an open status: vanished orders found here.
    open_ids: Vec<String>,
}

async fn stored_state(ctx: &PassCtx<'_>, orders: &[Incoming]) -> Option<StoredState> {
    if orders.is_empty() {
        return Some(StoredState {
            all_unchanged: false,
            open_ids: Vec::new(),
        });
    }
    let platform = ctx.platform.to_string();
    let wanted: HashMap<String, String> = orders
        .iter()
        .map(|o| (o.order.order_id.clone(), o.hash.clone()))
        .collect();
    let result = read_stored(ctx.store, platform, wanted).await;
    match result {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(platform = ctx.platform, error = %e,
                  "could not read the store to compare a SENT page; reading on");
            None
        }
    }
}

async fn read_stored(
    store: &Store,
    platform: String,
    wanted: HashMap<String, String>,
) -> Result<StoredState, crate::store::StoreError> {
    let stored = store
        .order_digests(&platform, wanted.keys().cloned().collect())
        .await?;
    let mut same = 0;
    let mut open_ids = Vec::new();
    for o in stored {
        if wanted.get(&o.order_id) == Some(&o.content_hash) {
            same += 1;
        }
        // As loosely as the platform spells its statuses: surrounding spaces, any case.
        let status = o.platform_status.trim_matches(' ').to_ascii_uppercase();
        if OPEN_STATUSES.contains(&status.as_str()) {
            open_ids.push(o.order_id);
        }
    }
    Ok(StoredState {
        all_unchanged: same == wanted.len(),
        open_ids,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum List {
    /// `OPEN_STATUSES[i]`.
    Open(usize),
    #[default]
    Sent,
    /// The unfiltered listing, read for orders now in a status the scans do not list.
    Elsewhere,
    /// The unfiltered listing, read whole (an exhaustive pass).
    All,
}

/// Where a pass is, encoded as the page token (`list=NEW&offset=200`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Cursor {
    list: List,
    offset: u64,
    /// SENT: consecutive fully known pages up to the previous one.
    known: u32,
    /// SENT: vanished orders were looked up already this pass.
    looked: bool,
    /// SENT: the end was reached on the first page and one more request is being made to
    /// settle what vanished.
    settle: bool,
    /// SENT: open orders found on the previous page (maybe still committing).
    found: Vec<String>,
    /// SENT: vanished orders the scan no longer waits for.
    skip: Vec<String>,
    /// Vanished orders in a status the scans do not list, to find in the unfiltered listing.
    elsewhere: Vec<String>,
}

impl Cursor {
    fn open(i: usize, offset: u64) -> Cursor {
        Cursor {
            list: List::Open(i),
            offset,
            ..Cursor::default()
        }
    }

    /// What follows the SENT scan: the unfiltered listing if some order is to be found there.
    fn after_sent(self) -> Option<Cursor> {
        (!self.elsewhere.is_empty()).then(|| Cursor {
            list: List::Elsewhere,
            elsewhere: self.elsewhere,
            ..Cursor::default()
        })
    }

    fn encode(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let list = match self.list {
            List::Open(i) => OPEN_STATUSES[i],
            List::Sent => SENT,
            List::Elsewhere => "ANY",
            List::All => "ALL",
        };
        s.append_pair("list", list);
        s.append_pair("offset", &self.offset.to_string());
        if self.known > 0 {
            s.append_pair("known", &self.known.to_string());
        }
        if self.looked {
            s.append_pair("looked", "1");
        }
        if self.settle {
            s.append_pair("settle", "1");
        }
        for (key, ids) in [
            ("found", &self.found),
            ("skip", &self.skip),
            ("elsewhere", &self.elsewhere),
        ] {
            for id in ids {
                s.append_pair(key, id);
            }
        }
        s.finish()
    }

    fn decode(token: &str) -> Result<Cursor, String> {
        let mut cur = Cursor::default();
        let mut list = None;
        for (key, value) in url::form_urlencoded::parse(token.as_bytes()) {
            let number = |v: &str| v.parse::<u64>().map_err(|_| format!("bad {key} `{v}`"));
            match key.as_ref() {
                "list" => {
                    list = Some(match value.as_ref() {
                        SENT => List::Sent,
                        "ANY" => List::Elsewhere,
                        "ALL" => List::All,
                        other => List::Open(
                            OPEN_STATUSES
                                .iter()
                                .position(|s| *s == other)
                                .ok_or_else(|| format!("unknown list `{other}`"))?,
                        ),
                    })
                }
                "offset" => cur.offset = number(&value)?,
                "known" => cur.known = number(&value)?.try_into().unwrap_or(u32::MAX),
                "looked" => cur.looked = value == "1",
                "settle" => cur.settle = value == "1",
                "found" => cur.found.push(value.into_owned()),
                "skip" => cur.skip.push(value.into_owned()),
                "elsewhere" => cur.elsewhere.push(value.into_owned()),
                other => return Err(format!("unknown key `{other}`")),
            }
        }
        cur.list = list.ok_or("no list")?;
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_odd_ones_are_refused() {
        let cur = Cursor {
            list: List::Sent,
            offset: 300,
            known: 2,
            looked: true,
            settle: false,
            found: vec!["a&b=c".into()],
            skip: vec!["x".into(), "y".into()],
            elsewhere: vec!["y".into()],
        };
        assert_eq!(Cursor::decode(&cur.encode()).unwrap(), cur);
        assert_eq!(Cursor::open(1, 200).encode(), "list=NEW&offset=200");
        assert_eq!(
            Cursor::decode("list=NEW&offset=200").unwrap(),
            Cursor::open(1, 200)
        );
        let all = Cursor {
            list: List::All,
            offset: 100,
            ..Cursor::default()
        };
        assert_eq!(Cursor::decode(&all.encode()).unwrap(), all);
        assert!(Cursor::decode("list=CANCELLED&offset=0").is_err());
        assert!(Cursor::decode("offset=0").is_err());
        assert!(Cursor::decode("list=SENT&offset=-1").is_err());
        assert!(Cursor::decode("/api/v2/orders?start=0").is_err());
    }
}
