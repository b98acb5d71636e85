//! OTLP/gRPC: the same spans, mapping, keys and writer as OTLP/HTTP, on `:4317`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use sonde_store::Writer;
use tonic::{Request, Response, Status};

use crate::auth::{Caller, Denied, Gate};
use crate::ingest::{OVERLOADED, hand_over, tenant_records};

struct Traces {
    writer: Arc<Writer>,
    gate: Gate,
}

impl Traces {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.gate
            .identify(authorization)
            .await
            .map_err(|denied| match denied {
                Denied::Unauthenticated(why) => Status::unauthenticated(why),
                Denied::Unavailable(why) => Status::unavailable(why),
            })
    }
}

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let caller = self.caller(&request).await?;
        let decoded = sonde_otlp::from_request(request.into_inner());
        let records = tenant_records(&caller, decoded.spans);
        if !hand_over(&self.writer, records).await {
            return Err(Status::resource_exhausted(OVERLOADED));
        }
        let partial_success = (!decoded.rejected.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: decoded.rejected.len() as i64,
            error_message: decoded
                .rejected
                .iter()
                .take(5)
                .map(|r| format!("span {:?}: {}", r.name, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes, with the default limits.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::ServeError> {
    serve_grpc_with(listener, &crate::ServeConfig::default(), writer, shutdown).await
}

/// Serves OTLP/gRPC on `listener` within `config`'s limits until `shutdown` completes:
/// messages up to `config.body_limit`, the connection limit, the body and request
/// timeouts, pings on silent connections. A message that cannot be decoded is
/// `INVALID_ARGUMENT`.
pub async fn serve_grpc_with(
    listener: tokio::net::TcpListener,
    config: &crate::ServeConfig,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::ServeError> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let service = Traces {
        gate: Gate::new(writer.store().clone(), loopback),
        writer,
    };
    let app = tonic::service::Routes::new(
        TraceServiceServer::new(service)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(config.body_limit),
    )
    .into_axum_router()
    .layer(axum::middleware::map_response(
        malformed_is_invalid_argument,
    ))
    .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        config.body_timeout,
    ))
    .layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        config.request_timeout,
    ));
    crate::listen::serve_connections(
        listener,
        app,
        config,
        crate::listen::Protocol::Http2,
        shutdown,
    )
    .await
}

/// tonic answers a request message it cannot decode (bad protobuf, a bad compression
/// flag, a truncated or undecompressable message) with `INTERNAL`, which says the
/// server failed; the fault is the client's: `INVALID_ARGUMENT`. A message over the
/// size limit it answers with `OUT_OF_RANGE`, which OTLP clients retry: sending it
/// again cannot help, so it is `RESOURCE_EXHAUSTED` (not retried without `RetryInfo`).
async fn malformed_is_invalid_argument(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers_mut();
    let status = headers
        .get("grpc-status")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let malformed = message.contains("decod")
        || message.contains("protocol%20error")
        || message.contains("eof");
    let replaced = match status.as_slice() {
        b"13" if malformed => "3",
        b"11" if message.contains("too%20large") => "8",
        _ => return response,
    };
    headers.insert(
        "grpc-status",
        axum::http::HeaderValue::from_static(replaced),
    );
    response
}
