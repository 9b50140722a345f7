//! Akinon seller API (`kind = "akinon"`, `docs/platforms/akinon.md`):
//! Django-REST lists paged with `page`/`limit` by following `next`, filtered by
//! `updated_at__gte`, so no reconcile pass is needed. Orders and their lines are two lists
//! (`/api/i1/orders/`, `/api/i1/order-items/`) and a line's status is its own, so a pass reads
//! both and stores each order with all of its lines. Auth is a Bearer token, configured or
//! obtained with email + password from `POST /api/i1/token/obtain/`; a refused token is replaced
//! by one new login, never more.
//!
//! A pass has two phases, and its page token says which (both are self-contained: the list, then
//! the query to send, relative to the API root, so a resumed pass re-reads exactly the page it
//! had not committed):
//! - `orders/?updated_at__gte=…&page=…&limit=…`: a page of orders changed in the window, each
//!   completed with all of its items;
//! - `order-items/?updated_at__gte=…&page=…&limit=…`: items changed in the window. Their orders
//!   that this pass has not stored yet changed only through a line; they are re-read (by
//!   `number`, the only order filter that names one order) with all their items.
//!
//! An exhaustive pass (`verify`) is phase one alone: it reads every order in the window with all
//! of its lines, so there is no line-only change left to look for.

pub mod map;
pub mod push;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::PlatformConfig;
use crate::config::{AuthKey, Kind, KindSpec};
use crate::http::{HttpClient, HttpError, Response};
use crate::model::Status;
use crate::platforms::lenient::{self, parse_time};
use crate::store::{Incoming, RejectRecord};
use map::RawItem;

/// The kind as the rest of the daemon sees it.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "akinon",
        auth_keys: &[
            AuthKey::secret("token"),
            AuthKey::public("email"),
            AuthKey::secret("password"),
        ],
        auth_requirements: &[&["token"], &["email", "password"]],
        sees_updates: true,
        push_actions: push::PUSH_ACTIONS,
        described: false,
    }),
    connect: |cfg, http| Ok(super::Connector::read_write(Akinon::new(cfg, http)?)),
    check_push_params: None,
};

/// Where the document's endpoints live under the base URL; `api_prefix` replaces it.
pub const DEFAULT_API_PREFIX: &str = "/api/i1";
const ORDERS: &str = "orders/";
const ITEMS: &str = "order-items/";
const TOKEN_OBTAIN: &str = "token/obtain/";
const JSON: &str = "application/json";

pub struct Akinon {
    http: HttpClient,
    /// The API root (`base_url` + prefix), ending in `/`; page tokens are relative to it.
    root: Url,
    limit: u32,
    status_map: BTreeMap<String, Status>,
    zone: FixedOffset,
    login: Option<Login>,
    /// The `Authorization` value in use: the configured token, or the last one obtained.
    bearer: Mutex<Option<HeaderValue>>,
}

/// How a request is sent: reads ride out blips with the HTTP layer's retries; a push goes out
/// exactly once, because the outbox owns its retries and a blind resend could apply it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Read,
    Push,
}

struct Login {
    email: String,
    password: String,
}

/// One record of a list page: its raw text and what reading it gave.
struct Record<T> {
    raw: String,
    read: Result<T, String>,
}

struct Listed<T> {
    count: Option<u64>,
    next: Option<String>,
    records: Vec<Record<T>>,
}

type Found = HashMap<String, Vec<RawItem>>;

impl Akinon {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<Akinon, ConnectorError> {
        let key = |k: &str| {
            cfg.auth
                .get(k)
                .map(|s| s.expose().trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let token = key("token").map(|t| bearer_header(&http, &t)).transpose()?;
        let login = match (key("email"), key("password")) {
            (Some(email), Some(password)) => Some(Login { email, password }),
            _ => None,
        };
        if token.is_none() && login.is_none() {
            return Err(ConnectorError::Config(format!(
                "platforms.{}.auth needs `token`, or `email` and `password`, in {}",
                cfg.name,
                cfg.file.display()
            )));
        }
        let prefix = cfg.api_prefix.as_deref().unwrap_or(DEFAULT_API_PREFIX);
        let mut root = cfg.base_url.clone();
        root.set_path(&format!(
            "{}/{}/",
            root.path().trim_end_matches('/'),
            prefix.trim_matches('/')
        ));
        root.set_query(None);
        root.set_fragment(None);
        Ok(Akinon {
            http,
            root,
            limit: cfg.page_size.max(1),
            status_map: cfg.status_map.clone(),
            zone: cfg
                .timezone
                .unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
            login,
            bearer: Mutex::new(token),
        })
    }

    fn url(&self, token: &str) -> Result<Url, HttpError> {
        self.root.join(token).map_err(|e| HttpError::NotSent {
            reason: format!("bad page token {token:?}: {e}"),
        })
    }

    /// `GET /api/i1/…` as the reject position and the log show it.
    fn position(&self, token: &str) -> String {
        match self.url(token) {
            Ok(u) => format!("GET {}", &u[url::Position::BeforePath..]),
            Err(_) => format!("GET {token}"),
        }
    }

    // ---- requests and auth -------------------------------------------------------------

    async fn get_list<T: DeserializeOwned>(&self, token: &str) -> Result<Listed<T>, HttpError> {
        let url = self.url(token)?;
        self.authorized(
            Delivery::Read,
            token,
            |c, auth| {
                c.get(url.clone())
                    .header(AUTHORIZATION, auth)
                    .header(ACCEPT, JSON)
                    .header(CONTENT_TYPE, JSON)
            },
            |resp| read_list::<T>(resp),
        )
        .await
    }

    /// Sends with the current token; on 401, when a login is configured, logs in again once and
    /// sends once more. A second refusal is final: a loop would only earn a locked account.
    /// A push may take the second try too: a 401 means the platform refused the request before
    /// acting on it.
    async fn authorized<T>(
        &self,
        delivery: Delivery,
        what: &str,
        build: impl Fn(&reqwest::Client, HeaderValue) -> reqwest::RequestBuilder,
        parse: impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let auth = self.bearer().await?;
        let sent = self
            .send(delivery, what, |c| build(c, auth.clone()), &parse)
            .await;
        match sent {
            Err(HttpError::Unauthorized { .. }) if self.login.is_some() => {
                let fresh = self.relogin(&auth).await?;
                self.send(delivery, what, |c| build(c, fresh.clone()), &parse)
                    .await
            }
            other => other,
        }
    }

    async fn send<T>(
        &self,
        delivery: Delivery,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        match delivery {
            Delivery::Read => self.http.execute(what, build, parse).await,
            Delivery::Push => self.http.execute_push(what, build, parse).await,
        }
    }

    async fn bearer(&self) -> Result<HeaderValue, HttpError> {
        let mut current = self.bearer.lock().await;
        if let Some(h) = current.as_ref() {
            return Ok(h.clone());
        }
        let h = self.obtain_token().await?;
        *current = Some(h.clone());
        Ok(h)
    }

    /// Replaces `stale` by a fresh token, unless another request already did.
    async fn relogin(&self, stale: &HeaderValue) -> Result<HeaderValue, HttpError> {
        let mut current = self.bearer.lock().await;
        if let Some(h) = current.as_ref()
            && h != stale
        {
            return Ok(h.clone());
        }
        info!(platform = %self.http.platform(), "the platform refused the access token; logging in again");
        let h = self.obtain_token().await?;
        *current = Some(h.clone());
        Ok(h)
    }

    /// `POST /api/i1/token/obtain/` with the configured email and password.
    async fn obtain_token(&self) -> Result<HeaderValue, HttpError> {
        let Some(login) = &self.login else {
            return Err(HttpError::Unauthorized {
                status: 401,
                message: "no email and password are configured to obtain a token".into(),
            });
        };
        let url = self.url(TOKEN_OBTAIN)?;
        let body =
            serde_json::json!({ "email": login.email, "password": login.password }).to_string();
        let pair = self
            .http
            .execute(
                &format!("POST {TOKEN_OBTAIN}"),
                |c| {
                    c.post(url.clone())
                        .header(ACCEPT, JSON)
                        .header(CONTENT_TYPE, JSON)
                        .body(body.clone())
                },
                |resp| {
                    serde_json::from_slice::<wire::TokenPair>(&resp.body)
                        .map_err(|e| format!("not a token answer: {e}"))
                },
            )
            .await?;
        bearer_header(&self.http, pair.access.trim()).map_err(|e| HttpError::NotSent {
            reason: e.to_string(),
        })
    }

    // ---- pages ---------------------------------------------------------------------------

    /// `order_id`: the order the record is for, if it names one (item records do not: a bad
    /// item does not keep its order from being stored).
    fn reject(
        &self,
        position: &str,
        index: usize,
        reason: String,
        raw: String,
        order_id: Option<String>,
    ) -> RejectRecord {
        let position = format!("{position} record {index}");
        super::reject(&self.http, &position, &reason, &raw, order_id)
    }

    /// An order record as read, if its times are in forms the platform documents (checked
    /// before its items are fetched); else its reject.
    fn dated(
        &self,
        position: &str,
        index: usize,
        read: Result<wire::Order, String>,
        raw: String,
    ) -> Result<(wire::Order, String), RejectRecord> {
        let checked = read.and_then(|o| match map::times(&o, self.zone) {
            Ok(_) => Ok(o),
            Err(bad) => Err(bad.to_string()),
        });
        match checked {
            Ok(o) => Ok((o, raw)),
            Err(reason) => {
                let id = lenient::record_id(&raw, "/id");
                Err(self.reject(position, index, reason, raw, id))
            }
        }
    }

    /// The token of the page after `current`, from the page's `next` link. Only the link's query
    /// is taken: proxies in front of Django rewrite the scheme and host of the links it builds,
    /// and the token must never follow a link to another host.
    fn next_token(&self, current: &str, next: Option<String>, had_records: bool) -> Option<String> {
        let link = next.filter(|l| !l.trim().is_empty())?;
        if !had_records {
            warn!(platform = %self.http.platform(), link = %link,
                  "an empty page links to a next one; ending the listing here");
            return None;
        }
        let parsed = Url::parse(link.trim()).or_else(|_| self.root.join(link.trim()));
        let Some(query) = parsed.ok().and_then(|u| u.query().map(str::to_string)) else {
            warn!(platform = %self.http.platform(), link = %link, "unreadable next link; ending the listing here");
            return None;
        };
        let list = if current.starts_with(ITEMS) {
            ITEMS
        } else {
            ORDERS
        };
        let token = format!("{list}?{query}");
        if token == current {
            warn!(platform = %self.http.platform(), link = %link,
                  "the platform's next link points at the same page; ending the listing here");
            return None;
        }
        Some(token)
    }

    fn items_scan_token(&self, window: &Window) -> String {
        list_token(
            ITEMS,
            &[("updated_at__gte", floor_time(window.from))],
            self.limit,
        )
    }

    /// Phase one: a page of orders changed in the window, with all their items.
    async fn orders_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        let list = self.get_list::<wire::Order>(token).await?;
        let position = self.position(token);
        let had_records = !list.records.is_empty();
        let mut page = Page {
            total: list.count,
            ..Page::default()
        };
        let mut orders = Vec::with_capacity(list.records.len());
        for (i, rec) in list.records.into_iter().enumerate() {
            match self.dated(&position, i, rec.read, rec.raw) {
                Ok(order) => orders.push(order),
                Err(reject) => page.rejects.push(reject),
            }
        }
        self.complete(orders, &mut page).await?;
        // The items phase only finds orders that changed through a line since the window's
        // start; an exhaustive pass has just read every order with all of its lines.
        page.next = self
            .next_token(token, list.next, had_records)
            .or_else(|| (!ctx.exhaustive).then(|| self.items_scan_token(&ctx.window)));
        Ok(page)
    }

    /// Phase two: a page of items changed in the window. Orders already stored by this pass
    /// are current (a later change is newer than the window and the next pass reads it); the
    /// others changed through a line only and are read again here.
    async fn items_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        let list = self.get_list::<wire::ItemOrder>(token).await?;
        let position = self.position(token);
        let had_records = !list.records.is_empty();
        let mut page = Page::default();
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        for (i, rec) in list.records.into_iter().enumerate() {
            match rec.read {
                Ok(r) => {
                    if seen.insert(r.order.clone()) {
                        ids.push(r.order);
                    }
                }
                // An item that names no order can be attached nowhere: this is its only report.
                Err(reason) => page
                    .rejects
                    .push(self.reject(&position, i, reason, rec.raw, None)),
            }
        }
        let next = self.next_token(token, list.next, had_records);
        let stale = self.not_stored_by_this_pass(ctx, ids).await?;
        if !stale.is_empty() {
            debug!(platform = %self.http.platform(), orders = stale.len(),
                   "re-reading orders whose items changed");
        }
        let mut orders = Vec::with_capacity(stale.len());
        for (id, number) in stale {
            let t = list_token(ORDERS, &[("number", number)], self.limit);
            let found = self.get_list::<wire::Order>(&t).await?;
            let position = self.position(&t);
            for (i, rec) in found.records.into_iter().enumerate() {
                if rec.read.as_ref().is_ok_and(|o| o.id != id) {
                    continue;
                }
                match self.dated(&position, i, rec.read, rec.raw) {
                    Ok(order) => orders.push(order),
                    Err(reject) => page.rejects.push(reject),
                }
            }
        }
        self.complete(orders, &mut page).await?;
        page.next = next;
        Ok(page)
    }

    /// Stored orders among `ids` that this pass has not stored yet, with their numbers. Orders
    /// not stored at all are left out: they changed in the window only through a line, were
    /// placed before `backfill_from`, and the API cannot fetch an order by its id.
    async fn not_stored_by_this_pass(
        &self,
        ctx: &PassCtx<'_>,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, HttpError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // `last_seen_at` is kept to the millisecond.
        let pass_start = ctx.window.to.trunc_subsecs(3);
        let mut stored: HashMap<String, String> = ctx
            .store
            .order_digests(ctx.platform, ids.clone())
            .await
            .map_err(|e| HttpError::Transient {
                reason: format!("cannot look up stored orders: {e}"),
            })?
            .into_iter()
            .filter(|d| d.last_seen_at.is_none_or(|t| t < pass_start))
            .map(|d| (d.order_id, d.number))
            .collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| stored.remove(&id).map(|n| (id, n)))
            .collect())
    }

    /// Fetches the items of `orders` and adds each order, complete, to `page`.
    async fn complete(
        &self,
        orders: Vec<(wire::Order, String)>,
        page: &mut Page,
    ) -> Result<(), HttpError> {
        let mut found = self.items_for(&orders, &mut page.rejects).await?;
        for (o, raw) in orders {
            let items = map::settle_items(found.remove(&o.id).unwrap_or_default());
            let raw = map::raw_with_items(&raw, o.has_order_items, &items);
            let id = o.id.clone();
            match map::to_canonical(o, &items, &self.status_map, self.zone) {
                Ok(order) => page.orders.push(Incoming::new(order, raw)),
                // Not reached: the times were checked when the record was read.
                Err(bad) => page.rejects.push(self.reject(
                    &format!("order {id}"),
                    0,
                    bad.to_string(),
                    raw,
                    Some(id),
                )),
            }
        }
        Ok(())
    }

    /// The items of `orders`. The item list has no filter naming several orders, so: one query
    /// over the orders' placed-time span (`order__date_placed__gte/lte`), kept only while it
    /// costs fewer requests than one `order__number` query per order, which is the fallback
    /// (and what orders without a placed time always get). Either way only the items of
    /// `orders` are kept.
    async fn items_for(
        &self,
        orders: &[(wire::Order, String)],
        rejects: &mut Vec<RejectRecord>,
    ) -> Result<Found, HttpError> {
        let wanted: HashSet<&str> = orders.iter().map(|(o, _)| o.id.as_str()).collect();
        let mut found = Found::new();
        let placed: Vec<Option<DateTime<Utc>>> = orders
            .iter()
            .map(|(o, _)| {
                o.date_placed
                    .as_deref()
                    .and_then(|s| parse_time(s, self.zone))
            })
            .collect();
        let dated = placed.iter().flatten().count();
        let mut one_by_one: Vec<usize> = (0..orders.len()).collect();
        if dated >= 2 {
            let lo = placed
                .iter()
                .flatten()
                .min()
                .copied()
                .expect("two dated orders");
            let hi = placed
                .iter()
                .flatten()
                .max()
                .copied()
                .expect("two dated orders");
            let token = list_token(
                ITEMS,
                &[
                    ("order__date_placed__gte", floor_time(lo)),
                    ("order__date_placed__lte", ceil_time(hi)),
                ],
                self.limit,
            );
            let first = self.get_list::<wire::Item>(&token).await?;
            let per_page = first.records.len() as u64;
            let pages = match (first.next.is_some(), first.count) {
                (false, _) => 1,
                (true, Some(count)) if per_page > 0 => count.div_ceil(per_page),
                _ => u64::MAX,
            };
            if pages <= dated as u64 {
                self.collect_items(token, first, &wanted, &mut found, rejects)
                    .await?;
                one_by_one.retain(|&i| placed[i].is_none());
            } else {
                debug!(platform = %self.http.platform(), pages, orders = dated,
                       "the orders' placed-time span holds too many items; reading per order");
            }
        }
        for i in one_by_one {
            let Some(number) = orders[i].0.number.clone().filter(|n| !n.trim().is_empty()) else {
                continue;
            };
            let token = list_token(ITEMS, &[("order__number", number)], self.limit);
            let first = self.get_list::<wire::Item>(&token).await?;
            self.collect_items(token, first, &wanted, &mut found, rejects)
                .await?;
        }
        Ok(found)
    }

    /// Reads the item list from `first` to its end, keeping the items of `wanted` orders.
    async fn collect_items(
        &self,
        mut token: String,
        mut list: Listed<wire::Item>,
        wanted: &HashSet<&str>,
        found: &mut Found,
        rejects: &mut Vec<RejectRecord>,
    ) -> Result<(), HttpError> {
        loop {
            let position = self.position(&token);
            let had_records = !list.records.is_empty();
            for (i, rec) in list.records.into_iter().enumerate() {
                match rec.read {
                    Ok(item) => {
                        if wanted.contains(item.order.as_str()) {
                            found
                                .entry(item.order.clone())
                                .or_default()
                                .push(RawItem { item, raw: rec.raw });
                        }
                    }
                    Err(reason) => {
                        // A span query also returns other orders' items: their bad records are
                        // reported by the page those orders are on.
                        let ours = serde_json::from_str::<wire::ItemOrder>(&rec.raw)
                            .map_or(true, |r| wanted.contains(r.order.as_str()));
                        if ours {
                            rejects.push(self.reject(&position, i, reason, rec.raw, None));
                        }
                    }
                }
            }
            match self.next_token(&token, list.next, had_records) {
                Some(next) => {
                    list = self.get_list::<wire::Item>(&next).await?;
                    token = next;
                }
                None => return Ok(()),
            }
        }
    }
}

impl Source for Akinon {
    fn first_token(&self, window: &Window) -> String {
        // No upper bound: an order updated during the pass would leave a bounded set and shift
        // the pages after it, hiding an order at a page edge. Unbounded, the set only grows,
        // which can show an order twice but never hides one.
        list_token(
            ORDERS,
            &[("updated_at__gte", floor_time(window.from))],
            self.limit,
        )
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        if token.starts_with(ORDERS) {
            self.orders_page(ctx, token).await
        } else if token.starts_with(ITEMS) {
            self.items_page(ctx, token).await
        } else {
            Err(HttpError::NotSent {
                reason: format!(
                    "unrecognised akinon checkpoint {token:?}; run `ordersync sync --full` once"
                ),
            })
        }
    }

    fn reconcile(&self) -> Reconcile {
        Reconcile::NotNeeded
    }

    fn listing(&self, token: &str) -> String {
        if token.starts_with(ITEMS) {
            ITEMS
        } else {
            ORDERS
        }
        .to_string()
    }

    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        // The engine asks only kinds that reconcile by id; Akinon's incremental filter sees
        // every change, and its order list cannot be filtered by id anyway.
        Err(HttpError::NotSent {
            reason: format!(
                "akinon cannot re-read orders by id ({} asked): its order list filters by number \
                 only, and its updated_at filter makes re-reading unnecessary",
                ids.len()
            ),
        })
    }
}

/// `Bearer <token>`, marked sensitive, the token registered with the redactor.
fn bearer_header(http: &HttpClient, token: &str) -> Result<HeaderValue, ConnectorError> {
    http.redactor().add(token);
    let mut h = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectorError::Config("the Akinon token is not valid header text".into()))?;
    h.set_sensitive(true);
    Ok(h)
}

fn read_list<T: DeserializeOwned>(resp: &Response) -> Result<Listed<T>, String> {
    let (text, repaired) = super::lenient::body_text(&resp.body);
    let page: wire::ListPage<'_> =
        serde_json::from_str(&text).map_err(|e| format!("not a list page: {e}"))?;
    Ok(Listed {
        count: page.count,
        next: page.next,
        records: page
            .results
            .iter()
            .map(|r| Record {
                raw: r.get().to_string(),
                read: super::lenient::read_record::<T>(repaired, r.get()),
            })
            .collect(),
    })
}

/// `list?filters…&page=1&limit=…`, encoded as a form (`:` as `%3A`, as Django's own links do).
fn list_token(list: &str, filters: &[(&str, String)], limit: u32) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters {
        q.append_pair(k, v);
    }
    q.append_pair("page", "1");
    q.append_pair("limit", &limit.to_string());
    format!("{list}?{}", q.finish())
}

/// UTC with `Z`, whole seconds, rounded down (a `__gte` bound may only widen).
fn floor_time(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(0).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// UTC with `Z`, whole seconds, rounded up (a `__lte` bound may only widen).
fn ceil_time(t: DateTime<Utc>) -> String {
    let down = t.trunc_subsecs(0);
    let up = if down == t {
        down
    } else {
        down + TimeDelta::seconds(1)
    };
    up.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bounds_are_whole_utc_seconds_that_only_widen_the_span() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 7).unwrap() + TimeDelta::microseconds(250);
        assert_eq!(floor_time(t), "2024-05-01T10:00:07Z");
        assert_eq!(ceil_time(t), "2024-05-01T10:00:08Z");
        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 7).unwrap();
        assert_eq!(ceil_time(whole), "2024-05-01T10:00:07Z");
    }

    #[test]
    fn tokens_name_their_list_and_encode_the_query_like_django() {
        assert_eq!(
            list_token(
                ORDERS,
                &[("updated_at__gte", "2024-05-01T10:00:07Z".into())],
                50
            ),
            "orders/?updated_at__gte=2024-05-01T10%3A00%3A07Z&page=1&limit=50"
        );
        assert_eq!(
            list_token(ITEMS, &[("order__number", "A 1&2".into())], 100),
            "order-items/?order__number=A+1%262&page=1&limit=100"
        );
    }
}
