//! Logging. Under systemd (journald reads our stderr) lines carry no timestamp and no colour,
//! since journald adds its own, and start with the `<N>` syslog priority prefix journald turns
//! into the entry's level; elsewhere a plain text format, or JSON for log shippers.

pub mod metrics;

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// True when stderr is connected to the journal (systemd sets `JOURNAL_STREAM` for services).
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Installs the global subscriber. Safe to call more than once (later calls are ignored), which
/// the CLI relies on: it logs before and after the config is read.
pub fn init(level: &str, format: LogFormat) {
    // `daemon.log_level` (or ORDERSYNC_DAEMON__LOG_LEVEL) is the one knob; config validation
    // has already rejected a filter that does not parse.
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // The scheduler crate narrates its own bookkeeping at info; only its problems matter here.
    if !level.contains("tokio_cron_scheduler")
        && let Ok(d) = "tokio_cron_scheduler=warn".parse()
    {
        filter = filter.add_directive(d);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a failed write the subscriber reports it with `eprint!`, which panics when stderr
        // is a closed pipe (a log reader gone, journald restarted): a lost log line must not
        // take the daemon down.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Auto if under_journald() => builder
            .with_ansi(false)
            .event_format(Journald(
                Format::default().without_time().with_target(false),
            ))
            .try_init(),
        LogFormat::Auto | LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .try_init(),
    };
}

/// The default text format without time, prefixed with the syslog priority of the level.
struct Journald(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prio = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{prio}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
