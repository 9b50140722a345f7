//! SIRCLO / Connexi (`kind = "sirclo"`): `GET /v1/partner/page/{pageNo}?since=…&until=…&perpage=…`
//! signed with `partner_id` + `MAC` (an HMAC of URI and body, docs/platforms/sirclo.md). `since`
//! and `until` filter on the order date, not on the last update, so changes to older orders are
//! found by re-reading narrow windows around the watched orders' dates ([`Reconcile::Windows`]).
//! Owns the request
//! signing, the page tokens and the reading of pages; [`wire`] and [`map`] own the record format,
//! [`push`] the status updates (`PATCH /v1/order`).

pub mod map;
pub mod push;
pub mod wire;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use sha2::Sha256;

use super::lenient;
use super::{ConnectorError, Descriptor, Page, PassCtx, Reconcile, Source, Window};
use crate::config::{AuthKey, Kind, KindSpec};
use crate::config::{PlatformConfig, Secret};
use crate::http::{HttpClient, HttpError, Response};
use crate::model::Status;

/// The kind as the rest of the daemon sees it.
pub static DESCRIPTOR: Descriptor = Descriptor {
    kind: Kind::new(&KindSpec {
        name: "sirclo",
        auth_keys: &[
            AuthKey::public("partner_id"),
            AuthKey::secret("secret"),
            AuthKey::secret("api_key"),
            AuthKey::secret("api_secret"),
        ],
        auth_requirements: &[&["partner_id", "secret"]],
        sees_updates: false,
        push_actions: push::PUSH_ACTIONS,
        described: false,
    }),
    connect: |cfg, http| Ok(super::Connector::read_write(Sirclo::new(cfg, http)?)),
    check_push_params: Some(push::check_params),
};

/// The document's maximum `perpage`.
pub const MAX_PERPAGE: u32 = 100;
/// The list endpoint without its page number.
pub const LIST_PATH: &str = "/v1/partner/page";

/// The document's header is `partner_id`; later revisions (and proxies that drop headers with
/// underscores, as nginx does by default) use `partner-id`. Both go out (docs/platforms/sirclo.md).
const PARTNER_ID: HeaderName = HeaderName::from_static("partner_id");
const PARTNER_ID_DASHED: HeaderName = HeaderName::from_static("partner-id");
const MAC_HEADER: HeaderName = HeaderName::from_static("mac");

/// `base64(HMAC-SHA256(key = secret as ASCII bytes, message = request URI + body))`, the request
/// URI being the path and, if any, `?` and the query exactly as sent (docs/platforms/sirclo.md).
pub fn sign(secret: &str, request_uri: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(request_uri.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// What [`sign`] signs for `url`: the same bytes reqwest puts in the request line.
pub fn request_uri(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A time as `since`/`until` carry it: UTC with `Z` and nothing to percent-encode, so the
/// signed query and the sent query are the same bytes (an unencoded `+07:00` would also read
/// back as a space on the platform's side).
pub fn query_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub struct Sirclo {
    http: HttpClient,
    base: Url,
    /// `api_prefix`, or empty.
    prefix: String,
    partner_id: HeaderValue,
    secret: Secret,
    perpage: u32,
    horizon: Option<Duration>,
    backfill_from: DateTime<Utc>,
    status_map: BTreeMap<String, Status>,
    zone: FixedOffset,
    /// The update's `api_key`/`api_secret`, when configured ([`push`]).
    update_auth: Option<push::ApiKey>,
}

impl Sirclo {
    pub fn new(cfg: &PlatformConfig, http: HttpClient) -> Result<Sirclo, ConnectorError> {
        let key = |k: &str| {
            cfg.auth.get(k).cloned().ok_or_else(|| {
                ConnectorError::Config(format!(
                    "platforms.{}.auth.{k} is missing in {}",
                    cfg.name,
                    cfg.file.display()
                ))
            })
        };
        let partner_id =
            HeaderValue::from_str(key("partner_id")?.expose().trim()).map_err(|_| {
                ConnectorError::Config(format!(
                    "platforms.{}.auth.partner_id is not valid header text",
                    cfg.name
                ))
            })?;
        Ok(Sirclo {
            http,
            base: cfg.base_url.clone(),
            prefix: cfg.api_prefix.clone().unwrap_or_default(),
            partner_id,
            secret: key("secret")?,
            perpage: cfg.page_size.clamp(1, MAX_PERPAGE),
            horizon: cfg.reconcile_horizon,
            backfill_from: cfg.backfill_from,
            status_map: cfg.status_map.clone(),
            zone: cfg
                .timezone
                .unwrap_or(FixedOffset::east_opt(0).expect("zero offset")),
            update_auth: push::ApiKey::from_config(cfg)?,
        })
    }

    fn token(&self, page_no: u64, query: &str) -> String {
        format!("{}{LIST_PATH}/{page_no}?{query}", self.prefix)
    }

    async fn get_page(&self, token: &str) -> Result<Page, HttpError> {
        let bad_token = |why: &str| HttpError::NotSent {
            reason: format!("bad SIRCLO page token {token:?}: {why}"),
        };
        let (page_no, query) = parse_token(token).ok_or_else(|| bad_token("no page number"))?;
        let perpage = query_param(query, "perpage")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| bad_token("no perpage"))?;
        let url = self
            .base
            .join(token)
            .map_err(|e| bad_token(&e.to_string()))?;
        let signed = request_uri(&url);
        let macs = super::SentSecrets::new(self.http.redactor());
        let page = self
            .http
            .execute(
                token,
                |c| {
                    // Signed afresh for every attempt: a later revision adding a timestamp to
                    // the signature must not resend a stale one.
                    let mac = sign(self.secret.expose(), &signed, b"");
                    macs.register(&mac);
                    let mut mac = HeaderValue::try_from(mac).expect("base64 is header text");
                    mac.set_sensitive(true);
                    c.get(url.clone())
                        .header(PARTNER_ID, self.partner_id.clone())
                        .header(PARTNER_ID_DASHED, self.partner_id.clone())
                        .header(MAC_HEADER, mac)
                        .header(ACCEPT, "application/json")
                },
                |resp| self.read_page(token, page_no, perpage, query, resp),
            )
            .await?;
        // Pages are numbered, so a page shorter than `perpage` before the end of what
        // `total_record` counts cannot be read around (where page 2 starts would be the
        // platform's guess), and ending the pass there would lose the rest in silence.
        let records = (page.orders.len() + page.rejects.len()) as u64;
        if let Some(total) = page.total
            && records < perpage
            && (page_no - 1).saturating_mul(perpage) + records < total
        {
            return Err(HttpError::Inconsistent {
                reason: format!(
                    "page {page_no} holds {records} orders though perpage={perpage} was asked \
                     and total_record is {total}: the platform caps its pages, and {} orders \
                     would be missing; set page_size = {records} for this platform",
                    total - (page_no - 1).saturating_mul(perpage) - records
                ),
            });
        }
        Ok(page)
    }

    fn read_page(
        &self,
        position: &str,
        page_no: u64,
        perpage: u64,
        query: &str,
        resp: &Response,
    ) -> Result<Page, String> {
        let (text, repaired) = lenient::body_text(&resp.body);
        let list: wire::ListPage<'_> =
            serde_json::from_str(&text).map_err(|e| format!("not a SIRCLO order page: {e}"))?;
        let data = match list.data {
            Some(data) => data,
            None if list.total_record.unwrap_or(0) == 0 => Vec::new(),
            None => {
                return Err(format!(
                    "the page has no `data` list though total_record is {}",
                    list.total_record.unwrap_or(0)
                ));
            }
        };
        let mut page = Page {
            orders: Vec::with_capacity(data.len()),
            total: list.total_record,
            ..Page::default()
        };
        super::map_records(
            &self.http,
            position,
            repaired,
            data.iter().copied(),
            "/id",
            |w: wire::Order| {
                map::to_canonical(w, &self.status_map, self.zone).map_err(|e| e.to_string())
            },
            &mut page,
        );
        let records = data.len() as u64;
        let more = records > 0
            && records >= perpage
            && list
                .total_record
                .is_none_or(|total| page_no.saturating_mul(perpage) < total);
        page.next = more.then(|| self.token(page_no + 1, query));
        Ok(page)
    }
}

/// `(pageNo, query)` of a token `…/v1/partner/page/{pageNo}?{query}`.
fn parse_token(token: &str) -> Option<(u64, &str)> {
    let (path, query) = token.split_once('?')?;
    let (list, page_no) = path.rsplit_once('/')?;
    if !list.ends_with(LIST_PATH) {
        return None;
    }
    let page_no = page_no.parse::<u64>().ok().filter(|n| *n >= 1)?;
    Some((page_no, query))
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Source for Sirclo {
    fn first_token(&self, window: &Window) -> String {
        // `until` rounded up: an order placed in the pass's starting second belongs to it.
        let until = if window.to.trunc_subsecs(0) == window.to {
            window.to
        } else {
            window.to.trunc_subsecs(0) + TimeDelta::seconds(1)
        };
        let query = format!(
            "since={}&until={}&perpage={}",
            query_time(window.from.trunc_subsecs(0)),
            query_time(until),
            self.perpage
        );
        self.token(1, &query)
    }

    async fn fetch_page(&self, _ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
        self.get_page(token).await
    }

    fn reconcile(&self) -> Reconcile {
        Reconcile::Windows {
            per_page: self.perpage as usize,
        }
    }

    /// SIRCLO cannot fetch orders by id: the listing from `reconcile_horizon` (or, without a
    /// cap, from `backfill_from`) is re-read and only the asked-for orders kept. The push
    /// read-back comes here only when the narrow window around an order's date missed it.
    async fn fetch_ids(&self, ids: &[String]) -> Result<Page, HttpError> {
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let to = Utc::now();
        let from = self
            .horizon
            .and_then(|h| TimeDelta::from_std(h).ok())
            .and_then(|h| to.checked_sub_signed(h))
            .unwrap_or(self.backfill_from);
        let mut token = Some(self.first_token(&Window { from, to }));
        let mut all = Page::default();
        while let Some(t) = token {
            let page = self.get_page(&t).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_matches_the_published_test_vector() {
        assert_eq!(
            sign(
                "1IieSn9qXCYu3FeEG1eH05QxTMldKEiNIkLSN/5xtgc=",
                "/v1/partner/order?since=2018-10-13T13:34:52Z&until=2018-10-16T19:22:39Z&limit=100&offset=0",
                b"",
            ),
            "XoPRRDtfNWaGm4nbw7A0LY/c2U0+jg3F3Ay2d3VR3bM="
        );
    }

    #[test]
    fn the_body_follows_the_uri_directly_and_a_uri_without_query_has_no_question_mark() {
        let secret = "s3cret";
        assert_eq!(
            sign(secret, "/v1/order", br#"{"accepted":[]}"#),
            sign(secret, r#"/v1/order{"accepted":[]}"#, b"")
        );
        let url = Url::parse("https://api.connexi.id/v1/order").unwrap();
        assert_eq!(request_uri(&url), "/v1/order");
        let url = Url::parse(
            "https://api.connexi.id/v1/partner/page/2?since=2018-10-13T13:34:52Z&perpage=1",
        )
        .unwrap();
        assert_eq!(
            request_uri(&url),
            "/v1/partner/page/2?since=2018-10-13T13:34:52Z&perpage=1",
            "`:` stays as it is in the URL reqwest sends"
        );
    }

    #[test]
    fn tokens_carry_the_page_and_the_query() {
        assert_eq!(
            parse_token("/v1/partner/page/3?since=a&until=b&perpage=100"),
            Some((3, "since=a&until=b&perpage=100"))
        );
        assert_eq!(
            parse_token("/gw/v1/partner/page/12?perpage=5"),
            Some((12, "perpage=5"))
        );
        assert_eq!(parse_token("/v1/partner/page/0?perpage=5"), None);
        assert_eq!(parse_token("/v1/partner/page/x?perpage=5"), None);
        assert_eq!(parse_token("/api/v2/orders?start=0"), None);
        assert_eq!(query_param("since=a&perpage=100", "perpage"), Some("100"));
        assert_eq!(query_param("since=a", "perpage"), None);
    }

    #[test]
    fn query_times_are_utc_with_z() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T07:08:09+07:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(query_time(t), "2024-05-01T00:08:09Z");
    }
}
