//! `ordersync doctor`: a live check of each platform, step by step, so a sysadmin sees where a
//! connection breaks: name resolution, TCP, TLS and HTTP, credentials and one page of orders,
//! and the clock skew against the platform's `Date` header, then the first record of that page
//! mapped field by field (with, for a described platform, the pointer each field came from), so
//! a mapping is seen working before the first sync. Nothing is written to the store.

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
    /// The first record of the first page, as the store would hold it.
    first_record: Vec<MappedField>,
}

/// One canonical field of a mapped record.
#[derive(Debug, Serialize)]
struct MappedField {
    field: &'static str,
    value: String,
    /// Where a described platform's mapping read it; empty for built-in kinds.
    from: String,
}

pub async fn run(config: Config, names: &[String], json: bool) -> Result<(), Exit> {
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
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
            if !r.first_record.is_empty() {
                println!("  first record, as it would be stored:");
                for f in &r.first_record {
                    println!("    {:<16} {:<32} {}", f.field, f.value, f.from);
                }
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
    let mut first_record = Vec::new();
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
                        let records = page.orders.len() + page.rejects.len();
                        if records > 0 {
                            checks.push(step(
                                "mapping",
                                page.rejects.is_empty(),
                                match page.rejects.first() {
                                    None => format!("{records} of {records} records read"),
                                    Some(r) => format!(
                                        "{} of {records} records cannot be read; the first, {}: {}",
                                        page.rejects.len(),
                                        r.position,
                                        r.reason
                                    ),
                                },
                                t,
                            ));
                        }
                        if let Some(first) = page.orders.first() {
                            first_record = mapped(cfg, &first.order);
                        }
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
        first_record,
    }
}

/// `order` field by field, with where a described platform read each one.
fn mapped(cfg: &PlatformConfig, order: &crate::model::Order) -> Vec<MappedField> {
    let records = cfg.api.as_ref().map(|a| &a.records);
    let from = |f: Option<&crate::config::api::Field>| f.map(|f| f.describe()).unwrap_or_default();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "(none)".to_string());
    let time = |t: Option<chrono::DateTime<Utc>>| opt(t.map(|t| t.to_rfc3339()));
    let mut fields = vec![
        MappedField {
            field: "order_id",
            value: order.order_id.clone(),
            from: from(records.map(|r| &r.id)),
        },
        MappedField {
            field: "number",
            value: order.number.clone(),
            from: from(records.and_then(|r| r.number.as_ref())),
        },
        MappedField {
            field: "status",
            value: format!("{} (platform: {:?})", order.status, order.platform_status),
            from: from(records.and_then(|r| r.status.as_ref())),
        },
        MappedField {
            field: "placed_at",
            value: time(order.placed_at),
            from: from(records.and_then(|r| r.placed_at.as_ref())),
        },
        MappedField {
            field: "updated_at",
            value: time(order.updated_at),
            from: from(records.and_then(|r| r.updated_at.as_ref())),
        },
        MappedField {
            field: "currency",
            value: opt(order.currency.clone()),
            from: from(records.and_then(|r| r.currency.as_ref())),
        },
        MappedField {
            field: "total",
            value: opt(order.total.map(|t| t.to_string())),
            from: from(records.and_then(|r| r.total.as_ref())),
        },
        MappedField {
            field: "customer_name",
            value: opt(order.customer_name.clone()),
            from: from(records.and_then(|r| r.customer_name.as_ref())),
        },
        MappedField {
            field: "tracking_number",
            value: opt(order.tracking_number.clone()),
            from: from(records.and_then(|r| r.tracking_number.as_ref())),
        },
    ];
    let items = records.and_then(|r| r.items.as_ref());
    for (i, item) in order.items.iter().enumerate() {
        fields.push(MappedField {
            field: "item",
            value: format!(
                "{}: id {}, sku {}, name {}, quantity {}, unit price {}{}",
                i + 1,
                item.item_id,
                opt(item.sku.clone()),
                opt(item.name.clone()),
                item.quantity,
                opt(item.unit_price.map(|p| p.to_string())),
                item.status
                    .as_ref()
                    .map(|s| format!(", status {s}"))
                    .unwrap_or_default()
            ),
            from: items.map(|s| format!("`{}`", s.list)).unwrap_or_default(),
        });
    }
    fields
}

fn step(step: &'static str, ok: bool, detail: String, since: Instant) -> Check {
    Check {
        step,
        ok,
        detail,
        millis: since.elapsed().as_millis() as u64,
    }
}
