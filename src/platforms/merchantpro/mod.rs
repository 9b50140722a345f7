//! MerchantPro (`kind = "merchantpro"`): `GET /api/v2/orders` paged with `start`/`limit`,
//! following `meta.links.next`; `created_after` is the only time filter (a date, on creation),
//! so open orders are re-read by id (`ids=`) in reconcile passes. Basic auth; a 401/403 stops
//! the run at once, since repeated bad attempts lock the account (docs/platforms/merchantpro.md).

pub mod map;
pub mod push;
pub mod wire;

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{FixedOffset, TimeDelta};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tracing::warn;

use super::lenient;
use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::PlatformConfig;
use crate::config::{AuthKey, Kind, KindSpec};
use crate::http::{HttpClient, HttpError, Response};
use crate::model::Status;

/// The kind as the rest of the daemon sees it.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "merchantpro",
        auth_keys: &[AuthKey::secret("api_key"), AuthKey::secret("api_secret")],
        auth_requirements: &[&["api_key", "api_secret"]],
        sees_updates: false,
        push_actions: push::PUSH_ACTIONS,
        described: false,
    }),
    connect: |cfg, http| Ok(super::Connector::read_write(MerchantPro::new(cfg, http)?)),
    check_push_params: None,
};

/// The document's maximum page size.
pub const MAX_LIMIT: u32 = 100;
const LIST_PATH: &str = "/api/v2/orders";

pub struct MerchantPro {
    http: HttpClient,
    base: Url,
    authorization: HeaderValue,
    limit: u32,
    status_map: BTreeMap<String, Status>,
    zone: FixedOffset,
    /// Whether the platform was seen capping its pages (warned once per process).
    capped: std::sync::atomic::AtomicBool,
}

impl MerchantPro {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<MerchantPro, ConnectorError> {
        let key = |k: &str| {
            cfg.auth
                .get(k)
                .map(|s| s.expose().to_string())
                .ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "platforms.{}.auth.{k} is missing in {}",
                        cfg.name,
                        cfg.file.display()
                    ))
                })
        };
        let creds = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            key("api_key")?,
            key("api_secret")?
        ));
        http.redactor().add(&creds);
        let mut authorization = HeaderValue::from_str(&format!("Basic {creds}"))
            .map_err(|_| ConnectorError::Config("credentials are not valid header text".into()))?;
        authorization.set_sensitive(true);
        Ok(MerchantPro {
            http,
            base: cfg.base_url.clone(),
            authorization,
            limit: cfg.page_size.clamp(1, MAX_LIMIT),
            status_map: cfg.status_map.clone(),
            zone: cfg
                .timezone
                .unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
            capped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    async fn get_page(
        &self,
        path_and_query: &str,
        window: Option<&Window>,
    ) -> Result<Page, HttpError> {
        let url = self
            .base
            .join(path_and_query)
            .map_err(|e| HttpError::NotSent {
                reason: format!("bad page link {path_and_query:?}: {e}"),
            })?;
        // A next link naming another host would carry our Basic credentials there.
        if url.origin() != self.base.origin() {
            return Err(HttpError::NotSent {
                reason: format!(
                    "page link {path_and_query:?} leaves {}; not following it",
                    self.base
                ),
            });
        }
        let page = self
            .http
            .execute(
                path_and_query,
                |c| {
                    c.get(url.clone())
                        .header(AUTHORIZATION, self.authorization.clone())
                        .header(ACCEPT, "application/json")
                        .header(CONTENT_TYPE, "application/json")
                },
                |resp| self.read_page(path_and_query, resp),
            )
            .await?;
        let mut page = page;
        self.check_paging(path_and_query, &mut page)?;
        // The listing is sorted by creation date, so once a page reaches past the frozen upper
        // bound every later page would too: orders created during the pass belong to the next.
        if let Some(w) = window
            && page
                .orders
                .last()
                .and_then(|o| o.order.placed_at)
                .is_some_and(|t| t > w.to)
        {
            page.next = None;
        }
        if page.next.as_deref() == Some(path_and_query) {
            warn!(platform = %self.http.platform(), link = path_and_query,
                  "the platform's next link points at the same page; ending the pass here");
            page.next = None;
        }
        Ok(page)
    }

    /// Holds the platform to its own paging before the engine stores `page.next` as the pass's
    /// resume point. A next link to another host is refused here, on the page that carries it,
    /// so it is never saved (a saved one would fail every later run before sending anything).
    /// A page shorter than `limit` that still links onwards (or falls short of the platform's
    /// own total) means the platform caps its pages below what we ask while stepping its links
    /// by what we asked: following them would skip the orders in between, so the next page
    /// starts after the records that did come. A listing that runs dry before the total the
    /// platform itself reports fails the pass.
    fn check_paging(&self, current: &str, page: &mut Page) -> Result<(), HttpError> {
        let platform = self.http.platform();
        if let Some(next) = &page.next {
            let leaves = self
                .base
                .join(next)
                .map_or(true, |u| u.origin() != self.base.origin());
            if leaves {
                return Err(HttpError::NotSent {
                    reason: format!(
                        "the platform's next page link {next:?} leaves {} (it would carry the \
                         credentials to another host), so the pass stops before it; orders \
                         past this page are read once the platform links to its own host",
                        self.base
                    ),
                });
            }
        }
        let (Some(start), Some(limit)) = (
            query_number(current, "start"),
            query_number(current, "limit"),
        ) else {
            return Ok(());
        };
        // Never more than asked for: a page holding one record twice would otherwise step
        // past the order after it.
        let records = ((page.orders.len() + page.rejects.len()) as u64).min(limit);
        let more_by_total = page.total.is_some_and(|t| start + records < t);
        let short = records < limit;
        let links_on = page.next.is_some();
        if records > 0 && ((short && links_on) || (!links_on && more_by_total)) {
            if short && !self.capped.swap(true, std::sync::atomic::Ordering::Relaxed) {
                warn!(platform = %platform, asked = limit, answered = records,
                      "the platform answers fewer orders per page than asked, while its links \
                       step by what was asked: reading on from the orders that came instead of \
                       following its links; set page_size = {records} for this platform to \
                       match");
            }
            page.next = Some(with_query_number(current, "start", start + records));
        } else if records == 0
            && let Some(total) = page.total
            && start < total
        {
            return Err(HttpError::Inconsistent {
                reason: format!(
                    "the platform's listing ended at {start} orders though it reports \
                     meta.count.total = {total}: {} orders would be missing, so the pass fails \
                     instead of ending",
                    total - start
                ),
            });
        }
        Ok(())
    }

    fn read_page(&self, position: &str, resp: &Response) -> Result<Page, String> {
        let (text, repaired) = lenient::body_text(&resp.body);
        let list: wire::ListPage<'_> =
            serde_json::from_str(&text).map_err(|e| format!("not an order list: {e}"))?;
        let mut page = Page {
            orders: Vec::with_capacity(list.data.len()),
            ..Page::default()
        };
        super::map_records(
            &self.http,
            position,
            repaired,
            list.data.iter().copied(),
            "/id",
            |w: wire::Order| {
                map::to_canonical(w, &self.status_map, self.zone).map_err(|e| e.to_string())
            },
            &mut page,
        );
        let meta = list.meta.unwrap_or_default();
        page.total = meta.count.and_then(|c| c.total);
        page.next = meta
            .links
            .and_then(|l| l.next)
            .filter(|n| !n.is_empty() && !list.data.is_empty());
        Ok(page)
    }
}

/// The number in `name=…` of a page link's query.
fn query_number(link: &str, name: &str) -> Option<u64> {
    let (_, query) = link.split_once('?')?;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// `link` with `name=value` in place of the query's own `name=…`.
fn with_query_number(link: &str, name: &str, value: u64) -> String {
    let Some((path, query)) = link.split_once('?') else {
        return format!("{link}?{name}={value}");
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k == name => format!("{name}={value}"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

impl Source for MerchantPro {
    fn first_token(&self, window: &Window) -> String {
        // `created_after` takes a date in the shop's own zone and the document does not say
        // whether the day itself is included: starting a day early covers both readings and
        // every zone; the overlap costs one day of unchanged re-reads.
        let day = (window.from - TimeDelta::days(1)).format("%Y-%m-%d");
        format!(
            "{LIST_PATH}?start=0&limit={}&include=line_items&sort=date_created&created_after={day}",
            self.limit
        )
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        self.get_page(token, Some(&ctx.window)).await
    }

    fn check_token(&self, token: &str) -> Result<(), HttpError> {
        match self.base.join(token) {
            Ok(u) if u.origin() == self.base.origin() => Ok(()),
            _ => Err(HttpError::NotSent {
                reason: format!("page link {token:?} does not lead to {}", self.base),
            }),
        }
    }

    fn reconcile(&self) -> Reconcile {
        Reconcile::ByIds {
            batch: self.limit as usize,
        }
    }

    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        let mut token = Some(format!(
            "{LIST_PATH}?start=0&limit={}&include=line_items&ids={}",
            self.limit,
            ids.join(",")
        ));
        let mut all = Page::default();
        while let Some(t) = token {
            let page = self.get_page(&t, None).await?;
            all.orders.extend(page.orders);
            all.rejects.extend(page.rejects);
            all.total = page.total;
            token = page.next;
        }
        Ok(all)
    }
}
