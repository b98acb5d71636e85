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

/// Serves OTLP/gRPC on `listener` until `shutdown` completes.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    writer: Arc<Writer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::ServeError> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let service = Traces {
        gate: Gate::new(writer.store().clone(), loopback),
        writer,
    };
    tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(service)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(crate::DEFAULT_BODY_LIMIT),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|e| crate::ServeError::Io(std::io::Error::other(e.to_string())))
}
