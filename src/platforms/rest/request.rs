//! Rendering a described request: the variables a template may name and their values at the
//! moment of sending, the URL (variables escaped for the path, parameters form-encoded), the
//! JSON body, and reading the next page's address from a `Link` header.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};

use crate::config::api::{ApiSpec, JsonTemplate, RequestSpec, Template, TimeFormat};
use crate::config::{PlatformConfig, Secret};
use crate::http::HttpError;
use crate::model::{Params, Status};

/// What of the platform's configuration the requests and the mapping read.
pub struct Platform {
    pub name: String,
    pub base_url: Url,
    pub page_size: u32,
    pub status_map: BTreeMap<String, Status>,
    /// The zone of times written without one in records.
    pub zone: FixedOffset,
    /// The zone the window bounds are written in.
    pub list_zone: FixedOffset,
    pub horizon: Option<Duration>,
    pub backfill_from: DateTime<Utc>,
    auth: BTreeMap<String, Secret>,
}

impl Platform {
    pub fn new(cfg: &PlatformConfig, api: &ApiSpec) -> Platform {
        let utc = FixedOffset::east_opt(0).expect("zero offset");
        Platform {
            name: cfg.name.clone(),
            base_url: cfg.base_url.clone(),
            page_size: cfg.page_size,
            status_map: cfg.status_map.clone(),
            zone: cfg.timezone.unwrap_or(utc),
            list_zone: api.list.zone.unwrap_or(utc),
            horizon: cfg.reconcile_horizon,
            backfill_from: cfg.backfill_from,
            auth: cfg
                .auth
                .keys()
                .filter_map(|k| Some((k.to_string(), cfg.auth.get(k)?.clone())))
                .collect(),
        }
    }

    /// `{auth.<key>}`.
    pub fn auth(&self, key: &str) -> Option<&str> {
        self.auth.get(key).map(Secret::expose)
    }
}

/// A window bound as the list filter reads it.
pub struct Bound;

impl Bound {
    /// The window's start, rounded down to what the format can write, so nothing is skipped.
    pub fn start(t: DateTime<Utc>, format: &TimeFormat, zone: FixedOffset) -> String {
        let t = match format {
            TimeFormat::EpochMillis => t.trunc_subsecs(3),
            _ => t.trunc_subsecs(0),
        };
        format.write(t, zone)
    }

    /// The window's end, rounded up: an order changed in the pass's starting second belongs to
    /// the pass.
    pub fn end(t: DateTime<Utc>, format: &TimeFormat, zone: FixedOffset) -> String {
        let digits = if *format == TimeFormat::EpochMillis {
            3
        } else {
            0
        };
        let down = t.trunc_subsecs(digits);
        let up = if down == t {
            t
        } else {
            down + TimeDelta::nanoseconds(10_i64.pow(9 - digits as u32))
        };
        let up = if *format == TimeFormat::Date {
            // A date filter's upper bound: the day after, so the whole last day is in.
            up + TimeDelta::days(1)
        } else {
            up
        };
        format.write(up, zone)
    }
}

/// The values a template may name, as far as they are known where it is rendered.
#[derive(Clone)]
pub struct Vars<'a> {
    pub platform: &'a Platform,
    pub window: Option<(String, String)>,
    pub limit: Option<u64>,
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub cursor: Option<String>,
    pub ids: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub status: Option<Status>,
    pub params: Option<&'a Params>,
}

impl<'a> Vars<'a> {
    pub fn new(platform: &'a Platform) -> Self {
        Vars {
            platform,
            window: None,
            limit: None,
            page: None,
            offset: None,
            cursor: None,
            ids: None,
            order_id: None,
            status: None,
            params: None,
        }
    }

    /// The value of `name`; `None` when it has none here (a parameter naming it is left out).
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(key) = name.strip_prefix("auth.") {
            return self.platform.auth(key).map(Cow::Borrowed);
        }
        let number = |n: Option<u64>| n.map(|n| Cow::Owned(n.to_string()));
        let params = |f: fn(&Params) -> &Option<String>| {
            self.params.and_then(|p| f(p).as_deref()).map(Cow::Borrowed)
        };
        match name {
            "window.from" => self.window.as_ref().map(|w| Cow::Borrowed(w.0.as_str())),
            "window.to" => self.window.as_ref().map(|w| Cow::Borrowed(w.1.as_str())),
            "limit" => number(self.limit),
            "page" => number(self.page),
            "offset" => number(self.offset),
            "cursor" => self.cursor.as_deref().map(Cow::Borrowed),
            "ids" => self.ids.map(Cow::Borrowed),
            "order.id" => self.order_id.map(Cow::Borrowed),
            "status" => self.status.map(|s| Cow::Borrowed(s.as_str())),
            "params.tracking_number" => params(|p| &p.tracking_number),
            "params.carrier" => params(|p| &p.carrier),
            "params.reason" => params(|p| &p.reason),
            "params.received_by" => params(|p| &p.received_by),
            _ => None,
        }
    }

    pub fn render(&self, t: &Template) -> Option<String> {
        t.render(|name| self.get(name))
    }
}

/// What is escaped in a variable rendered into a path: everything but RFC 3986's unreserved
/// characters, so an id holding `/` or `?` stays one segment.
const PATH_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b';');

/// The request's URL: its path appended to `base`'s own path, then its query parameters (a
/// parameter whose template names a variable without a value is left out).
pub fn url(base: &Url, request: &RequestSpec, vars: &Vars<'_>) -> Result<Url, HttpError> {
    let path = request
        .path
        .render(|name| {
            vars.get(name)
                .map(|v| Cow::Owned(utf8_percent_encode(&v, PATH_VALUE).to_string()))
        })
        .ok_or_else(|| HttpError::NotSent {
            reason: format!(
                "the path {:?} names a variable without a value",
                request.path.text()
            ),
        })?;
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    let pairs: Vec<(&str, String)> = request
        .query
        .iter()
        .filter_map(|(name, t)| Some((name.as_str(), vars.render(t)?)))
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url)
}

/// The request's JSON body, if it has one.
pub fn body(request: &RequestSpec, vars: &Vars<'_>) -> Option<String> {
    request
        .body
        .as_ref()
        .map(|b| json(b, vars).unwrap_or(serde_json::Value::Null).to_string())
}

fn json(t: &JsonTemplate, vars: &Vars<'_>) -> Option<serde_json::Value> {
    Some(match t {
        JsonTemplate::Literal(v) => v.clone(),
        JsonTemplate::Text(t) => serde_json::Value::String(vars.render(t)?),
        JsonTemplate::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|i| json(i, vars).unwrap_or(serde_json::Value::Null))
                .collect(),
        ),
        JsonTemplate::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json(v, vars)?)))
                .collect(),
        ),
    })
}

/// `GET /path?query`, as rejects and logs name a request.
pub fn position(method: &str, url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{method} {}?{q}", url.path()),
        None => format!("{method} {}", url.path()),
    }
}

/// The target of the `Link` header's `rel="next"` (RFC 8288), if there is one.
pub fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                break;
            };
            let target = &rest[open + 1..open + close];
            let after = &rest[open + close + 1..];
            // The link's parameters run to the next link (a `,` followed by `<`).
            let params_end = after
                .find(",")
                .filter(|i| after[*i..].trim_start_matches([',', ' ']).starts_with('<'))
                .unwrap_or(after.len());
            let params = &after[..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| {
                        r.trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                    })
                    .unwrap_or(false)
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_next_link_is_found_among_others_in_the_link_header() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://a.example/o?page=1>; rel="first", <https://a.example/o?page=3&x=1,2>; rel="next""#,
            ),
        );
        assert_eq!(
            link_next(&h).as_deref(),
            Some("https://a.example/o?page=3&x=1,2")
        );
        h.insert(LINK, HeaderValue::from_static(r#"</o?page=2>; rel=next"#));
        assert_eq!(link_next(&h).as_deref(), Some("/o?page=2"));
        h.insert(LINK, HeaderValue::from_static(r#"</o?page=1>; rel="prev""#));
        assert_eq!(link_next(&h), None);
    }

    #[test]
    fn window_bounds_widen_to_what_the_format_can_write() {
        let t = DateTime::parse_from_rfc3339("2026-12-03T10:20:30.400Z")
            .unwrap()
            .with_timezone(&Utc);
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            Bound::start(t, &TimeFormat::EpochSeconds, utc),
            "1796293230"
        );
        assert_eq!(Bound::end(t, &TimeFormat::EpochSeconds, utc), "1796293231");
        assert_eq!(
            Bound::end(t, &TimeFormat::EpochMillis, utc),
            "1796293230400"
        );
        assert_eq!(Bound::start(t, &TimeFormat::Date, utc), "2026-12-03");
        assert_eq!(Bound::end(t, &TimeFormat::Date, utc), "2026-12-04");
    }
}
