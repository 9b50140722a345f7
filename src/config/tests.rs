//! The configuration contract (docs/contract.md §2), one rule per test, on throw-away directories.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use tempfile::TempDir;

use super::*;

const MERCHANTPRO: &str = r#"
[platforms.shop-ro]
kind = "merchantpro"
base_url = "https://shop.example.ro"
[platforms.shop-ro.auth]
api_key = "key-ro"
api_secret = "secret-ro"
"#;

/// A main file in a temporary folder, with helpers to add platform and secret files.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new(main: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ordersync.toml"), main).unwrap();
        Setup { dir }
    }

    fn main_file(&self) -> PathBuf {
        self.dir.path().join("ordersync.toml")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `relative` (creating folders) and returns its path.
    fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    fn platform_file(&self, name: &str, content: &str) -> PathBuf {
        self.write(&format!("platforms.d/{name}"), content)
    }

    fn load(&self) -> Config {
        self.load_env(&[])
    }

    fn load_env(&self, env: &[(&str, &str)]) -> Config {
        match load_with_env(&self.main_file(), crate::platforms::kinds(), &env_of(env)) {
            Ok(config) => config,
            Err(e) => panic!("expected the configuration to load, got:\n{e}"),
        }
    }

    fn errors(&self) -> Vec<ConfigError> {
        self.errors_env(&[])
    }

    fn errors_env(&self, env: &[(&str, &str)]) -> Vec<ConfigError> {
        match load_with_env(&self.main_file(), crate::platforms::kinds(), &env_of(env)) {
            Ok(config) => panic!("expected errors, got {config:#?}"),
            Err(ConfigErrors(errors)) => {
                assert!(!errors.is_empty(), "ConfigErrors must not be empty");
                errors
            }
        }
    }
}

fn env_of(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The one error at `key`, with a readable failure listing them all.
fn error_at<'a>(errors: &'a [ConfigError], key: &str) -> &'a ConfigError {
    let found: Vec<&ConfigError> = errors.iter().filter(|e| e.key == key).collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "expected exactly one error at `{key}`, got:\n{}",
            ConfigErrors(errors.to_vec())
        ),
    }
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in {haystack:?}"
    );
}

// ---- main file and daemon ----

#[test]
fn an_empty_main_file_gives_the_documented_daemon_defaults() {
    let s = Setup::new("");
    let config = s.load();
    let d = &config.daemon;
    assert_eq!(config.main_file, s.main_file());
    assert_eq!(
        d.database,
        Database::Sqlite(PathBuf::from("/var/lib/ordersync/ordersync.db"))
    );
    assert_eq!(d.platforms_dir, s.path("platforms.d"));
    assert_eq!(d.push_interval, Duration::from_secs(15));
    assert_eq!(d.log_level, "info");
    assert_eq!(d.log_format, LogFormat::Auto);
    assert_eq!(d.metrics_listen, None);
    assert_eq!(d.shutdown_grace, Duration::from_secs(20));
    assert_eq!(d.health_max_age, Duration::from_secs(3600));
    assert_eq!(d.busy_timeout, Duration::from_secs(10));
    assert_eq!(d.max_concurrent_runs, 32);
    assert!(config.platforms.is_empty());
}

#[test]
fn every_daemon_key_is_read_and_relative_paths_follow_the_main_file() {
    let s = Setup::new(
        r#"
        [daemon]
        database = "state/ordersync.db"
        platforms_dir = "shops"
        push_interval = "1m"
        log_level = "info,ordersync=debug"
        log_format = "json"
        metrics_listen = "127.0.0.1:9898"
        shutdown_grace = "5s"
        health_max_age = "2h"
        busy_timeout = "3s"
        max_concurrent_runs = 8
        "#,
    );
    s.write("shops/a.toml", MERCHANTPRO);
    let config = s.load();
    let d = &config.daemon;
    assert_eq!(d.database, Database::Sqlite(s.path("state/ordersync.db")));
    assert_eq!(d.platforms_dir, s.path("shops"));
    assert_eq!(d.push_interval, Duration::from_secs(60));
    assert_eq!(d.log_level, "info,ordersync=debug");
    assert_eq!(d.log_format, LogFormat::Json);
    assert_eq!(d.metrics_listen, Some("127.0.0.1:9898".parse().unwrap()));
    assert_eq!(d.shutdown_grace, Duration::from_secs(5));
    assert_eq!(d.health_max_age, Duration::from_secs(7200));
    assert_eq!(d.busy_timeout, Duration::from_secs(3));
    assert_eq!(d.max_concurrent_runs, 8);
    assert_eq!(config.platforms.len(), 1);
}

#[test]
fn a_missing_main_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let ConfigErrors(errors) = load_with_env(&missing, crate::platforms::kinds(), &[]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, shown(&missing));
    assert_contains(&errors[0].message, "does not exist");
}

#[test]
fn a_file_that_is_not_toml_is_an_error_naming_the_file_and_line() {
    let s = Setup::new("[daemon]\nlog_level = \"info\"\n");
    let bad = s.platform_file(
        "broken.toml",
        "[platforms.x]\nkind = \"sirclo\"\nbase_url = \n",
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
    assert_eq!(errors[0].file, shown(&bad));
    assert_eq!(errors[0].key, "");
    assert_contains(&errors[0].message, "line 3");
}

#[test]
fn a_missing_platforms_dir_means_no_platforms() {
    let s = Setup::new("[daemon]\nplatforms_dir = \"/nonexistent/ordersync/platforms.d\"\n");
    assert!(s.load().platforms.is_empty());
}

#[test]
fn a_platforms_dir_that_cannot_be_read_is_an_error_naming_it() {
    let s = Setup::new("");
    // A file where the directory should be: read_dir fails whoever runs the test (root too).
    let not_a_dir = s.write("platforms.d", "");
    let errors = s.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, shown(&not_a_dir));
    assert_contains(&errors[0].message, "cannot read the platforms directory");
}

#[test]
fn an_unknown_daemon_key_is_an_error_with_a_suggestion() {
    let s = Setup::new("[daemon]\nlog_levle = \"debug\"\n");
    let errors = s.errors();
    let e = error_at(&errors, "daemon.log_levle");
    assert_eq!(e.file, shown(&s.main_file()));
    assert_contains(&e.message, "did you mean `log_level`?");
}

#[test]
fn an_unknown_top_level_table_is_an_error_listing_the_known_ones() {
    let s = Setup::new("[deamon]\nlog_level = \"debug\"\n[extra]\n");
    let errors = s.errors();
    assert_contains(
        &error_at(&errors, "deamon").message,
        "did you mean `daemon`?",
    );
    assert_contains(&error_at(&errors, "extra").message, "[daemon], [defaults]");
}

#[test]
fn bad_daemon_values_are_each_reported() {
    let s = Setup::new(
        r#"
        [daemon]
        push_interval = 15
        log_format = "xml"
        metrics_listen = "localhost:9898"
        shutdown_grace = "20 secondz"
        database = ["a"]
        max_concurrent_runs = 0
        lease_period = "2s"
        "#,
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 7, "{}", ConfigErrors(errors.clone()));
    assert_contains(
        &error_at(&errors, "daemon.max_concurrent_runs").message,
        "use 1 to 10000",
    );
    assert_contains(
        &error_at(&errors, "daemon.lease_period").message,
        "under 3s leaves no time to renew it",
    );
    assert_contains(
        &error_at(&errors, "daemon.push_interval").message,
        "\"15m\"",
    );
    assert_contains(
        &error_at(&errors, "daemon.log_format").message,
        "auto, text or json",
    );
    assert_contains(
        &error_at(&errors, "daemon.metrics_listen").message,
        "127.0.0.1:9898",
    );
    assert_contains(
        &error_at(&errors, "daemon.shutdown_grace").message,
        "not a duration",
    );
    assert_contains(
        &error_at(&errors, "daemon.database").message,
        "found an array",
    );
}

// ---- platform files ----

#[test]
fn a_platform_file_in_platforms_d_is_loaded_in_name_order() {
    let s = Setup::new("");
    let a = s.platform_file("a.toml", MERCHANTPRO);
    let b = s.platform_file(
        "b.toml",
        &MERCHANTPRO
            .replace("shop-ro", "shop-bg")
            .replace("-ro", "-bg"),
    );
    // Not configuration: no .toml suffix, or hidden.
    s.platform_file("README", "not toml at all");
    s.platform_file(".hidden.toml", "not toml at all");
    s.platform_file("shop.toml.bak", "not toml at all");
    let config = s.load();
    let names: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["shop-bg", "shop-ro"], "sorted by name");
    assert_eq!(config.platform("shop-ro").unwrap().file, a);
    assert_eq!(config.platform("shop-bg").unwrap().file, b);

    // Name order decides which declaration counts as the first.
    s.platform_file("c.toml", MERCHANTPRO);
    let errors = s.errors();
    let e = error_at(&errors, "platforms.shop-ro");
    assert_eq!(e.file, shown(&s.path("platforms.d/c.toml")));
    assert_contains(&e.message, &format!("already declared in {}", a.display()));
}

#[test]
fn the_main_file_may_declare_platforms_too() {
    let s = Setup::new(MERCHANTPRO);
    let config = s.load();
    assert_eq!(config.platform("shop-ro").unwrap().file, s.main_file());
}

#[test]
fn a_platform_file_holds_only_platform_tables() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shop.toml",
        &format!("[daemon]\nlog_level = \"debug\"\n{MERCHANTPRO}"),
    );
    let errors = s.errors();
    let e = error_at(&errors, "daemon");
    assert_eq!(e.file, shown(&file));
    assert_contains(&e.message, "belongs in the main file");
}

#[test]
fn a_platform_gets_the_built_in_defaults() {
    let s = Setup::new("");
    s.platform_file("shop.toml", MERCHANTPRO);
    s.platform_file(
        "ak.toml",
        "[platforms.ak]\nkind = \"akinon\"\nbase_url = \"https://ak.example.com\"\n\
         auth.token = \"t\"\n",
    );
    let before = Utc::now();
    let config = s.load();
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.kind, crate::platforms::merchantpro::DESCRIPTOR.kind);
    assert_eq!(p.base_url.as_str(), "https://shop.example.ro/");
    assert!(p.enabled);
    assert_eq!(p.schedule, "0 */5 * * * *");
    assert_eq!(p.reconcile_schedule.as_deref(), Some("0 */30 * * * *"));
    let thirty_days = chrono::TimeDelta::days(30);
    assert!(p.backfill_from <= Utc::now() - thirty_days);
    assert!(p.backfill_from >= before - thirty_days);
    assert_eq!(p.lookback, Duration::from_secs(900));
    assert_eq!(p.page_size, 100);
    assert_eq!(p.timeout, Duration::from_secs(30));
    assert_eq!(p.max_requests_per_second, 3.0);
    assert!(p.status_map.is_empty());
    assert_eq!(p.retry.max_attempts, 10);
    assert_eq!(p.retry.initial_interval, Duration::from_secs(2));
    assert_eq!(p.retry.max_interval, Duration::from_secs(600));
    assert_eq!(p.timezone, None);
    assert_eq!(p.reconcile_horizon, None, "no cap unless one is set");
    assert_eq!(p.final_watch, Duration::from_secs(30 * 86400));
    assert_eq!(p.reject_hold, Duration::from_secs(86400));
    assert_eq!(p.api_prefix, None);

    let ak = config.platform("ak").unwrap();
    assert_eq!(ak.reconcile_schedule, None, "akinon filters by update time");
}

#[test]
fn every_platform_key_is_read() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        r#"
        [platforms.ep]
        kind = "epixel"
        base_url = "http://epixel.example.com:8080"
        enabled = false
        schedule = "0 */2 * * * *"
        reconcile_schedule = "0 0 * * * *"
        backfill_from = "2024-01-01T07:00:00+07:00"
        lookback = "1h 30m"
        page_size = 1000
        timeout = "10s"
        max_requests_per_second = 0.5
        status_map = { "Awaiting Payment" = "pending", shipped = "SHIPPED" }
        timezone = "+07:00"
        reconcile_horizon = "7d"
        api_prefix = "api/v1/"
        [platforms.ep.retry]
        max_attempts = 3
        initial_interval = "1s"
        max_interval = "1m"
        [platforms.ep.auth]
        api_key = "k"
        username = "u"
        password = "p"
        "#,
    );
    let config = s.load();
    let p = config.platform("ep").unwrap();
    assert_eq!(p.base_url.scheme(), "http", "plain http is allowed");
    assert!(!p.enabled);
    assert_eq!(config.enabled_platforms().count(), 0);
    assert_eq!(p.schedule, "0 */2 * * * *");
    assert_eq!(p.reconcile_schedule.as_deref(), Some("0 0 * * * *"));
    assert_eq!(
        p.backfill_from,
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(p.lookback, Duration::from_secs(5400));
    assert_eq!(p.page_size, 1000);
    assert_eq!(p.timeout, Duration::from_secs(10));
    assert_eq!(p.max_requests_per_second, 0.5);
    assert_eq!(p.status_map["awaiting payment"], Status::Pending);
    assert_eq!(p.status_map["shipped"], Status::Shipped);
    assert_eq!(p.timezone, FixedOffset::east_opt(7 * 3600));
    assert_eq!(p.reconcile_horizon, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(p.api_prefix.as_deref(), Some("/api/v1"));
    assert_eq!(p.retry.max_attempts, 3);
    assert_eq!(p.retry.initial_interval, Duration::from_secs(1));
    assert_eq!(p.retry.max_interval, Duration::from_secs(60));
    assert_eq!(p.auth.get("username").unwrap().expose(), "u");
}

#[test]
fn an_unquoted_toml_date_time_is_accepted_for_backfill_from() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "base_url = \"https://shop.example.ro\"",
            "base_url = \"https://shop.example.ro\"\nbackfill_from = 2024-03-01T00:00:00Z",
        ),
    );
    let config = s.load();
    assert_eq!(
        config.platform("shop-ro").unwrap().backfill_from,
        Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
    );
}

#[test]
fn the_defaults_table_applies_to_every_platform_and_a_platform_value_wins() {
    let s = Setup::new(
        r#"
        [defaults]
        schedule = "0 */10 * * * *"
        page_size = 50
        lookback = "30m"
        enabled = false
        status_map = { awaiting = "accepted", draft = "pending" }
        [defaults.retry]
        max_attempts = 4
        max_interval = "1h"
        "#,
    );
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "page_size = 200\nenabled = true\nstatus_map = { awaiting = \"pending\" }\n\
             [platforms.shop-ro.retry]\nmax_attempts = 7\n[platforms.shop-ro.auth]",
        ),
    );
    let config = s.load();
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.schedule, "0 */10 * * * *", "from [defaults]");
    assert_eq!(p.lookback, Duration::from_secs(1800), "from [defaults]");
    assert_eq!(p.page_size, 200, "the platform's own value wins");
    assert!(p.enabled, "the platform's own value wins");
    assert_eq!(p.status_map["awaiting"], Status::Pending, "own entry wins");
    assert_eq!(p.status_map["draft"], Status::Pending, "entries merge");
    assert_eq!(p.retry.max_attempts, 7, "retry merges per key: own");
    assert_eq!(
        p.retry.max_interval,
        Duration::from_secs(3600),
        "retry: [defaults]"
    );
    assert_eq!(
        p.retry.initial_interval,
        Duration::from_secs(2),
        "retry: built in"
    );
}

#[test]
fn a_defaults_reconcile_schedule_does_not_switch_reconcile_on_for_akinon() {
    let s = Setup::new("[defaults]\nreconcile_schedule = \"0 0 * * * *\"\n");
    s.platform_file("shop.toml", MERCHANTPRO);
    s.platform_file(
        "ak.toml",
        "[platforms.ak]\nkind = \"akinon\"\nbase_url = \"https://ak.example.com\"\n\
         auth.token = \"t\"\n\
         [platforms.ak2]\nkind = \"akinon\"\nbase_url = \"https://ak.example.com\"\n\
         reconcile_schedule = \"0 15 * * * *\"\nauth.token = \"t\"\n",
    );
    let config = s.load();
    let merchantpro = config.platform("shop-ro").unwrap();
    assert_eq!(
        merchantpro.reconcile_schedule.as_deref(),
        Some("0 0 * * * *")
    );
    assert_eq!(config.platform("ak").unwrap().reconcile_schedule, None);
    assert_eq!(
        config
            .platform("ak2")
            .unwrap()
            .reconcile_schedule
            .as_deref(),
        Some("0 15 * * * *"),
        "its own table can ask for it"
    );
}

#[test]
fn reconcile_can_be_switched_off_with_off() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "reconcile_schedule = \"off\"\n[platforms.shop-ro.auth]",
        ),
    );
    assert_eq!(
        s.load().platform("shop-ro").unwrap().reconcile_schedule,
        None
    );
}

#[test]
fn kind_base_url_and_auth_cannot_be_set_in_defaults() {
    let s = Setup::new(
        "[defaults]\nkind = \"sirclo\"\nbase_url = \"https://x\"\nauth = { token = \"t\" }\n",
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 3, "{}", ConfigErrors(errors.clone()));
    for key in ["defaults.kind", "defaults.base_url", "defaults.auth"] {
        assert_contains(
            &error_at(&errors, key).message,
            "cannot be set in [defaults]",
        );
    }
}

#[test]
fn a_five_field_cron_gets_zero_seconds_prepended() {
    let s = Setup::new("[defaults]\nschedule = \"*/5  *   * * *\"\n");
    s.platform_file("shop.toml", MERCHANTPRO);
    assert_eq!(
        s.load().platform("shop-ro").unwrap().schedule,
        "0 */5 * * * *"
    );
}

#[test]
fn a_bad_cron_is_an_error_with_the_parser_message() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "schedule = \"0 */5 * * *  * * *\"\nreconcile_schedule = \"0 99 * * * *\"\n\
             [platforms.shop-ro.auth]",
        ),
    );
    let errors = s.errors();
    let e = error_at(&errors, "platforms.shop-ro.schedule");
    assert_eq!(e.file, shown(&file));
    assert_contains(&e.message, "invalid cron expression");
    assert_contains(&e.message, "fields");
    let e = error_at(&errors, "platforms.shop-ro.reconcile_schedule");
    assert_contains(&e.message, "invalid cron expression \"0 99 * * * *\"");
}

#[test]
fn wrong_types_are_errors_that_say_what_is_expected() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "timeout = 30\npage_size = \"many\"\nenabled = \"yes\"\nlookback = true\n\
             max_requests_per_second = 0\nretry = 5\nstatus_map = { awaiting = \"waiting\" }\n\
             [platforms.shop-ro.auth]",
        ),
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 7, "{}", ConfigErrors(errors.clone()));
    let p = "platforms.shop-ro";
    assert_contains(
        &error_at(&errors, &format!("{p}.timeout")).message,
        "a bare number has no unit; write a duration like \"15m\"",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.page_size")).message,
        "whole number",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.enabled")).message,
        "true or false",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.lookback")).message,
        "found a boolean",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.max_requests_per_second")).message,
        "above 0",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.retry")).message,
        "expected a table",
    );
    assert_contains(
        &error_at(&errors, &format!("{p}.status_map.awaiting")).message,
        "not a canonical status",
    );
}

#[test]
fn page_size_must_be_between_1_and_1000() {
    let s = Setup::new("[defaults]\npage_size = 0\n");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "page_size = 1001\n[platforms.shop-ro.auth]",
        ),
    );
    let errors = s.errors();
    assert_contains(
        &error_at(&errors, "defaults.page_size").message,
        "1 to 1000",
    );
    assert_contains(
        &error_at(&errors, "platforms.shop-ro.page_size").message,
        "1 to 1000",
    );
}

#[test]
fn retry_max_interval_must_not_be_shorter_than_the_initial_interval() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "retry = { initial_interval = \"1m\", max_interval = \"10s\", max_attemps = 2 }\n\
             [platforms.shop-ro.auth]",
        ),
    );
    let errors = s.errors();
    assert_contains(
        &error_at(&errors, "platforms.shop-ro.retry.max_interval").message,
        "shorter than retry.initial_interval",
    );
    assert_contains(
        &error_at(&errors, "platforms.shop-ro.retry.max_attemps").message,
        "did you mean `max_attempts`?",
    );
}

#[test]
fn bad_times_urls_and_offsets_are_errors() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        r#"
        [platforms.a]
        kind = "merchantpro"
        base_url = "ftp://shop.example.ro"
        backfill_from = "2024-01-01"
        timezone = "Asia/Jakarta"
        auth = { api_key = "k", api_secret = "s" }
        [platforms.b]
        kind = "merchantpro"
        base_url = "https://user:hunter2@shop.example.ro"
        auth = { api_key = "k", api_secret = "s" }
        [platforms.c]
        kind = "merchantpro"
        base_url = "shop.example.ro"
        auth = { api_key = "k", api_secret = "s" }
        [platforms.d]
        kind = "merchantpro"
        base_url = "https://shop.example.ro/?token=abc"
        auth = { api_key = "k", api_secret = "s" }
        "#,
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 6, "{}", ConfigErrors(errors.clone()));
    assert_contains(
        &error_at(&errors, "platforms.d.base_url").message,
        "no query",
    );
    assert_contains(
        &error_at(&errors, "platforms.a.base_url").message,
        "scheme `ftp`",
    );
    assert_contains(
        &error_at(&errors, "platforms.a.backfill_from").message,
        "\"2024-01-01T00:00:00Z\"",
    );
    assert_contains(
        &error_at(&errors, "platforms.a.timezone").message,
        "\"+07:00\"",
    );
    let credentials = error_at(&errors, "platforms.b.base_url");
    assert_contains(
        &credentials.message,
        "credentials do not belong in base_url",
    );
    assert!(!credentials.message.contains("hunter2"));
    assert_contains(
        &error_at(&errors, "platforms.c.base_url").message,
        "not a URL",
    );
}

#[test]
fn an_unknown_kind_is_an_error_listing_the_known_kinds() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shop.toml",
        "[platforms.x]\nkind = \"shopify\"\nbase_url = \"https://x.example.com\"\n",
    );
    let errors = s.errors();
    assert_eq!(
        errors.len(),
        1,
        "auth is not checked against an unknown kind"
    );
    let e = error_at(&errors, "platforms.x.kind");
    assert_eq!(e.file, shown(&file));
    assert_contains(
        &e.message,
        "unknown kind `shopify` (known kinds: sirclo, akinon, mitrabunso, merchantpro, epixel, \
         rest); a platform none of them speaks can be described with kind = \"rest\" and an \
         [platforms.<name>.api] table",
    );
}

#[test]
fn kind_and_base_url_are_required() {
    let s = Setup::new("");
    let file = s.platform_file("shop.toml", "[platforms.x]\nenabled = true\n");
    let errors = s.errors();
    assert_eq!(errors.len(), 2, "{}", ConfigErrors(errors.clone()));
    let kind = error_at(&errors, "platforms.x.kind");
    assert_eq!(kind.file, shown(&file));
    assert_contains(&kind.message, "missing");
    assert_contains(
        &error_at(&errors, "platforms.x.base_url").message,
        "missing",
    );
}

#[test]
fn an_invalid_platform_name_is_an_error() {
    let s = Setup::new("");
    let file = s.platform_file("shop.toml", &MERCHANTPRO.replace("shop-ro", "\"Shop RO\""));
    let errors = s.errors();
    let e = error_at(&errors, "platforms.Shop RO");
    assert_eq!(e.file, shown(&file));
    assert_contains(&e.message, "lowercase letters, digits, `_` and `-`");
}

#[test]
fn an_unknown_platform_key_is_an_error_with_a_suggestion() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "shedule = \"0 * * * * *\"\n[platforms.shop-ro.auth]",
        ),
    );
    let errors = s.errors();
    let e = error_at(&errors, "platforms.shop-ro.shedule");
    assert_eq!(e.file, shown(&file));
    assert_eq!(
        e.message,
        "unknown key `shedule` (did you mean `schedule`?)"
    );
}

// ---- auth ----

#[test]
fn a_secret_file_is_read_relative_to_the_main_file_and_trimmed() {
    let s = Setup::new("");
    s.write("credentials/shop-ro", "s3cret \n\n");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "api_secret = \"secret-ro\"",
            "api_secret_file = \"credentials/shop-ro\"",
        ),
    );
    let config = s.load();
    let auth = &config.platform("shop-ro").unwrap().auth;
    assert_eq!(auth.get("api_secret").unwrap().expose(), "s3cret");
    assert!(
        auth.get("api_secret_file").is_none(),
        "stored under the key's own name"
    );
}

#[test]
fn a_missing_secret_file_is_an_error_with_its_path_and_the_os_error() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace("api_secret = \"secret-ro\"", "api_secret_file = \"nope\""),
    );
    let errors = s.errors();
    assert_eq!(
        errors.len(),
        1,
        "no second error for the missing api_secret"
    );
    let e = error_at(&errors, "platforms.shop-ro.auth.api_secret_file");
    assert_eq!(e.file, shown(&file));
    assert_contains(
        &e.message,
        &format!("cannot read secret file {}", s.path("nope").display()),
    );
    assert_contains(&e.message, "No such file or directory");
}

#[test]
fn giving_both_a_key_and_its_file_is_an_error() {
    let s = Setup::new("");
    s.write("secret", "x");
    let file = s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "api_secret = \"secret-ro\"",
            "api_secret = \"secret-ro\"\napi_secret_file = \"secret\"",
        ),
    );
    let errors = s.errors();
    let e = error_at(&errors, "platforms.shop-ro.auth.api_secret_file");
    assert_eq!(e.file, shown(&file));
    assert_contains(
        &e.message,
        "both `api_secret` and `api_secret_file` are set",
    );
}

#[test]
fn missing_auth_keys_are_errors_that_name_the_accepted_combinations() {
    let s = Setup::new("");
    let file = s.platform_file(
        "shops.toml",
        r#"
        [platforms.mp]
        kind = "merchantpro"
        base_url = "https://mp.example.com"
        auth = { api_key = "k" }
        [platforms.ak]
        kind = "akinon"
        base_url = "https://ak.example.com"
        auth = { email = "ops@example.com" }
        [platforms.ep]
        kind = "epixel"
        base_url = "https://ep.example.com"
        [platforms.sc]
        kind = "sirclo"
        base_url = "https://sc.example.com"
        auth = { partner_id = 42, secret = "s", token = "t" }
        "#,
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 5, "{}", ConfigErrors(errors.clone()));
    let e = error_at(&errors, "platforms.mp.auth.api_secret");
    assert_eq!(e.file, shown(&file));
    assert_contains(&e.message, "missing");
    assert_contains(
        &error_at(&errors, "platforms.ak.auth.password").message,
        "needs `token`, or `email` and `password`",
    );
    for key in ["platforms.ep.auth.api_key", "platforms.ep.auth.token"] {
        assert_contains(
            &error_at(&errors, key).message,
            "epixel needs `api_key` and `token`, or `api_key` and `username` and `password`",
        );
    }
    assert_contains(
        &error_at(&errors, "platforms.sc.auth.token").message,
        "unknown key `token`; the auth keys of kind sirclo are: partner_id, partner_id_file",
    );
}

#[test]
fn every_kind_accepts_its_documented_auth_keys() {
    let s = Setup::new("");
    s.platform_file(
        "shops.toml",
        r#"
        [platforms.sc]
        kind = "sirclo"
        base_url = "https://sc.example.com"
        auth = { partner_id = 42, secret = "s", api_key = "k", api_secret = "as" }
        [platforms.ak]
        kind = "akinon"
        base_url = "https://ak.example.com"
        auth = { email = "ops@example.com", password = "p" }
        [platforms.mb]
        kind = "mitrabunso"
        base_url = "https://mb.example.com"
        auth = { user_id = 7, token = "t" }
        [platforms.mp]
        kind = "merchantpro"
        base_url = "https://mp.example.com"
        auth = { api_key = "k", api_secret = "s" }
        [platforms.ep]
        kind = "epixel"
        base_url = "https://ep.example.com"
        auth = { api_key = "k", token = "t" }
        "#,
    );
    let config = s.load();
    assert_eq!(config.platforms.len(), 5);
    let sc = &config.platform("sc").unwrap().auth;
    assert_eq!(
        sc.get("partner_id").unwrap().expose(),
        "42",
        "a number is taken as text"
    );
    assert_eq!(
        config
            .platform("mb")
            .unwrap()
            .auth
            .get("user_id")
            .unwrap()
            .expose(),
        "7"
    );
}

#[test]
fn only_real_secrets_are_listed_as_secrets() {
    // Every kind's identifying keys (partner id, user id, e-mail, user name) stay visible in
    // logs; its authenticating ones are hidden, and so is a key the kind does not declare.
    for d in crate::platforms::KINDS {
        let mut auth = Auth::default();
        for key in d.kind.spec().auth_keys {
            auth.insert(key.name, if key.secret { "secret" } else { "id" });
        }
        auth.insert("undeclared", "secret");
        let secrets: Vec<&str> = auth.secrets(d.kind).map(Secret::expose).collect();
        let declared = d.kind.spec().auth_keys.iter().filter(|k| k.secret).count();
        assert_eq!(secrets, vec!["secret"; declared + 1], "{}", d.kind);
    }
    let public: Vec<&str> = crate::platforms::KINDS
        .iter()
        .flat_map(|d| d.kind.spec().auth_keys)
        .filter(|k| !k.secret)
        .map(|k| k.name)
        .collect();
    assert_eq!(
        public,
        [
            "partner_id",
            "email",
            "user_id",
            "username",
            // rest
            "username",
            "client_id",
            "partner_id",
            "user_id",
            "email"
        ]
    );
}

// ---- environment ----

#[test]
fn an_env_variable_overrides_a_daemon_key_and_text_is_converted() {
    let s = Setup::new("[daemon]\nlog_level = \"info\"\n");
    s.platform_file("shop.toml", MERCHANTPRO);
    let config = s.load_env(&[
        ("ORDERSYNC_DAEMON__LOG_LEVEL", "debug"),
        ("ORDERSYNC_DAEMON__PUSH_INTERVAL", "1m"),
        ("ORDERSYNC_PLATFORMS__SHOP_RO__PAGE_SIZE", "250"),
        ("ORDERSYNC_PLATFORMS__SHOP_RO__ENABLED", "false"),
        (
            "ORDERSYNC_PLATFORMS__SHOP_RO__MAX_REQUESTS_PER_SECOND",
            "1.5",
        ),
        ("ordersync_defaults__retry__max_attempts", "3"),
        ("ORDERSYNC_CONFIG", "/somewhere/else.toml"),
        ("PATH", "/usr/bin"),
    ]);
    assert_eq!(config.daemon.log_level, "debug");
    assert_eq!(config.daemon.push_interval, Duration::from_secs(60));
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.page_size, 250);
    assert!(!p.enabled);
    assert_eq!(p.max_requests_per_second, 1.5);
    assert_eq!(
        p.retry.max_attempts, 3,
        "variable names are case-insensitive"
    );
}

#[test]
fn an_env_variable_overrides_a_platform_secret_with_dashes_in_the_name() {
    let s = Setup::new("");
    s.platform_file("shop.toml", MERCHANTPRO);
    let config = s.load_env(&[("ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET", "00123")]);
    let auth = &config.platform("shop-ro").unwrap().auth;
    assert_eq!(
        auth.get("api_secret").unwrap().expose(),
        "00123",
        "overridden, and kept as text (not the number 123)"
    );
    assert_eq!(
        auth.get("api_key").unwrap().expose(),
        "key-ro",
        "the rest is untouched"
    );
}

#[test]
fn an_env_variable_wins_over_the_file_form_of_the_same_auth_key() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        &MERCHANTPRO.replace(
            "api_secret = \"secret-ro\"",
            "api_secret_file = \"missing\"",
        ),
    );
    let config = s.load_env(&[("ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET", "from-env")]);
    let auth = &config.platform("shop-ro").unwrap().auth;
    assert_eq!(auth.get("api_secret").unwrap().expose(), "from-env");
}

#[test]
fn refused_credentials_from_files_are_fixed_by_a_reload_and_from_the_environment_by_a_restart() {
    let s = Setup::new("");
    let file = s.platform_file("shop.toml", MERCHANTPRO);
    let config = s.load();
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.auth.env_vars().count(), 0);
    let advice = p.auth_fix_advice();
    assert_contains(&advice, "[platforms.shop-ro.auth]");
    assert_contains(&advice, &shown(&file));
    assert_contains(&advice, "reload");
    assert!(!p.auth_source().contains("environment"));

    let var = "ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET";
    let config = s.load_env(&[(var, "from-env")]);
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.auth.env_vars().collect::<Vec<_>>(), [var]);
    let advice = p.auth_fix_advice();
    assert_contains(&advice, var);
    assert_contains(&advice, "restart");
    assert_contains(&advice, "a reload does not re-read the environment");
    assert_contains(&p.auth_source(), var);
    // A variable naming a secret file is not the secret: the file is read again on reload.
    let secret = s.write("secret", "from-file");
    let config = s.load_env(&[(
        "ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET_FILE",
        secret.to_str().unwrap(),
    )]);
    let p = config.platform("shop-ro").unwrap();
    assert_eq!(p.auth.env_vars().count(), 0);
}

#[test]
fn a_platforms_dir_without_platform_files_is_valid_but_warned_about() {
    let s = Setup::new("");
    let dir = s.path("platforms.d");
    let warning = s.load().platforms_dir_warning().expect("warned");
    assert_contains(
        &warning,
        &format!("daemon.platforms_dir = {}", dir.display()),
    );
    assert_contains(&warning, "does not exist");
    s.write("platforms.d/README", "not a platform file");
    let warning = s.load().platforms_dir_warning().expect("warned");
    assert_contains(&warning, "holds no *.toml platform files");
    s.platform_file("shop.toml", MERCHANTPRO);
    assert_eq!(s.load().platforms_dir_warning(), None);
}

#[test]
fn an_env_variable_can_move_the_platforms_dir() {
    let s = Setup::new("");
    s.write("elsewhere/shop.toml", MERCHANTPRO);
    let config = s.load_env(&[("ORDERSYNC_DAEMON__PLATFORMS_DIR", "elsewhere")]);
    assert_eq!(config.daemon.platforms_dir, s.path("elsewhere"));
    assert!(config.platform("shop-ro").is_some());
}

#[test]
fn an_env_variable_for_an_undeclared_platform_or_unknown_key_is_an_error_naming_it() {
    let s = Setup::new("");
    s.platform_file("shop.toml", MERCHANTPRO);
    let errors = s.errors_env(&[
        ("ORDERSYNC_PLATFORMS__SHOP_BG__AUTH__API_SECRET", "x"),
        ("ORDERSYNC_DAEMON__LOGLEVEL", "debug"),
        ("ORDERSYNC_PLATFORMS__SHOP_RO__PAGE_SIZE", "lots"),
        ("ORDERSYNC_DAEMON__", "debug"),
    ]);
    assert_eq!(errors.len(), 4, "{}", ConfigErrors(errors.clone()));
    let e = error_at(&errors, "platforms.shop_bg");
    assert_eq!(
        e.file,
        "environment variable ORDERSYNC_PLATFORMS__SHOP_BG__AUTH__API_SECRET"
    );
    assert_contains(&e.message, "declared: shop-ro");
    let e = error_at(&errors, "daemon.loglevel");
    assert_eq!(e.file, "environment variable ORDERSYNC_DAEMON__LOGLEVEL");
    assert_contains(&e.message, "did you mean `log_level`?");
    let e = error_at(&errors, "platforms.shop-ro.page_size");
    assert_eq!(
        e.file,
        "environment variable ORDERSYNC_PLATFORMS__SHOP_RO__PAGE_SIZE"
    );
    let e = error_at(&errors, "");
    assert_eq!(e.file, "environment variable ORDERSYNC_DAEMON__");
}

// ---- all at once ----

#[test]
fn every_error_is_reported_at_once_with_file_and_key() {
    let s = Setup::new("[daemon]\nlog_level = \"info\"\n");
    let a = s.platform_file(
        "a.toml",
        &MERCHANTPRO.replace(
            "[platforms.shop-ro.auth]",
            "shedule = \"0 * * * * *\"\n[platforms.shop-ro.auth]",
        ),
    );
    let b = s.platform_file(
        "b.toml",
        r#"
        [platforms.shop-bg]
        kind = "merchantpro"
        base_url = "https://shop.example.bg"
        schedule = "every five minutes"
        [platforms.shop-bg.auth]
        api_key = "k"
        api_secret_file = "/nonexistent/credentials/shop-bg"

        [platforms.shop-hu]
        kind = "shopify"
        base_url = "https://shop.example.hu"
        "#,
    );
    let errors = s.errors();
    assert_eq!(errors.len(), 4, "{}", ConfigErrors(errors.clone()));

    let unknown = error_at(&errors, "platforms.shop-ro.shedule");
    assert_eq!(unknown.file, shown(&a));
    assert_contains(&unknown.message, "unknown key `shedule`");

    let cron = error_at(&errors, "platforms.shop-bg.schedule");
    assert_eq!(cron.file, shown(&b));
    assert_contains(&cron.message, "invalid cron expression");

    let kind = error_at(&errors, "platforms.shop-hu.kind");
    assert_eq!(kind.file, shown(&b));
    assert_contains(&kind.message, "unknown kind `shopify`");

    let secret = error_at(&errors, "platforms.shop-bg.auth.api_secret_file");
    assert_eq!(secret.file, shown(&b));
    assert_contains(&secret.message, "/nonexistent/credentials/shop-bg");

    let text = ConfigErrors(errors).to_string();
    assert_eq!(text.lines().count(), 4, "one error per line:\n{text}");
    assert!(text.contains(&format!(
        "{}: platforms.shop-ro.shedule: unknown key `shedule`",
        a.display()
    )));
}

// ---- secrets never shown ----

#[test]
fn a_secret_prints_as_redacted_in_debug_and_display() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret}"), "[redacted]");
    assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    [redacted],\n)");
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn the_debug_form_of_a_loaded_config_shows_no_secret() {
    let s = Setup::new("");
    s.write("token", "file-token-value\n");
    s.platform_file(
        "shops.toml",
        &format!(
            "{MERCHANTPRO}\n[platforms.ak]\nkind = \"akinon\"\n\
             base_url = \"https://ak.example.com\"\nauth.token_file = \"token\"\n"
        ),
    );
    let config = s.load_env(&[(
        "ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_KEY",
        "env-key-value",
    )]);
    let printed = format!("{config:?} {config:#?}");
    for secret in ["secret-ro", "file-token-value", "env-key-value"] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("[redacted]"));
}

#[test]
fn errors_never_quote_a_secret() {
    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        "[platforms.x]\nkind = \"merchantpro\"\nbase_url = \"https://x.example.com\"\n\
         auth = { api_key = \"k\", api_secret = \"s\", api_secert = \"hunter2\" }\n",
    );
    let text = ConfigErrors(s.errors()).to_string();
    assert_contains(&text, "did you mean `api_secret`?");
    assert!(!text.contains("hunter2"), "{text}");

    let s = Setup::new("");
    s.platform_file(
        "shop.toml",
        "[platforms.x]\nauth = { api_secret = \"hunter2\n",
    );
    let text = ConfigErrors(s.errors()).to_string();
    assert_contains(&text, "invalid TOML at line 2");
    assert!(!text.contains("hunter2"), "{text}");
}

// ---- the shipped examples ----

#[test]
fn the_example_configuration_files_load() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let s = Setup::new(&std::fs::read_to_string(repo.join("ordersync.toml")).unwrap());
    s.platform_file(
        "merchantpro-example.toml",
        &std::fs::read_to_string(repo.join("platforms.d/merchantpro-example.toml")).unwrap(),
    );
    let config = s.load();
    let p = &config.platforms[0];
    assert_eq!(p.kind, crate::platforms::merchantpro::DESCRIPTOR.kind);
    assert_eq!(config.daemon.platforms_dir, s.path("platforms.d"));
}

#[test]
fn kinds_round_trip_through_their_text() {
    let kinds = crate::platforms::kinds();
    for kind in kinds.0 {
        assert_eq!(kinds.find(&kind.as_str().to_uppercase()).unwrap(), *kind);
    }
    assert!(
        crate::platforms::akinon::DESCRIPTOR
            .kind
            .has_updated_filter()
    );
    assert!(
        !crate::platforms::sirclo::DESCRIPTOR
            .kind
            .has_updated_filter()
    );
    assert_contains(
        &kinds.find("shopify").unwrap_err().to_string(),
        "known kinds: sirclo, akinon, mitrabunso, merchantpro, epixel",
    );
}

#[test]
fn a_postgres_database_takes_its_password_from_a_file_and_never_shows_it() {
    let s = Setup::new(
        r#"
        [daemon]
        database = "postgres://orders@db.example.com:5433/shop"
        database_password_file = "db-password"
        "#,
    );
    s.write("db-password", "s3cret-db-pass\n");
    let config = s.load();
    let Database::Postgres(t) = &config.daemon.database else {
        panic!("{:?}", config.daemon.database);
    };
    assert_eq!(
        t.password.as_ref().map(Secret::expose),
        Some("s3cret-db-pass")
    );
    assert_eq!((t.host.as_str(), t.port), ("db.example.com", 5433));
    assert_eq!(t.sslmode, SslMode::VerifyFull);
    let shown = format!("{config:?} {}", config.daemon.database);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert_contains(&shown, "postgres://orders@db.example.com:5433/shop");
}

#[test]
fn a_database_password_written_in_a_file_is_refused() {
    let s = Setup::new(
        r#"
        [daemon]
        database = "postgres://orders@127.0.0.1/shop"
        database_password = "inline"
        "#,
    );
    let errors = s.errors();
    let e = error_at(&errors, "daemon.database_password");
    assert_contains(&e.message, "database_password_file");
    assert!(!e.message.contains("inline"), "{}", e.message);
}

#[test]
fn a_database_password_may_come_from_the_environment() {
    let s = Setup::new("[daemon]\ndatabase = \"postgres://orders@127.0.0.1/shop\"\n");
    let config = s.load_env(&[("ORDERSYNC_DAEMON__DATABASE_PASSWORD", "from-env")]);
    let Database::Postgres(t) = &config.daemon.database else {
        panic!("{:?}", config.daemon.database);
    };
    assert_eq!(t.password.as_ref().map(Secret::expose), Some("from-env"));
}
