//! The command line (docs/contract.md §3): parsing with clap, loading the configuration, and the
//! exit codes sysadmins script against: 0 success, 1 runtime failure or refusal, 2 usage,
//! 78 configuration. Errors are `anyhow` here, at the edge, printed with their whole chain, each cause once.

#[cfg(feature = "demo")]
mod demo;
mod doctor;
pub mod generate;
mod migrate_store;
mod query;
mod sinks;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors};
use crate::daemon::{self, DaemonOptions, RunLocks};
use crate::http::Redactor;
use crate::outbox::{self, Action, Params};
use crate::store::Store;
use crate::sync::{PassKind, PassOptions};

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "ordersync",
    version,
    about = "Order-synchronization daemon: mirrors e-commerce platforms' orders into SQLite"
)]
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
    /// Drain the due outbox entries once (all enabled platforms, or the named ones), then exit
    Push {
        /// Platforms to push for (default: every enabled one)
        names: Vec<String>,
    },
    /// Queue a status transition for an order (it only queues: `push` or the daemon sends it)
    Transition {
        /// The platform
        name: String,
        /// The order id or the order number
        order: String,
        /// The canonical target status (or `invoice`, where the platform has it)
        status: String,
        /// The shipment's tracking (AWB) number, for `shipped`
        #[arg(long)]
        tracking_number: Option<String>,
        /// The carrier's name, for `shipped`
        #[arg(long)]
        carrier: Option<String>,
        /// Why, for `cancelled` or `rejected`
        #[arg(long)]
        reason: Option<String>,
        /// Who took the parcel, for `delivered`
        #[arg(long)]
        received_by: Option<String>,
        /// Act on these items only (Akinon); repeat for several
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
        /// Override the state machine (not the platform's abilities)
        #[arg(long)]
        force: bool,
    },
    /// Inspect queued pushes; `outbox retry ID`, `outbox cancel ID`
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxCommand>,
        /// Only entries in this state (pending, in_flight, done, failed, cancelled)
        #[arg(long)]
        state: Option<String>,
        /// One JSON document instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Per platform: last run and when, orders stored, open orders, outbox; a failing one's error
    Status {
        /// One JSON document, with full RFC 3339 timestamps and the cursor
        #[arg(long)]
        json: bool,
    },
    /// List stored orders
    Orders {
        /// Only this platform's orders
        #[arg(long)]
        platform: Option<String>,
        /// Canonical status
        #[arg(long)]
        status: Option<String>,
        /// At most this many, newest first
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON document instead of the table
        #[arg(long)]
        json: bool,
    },
    /// One order with its items, its change history and its outbox entries
    Order {
        /// The platform
        name: String,
        /// The order id or the order number
        order: String,
        /// One JSON document instead of the text
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
        /// JSON: one document, or with --follow one document per line as events arrive
        #[arg(long)]
        json: bool,
    },
    /// Per sink: state, cursor, lag and last error; `sinks replay|pause|resume NAME`
    Sinks {
        #[command(subcommand)]
        action: Option<SinksCommand>,
        /// One JSON document instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Live check of each platform: DNS, TCP, TLS/HTTP, credentials, one page, clock skew
    Doctor {
        /// Platforms to check (default: every enabled one)
        names: Vec<String>,
        /// JSON even on a terminal (it is the default when stdout is not a terminal)
        #[arg(long)]
        json: bool,
    },
    /// Compare the store with what each platform lists now: missing, changed and extra orders
    Verify {
        /// Platforms to verify (default: every enabled one)
        names: Vec<String>,
        /// Write missing and changed orders through the normal write path (with their events);
        /// extra orders are reported, never deleted
        #[arg(long)]
        repair: bool,
        /// One JSON document instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon against built-in simulated platforms with a throw-away database
    #[cfg(feature = "demo")]
    Demo {
        /// Stop after this long (e.g. "60s"); default: until Ctrl-C
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Orders in each simulated shop
        #[arg(long, default_value_t = 3000)]
        orders: usize,
    },
    /// Copy the SQLite store (daemon.database) into an empty PostgreSQL database and verify
    /// every table (rows and a content hash on both sides); exit 1 on any difference
    MigrateStore {
        /// The PostgreSQL database: postgres://USER@HOST:PORT/DBNAME, without a password
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding its password (default: daemon.database_password_file)
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Print the man page or a shell completion script, or write them all under --out DIR
    Generate {
        /// Which one to print
        #[arg(value_enum, conflicts_with = "out")]
        what: Option<generate::Asset>,
        /// Write man/ordersync.1 and completions/* under this folder
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SinksCommand {
    /// Deliver again every event of the sink's filter from an event id on (for a receiver
    /// that lost data); the receiver sees the same webhook-id / Nats-Msg-Id as the first time
    Replay {
        /// The sink (a [sinks.<name>] table)
        name: String,
        /// The first event id to deliver again (`ordersync events` lists them)
        #[arg(long, value_name = "EVENT_ID")]
        from: i64,
    },
    /// Stop delivering to a sink; its events wait in the database
    Pause {
        /// The sink (a [sinks.<name>] table)
        name: String,
    },
    /// Deliver again to a paused sink, or to one a 410 disabled
    Resume {
        /// The sink (a [sinks.<name>] table)
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Put a failed or cancelled entry back in the queue with a fresh attempt budget
    Retry {
        /// The entry's id (the first column of `ordersync outbox`)
        id: i64,
    },
    /// Do not send a pending or failed entry
    Cancel {
        /// The entry's id (the first column of `ordersync outbox`)
        id: i64,
    },
}

#[cfg(feature = "demo")]
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
    if cli.command.only_prints() {
        exit_quietly_on_a_closed_stdout();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            if let Some(e) = exit.error {
                // Not `eprintln!`: it panics on a closed stderr, turning the exit code into 101.
                let _ = writeln!(std::io::stderr(), "ordersync: {}", error_text(&e));
            }
            ExitCode::from(exit.code)
        }
    }
}

impl Command {
    /// Commands that change nothing, only print what they read: cutting their output short
    /// loses nothing.
    fn only_prints(&self) -> bool {
        match self {
            Command::Check
            | Command::Status { .. }
            | Command::Orders { .. }
            | Command::Order { .. }
            | Command::Events { .. }
            | Command::Doctor { .. } => true,
            Command::Outbox { action, .. } => action.is_none(),
            Command::Sinks { action, .. } => action.is_none(),
            Command::Generate { out, .. } => out.is_none(),
            Command::Verify { repair, .. } => !repair,
            Command::Run
            | Command::Sync { .. }
            | Command::Push { .. }
            | Command::Transition { .. }
            | Command::MigrateStore { .. } => false,
            #[cfg(feature = "demo")]
            Command::Demo { .. } => false,
        }
    }
}

/// Rust starts with SIGPIPE ignored, so once a reader goes away (`ordersync orders | head -n1`)
/// every `println!` fails and panics (exit 101, a message on stderr). A command that only prints
/// takes the default action back and ends as coreutils do, killed quietly by SIGPIPE. The daemon
/// and the commands that change state keep ignoring it: a log reader going away must not kill
/// the daemon, nor stop a sync or a push half-way.
fn exit_quietly_on_a_closed_stdout() {
    // SAFETY: called before any other thread exists; setting a signal's disposition to its
    // default touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error and its causes, each said once. Errors that already quote their cause (the sync
/// engine's do) would otherwise state it twice, as `{:#}` appends every cause.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn load_config(cli: &Cli) -> Result<Config, Exit> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(config::default_config_path);
    config::load(&path, crate::platforms::kinds()).map_err(Exit::config)
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    daemon::memory::limit_arenas();
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
            if let Some(w) = config.platforms_dir_warning() {
                let _ = writeln!(std::io::stderr(), "warning: {w}");
            }
            println!(
                "configuration ok: {} ({} platform{}: {})",
                config.main_file.display(),
                config.platforms.len(),
                if config.platforms.len() == 1 { "" } else { "s" },
                config
                    .platforms
                    .iter()
                    .map(|p| format!(
                        "{} ({}){}",
                        p.name,
                        p.kind.as_str(),
                        if p.enabled { "" } else { " disabled" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Run => {
            let config = load_config(&cli)?;
            crate::telemetry::init(&config.daemon.log_level, config.daemon.log_format);
            if let Some(w) = config.platforms_dir_warning() {
                tracing::warn!("{w}");
            }
            runtime()?.block_on(daemon::run(config, DaemonOptions::default()))?;
            Ok(())
        }
        Command::Sync {
            names,
            full,
            no_reconcile,
        } => {
            let config = load_config(&cli)?;
            // On a terminal the progress bars say what the info lines would; keep the problems.
            let bars = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let level = if bars {
                "warn"
            } else {
                config.daemon.log_level.as_str()
            };
            crate::telemetry::init(level, config.daemon.log_format);
            let args = SyncArgs {
                platforms: names,
                full: *full,
                reconcile: !*no_reconcile,
            };
            runtime()?.block_on(sync_with_progress(config, args, bars))
        }
        Command::Push { names } => {
            let config = load_config(&cli)?;
            crate::telemetry::init(&config.daemon.log_level, config.daemon.log_format);
            runtime()?.block_on(push(config, names))
        }
        Command::Transition {
            name,
            order,
            status,
            tracking_number,
            carrier,
            reason,
            received_by,
            items,
            force,
        } => {
            let config = load_config(&cli)?;
            let cfg = config
                .platform(name)
                .ok_or_else(|| unknown_platform(&config, name))?;
            let action: Action = status.parse().map_err(Exit::usage)?;
            let params = Params {
                tracking_number: tracking_number.clone(),
                carrier: carrier.clone(),
                reason: reason.clone(),
                received_by: received_by.clone(),
                items: items.clone(),
            };
            let id = runtime()?.block_on(async {
                let store =
                    Store::open_database(&config.daemon.database, config.daemon.busy_timeout)
                        .await?;
                outbox::enqueue(
                    &store,
                    cfg,
                    order,
                    action,
                    &params,
                    if *force {
                        outbox::StateCheck::Override
                    } else {
                        outbox::StateCheck::Enforce
                    },
                    chrono::Utc::now(),
                )
                .await
                .map_err(Exit::failure)
            })?;
            println!(
                "queued #{id}: {name} order {order} -> {action} (sent by the daemon within push_interval, or now with `ordersync push {name}`)"
            );
            Ok(())
        }
        Command::Outbox {
            action,
            state,
            json,
        } => {
            let config = load_config(&cli)?;
            let now = chrono::Utc::now();
            runtime()?.block_on(async {
                let store =
                    Store::open_database(&config.daemon.database, config.daemon.busy_timeout)
                        .await?;
                match action {
                    Some(OutboxCommand::Retry { id }) => {
                        outbox::retry(&store, *id, now)
                            .await
                            .map_err(|e| Exit::failure(anyhow::anyhow!(e)))?;
                        println!("entry #{id} is pending again");
                        Ok(())
                    }
                    Some(OutboxCommand::Cancel { id }) => {
                        outbox::cancel(&store, *id, now)
                            .await
                            .map_err(|e| Exit::failure(anyhow::anyhow!(e)))?;
                        println!("entry #{id} cancelled");
                        Ok(())
                    }
                    None => query::outbox(&store, state.as_deref(), *json).await,
                }
            })
        }
        Command::Sinks { action, json } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(async {
                match action {
                    None => sinks::list(&config, *json).await,
                    Some(SinksCommand::Replay { name, from }) => {
                        sinks::replay(&config, name, *from).await
                    }
                    Some(SinksCommand::Pause { name }) => {
                        sinks::set_paused(&config, name, true).await
                    }
                    Some(SinksCommand::Resume { name }) => {
                        sinks::set_paused(&config, name, false).await
                    }
                }
            })
        }
        Command::Status { json } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(query::status(&config, *json))
        }
        Command::Orders {
            platform,
            status,
            limit,
            json,
        } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(query::orders(
                &config,
                platform.as_deref(),
                status.as_deref(),
                *limit,
                *json,
            ))
        }
        Command::Order { name, order, json } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(query::order(&config, name, order, *json))
        }
        Command::Events {
            after,
            follow,
            json,
        } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(query::events(&config, *after, *follow, *json))
        }
        Command::Doctor { names, json } => {
            let config = load_config(&cli)?;
            for n in names {
                if config.platform(n).is_none() {
                    return Err(unknown_platform(&config, n));
                }
            }
            crate::telemetry::init("warn", config.daemon.log_format);
            runtime()?.block_on(doctor::run(config, names, *json))
        }
        Command::Verify {
            names,
            repair,
            json,
        } => {
            let config = load_config(&cli)?;
            // As for `sync`: on a terminal the progress bars say what the info lines would.
            let bars = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let level = if bars {
                "warn"
            } else {
                config.daemon.log_level.as_str()
            };
            crate::telemetry::init(level, config.daemon.log_format);
            runtime()?.block_on(verify::run(config, names, *repair, *json, bars))
        }
        #[cfg(feature = "demo")]
        Command::Demo { duration, orders } => {
            crate::telemetry::init("info", config::LogFormat::Text);
            runtime()?.block_on(demo::run(*duration, *orders))
        }
        Command::Generate { what, out } => generate::run(*what, out.as_deref()),
        Command::MigrateStore { to, password_file } => {
            let config = load_config(&cli)?;
            runtime()?.block_on(migrate_store::run(&config, to, password_file.as_deref()))
        }
    }
}

fn unknown_platform(config: &Config, name: &str) -> Exit {
    let known: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
    Exit::usage(format!(
        "no platform named `{name}` in the configuration (known: {})",
        known.join(", ")
    ))
}

/// `ordersync push`: one drain of the due entries.
pub async fn push(config: Config, names: &[String]) -> Result<(), Exit> {
    for n in names {
        if config.platform(n).is_none() {
            return Err(unknown_platform(&config, n));
        }
    }
    // The daemon's busy timeout: it is part of the lease this run's claims hold.
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
    store.recover_in_flight(chrono::Utc::now()).await?;
    let cancel = CancellationToken::new();
    let mut platforms =
        daemon::build_platforms(&config, &Redactor::default(), &cancel, &RunLocks::default());
    if !names.is_empty() {
        platforms.retain(|n, _| names.contains(n));
    }
    let report = outbox::drain_once(&store, &platforms, chrono::Utc::now()).await?;
    println!(
        "pushed: {} sent, {} done, {} already applied, {} to retry, {} failed",
        report.sent, report.done, report.already_applied, report.retried, report.failed
    );
    if report.failed > 0 {
        return Err(Exit::failure(anyhow::anyhow!(
            "{} entr{} failed: see `ordersync outbox --state failed`",
            report.failed,
            if report.failed == 1 { "y" } else { "ies" }
        )));
    }
    Ok(())
}

/// One progress bar per platform, for `sync` on a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    fn shared() -> Arc<Bars> {
        Arc::new(Bars {
            multi: indicatif::MultiProgress::new(),
            bars: Default::default(),
        })
    }
}

/// The platforms a command acts on: the named ones (each must exist: exit 2 otherwise), or
/// every enabled one when none is named.
fn select_platforms(
    config: &Config,
    names: &[String],
) -> Result<Vec<crate::config::PlatformConfig>, Exit> {
    if let Some(n) = names.iter().find(|n| config.platform(n).is_none()) {
        return Err(unknown_platform(config, n));
    }
    Ok(config
        .platforms
        .iter()
        .filter(|p| {
            if names.is_empty() {
                p.enabled
            } else {
                names.contains(&p.name)
            }
        })
        .cloned()
        .collect())
}

impl crate::sync::Progress for Bars {
    fn page(&self, platform: &str, fetched: u64, total: Option<u64>) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(platform.to_string()).or_insert_with(|| {
            let b = self.multi.add(indicatif::ProgressBar::no_length());
            b.set_prefix(platform.to_string());
            b
        });
        // Kinds whose listing says how many orders it holds get a bar; the others a counter.
        let template = match total {
            Some(t) => {
                bar.set_length(t.max(fetched));
                "{prefix:<20} {bar:30} {pos:>8}/{len:<8} orders  {elapsed}"
            }
            None => "{prefix:<20} {spinner} {pos:>8} orders  {elapsed}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_position(fetched);
    }
}

impl Bars {
    /// Leaves every bar on screen in its final state.
    fn finish(&self) {
        for b in self.bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
            b.finish();
        }
    }
}

/// `ordersync sync`: every selected platform at once, each independent of the others' failures.
pub async fn sync(config: Config, args: SyncArgs<'_>) -> Result<(), Exit> {
    sync_with_progress(config, args, false).await
}

/// What one `ordersync sync` does: which platforms, and which passes.
#[derive(Debug, Clone, Copy)]
pub struct SyncArgs<'a> {
    /// The platforms to sync by name; none means every configured platform.
    pub platforms: &'a [String],
    /// Re-read the whole history from `backfill_from`, not only what changed since the cursor.
    pub full: bool,
    /// Follow the incremental pass with a reconcile pass on kinds that need one.
    pub reconcile: bool,
}

impl Default for SyncArgs<'_> {
    /// Every platform, incrementally, reconciled: what a bare `ordersync sync` does.
    fn default() -> Self {
        SyncArgs {
            platforms: &[],
            full: false,
            reconcile: true,
        }
    }
}

async fn sync_with_progress(config: Config, args: SyncArgs<'_>, bars: bool) -> Result<(), Exit> {
    let SyncArgs {
        platforms: names,
        full,
        reconcile,
    } = args;
    let progress = bars.then(Bars::shared);
    let selected = select_platforms(&config, names)?;
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout).await?;
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
        let progress = progress.clone();
        tasks.spawn(async move {
            let progress = progress.as_deref().map(|b| b as &dyn crate::sync::Progress);
            let name = cfg.name.clone();
            let platform =
                match daemon::Platform::new(cfg, &redactor, &cancel, &RunLocks::default()) {
                    Ok(p) => Arc::new(p),
                    Err(e) => return (name, Err(anyhow::anyhow!("{e}"))),
                };
            let opts = PassOptions { full };
            let mut result = platform
                .run_pass(PassKind::Incremental, opts, &store, &cancel, progress)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from);
            if result.is_ok() && reconcile && platform.needs_reconcile() && !cancel.is_cancelled() {
                result = platform
                    .run_pass(PassKind::Reconcile, opts, &store, &cancel, progress)
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
            let text = error_text(&e);
            failed.push(if text.contains(&name) {
                text
            } else {
                format!("platform {name}: {text}")
            });
        }
    }
    if let Some(b) = &progress {
        b.finish();
    }
    if cancel.is_cancelled() && failed.is_empty() {
        return Err(Exit::failure(anyhow::anyhow!(
            "interrupted; progress so far is saved"
        )));
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
