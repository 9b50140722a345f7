//! Prometheus metrics: the process-wide registry, the counters every layer bumps (requests,
//! runs, pushes, verify, sink deliveries), and what `/health` reads (stale platforms, drift,
//! lagging or disabled sinks). The daemon serves
//! them (`daemon::health`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::RunRecord;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    run_seconds: Family<Labels, Histogram>,
    fetched: Family<Labels, Counter>,
    created: Family<Labels, Counter>,
    changed: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    rate_limit_waits: Family<Labels, Counter>,
    pushes: Family<Labels, Counter>,
    outbox: Family<Labels, Gauge>,
    last_success: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    unwatched: Family<Labels, Gauge>,
    /// With `last_success`, tells alerting whether a platform's latest run failed, however
    /// seldom it runs (a failed-runs counter that steps once reads as no increase).
    last_failure: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    database_fault: Gauge,
    /// Orders the last verify of each platform found drifted, by kind of drift.
    drift: Family<Labels, Gauge>,
    last_verify: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// For `/health`: the platforms whose last verify left missing or changed orders.
    drifted: Mutex<BTreeMap<String, (u64, u64)>>,
    /// For `/health`: each platform's last successful sync, seeded with the daemon's start so a
    /// platform gets `health_max_age` to succeed once.
    successes: Mutex<BTreeMap<String, DateTime<Utc>>>,
    sink_delivered: Family<Labels, Counter>,
    sink_failed: Family<Labels, Counter>,
    sink_lag_events: Family<Labels, Gauge>,
    sink_lag_seconds: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sink_delivery_lag: Family<Labels, Histogram>,
    sink_disabled: Family<Labels, Gauge>,
    sink_paused: Family<Labels, Gauge>,
    sink_max_lag: Family<Labels, Gauge>,
    /// For `/health`: each running sink's allowed lag, its last measured lag and why it is
    /// disabled, if it is.
    sinks: Mutex<BTreeMap<String, SinkHealth>>,
}

#[derive(Debug, Clone, Default)]
struct SinkHealth {
    max_lag: Duration,
    lag_seconds: f64,
    disabled: Option<String>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ordersync");
        let m = Metrics {
            runs: Family::default(),
            run_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.05, 2.0, 14))
            }),
            fetched: Family::default(),
            created: Family::default(),
            changed: Family::default(),
            requests: Family::default(),
            retries: Family::default(),
            rate_limit_waits: Family::default(),
            pushes: Family::default(),
            outbox: Family::default(),
            last_success: Family::default(),
            unwatched: Family::default(),
            last_failure: Family::default(),
            database_fault: Gauge::default(),
            drift: Family::default(),
            last_verify: Family::default(),
            drifted: Mutex::new(BTreeMap::new()),
            successes: Mutex::new(BTreeMap::new()),
            sink_delivered: Family::default(),
            sink_failed: Family::default(),
            sink_lag_events: Family::default(),
            sink_lag_seconds: Family::default(),
            sink_delivery_lag: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 16))
            }),
            sink_disabled: Family::default(),
            sink_paused: Family::default(),
            sink_max_lag: Family::default(),
            sinks: Mutex::new(BTreeMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "sink_events_delivered",
            "Events a sink's receiver acknowledged",
            m.sink_delivered.clone(),
        );
        registry.register(
            "sink_failed_attempts",
            "Delivery attempts that failed and will be retried",
            m.sink_failed.clone(),
        );
        registry.register(
            "sink_lag_events",
            "Events of the sink's filter after its cursor",
            m.sink_lag_events.clone(),
        );
        registry.register(
            "sink_lag_seconds",
            "Age of the sink's oldest undelivered event",
            m.sink_lag_seconds.clone(),
        );
        registry.register(
            "sink_delivery_lag_seconds",
            "From an event's commit to its receiver's acknowledgement",
            m.sink_delivery_lag.clone(),
        );
        registry.register(
            "sink_disabled",
            "1 while a sink is disabled (its receiver answered 410)",
            m.sink_disabled.clone(),
        );
        registry.register(
            "sink_paused",
            "1 while an operator has the sink paused",
            m.sink_paused.clone(),
        );
        registry.register(
            "sink_max_lag_seconds",
            "The sink's max_lag: /health names it when sink_lag_seconds passes this",
            m.sink_max_lag.clone(),
        );
        registry.register("runs", "Sync and reconcile runs by outcome", m.runs.clone());
        registry.register(
            "run_duration_seconds",
            "Duration of sync and reconcile runs",
            m.run_seconds.clone(),
        );
        registry.register(
            "orders_fetched",
            "Orders read from platforms",
            m.fetched.clone(),
        );
        registry.register(
            "orders_created",
            "Orders seen for the first time",
            m.created.clone(),
        );
        registry.register(
            "orders_changed",
            "Orders whose content changed",
            m.changed.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests to platforms by status (\"error\": no answer)",
            m.requests.clone(),
        );
        registry.register(
            "http_retries",
            "Requests retried after a failure",
            m.retries.clone(),
        );
        registry.register(
            "rate_limit_waits",
            "Requests that waited for the platform's rate limit",
            m.rate_limit_waits.clone(),
        );
        registry.register(
            "pushes",
            "Outbox push attempts by outcome",
            m.pushes.clone(),
        );
        registry.register(
            "outbox_entries",
            "Outbox entries by state",
            m.outbox.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of each platform's last successful sync",
            m.last_success.clone(),
        );
        registry.register(
            "last_failure_timestamp_seconds",
            "Unix time of each platform's last failed run",
            m.last_failure.clone(),
        );
        registry.register(
            "database_fault",
            "1 while the database refuses writes (/health says why), else 0",
            m.database_fault.clone(),
        );
        registry.register(
            "reconcile_unwatched_orders",
            "Open orders placed before reconcile_horizon, which reconcile does not re-read",
            m.unwatched.clone(),
        );
        registry.register(
            "drift_orders",
            "Orders the last verify found missing, changed (and not repaired) or extra",
            m.drift.clone(),
        );
        registry.register(
            "last_verify_timestamp_seconds",
            "Unix time of each platform's last finished verify",
            m.last_verify.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The open orders the optional `reconcile_horizon` left out of the last reconcile pass.
    pub fn unwatched_orders(&self, platform: &str, orders: u64) {
        self.unwatched
            .get_or_create(&labels(&[("platform", platform)]))
            .set(orders as i64);
    }

    pub fn run_finished(&self, platform: &str, run: &RunRecord, took: Duration) {
        let (kind, outcome) = (run.kind.as_str(), run.outcome.as_str());
        let p = labels(&[("platform", platform)]);
        self.runs
            .get_or_create(&labels(&[
                ("platform", platform),
                ("kind", kind),
                ("outcome", outcome),
            ]))
            .inc();
        self.run_seconds
            .get_or_create(&labels(&[("platform", platform), ("kind", kind)]))
            .observe(took.as_secs_f64());
        self.fetched.get_or_create(&p).inc_by(run.fetched);
        self.created.get_or_create(&p).inc_by(run.created);
        self.changed.get_or_create(&p).inc_by(run.changed);
        if outcome == "failed" {
            self.last_failure
                .get_or_create(&p)
                .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        }
        if outcome == "ok" {
            let now = Utc::now();
            self.last_success
                .get_or_create(&p)
                .set(now.timestamp_millis() as f64 / 1000.0);
            self.successes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(platform.to_string(), now);
        }
    }

    pub fn request(&self, platform: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.requests
            .get_or_create(&labels(&[("platform", platform), ("status", &status)]))
            .inc();
    }

    pub fn retry(&self, platform: &str) {
        self.retries
            .get_or_create(&labels(&[("platform", platform)]))
            .inc();
    }

    pub fn rate_limit_wait(&self, platform: &str) {
        self.rate_limit_waits
            .get_or_create(&labels(&[("platform", platform)]))
            .inc();
    }

    pub fn push(&self, platform: &str, outcome: &str) {
        self.pushes
            .get_or_create(&labels(&[("platform", platform), ("outcome", outcome)]))
            .inc();
    }

    /// The drift a verify of `platform` left: missing and changed orders it did not repair,
    /// and stored orders the platform no longer lists.
    pub fn record_verify(&self, platform: &str, missing: u64, changed: u64, extra: u64) {
        for (drift, n) in [("missing", missing), ("changed", changed), ("extra", extra)] {
            self.drift
                .get_or_create(&labels(&[("platform", platform), ("drift", drift)]))
                .set(n as i64);
        }
        self.last_verify
            .get_or_create(&labels(&[("platform", platform)]))
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        let mut d = self.drifted.lock().unwrap_or_else(|e| e.into_inner());
        if missing + changed > 0 {
            d.insert(platform.to_string(), (missing, changed));
        } else {
            d.remove(platform);
        }
    }

    /// Platforms whose last verify left orders missing or changed: `(platform, missing,
    /// changed)`.
    pub fn drifted(&self) -> Vec<(String, u64, u64)> {
        self.drifted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, (m, c))| (p.clone(), *m, *c))
            .collect()
    }

    /// Starts the health clock of the platforms the daemon now runs, and their counters.
    pub fn watch_platforms<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let now = Utc::now();
        let mut s = self.successes.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = names.collect();
        s.retain(|k, _| names.contains(&k.as_str()));
        self.drifted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| names.contains(&k.as_str()));
        for n in names {
            s.entry(n.to_string()).or_insert(now);
            // Counters that may stay at zero exist from the start, so a dashboard shows 0
            // rather than no data, and the first increment reads as an increase.
            let p = labels(&[("platform", n)]);
            let _ = self.retries.get_or_create(&p);
            let _ = self.rate_limit_waits.get_or_create(&p);
        }
    }

    /// Platforms whose last success is older than `max_age`.
    pub fn stale(&self, max_age: Duration) -> Vec<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let max = chrono::TimeDelta::from_std(max_age).unwrap_or(chrono::TimeDelta::MAX);
        self.successes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, t)| now - **t > max)
            .map(|(k, t)| (k.clone(), *t))
            .collect()
    }

    /// Whether the store refuses writes right now (`ordersync_database_fault`).
    pub fn set_database_fault(&self, fault: bool) {
        self.database_fault.set(i64::from(fault));
    }

    /// How many outbox entries are in `state`, read at scrape time.
    pub fn set_outbox_depth(&self, state: &str, entries: u64) {
        self.outbox
            .get_or_create(&labels(&[("state", state)]))
            .set(entries as i64);
    }

    /// Starts the health of the sinks the daemon now runs (name, `max_lag`), and their
    /// counters; forgets the others.
    pub fn watch_sinks<'a>(&self, sinks: impl Iterator<Item = (&'a str, Duration)>) {
        let mut h = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let sinks: Vec<(&str, Duration)> = sinks.collect();
        // A sink taken out of the configuration leaves no series behind for alerts to see.
        let gone: Vec<String> = h
            .keys()
            .filter(|k| !sinks.iter().any(|(n, _)| n == k))
            .cloned()
            .collect();
        for name in gone {
            h.remove(&name);
            let l = labels(&[("sink", &name)]);
            self.sink_lag_events.remove(&l);
            self.sink_lag_seconds.remove(&l);
            self.sink_disabled.remove(&l);
            self.sink_paused.remove(&l);
            self.sink_max_lag.remove(&l);
        }
        for (name, max_lag) in sinks {
            h.entry(name.to_string()).or_default().max_lag = max_lag;
            let l = labels(&[("sink", name)]);
            let _ = self.sink_delivered.get_or_create(&l);
            let _ = self.sink_failed.get_or_create(&l);
            self.sink_max_lag
                .get_or_create(&l)
                .set(max_lag.as_secs() as i64);
        }
    }

    /// An event acknowledged, `lag` seconds after its commit.
    pub fn sink_delivered(&self, sink: &str, lag: Option<f64>) {
        let l = labels(&[("sink", sink)]);
        self.sink_delivered.get_or_create(&l).inc();
        if let Some(lag) = lag {
            self.sink_delivery_lag.get_or_create(&l).observe(lag);
        }
    }

    pub fn sink_failed_attempt(&self, sink: &str) {
        self.sink_failed
            .get_or_create(&labels(&[("sink", sink)]))
            .inc();
    }

    pub fn sink_lag(&self, sink: &str, lag: crate::model::SinkLag) {
        let l = labels(&[("sink", sink)]);
        self.sink_lag_events
            .get_or_create(&l)
            .set(lag.events as i64);
        self.sink_lag_seconds.get_or_create(&l).set(lag.seconds);
        if let Some(h) = self
            .sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(sink)
        {
            h.lag_seconds = lag.seconds;
        }
    }

    pub fn sink_state(&self, sink: &str, paused: bool, disabled: Option<&str>) {
        let l = labels(&[("sink", sink)]);
        self.sink_paused.get_or_create(&l).set(i64::from(paused));
        self.sink_disabled
            .get_or_create(&l)
            .set(i64::from(disabled.is_some()));
        if let Some(h) = self
            .sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(sink)
        {
            h.disabled = disabled.map(str::to_string);
        }
    }

    /// For `/health`: sinks that are disabled, or whose oldest undelivered event is older than
    /// their `max_lag`, each as a line saying so.
    pub fn sink_problems(&self) -> Vec<String> {
        let h = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (name, s) in h.iter() {
            if let Some(reason) = &s.disabled {
                out.push(format!(
                    "sink {name}: disabled ({reason}); `ordersync sinks resume {name}` after \
                     fixing the receiver"
                ));
            } else if s.lag_seconds > s.max_lag.as_secs_f64() {
                out.push(format!(
                    "sink {name}: its oldest undelivered event is {:.0} s old, past max_lag \
                     ({} s); `ordersync sinks` shows its last error",
                    s.lag_seconds,
                    s.max_lag.as_secs()
                ));
            }
        }
        out
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
