//! Validating `[platforms.<name>.api]`, the description of a platform's order API: every table's
//! keys, each style's required keys, every JSON pointer, and every template's variables against
//! what its place provides (and `{auth.<key>}` against the platform's own auth table). All
//! problems are reported, each at its dotted key.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use figment::value::{Dict, Value};

use super::super::api::{
    ApiAuth, ApiSpec, Encoding, Field, Filter, HmacAlgorithm, ItemsSpec, JsonTemplate, ListSpec,
    PageStyle, PagesSpec, Pointer, PushAction, ReadBack, ReconcileSpec, RecordsSpec, RequestSpec,
    Template, TimeFormat,
};
use super::{Validator, describe};
use crate::model::Status;

const API_KEYS: &[&str] = &[
    "auth",
    "headers",
    "list",
    "pages",
    "records",
    "reconcile",
    "push",
    "read_back",
];
const REQUEST_KEYS: &[&str] = &["method", "path", "query", "body"];
const AUTH_STYLES: &[&str] = &["none", "basic", "header", "login", "hmac"];
const PAGE_STYLES: &[&str] = &["page", "offset", "cursor", "next_link", "link_header"];
const PAGES_KEYS: &[&str] = &[
    "style",
    "first_page",
    "max_page_size",
    "short_page_ends",
    "total",
    "page_count",
    "next",
];
const RECORD_FIELDS: &[&str] = &[
    "id",
    "number",
    "status",
    "placed_at",
    "updated_at",
    "currency",
    "total",
    "customer_name",
    "tracking_number",
];
const ITEM_FIELDS: &[&str] = &["id", "sku", "name", "quantity", "unit_price", "status"];
const FIELD_KEYS: &[&str] = &["pointer", "template", "ignore", "format"];
const PUSH_VARIABLES: &[&str] = &[
    "order.id",
    "status",
    "params.tracking_number",
    "params.carrier",
    "params.reason",
    "params.received_by",
];

/// What a template may name at its place.
struct Vars<'a> {
    names: Vec<&'static str>,
    /// The platform's auth keys that are set (`{auth.<key>}`).
    auth: &'a BTreeSet<String>,
    /// Record templates: JSON pointers into the record, and `{index}` for items.
    pointers: bool,
}

impl<'a> Vars<'a> {
    fn new(auth: &'a BTreeSet<String>, names: &[&'static str]) -> Self {
        Vars {
            names: names.to_vec(),
            auth,
            pointers: false,
        }
    }
}

impl Validator<'_> {
    /// `[platforms.<name>.api]`; `auth_keys` are the keys its auth table sets.
    pub(super) fn api(
        &mut self,
        prefix: &str,
        value: &Value,
        auth_keys: &BTreeSet<String>,
    ) -> Option<ApiSpec> {
        let errors_before = self.errors.len();
        let key = format!("{prefix}.api");
        let dict = self.table(&key, value)?;
        for (name, v) in dict {
            if !API_KEYS.contains(&name.as_str()) {
                self.unknown_in(v, &format!("{key}.{name}"), name, API_KEYS);
            }
        }
        let sub = |k: &str| format!("{key}.{k}");

        let auth = match dict.get("auth") {
            Some(v) => self.api_auth(&sub("auth"), v, auth_keys),
            None => {
                self.error(
                    value,
                    &sub("auth"),
                    format!(
                        "missing; describe how to authenticate with `style` = one of {} \
                         (`none` for an open API)",
                        AUTH_STYLES.join(", ")
                    ),
                );
                None
            }
        };
        let header_vars = {
            let mut names = vec!["timestamp"];
            match &auth {
                Some(ApiAuth::Login { .. }) => names.push("token"),
                Some(ApiAuth::Hmac { .. }) => names.push("signature"),
                _ => {}
            }
            Vars::new(auth_keys, &names)
        };
        let headers = match dict.get("headers") {
            Some(v) => self.headers(&sub("headers"), v, &header_vars),
            None => Vec::new(),
        };

        let pages = self.required(value, dict, &sub("pages"), "pages", |v, k, val| {
            v.pages(k, val)
        });
        let style = pages.as_ref().map(|p| p.style);
        let page_vars: &[&'static str] = match style {
            Some(PageStyle::Page) => &["limit", "page"],
            Some(PageStyle::Offset) => &["limit", "offset"],
            Some(PageStyle::Cursor) => &["limit", "cursor"],
            _ => &["limit"],
        };

        let list = self.required(value, dict, &sub("list"), "list", |v, k, val| {
            let mut names = vec!["window.from", "window.to"];
            names.extend_from_slice(page_vars);
            v.list(k, val, &Vars::new(auth_keys, &names))
        });
        if let (Some(list), Some(pages)) = (&list, &pages) {
            self.page_variables_used(&sub("list"), value, &list.request, pages.style);
        }

        let records = self.required(value, dict, &sub("records"), "records", |v, k, val| {
            v.records(k, val)
        });

        let filter = list.as_ref().map(|l| l.filter);
        let reconcile = match dict.get("reconcile") {
            Some(v) => {
                let mut names = vec!["ids"];
                names.extend_from_slice(page_vars);
                self.reconcile(&sub("reconcile"), v, &Vars::new(auth_keys, &names))
            }
            None if filter == Some(Filter::Created) => {
                self.error(
                    value,
                    &sub("reconcile"),
                    "missing: the list filter sees only creation times (`filter = \"created\"`), \
                     so status changes of older orders must be read again: set `style = \"ids\"` \
                     with a request taking `{ids}`, or `style = \"windows\"` to re-read the \
                     listing around each open order",
                );
                None
            }
            None => Some(ReconcileSpec::NotNeeded),
        };

        let push_vars = Vars::new(auth_keys, PUSH_VARIABLES);
        let mut push = BTreeMap::new();
        if let Some(v) = dict.get("push")
            && let Some(actions) = self.table(&sub("push"), v)
        {
            for (name, action) in actions {
                let akey = format!("{}.{name}", sub("push"));
                match Status::from_str(name) {
                    Ok(status) if status != Status::Unknown => {
                        if let Some(a) = self.push_action(&akey, action, &push_vars) {
                            push.insert(status, a);
                        }
                    }
                    _ => self.error(
                        action,
                        &akey,
                        format!(
                            "`{name}` is not a canonical status; push tables are named after the \
                             status they move an order to: pending, accepted, processing, \
                             shipped, delivered, cancelled, returned, rejected"
                        ),
                    ),
                }
            }
        }
        let read_back = match dict.get("read_back") {
            Some(v) => self.read_back(&sub("read_back"), v, &Vars::new(auth_keys, &["order.id"])),
            None if !push.is_empty() => {
                self.error(
                    value,
                    &sub("read_back"),
                    "missing: a platform that is pushed to needs a request reading one order \
                     (with `{order.id}`), so a push whose answer was lost is not sent twice",
                );
                None
            }
            None => None,
        };

        if self.errors.len() > errors_before {
            return None;
        }
        Some(ApiSpec {
            auth: auth?,
            headers,
            list: list?,
            pages: pages?,
            records: records?,
            reconcile: reconcile?,
            push,
            read_back,
        })
    }

    /// A sub-table that must be there; the error says what it is for.
    fn required<T>(
        &mut self,
        parent: &Value,
        dict: &Dict,
        key: &str,
        name: &str,
        read: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        match dict.get(name) {
            Some(v) => read(self, key, v),
            None => {
                let what = match name {
                    "list" => "the order list request (`path`, `query`, `filter`)",
                    "pages" => "how pages are walked (`style`)",
                    _ => "where the records are and how their fields map (`list`, `id`, …)",
                };
                self.error(parent, key, format!("missing: describe {what}"));
                None
            }
        }
    }

    fn api_auth(&mut self, key: &str, value: &Value, auth: &BTreeSet<String>) -> Option<ApiAuth> {
        let dict = self.table(key, value)?;
        let style = self.choice(key, value, dict, "style", AUTH_STYLES, None)?;
        let allowed: &[&str] = match style {
            "none" => &["style"],
            "basic" => &["style", "username", "password"],
            "header" => &["style", "name", "value"],
            "login" => &[
                "style", "method", "path", "query", "body", "token", "header", "value",
            ],
            _ => &[
                "style",
                "header",
                "value",
                "message",
                "key",
                "algorithm",
                "encoding",
            ],
        };
        self.only_keys(key, dict, allowed, &format!("auth style `{style}`"));
        let creds = Vars::new(auth, &[]);
        let text_or = |v: &mut Self, name: &str, default: &str, vars: &Vars| -> Option<Template> {
            match dict.get(name) {
                Some(x) => v.template(&format!("{key}.{name}"), x, vars),
                None => Template::parse(default)
                    .ok()
                    .filter(|t| v.variables_known(value, &format!("{key}.{name}"), t, vars)),
            }
        };
        match style {
            "none" => Some(ApiAuth::None),
            "basic" => {
                let username = text_or(self, "username", "{auth.username}", &creds);
                let password = text_or(self, "password", "{auth.password}", &creds);
                Some(ApiAuth::Basic {
                    username: username?,
                    password: password?,
                })
            }
            "header" => {
                let name = self.header_name(key, value, dict, "name");
                let v = self.need(
                    key,
                    value,
                    dict,
                    "value",
                    "the header's value, like \"Bearer {auth.token}\"",
                );
                let value = v.and_then(|x| self.template(&format!("{key}.value"), x, &creds));
                Some(ApiAuth::Header {
                    name: name?,
                    value: value?,
                })
            }
            "login" => {
                let request = self.request(key, value, dict, &creds, false);
                let token = self
                    .need(key, value, dict, "token", "the JSON pointer of the token in the login's answer, like \"/access_token\"")
                    .and_then(|x| self.pointer(&format!("{key}.token"), x));
                let header = match dict.get("header") {
                    Some(_) => self.header_name(key, value, dict, "header"),
                    None => Some("Authorization".to_string()),
                };
                let value = text_or(
                    self,
                    "value",
                    "Bearer {token}",
                    &Vars::new(auth, &["token"]),
                );
                Some(ApiAuth::Login {
                    request: request?,
                    token: token?,
                    header: header?,
                    value: value?,
                })
            }
            _ => {
                let header = self.header_name(key, value, dict, "header");
                let hvalue = text_or(
                    self,
                    "value",
                    "{signature}",
                    &Vars::new(auth, &["signature", "timestamp"]),
                );
                let message = self
                    .need(
                        key,
                        value,
                        dict,
                        "message",
                        "what is signed, like \"{method}\\n{uri}\\n{timestamp}\\n{body}\"",
                    )
                    .and_then(|x| {
                        self.template(
                            &format!("{key}.message"),
                            x,
                            &Vars::new(
                                auth,
                                &["method", "uri", "path", "query", "body", "timestamp"],
                            ),
                        )
                    });
                let hkey = text_or(self, "key", "{auth.secret}", &creds);
                let algorithm = self
                    .choice(
                        key,
                        value,
                        dict,
                        "algorithm",
                        &["sha256", "sha512"],
                        Some("sha256"),
                    )
                    .map(|a| {
                        if a == "sha512" {
                            HmacAlgorithm::Sha512
                        } else {
                            HmacAlgorithm::Sha256
                        }
                    });
                let encoding = self
                    .choice(
                        key,
                        value,
                        dict,
                        "encoding",
                        &["base64", "hex"],
                        Some("base64"),
                    )
                    .map(|e| {
                        if e == "hex" {
                            Encoding::Hex
                        } else {
                            Encoding::Base64
                        }
                    });
                Some(ApiAuth::Hmac {
                    header: header?,
                    value: hvalue?,
                    message: message?,
                    key: hkey?,
                    algorithm: algorithm?,
                    encoding: encoding?,
                })
            }
        }
    }

    fn headers(&mut self, key: &str, value: &Value, vars: &Vars) -> Vec<(String, Template)> {
        let Some(dict) = self.table(key, value) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, v) in dict {
            let hkey = format!("{key}.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(v, &hkey, format!("`{name}` is not a valid header name"));
                continue;
            }
            if let Some(t) = self.template(&hkey, v, vars) {
                out.push((name.clone(), t));
            }
        }
        out
    }

    fn header_name(
        &mut self,
        key: &str,
        parent: &Value,
        dict: &Dict,
        name: &str,
    ) -> Option<String> {
        let v = self.need(
            key,
            parent,
            dict,
            name,
            "a header name, like \"Authorization\"",
        )?;
        let k = format!("{key}.{name}");
        let text = self.text(&k, v)?;
        match reqwest::header::HeaderName::from_bytes(text.trim().as_bytes()) {
            Ok(_) => Some(text.trim().to_string()),
            Err(_) => {
                self.error(v, &k, format!("\"{text}\" is not a valid header name"));
                None
            }
        }
    }

    /// A key that must be set; the error says what to put there.
    fn need<'v>(
        &mut self,
        key: &str,
        parent: &Value,
        dict: &'v Dict,
        name: &str,
        what: &str,
    ) -> Option<&'v Value> {
        let v = dict.get(name);
        if v.is_none() {
            self.error(
                parent,
                &format!("{key}.{name}"),
                format!("missing: set it to {what}"),
            );
        }
        v
    }

    /// One of `allowed` at `dict[name]`, or `default` when absent (`None`: required).
    fn choice(
        &mut self,
        key: &str,
        parent: &Value,
        dict: &Dict,
        name: &str,
        allowed: &[&'static str],
        default: Option<&'static str>,
    ) -> Option<&'static str> {
        let k = format!("{key}.{name}");
        let Some(v) = dict.get(name) else {
            if default.is_none() {
                self.error(
                    parent,
                    &k,
                    format!("missing: set it to one of {}", allowed.join(", ")),
                );
            }
            return default;
        };
        let text = self.text(&k, v)?;
        let lower = text.trim().to_ascii_lowercase();
        match allowed.iter().find(|a| **a == lower) {
            Some(a) => Some(a),
            None => {
                let hint = match super::suggest(&lower, allowed) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => String::new(),
                };
                self.error(
                    v,
                    &k,
                    format!("\"{text}\" is not one of {}{hint}", allowed.join(", ")),
                );
                None
            }
        }
    }

    fn only_keys(&mut self, key: &str, dict: &Dict, allowed: &[&str], what: &str) {
        for (name, v) in dict {
            if !allowed.contains(&name.as_str()) {
                let k = format!("{key}.{name}");
                match super::suggest(name, allowed) {
                    Some(s) => {
                        self.error(v, &k, format!("unknown key `{name}` (did you mean `{s}`?)"))
                    }
                    None => self.error(
                        v,
                        &k,
                        format!("unknown key `{name}`; {what} takes: {}", allowed.join(", ")),
                    ),
                }
            }
        }
    }

    fn pointer(&mut self, key: &str, value: &Value) -> Option<Pointer> {
        let text = self.text(key, value)?;
        Pointer::parse(text.trim())
            .map_err(|e| self.error(value, key, e))
            .ok()
    }

    fn template(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<Template> {
        let text = self.text(key, value)?;
        let t = match Template::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                self.error(value, key, e);
                return None;
            }
        };
        self.variables_known(value, key, &t, vars).then_some(t)
    }

    /// Whether every variable of `t` exists at its place; reports each that does not.
    fn variables_known(&mut self, value: &Value, key: &str, t: &Template, vars: &Vars) -> bool {
        let mut ok = true;
        for name in t.variables() {
            let problem = if let Some(auth_key) = name.strip_prefix("auth.") {
                (!vars.auth.contains(auth_key)).then(|| {
                    format!(
                        "`{{{name}}}` names auth key `{auth_key}`, which this platform's [auth] \
                         table does not set; add `{auth_key}` (or `{auth_key}_file`) there"
                    )
                })
            } else if vars.pointers && name.starts_with('/') {
                Pointer::parse(name).err()
            } else if vars.names.contains(&name) {
                None
            } else {
                let mut known: Vec<String> =
                    vars.names.iter().map(|n| format!("{{{n}}}")).collect();
                if vars.pointers {
                    known.push("{/json/pointer}".into());
                }
                known.push("{auth.<key>}".into());
                let hint = match super::suggest(name, &vars.names) {
                    Some(s) => format!(" (did you mean `{{{s}}}`?)"),
                    None => String::new(),
                };
                Some(format!(
                    "`{{{name}}}` is not a variable here{hint}; this template can use {}",
                    known.join(", ")
                ))
            };
            if let Some(p) = problem {
                self.error(value, key, p);
                ok = false;
            }
        }
        ok
    }

    /// `method`, `path`, `query`, `body` of a request table.
    fn request(
        &mut self,
        key: &str,
        parent: &Value,
        dict: &Dict,
        vars: &Vars,
        default_get: bool,
    ) -> Option<RequestSpec> {
        let errors_before = self.errors.len();
        let method = match dict.get("method") {
            Some(v) => self.text(&format!("{key}.method"), v).and_then(|m| {
                let m = m.trim().to_ascii_uppercase();
                if ["GET", "POST", "PUT", "PATCH"].contains(&m.as_str()) {
                    Some(m)
                } else {
                    self.error(
                        v,
                        &format!("{key}.method"),
                        format!(
                            "\"{m}\" is not a method this daemon sends: use GET, POST, PUT or \
                             PATCH"
                        ),
                    );
                    None
                }
            }),
            None if default_get => Some("GET".to_string()),
            None => Some("POST".to_string()),
        };
        let path = self
            .need(
                key,
                parent,
                dict,
                "path",
                "the request's path, like \"/api/v2/orders\"",
            )
            .and_then(|v| {
                let k = format!("{key}.path");
                let t = self.template(&k, v, vars)?;
                if !t.text().starts_with('/') {
                    self.error(
                        v,
                        &k,
                        format!(
                            "\"{}\" must start with `/` (it is joined to base_url)",
                            t.text()
                        ),
                    );
                    return None;
                }
                Some(t)
            });
        let mut query = Vec::new();
        if let Some(v) = dict.get("query")
            && let Some(q) = self.table(&format!("{key}.query"), v)
        {
            for (name, qv) in q {
                if let Some(t) = self.template(&format!("{key}.query.{name}"), qv, vars) {
                    query.push((name.clone(), t));
                }
            }
        }
        let body = dict
            .get("body")
            .and_then(|v| self.json_template(&format!("{key}.body"), v, vars));
        if self.errors.len() > errors_before {
            return None;
        }
        Some(RequestSpec {
            method: method?,
            path: path?,
            query,
            body,
        })
    }

    fn json_template(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<JsonTemplate> {
        Some(match value {
            Value::String(..) => JsonTemplate::Text(self.template(key, value, vars)?),
            Value::Bool(_, b) => JsonTemplate::Literal(serde_json::Value::Bool(*b)),
            Value::Num(_, n) => JsonTemplate::Literal(
                n.to_i128()
                    .and_then(|i| i64::try_from(i).ok())
                    .map(serde_json::Value::from)
                    .or_else(|| n.to_f64().map(serde_json::Value::from))
                    .unwrap_or(serde_json::Value::Null),
            ),
            Value::Array(_, items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    out.push(self.json_template(&format!("{key}[{i}]"), item, vars)?);
                }
                JsonTemplate::Array(out)
            }
            Value::Dict(_, d) => {
                let mut out = Vec::new();
                for (name, v) in d {
                    out.push((
                        name.clone(),
                        self.json_template(&format!("{key}.{name}"), v, vars)?,
                    ));
                }
                JsonTemplate::Object(out)
            }
            other => {
                self.error(
                    value,
                    key,
                    format!("{} cannot be written as JSON", describe(other)),
                );
                return None;
            }
        })
    }

    fn list(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<ListSpec> {
        let dict = self.table(key, value)?;
        let mut allowed = REQUEST_KEYS.to_vec();
        allowed.extend(["filter", "time_format", "window_margin"]);
        self.only_keys(key, dict, &allowed, "the list request");
        let request = self.request(key, value, dict, vars, true);
        let filter = self
            .choice(key, value, dict, "filter", &["updated", "created"], None)
            .map(|f| {
                if f == "updated" {
                    Filter::Updated
                } else {
                    Filter::Created
                }
            });
        let time_format = match dict.get("time_format") {
            Some(v) => self.time_format(&format!("{key}.time_format"), v, false),
            None => Some(TimeFormat::Rfc3339),
        };
        let window_margin = match dict.get("window_margin") {
            Some(v) => self.duration(&format!("{key}.window_margin"), v),
            None => Some(Duration::ZERO),
        };
        if let Some(r) = &request {
            let uses_window = std::iter::once(&r.path)
                .chain(r.query.iter().map(|(_, t)| t))
                .any(|t| t.variables().any(|v| v.starts_with("window.")));
            if !uses_window {
                self.error(
                    value,
                    &format!("{key}.query"),
                    "no template uses `{window.from}`: without it every pass reads the whole \
                     listing; put it in the parameter the platform filters on",
                );
            }
        }
        Some(ListSpec {
            request: request?,
            filter: filter?,
            time_format: time_format?,
            zone: None,
            window_margin: window_margin?,
        })
    }

    /// Each page style's variable must be in the request, or the same page is read forever.
    fn page_variables_used(&mut self, key: &str, value: &Value, r: &RequestSpec, style: PageStyle) {
        let needed = match style {
            PageStyle::Page => "page",
            PageStyle::Offset => "offset",
            PageStyle::Cursor => "cursor",
            PageStyle::NextLink | PageStyle::LinkHeader => return,
        };
        let used = std::iter::once(&r.path)
            .chain(r.query.iter().map(|(_, t)| t))
            .any(|t| t.variables().any(|v| v == needed));
        if !used {
            self.error(
                value,
                &format!("{key}.query"),
                format!(
                    "pages.style = \"{}\" needs `{{{needed}}}` in the path or a query parameter, \
                     or every request would read the first page again",
                    style.as_str()
                ),
            );
        }
    }

    fn time_format(&mut self, key: &str, value: &Value, auto: bool) -> Option<TimeFormat> {
        let text = self.text(key, value)?;
        Some(match text.trim() {
            "auto" if auto => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "date" => TimeFormat::Date,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            "epoch_millis" => TimeFormat::EpochMillis,
            p if p.contains('%') => {
                let items: Vec<_> = chrono::format::StrftimeItems::new(p).collect();
                if items
                    .iter()
                    .any(|i| matches!(i, chrono::format::Item::Error))
                {
                    self.error(value, key, format!("\"{p}\" is not a strftime pattern"));
                    return None;
                }
                TimeFormat::Pattern(p.to_string())
            }
            other => {
                let names = if auto {
                    "auto, rfc3339, date, epoch_seconds, epoch_millis"
                } else {
                    "rfc3339, date, epoch_seconds, epoch_millis"
                };
                self.error(
                    value,
                    key,
                    format!(
                        "\"{other}\" is not a time format: use {names}, or a strftime pattern \
                         like \"%Y-%m-%d %H:%M:%S\""
                    ),
                );
                return None;
            }
        })
    }

    fn pages(&mut self, key: &str, value: &Value) -> Option<PagesSpec> {
        let dict = self.table(key, value)?;
        self.only_keys(key, dict, PAGES_KEYS, "[pages]");
        let style = self
            .choice(key, value, dict, "style", PAGE_STYLES, None)
            .map(|s| match s {
                "page" => PageStyle::Page,
                "offset" => PageStyle::Offset,
                "cursor" => PageStyle::Cursor,
                "next_link" => PageStyle::NextLink,
                _ => PageStyle::LinkHeader,
            });
        let k = |n: &str| format!("{key}.{n}");
        let first_page = match dict.get("first_page") {
            Some(v) => self.integer(&k("first_page"), v).and_then(|n| {
                u64::try_from(n).ok().or_else(|| {
                    self.error(v, &k("first_page"), "must be 0 or more");
                    None
                })
            }),
            None => Some(1),
        };
        let max_page_size = match dict.get("max_page_size") {
            Some(v) => self.u32_in(&k("max_page_size"), v, 1, 10_000),
            None => Some(100),
        };
        let short_page_ends = match dict.get("short_page_ends") {
            Some(v) => self.boolean(&k("short_page_ends"), v),
            None => Some(true),
        };
        let ptr = |v: &mut Self, n: &str| -> Option<Option<Pointer>> {
            match dict.get(n) {
                Some(x) => v.pointer(&k(n), x).map(Some),
                None => Some(None),
            }
        };
        let total = ptr(self, "total");
        let page_count = ptr(self, "page_count");
        let next = ptr(self, "next");
        if let (Some(style), Some(None)) = (style, &next)
            && matches!(style, PageStyle::NextLink | PageStyle::Cursor)
        {
            self.error(
                value,
                &k("next"),
                format!(
                    "missing: style \"{}\" needs the JSON pointer of the next {} in the answer, \
                     like \"/meta/next\"",
                    style.as_str(),
                    if style == PageStyle::Cursor {
                        "cursor"
                    } else {
                        "page's link"
                    }
                ),
            );
            return None;
        }
        Some(PagesSpec {
            style: style?,
            first_page: first_page?,
            max_page_size: max_page_size?,
            short_page_ends: short_page_ends?,
            total: total?,
            page_count: page_count?,
            next: next?,
        })
    }

    fn records(&mut self, key: &str, value: &Value) -> Option<RecordsSpec> {
        let dict = self.table(key, value)?;
        let mut allowed = vec!["list", "items"];
        allowed.extend_from_slice(RECORD_FIELDS);
        self.only_keys(key, dict, &allowed, "[records]");
        let errors_before = self.errors.len();
        let list = self
            .need(
                key,
                value,
                dict,
                "list",
                "the JSON pointer of the list of orders in an answer, like \"/data\"",
            )
            .and_then(|v| self.pointer(&format!("{key}.list"), v));
        let id = self
            .need(
                key,
                value,
                dict,
                "id",
                "the JSON pointer of the order's id in a record, like \"/id\"",
            )
            .and_then(|v| self.field(&format!("{key}.id"), v, false, false));
        let mut fields: BTreeMap<&str, Field> = BTreeMap::new();
        for name in &RECORD_FIELDS[1..] {
            if let Some(v) = dict.get(*name) {
                let time = name.ends_with("_at");
                if let Some(f) = self.field(&format!("{key}.{name}"), v, time, false) {
                    fields.insert(name, f);
                }
            }
        }
        let items = dict
            .get("items")
            .and_then(|v| self.items(&format!("{key}.items"), v));
        if self.errors.len() > errors_before {
            return None;
        }
        let mut take = |n: &str| fields.remove(n);
        Some(RecordsSpec {
            list: list?,
            id: id?,
            number: take("number"),
            status: take("status"),
            placed_at: take("placed_at"),
            updated_at: take("updated_at"),
            currency: take("currency"),
            total: take("total"),
            customer_name: take("customer_name"),
            tracking_number: take("tracking_number"),
            items,
        })
    }

    fn items(&mut self, key: &str, value: &Value) -> Option<ItemsSpec> {
        let dict = self.table(key, value)?;
        let mut allowed = vec!["list"];
        allowed.extend_from_slice(ITEM_FIELDS);
        self.only_keys(key, dict, &allowed, "[items]");
        let list = self
            .need(
                key,
                value,
                dict,
                "list",
                "the JSON pointer of the lines in a record, like \"/line_items\"",
            )
            .and_then(|v| self.pointer(&format!("{key}.list"), v));
        let mut fields: BTreeMap<&str, Field> = BTreeMap::new();
        for name in ITEM_FIELDS {
            if let Some(v) = dict.get(*name)
                && let Some(f) = self.field(&format!("{key}.{name}"), v, false, true)
            {
                fields.insert(name, f);
            }
        }
        let mut take = |n: &str| fields.remove(n);
        Some(ItemsSpec {
            list: list?,
            id: take("id"),
            sku: take("sku"),
            name: take("name"),
            quantity: take("quantity"),
            unit_price: take("unit_price"),
            status: take("status"),
        })
    }

    /// A record field: `"/pointer"`, `["/a", "/b"]`, or `{ pointer, template, ignore, format }`.
    fn field(&mut self, key: &str, value: &Value, time: bool, item: bool) -> Option<Field> {
        let mut field = Field {
            pointers: Vec::new(),
            template: None,
            ignore: Vec::new(),
            format: TimeFormat::Auto,
            key: key.to_string(),
        };
        let pointers = |v: &mut Self, k: &str, x: &Value| -> Option<Vec<Pointer>> {
            match x {
                Value::Array(_, list) => {
                    let mut out = Vec::new();
                    for (i, p) in list.iter().enumerate() {
                        out.push(v.pointer(&format!("{k}[{i}]"), p)?);
                    }
                    if out.is_empty() {
                        v.error(x, k, "an empty list: give at least one JSON pointer");
                        return None;
                    }
                    Some(out)
                }
                _ => v.pointer(k, x).map(|p| vec![p]),
            }
        };
        match value {
            Value::Dict(_, d) => {
                self.only_keys(key, d, FIELD_KEYS, "a field");
                if let Some(p) = d.get("pointer") {
                    field.pointers = pointers(self, &format!("{key}.pointer"), p)?;
                }
                if let Some(t) = d.get("template") {
                    let none = BTreeSet::new();
                    let mut vars = Vars::new(&none, if item { &["index"] } else { &[] });
                    vars.pointers = true;
                    field.template = Some(self.template(&format!("{key}.template"), t, &vars)?);
                }
                if let Some(i) = d.get("ignore") {
                    let k = format!("{key}.ignore");
                    match i {
                        Value::Array(_, list) => {
                            for x in list {
                                field.ignore.push(self.text(&k, x)?);
                            }
                        }
                        _ => field.ignore.push(self.text(&k, i)?),
                    }
                }
                if let Some(f) = d.get("format") {
                    let k = format!("{key}.format");
                    if !time {
                        self.error(
                            f,
                            &k,
                            "only time fields (placed_at, updated_at) take a format",
                        );
                        return None;
                    }
                    field.format = self.time_format(&k, f, true)?;
                }
                if field.pointers.is_empty() && field.template.is_none() {
                    self.error(
                        value,
                        key,
                        "says neither where to read the field (`pointer`) nor how to build it \
                         (`template`)",
                    );
                    return None;
                }
            }
            _ => field.pointers = pointers(self, key, value)?,
        }
        Some(field)
    }

    fn reconcile(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<ReconcileSpec> {
        let dict = self.table(key, value)?;
        let style = self.choice(key, value, dict, "style", &["ids", "windows", "none"], None)?;
        match style {
            "none" => {
                self.only_keys(key, dict, &["style"], "reconcile style `none`");
                Some(ReconcileSpec::NotNeeded)
            }
            "windows" => {
                self.only_keys(key, dict, &["style"], "reconcile style `windows`");
                Some(ReconcileSpec::Windows)
            }
            _ => {
                let mut allowed = REQUEST_KEYS.to_vec();
                allowed.extend(["style", "batch"]);
                self.only_keys(key, dict, &allowed, "reconcile style `ids`");
                let request = self.request(key, value, dict, vars, true);
                let batch = match dict.get("batch") {
                    Some(v) => self
                        .u32_in(&format!("{key}.batch"), v, 1, 1000)
                        .map(|b| b as usize),
                    None => Some(50),
                };
                if let Some(r) = &request {
                    let uses_ids = std::iter::once(&r.path)
                        .chain(r.query.iter().map(|(_, t)| t))
                        .any(|t| t.variables().any(|v| v == "ids"));
                    if !uses_ids {
                        self.error(
                            value,
                            &format!("{key}.query"),
                            "no template uses `{ids}`: the request must name the orders it \
                             re-reads, like `query = { ids = \"{ids}\" }`",
                        );
                        return None;
                    }
                }
                Some(ReconcileSpec::ByIds {
                    request: request?,
                    batch: batch?,
                })
            }
        }
    }

    fn push_action(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<PushAction> {
        let dict = self.table(key, value)?;
        let mut allowed = REQUEST_KEYS.to_vec();
        allowed.push("success");
        self.only_keys(key, dict, &allowed, "a push request");
        let request = self.request(key, value, dict, vars, false);
        let success = match dict.get("success") {
            Some(v) => {
                let k = format!("{key}.success");
                let d = self.table(&k, v)?;
                self.only_keys(&k, d, &["pointer", "equals"], "success");
                let pointer = self
                    .need(&k, v, d, "pointer", "the JSON pointer read in the answer")
                    .and_then(|p| self.pointer(&format!("{k}.pointer"), p));
                let equals = self
                    .need(&k, v, d, "equals", "the value that means success")
                    .and_then(|e| self.text(&format!("{k}.equals"), e));
                Some((pointer?, equals?))
            }
            None => None,
        };
        Some(PushAction {
            request: request?,
            success,
        })
    }

    fn read_back(&mut self, key: &str, value: &Value, vars: &Vars) -> Option<ReadBack> {
        let dict = self.table(key, value)?;
        let mut allowed = REQUEST_KEYS.to_vec();
        allowed.push("record");
        self.only_keys(key, dict, &allowed, "read_back");
        let request = self.request(key, value, dict, vars, true);
        let record = match dict.get("record") {
            Some(v) => self.pointer(&format!("{key}.record"), v),
            None => Some(Pointer::parse("").expect("the empty pointer")),
        };
        Some(ReadBack {
            request: request?,
            record: record?,
        })
    }
}
