//! How `sonde serve` runs: its writer settings, limits and listening address.

use std::net::SocketAddr;
use std::time::Duration;

use sonde_store::QueryLimits;

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

/// How long a client has to send a request's headers, and how long an idle
/// keep-alive connection is kept waiting for the next request (HTTP/1).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause while a request body arrives.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole request may take, from its headers to its answer: a body trickled
/// in slower than [`DEFAULT_BODY_TIMEOUT`] apart is cut here. Above the waits a request
/// can have inside the server ([`SERVE_ENQUEUE_WAIT`], the statement timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections open at once, per listener (OTLP/HTTP and OTLP/gRPC each): more wait in
/// the kernel's queue until one closes, so clients cannot exhaust the server's file
/// descriptors (1,024 by default on Linux).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How long OTLP/gRPC waits for a ping's answer before it closes a silent connection;
/// pings go out every [`DEFAULT_HEADER_TIMEOUT`].
pub const GRPC_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (default `127.0.0.1:4318`, the OTLP/HTTP port).
    pub addr: SocketAddr,
    /// The largest request body, compressed or decompressed (OTLP/gRPC messages too).
    pub body_limit: usize,
    /// How long a client has to send a request's headers; also how long an idle
    /// keep-alive connection is kept.
    pub header_timeout: Duration,
    /// The longest pause while a request body arrives.
    pub body_timeout: Duration,
    /// How long a whole request may take.
    pub request_timeout: Duration,
    /// Connections open at once, per listener.
    pub max_connections: usize,
    /// The limits of `POST /api/v1/query` statements.
    pub query_limits: QueryLimits,
    /// The LLM proxy: its upstreams and what it records.
    pub proxy: crate::ProxyConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            body_limit: DEFAULT_BODY_LIMIT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            query_limits: QueryLimits::default(),
            proxy: crate::ProxyConfig::default(),
        }
    }
}
