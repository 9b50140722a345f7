//! The signals that stop (SIGTERM, SIGINT) or reload (SIGHUP) the daemon, and what a reload
//! cannot change without a restart.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

/// Daemon-wide settings are bound at start (the open database, the listening socket).
pub(super) fn warn_daemon_changes(old: &Config, new: &Config) {
    let (a, b) = (&old.daemon, &new.daemon);
    for (key, changed) in [
        ("database", a.database != b.database),
        ("metrics_listen", a.metrics_listen != b.metrics_listen),
        ("push_interval", a.push_interval != b.push_interval),
        ("log_level", a.log_level != b.log_level),
        ("log_format", a.log_format != b.log_format),
    ] {
        if changed {
            warn!(key = %format!("daemon.{key}"), file = %new.main_file.display(),
                  "changed, but takes effect only at the next restart");
        }
    }
}

pub(super) enum Signal {
    Stop,
    Reload,
}

pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    pub(super) async fn next(&mut self, cancel: &CancellationToken) -> Signal {
        tokio::select! {
            _ = cancel.cancelled() => Signal::Stop,
            _ = self.term.recv() => { info!("SIGTERM received"); Signal::Stop }
            _ = self.int.recv() => { info!("SIGINT received"); Signal::Stop }
            _ = self.hup.recv() => { info!("SIGHUP received: reloading the configuration"); Signal::Reload }
        }
    }
}
