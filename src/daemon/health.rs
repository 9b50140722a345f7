//! The daemon's `/metrics` and `/health` endpoints on `metrics_listen`. The registry itself is
//! `telemetry`'s (every layer counts into it); what is read here at scrape time comes from the
//! store (outbox depth, a refused database) and from the health the metrics keep (stale
//! platforms, drift found by verify).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::model::OutboxState;
use crate::store::Store;
use crate::telemetry::metrics::metrics;

#[derive(Clone)]
struct ServerState {
    store: Store,
    health_max_age: Duration,
}

/// Serves `/metrics` and `/health` until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    store: Store,
    health_max_age: Duration,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(listen = %listener.local_addr()?, "serving /metrics and /health");
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .with_state(ServerState {
            store,
            health_max_age,
        });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await
        {
            error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

async fn metrics_handler(State(s): State<ServerState>) -> impl IntoResponse {
    // Outbox depth is read at scrape time: other programs may insert rows directly.
    let depth = s.store.outbox_depth(None).await;
    let m = metrics();
    m.set_database_fault(s.store.fault().is_some());
    if let Ok(depth) = depth {
        for state in OutboxState::ALL {
            m.set_outbox_depth(state.as_str(), depth.get(&state).copied().unwrap_or(0));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn health_handler(State(s): State<ServerState>) -> impl IntoResponse {
    let stale = metrics().stale(s.health_max_age);
    // A database refusing writes fails every platform at once, long before health_max_age.
    let mut list: Vec<String> = s.store.fault().into_iter().collect();
    list.extend(
        stale
            .iter()
            .map(|(p, t)| format!("{p}: no successful sync since {}", crate::store::ts(*t))),
    );
    list.extend(
        metrics()
            .drifted()
            .into_iter()
            .map(|(p, missing, changed)| {
                format!(
                    "{p}: the last verify found {missing} missing and {changed} changed orders \
             (`ordersync verify {p} --repair`, or verify_repair = true)"
                )
            }),
    );
    list.extend(metrics().sink_problems());
    if list.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, list.join("\n") + "\n")
    }
}
