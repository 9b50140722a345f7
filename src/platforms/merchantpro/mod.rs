//! MerchantPro (`kind = "merchantpro"`): `GET /api/v2/orders` paged with `start`/`limit`,
//! following `meta.links.next`; `created_after` is the only time filter (a date, on creation),
//! so open orders are re-read by id (`ids=`) in reconcile passes. Basic auth; a 401/403 stops
//! the run at once, since repeated bad attempts lock the account (NOTES.md).

pub mod map;
pub mod wire;

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{FixedOffset, TimeDelta};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tracing::warn;

use super::model::Status;
use super::{ConnectorError, Page, PassCtx, Reconcile, Source, Window};
use crate::config::PlatformConfig;
use crate::http::{HttpClient, HttpError, Response};
use crate::store::{Incoming, RejectRecord};

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
}

impl MerchantPro {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<MerchantPro, ConnectorError> {
        let key = |k: &str| {
            cfg.auth.get(k).map(|s| s.expose().to_string()).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "platforms.{}.auth.{k} is missing in {}",
                    cfg.name,
                    cfg.file.display()
                ))
            })
        };
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", key("api_key")?, key("api_secret")?));
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
            zone: cfg.timezone.unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
        })
    }

    async fn get_page(&self, path_and_query: &str, window: Option<&Window>) -> Result<Page, HttpError> {
        let url = self.base.join(path_and_query).map_err(|e| HttpError::Permanent {
            status: 0,
            message: format!("bad page link {path_and_query:?}: {e}"),
        })?;
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

    fn read_page(&self, position: &str, resp: &Response) -> Result<Page, String> {
        let list: wire::ListPage<'_> =
            serde_json::from_slice(&resp.body).map_err(|e| format!("not an order list: {e}"))?;
        let mut page = Page {
            orders: Vec::with_capacity(list.data.len()),
            ..Page::default()
        };
        for (i, raw) in list.data.iter().enumerate() {
            match serde_json::from_str::<wire::Order>(raw.get()) {
                Ok(w) => page.orders.push(Incoming::new(
                    map::to_canonical(w, &self.status_map, self.zone),
                    raw.get().to_string(),
                )),
                Err(e) => {
                    let position = format!("GET {position} record {i}");
                    warn!(platform = %self.http.platform(), position = %position, error = %e,
                          "malformed order record skipped (kept in rejects)");
                    page.rejects.push(RejectRecord {
                        position,
                        reason: e.to_string(),
                        raw: raw.get().to_string(),
                    });
                }
            }
        }
        let meta = list.meta.unwrap_or_default();
        page.total = meta.count.and_then(|c| c.total);
        page.next = meta
            .links
            .and_then(|l| l.next)
            .filter(|n| !n.is_empty() && !list.data.is_empty());
        Ok(page)
    }
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
