//! Accepting connections within limits: at most [`ServeConfig::max_connections`] open
//! at once per listener (the rest wait in the kernel's queue), request headers within
//! [`ServeConfig::header_timeout`] (HTTP/1, idle keep-alive connections too), pings on
//! silent HTTP/2 connections, and on shutdown a drain of the connections still open.

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
        let io = TokioIo::new(stream);
        let service = TowerToHyperService::new(app.clone());
        let served: std::pin::Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>> =
            match protocol {
                Protocol::Http1 => Box::pin(graceful.watch(http1.serve_connection(io, service))),
                Protocol::Http2 => Box::pin(graceful.watch(http2.serve_connection(io, service))),
            };
        tokio::spawn(async move {
            if let Err(e) = served.await {
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
