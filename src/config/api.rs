//! The description of a platform's order API in configuration (`[platforms.<name>.api]`), for
//! kinds whose descriptor says they are described rather than built in (`kind = "rest"`): how
//! to authenticate, how to ask for a page and walk the pages, where the orders are in an answer
//! and how their fields map to the canonical order, how changes the list filter cannot see are
//! found again, and how a status is pushed.
//!
//! Everything here is checked when the configuration loads, so a description that loads can be
//! driven without further checks: pointers parse, every template names only variables its
//! place provides, each pagination style has what it needs. The platforms layer renders and
//! follows it (`platforms/rest/`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::model::Status;

/// `[platforms.<name>.api]`, checked.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    pub auth: ApiAuth,
    /// Headers sent with every request (after `Accept: application/json`).
    pub headers: Vec<(String, Template)>,
    pub list: ListSpec,
    pub pages: PagesSpec,
    pub records: RecordsSpec,
    pub reconcile: ReconcileSpec,
    /// Per canonical status, how to ask the platform to move an order there. Empty: read-only.
    pub push: BTreeMap<Status, PushAction>,
    /// How to read one order back when a push's outcome is unknown; required with `push`.
    pub read_back: Option<ReadBack>,
}

impl ApiSpec {
    /// Whether the list filter sees updates (so the incremental pass sees every change).
    pub fn sees_updates(&self) -> bool {
        self.list.filter == Filter::Updated
    }
}

/// `[…api.auth]`.
#[derive(Debug, Clone)]
pub enum ApiAuth {
    None,
    /// HTTP Basic from two templates (normally `{auth.username}` and `{auth.password}`).
    Basic {
        username: Template,
        password: Template,
    },
    /// One header, such as `Authorization = "Bearer {auth.token}"` or `X-Api-Key`.
    Header {
        name: String,
        value: Template,
    },
    /// A login request whose answer holds a token; the token then goes in `header` as `value`
    /// renders it (with `{token}`). Logged in again once when the platform answers 401.
    Login {
        request: RequestSpec,
        token: Pointer,
        header: String,
        value: Template,
    },
    /// An HMAC of `message` (the request rendered: `{method}`, `{uri}`, `{body}`, `{timestamp}`
    /// …) keyed with `key`, put in `header` as `value` renders it (with `{signature}`).
    Hmac {
        header: String,
        value: Template,
        message: Template,
        key: Template,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    Hex,
}

/// A request: method, path template, query parameters and an optional JSON body.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Upper case.
    pub method: String,
    pub path: Template,
    /// In the order written; a parameter whose template names a variable without a value (the
    /// cursor on the first page) is left out.
    pub query: Vec<(String, Template)>,
    pub body: Option<JsonTemplate>,
}

/// `[…api.list]`: the order list.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub request: RequestSpec,
    /// What the window filter sees.
    pub filter: Filter,
    /// How `{window.from}` and `{window.to}` are written.
    pub time_format: TimeFormat,
    /// The zone the window bounds are written in (the platform's `timezone`, else UTC).
    pub zone: Option<FixedOffset>,
    /// Taken off the window's start, for filters coarser than the window (a date) or whose
    /// edge the document leaves open.
    pub window_margin: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Updated,
    Created,
}

/// How a time is written: in a request's window bounds, or in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// Records only: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` in the platform's zone.
    Auto,
    Rfc3339,
    /// `YYYY-MM-DD`.
    Date,
    EpochSeconds,
    EpochMillis,
    /// A strftime pattern such as `%Y-%m-%d %H:%M:%S`.
    Pattern(String),
}

impl TimeFormat {
    /// Writes `t` in this format, in `zone`.
    pub fn write(&self, t: DateTime<Utc>, zone: FixedOffset) -> String {
        let local = t.with_timezone(&zone);
        match self {
            TimeFormat::Auto | TimeFormat::Rfc3339 => {
                local.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            }
            TimeFormat::Date => local.format("%Y-%m-%d").to_string(),
            TimeFormat::EpochSeconds => t.timestamp().to_string(),
            TimeFormat::EpochMillis => t.timestamp_millis().to_string(),
            TimeFormat::Pattern(p) => local.format(p).to_string(),
        }
    }
}

/// `[…api.pages]`: how the pages of a listing are walked, and when the listing ends. Every
/// style ends at an empty page.
#[derive(Debug, Clone)]
pub struct PagesSpec {
    pub style: PageStyle,
    /// The first page's number (`page` style).
    pub first_page: u64,
    /// The platform's largest page; `{limit}` is the platform's `page_size` capped to it.
    pub max_page_size: u32,
    /// A page shorter than `{limit}` is the last (`page` and `offset` styles).
    pub short_page_ends: bool,
    /// Where the answer says how many records the whole listing holds.
    pub total: Option<Pointer>,
    /// Where the answer says how many pages the listing has (`page` style).
    pub page_count: Option<Pointer>,
    /// The next page's link (`next_link`) or cursor (`cursor`) in the answer.
    pub next: Option<Pointer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStyle {
    /// `{page}` counts up from `first_page`.
    Page,
    /// `{offset}` counts records from 0 (offset/limit, start/limit).
    Offset,
    /// `{cursor}` is the token the previous answer gave at `next`.
    Cursor,
    /// The next page is the link at `next` in the answer (relative or absolute).
    NextLink,
    /// The next page is the `Link` header's `rel="next"`.
    LinkHeader,
}

impl PageStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            PageStyle::Page => "page",
            PageStyle::Offset => "offset",
            PageStyle::Cursor => "cursor",
            PageStyle::NextLink => "next_link",
            PageStyle::LinkHeader => "link_header",
        }
    }
}

/// `[…api.records]`: where the orders are in an answer, and their fields.
#[derive(Debug, Clone)]
pub struct RecordsSpec {
    /// The list of records in a list answer.
    pub list: Pointer,
    pub id: Field,
    /// The order's id when absent.
    pub number: Option<Field>,
    pub status: Option<Field>,
    pub placed_at: Option<Field>,
    pub updated_at: Option<Field>,
    pub currency: Option<Field>,
    pub total: Option<Field>,
    pub customer_name: Option<Field>,
    pub tracking_number: Option<Field>,
    pub items: Option<ItemsSpec>,
}

/// `[…api.records.items]`: the lines of one record.
#[derive(Debug, Clone)]
pub struct ItemsSpec {
    pub list: Pointer,
    /// The line's 1-based position when absent; a repeated id gets `#<position>` added.
    pub id: Option<Field>,
    pub sku: Option<Field>,
    pub name: Option<Field>,
    /// 1 when absent.
    pub quantity: Option<Field>,
    pub unit_price: Option<Field>,
    pub status: Option<Field>,
}

/// One field of a record: the pointers tried in order (the first present, non-blank value not
/// listed in `ignore` wins), or a template over pointers tried before them.
#[derive(Debug, Clone)]
pub struct Field {
    pub pointers: Vec<Pointer>,
    /// Used when every pointer it names holds a value; `pointers` are the fallback.
    pub template: Option<Template>,
    /// Values that mean "none" (a placeholder the platform writes instead of leaving a field
    /// out).
    pub ignore: Vec<String>,
    /// How a time field is written.
    pub format: TimeFormat,
    /// The dotted key the field was configured at, for reject reasons.
    pub key: String,
}

impl Field {
    /// Where the field is read, for messages: its pointers (or template) as written.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(t) = &self.template {
            parts.push(format!("template {:?}", t.text()));
        }
        parts.extend(self.pointers.iter().map(|p| format!("`{p}`")));
        parts.join(" or ")
    }
}

/// `[…api.reconcile]`: how orders whose changes the list filter cannot see are read again.
#[derive(Debug, Clone)]
pub enum ReconcileSpec {
    /// The list filter sees every change.
    NotNeeded,
    /// A request taking a batch of ids (`{ids}`, comma-separated), its pages walked like the
    /// list's.
    ByIds { request: RequestSpec, batch: usize },
    /// Narrow windows of the listing around the watched orders' placing times.
    Windows,
}

/// `[…api.push.<status>]`.
#[derive(Debug, Clone)]
pub struct PushAction {
    pub request: RequestSpec,
    /// Read in the answer to a 2xx: the push succeeded only if the value at `pointer` equals
    /// `equals`. Absent: every 2xx is success.
    pub success: Option<(Pointer, String)>,
}

/// `[…api.read_back]`: one order, read to learn whether a push landed.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub request: RequestSpec,
    /// Where the record is in the answer (empty: the whole answer).
    pub record: Pointer,
}

/// A JSON pointer (RFC 6901), checked: empty, or `/`-separated tokens with `~0` and `~1` the
/// only escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(String, Vec<String>);

impl Pointer {
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(format!(
                "{text:?} is not a JSON pointer: it must start with `/` (write \"/{text}\")"
            ));
        }
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(format!(
                    "{text:?} is not a JSON pointer: `~` must be followed by 0 (for `~`) or 1 \
                     (for `/`)"
                ));
            }
        }
        let tokens = text
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(Pointer(text.to_string(), tokens))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The unescaped reference tokens (read once, when the pointer is parsed: records are
    /// read by them on the hot path).
    pub fn tokens(&self) -> &[String] {
        &self.1
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text with `{variable}` placeholders; `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!(
                                    "{text:?} has a `{{` without its `}}` (write `{{{{` for a \
                                     literal brace)"
                                ));
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        return Err(format!("{text:?} has an empty `{{}}`"));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Variable(name));
                }
                '}' => {
                    return Err(format!(
                        "{text:?} has a `}}` without its `{{` (write `}}}}` for a literal brace)"
                    ));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    /// The text as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The variable's name when the template is exactly one variable and nothing else.
    pub fn sole_variable(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Variable(v)] => Some(v),
            _ => None,
        }
    }

    /// The text with every variable replaced by `value(name)`; `None` when one has no value.
    pub fn render<'v>(
        &self,
        mut value: impl FnMut(&str) -> Option<std::borrow::Cow<'v, str>>,
    ) -> Option<String> {
        let mut out = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Variable(v) => out.push_str(&value(v)?),
            }
        }
        Some(out)
    }
}

/// A JSON body whose strings are templates; a string that is one variable alone becomes that
/// value (so `"{order.id}"` can be a number where the platform wants one), and a key whose
/// value has no value is left out.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Literal(serde_json::Value),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonTemplate::Literal(_) => {}
            JsonTemplate::Text(t) => out.push(t),
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.collect(out)),
            JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.collect(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_variables_with_doubled_braces_literal() {
        let t = Template::parse("Bearer {token} {{x}}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["token"]);
        let out = t.render(|v| (v == "token").then(|| "abc".into())).unwrap();
        assert_eq!(out, "Bearer abc {x}");
        assert_eq!(
            Template::parse("{order.id}").unwrap().sole_variable(),
            Some("order.id")
        );
        assert!(
            Template::parse("{unclosed")
                .unwrap_err()
                .contains("without its")
        );
        assert!(
            Template::parse("stray }")
                .unwrap_err()
                .contains("without its")
        );
        assert!(Template::parse("{}").unwrap_err().contains("empty"));
        assert_eq!(
            Template::parse("{a}-{b}")
                .unwrap()
                .render(|v| (v == "a").then(|| "1".into())),
            None
        );
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        assert_eq!(
            Pointer::parse("/meta/a~1b/c~0d").unwrap().tokens(),
            ["meta", "a/b", "c~d"]
        );
        assert!(Pointer::parse("").is_ok());
        assert!(
            Pointer::parse("data")
                .unwrap_err()
                .contains("start with `/`")
        );
        assert!(Pointer::parse("/a~2").unwrap_err().contains("~"));
    }

    #[test]
    fn window_bounds_are_written_in_each_format() {
        let t = DateTime::parse_from_rfc3339("2026-12-03T10:20:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let utc = FixedOffset::east_opt(0).unwrap();
        let wib = FixedOffset::east_opt(7 * 3600).unwrap();
        assert_eq!(TimeFormat::Rfc3339.write(t, utc), "2026-12-03T10:20:30Z");
        assert_eq!(
            TimeFormat::Rfc3339.write(t, wib),
            "2026-12-03T17:20:30+07:00"
        );
        assert_eq!(TimeFormat::Date.write(t, wib), "2026-12-03");
        assert_eq!(TimeFormat::EpochSeconds.write(t, wib), "1796293230");
        assert_eq!(TimeFormat::EpochMillis.write(t, utc), "1796293230000");
        assert_eq!(
            TimeFormat::Pattern("%Y-%m-%dT%H:%M:%SZ".into()).write(t, utc),
            "2026-12-03T10:20:30Z"
        );
    }
}
