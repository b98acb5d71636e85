//! Accepting connections within limits: at most [`ServeConfig::max_connections`] open
//! at once per listener (the rest wait in the kernel's queue), request headers within
//! [`ServeConfig::header_timeout`] (HTTP/1, idle keep-alive connections too; on HTTP/2
//! the connection preface), pings on silent HTTP/2 connections, and on shutdown a drain
//! of the connections still open.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::{GRPC_PING_TIMEOUT, ServeConfig, ServeError};

/// How long the listener rests after a failed accept (out of file descriptors, say)
/// before it accepts again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// What a listener speaks.
#[derive(Clone, Copy)]
pub(crate) enum Protocol {
    /// HTTP/1.1: the REST API and OTLP/HTTP.
    Http1,
    /// HTTP/2 with prior knowledge: OTLP/gRPC.
    Http2,
}

/// Serves `app` on `listener` within `config`'s limits until `shutdown` completes,
/// then lets open connections finish (up to [`SHUTDOWN_DRAIN`]).
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    config: &ServeConfig,
    protocol: Protocol,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(config.header_timeout)
        .keep_alive_timeout(GRPC_PING_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let (http1, http2) = (http1.clone(), http2.clone());
        let header_timeout = config.header_timeout;
        tokio::spawn(async move {
            let served = match protocol {
                Protocol::Http1 => {
                    watcher
                        .watch(http1.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                // HTTP/2 has no header timeout of its own: a client that opens a
                // connection and never says it speaks HTTP/2 is let go.
                Protocol::Http2 if !preface_within(&stream, header_timeout).await => {
                    tracing::debug!(%peer, "no HTTP/2 preface in time; connection closed");
                    Ok(())
                }
                Protocol::Http2 => {
                    watcher
                        .watch(http2.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = SHUTDOWN_DRAIN.as_secs(),
            "connections still open after the shutdown drain were closed"
        );
    }
    Ok(())
}

/// The bytes an HTTP/2 client sends first (RFC 9113, 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long the listener waits before looking again at a preface that came in part.
const PREFACE_POLL: Duration = Duration::from_millis(10);

/// Whether the whole HTTP/2 preface arrives on `stream` within `wait` (it is only
/// peeked at: hyper reads it).
async fn preface_within(stream: &tokio::net::TcpStream, wait: Duration) -> bool {
    let mut seen = [0u8; HTTP2_PREFACE.len()];
    let arrived = tokio::time::timeout(wait, async {
        loop {
            match stream.peek(&mut seen).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n >= HTTP2_PREFACE.len() => return true,
                Ok(_) => tokio::time::sleep(PREFACE_POLL).await,
            }
        }
    })
    .await;
    arrived.unwrap_or(false)
}
