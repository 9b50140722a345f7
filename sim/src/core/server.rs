//! Serving a simulator: an axum app on 127.0.0.1 with an OS-chosen port, stopped by its handle,
//! and the JSON response every platform's answers are built from.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::faults::ErrorBody;

/// How long [`RunningSim::stop`] lets in-flight requests (a `Slow` fault, say) finish before the
/// server task is aborted; a test sim must never hold up a test for long.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A simulator bound to 127.0.0.1; dropping it (or calling stop) shuts the server down.
pub struct RunningSim {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits (briefly) for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        // The signal must be sent even when aborting: axum's graceful shutdown keeps a helper
        // task waiting on it, and open keep-alive connections are only closed by it.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves `router` on 127.0.0.1 with an OS-chosen port.
pub async fn serve(router: Router) -> io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a keep-alive client can stall ~40 ms per response on delayed ACKs,
    // which would dominate the benchmarks.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "simulator server stopped with an error");
        }
    });
    Ok(RunningSim {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// A response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// A refusal in a platform's words: small, unlike a `Response`, so validation code can return it
/// in a `Result`; answered with the platform's error body.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    body: ErrorBody,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>, body: ErrorBody) -> Self {
        Refusal {
            status,
            message: message.into(),
            body,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.body)(self.status, &self.message)
    }
}
