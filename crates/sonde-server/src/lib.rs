//! Sonde's server: receives OpenTelemetry traces over OTLP/HTTP and writes them, through
//! the writer, into any store.
//!
//! - `POST /v1/traces`: OTLP/HTTP with protobuf (`application/x-protobuf`) or JSON
//!   (`application/json`) bodies, gzip accepted. Spans with malformed ids are rejected
//!   one by one and reported in OTLP's `partial_success`; a body that cannot be read at
//!   all gets 400 with a one-line reason, a body over the limit 413. Its errors are
//!   OTLP status bodies (`google.rpc.Status`, protobuf or JSON as the request was);
//!   every other error is JSON `{"error": MESSAGE, "code": CODE}`, and a 503 carries
//!   `Retry-After`.
//! - `GET /healthz`, `GET /metrics` (Prometheus / OpenMetrics text), `GET
//!   /api/v1/diagnostics` (the server, its store and its writer, as JSON).
//! - The REST API under `/api/v1/` (see `rest.rs`) and the web dashboard at `/` (see
//!   `dashboard/`).
//!
//! Connections are limited (open at once, header, body and request timeouts: see
//! [`ServeConfig`]), on OTLP/HTTP and OTLP/gRPC alike.

mod auth;
mod body;
mod calls;
mod config;
mod dashboard;
mod diagnostics;
mod filters;
mod grpc;
mod ingest;
mod listen;
mod metrics;
mod proxy;
mod refusal;
mod rest;
mod signal;

pub use auth::{KEY_LOOKUP_TIMEOUT, KEYS_RECHECK};
pub use config::{
    DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT, GRPC_PING_TIMEOUT, SERVE_BATCH_SIZE, SERVE_ENQUEUE_WAIT,
    SERVE_QUEUE_CAPACITY, SERVE_WRITE_WORKERS, ServeConfig, writer_config,
};
pub use diagnostics::STORE_PROBE_TIMEOUT;
pub use grpc::{serve_grpc, serve_grpc_with};
pub use proxy::{DEFAULT_UPSTREAM_TIMEOUT, ProxyConfig, UPSTREAM_CONNECT_TIMEOUT};
pub use refusal::RETRY_AFTER_SECONDS;
pub use signal::shutdown_signal;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use sonde_store::Writer;

use crate::auth::{Gate, authenticate};
use crate::ingest::{AppState, Counters, traces};
use crate::metrics::metrics;
use crate::refusal::error;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// The server's routes, writing into `writer` and reading its store. `loopback` says
/// whether the server listens on loopback only (then keys are required only once one
/// exists).
pub fn router(writer: Arc<Writer>, body_limit: usize, loopback: bool) -> Router {
    let gate = Arc::new(Gate::new(writer.store().clone(), loopback));
    api_router(writer, body_limit, gate, proxy::ProxyCalls::default())
}

/// The routes of [`router`], behind `gate`; `/metrics` counts `proxy_calls`.
fn api_router(
    writer: Arc<Writer>,
    body_limit: usize,
    gate: Arc<Gate>,
    proxy_calls: proxy::ProxyCalls,
) -> Router {
    let api = Arc::new(rest::Api {
        store: writer.store().clone(),
        writer: writer.clone(),
    });
    let state = Arc::new(AppState {
        writer,
        body_limit,
        counters: Counters::default(),
        started: std::time::Instant::now(),
        started_at: sonde_model::Timestamp::now(),
        proxy_calls,
    });
    let rest = Router::new()
        .route("/api/v1/sessions", get(rest::sessions))
        .route("/api/v1/sessions/{id}", get(rest::session))
        .route("/api/v1/calls", get(calls::calls))
        .route("/api/v1/calls/{id}", get(calls::call))
        .route("/api/v1/stats/{report}", get(rest::stats))
        .route("/api/v1/query", post(rest::query))
        .route("/api/v1/records", post(rest::records))
        .with_state(api.clone())
        .merge(dashboard::routes(api.clone()));
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/metrics", get(metrics))
        .route("/api/v1/diagnostics", get(diagnostics::diagnostics))
        .with_state(state)
        .merge(rest)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(dashboard::open_routes(api))
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(refusal::uniform_errors))
}

/// [`router`] within `config`: its body limit, its body and request timeouts, and its
/// limits on `POST /api/v1/query` statements; and the LLM proxy's routes
/// (`/NAME/v1/*`, see [`ProxyConfig`]), which answer as their upstreams do (no request
/// timeout: a streamed answer takes as long as it takes). The proxy records its calls
/// on a task of its own, which ends once every copy of the router is dropped; a server
/// that wants every ended call handed to the writer before it drains the writer uses
/// [`serve_on_with`], which waits for that task.
pub fn limited_router(writer: Arc<Writer>, config: &ServeConfig, loopback: bool) -> Router {
    limited_router_and_recorder(writer, config, loopback).0
}

/// [`limited_router`] and the proxy's recorder, to stop once the connections ended.
fn limited_router_and_recorder(
    writer: Arc<Writer>,
    config: &ServeConfig,
    loopback: bool,
) -> (Router, Option<proxy::Recorder>) {
    let gate = Arc::new(Gate::new(writer.store().clone(), loopback));
    let proxy_calls = proxy::ProxyCalls::default();
    let (proxy, recorder) = proxy::routes(
        &config.proxy,
        writer.clone(),
        gate.clone(),
        config.body_limit,
        proxy_calls.clone(),
    );
    let proxy = proxy.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        config.body_timeout,
    ));
    let app = api_router(writer, config.body_limit, gate, proxy_calls)
        .layer(axum::Extension(config.query_limits))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            config.body_timeout,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn(refusal::uniform_errors))
        .merge(proxy);
    (app, recorder)
}

/// Serves until `shutdown` completes, then returns (the caller drains the writer).
pub async fn serve(
    config: ServeConfig,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|cause| ServeError::Bind {
            addr: config.addr,
            cause,
        })?;
    serve_on_with(listener, &config, writer, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0), with the default limits but
/// `body_limit`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    body_limit: usize,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = ServeConfig {
        body_limit,
        ..Default::default()
    };
    serve_on_with(listener, &config, writer, shutdown).await
}

/// Serves on an already bound listener within `config`'s limits (its address is not
/// used).
pub async fn serve_on_with(
    listener: tokio::net::TcpListener,
    config: &ServeConfig,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening for OTLP/HTTP");
    let (app, recorder) = limited_router_and_recorder(writer, config, addr.ip().is_loopback());
    let served =
        listen::serve_connections(listener, app, config, listen::Protocol::Http1, shutdown).await;
    // The proxied calls that ended reach the writer before the caller drains it.
    if let Some(recorder) = recorder {
        recorder.stop().await;
    }
    served
}
