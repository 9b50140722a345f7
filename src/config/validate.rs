//! Turning the merged configuration tree into a typed [`Config`]: every key checked against the
//! keys its table allows, every value against its type and rules, `[defaults]` applied, secret
//! files read. Problems are collected, never returned early, so `ordersync check` can list them
//! all; each names the source of the offending value and its dotted key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use figment::value::{Dict, Num, Value};

use super::sources::Gathered;
use super::{
    Auth, Config, ConfigError, DaemonConfig, Database, Kind, Kinds, LogFormat, PlatformConfig,
    RetryConfig, Secret, duration,
};
use crate::model::Status;

mod api;
mod sinks;

const DAEMON_KEYS: &[&str] = &[
    "database",
    "database_password_file",
    "database_password",
    "platforms_dir",
    "push_interval",
    "log_level",
    "log_format",
    "metrics_listen",
    "shutdown_grace",
    "health_max_age",
    "busy_timeout",
    "max_concurrent_runs",
    "lease_period",
];

/// Keys a platform table and `[defaults]` share.
const SHARED_PLATFORM_KEYS: &[&str] = &[
    "enabled",
    "schedule",
    "reconcile_schedule",
    "backfill_from",
    "lookback",
    "page_size",
    "timeout",
    "max_requests_per_second",
    "status_map",
    "retry",
    "timezone",
    "reconcile_horizon",
    "final_watch",
    "reject_hold",
    "verify_schedule",
    "verify_repair",
    "api_prefix",
];

/// Keys that only make sense for one platform.
const OWN_PLATFORM_KEYS: &[&str] = &["kind", "base_url", "auth", "api"];

const RETRY_KEYS: &[&str] = &["max_attempts", "initial_interval", "max_interval"];

/// How TOML's own (unquoted) datetimes arrive through serde into figment.
const TOML_DATETIME_FIELD: &str = "$__toml_private_datetime";

/// The optional platform keys as written in one table (a platform's or `[defaults]`); `None`
/// where the table does not set the key or its value was invalid (already reported).
#[derive(Default)]
struct Layer {
    enabled: Option<bool>,
    schedule: Option<String>,
    reconcile_schedule: Option<Option<String>>,
    backfill_from: Option<DateTime<Utc>>,
    lookback: Option<Duration>,
    page_size: Option<u32>,
    timeout: Option<Duration>,
    max_requests_per_second: Option<f64>,
    status_map: BTreeMap<String, Status>,
    max_attempts: Option<u32>,
    initial_interval: Option<Duration>,
    max_interval: Option<Duration>,
    timezone: Option<FixedOffset>,
    reconcile_horizon: Option<Duration>,
    final_watch: Option<Duration>,
    reject_hold: Option<Duration>,
    verify_schedule: Option<Option<String>>,
    verify_repair: Option<bool>,
    api_prefix: Option<Option<String>>,
}

pub(crate) fn validate(
    g: &Gathered,
    kinds: Kinds,
    now: DateTime<Utc>,
) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        g,
        kinds,
        errors: Vec::new(),
    };

    let mut daemon_value = None;
    let mut defaults_value = None;
    let mut platforms_value = None;
    let mut sinks_value = None;
    for (key, value) in &g.root {
        match key.as_str() {
            "daemon" => daemon_value = Some(value),
            "defaults" => defaults_value = Some(value),
            "platforms" => platforms_value = Some(value),
            "sinks" => sinks_value = Some(value),
            _ => v.unknown_key(
                value,
                key,
                key,
                &["daemon", "defaults", "platforms", "sinks"],
                "the configuration has [daemon], [defaults], [platforms.<name>] and \
                 [sinks.<name>] tables",
            ),
        }
    }

    let daemon = v.daemon(daemon_value);
    let defaults = match defaults_value.and_then(|d| v.table("defaults", d)) {
        Some(dict) => v.layer("defaults", dict, true),
        None => Layer::default(),
    };

    let mut platforms = Vec::new();
    if let Some(dict) = platforms_value.and_then(|p| v.table("platforms", p)) {
        for (name, value) in dict {
            if let Some(p) = v.platform(name, value, &defaults, now) {
                platforms.push(p);
            }
        }
    }
    platforms.sort_by(|a, b| a.name.cmp(&b.name));

    let mut sinks = Vec::new();
    if let Some(dict) = sinks_value.and_then(|s| v.table("sinks", s)) {
        let declared: Vec<&str> = platforms.iter().map(|p| p.name.as_str()).collect();
        for (name, value) in dict {
            if let Some(s) = v.sink(name, value, &declared) {
                sinks.push(s);
            }
        }
    }

    if v.errors.is_empty() {
        Ok(Config {
            main_file: g.main_file.clone(),
            daemon,
            platforms,
            sinks,
        })
    } else {
        Err(v.errors)
    }
}

struct Validator<'a> {
    g: &'a Gathered,
    kinds: Kinds,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, value: &Value, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.g.origin(value), key, message));
    }

    fn error_in(&mut self, file: &Path, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(file.display().to_string(), key, message));
    }

    fn unknown_key(&mut self, value: &Value, key: &str, name: &str, allowed: &[&str], hint: &str) {
        let message = match suggest(name, allowed) {
            Some(s) => format!("unknown key `{name}` (did you mean `{s}`?)"),
            None => format!("unknown key `{name}`; {hint}"),
        };
        self.error(value, key, message);
    }

    fn unknown_in(&mut self, value: &Value, key: &str, name: &str, allowed: &[&str]) {
        let hint = format!("allowed keys: {}", allowed.join(", "));
        self.unknown_key(value, key, name, allowed, &hint);
    }

    // ---- typed readers: each reports its own error and returns None on failure ----

    fn table<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v Dict> {
        match value {
            Value::Dict(_, dict) if !is_toml_datetime(dict) => Some(dict),
            other => {
                self.error(
                    value,
                    key,
                    format!("expected a table, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// Text; numbers and booleans are taken as their text (an environment variable, or a
    /// `partner_id = 123` written without quotes, should not be an error).
    fn text(&mut self, key: &str, value: &Value) -> Option<String> {
        match value {
            Value::String(_, s) => Some(s.clone()),
            Value::Char(_, c) => Some(c.to_string()),
            Value::Bool(_, b) => Some(b.to_string()),
            Value::Num(_, n) => Some(num_text(n)),
            Value::Dict(_, d) if is_toml_datetime(d) => toml_datetime_text(d),
            other => {
                self.error(
                    value,
                    key,
                    format!("expected text, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let parsed = match value {
            Value::String(_, s) => duration::parse(s),
            Value::Num(..) => Err(format!("a bare number has no unit; {}", duration::HINT)),
            other => Err(format!(
                "expected a duration, found {}; {}",
                describe(other),
                duration::HINT
            )),
        };
        parsed.map_err(|m| self.error(value, key, m)).ok()
    }

    fn positive_duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let d = self.duration(key, value)?;
        if d.is_zero() {
            self.error(value, key, "must be longer than zero");
            return None;
        }
        Some(d)
    }

    fn integer(&mut self, key: &str, value: &Value) -> Option<i128> {
        let parsed = match value {
            Value::Num(_, n) => n
                .to_i128()
                .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
                .or_else(|| {
                    let f = n.to_f64()?;
                    (f.fract() == 0.0 && f.abs() < 1e18).then_some(f as i128)
                }),
            Value::String(_, s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                value,
                key,
                format!("expected a whole number, found {}", describe(value)),
            );
        }
        parsed
    }

    fn u32_in(&mut self, key: &str, value: &Value, min: u32, max: u32) -> Option<u32> {
        let n = self.integer(key, value)?;
        match u32::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    value,
                    key,
                    format!("{n} is out of range: use {min} to {max}"),
                );
                None
            }
        }
    }

    fn float(&mut self, key: &str, value: &Value) -> Option<f64> {
        let parsed = match value {
            Value::Num(_, n) => Some(num_f64(n)),
            Value::String(_, s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                value,
                key,
                format!("expected a number, found {}", describe(value)),
            );
        }
        parsed
    }

    fn boolean(&mut self, key: &str, value: &Value) -> Option<bool> {
        let parsed = match value {
            Value::Bool(_, b) => Some(*b),
            Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                value,
                key,
                format!("expected true or false, found {}", describe(value)),
            );
        }
        parsed
    }

    fn path(&mut self, key: &str, value: &Value) -> Option<PathBuf> {
        let text = self.text(key, value)?;
        let text = text.trim();
        if text.is_empty() {
            self.error(value, key, "expected a path, found empty text");
            return None;
        }
        Some(self.g.base_dir.join(text))
    }

    /// A cron expression as tokio-cron-scheduler parses it: seconds first. Five fields get
    /// `0` seconds prepended, because that is what a sysadmin used to crontab means.
    fn cron(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.text(key, value)?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        let normalized = if fields.len() == 5 {
            format!("0 {}", fields.join(" "))
        } else {
            fields.join(" ")
        };
        let parsed = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&normalized);
        match parsed {
            Ok(_) => Some(normalized),
            Err(e) => {
                let e = e.to_string();
                let e = e.trim_end_matches('.');
                self.error(
                    value,
                    key,
                    format!(
                        "invalid cron expression \"{}\": {e}; write six fields, seconds first, \
                         like \"0 */5 * * * *\" (five-field crontab form is also accepted)",
                        text.trim()
                    ),
                );
                None
            }
        }
    }

    fn datetime(&mut self, key: &str, value: &Value) -> Option<DateTime<Utc>> {
        let text = self.text(key, value)?;
        match DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.error(
                    value,
                    key,
                    format!(
                        "\"{}\" is not an RFC 3339 time ({e}); write a time with its offset, \
                         like \"2024-01-01T00:00:00Z\"",
                        text.trim()
                    ),
                );
                None
            }
        }
    }

    fn timezone(&mut self, key: &str, value: &Value) -> Option<FixedOffset> {
        let text = self.text(key, value)?;
        let parsed = parse_offset(text.trim());
        if parsed.is_none() {
            self.error(
                value,
                key,
                format!(
                    "\"{}\" is not a UTC offset; write one like \"+07:00\", \"-05:30\" or \"UTC\" \
                     (zone names such as Asia/Jakarta are not supported)",
                    text.trim()
                ),
            );
        }
        parsed
    }

    fn status_map(&mut self, key: &str, value: &Value) -> BTreeMap<String, Status> {
        let mut map = BTreeMap::new();
        let Some(dict) = self.table(key, value) else {
            return map;
        };
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (platform_status, canonical) in dict {
            let entry_key = format!("{key}.{platform_status}");
            let lower = platform_status.trim().to_lowercase();
            if let Some(other) = seen.insert(lower.clone(), platform_status) {
                self.error(
                    canonical,
                    &entry_key,
                    format!(
                        "`{platform_status}` and `{other}` are the same status (keys match \
                         case-insensitively); keep one"
                    ),
                );
                continue;
            }
            let Some(text) = self.text(&entry_key, canonical) else {
                continue;
            };
            match Status::from_str(&text) {
                Ok(status) => {
                    map.insert(lower, status);
                }
                Err(e) => self.error(canonical, &entry_key, e.to_string()),
            }
        }
        map
    }

    // ---- tables ----

    fn daemon(&mut self, value: Option<&Value>) -> DaemonConfig {
        let mut d = DaemonConfig::default();
        d.platforms_dir = self.g.base_dir.join(&d.platforms_dir);
        let Some(dict) = value.and_then(|v| self.table("daemon", v)) else {
            return d;
        };
        for (name, value) in dict {
            let key = format!("daemon.{name}");
            let key = key.as_str();
            match name.as_str() {
                "database" => {
                    if let Some(db) = self.database(key, value) {
                        d.database = db;
                    }
                }
                // Read after the loop: they belong to the URL, wherever the keys come in order.
                "database_password_file" | "database_password" => {}
                "platforms_dir" => {
                    if let Some(p) = self.path(key, value) {
                        d.platforms_dir = p;
                    }
                }
                "push_interval" => {
                    if let Some(t) = self.positive_duration(key, value) {
                        d.push_interval = t;
                    }
                }
                "log_level" => {
                    if let Some(level) = self.text(key, value) {
                        match tracing_subscriber::EnvFilter::try_new(level.trim()) {
                            Ok(_) => d.log_level = level.trim().to_string(),
                            Err(e) => self.error(
                                value,
                                key,
                                format!(
                                    "\"{level}\" is not a log filter ({e}); write a level like \
                                     \"info\" or \"debug\", or directives like \
                                     \"info,ordersync=debug\""
                                ),
                            ),
                        }
                    }
                }
                "log_format" => {
                    if let Some(text) = self.text(key, value) {
                        match text.trim().to_ascii_lowercase().as_str() {
                            "auto" => d.log_format = LogFormat::Auto,
                            "text" => d.log_format = LogFormat::Text,
                            "json" => d.log_format = LogFormat::Json,
                            _ => self.error(
                                value,
                                key,
                                format!("\"{text}\" is not a log format; use auto, text or json"),
                            ),
                        }
                    }
                }
                "metrics_listen" => {
                    if let Some(text) = self.text(key, value) {
                        let text = text.trim();
                        // Empty text turns a listener set in a lower layer off again.
                        if text.is_empty() {
                            d.metrics_listen = None;
                        } else {
                            match text.parse::<SocketAddr>() {
                                Ok(addr) => d.metrics_listen = Some(addr),
                                Err(_) => self.error(
                                    value,
                                    key,
                                    format!(
                                        "\"{text}\" is not an address to listen on; write an IP \
                                         and port like \"127.0.0.1:9898\" or \"[::1]:9898\""
                                    ),
                                ),
                            }
                        }
                    }
                }
                "shutdown_grace" => {
                    if let Some(t) = self.duration(key, value) {
                        d.shutdown_grace = t;
                    }
                }
                "health_max_age" => {
                    if let Some(t) = self.positive_duration(key, value) {
                        d.health_max_age = t;
                    }
                }
                "busy_timeout" => {
                    if let Some(t) = self.positive_duration(key, value) {
                        d.busy_timeout = t;
                    }
                }
                "lease_period" => {
                    if let Some(t) = self.positive_duration(key, value) {
                        if t < std::time::Duration::from_secs(3) {
                            self.error(
                                value,
                                key,
                                "a lease period under 3s leaves no time to renew it; use \"3s\" \
                                 or more (the default, \"30s\", suits most installations)"
                                    .to_string(),
                            );
                        } else {
                            d.lease_period = t;
                        }
                    }
                }
                "max_concurrent_runs" => {
                    if let Some(n) = self.u32_in(key, value, 1, 10_000) {
                        d.max_concurrent_runs = n as usize;
                    }
                }
                _ => self.unknown_in(value, key, name, DAEMON_KEYS),
            }
        }
        self.database_password(dict, &mut d);
        d
    }

    /// `daemon.database`: a PostgreSQL URL, or else a path to a SQLite file.
    fn database(&mut self, key: &str, value: &Value) -> Option<Database> {
        let text = self.text(key, value)?;
        if !Database::is_postgres_url(&text) {
            return self.path(key, value).map(Database::Sqlite);
        }
        match super::parse_postgres_url(&text) {
            Ok(target) => Some(Database::Postgres(target)),
            Err(problems) => {
                for p in problems {
                    self.error(value, key, p);
                }
                None
            }
        }
    }

    /// The PostgreSQL password: `daemon.database_password_file` (a secret file, like every
    /// `<key>_file`), or `database_password` set by an environment variable
    /// (`ORDERSYNC_DAEMON__DATABASE_PASSWORD`) — never written inline in a file, which others
    /// read.
    fn database_password(&mut self, dict: &Dict, d: &mut DaemonConfig) {
        let file_key = "daemon.database_password_file";
        let inline_key = "daemon.database_password";
        let from_file = dict.get("database_password_file");
        let inline = dict.get("database_password");
        if let Some(i) = inline
            && !self.g.is_from_env(i)
        {
            self.error(
                i,
                inline_key,
                "a password is never written in the configuration; put it in a file readable \
                 only by the daemon's user and name it with daemon.database_password_file",
            );
            return;
        }
        if from_file.is_none() && inline.is_none() {
            return;
        }
        let secret = match (inline, from_file) {
            (Some(i), _) => self.text(inline_key, i).and_then(|t| {
                if t.is_empty() {
                    self.error(i, inline_key, "is empty");
                    None
                } else {
                    Some(Secret::new(t))
                }
            }),
            (None, Some(f)) => self.secret_file(file_key, f),
            (None, None) => None,
        };
        // With a SQLite `database` it is read by `migrate-store` only (the password of the
        // PostgreSQL database the store moves to).
        if let Database::Postgres(target) = &mut d.database {
            target.password = secret.clone();
        }
        d.database_password = secret;
    }

    /// The shared platform keys of one table; `kind`, `base_url` and `auth` are left to
    /// [`Self::platform`] (and refused in `[defaults]`).
    fn layer(&mut self, prefix: &str, dict: &Dict, is_defaults: bool) -> Layer {
        let mut l = Layer::default();
        for (name, value) in dict {
            let key = format!("{prefix}.{name}");
            let key = key.as_str();
            match name.as_str() {
                "enabled" => l.enabled = self.boolean(key, value),
                "schedule" => l.schedule = self.cron(key, value),
                "reconcile_schedule" => {
                    l.reconcile_schedule = match value {
                        Value::String(_, s) if is_off(s) => Some(None),
                        _ => self.cron(key, value).map(Some),
                    }
                }
                "verify_schedule" => {
                    l.verify_schedule = match value {
                        Value::String(_, s) if is_off(s) => Some(None),
                        _ => self.cron(key, value).map(Some),
                    }
                }
                "verify_repair" => l.verify_repair = self.boolean(key, value),
                "backfill_from" => l.backfill_from = self.datetime(key, value),
                "lookback" => l.lookback = self.duration(key, value),
                "page_size" => l.page_size = self.u32_in(key, value, 1, 1000),
                "timeout" => l.timeout = self.positive_duration(key, value),
                "max_requests_per_second" => {
                    l.max_requests_per_second = self.float(key, value).and_then(|r| {
                        if r.is_finite() && r > 0.0 {
                            Some(r)
                        } else {
                            self.error(value, key, format!("{r} is not allowed: must be above 0"));
                            None
                        }
                    })
                }
                "status_map" => l.status_map = self.status_map(key, value),
                "retry" => {
                    if let Some(retry) = self.table(key, value) {
                        for (rname, rvalue) in retry {
                            let rkey = format!("{key}.{rname}");
                            let rkey = rkey.as_str();
                            match rname.as_str() {
                                "max_attempts" => {
                                    l.max_attempts = self.u32_in(rkey, rvalue, 1, u32::MAX)
                                }
                                "initial_interval" => {
                                    l.initial_interval = self.positive_duration(rkey, rvalue)
                                }
                                "max_interval" => {
                                    l.max_interval = self.positive_duration(rkey, rvalue)
                                }
                                _ => self.unknown_in(rvalue, rkey, rname, RETRY_KEYS),
                            }
                        }
                    }
                }
                "timezone" => l.timezone = self.timezone(key, value),
                "reconcile_horizon" => l.reconcile_horizon = self.duration(key, value),
                "final_watch" => l.final_watch = self.duration(key, value),
                "reject_hold" => l.reject_hold = self.duration(key, value),
                "api_prefix" => {
                    l.api_prefix = self.text(key, value).map(|t| {
                        let t = t.trim().trim_matches('/');
                        (!t.is_empty()).then(|| format!("/{t}"))
                    })
                }
                _ if OWN_PLATFORM_KEYS.contains(&name.as_str()) => {
                    if is_defaults {
                        self.error(
                            value,
                            key,
                            format!(
                                "`{name}` cannot be set in [defaults]; set it in each \
                                 [platforms.<name>] table"
                            ),
                        );
                    }
                }
                _ => {
                    let allowed: Vec<&str> = if is_defaults {
                        SHARED_PLATFORM_KEYS.to_vec()
                    } else {
                        OWN_PLATFORM_KEYS
                            .iter()
                            .chain(SHARED_PLATFORM_KEYS)
                            .copied()
                            .collect()
                    };
                    self.unknown_in(value, key, name, &allowed);
                }
            }
        }
        l
    }

    fn platform(
        &mut self,
        name: &str,
        value: &Value,
        defaults: &Layer,
        now: DateTime<Utc>,
    ) -> Option<PlatformConfig> {
        let errors_before = self.errors.len();
        let prefix = format!("platforms.{name}");
        let file = self
            .g
            .declared
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.g.main_file.clone());

        if !valid_name(name) {
            self.error_in(
                &file,
                &prefix,
                format!(
                    "invalid platform name `{name}`: use lowercase letters, digits, `_` and `-` \
                     (the name is the platform's id in logs, the CLI and the database)"
                ),
            );
        }
        let dict = self.table(&prefix, value)?;
        let own = self.layer(&prefix, dict, false);

        let kind_key = format!("{prefix}.kind");
        let kind = match dict.get("kind") {
            None => {
                self.error_in(
                    &file,
                    &kind_key,
                    format!("missing; set it to one of {}", self.kinds.names()),
                );
                None
            }
            Some(v) => self
                .text(&kind_key, v)
                .and_then(|text| match self.kinds.find(&text) {
                    Ok(kind) => Some(kind),
                    Err(e) => {
                        self.error(v, &kind_key, e.to_string());
                        None
                    }
                }),
        };

        let url_key = format!("{prefix}.base_url");
        let base_url = match dict.get("base_url") {
            None => {
                self.error_in(
                    &file,
                    &url_key,
                    "missing; set it to the platform's address, like \"https://shop.example.com\"",
                );
                None
            }
            Some(v) => self.base_url(&url_key, v),
        };

        let auth = kind.and_then(|kind| self.auth(&prefix, &file, kind, dict.get("auth")));
        let api = match (kind, &auth, dict.get("api")) {
            (Some(k), Some(auth), Some(v)) if k.is_described() => {
                let keys = auth.keys().map(str::to_string).collect();
                self.api(&prefix, v, &keys).map(|mut api| {
                    api.list.zone = own.timezone.or(defaults.timezone);
                    Some(std::sync::Arc::new(api))
                })
            }
            (Some(k), _, None) if k.is_described() => {
                self.error_in(
                    &file,
                    &format!("{prefix}.api"),
                    format!(
                        "missing: a platform of kind {k} describes its API in                          [{prefix}.api] (see the README, \"Add a platform that is not built in\")"
                    ),
                );
                None
            }
            (Some(k), _, Some(v)) if !k.is_described() => {
                self.error(
                    v,
                    &format!("{prefix}.api"),
                    format!(
                        "kind {k} is built in and takes no [api] table; only kind = \"rest\"                          platforms describe their API"
                    ),
                );
                None
            }
            _ => Some(None),
        };

        let retry = RetryConfig {
            max_attempts: own
                .max_attempts
                .or(defaults.max_attempts)
                .unwrap_or(RetryConfig::default().max_attempts),
            initial_interval: own
                .initial_interval
                .or(defaults.initial_interval)
                .unwrap_or(RetryConfig::default().initial_interval),
            max_interval: own
                .max_interval
                .or(defaults.max_interval)
                .unwrap_or(RetryConfig::default().max_interval),
        };
        if retry.max_interval < retry.initial_interval {
            self.error_in(
                &file,
                &format!("{prefix}.retry.max_interval"),
                format!(
                    "{} is shorter than retry.initial_interval ({}); make it at least as long",
                    humantime::format_duration(retry.max_interval),
                    humantime::format_duration(retry.initial_interval)
                ),
            );
        }

        let (kind, base_url, auth, api) = (kind?, base_url?, auth?, api?);
        if self.errors.len() > errors_before {
            return None;
        }

        // Without an updated-time filter a platform needs reconcile to see old orders change,
        // so [defaults] tunes it for those kinds only; an akinon platform reconciles only when
        // its own table asks for it.
        let reconcile_schedule = match own.reconcile_schedule {
            Some(s) => s,
            None if api
                .as_ref()
                .map_or(kind.has_updated_filter(), |a| a.sees_updates()) =>
            {
                None
            }
            None => defaults
                .reconcile_schedule
                .clone()
                .unwrap_or_else(|| super::default_reconcile_schedule(kind)),
        };
        let mut status_map = defaults.status_map.clone();
        status_map.extend(own.status_map);

        Some(PlatformConfig {
            name: name.to_string(),
            kind,
            file,
            base_url,
            enabled: own.enabled.or(defaults.enabled).unwrap_or(true),
            schedule: own
                .schedule
                .or_else(|| defaults.schedule.clone())
                .unwrap_or_else(|| super::DEFAULT_SCHEDULE.to_string()),
            reconcile_schedule,
            backfill_from: own
                .backfill_from
                .or(defaults.backfill_from)
                .unwrap_or(now - super::DEFAULT_BACKFILL),
            lookback: own
                .lookback
                .or(defaults.lookback)
                .unwrap_or(Duration::from_secs(15 * 60)),
            page_size: own.page_size.or(defaults.page_size).unwrap_or(100),
            timeout: own
                .timeout
                .or(defaults.timeout)
                .unwrap_or(Duration::from_secs(30)),
            max_requests_per_second: own
                .max_requests_per_second
                .or(defaults.max_requests_per_second)
                .unwrap_or(3.0),
            status_map,
            retry,
            auth,
            timezone: own.timezone.or(defaults.timezone),
            reconcile_horizon: own.reconcile_horizon.or(defaults.reconcile_horizon),
            final_watch: own
                .final_watch
                .or(defaults.final_watch)
                .unwrap_or(super::DEFAULT_FINAL_WATCH),
            reject_hold: own
                .reject_hold
                .or(defaults.reject_hold)
                .unwrap_or(super::DEFAULT_REJECT_HOLD),
            verify_schedule: own
                .verify_schedule
                .or_else(|| defaults.verify_schedule.clone())
                .flatten(),
            verify_repair: own
                .verify_repair
                .or(defaults.verify_repair)
                .unwrap_or(false),
            api_prefix: own
                .api_prefix
                .or_else(|| defaults.api_prefix.clone())
                .flatten(),
            api,
        })
    }

    fn base_url(&mut self, key: &str, value: &Value) -> Option<reqwest::Url> {
        let text = self.text(key, value)?;
        // The parser's message never quotes the input: a URL may carry a password.
        let url = match reqwest::Url::parse(text.trim()) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    value,
                    key,
                    format!("not a URL ({e}); write one like \"https://shop.example.com\""),
                );
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            self.error(
                value,
                key,
                format!(
                    "unsupported scheme `{}`; use https:// (or http://)",
                    url.scheme()
                ),
            );
            return None;
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.error(value, key, "the URL has no host");
            return None;
        }
        // A query would be lost or doubled when endpoint paths are joined on, and may carry a
        // token that Url's Debug would print.
        if url.query().is_some() || url.fragment().is_some() {
            self.error(
                value,
                key,
                "base_url takes no query (`?…`) or fragment (`#…`); give the shop's address only",
            );
            return None;
        }
        // Url's Debug would print the password into every `{:?}` of the config.
        if !url.username().is_empty() || url.password().is_some() {
            self.error(
                value,
                key,
                "credentials do not belong in base_url; put them in the platform's [auth] table",
            );
            return None;
        }
        Some(url)
    }

    /// The auth table of a platform of `kind`: known keys only, each given once (as `key` or
    /// `key_file`), secret files read, and one accepted combination complete.
    fn auth(
        &mut self,
        prefix: &str,
        file: &Path,
        kind: Kind,
        value: Option<&Value>,
    ) -> Option<Auth> {
        let errors_before = self.errors.len();
        let auth_key = format!("{prefix}.auth");
        let allowed: Vec<&'static str> = kind.auth_keys().collect();
        let empty = Dict::new();
        let dict = match value {
            Some(v) => self.table(&auth_key, v)?,
            None => &empty,
        };

        // key name → (inline value, file value)
        let mut given: BTreeMap<&str, (Option<&Value>, Option<&Value>)> = BTreeMap::new();
        for (name, v) in dict {
            let (base, is_file) = match name.strip_suffix("_file") {
                Some(base) => (base, true),
                None => (name.as_str(), false),
            };
            match allowed.iter().find(|k| **k == base) {
                Some(k) => {
                    let slot = given.entry(k).or_default();
                    if is_file {
                        slot.1 = Some(v);
                    } else {
                        slot.0 = Some(v);
                    }
                }
                None => {
                    let mut names: Vec<String> = Vec::new();
                    for k in &allowed {
                        names.push((*k).to_string());
                        names.push(format!("{k}_file"));
                    }
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let key = format!("{auth_key}.{name}");
                    let message = match suggest(name, &names) {
                        Some(s) => format!("unknown key `{name}` (did you mean `{s}`?)"),
                        None => format!(
                            "unknown key `{name}`; the auth keys of kind {kind} are: {}",
                            names.join(", ")
                        ),
                    };
                    self.error(v, &key, message);
                }
            }
        }

        let mut auth = Auth::default();
        let mut present = BTreeSet::new();
        for (name, (inline, from_file)) in given {
            present.insert(name);
            let inline_key = format!("{auth_key}.{name}");
            let file_key = format!("{auth_key}.{name}_file");
            let chosen = match (inline, from_file) {
                (Some(i), Some(f)) => match (self.g.is_from_env(i), self.g.is_from_env(f)) {
                    // An environment variable overrides the other spelling in a file.
                    (true, false) => (Some(i), None),
                    (false, true) => (None, Some(f)),
                    _ => {
                        self.error(
                            f,
                            &file_key,
                            format!("both `{name}` and `{name}_file` are set; keep one"),
                        );
                        continue;
                    }
                },
                pair => pair,
            };
            // A value set inline by a variable is read once, at start: a reload does not see a
            // new one.
            let env_var = chosen.0.and_then(|i| self.g.env_var(i));
            let secret = match chosen {
                (Some(i), _) => self.text(&inline_key, i).and_then(|t| {
                    if t.is_empty() {
                        self.error(i, &inline_key, "is empty");
                        None
                    } else {
                        Some(Secret::new(t))
                    }
                }),
                (None, Some(f)) => self.secret_file(&file_key, f),
                (None, None) => None,
            };
            if let Some(secret) = secret {
                auth.insert(name, secret);
                if let Some(var) = env_var {
                    auth.set_env_var(name, var);
                }
            }
        }

        let requirements = kind.auth_requirements();
        if !requirements
            .iter()
            .any(|set| set.iter().all(|k| present.contains(k)))
        {
            // Report what is missing from the combination the operator got closest to.
            let closest = requirements
                .iter()
                .max_by_key(|set| {
                    (
                        set.iter().filter(|k| present.contains(*k)).count(),
                        std::cmp::Reverse(set.len()),
                    )
                })
                .copied()
                .unwrap_or(&[]);
            let needs = requirements
                .iter()
                .map(|set| {
                    let keys: Vec<String> = set.iter().map(|k| format!("`{k}`")).collect();
                    keys.join(" and ")
                })
                .collect::<Vec<_>>()
                .join(", or ");
            for missing in closest.iter().filter(|k| !present.contains(*k)) {
                self.error_in(
                    file,
                    &format!("{auth_key}.{missing}"),
                    format!(
                        "missing; {kind} needs {needs} in [{auth_key}] (any of them may be \
                         given as `<key>_file`)"
                    ),
                );
            }
        }

        (self.errors.len() == errors_before).then_some(auth)
    }

    fn secret_file(&mut self, key: &str, value: &Value) -> Option<Secret> {
        let path = self.path(key, value)?;
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let content = content.trim_end();
                if content.is_empty() {
                    self.error(
                        value,
                        key,
                        format!("secret file {} is empty", path.display()),
                    );
                    None
                } else {
                    Some(Secret::new(content))
                }
            }
            Err(e) => {
                self.error(
                    value,
                    key,
                    format!("cannot read secret file {}: {e}", path.display()),
                );
                None
            }
        }
    }
}

fn is_off(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.eq_ignore_ascii_case("off")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_toml_datetime(dict: &Dict) -> bool {
    dict.len() == 1 && dict.contains_key(TOML_DATETIME_FIELD)
}

fn toml_datetime_text(dict: &Dict) -> Option<String> {
    dict.get(TOML_DATETIME_FIELD)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn num_f64(n: &Num) -> f64 {
    n.to_f64()
        .or_else(|| n.to_i128().map(|i| i as f64))
        .or_else(|| n.to_u128().map(|u| u as f64))
        .unwrap_or(f64::NAN)
}

fn num_text(n: &Num) -> String {
    if let Some(i) = n.to_i128() {
        i.to_string()
    } else if let Some(u) = n.to_u128() {
        u.to_string()
    } else {
        n.to_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

/// What a value is, for "expected X, found Y". Never the value itself: it may be a secret.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(..) => "text",
        Value::Char(..) => "a character",
        Value::Bool(..) => "a boolean",
        Value::Num(_, n) if num_f64(n).fract() != 0.0 => "a fractional number",
        Value::Num(..) => "a number",
        Value::Empty(..) => "nothing",
        Value::Dict(_, d) if is_toml_datetime(d) => "a TOML date-time",
        Value::Dict(..) => "a table",
        Value::Array(..) => "an array",
    }
}

/// `UTC`, `Z`, `+07`, `+07:00`, `+0700`, `-05:30`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    if text.eq_ignore_ascii_case("utc") || text.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || rest.matches(':').count() > 1 {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The allowed key closest to a misspelt one, if it is close enough to be a typo.
fn suggest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (levenshtein(name, a), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_gets_a_suggestion_and_a_foreign_one_does_not() {
        assert_eq!(suggest("shedule", SHARED_PLATFORM_KEYS), Some("schedule"));
        assert_eq!(suggest("pagesize", SHARED_PLATFORM_KEYS), Some("page_size"));
        assert_eq!(suggest("colour", SHARED_PLATFORM_KEYS), None);
    }

    #[test]
    fn utc_offsets_are_read_in_their_usual_spellings() {
        let east = |s| FixedOffset::east_opt(s).unwrap();
        assert_eq!(parse_offset("UTC"), Some(east(0)));
        assert_eq!(parse_offset("+07:00"), Some(east(7 * 3600)));
        assert_eq!(parse_offset("+0700"), Some(east(7 * 3600)));
        assert_eq!(parse_offset("-05:30"), Some(east(-(5 * 3600 + 1800))));
        assert_eq!(parse_offset("+07"), Some(east(7 * 3600)));
        assert_eq!(parse_offset("Asia/Jakarta"), None);
        assert_eq!(parse_offset("+25:00"), None);
        assert_eq!(parse_offset("+07:0:0"), None);
    }

    #[test]
    fn platform_names_are_lowercase_letters_digits_underscores_and_dashes() {
        assert!(valid_name("shop-ro_2"));
        assert!(!valid_name("Shop"));
        assert!(!valid_name("shop ro"));
        assert!(!valid_name("shop.ro"));
        assert!(!valid_name(""));
    }
}
