//! The declarative kind (`kind = "rest"`): a platform nobody built in, driven by the description
//! in its `[platforms.<name>.api]` table (checked by `config`). This module owns walking the
//! pages of a listing; [`request`] renders the described requests, [`auth`] authenticates them,
//! [`map`] reads records into the canonical order, [`push`] sends status transitions.
//!
//! Everything else (windows and checkpoints, change detection, events, rejects, retries, rate
//! limits, the outbox, reconcile, `verify`) is the engine's, exactly as for the built-in kinds.
//!
//! Page tokens name a position, never a whole request: `page 3`, `offset 200`, `cursor <c>`,
//! `link <url>`, or `first`. The request is rendered from the description and the pass's frozen
//! window when the page is read, so a resumed pass asks for the same page it had not committed.

pub mod auth;
pub mod map;
pub mod push;
pub mod request;

use std::sync::Arc;

use reqwest::Url;
use tracing::warn;

use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::api::{ApiSpec, PageStyle, Pointer, ReconcileSpec, RequestSpec};
use crate::config::{AuthKey, Kind, KindSpec, PlatformConfig};
use crate::http::{HttpClient, HttpError, Response};
use crate::platforms::lenient;
use request::{Bound, Vars};

/// The kind as the rest of the daemon sees it. Which auth keys a platform needs depends on its
/// description, which `config` checks against the keys its auth table sets.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "rest",
        auth_keys: &[
            AuthKey::public("username"),
            AuthKey::secret("password"),
            AuthKey::secret("token"),
            AuthKey::secret("api_key"),
            AuthKey::secret("api_secret"),
            AuthKey::secret("secret"),
            AuthKey::public("client_id"),
            AuthKey::secret("client_secret"),
            AuthKey::public("partner_id"),
            AuthKey::public("user_id"),
            AuthKey::public("email"),
        ],
        auth_requirements: &[&[]],
        sees_updates: false,
        push_actions: &[],
        described: true,
    }),
    connect: |cfg, http| {
        let rest = Rest::new(cfg, http)?;
        Ok(if rest.api.push.is_empty() {
            super::Connector::read_only(rest)
        } else {
            super::Connector::read_write(rest)
        })
    },
    check_push_params: None,
};

pub struct Rest {
    http: HttpClient,
    base: Url,
    api: Arc<ApiSpec>,
    cfg: request::Platform,
    auth: auth::Authenticator,
}

impl Rest {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<Rest, ConnectorError> {
        let api = cfg.api.clone().ok_or_else(|| {
            ConnectorError::Config(format!(
                "platforms.{} has no [api] description in {}",
                cfg.name,
                cfg.file.display()
            ))
        })?;
        let platform = request::Platform::new(cfg, &api);
        let auth = auth::Authenticator::new(&api, &platform, &http)?;
        Ok(Rest {
            http,
            base: cfg.base_url.clone(),
            api,
            cfg: platform,
            auth,
        })
    }

    /// The page size asked for: the platform's `page_size`, capped by the description.
    fn limit(&self) -> u64 {
        u64::from(self.cfg.page_size.min(self.api.pages.max_page_size))
    }

    fn first(&self) -> String {
        match self.api.pages.style {
            PageStyle::Page => format!("page {}", self.api.pages.first_page),
            PageStyle::Offset => "offset 0".to_string(),
            PageStyle::Cursor => "cursor".to_string(),
            PageStyle::NextLink | PageStyle::LinkHeader => "first".to_string(),
        }
    }

    /// The URL of the page `token` names, with `request` rendered for what is not a link.
    fn page_url(
        &self,
        request: &RequestSpec,
        token: &str,
        vars: &Vars<'_>,
    ) -> Result<Url, HttpError> {
        let bad = |why: &str| HttpError::NotSent {
            reason: format!("page token {token:?} {why}"),
        };
        let (what, rest) = token.split_once(' ').unwrap_or((token, ""));
        let mut vars = vars.clone();
        match what {
            "page" => vars.page = Some(rest.parse().map_err(|_| bad("has no page number"))?),
            "offset" => vars.offset = Some(rest.parse().map_err(|_| bad("has no offset"))?),
            "cursor" => vars.cursor = (!rest.is_empty()).then(|| rest.to_string()),
            "first" => {}
            "link" => return self.link(rest),
            _ => return Err(bad("is not one of this version's")),
        }
        request::url(&self.base, request, &vars)
    }

    /// A next link from the platform, relative or absolute, kept on the platform's own host: a
    /// link elsewhere would carry the credentials there.
    fn link(&self, link: &str) -> Result<Url, HttpError> {
        let url = self.base.join(link).map_err(|e| HttpError::NotSent {
            reason: format!("the platform's next page link {link:?} is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(HttpError::NotSent {
                reason: format!(
                    "the platform's next page link {link:?} leaves {} (it would carry the \
                     credentials to another host); not following it",
                    self.base
                ),
            });
        }
        Ok(url)
    }

    /// Reads one page of `request` (the list, or the ids request) at `token`.
    async fn read(
        &self,
        request: &RequestSpec,
        token: &str,
        vars: &Vars<'_>,
    ) -> Result<Page, HttpError> {
        let url = self.page_url(request, token, vars)?;
        let position = request::position(&request.method, &url);
        let body = request::body(request, vars);
        let (mut page, next) = self
            .auth
            .send(
                &self.http,
                &self.cfg,
                false,
                &position,
                &request.method,
                &url,
                body.as_deref(),
                |resp| self.read_page(&position, resp),
            )
            .await?;
        page.next = self.next_token(token, &page, next)?;
        Ok(page)
    }

    /// Reads the records of one answer, and what it says about the next page.
    fn read_page(&self, position: &str, resp: &Response) -> Result<(Page, Next), String> {
        let (text, repaired) = lenient::body_text(&resp.body);
        let body: &serde_json::value::RawValue =
            serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        // The answer's top level is read once for every pointer into it.
        let answer = map::Record::new(body);
        let list = match answer.at(&self.api.records.list) {
            None => Vec::new(),
            Some(raw) => serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw.get())
                .map_err(|_| {
                    format!(
                        "`{}` (records.list) is not a list in the answer",
                        self.api.records.list
                    )
                })?,
        };
        let mut page = Page {
            orders: Vec::with_capacity(list.len()),
            ..Page::default()
        };
        for (i, raw) in list.iter().enumerate() {
            let mapped = match lenient::damaged_record(repaired, raw.get()) {
                Some(reason) => Err(reason),
                None => map::read(&self.api.records, &self.cfg, raw),
            };
            match mapped {
                Ok(order) => page
                    .orders
                    .push(crate::store::Incoming::new(order, raw.get().to_string())),
                Err(e) => {
                    let id = self
                        .api
                        .records
                        .id
                        .pointers
                        .first()
                        .map(Pointer::as_str)
                        .unwrap_or("/id");
                    page.rejects.push(super::reject(
                        &self.http,
                        &format!("{position} record {i}"),
                        &e,
                        raw.get(),
                        lenient::record_id(raw.get(), id),
                    ))
                }
            }
        }
        let pages = &self.api.pages;
        let number = |p: &Option<Pointer>| {
            p.as_ref()
                .and_then(|p| answer.at(p))
                .and_then(|raw| map::count(raw.get()))
        };
        page.total = number(&pages.total);
        let next = Next {
            records: list.len() as u64,
            page_count: number(&pages.page_count),
            link: match pages.style {
                PageStyle::LinkHeader => request::link_next(&resp.headers),
                PageStyle::NextLink | PageStyle::Cursor => pages
                    .next
                    .as_ref()
                    .and_then(|p| answer.at(p))
                    .and_then(|raw| map::text_of(raw.get())),
                _ => None,
            }
            .filter(|l| !l.trim().is_empty()),
        };
        Ok((page, next))
    }

    /// The token of the page after `current`, by the description's stop rules.
    fn next_token(
        &self,
        current: &str,
        page: &Page,
        next: Next,
    ) -> Result<Option<String>, HttpError> {
        let pages = &self.api.pages;
        let limit = self.limit();
        let records = next.records;
        let (what, rest) = current.split_once(' ').unwrap_or((current, ""));
        // Records of the listing before this page, for the total's check.
        let before = match what {
            "page" => rest
                .parse::<u64>()
                .ok()
                .map(|p| (p - pages.first_page.min(p)) * limit),
            "offset" => rest.parse::<u64>().ok(),
            _ => None,
        };
        if records == 0 {
            if let (Some(total), Some(before)) = (page.total, before)
                && before < total
            {
                return Err(HttpError::Inconsistent {
                    reason: format!(
                        "the platform's listing ended at {before} orders though it reports a \
                         total of {total}: {} orders would be missing, so the pass fails instead \
                         of ending",
                        total - before
                    ),
                });
            }
            return Ok(None);
        }
        let more_by_total = match (page.total, before) {
            (Some(total), Some(before)) => Some(before + records < total),
            _ => None,
        };
        let short = records < limit;
        Ok(match pages.style {
            PageStyle::Page => {
                let n: u64 = rest.parse().unwrap_or(pages.first_page);
                if short && more_by_total == Some(true) {
                    return Err(HttpError::Inconsistent {
                        reason: format!(
                            "page {n} holds {records} orders though {limit} were asked and the \
                             platform reports a total of {}: the platform caps its pages, and \
                             numbered pages cannot be read around; set page_size = {records} \
                             for this platform",
                            page.total.unwrap_or_default()
                        ),
                    });
                }
                let last_by_count = next
                    .page_count
                    .is_some_and(|count| n + 1 - pages.first_page >= count);
                let end = (short && pages.short_page_ends)
                    || last_by_count
                    || more_by_total == Some(false);
                (!end).then(|| format!("page {}", n + 1))
            }
            PageStyle::Offset => {
                let offset: u64 = rest.parse().unwrap_or(0);
                // Stepping by the records that came, not by what was asked: a platform that
                // caps its pages below the limit is read on from where it stopped.
                let end = match more_by_total {
                    Some(more) => !more,
                    None => short && pages.short_page_ends,
                };
                (!end).then(|| format!("offset {}", offset + records))
            }
            PageStyle::Cursor => next.link.map(|c| format!("cursor {c}")),
            PageStyle::NextLink | PageStyle::LinkHeader => match next.link {
                Some(link) => {
                    // Refused here, on the page that carries it, so it is never saved as the
                    // pass's resume point.
                    let url = self.link(&link)?;
                    let token = format!("link {url}");
                    if token == current {
                        warn!(platform = %self.http.platform(), link = %url,
                              "the platform's next link points at the same page; ending the pass here");
                        None
                    } else {
                        Some(token)
                    }
                }
                None => None,
            },
        })
    }

    fn vars<'a>(&'a self, window: Option<&Window>) -> Vars<'a> {
        let mut v = Vars::new(&self.cfg);
        v.limit = Some(self.limit());
        if let Some(w) = window {
            let from = w.from
                - chrono::TimeDelta::from_std(self.api.list.window_margin)
                    .unwrap_or(chrono::TimeDelta::zero());
            v.window = Some((
                Bound::start(from, &self.api.list.time_format, self.cfg.list_zone),
                Bound::end(w.to, &self.api.list.time_format, self.cfg.list_zone),
            ));
        }
        v
    }
}

/// What an answer says about the page after it.
struct Next {
    records: u64,
    page_count: Option<u64>,
    /// The next link or cursor, where the style has one.
    link: Option<String>,
}

impl Source for Rest {
    fn first_token(&self, _window: &Window) -> String {
        self.first()
    }

    async fn fetch_page(&self, ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        let vars = self.vars(Some(&ctx.window));
        self.read(&self.api.list.request, token, &vars).await
    }

    fn check_token(&self, token: &str) -> Result<(), HttpError> {
        match token.split_once(' ').unwrap_or((token, "")) {
            ("link", link) => self.link(link).map(|_| ()),
            ("page" | "offset", n) if n.parse::<u64>().is_ok() => Ok(()),
            ("cursor", _) | ("first", "") => Ok(()),
            _ => Err(HttpError::NotSent {
                reason: format!("page token {token:?} is not one of this version's"),
            }),
        }
    }

    fn reconcile(&self) -> Reconcile {
        match &self.api.reconcile {
            ReconcileSpec::NotNeeded => Reconcile::NotNeeded,
            ReconcileSpec::ByIds { batch, .. } => Reconcile::ByIds { batch: *batch },
            ReconcileSpec::Windows => Reconcile::Windows {
                per_page: self.limit() as usize,
            },
        }
    }

    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        let ReconcileSpec::ByIds { request, .. } = &self.api.reconcile else {
            return self.fetch_ids_by_rescan(ids).await;
        };
        let joined = ids.join(",");
        let mut vars = self.vars(None);
        vars.ids = Some(&joined);
        let mut token = Some(self.first());
        let mut all = Page::default();
        while let Some(t) = token {
            let page = self.read(request, &t, &vars).await?;
            all.orders.extend(page.orders);
            all.rejects.extend(page.rejects);
            all.total = page.total;
            token = page.next;
        }
        Ok(all)
    }
}

impl Rest {
    /// Without a request by ids, the listing from `reconcile_horizon` (else `backfill_from`)
    /// is read again and only the asked-for orders kept: the push read-back's last resort.
    async fn fetch_ids_by_rescan(&self, ids: &[String]) -> Result<Page, HttpError> {
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let to = chrono::Utc::now();
        let from = self
            .cfg
            .horizon
            .and_then(|h| chrono::TimeDelta::from_std(h).ok())
            .and_then(|h| to.checked_sub_signed(h))
            .unwrap_or(self.cfg.backfill_from);
        let vars = self.vars(Some(&Window { from, to }));
        let mut token = Some(self.first());
        let mut all = Page::default();
        while let Some(t) = token {
            let page = self.read(&self.api.list.request, &t, &vars).await?;
            all.orders.extend(
                page.orders
                    .into_iter()
                    .filter(|o| wanted.contains(o.order.order_id.as_str())),
            );
            all.rejects.extend(page.rejects);
            token = page.next;
        }
        all.total = Some(all.orders.len() as u64);
        Ok(all)
    }
}
