//! Sonde's server: receives OpenTelemetry traces over OTLP/HTTP and writes them, through
//! the writer, into any store.
//!
//! - `POST /v1/traces`: OTLP/HTTP with protobuf (`application/x-protobuf`) or JSON
//!   (`application/json`) bodies, gzip accepted. Spans with malformed ids are rejected
//!   one by one and reported in OTLP's `partial_success`; a body that cannot be read at
//!   all gets 400 with a one-line reason, a body over the limit 413. Errors are JSON
//!   `{"error": {"code", "message"}}`.
//! - `GET /healthz`, `GET /metrics` (Prometheus / OpenMetrics text), `GET
//!   /api/v1/diagnostics` (the server, its store and its writer, as JSON).

mod auth;
mod body;
mod config;
mod diagnostics;
mod grpc;
mod ingest;
mod metrics;
mod refusal;
mod rest;
mod signal;

pub use auth::KEYS_RECHECK;
pub use config::{
    DEFAULT_BODY_LIMIT, SERVE_BATCH_SIZE, SERVE_ENQUEUE_WAIT, SERVE_QUEUE_CAPACITY,
    SERVE_WRITE_WORKERS, ServeConfig, writer_config,
};
pub use diagnostics::STORE_PROBE_TIMEOUT;
pub use grpc::serve_grpc;
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
    });
    let rest = Router::new()
        .route("/api/v1/sessions", get(rest::sessions))
        .route("/api/v1/sessions/{id}", get(rest::session))
        .route("/api/v1/stats/{report}", get(rest::stats))
        .route("/api/v1/query", post(rest::query))
        .route("/api/v1/records", post(rest::records))
        .with_state(api);
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/metrics", get(metrics))
        .route("/api/v1/diagnostics", get(diagnostics::diagnostics))
        .with_state(state)
        .merge(rest)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(gate, authenticate))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(body_limit))
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
    serve_on(listener, config.body_limit, writer, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    body_limit: usize,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening for OTLP/HTTP");
    axum::serve(
        listener,
        router(writer, body_limit, addr.ip().is_loopback()),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
