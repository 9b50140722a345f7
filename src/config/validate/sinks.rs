//! Validating `[sinks.<name>]` tables: the keys each kind of sink allows, the receiver's URL,
//! Standard Webhooks secrets, JetStream stream and subject names, and filters that name only
//! declared platforms and known event kinds.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use figment::value::{Dict, Value};

use super::super::sink::{
    DEFAULT_DUPLICATE_WINDOW, DEFAULT_INITIAL_RETRY, DEFAULT_MAX_LAG, DEFAULT_MAX_RETRY,
    DEFAULT_NATS_IN_FLIGHT, DEFAULT_SINK_TIMEOUT, DEFAULT_WEBHOOK_IN_FLIGHT, render_subject,
};
use super::super::{Secret, SinkConfig, SinkStartAt, SinkTarget};
use super::{Validator, valid_name};
use crate::model::EVENT_KINDS;

const COMMON_KEYS: &[&str] = &[
    "kind",
    "url",
    "platforms",
    "events",
    "start",
    "max_lag",
    "timeout",
    "max_in_flight",
    "initial_retry_interval",
    "max_retry_interval",
];
const WEBHOOK_KEYS: &[&str] = &["secret", "secret_file"];
const NATS_KEYS: &[&str] = &[
    "stream",
    "subject",
    "create_stream",
    "duplicate_window",
    "token",
    "token_file",
];

/// The subject when none is given.
const DEFAULT_SUBJECT: &str = "orders.{platform}.{kind}";

/// Standard Webhooks asks for secrets of 24 to 64 random bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

const SECRET_HINT: &str = "a Standard Webhooks secret is `whsec_` followed by 24 to 64 random \
                           bytes in base64; make one with: echo \"whsec_$(openssl rand -base64 32)\"";

impl Validator<'_> {
    pub(super) fn sink(
        &mut self,
        name: &str,
        value: &Value,
        declared_platforms: &[&str],
    ) -> Option<SinkConfig> {
        let prefix = format!("sinks.{name}");
        let dict = self.table(&prefix, value)?;
        let errors_before = self.errors.len();
        if !valid_name(name) {
            self.error(
                value,
                &prefix,
                format!(
                    "`{name}` is not a valid sink name: use lowercase letters, digits, `_` and \
                     `-` (it names the sink in the CLI, metrics and the database)"
                ),
            );
        }
        let key = |k: &str| format!("{prefix}.{k}");

        let kind = match dict.get("kind") {
            None => {
                self.error(
                    value,
                    &key("kind"),
                    "missing: every sink needs `kind = \"webhook\"` or `kind = \"nats\"`",
                );
                None
            }
            Some(v) => match self.text(&key("kind"), v)?.trim() {
                k @ ("webhook" | "nats") => Some(k.to_string()),
                other => {
                    self.error(
                        v,
                        &key("kind"),
                        format!("unknown sink kind `{other}`; use webhook or nats"),
                    );
                    None
                }
            },
        };
        let kind = kind?;
        let own_keys = if kind == "webhook" {
            WEBHOOK_KEYS
        } else {
            NATS_KEYS
        };
        for (k, v) in dict {
            if COMMON_KEYS.contains(&k.as_str()) || own_keys.contains(&k.as_str()) {
                continue;
            }
            let other = if kind == "webhook" {
                NATS_KEYS
            } else {
                WEBHOOK_KEYS
            };
            if other.contains(&k.as_str()) {
                self.error(v, &key(k), format!("`{k}` is not a key of {kind} sinks"));
            } else {
                let allowed: Vec<&str> = COMMON_KEYS.iter().chain(own_keys).copied().collect();
                self.unknown_in(v, &key(k), k, &allowed);
            }
        }

        let mut platforms = None;
        if let Some(v) = dict.get("platforms") {
            let list = self.string_list(&key("platforms"), v);
            for p in list.iter().flatten() {
                if !declared_platforms.contains(&p.as_str()) {
                    self.error(
                        v,
                        &key("platforms"),
                        format!(
                            "no platform `{p}` is declared (declared: {})",
                            if declared_platforms.is_empty() {
                                "none".to_string()
                            } else {
                                declared_platforms.join(", ")
                            }
                        ),
                    );
                }
            }
            platforms = list;
        }
        let mut events = None;
        if let Some(v) = dict.get("events") {
            let list = self.string_list(&key("events"), v);
            for e in list.iter().flatten() {
                if !EVENT_KINDS.contains(&e.as_str()) {
                    self.error(
                        v,
                        &key("events"),
                        format!(
                            "`{e}` is not an event kind; the feed has {}",
                            EVENT_KINDS.join(", ")
                        ),
                    );
                }
            }
            events = list;
        }
        let mut start = SinkStartAt::Now;
        if let Some(v) = dict.get("start") {
            match self.text(&key("start"), v).as_deref().map(str::trim) {
                Some("now") => start = SinkStartAt::Now,
                Some("beginning") => start = SinkStartAt::Beginning,
                Some(other) => self.error(
                    v,
                    &key("start"),
                    format!(
                        "`{other}` is not a start; use now (only events from now on) or \
                         beginning (the whole feed)"
                    ),
                ),
                None => {}
            }
        }
        let duration_or = |this: &mut Self, k: &str, default: Duration| {
            dict.get(k)
                .and_then(|v| this.positive_duration(&key(k), v))
                .unwrap_or(default)
        };
        let max_lag = duration_or(self, "max_lag", DEFAULT_MAX_LAG);
        let timeout = duration_or(self, "timeout", DEFAULT_SINK_TIMEOUT);
        let initial_retry_interval =
            duration_or(self, "initial_retry_interval", DEFAULT_INITIAL_RETRY);
        let max_retry_interval = duration_or(self, "max_retry_interval", DEFAULT_MAX_RETRY);
        if max_retry_interval < initial_retry_interval {
            self.error(
                value,
                &key("max_retry_interval"),
                "must not be shorter than initial_retry_interval",
            );
        }
        let default_in_flight = if kind == "webhook" {
            DEFAULT_WEBHOOK_IN_FLIGHT
        } else {
            DEFAULT_NATS_IN_FLIGHT
        };
        let max_in_flight = dict
            .get("max_in_flight")
            .and_then(|v| self.u32_in(&key("max_in_flight"), v, 1, 4096))
            .map_or(default_in_flight, |n| n as usize);

        let url = match dict.get("url") {
            Some(v) => self.text(&key("url"), v).map(|t| (v, t.trim().to_string())),
            None => {
                self.error(
                    value,
                    &key("url"),
                    format!(
                        "missing: the receiver's address ({})",
                        if kind == "webhook" {
                            "https://…"
                        } else {
                            "nats://host:4222"
                        }
                    ),
                );
                None
            }
        };

        let target = if kind == "webhook" {
            let url = url.and_then(|(v, text)| self.webhook_url(&key("url"), v, &text));
            let secrets = self.webhook_secrets(&prefix, value, dict);
            match (url, secrets) {
                (Some(url), Some(secrets)) => Some(SinkTarget::Webhook { url, secrets }),
                _ => None,
            }
        } else {
            let url = url.and_then(|(v, text)| self.nats_url(&key("url"), v, &text));
            let stream = match dict.get("stream") {
                Some(v) => self.text(&key("stream"), v).and_then(|s| {
                    let s = s.trim().to_string();
                    let ok = !s.is_empty()
                        && !s.chars().any(|c| {
                            c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\')
                        });
                    if !ok {
                        self.error(
                            v,
                            &key("stream"),
                            format!(
                                "`{s}` is not a JetStream stream name (no spaces, `.`, `*`, `>`, \
                                 `/` or `\\`)"
                            ),
                        );
                    }
                    ok.then_some(s)
                }),
                None => {
                    self.error(
                        value,
                        &key("stream"),
                        "missing: the JetStream stream to publish to, as in stream = \"ORDERS\"",
                    );
                    None
                }
            };
            let subject = match dict.get("subject") {
                Some(v) => self
                    .text(&key("subject"), v)
                    .and_then(|s| self.subject(&key("subject"), v, s.trim())),
                None => Some(DEFAULT_SUBJECT.to_string()),
            };
            let create_stream = dict
                .get("create_stream")
                .and_then(|v| self.boolean(&key("create_stream"), v))
                .unwrap_or(false);
            let duplicate_window = duration_or(self, "duplicate_window", DEFAULT_DUPLICATE_WINDOW);
            let token = match (dict.get("token"), dict.get("token_file")) {
                (Some(_), Some(v)) => {
                    self.error(
                        v,
                        &key("token_file"),
                        "give the token once: `token` or `token_file`, not both",
                    );
                    None
                }
                (Some(v), None) => self.text(&key("token"), v).map(Secret::new),
                (None, Some(v)) => self.secret_file(&key("token_file"), v),
                (None, None) => None,
            };
            match (url, stream, subject) {
                (Some(url), Some(stream), Some(subject)) => Some(SinkTarget::Nats {
                    url,
                    stream,
                    subject,
                    create_stream,
                    duplicate_window,
                    token,
                }),
                _ => None,
            }
        };

        if self.errors.len() > errors_before {
            return None;
        }
        Some(SinkConfig {
            name: name.to_string(),
            file: PathBuf::from(self.g.origin(value)),
            target: target?,
            platforms,
            events,
            start,
            max_lag,
            timeout,
            max_in_flight,
            initial_retry_interval,
            max_retry_interval,
        })
    }

    /// An array of text (one text is taken as a list of one).
    fn string_list(&mut self, key: &str, value: &Value) -> Option<Vec<String>> {
        match value {
            Value::Array(_, items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.text(key, item)?.trim().to_string());
                }
                Some(out)
            }
            Value::String(_, s) => Some(vec![s.trim().to_string()]),
            other => {
                self.error(
                    value,
                    key,
                    format!(
                        "expected a list like [\"a\", \"b\"], found {}",
                        super::describe(other)
                    ),
                );
                None
            }
        }
    }

    fn webhook_url(&mut self, key: &str, value: &Value, text: &str) -> Option<reqwest::Url> {
        match reqwest::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                self.error(
                    value,
                    key,
                    format!("\"{text}\" is not an http:// or https:// URL"),
                );
                None
            }
        }
    }

    fn nats_url(&mut self, key: &str, value: &Value, text: &str) -> Option<String> {
        for part in text.split(',').map(str::trim) {
            let ok = reqwest::Url::parse(part).is_ok_and(|u| {
                matches!(u.scheme(), "nats" | "tls" | "ws" | "wss") && u.host().is_some()
            });
            if !ok {
                self.error(
                    value,
                    key,
                    format!(
                        "\"{part}\" is not a NATS server address; write nats://host:4222 (or \
                         tls://…), several separated by commas"
                    ),
                );
                return None;
            }
        }
        Some(text.to_string())
    }

    /// A subject template: `{platform}` and `{kind}` are the only placeholders, and the
    /// subject they make is a valid NATS subject.
    fn subject(&mut self, key: &str, value: &Value, template: &str) -> Option<String> {
        let rendered = render_subject(template, "p", "k");
        let problem = if rendered.contains(['{', '}']) {
            Some("the only placeholders are {platform} and {kind}".to_string())
        } else if rendered.split('.').any(|t| {
            t.is_empty()
                || t.chars()
                    .any(|c| c.is_whitespace() || matches!(c, '*' | '>'))
        }) {
            Some(
                "a subject is dot-separated tokens with no spaces, no empty token and no \
                 wildcard (* or >)"
                    .to_string(),
            )
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.error(value, key, format!("\"{template}\" is not a subject: {p}"));
                None
            }
            None => Some(template.to_string()),
        }
    }

    /// `secret` (one or several, separated by spaces, or a list) or `secret_file` (one per
    /// line): every one signs.
    fn webhook_secrets(&mut self, prefix: &str, value: &Value, dict: &Dict) -> Option<Vec<Secret>> {
        let key = |k: &str| format!("{prefix}.{k}");
        let (source, texts): (&Value, Vec<String>) =
            match (dict.get("secret"), dict.get("secret_file")) {
                (Some(_), Some(v)) => {
                    self.error(
                        v,
                        &key("secret_file"),
                        "give the secret once: `secret` or `secret_file`, not both",
                    );
                    return None;
                }
                (Some(v), None) => {
                    let list = match v {
                        Value::Array(..) => self.string_list(&key("secret"), v)?,
                        _ => vec![self.text(&key("secret"), v)?],
                    };
                    (v, list)
                }
                (None, Some(v)) => {
                    let s = self.secret_file(&key("secret_file"), v)?;
                    (v, vec![s.expose().to_string()])
                }
                (None, None) => {
                    self.error(
                        value,
                        &key("secret_file"),
                        format!(
                            "missing: a webhook sink signs every delivery; set secret_file (or \
                             secret). {SECRET_HINT}"
                        ),
                    );
                    return None;
                }
            };
        let which = if dict.contains_key("secret") {
            key("secret")
        } else {
            key("secret_file")
        };
        let mut secrets = Vec::new();
        for text in texts {
            for word in text.split_whitespace() {
                let decoded = word
                    .strip_prefix("whsec_")
                    .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
                match decoded {
                    Some(bytes) if SECRET_BYTES.contains(&bytes.len()) => {
                        secrets.push(Secret::new(word))
                    }
                    // Never echo the value: it is a secret even when malformed.
                    _ => {
                        self.error(
                            source,
                            &which,
                            format!(
                                "the {} secret is not valid: {SECRET_HINT}",
                                ordinal(secrets.len() + 1)
                            ),
                        );
                        return None;
                    }
                }
            }
        }
        if secrets.is_empty() {
            self.error(source, &which, format!("is empty. {SECRET_HINT}"));
            return None;
        }
        Some(secrets)
    }
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}
