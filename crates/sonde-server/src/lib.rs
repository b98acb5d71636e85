//! Sonde's server: receives OpenTelemetry traces over OTLP/HTTP and writes them, through
//! the writer, into any store.
//!
//! - `POST /v1/traces`: OTLP/HTTP with protobuf (`application/x-protobuf`) or JSON
//!   (`application/json`) bodies, gzip accepted. Spans with malformed ids are rejected
//!   one by one and reported in OTLP's `partial_success`; a body that cannot be read at
//!   all gets 400 with a one-line reason, a body over the limit 413. Errors are JSON
//!   `{"error": {"code", "message"}}`.
//! - `GET /healthz`, `GET /metrics` (Prometheus text).

mod api;
mod grpc;

pub use grpc::serve_grpc;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, middleware};
use serde_json::json;
use sonde_store::Writer;
use sonde_store::{ApiKey, Scope, TraceStore};

/// The largest request body accepted, compressed or not.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Records the server's writer queues in memory. A receiver can accept spans faster
/// than a store writes them; a short queue keeps the server's memory bounded (requests
/// wait for room, [`SERVE_ENQUEUE_WAIT`] at most, then the spool takes the excess).
/// Measured by `cargo bench -p sonde-server --bench ingest`: 100,000 records held 717 MB
/// at peak; with three writes in flight, 5,000 held 176–202 MB and 3,000 hold 164–183,
/// at the same throughput.
pub const SERVE_QUEUE_CAPACITY: usize = 3_000;

/// Records per store write in the server (smaller batches in flight: less memory).
pub const SERVE_BATCH_SIZE: usize = 2_048;

/// Store writes in flight in the server: while one batch is in SQLite (its one writer
/// thread), the next ones' rows are made and compressed on the other core. Making a
/// batch's rows takes about as long as SQLite storing it, so two in flight left the
/// writer thread waiting: with three, ingest ran 96–98k spans/s instead of 80–84k
/// (`cargo bench -p sonde-server --bench ingest`, 409,600 spans); four held over 200 MB.
pub const SERVE_WRITE_WORKERS: usize = 3;

/// How long a request waits for room in the writer's queue before its records go to the
/// spool: a busy writer slows senders down (back-pressure) instead of making the server
/// write every record twice (spool, then store). Under OTLP exporters' usual 10 s timeout.
pub const SERVE_ENQUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer settings `sonde serve` uses: [`SERVE_QUEUE_CAPACITY`],
/// [`SERVE_BATCH_SIZE`], [`SERVE_WRITE_WORKERS`], and the spool in `spool_dir`.
///
/// ```
/// let config = sonde_server::writer_config("/tmp/spool".into());
/// assert_eq!(config.queue_capacity, sonde_server::SERVE_QUEUE_CAPACITY);
/// ```
pub fn writer_config(spool_dir: std::path::PathBuf) -> sonde_store::WriterConfig {
    sonde_store::WriterConfig {
        spool_dir: Some(spool_dir),
        queue_capacity: SERVE_QUEUE_CAPACITY,
        batch_size: SERVE_BATCH_SIZE,
        workers: SERVE_WRITE_WORKERS,
        ..Default::default()
    }
}

/// Counters exposed at `/metrics`.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bad_requests: AtomicU64,
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
}

struct AppState {
    writer: Arc<Writer>,
    body_limit: usize,
    counters: Counters,
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (default `127.0.0.1:4318`, the OTLP/HTTP port).
    pub addr: SocketAddr,
    /// The largest request body, compressed or decompressed.
    pub body_limit: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

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

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refused request: status, error code and one-line message.
pub(crate) struct Refusal(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

/// The request body, gunzipped when it says so, within the limit.
fn body_bytes(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Vec<u8>, Refusal> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Err(e) => Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_gzip",
                    format!("the body claims gzip but is not: {e}"),
                )),
                Ok(_) if out.len() > limit => Err(Refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the decompressed body is over the {limit}-byte limit"),
                )),
                Ok(_) => Ok(out),
            }
        }
        "identity" | "" => Ok(body.to_vec()),
        other => Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding {other:?} is not supported (use gzip or none)"),
        )),
    }
}

/// Who is calling: the local user (no keys configured, loopback) or a key's holder.
#[derive(Clone)]
pub(crate) enum Caller {
    Local,
    Key(ApiKey),
}

impl Caller {
    /// What the caller may read.
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Caller::Key(key) if !key.admin => Scope::tenant(key.org.clone(), key.workspace.clone()),
            _ => Scope::All,
        }
    }

    /// Whether the caller may run raw SQL (which can cross tenants).
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Caller::Local => true,
            Caller::Key(key) => key.admin,
        }
    }
}

/// A tenant's key writes into its own tenant, whatever the record says.
pub(crate) fn stamp_tenant(caller: &Caller, record: &mut sonde_model::Record) {
    if let Caller::Key(key) = caller
        && !key.admin
    {
        record.context.org = Some(key.org.clone());
        record.context.workspace = Some(key.workspace.clone());
    }
}

/// The records of `spans`, in the caller's tenant.
pub(crate) fn tenant_records(
    caller: &Caller,
    spans: Vec<sonde_otlp::Span>,
) -> Vec<sonde_model::Record> {
    let mut records: Vec<_> = spans.into_iter().map(sonde_otlp::span_to_record).collect();
    for record in &mut records {
        stamp_tenant(caller, record);
    }
    records
}

/// What a sender hears when the writer can take nothing more.
pub(crate) const OVERLOADED: &str = "the writer's queue and spool are full; retry later";

/// Hands `records` to the writer, waiting up to [`SERVE_ENQUEUE_WAIT`] for queue room;
/// false when they were dropped (queue and spool full).
pub(crate) async fn hand_over(writer: &Writer, records: Vec<sonde_model::Record>) -> bool {
    records.is_empty()
        || writer.enqueue_within(records, SERVE_ENQUEUE_WAIT).await
            != sonde_store::Enqueued::Dropped
}

/// Why a caller was turned away.
pub(crate) enum Denied {
    /// No key, a wrong one, or a revoked one.
    Unauthenticated(&'static str),
    /// The key store could not be read.
    Unavailable(String),
}

/// How long the server goes by its last look at whether any API key exists. Every
/// request without a key needs that answer, and asking the store each time cost a
/// database read per request; so a key created while the server runs is required from
/// at most this long after.
pub const KEYS_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Tells callers apart by their `Authorization` value (`Bearer KEY`). Keys are required
/// when any is configured, or when the server listens beyond loopback.
pub(crate) struct Gate {
    store: Arc<dyn TraceStore>,
    /// Bound to a loopback address only: without keys, local callers need none.
    loopback: bool,
    /// When the store was last asked whether keys exist, and its answer.
    keys_seen: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl Gate {
    pub(crate) fn new(store: Arc<dyn TraceStore>, loopback: bool) -> Self {
        Gate {
            store,
            loopback,
            keys_seen: std::sync::Mutex::new(None),
        }
    }

    /// Who is calling.
    pub(crate) async fn identify(&self, authorization: Option<&str>) -> Result<Caller, Denied> {
        let secret = authorization.map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
        match secret {
            Some(secret) => match self.store.find_api_key(secret).await {
                Ok(Some(key)) => Ok(Caller::Key(key)),
                Ok(None) => Err(Denied::Unauthenticated("unknown or revoked API key")),
                Err(e) => Err(Denied::Unavailable(e.to_string())),
            },
            None if !self.loopback || self.keys_exist().await => Err(Denied::Unauthenticated(
                "this server needs Authorization: Bearer <key> (sonde keys create)",
            )),
            None => Ok(Caller::Local),
        }
    }

    /// Whether any key is configured, as the store said at most [`KEYS_RECHECK`] ago
    /// (yes when it cannot tell: a failing store must not open the door).
    async fn keys_exist(&self) -> bool {
        let seen = *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, exist)) = seen
            && at.elapsed() < KEYS_RECHECK
        {
            return exist;
        }
        match self.store.has_api_keys().await {
            Ok(exist) => {
                *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), exist));
                exist
            }
            Err(_) => true,
        }
    }
}

/// Checks `Authorization: Bearer KEY`. Keys are required when any is configured, or
/// when the server listens beyond loopback. Secrets are never logged.
async fn authenticate(
    State(gate): State<Arc<Gate>>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let caller = match gate.identify(authorization.as_deref()).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(why)) => {
            return error(StatusCode::UNAUTHORIZED, "unauthorized", why);
        }
        Err(Denied::Unavailable(why)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "store_error", why);
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn traces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let response = match body {
        Ok(body) => receive(&state, &caller, &headers, body).await,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the {}-byte limit", state.body_limit),
        ),
        Err(rejection) => error(rejection.status(), "bad_body", rejection.body_text()),
    };
    if !response.status().is_success() {
        state.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
    response
}

async fn receive(state: &AppState, caller: &Caller, headers: &HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf")
        .to_ascii_lowercase();
    let json = content_type.starts_with("application/json");
    if !json
        && !content_type.starts_with("application/x-protobuf")
        && !content_type.starts_with("application/protobuf")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type {content_type:?}: send application/x-protobuf or application/json"
            ),
        );
    }
    let bytes = match body_bytes(headers, body, state.body_limit) {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal.into_response(),
    };
    let decoded = if json {
        match std::str::from_utf8(&bytes) {
            Ok(text) => sonde_otlp::decode_json(text),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the JSON body is not UTF-8: {e}"),
                );
            }
        }
    } else {
        sonde_otlp::decode_protobuf(&bytes)
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
    };
    let records = tenant_records(caller, decoded.spans);
    state
        .counters
        .spans_accepted
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    state
        .counters
        .spans_rejected
        .fetch_add(decoded.rejected.len() as u64, Ordering::Relaxed);
    if !hand_over(&state.writer, records).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", OVERLOADED);
    }
    if json {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            sonde_otlp::response_json(&decoded.rejected).to_string(),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            sonde_otlp::response_protobuf(&decoded.rejected),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.counters;
    let d = state.writer.diagnostics();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "sonde_otlp_requests_total",
        "counter",
        "OTLP trace requests received.",
        c.requests.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_otlp_bad_requests_total",
        "counter",
        "OTLP trace requests refused.",
        c.bad_requests.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_spans_accepted_total",
        "counter",
        "Spans accepted.",
        c.spans_accepted.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_spans_rejected_total",
        "counter",
        "Spans rejected (malformed ids or times).",
        c.spans_rejected.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_writer_queue_depth",
        "gauge",
        "Records waiting in the writer's queue.",
        d.queue_depth.to_string(),
    );
    metric(
        "sonde_writer_queue_capacity",
        "gauge",
        "The writer queue's capacity.",
        d.queue_capacity.to_string(),
    );
    metric(
        "sonde_writer_queue_utilisation_percent",
        "gauge",
        "Queue depth over capacity.",
        d.queue_utilisation_pct.to_string(),
    );
    metric(
        "sonde_writer_written_total",
        "counter",
        "Records stored.",
        d.written.to_string(),
    );
    metric(
        "sonde_writer_spooled_total",
        "counter",
        "Records spooled to disk.",
        d.spooled.to_string(),
    );
    metric(
        "sonde_writer_enqueue_waits_total",
        "counter",
        "Requests that waited for room in the writer's queue (back-pressure).",
        d.enqueue_waits.to_string(),
    );
    metric(
        "sonde_writer_enqueue_wait_seconds_total",
        "counter",
        "Time requests waited for room in the writer's queue.",
        format!("{:.6}", d.enqueue_wait_seconds),
    );
    metric(
        "sonde_writer_replayed_total",
        "counter",
        "Records replayed from the spool.",
        d.replayed.to_string(),
    );
    metric(
        "sonde_writer_dropped_total",
        "counter",
        "Records lost (spool full).",
        d.dropped.to_string(),
    );
    metric(
        "sonde_writer_spool_pending_bytes",
        "gauge",
        "Spooled bytes waiting for replay.",
        d.spool_pending_bytes.to_string(),
    );
    out.push_str("# HELP sonde_writer_pressure Queue pressure: 1 for the current level.\n# TYPE sonde_writer_pressure gauge\n");
    for level in ["ok", "elevated", "high", "saturated"] {
        out.push_str(&format!(
            "sonde_writer_pressure{{level=\"{level}\"}} {}\n",
            u8::from(d.pressure.as_str() == level)
        ));
    }
    out.push_str("# HELP sonde_writer_failures_total Failed store writes by class.\n# TYPE sonde_writer_failures_total counter\n");
    for (class, n) in &d.failures_by_class {
        out.push_str(&format!(
            "sonde_writer_failures_total{{class=\"{class}\"}} {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The server's routes, writing into `writer` and reading its store. `loopback` says
/// whether the server listens on loopback only (then keys are required only once one
/// exists).
pub fn router(writer: Arc<Writer>, body_limit: usize, loopback: bool) -> Router {
    let gate = Arc::new(Gate::new(writer.store().clone(), loopback));
    let api = Arc::new(api::Api {
        store: writer.store().clone(),
        writer: writer.clone(),
    });
    let state = Arc::new(AppState {
        writer,
        body_limit,
        counters: Counters::default(),
    });
    let rest = Router::new()
        .route("/api/v1/sessions", get(api::sessions))
        .route("/api/v1/sessions/{id}", get(api::session))
        .route("/api/v1/stats/{report}", get(api::stats))
        .route("/api/v1/query", post(api::query))
        .route("/api/v1/records", post(api::records))
        .with_state(api);
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/metrics", get(metrics))
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
