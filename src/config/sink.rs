//! `[sinks.<name>]`: where the change feed is delivered. A sink is a webhook receiver (Standard
//! Webhooks) or a NATS JetStream stream, with an optional filter on platforms and event kinds
//! and the knobs of its delivery.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;
use crate::model::FeedFilter;

/// One validated `[sinks.<name>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// The sink's id in logs, metrics, the CLI and the database.
    pub name: String,
    /// The file that declared it, for messages.
    pub file: PathBuf,
    pub target: SinkTarget,
    /// Only these platforms' events; `None`: every platform's.
    pub platforms: Option<Vec<String>>,
    /// Only these event kinds; `None`: all of them.
    pub events: Option<Vec<String>>,
    /// Where a sink seen for the first time starts.
    pub start: SinkStartAt,
    /// `/health` names the sink when its oldest undelivered event is older than this.
    pub max_lag: Duration,
    /// How long one delivery may take before it counts as failed (and is retried).
    pub timeout: Duration,
    /// Deliveries under way at once; one order's events always go one after another.
    pub max_in_flight: usize,
    /// The first retry's delay; each further one doubles it, jittered, up to
    /// `max_retry_interval`, which also caps a receiver's `Retry-After`.
    pub initial_retry_interval: Duration,
    pub max_retry_interval: Duration,
}

impl SinkConfig {
    pub fn filter(&self) -> FeedFilter {
        FeedFilter {
            platforms: self.platforms.clone(),
            kinds: self.events.clone(),
        }
    }

    /// `webhook` or `nats`.
    pub fn kind(&self) -> &'static str {
        match self.target {
            SinkTarget::Webhook { .. } => "webhook",
            SinkTarget::Nats { .. } => "nats",
        }
    }

    /// Where it delivers, for people: the URL, and for NATS the stream.
    pub fn destination(&self) -> String {
        match &self.target {
            SinkTarget::Webhook { url, .. } => url.to_string(),
            SinkTarget::Nats { url, stream, .. } => format!("{url} stream {stream}"),
        }
    }
}

/// `start`: where a new sink's cursor begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStartAt {
    /// After the newest event (the default): a receiver connected today is not flooded with a
    /// shop's history; `ordersync sinks replay` sends history on request.
    Now,
    /// Before the first event: the whole feed.
    Beginning,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkTarget {
    Webhook {
        url: reqwest::Url,
        /// Every one signs each delivery (Standard Webhooks: several signatures while a key is
        /// rotated). Each is `whsec_` and base64.
        secrets: Vec<Secret>,
    },
    Nats {
        /// `nats://host:port`, or several separated by commas.
        url: String,
        stream: String,
        /// With `{platform}` and `{kind}` filled in per event.
        subject: String,
        /// Create the stream when it does not exist (subjects from `subject`, wildcards for
        /// the placeholders).
        create_stream: bool,
        /// How long the stream drops a re-published event id; only used when creating it.
        duplicate_window: Duration,
        token: Option<Secret>,
    },
}

pub(crate) const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_MAX_LAG: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_WEBHOOK_IN_FLIGHT: usize = 16;
pub(crate) const DEFAULT_NATS_IN_FLIGHT: usize = 256;
pub(crate) const DEFAULT_INITIAL_RETRY: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_MAX_RETRY: Duration = Duration::from_secs(300);
/// JetStream's own default.
pub(crate) const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The subject a NATS sink publishes an event to.
pub fn render_subject(template: &str, platform: &str, kind: &str) -> String {
    template
        .replace("{platform}", platform)
        .replace("{kind}", kind)
}
