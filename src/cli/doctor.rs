//! `ordersync doctor`: a live check of each platform, step by step, so a sysadmin sees where a
//! connection breaks: name resolution, TCP, TLS and HTTP, credentials and one page of orders,
//! and the clock skew against the platform's `Date` header. Nothing is written to the store.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::config::{Config, PlatformConfig};
use crate::daemon::{Platform, RunLocks};
use crate::http::{HttpError, Redactor};
use crate::platforms::{PassCtx, Source, Window};
use crate::store::Store;

#[derive(Debug, Serialize)]
struct Check {
    step: &'static str,
    ok: bool,
    detail: String,
    millis: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    platform: String,
    kind: &'static str,
    ok: bool,
    checks: Vec<Check>,
    clock_skew_seconds: Option<i64>,
}

pub async fn run(config: Config, names: &[String], json: bool) -> Result<(), Exit> {
    let store = Store::open(&config.daemon.database)?;
    let mut reports = Vec::new();
    for cfg in &config.platforms {
        if names.is_empty() && !cfg.enabled || !names.is_empty() && !names.contains(&cfg.name) {
            continue;
        }
        reports.push(check(cfg, &store).await);
    }
    if json || !std::io::stdout().is_terminal() {
        println!("{}", serde_json::json!({ "platforms": reports }));
    } else {
        for r in &reports {
            println!(
                "{} ({}){}",
                r.platform,
                r.kind,
                r.clock_skew_seconds
                    .map(|s| format!("  clock skew {s:+} s"))
                    .unwrap_or_default()
            );
            for c in &r.checks {
                println!(
                    "  {} {:<12} {:>6} ms  {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.step,
                    c.millis,
                    c.detail
                );
            }
        }
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.platform.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Exit::failure(anyhow::anyhow!(
            "doctor: {} failed",
            failed.join(", ")
        )))
    }
}

async fn check(cfg: &PlatformConfig, store: &Store) -> Report {
    let mut checks = Vec::new();
    let mut skew = None;
    let url = &cfg.base_url;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let timeout = cfg.timeout.min(Duration::from_secs(15));

    let t = Instant::now();
    let addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await;
    let addr = match addrs {
        Ok(Ok(mut a)) => a.next(),
        _ => None,
    };
    checks.push(step(
        "dns",
        addr.is_some(),
        match addr {
            Some(a) => format!("{host} -> {}", a.ip()),
            None => format!("{host} does not resolve"),
        },
        t,
    ));

    if let Some(addr) = addr {
        let t = Instant::now();
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await;
        let ok = matches!(tcp, Ok(Ok(_)));
        checks.push(step(
            "tcp",
            ok,
            match tcp {
                Ok(Ok(_)) => format!("connected to {addr}"),
                Ok(Err(e)) => format!("{addr}: {e}"),
                Err(_) => format!("{addr}: no answer within {timeout:?}"),
            },
            t,
        ));
        if ok {
            crate::http::install_crypto_provider();
            let t = Instant::now();
            let client = reqwest::Client::builder().timeout(timeout).build();
            let answer = match client {
                Ok(c) => c.get(url.clone()).send().await,
                Err(e) => Err(e),
            };
            let step_name = if url.scheme() == "https" {
                "tls+http"
            } else {
                "http"
            };
            match answer {
                Ok(resp) => {
                    skew = resp
                        .headers()
                        .get(reqwest::header::DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| httpdate::parse_http_date(v).ok())
                        .map(|theirs| {
                            chrono::DateTime::<Utc>::from(theirs)
                                .signed_duration_since(Utc::now())
                                .num_seconds()
                        });
                    checks.push(step(
                        step_name,
                        true,
                        format!("answered HTTP {}", resp.status().as_u16()),
                        t,
                    ));
                }
                Err(e) => checks.push(step(step_name, false, format!("{e}"), t)),
            }
        }
    }

    if checks.iter().all(|c| c.ok) {
        let t = Instant::now();
        let redactor = Redactor::default();
        let cancel = CancellationToken::new();
        match Platform::new(cfg.clone(), &redactor, &cancel, &RunLocks::default()) {
            Err(e) => checks.push(step("credentials", false, e.to_string(), t)),
            Ok(p) => {
                let to = Utc::now();
                let window = Window {
                    from: to - chrono::Duration::days(1),
                    to,
                };
                let ctx = PassCtx {
                    platform: &cfg.name,
                    window,
                    store,
                    exhaustive: false,
                };
                let token = p.connector.first_token(&window);
                let page = p.connector.fetch_page(&ctx, &token).await;
                match page {
                    Ok(page) => {
                        checks.push(step("credentials", true, "accepted".into(), t));
                        checks.push(step(
                            "first page",
                            true,
                            format!(
                                "{} orders{}",
                                page.orders.len(),
                                page.total.map(|n| format!(" of {n}")).unwrap_or_default()
                            ),
                            t,
                        ));
                    }
                    Err(HttpError::Unauthorized { status, message }) => checks.push(step(
                        "credentials",
                        false,
                        format!(
                            "refused (HTTP {status}) {message}: check [platforms.{}.auth] in {}",
                            cfg.name,
                            cfg.file.display()
                        ),
                        t,
                    )),
                    Err(e) => {
                        checks.push(step("credentials", true, "not refused".into(), t));
                        checks.push(step(
                            "first page",
                            false,
                            redactor.redact(&e.to_string()),
                            t,
                        ));
                    }
                }
            }
        }
    }
    Report {
        platform: cfg.name.clone(),
        kind: cfg.kind.as_str(),
        ok: checks.iter().all(|c| c.ok),
        checks,
        clock_skew_seconds: skew,
    }
}

fn step(step: &'static str, ok: bool, detail: String, since: Instant) -> Check {
    Check {
        step,
        ok,
        detail,
        millis: since.elapsed().as_millis() as u64,
    }
}
