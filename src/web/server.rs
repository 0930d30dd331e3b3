//! The HTTP server: hyper's connections with every `[http]` limit on them, so that no client
//! can hold the server by being slow.
//!
//! - **Header time** (`header_read_timeout_seconds`): hyper's HTTP/1 `header_read_timeout`. In
//!   hyper 1.x the timer starts whenever the connection waits for a request head: on a new
//!   connection before its first byte, and again after each answer on a kept-alive one. So it
//!   bounds a slowly sent head and also the idle time between requests; either way the
//!   connection is closed without an answer.
//! - **Body idle time** (`body_idle_timeout_seconds`): tower-http's `RequestBodyTimeoutLayer`.
//!   Its `TimeoutBody` starts a timer when the handler waits for a frame and drops it when a
//!   frame arrives, so it is an idle limit (a body that keeps arriving is not cut); a handler
//!   reading a stalled body gets an error (`web::body` answers 408).
//! - **Total time** (`request_timeout_seconds`): tower-http's `TimeoutLayer`, 408 when the
//!   answer has not started by then. It covers reading and handling, not streaming an answer's
//!   body (a large download may take longer).
//! - **Connections** (`max_connections`): a permit per open connection. At the limit nothing
//!   is accepted, so new connections wait in the kernel's backlog rather than in memory.
//!
//! Only HTTP/1 is served. hyper-util's `auto::Builder` would first read up to 24 bytes to tell
//! HTTP/2's preface from HTTP/1 with no time limit (the header timer starts only after), and
//! hyper's HTTP/2 has neither a header nor an idle limit: one client could hold connection
//! slots forever. Repository hosts send webhooks over HTTP/1.1, and a TLS proxy in front of
//! baler speaks HTTP/1.1 to it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Extension};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use axum::{Router, middleware};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use super::headers;
use crate::config::HttpLimits;

/// How long accepting pauses after an error such as EMFILE (out of file descriptors): open
/// connections close meanwhile, and retrying at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then accepts no
/// more connections, lets requests in flight finish (the caller bounds how long it waits),
/// and returns. Accept errors are logged and never end the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let app = with_limits(router, limits);
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        // A free slot first, then accept: at the limit the backlog holds new connections.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break, // never closed; nothing left to serve if it were
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed; pausing");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // Every request knows its peer (`ConnectInfo`, read by `web::client::ClientAddress`).
        let service = ServiceBuilder::new()
            .layer(Extension(ConnectInfo(peer)))
            .service(app.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that go away end here; nothing to act on.
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }

    // New connections are refused from here; open ones finish their request and close.
    drop(listener);
    graceful.shutdown().await;
}

/// `router` with the per-request limits and the security headers. The headers are outermost,
/// so that a 408 from a limit carries them too.
fn with_limits(
    router: Router,
    limits: &HttpLimits,
) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static(headers::NOSNIFF),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static(headers::SAME_ORIGIN),
        ))
        .layer(middleware::map_response(headers::admin_pages))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout))
        .service(router)
}

/// Errors of one connection that went away before it was accepted: skip it, no pause.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
