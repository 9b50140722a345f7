//! Delivery to a NATS JetStream stream. Each event is published with `Nats-Msg-Id` set to its
//! message id, so the stream drops a re-publish inside its duplicate window (after a crash
//! between the publish and the cursor's move), and `Nats-Expected-Stream`, so an event never
//! lands in another stream that happens to take the subject. An event counts as delivered once
//! the stream acknowledged storing it.

use std::time::Duration;

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind};

use super::Failure;
use super::payload::Prepared;
use crate::config::{SinkConfig, SinkTarget, render_subject};

pub struct Nats {
    js: jetstream::Context,
    stream: String,
    subject: String,
    timeout: Duration,
}

impl Nats {
    /// Connects, and makes sure the stream exists (creating it if the sink says so). The
    /// client reconnects on its own afterwards; publishes meanwhile fail and are retried.
    pub async fn connect(cfg: &SinkConfig) -> Result<Nats, String> {
        let SinkTarget::Nats {
            url,
            stream,
            subject,
            create_stream,
            duplicate_window,
            token,
        } = &cfg.target
        else {
            return Err(format!("sink {} is not a NATS sink", cfg.name));
        };
        let (url, stream, subject, sink, timeout) = (
            url.as_str(),
            stream.as_str(),
            subject.as_str(),
            cfg.name.as_str(),
            cfg.timeout,
        );
        crate::http::install_crypto_provider();
        let addrs = url
            .split(',')
            .map(|a| a.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", url))?;
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("ordersync sink {}", sink))
            .connection_timeout(timeout)
            // Reconnect for ever: the sink holds its backlog until the server is back.
            .max_reconnects(None);
        if let Some(token) = token {
            opts = opts.token(token.expose().to_string());
        }
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", url))?;
        let mut js = jetstream::new(client);
        js.set_timeout(timeout);
        match js.get_stream(stream).await {
            Ok(_) => {}
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                let wildcard = render_subject(subject, "*", "*");
                if !*create_stream {
                    return Err(format!(
                        "JetStream stream {} does not exist on {}: create it (nats stream add {} \
                         --subjects '{wildcard}'), or set create_stream = true in [sinks.{}]",
                        stream, url, stream, sink
                    ));
                }
                js.create_stream(jetstream::stream::Config {
                    name: stream.to_string(),
                    subjects: vec![wildcard],
                    duplicate_window: *duplicate_window,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot create JetStream stream {}: {e}", stream))?;
                tracing::info!(sink = sink, stream = stream, "created the JetStream stream");
            }
            Err(e) => {
                return Err(format!(
                    "cannot read JetStream stream {} on {}: {e} (is JetStream enabled on the \
                     server?)",
                    stream, url
                ));
            }
        }
        Ok(Nats {
            js,
            stream: stream.to_string(),
            subject: subject.to_string(),
            timeout,
        })
    }

    pub async fn send(&self, p: &Prepared) -> Result<(), Failure> {
        let subject = render_subject(&self.subject, &p.platform, &p.kind);
        let publish = jetstream::message::PublishMessage::build()
            .payload(p.body.clone())
            .message_id(&p.message_id)
            .expected_stream(&self.stream);
        let acked = tokio::time::timeout(self.timeout, async {
            self.js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        match acked {
            Ok(Ok(_ack)) => Ok(()),
            Ok(Err(e)) => Err(Failure::retry(format!(
                "publishing to {subject} (stream {}): {e}",
                self.stream
            ))),
            Err(_) => Err(Failure::retry(format!(
                "stream {} did not acknowledge within {}",
                self.stream,
                humantime::format_duration(self.timeout)
            ))),
        }
    }
}
