//! `ordersync verify [NAME…] [--repair] [--json]`: runs [`crate::verify`] on every selected
//! platform at once (each independent of the others' failures), prints a table (with a
//! progress bar per platform on a terminal) or one JSON document, and turns the outcome into
//! the exit code: 0 when no listed order is missing or changed (or all of them were repaired),
//! 1 when drift remains or a platform could not be read.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Bars, Exit, select_platforms};
use crate::config::Config;
use crate::http::Redactor;
use crate::platforms::Connector;
use crate::store::Store;
use crate::verify::{VerifyOptions, VerifyReport, verify_locked};

/// Ids listed per kind of drift in the table; `--json` lists them all.
const IDS_SHOWN: usize = 10;

/// One platform's line of the JSON document: the report, or why there is none.
#[derive(Serialize)]
struct Entry {
    name: String,
    kind: String,
    listed: Option<u64>,
    stored: Option<u64>,
    platform_count: Option<u64>,
    missing: Option<Vec<String>>,
    changed: Option<Vec<String>>,
    extra: Option<Vec<String>>,
    repaired: u64,
    error: Option<String>,
}

impl Entry {
    fn of(name: &str, kind: &str, result: &Result<VerifyReport, String>, repaired: u64) -> Entry {
        match result {
            Ok(r) => Entry {
                name: r.name.clone(),
                kind: r.kind.clone(),
                listed: Some(r.listed),
                stored: Some(r.stored),
                platform_count: r.platform_count,
                missing: Some(r.missing.clone()),
                changed: Some(r.changed.clone()),
                extra: Some(r.extra.clone()),
                repaired: r.repaired,
                error: None,
            },
            Err(e) => Entry {
                name: name.to_string(),
                kind: kind.to_string(),
                listed: None,
                stored: None,
                platform_count: None,
                missing: None,
                changed: None,
                extra: None,
                repaired,
                error: Some(e.clone()),
            },
        }
    }
}

struct Outcome {
    name: String,
    kind: String,
    result: Result<VerifyReport, String>,
    /// Orders written before a failure.
    repaired: u64,
}

pub async fn run(
    config: Config,
    names: &[String],
    repair: bool,
    json: bool,
    bars: bool,
) -> Result<(), Exit> {
    let selected = select_platforms(&config, names)?;
    let progress = bars.then(Bars::shared);
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping after the pages in flight");
                cancel.cancel();
            }
        });
    }
    let redactor = Redactor::default();
    let opts = VerifyOptions { repair };
    let mut tasks = tokio::task::JoinSet::new();
    for (position, cfg) in selected.into_iter().enumerate() {
        let (store, cancel, redactor) = (store.clone(), cancel.clone(), redactor.clone());
        let progress = progress.clone();
        tasks.spawn(async move {
            let progress = progress.as_deref().map(|b| b as &dyn crate::sync::Progress);
            let (name, kind) = (cfg.name.clone(), cfg.kind.as_str().to_string());
            let (result, repaired) = match Connector::new(&cfg, &redactor, cancel.clone()) {
                Err(e) => (Err(format!("platform {name}: {e}")), 0),
                Ok(connector) => {
                    match verify_locked(&cfg, &connector, &store, opts, &cancel, progress).await {
                        Ok(r) => (Ok(r), 0),
                        Err(e) => {
                            let repaired = e.repaired;
                            (Err(e.to_string()), repaired)
                        }
                    }
                }
            };
            (
                position,
                Outcome {
                    name,
                    kind,
                    result,
                    repaired,
                },
            )
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.map_err(Exit::failure)?);
    }
    if let Some(b) = &progress {
        b.finish();
    }
    outcomes.sort_by_key(|(position, _)| *position);
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();

    if json {
        let platforms: Vec<Entry> = outcomes
            .iter()
            .map(|o| Entry::of(&o.name, &o.kind, &o.result, o.repaired))
            .collect();
        println!("{}", serde_json::json!({ "platforms": platforms }));
    } else {
        print_table(&outcomes);
    }

    let mut problems = Vec::new();
    for o in &outcomes {
        match &o.result {
            Err(e) => problems.push(e.clone()),
            Ok(r) if !r.in_sync() => problems.push(format!(
                "platform {}: {} missing and {} changed orders (run `ordersync verify --repair {}` to write them)",
                r.name,
                r.missing.len(),
                r.changed.len(),
                r.name
            )),
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Exit::failure(anyhow::anyhow!(
            "{} platform{} drifted or could not be read:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )))
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<20} {:<12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "PLATFORM", "KIND", "LISTED", "STORED", "COUNT", "MISSING", "CHANGED", "EXTRA", "REPAIRED"
    );
    for o in outcomes {
        match &o.result {
            Ok(r) => println!(
                "{:<20} {:<12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
                r.name,
                r.kind,
                r.listed,
                r.stored,
                r.platform_count
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                r.missing.len(),
                r.changed.len(),
                r.extra.len(),
                r.repaired
            ),
            Err(_) => println!(
                "{:<20} {:<12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
                o.name, o.kind, "-", "-", "-", "-", "-", "-", o.repaired
            ),
        }
    }
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                for (what, ids) in [
                    ("missing", &r.missing),
                    ("changed", &r.changed),
                    ("extra", &r.extra),
                ] {
                    if ids.is_empty() {
                        continue;
                    }
                    let shown: Vec<&str> = ids.iter().take(IDS_SHOWN).map(String::as_str).collect();
                    let more = ids.len().saturating_sub(IDS_SHOWN);
                    println!(
                        "{} {what}: {}{}",
                        r.name,
                        shown.join(", "),
                        if more > 0 {
                            format!(" (and {more} more; --json lists them all)")
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Err(e) => println!("{}: not verified: {e}", o.name),
        }
    }
}
