//! The operator's Prometheus, for real: a Prometheus server on loopback scrapes a running daemon
//! every second while it syncs a shop of each kind, one of which refuses its credentials. Every
//! expression of the Grafana dashboard must return data through Prometheus's HTTP API, every
//! alerting rule of `contrib/alerts.yml` must load and evaluate, and the alerts the fleet's
//! troubles call for (and only those) must reach `firing`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::receiver::{Answer, Receiver, SECRET};
use crate::common::running::{Running, free_port, write_main_file};
use crate::common::*;
use ordersync_sim::fleet::{Fleet, NAMES};
use serde_json::Value;

/// The whole test, from the fleet's start to the last alert, stays under this.
const DEADLINE: Duration = Duration::from_secs(60);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// The Prometheus server under test; killed however the test ends.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `bin` on a loopback port with its data in `dir`, scraping `127.0.0.1:target`
    /// every second and evaluating `rules` every second.
    fn start(bin: &Path, dir: &Path, target: u16, rules: &Path) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: ordersync\n    static_configs:\n      \
                 - targets: [\"127.0.0.1:{target}\"]\n",
                rules = rules.display()
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` with `params`; the API's `data`, or the error it answered.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), params).unwrap();
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    async fn ready(&self) -> bool {
        matches!(
            self.client.get(format!("{}/-/ready", self.base)).send().await,
            Ok(r) if r.status().is_success()
        )
    }
}

/// Polls `check` every 500 ms until it returns `Ok`, or fails with its last complaint.
async fn until<T>(
    by: Instant,
    what: &str,
    prom: &Prometheus,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    loop {
        match check().await {
            Ok(v) => return v,
            Err(why) => assert!(
                Instant::now() < by,
                "timed out waiting for {what}: {why}\nprometheus log:\n{}",
                prom.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The dashboard's expressions with Grafana's variables as Grafana would fill them for this
/// scrape interval: every platform, a 4-scrape rate interval, a one-minute range.
fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_file("contrib/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let filled = expr
                .replace("$__rate_interval", "4s")
                .replace("$__range", "1m")
                .replace("$platform", ".*");
            // `${1}` is label_replace's capture group, not a variable.
            let unfilled = filled
                .match_indices('$')
                .any(|(i, _)| !filled[i..].starts_with("${1}"));
            assert!(
                !unfilled,
                "a dashboard variable this test does not fill: {expr}"
            );
            out.push((format!("{} / {}", panel["title"], target["refId"]), filled));
        }
    }
    assert!(out.len() >= 10, "the dashboard lost its panels: {out:?}");
    out
}

fn finite_values(result: &[Value]) -> usize {
    result
        .iter()
        .filter(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        })
        .count()
}

/// `alerts.yml` with every `for:` cut to 2 s, so pending turns to firing within the test;
/// expressions, labels and annotations stay as shipped.
fn rules_with_short_holds(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo_file("contrib/alerts.yml")).unwrap();
    let mut holds = 0;
    let short: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for:") {
                holds += 1;
                format!("{}for: 2s\n", &l[..l.len() - l.trim_start().len()])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(holds > 0, "no `for:` in alerts.yml");
    let path = dir.join("alerts.yml");
    std::fs::write(&path, short).unwrap();
    path
}

/// `promtool check rules`: exit 0 and the number of rules it found.
fn promtool_rule_count(promtool: &Path, rules: &Path) -> usize {
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(rules)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "promtool rejects {}:\n{text}",
        rules.display()
    );
    text.split("SUCCESS: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rule count in promtool's answer:\n{text}"))
}

/// `(alert name, platform label)` of the alerts in `state`.
async fn alerts_in(prom: &Prometheus, state: &str) -> Result<BTreeSet<(String, String)>, String> {
    let data = prom.api("/api/v1/alerts", &[]).await?;
    Ok(data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == state)
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["labels"]["platform"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_daemon_answers_every_dashboard_query_and_fires_the_right_alerts() {
    let (Some(prometheus), Some(promtool)) = (on_path("prometheus"), on_path("promtool")) else {
        let msg = "prometheus and promtool are not installed (apt-get install prometheus; .ci/run \
                   installs them)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("\n\n*** SKIPPED the Prometheus test: {msg} ***\n\n");
        return;
    };
    let by = Instant::now() + DEADLINE;
    let shipped_rules = promtool_rule_count(&promtool, &repo_file("contrib/alerts.yml"));

    // The daemon: five shops, every platform scheduled every second; Akinon's token revoked.
    let fleet = Fleet::start(200).await.unwrap();
    let setup = Setup::new();
    let extra = "max_requests_per_second = 10000\nschedule = \"* * * * * *\"\n\
                 reconcile_schedule = \"*/2 * * * * *\"\n";
    for (file, toml) in fleet.platform_files(extra) {
        let toml = if file.starts_with("demo-akinon") {
            toml.replace("demo-akinon-api-token", "revoked-akinon-token")
        } else if file.starts_with("demo-epixel") {
            // A shop nothing changes: its scheduled verify exports the drift gauges at 0, and
            // the drift alert must stay quiet.
            toml.replace(
                "schedule = \"* * * * * *\"\n",
                "schedule = \"* * * * * *\"\nverify_schedule = \"*/3 * * * * *\"\n",
            )
        } else {
            toml
        };
        setup.add_platform_file(&file, &toml);
    }
    // Two change-feed sinks: one whose receiver takes everything, one whose receiver answers
    // 410 and so is disabled.
    let warehouse = Receiver::start(SECRET).await;
    let erp = Receiver::start(SECRET).await;
    erp.answer_always(Answer::Status(410));
    let metrics_port = free_port();
    write_main_file(&setup, &setup.db_path(), metrics_port, "");
    let mut main = std::fs::read_to_string(setup.main_file()).unwrap();
    for (name, r) in [("warehouse", &warehouse), ("erp", &erp)] {
        main.push_str(&format!(
            "\n[sinks.{name}]\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
             start = \"beginning\"\n",
            r.url
        ));
    }
    std::fs::write(setup.main_file(), main).unwrap();
    let daemon = Running::start(&setup, metrics_port, Duration::from_secs(60));

    let prom_dir = tempfile::tempdir().unwrap();
    let rules = rules_with_short_holds(prom_dir.path());
    assert_eq!(promtool_rule_count(&promtool, &rules), shipped_rules);
    let prom = Prometheus::start(&prometheus, prom_dir.path(), metrics_port, &rules);
    until(by, "Prometheus to be ready", &prom, async || {
        if prom.ready().await {
            Ok(())
        } else {
            Err("not ready".into())
        }
    })
    .await;
    until(by, "the daemon's target to be up", &prom, async || {
        let up = prom.query("up{job=\"ordersync\"} == 1").await?;
        if up.len() == 1 {
            Ok(())
        } else {
            Err(format!("up: {up:?}"))
        }
    })
    .await;

    // Two pushes once MerchantPro's orders are stored: one the shop accepts, one it refuses
    // (delivered after cancelled: a 400, so the entry fails at once).
    let (awaiting, cancelled) = until(by, "MerchantPro's orders in the store", &prom, async || {
        let db = setup.db();
        let first = |status: &str| -> Option<String> {
            db.query_row(
                "SELECT order_id FROM orders WHERE platform = 'demo-merchantpro' AND status = ?1
                 ORDER BY order_id LIMIT 1",
                [status],
                |r| r.get(0),
            )
            .ok()
        };
        match (first("pending"), first("cancelled")) {
            (Some(a), Some(c)) => Ok((a, c)),
            other => Err(format!("pending and cancelled orders: {other:?}")),
        }
    })
    .await;
    for args in [
        vec!["transition", "demo-merchantpro", &awaiting, "cancelled"],
        vec![
            "transition",
            "demo-merchantpro",
            &cancelled,
            "delivered",
            "--force",
        ],
    ] {
        let out = setup.ordersync(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    // The platform variable offers every platform.
    until(
        by,
        "the dashboard's platform variable to list every platform",
        &prom,
        async || {
            let data = prom
                .api(
                    "/api/v1/label/platform/values",
                    &[("match[]", "ordersync_orders_fetched_total")],
                )
                .await?;
            let offered: BTreeSet<&str> = data
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if NAMES.iter().all(|n| offered.contains(n)) {
                Ok(())
            } else {
                Err(format!("{offered:?}"))
            }
        },
    )
    .await;

    // Every panel's expression parses and returns at least one finite value.
    let expressions = dashboard_expressions();
    until(
        by,
        "every dashboard expression to return data",
        &prom,
        async || {
            let mut empty = Vec::new();
            for (panel, expr) in &expressions {
                match prom.query(expr).await {
                    Err(e) => panic!("{panel}: Prometheus rejects `{expr}`: {e}"),
                    Ok(result) if finite_values(&result) == 0 => {
                        empty.push(format!("{panel}: `{expr}` -> {result:?}"))
                    }
                    Ok(_) => {}
                }
            }
            if empty.is_empty() {
                Ok(())
            } else {
                Err(empty.join("\n"))
            }
        },
    )
    .await;

    // Every rule loaded and evaluated without error, over series the daemon exports.
    let rule_queries = until(
        by,
        "every rule to be evaluated without error",
        &prom,
        async || {
            let data = prom.api("/api/v1/rules", &[]).await?;
            let rules: Vec<Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            if rules.len() != shipped_rules {
                return Err(format!(
                    "{} rules loaded, {shipped_rules} shipped",
                    rules.len()
                ));
            }
            let unhealthy: Vec<String> = rules
                .iter()
                .filter(|r| r["health"] != "ok")
                .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
                .collect();
            if !unhealthy.is_empty() {
                return Err(unhealthy.join("; "));
            }
            Ok(rules
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        r["query"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>())
        },
    )
    .await;
    for (name, query) in &rule_queries {
        let mut series: BTreeSet<&str> = query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ordersync_"))
            .collect();
        if query.starts_with("up{") {
            series.insert("up");
        }
        assert!(
            !series.is_empty(),
            "{name} reads no ordersync series: {query}"
        );
        for s in series {
            let found = prom
                .query(&format!("{s}{{job=\"ordersync\"}}"))
                .await
                .unwrap();
            assert!(
                !found.is_empty(),
                "{name} reads `{s}`, which the daemon does not export"
            );
        }
    }

    // The refused credentials, the refused push and the receiver that said 410 fire their
    // alerts; nothing else fires (the sink that keeps up does not lag).
    let want: BTreeSet<(String, String)> = [
        ("OrdersyncPlatformFailing", "demo-akinon"),
        ("OrdersyncOutboxFailed", ""),
        ("OrdersyncSinkDisabled", ""),
    ]
    .iter()
    .map(|(a, p)| (a.to_string(), p.to_string()))
    .collect();
    until(by, "the expected alerts to fire", &prom, async || {
        let firing = alerts_in(&prom, "firing").await?;
        let pending = alerts_in(&prom, "pending").await?;
        let unexpected: Vec<_> = firing
            .union(&pending)
            .filter(|a| !want.contains(*a))
            .collect();
        assert!(
            unexpected.is_empty(),
            "alerts that should not fire: {unexpected:?}"
        );
        if firing == want {
            Ok(())
        } else {
            Err(format!("firing {firing:?}, pending {pending:?}"))
        }
    })
    .await;
    let firing = prom.query("ALERTS{alertstate=\"firing\"}").await.unwrap();
    assert_eq!(firing.len(), want.len(), "{firing:?}");

    let mut daemon = daemon;
    assert!(daemon.alive(), "{}", daemon.log_text());
    assert!(daemon.stop().success());
    drop(fleet);
}
