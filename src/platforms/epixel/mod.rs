//! Epixel MLM commerce (`kind = "epixel"`): `GET …/commerce/all-orders/` paged with `limit` and
//! `offset` while a page is full, with no filter at all, so every pass scans the whole list and
//! finds changes by `modified`; the lines of an order come from `GET …/commerce/order-details/`,
//! read only for orders that are new or whose `modified` (or status) moved, and for every order
//! in an exhaustive pass (`verify`), which trusts nothing stored. Every request carries `apikey`
//! and `Authorization: Bearer`; the token is configured or obtained from `POST …/user/login/`,
//! and obtained again once when the platform stops accepting it. Read-only: no push.

pub mod map;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use chrono::FixedOffset;
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::{debug, info, warn};

use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::PlatformConfig;
use crate::config::{AuthKey, Kind, KindSpec};
use crate::http::{HttpClient, HttpError, Response};
use crate::model::Status;
use crate::store::{Incoming, RejectRecord, Store};

/// The kind as the rest of the daemon sees it.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "epixel",
        auth_keys: &[
            AuthKey::secret("api_key"),
            AuthKey::secret("token"),
            AuthKey::public("username"),
            AuthKey::secret("password"),
        ],
        auth_requirements: &[&["api_key", "token"], &["api_key", "username", "password"]],
        sees_updates: false,
        push_actions: &[],
        described: false,
    }),
    connect: |cfg, http| Ok(super::Connector::read_only(Epixel::new(cfg, http)?)),
    check_push_params: None,
};

/// The document gives no maximum for `limit`; 100 is the largest page the platform is known to
/// serve whole, and the simulator refuses more.
pub const MAX_LIMIT: u32 = 100;
/// Details requests in flight at once for one page. Not list requests (docs/contract.md §6
/// allows one at a time); the rate limit still spaces them, this only overlaps their latency.
const DETAILS_CONCURRENCY: usize = 4;
const LIST_PATH: &str = "commerce/all-orders/";
const DETAILS_PATH: &str = "commerce/order-details/";
const LOGIN_PATH: &str = "user/login/";
const APIKEY: HeaderName = HeaderName::from_static("apikey");

/// A configured Epixel store, ready to be driven.
pub struct Epixel {
    http: HttpClient,
    /// `base_url` + `api_prefix`, ending in `/`: every path here is relative to it.
    base: Url,
    api_key: HeaderValue,
    limit: u32,
    status_map: BTreeMap<String, Status>,
    zone: FixedOffset,
    /// What changes while running, in one allocation: `Connector` holds every kind inline, and
    /// this is the bulky part.
    session: Box<Session>,
}

/// The credentials and what a run learns: the bearer in use and the previous page's raws.
struct Session {
    login: Option<Login>,
    token: RwLock<Token>,
    /// Serializes logins, so requests refused together log in once between them.
    login_lock: tokio::sync::Mutex<()>,
    /// The raws of the previous page's orders. The engine fetches a page while the one before
    /// commits, and an order the offset paging shows again at the top of the next page (a new
    /// order pushed it down) is not in the store yet: this spares its details a second read.
    recent: Mutex<HashMap<String, String>>,
}

struct Login {
    username: String,
    password: String,
}

/// The bearer in use; `generation` counts logins, so a request refused with an old token knows
/// whether someone else has already logged in again.
struct Token {
    bearer: Option<HeaderValue>,
    generation: u64,
}

/// A list record that was read, with its bytes as received.
struct Listed {
    order: wire::Order,
    raw: String,
}

/// What a list request yielded: its records in order, read or rejected, and how many there were.
struct ListRead {
    records: Vec<Result<Listed, RejectRecord>>,
    count: usize,
}

#[derive(Deserialize)]
struct LoginAnswer {
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    refresh: Option<String>,
    #[serde(default)]
    data: Option<Box<LoginAnswer>>,
}

impl Epixel {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<Epixel, ConnectorError> {
        let missing = |k: &str| {
            ConnectorError::Config(format!(
                "platforms.{}.auth.{k} is missing in {}",
                cfg.name,
                cfg.file.display()
            ))
        };
        let get = |k: &str| cfg.auth.get(k).map(|s| s.expose().to_string());
        let redactor = http.redactor();
        let api_key = get("api_key").ok_or_else(|| missing("api_key"))?;
        redactor.add(&api_key);
        let api_key = sensitive(&api_key)?;
        let bearer = match get("token") {
            Some(t) => {
                redactor.add(&t);
                Some(sensitive(&format!("Bearer {t}"))?)
            }
            None => None,
        };
        let login = match (get("username"), get("password")) {
            (Some(username), Some(password)) => {
                redactor.add(&password);
                Some(Login { username, password })
            }
            _ => None,
        };
        if bearer.is_none() && login.is_none() {
            return Err(missing("token"));
        }
        let mut base = cfg.base_url.clone();
        let path = format!(
            "{}{}/",
            base.path().trim_end_matches('/'),
            cfg.api_prefix.as_deref().unwrap_or("")
        );
        base.set_path(&path);
        Ok(Epixel {
            http,
            base,
            api_key,
            session: Box::new(Session {
                login,
                token: RwLock::new(Token {
                    bearer,
                    generation: 0,
                }),
                login_lock: tokio::sync::Mutex::new(()),
                recent: Mutex::new(HashMap::new()),
            }),
            limit: cfg.page_size.clamp(1, MAX_LIMIT),
            status_map: cfg.status_map.clone(),
            zone: cfg
                .timezone
                .unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
        })
    }

    fn url(&self, path_and_query: &str) -> Result<Url, HttpError> {
        self.base
            .join(path_and_query)
            .map_err(|e| HttpError::NotSent {
                reason: format!("bad request path {path_and_query:?}: {e}"),
            })
    }

    fn current_token(&self) -> (Option<HeaderValue>, u64) {
        let t = self.session.token.read().unwrap_or_else(|e| e.into_inner());
        (t.bearer.clone(), t.generation)
    }

    /// A bearer to send: the one in use, or a fresh login's when there is none yet.
    async fn bearer(&self) -> Result<(HeaderValue, u64), HttpError> {
        match self.current_token() {
            (Some(b), generation) => Ok((b, generation)),
            (None, generation) => self.log_in_again(generation).await,
        }
    }

    /// Logs in, unless another request already did since `seen` (the generation its refused
    /// token had). Without username and password there is nothing to retry with.
    async fn log_in_again(&self, seen: u64) -> Result<(HeaderValue, u64), HttpError> {
        let _one_at_a_time = self.session.login_lock.lock().await;
        if let (Some(b), generation) = self.current_token()
            && generation != seen
        {
            return Ok((b, generation));
        }
        let Some(login) = &self.session.login else {
            return Err(HttpError::Unauthorized {
                status: 401,
                message: "the configured token was refused and no username/password is \
                          configured to obtain another"
                    .into(),
            });
        };
        let url = self.url(LOGIN_PATH)?;
        let body =
            serde_json::json!({"username": login.username, "password": login.password}).to_string();
        let (access, refresh) = self
            .http
            .execute(
                &format!("POST {LOGIN_PATH}"),
                |c| {
                    c.post(url.clone())
                        .header(APIKEY, self.api_key.clone())
                        .header(ACCEPT, "application/json")
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                |resp| read_login(&resp.body),
            )
            .await?;
        let redactor = self.http.redactor();
        redactor.add(&access);
        if let Some(r) = &refresh {
            redactor.add(r);
        }
        let bearer = sensitive(&format!("Bearer {access}"))
            .map_err(|_| malformed("the login answered an access token that is not header text"))?;
        let mut t = self
            .session
            .token
            .write()
            .unwrap_or_else(|e| e.into_inner());
        t.bearer = Some(bearer.clone());
        t.generation += 1;
        info!(platform = %self.http.platform(), "logged in; access token obtained");
        Ok((bearer, t.generation))
    }

    /// Sends an authenticated request (through the shared retry loop); a 401/403 is answered
    /// by logging in again once, when username and password allow it.
    async fn send<T>(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Sync,
        parse: impl Fn(&Response) -> Result<T, String> + Sync,
    ) -> Result<T, HttpError> {
        let (bearer, generation) = self.bearer().await?;
        let (build, parse) = (&build, &parse);
        let attempt = |bearer: HeaderValue| {
            self.http.execute(
                what,
                move |c| {
                    build(c)
                        .header(APIKEY, self.api_key.clone())
                        .header(AUTHORIZATION, bearer.clone())
                },
                parse,
            )
        };
        match attempt(bearer).await {
            Err(HttpError::Unauthorized { .. }) if self.session.login.is_some() => {
                warn!(platform = %self.http.platform(), request = what,
                      "the access token was refused; logging in again");
                let (bearer, _) = self.log_in_again(generation).await?;
                attempt(bearer).await
            }
            other => other,
        }
    }

    /// One list request, every record read on its own.
    async fn list(&self, limit: u32, offset: u64) -> Result<ListRead, HttpError> {
        let path = format!("{LIST_PATH}?limit={limit}&offset={offset}");
        let url = self.url(&path)?;
        let position = format!("GET {}", path_and_query(&url));
        self.send(
            &format!("GET {path}"),
            |c| c.get(url.clone()).header(ACCEPT, "application/json"),
            |resp| self.read_list(&position, resp),
        )
        .await
    }

    fn read_list(&self, position: &str, resp: &Response) -> Result<ListRead, String> {
        let (text, repaired) = super::lenient::body_text(&resp.body);
        let list: wire::ListPage<'_> =
            serde_json::from_str(&text).map_err(|e| format!("not an order list: {e}"))?;
        let records = list
            .data
            .orders
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                // Times are checked here, before the order's details are asked for.
                let read = super::lenient::read_record::<wire::Order>(repaired, raw.get())
                    .and_then(|o| match map::times(&o, self.zone) {
                        Ok(_) => Ok(o),
                        Err(bad) => Err(bad.to_string()),
                    });
                match read {
                    Ok(order) => Ok(Listed {
                        order,
                        raw: raw.get().to_owned(),
                    }),
                    Err(reason) => Err(RejectRecord {
                        position: format!("{position} record {i}"),
                        reason,
                        raw: raw.get().to_owned(),
                        order_id: super::lenient::record_id(raw.get(), "/id"),
                    }),
                }
            })
            .collect();
        Ok(ListRead {
            records,
            count: list.data.orders.len(),
        })
    }

    fn details_url(&self, order_number: &str) -> Result<Url, HttpError> {
        let mut url = self.url(DETAILS_PATH)?;
        url.query_pairs_mut()
            .append_pair("order_number", order_number);
        Ok(url)
    }

    /// One order's details: the `data` list as received. `None` when the platform refused the
    /// request for this order (a 4xx): the order is then stored without lines, and its details
    /// are asked for again next pass.
    async fn details(&self, order_number: &str) -> Result<Option<String>, HttpError> {
        let url = self.details_url(order_number)?;
        let what = format!("GET {DETAILS_PATH}?order_number={order_number}");
        let result = self
            .send(
                &what,
                |c| c.get(url.clone()).header(ACCEPT, "application/json"),
                |resp| {
                    let page: wire::DetailsPage<'_> = serde_json::from_slice(&resp.body)
                        .map_err(|e| format!("not order details: {e}"))?;
                    if !page.data.get().starts_with('[') {
                        return Err("order details: `data` is not a list".into());
                    }
                    Ok(page.data.get().to_owned())
                },
            )
            .await;
        match result {
            Ok(data) => Ok(Some(data)),
            Err(HttpError::Permanent { status, message }) => {
                warn!(platform = %self.http.platform(), order = order_number, status, error = %message,
                      "order details refused; the order is stored without its lines for now");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Turns read list records into orders: details fetched for the ones `previous` (id → the
    /// raw stored or last emitted) does not already hold at the same `modified`, reused for the
    /// rest, so an unchanged order yields the very raw it was stored with.
    async fn complete(
        &self,
        records: Vec<Listed>,
        previous: &HashMap<String, String>,
        page: &mut Page,
    ) -> Result<(), HttpError> {
        let mut details: Vec<Option<String>> = Vec::with_capacity(records.len());
        let mut wanted = Vec::new();
        for (i, r) in records.iter().enumerate() {
            // `modified` says whether the order changed; the status is compared too, because
            // the lines carry the order's status and a back office may move it without touching
            // `modified`. Without a `modified` there is no telling: read the details.
            let reuse = previous.get(&r.order.id).and_then(|raw| {
                let stored: wire::StoredRaw<'_> = serde_json::from_str(raw).ok()?;
                let marks = stored.marks()?;
                let same = r.order.modified.is_some()
                    && marks.modified == r.order.modified
                    && marks.status == r.order.status;
                same.then(|| stored.details().map(str::to_owned)).flatten()
            });
            if reuse.is_none() {
                wanted.push(i);
            }
            details.push(reuse);
        }
        debug!(platform = %self.http.platform(), orders = records.len(), details = wanted.len(),
               "reading details of new and changed orders");
        let fetched: Vec<(usize, Option<String>)> =
            futures_util::stream::iter(wanted.into_iter().map(|i| {
                let number = records[i].order.order_number.as_str();
                async move { self.details(number).await.map(|d| (i, d)) }
            }))
            .buffer_unordered(DETAILS_CONCURRENCY)
            .try_collect()
            .await?;
        for (i, d) in fetched {
            details[i] = d;
        }
        for (r, d) in records.into_iter().zip(details) {
            let data = d.as_deref();
            let raw = wire::stored_raw(&r.raw, data);
            let items = match data.map(wire::parse_items) {
                Some(Ok(items)) => Some(items),
                Some(Err(reason)) => {
                    let url = self.details_url(&r.order.order_number)?;
                    let position = format!("GET {}", path_and_query(&url));
                    self.reject(
                        page,
                        RejectRecord {
                            position,
                            reason,
                            raw,
                            order_id: Some(r.order.id.clone()),
                        },
                    );
                    continue;
                }
                None => None,
            };
            let id = r.order.id.clone();
            match map::to_canonical(r.order, items, &self.status_map, self.zone) {
                Ok(order) => page.orders.push(Incoming::new(order, raw)),
                // Not reached: the times were checked when the list was read.
                Err(bad) => self.reject(
                    page,
                    RejectRecord {
                        position: format!("order {id}"),
                        reason: bad.to_string(),
                        raw,
                        order_id: Some(id),
                    },
                ),
            }
        }
        Ok(())
    }

    /// `r` as read, before redaction: [`super::reject`] hides the secrets.
    fn reject(&self, page: &mut Page, r: RejectRecord) {
        page.rejects.push(super::reject(
            &self.http,
            &r.position,
            &r.reason,
            &r.raw,
            r.order_id,
        ));
    }

    /// The list records of one page, first occurrence of each id only, with the rejects put
    /// aside.
    fn unique(&self, read: ListRead, page: &mut Page) -> Vec<Listed> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(read.count);
        for r in read.records {
            match r {
                Ok(l) if seen.insert(l.order.id.clone()) => out.push(l),
                Ok(l) => debug!(platform = %self.http.platform(), order = %l.order.id,
                                "order listed twice on one page; keeping the first"),
                Err(rej) => self.reject(page, rej),
            }
        }
        out
    }
}

impl Source for Epixel {
    /// No filter exists, so the window plays no part: every pass reads the whole list.
    fn first_token(&self, _window: &Window) -> String {
        token(self.limit, 0)
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token_text: &str) -> Result<Page, HttpError> {
        let (limit, offset) = parse_token(token_text)?;
        let read = self.list(limit, offset).await?;
        let mut page = Page::default();
        // A full page may have more behind it; the list has no total to tell.
        if read.count >= limit as usize {
            page.next = Some(token(limit, offset + u64::from(limit)));
        }
        let records = self.unique(read, &mut page);
        let mut previous: HashMap<String, String> = HashMap::new();
        let mut unknown = Vec::new();
        {
            let mut recent = self
                .session
                .recent
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // What the last page of an earlier pass emitted is no reading of this one: an
            // exhaustive pass reads every order's details afresh.
            if ctx.exhaustive && offset == 0 {
                recent.clear();
            }
            // A platform that ignores `offset` (or `limit`) answers every page with the same
            // full page: without this the pass would never end. Real paging repeats at most
            // the few orders placed since the previous page.
            if offset > 0
                && page.next.is_some()
                && !records.is_empty()
                && records.iter().all(|r| recent.contains_key(&r.order.id))
            {
                warn!(platform = %self.http.platform(), offset,
                      "the list answered the previous page again (is `offset` ignored?); ending the pass here");
                page.next = None;
            }
            for r in &records {
                match recent.get(&r.order.id) {
                    Some(raw) => {
                        previous.insert(r.order.id.clone(), raw.clone());
                    }
                    None => unknown.push(r.order.id.clone()),
                }
            }
        }
        if !ctx.exhaustive {
            previous.extend(stored_raws(ctx.store, ctx.platform, unknown).await?);
        }
        self.complete(records, &previous, &mut page).await?;
        // Only the next page of this listing reads them. After its last page nothing does: the
        // next pass finds these orders in the store. Kept, the last page's raws stayed with
        // every platform between passes and grew with the shop's new orders until the page
        // filled (a page's raws per platform: +0.7 MiB a minute for 60 platforms in the scale
        // benchmark).
        *self
            .session
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = if page.next.is_some() {
            page.orders
                .iter()
                .map(|o| (o.order.order_id.clone(), o.raw.clone()))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(page)
    }

    /// Every pass scans the whole list, so every change is seen without one.
    fn reconcile(&self) -> Reconcile {
        Reconcile::NotNeeded
    }

    /// There is no by-id read: scans the list for the given ids and reads their details.
    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut all = Page::default();
        let mut offset = 0;
        loop {
            let read = self.list(self.limit, offset).await?;
            let full = read.count >= self.limit as usize;
            let records: Vec<Listed> = self
                .unique(read, &mut all)
                .into_iter()
                .filter(|r| wanted.contains(r.order.id.as_str()))
                .collect();
            self.complete(records, &HashMap::new(), &mut all).await?;
            if !full {
                break;
            }
            offset += u64::from(self.limit);
        }
        let mut seen = HashSet::new();
        all.orders.retain(|o| seen.insert(o.order.order_id.clone()));
        Ok(all)
    }
}

/// The page token: the list request's own query, so a resumed pass asks for exactly the page it
/// had not committed, whatever `page_size` says by then.
fn token(limit: u32, offset: u64) -> String {
    format!("limit={limit}&offset={offset}")
}

fn parse_token(t: &str) -> Result<(u32, u64), HttpError> {
    let bad = || HttpError::NotSent {
        reason: format!("not an Epixel page token: {t:?}"),
    };
    let mut limit = None;
    let mut offset = None;
    for pair in t.split('&') {
        match pair.split_once('=') {
            Some(("limit", v)) => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
            }
            Some(("offset", v)) => offset = v.parse::<u64>().ok(),
            _ => return Err(bad()),
        }
    }
    Ok((limit.ok_or_else(bad)?, offset.ok_or_else(bad)?))
}

/// The stored raws of these orders, by id.
async fn stored_raws(
    store: &Store,
    platform: &str,
    ids: Vec<String>,
) -> Result<HashMap<String, String>, HttpError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    store
        .order_raws(platform, ids)
        .await
        .map_err(|e| HttpError::Transient {
            reason: format!("cannot read the stored orders to compare with: {e}"),
        })
}

fn read_login(body: &[u8]) -> Result<(String, Option<String>), String> {
    let answer: LoginAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not a login answer: {e}"))?;
    // The notes show `{"refresh","access"}`; the API's other answers wrap theirs in `data`.
    let answer = match answer {
        LoginAnswer {
            access: None,
            data: Some(inner),
            ..
        } => *inner,
        a => a,
    };
    match answer.access.filter(|a| !a.trim().is_empty()) {
        Some(access) => Ok((access.trim().to_owned(), answer.refresh)),
        None => Err("the login answer holds no access token".into()),
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, ConnectorError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| ConnectorError::Config("a credential is not valid header text".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

fn malformed(reason: &str) -> HttpError {
    HttpError::Transient {
        reason: format!("malformed response: {reason}"),
    }
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_carry_their_own_limit_and_offset() {
        assert_eq!(parse_token(&token(100, 300)).unwrap(), (100, 300));
        for bad in [
            "",
            "offset=1",
            "limit=100",
            "limit=0&offset=0",
            "limit=101&offset=0",
            "start=0",
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    /// A client of a server at `router`, with the given page size, and a store to consult.
    async fn client(
        router: axum::Router,
        page_size: u32,
    ) -> (Epixel, Store, ordersync_sim::RunningSim, tempfile::TempDir) {
        let running = ordersync_sim::serve(router).await.unwrap();
        let url = Url::parse(&running.base_url()).unwrap();
        let mut cfg = PlatformConfig::new("epx", crate::platforms::epixel::DESCRIPTOR.kind, url);
        cfg.page_size = page_size;
        cfg.auth.insert("api_key", "the-key");
        cfg.auth.insert("token", "the-token");
        let http = HttpClient::new(
            crate::http::ClientOptions {
                platform: "epx".into(),
                timeout: std::time::Duration::from_secs(5),
                max_requests_per_second: 0.0,
                retry: crate::http::RequestRetry::default(),
            },
            crate::http::Redactor::default(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.db")).unwrap();
        (Epixel::new(&cfg, http).unwrap(), store, running, dir)
    }

    #[tokio::test]
    async fn a_platform_that_ignores_offset_ends_the_pass_instead_of_looping() {
        use axum::routing::get;
        const PAGE: &str = r#"{"status_code":200,"errors":{},"data":{"orders":[
            {"id":1,"order_number":11,"status":"Pending","modified":"2025-01-01T00:00:00Z"},
            {"id":2,"order_number":12,"status":"Pending","modified":"2025-01-01T00:00:00Z"}],
            "filter_data":{}}}"#;
        const DETAILS: &str = r#"{"status_code":200,"errors":{},"data":[{"id":5,"quantity":1}]}"#;
        let router = axum::Router::new()
            .route("/commerce/all-orders/", get(|| async { PAGE }))
            .route("/commerce/order-details/", get(|| async { DETAILS }));
        let (src, store, _running, _dir) = client(router, 2).await;
        let now = chrono::Utc::now();
        let ctx = PassCtx {
            platform: "epx",
            window: Window { from: now, to: now },
            store: &store,
            exhaustive: false,
        };
        let first = src
            .fetch_page(&ctx, &src.first_token(&ctx.window))
            .await
            .unwrap();
        assert_eq!(first.orders.len(), 2);
        assert_eq!(first.next.as_deref(), Some("limit=2&offset=2"));
        assert_eq!(src.session.recent.lock().unwrap().len(), 2);
        let again = src.fetch_page(&ctx, "limit=2&offset=2").await.unwrap();
        assert_eq!(again.next, None, "the same full page twice ends the pass");
        assert!(
            src.session.recent.lock().unwrap().is_empty(),
            "after the listing's last page no raws are kept until the next pass"
        );
        assert_eq!(
            again.orders.iter().map(|o| &o.raw).collect::<Vec<_>>(),
            first.orders.iter().map(|o| &o.raw).collect::<Vec<_>>(),
            "and the repeat reuses the details it just read"
        );
    }

    #[tokio::test]
    async fn an_exhaustive_pass_reads_details_the_store_already_holds() {
        use axum::routing::get;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        const RECORD: &str =
            r#"{"id":1,"order_number":11,"status":"Pending","modified":"2025-01-01T00:00:00Z"}"#;
        const NOW: &str = r#"[{"id":5,"quantity":2}]"#;
        const STORED: &str = r#"[{"id":5,"quantity":1}]"#;
        let details_read = Arc::new(AtomicUsize::new(0));
        let router = || {
            let count = details_read.clone();
            axum::Router::new()
                .route(
                    "/commerce/all-orders/",
                    get(|| async {
                        format!(
                            r#"{{"status_code":200,"errors":{{}},"data":{{"orders":[{RECORD}],"filter_data":{{}}}}}}"#
                        )
                    }),
                )
                .route(
                    "/commerce/order-details/",
                    get(move || async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        format!(r#"{{"status_code":200,"errors":{{}},"data":{NOW}}}"#)
                    }),
                )
        };
        let (src, store, _running, _dir) = client(router(), 2).await;
        // The order is stored at the same `modified` and status with other lines: only its
        // details say so.
        let first = src
            .fetch_page(
                &PassCtx {
                    platform: "epx",
                    window: Window {
                        from: chrono::Utc::now(),
                        to: chrono::Utc::now(),
                    },
                    store: &store,
                    exhaustive: false,
                },
                &token(2, 0),
            )
            .await
            .unwrap();
        let stale = Incoming::new(
            first.orders[0].order.clone(),
            wire::stored_raw(RECORD, Some(STORED)),
        );
        store
            .apply_page(crate::store::PageWrite {
                platform: "epx".into(),
                orders: vec![stale],
                rejects: Vec::new(),
                checkpoint: None,
            })
            .await
            .unwrap();
        let now = chrono::Utc::now();
        for exhaustive in [false, true] {
            // A client of its own each time: nothing read by an earlier pass to reuse.
            let (src, _other_store, _running, _dir) = client(router(), 2).await;
            let ctx = PassCtx {
                platform: "epx",
                window: Window { from: now, to: now },
                store: &store,
                exhaustive,
            };
            let before = details_read.load(Ordering::SeqCst);
            let page = src.fetch_page(&ctx, &token(2, 0)).await.unwrap();
            let read = details_read.load(Ordering::SeqCst) - before;
            if exhaustive {
                assert_eq!(read, 1, "an exhaustive pass reads the details again");
                assert_eq!(page.orders[0].raw, wire::stored_raw(RECORD, Some(NOW)));
            } else {
                assert_eq!(read, 0, "a sync reuses the stored details");
                assert_eq!(page.orders[0].raw, wire::stored_raw(RECORD, Some(STORED)));
            }
        }
    }

    #[test]
    fn the_login_answer_is_read_bare_or_wrapped() {
        assert_eq!(
            read_login(br#"{"refresh":"r1","access":"a1"}"#).unwrap(),
            ("a1".to_owned(), Some("r1".to_owned()))
        );
        assert_eq!(
            read_login(br#"{"status_code":200,"data":{"access":"a2"}}"#).unwrap(),
            ("a2".to_owned(), None)
        );
        assert!(read_login(br#"{"refresh":"r"}"#).is_err());
        assert!(read_login(b"<html>").is_err());
    }
}
