//! The command line (SPEC section 3): parsing with clap, loading the configuration, and the
//! exit codes sysadmins script against: 0 success, 1 runtime failure or refusal, 2 usage,
//! 78 configuration. Errors are `anyhow` here, at the edge, printed with their whole chain.

mod demo;
mod query;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors};
use crate::http::Redactor;
use crate::scheduler::{self, DaemonOptions};
use crate::store::Store;
use crate::sync::{PassKind, PassOptions};

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(name = "ordersync", version, about = "Order-synchronization daemon: mirrors e-commerce platforms' orders into SQLite")]
pub struct Cli {
    /// Main configuration file [default: /etc/ordersync/ordersync.toml]
    #[arg(long, global = true, env = "ORDERSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: schedule every enabled platform until SIGTERM/SIGINT
    Run,
    /// Validate the configuration offline; exit 0, or 78 listing every error
    Check,
    /// Bring the store up to date now (all enabled platforms, or the named ones), then exit
    Sync {
        /// Platforms to sync (default: every enabled one)
        names: Vec<String>,
        /// Ignore the cursor: read everything since backfill_from
        #[arg(long)]
        full: bool,
        /// Skip the reconcile pass of open orders
        #[arg(long)]
        no_reconcile: bool,
    },
    /// Per platform: last run, outcome, cursor, orders stored, open orders, outbox
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List stored orders
    Orders {
        #[arg(long)]
        platform: Option<String>,
        /// Canonical status
        #[arg(long)]
        status: Option<String>,
        /// At most this many, newest first
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One order with its items, its change history and its outbox entries
    Order {
        name: String,
        /// The order id or the order number
        order: String,
        #[arg(long)]
        json: bool,
    },
    /// The change feed, in order
    Events {
        /// Only events with an id greater than this
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Keep waiting for new events
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon against built-in simulated platforms with a throw-away database
    Demo {
        /// Stop after this long (e.g. "60s"); default: until Ctrl-C
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Orders in each simulated shop
        #[arg(long, default_value_t = 3000)]
        orders: usize,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write a duration like \"60s\")"))
}

/// An error with the exit code it means.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub error: Option<anyhow::Error>,
}

impl Exit {
    fn failure(e: impl Into<anyhow::Error>) -> Exit {
        Exit {
            code: EXIT_FAILURE,
            error: Some(e.into()),
        }
    }
    fn usage(msg: String) -> Exit {
        Exit {
            code: EXIT_USAGE,
            error: Some(anyhow::anyhow!(msg)),
        }
    }
    fn config(e: ConfigErrors) -> Exit {
        Exit {
            code: EXIT_CONFIG,
            error: Some(anyhow::anyhow!("{e}")),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Self {
        Exit::failure(e)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            if let Some(e) = exit.error {
                eprintln!("ordersync: {e:#}");
            }
            ExitCode::from(exit.code)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, Exit> {
    let path = cli.config.clone().unwrap_or_else(config::default_config_path);
    config::load(&path).map_err(Exit::config)
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ordersync")
        .build()
        .map_err(Exit::failure)
}

pub fn run(cli: Cli) -> Result<(), Exit> {
    match &cli.command {
        Command::Check => {
            let config = load_config(&cli)?;
            println!(
                "configuration ok: {} ({} platform{}: {})",
                config.main_file.display(),
                config.platforms.len(),
                if config.platforms.len() == 1 { "" } else { "s" },
                config
                    .platforms
                    .iter()
                    .map(|p| format!("{} ({}){}", p.name, p.kind.as_str(), if p.enabled { "" } else { " disabled" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Run => {
            let config = load_config(&cli)?;
            crate::telemetry::init(&config.daemon.log_level, config.daemon.log_format);
            runtime()?.block_on(scheduler::run(config, DaemonOptions::default()))?;
            Ok(())
        }
        Command::Sync {
            names,
            full,
            no_reconcile,
        } => {
            let config = load_config(&cli)?;
            crate::telemetry::init(&config.daemon.log_level, config.daemon.log_format);
            runtime()?.block_on(sync(config, names, *full, *no_reconcile))
        }
        Command::Status { json } => query::status(&load_config(&cli)?, *json),
        Command::Orders {
            platform,
            status,
            limit,
            json,
        } => query::orders(&load_config(&cli)?, platform.as_deref(), status.as_deref(), *limit, *json),
        Command::Order { name, order, json } => query::order(&load_config(&cli)?, name, order, *json),
        Command::Events {
            after,
            follow,
            json,
        } => query::events(&load_config(&cli)?, *after, *follow, *json),
        Command::Demo { duration, orders } => {
            crate::telemetry::init("info", config::LogFormat::Text);
            runtime()?.block_on(demo::run(*duration, *orders))
        }
    }
}

/// `ordersync sync`: every selected platform at once, each independent of the others' failures.
pub async fn sync(config: Config, names: &[String], full: bool, no_reconcile: bool) -> Result<(), Exit> {
    for n in names {
        if config.platform(n).is_none() {
            let known: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
            return Err(Exit::usage(format!(
                "no platform named `{n}` in the configuration (known: {})",
                known.join(", ")
            )));
        }
    }
    let selected: Vec<_> = config
        .platforms
        .iter()
        .filter(|p| if names.is_empty() { p.enabled } else { names.contains(&p.name) })
        .cloned()
        .collect();
    let store = Store::open(&config.daemon.database)?;
    let cancel = CancellationToken::new();
    let redactor = Redactor::default();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupted: stopping after the pages in flight");
                cancel.cancel();
            }
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for cfg in selected {
        let (store, cancel, redactor) = (store.clone(), cancel.clone(), redactor.clone());
        tasks.spawn(async move {
            let name = cfg.name.clone();
            let platform = match scheduler::Platform::new(cfg, &redactor, &cancel) {
                Ok(p) => Arc::new(p),
                Err(e) => return (name, Err(anyhow::anyhow!("{e}"))),
            };
            let opts = PassOptions { full };
            let mut result = platform
                .run_pass(PassKind::Incremental, opts, &store, &cancel, None)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from);
            if result.is_ok() && !no_reconcile && platform.needs_reconcile() && !cancel.is_cancelled() {
                result = platform
                    .run_pass(PassKind::Reconcile, opts, &store, &cancel, None)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from);
            }
            (name, result)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.map_err(Exit::failure)?;
        if let Err(e) = result {
            // Engine errors already start with the platform's name.
            let text = format!("{e:#}");
            failed.push(if text.contains(&name) { text } else { format!("platform {name}: {text}") });
        }
    }
    if cancel.is_cancelled() && failed.is_empty() {
        return Err(Exit::failure(anyhow::anyhow!("interrupted; progress so far is saved")));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        failed.sort();
        Err(Exit::failure(anyhow::anyhow!(
            "{} platform{} failed:\n  {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join("\n  ")
        )))
    }
}
