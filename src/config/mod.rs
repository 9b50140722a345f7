//! Configuration (docs/contract.md §2): the typed [`Config`] every module reads, and [`load`],
//! which layers the main file, every `*.toml` in `platforms.d/` and `ORDERSYNC_*` environment
//! variables with figment, validates the lot strictly and reports every problem at once, each
//! naming the file (or environment variable) and the dotted key it came from.
//!
//! Submodules: [`sources`] finds and layers the inputs, [`validate`] turns the merged tree into
//! typed values, [`duration`] parses `"15m"`-style durations, [`secret`] keeps credentials out of
//! every printout.

pub mod api;
mod database;
mod duration;
mod kind;
mod secret;
mod sink;
mod sources;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::model::Status;

pub use database::{Database, PgTarget, SslMode, parse_postgres_url};
pub use kind::{AuthKey, Kind, KindSpec, Kinds, UnknownKind};
pub use secret::Secret;
pub use sink::{SinkConfig, SinkStartAt, SinkTarget, render_subject};

/// Where the main file is when neither `--config` nor `ORDERSYNC_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ordersync/ordersync.toml";

/// The environment variable naming the main file; it is not a configuration key.
pub const CONFIG_ENV_VAR: &str = "ORDERSYNC_CONFIG";

/// `daemon.log_format`: `auto` picks journald-friendly text under systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file as loaded (made absolute), for messages and for reloading on SIGHUP.
    pub main_file: PathBuf,
    pub daemon: DaemonConfig,
    /// Sorted by name.
    pub platforms: Vec<PlatformConfig>,
    /// `[sinks.<name>]`, sorted by name.
    pub sinks: Vec<SinkConfig>,
}

impl Config {
    pub fn platform(&self, name: &str) -> Option<&PlatformConfig> {
        self.platforms.iter().find(|p| p.name == name)
    }

    pub fn sink(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    pub fn enabled_platforms(&self) -> impl Iterator<Item = &PlatformConfig> {
        self.platforms.iter().filter(|p| p.enabled)
    }

    /// A warning when `daemon.platforms_dir` holds no platform file. Valid (platforms may be
    /// declared in the main file, or not yet at all), so not an error, but a misspelt path
    /// would otherwise pass as "0 platforms" with nothing said.
    pub fn platforms_dir_warning(&self) -> Option<String> {
        let dir = &self.daemon.platforms_dir;
        if !dir.exists() {
            return Some(format!(
                "daemon.platforms_dir = {} does not exist, so no platform file was read; create \
                 it, or correct the path in {}",
                dir.display(),
                self.main_file.display()
            ));
        }
        // Problems listing it were reported by `load` already.
        sources::list_platform_files(dir, &mut Vec::new())
            .is_empty()
            .then(|| {
                format!(
                    "daemon.platforms_dir = {} holds no *.toml platform files; each platform is \
                     declared in one there, as [platforms.<name>]",
                    dir.display()
                )
            })
    }
}

/// `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// A SQLite file (relative paths are resolved against the main file's folder) or a
    /// PostgreSQL database (`postgres://…`, its password from `database_password_file`).
    pub database: Database,
    /// `database_password_file` (or `ORDERSYNC_DAEMON__DATABASE_PASSWORD`): also kept beside a
    /// PostgreSQL target's own copy, so `migrate-store` finds it while `database` still names
    /// the SQLite file.
    pub database_password: Option<Secret>,
    /// Relative paths are resolved against the main file's folder.
    pub platforms_dir: PathBuf,
    pub push_interval: Duration,
    /// tracing filter syntax.
    pub log_level: String,
    pub log_format: LogFormat,
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown_grace: Duration,
    /// Age of a platform's last successful run after which `/health` answers 503.
    pub health_max_age: Duration,
    /// How long a database write waits on another process's lock before it fails (and is
    /// retried by the next run).
    pub busy_timeout: Duration,
    /// How many scheduled runs (sync, reconcile, verify) go at once; the others wait their
    /// turn. What a run holds (a page in flight, a connection, its buffers) times the runs
    /// going is the daemon's memory, so this bounds it however many platforms there are.
    pub max_concurrent_runs: usize,
    /// On a database several daemons share: how long a daemon's hold on a platform or sink
    /// lasts unless renewed (every third of it). A daemon that dies frees its platforms this
    /// long after its last renewal.
    pub lease_period: Duration,
}

/// Runs going at once by default: enough for hundreds of platforms every minute on two cores
/// (a run mostly waits on the platform), few enough that their pages stay within tens of MiB.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 32;

impl Default for DaemonConfig {
    /// The built-in defaults, with `platforms_dir` still relative (it has no main file to be
    /// relative to); [`load`] always resolves it.
    fn default() -> Self {
        DaemonConfig {
            database: Database::Sqlite(PathBuf::from("/var/lib/ordersync/ordersync.db")),
            database_password: None,
            platforms_dir: PathBuf::from("platforms.d"),
            push_interval: Duration::from_secs(15),
            log_level: "info".to_string(),
            log_format: LogFormat::Auto,
            metrics_listen: None,
            shutdown_grace: Duration::from_secs(20),
            health_max_age: Duration::from_secs(3600),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            lease_period: Duration::from_secs(30),
        }
    }
}

/// One `[platforms.<name>]` table, with `[defaults]` and the built-in defaults applied.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The platform's id everywhere (logs, CLI, database).
    pub name: String,
    pub kind: Kind,
    /// The file that declared `[platforms.<name>]`.
    pub file: PathBuf,
    pub base_url: reqwest::Url,
    pub enabled: bool,
    /// Six fields, seconds first (a five-field value gets `"0 "` prepended), or a croner
    /// nickname such as `@hourly`.
    pub schedule: String,
    /// Same form as `schedule`; `None` means no reconcile pass.
    pub reconcile_schedule: Option<String>,
    pub backfill_from: DateTime<Utc>,
    pub lookback: Duration,
    /// 1..=1000; the platform code clamps it to the platform's own maximum.
    pub page_size: u32,
    pub timeout: Duration,
    pub max_requests_per_second: f64,
    /// Keys lower-cased: platform statuses match case-insensitively.
    pub status_map: BTreeMap<String, Status>,
    pub retry: RetryConfig,
    pub auth: Auth,
    pub timezone: Option<FixedOffset>,
    /// An optional cap on how old a watched order may be: open orders placed before it are not
    /// re-read by reconcile, but counted and reported. `None` (the default) watches every open
    /// order however old.
    pub reconcile_horizon: Option<Duration>,
    /// How long after the store saw an order become final (delivered, cancelled, returned,
    /// rejected) reconcile still re-reads it, for kinds whose incremental filter cannot see a
    /// return after delivery or a later correction. Zero turns it off.
    pub final_watch: Duration,
    /// How long a pass that stored rejects holds its window's start, so the rejected records
    /// are read again once the platform fixes them. A record bad for longer is left in
    /// `rejects` and reported.
    pub reject_hold: Duration,
    /// When the daemon compares the store with the platform (`ordersync verify`); `None`
    /// (the default): never on its own.
    pub verify_schedule: Option<String>,
    /// Whether the scheduled verify also repairs what it finds (through the change feed).
    pub verify_repair: bool,
    /// A path prefix such as `/api/v1`: starts with `/`, no trailing `/`.
    pub api_prefix: Option<String>,
    /// The description of the platform's API (`[platforms.<name>.api]`), for kinds that are
    /// described rather than built in ([`Kind::is_described`]); `None` for the others.
    pub api: Option<std::sync::Arc<api::ApiSpec>>,
}

impl PlatformConfig {
    /// A platform with every optional key at its built-in default and no credentials; for code
    /// that builds configurations itself (the demo, tests). `file` is left empty.
    pub fn new(name: impl Into<String>, kind: Kind, base_url: reqwest::Url) -> Self {
        PlatformConfig {
            name: name.into(),
            kind,
            file: PathBuf::new(),
            base_url,
            enabled: true,
            schedule: DEFAULT_SCHEDULE.to_string(),
            reconcile_schedule: default_reconcile_schedule(kind),
            backfill_from: Utc::now() - DEFAULT_BACKFILL,
            lookback: Duration::from_secs(15 * 60),
            page_size: 100,
            timeout: Duration::from_secs(30),
            max_requests_per_second: 3.0,
            status_map: BTreeMap::new(),
            retry: RetryConfig::default(),
            auth: Auth::default(),
            timezone: None,
            reconcile_horizon: None,
            final_watch: DEFAULT_FINAL_WATCH,
            reject_hold: DEFAULT_REJECT_HOLD,
            verify_schedule: None,
            verify_repair: false,
            api_prefix: None,
            api: None,
        }
    }
}

impl PlatformConfig {
    /// Whether the platform's list filter sees updates: its description says, for a described
    /// kind, else the kind.
    pub fn sees_updates(&self) -> bool {
        match &self.api {
            Some(api) => api.sees_updates(),
            None => self.kind.has_updated_filter(),
        }
    }

    /// The canonical actions `transition` may queue for this platform.
    pub fn push_actions(&self) -> Vec<&'static str> {
        match &self.api {
            Some(api) => api.push.keys().map(|s| s.as_str()).collect(),
            None => self.kind.push_actions().to_vec(),
        }
    }

    /// Where this platform's credentials are set, for the hint of a refused-credentials error:
    /// the auth table's file, and the environment variables that override it.
    pub fn auth_source(&self) -> String {
        let table = format!(
            "the keys under [platforms.{}.auth] in {}",
            self.name,
            self.file.display()
        );
        let vars: Vec<&str> = self.auth.env_vars().collect();
        if vars.is_empty() {
            return table;
        }
        format!(
            "{table}, overridden by environment variable{} {}, which only a restart of the \
             daemon re-reads (a reload does not)",
            if vars.len() == 1 { "" } else { "s" },
            vars.join(", ")
        )
    }

    /// What to do once the refused credentials are fixed, for the daemon's warning: reload when
    /// they all come from files, restart when an environment variable gives one, since a reload
    /// does not re-read the environment.
    pub fn auth_fix_advice(&self) -> String {
        let vars: Vec<&str> = self.auth.env_vars().collect();
        if vars.is_empty() {
            format!(
                "fix the keys under [platforms.{}.auth] in {} and reload (systemctl reload \
                 ordersync)",
                self.name,
                self.file.display()
            )
        } else {
            format!(
                "fix environment variable{} {} and restart the daemon (systemctl restart \
                 ordersync): a reload does not re-read the environment",
                if vars.len() == 1 { "" } else { "s" },
                vars.join(", ")
            )
        }
    }
}

/// How long a statement waits on another process's lock before failing, unless
/// `daemon.busy_timeout` says otherwise. Long enough to ride out a reporting query or a backup,
/// short enough that a stuck lock surfaces in the logs.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) const DEFAULT_SCHEDULE: &str = "0 */5 * * * *";
pub(crate) const DEFAULT_RECONCILE_SCHEDULE: &str = "0 */30 * * * *";
pub(crate) const DEFAULT_BACKFILL: chrono::TimeDelta = chrono::TimeDelta::days(30);
pub(crate) const DEFAULT_FINAL_WATCH: Duration = Duration::from_secs(30 * 24 * 3600);
pub(crate) const DEFAULT_REJECT_HOLD: Duration = Duration::from_secs(24 * 3600);

/// Kinds with an updated-time filter see every change through the incremental pass, so they
/// reconcile only when asked to.
pub(crate) fn default_reconcile_schedule(kind: Kind) -> Option<String> {
    (!kind.has_updated_filter()).then(|| DEFAULT_RECONCILE_SCHEDULE.to_string())
}

/// `[platforms.<name>.retry]`: how the outbox retries a push.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial_interval: Duration,
    pub max_interval: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(600),
        }
    }
}

/// Auth values by key name (`api_key`, `api_secret`, `partner_id`, `secret`, `token`, `email`,
/// `password`, `user_id`, `username`), already read from `<key>_file` where one was given.
///
/// Every value is held as a [`Secret`] so that `Debug` of a config never shows one, even the
/// ones docs/contract.md §2 does not count as secret.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    values: BTreeMap<String, Secret>,
    /// Key → the environment variable that gave its value inline (not as a `_file` path).
    env_vars: BTreeMap<String, String>,
}

impl Auth {
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.values.get(key)
    }

    /// Sets a value; for code that builds configurations itself (the demo, tests).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Secret>) {
        self.values.insert(key.into(), value.into());
    }

    /// Records that `key`'s value came from the environment variable `var`.
    pub fn set_env_var(&mut self, key: impl Into<String>, var: impl Into<String>) {
        self.env_vars.insert(key.into(), var.into());
    }

    /// The environment variables that gave auth values, in key order. The process environment
    /// is read once: a reload (SIGHUP) does not see a changed value, only a restart does.
    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.env_vars.values().map(String::as_str)
    }

    /// The keys that have a value.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The values that are secrets for `kind` (its auth keys that authenticate rather than
    /// identify). Log redaction uses these.
    pub fn secrets(&self, kind: Kind) -> impl Iterator<Item = &Secret> {
        self.values
            .iter()
            .filter(move |(k, _)| kind.is_secret(k))
            .map(|(_, v)| v)
    }
}

/// One configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// A file path, or `environment variable ORDERSYNC_...` when the value came from the
    /// environment.
    pub file: String,
    /// The dotted key (`platforms.shop-ro.schedule`); empty for problems with a whole file.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found by one [`load`]; never empty.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads and validates the configuration, with `ORDERSYNC_*` variables from the process
/// environment.
pub fn load(main_file: &Path, kinds: Kinds) -> Result<Config, ConfigErrors> {
    let mut env = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        match value.into_string() {
            Ok(value) => env.push((name.to_string(), value)),
            Err(_) if sources::is_config_var(name) => errors.push(ConfigError::new(
                format!("environment variable {name}"),
                "",
                "the value is not valid UTF-8",
            )),
            Err(_) => {}
        }
    }
    load_inner(main_file, kinds, &env, errors)
}

/// [`load`] with an explicit environment (`(name, value)` pairs), so tests need not touch the
/// process environment.
pub fn load_with_env(
    main_file: &Path,
    kinds: Kinds,
    env: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    load_inner(main_file, kinds, env, Vec::new())
}

fn load_inner(
    main_file: &Path,
    kinds: Kinds,
    env: &[(String, String)],
    mut errors: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    let gathered = match sources::gather(main_file, env) {
        Ok(g) => g,
        Err(e) => {
            errors.extend(e);
            return Err(ConfigErrors(errors));
        }
    };
    errors.extend(gathered.errors.iter().cloned());
    match validate::validate(&gathered, kinds, Utc::now()) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(e) => {
            errors.extend(e);
            Err(ConfigErrors(errors))
        }
    }
}

/// `ORDERSYNC_CONFIG` if set and not empty, else `/etc/ordersync/ordersync.toml`.
pub fn default_config_path() -> PathBuf {
    match std::env::var_os(CONFIG_ENV_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}
