//! OTLP/gRPC within the server's limits: `--body-limit` bounds its messages as it does
//! OTLP/HTTP bodies, and a message that is not protobuf is `INVALID_ARGUMENT` (the
//! client's fault), not `INTERNAL`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::bytes::{Buf, BufMut};
use sonde_server::ServeConfig;
use sonde_store::{StoreUrl, Writer, WriterConfig};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// An OTLP/gRPC receiver with `body_limit`; its URL.
async fn start(body_limit: usize) -> String {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let writer = Arc::new(Writer::start(store, WriterConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServeConfig {
        body_limit,
        ..Default::default()
    };
    tokio::spawn(async move {
        sonde_server::serve_grpc_with(listener, &config, writer, std::future::pending()).await
    });
    url
}

/// A request of about `bytes` bytes: one span with a long attribute.
fn request_of(bytes: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "chat".into(),
                    start_time_unix_nano: 1_763_789_160_000_000_000,
                    end_time_unix_nano: 1_763_789_161_000_000_000,
                    attributes: vec![KeyValue {
                        key: "padding".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("x".repeat(bytes))),
                        }),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_bounds_grpc_messages_too() {
    let limited = start(64 * 1024).await;
    let mut client = TraceServiceClient::connect(limited).await.unwrap();
    client.export(request_of(1024)).await.unwrap();
    let err = client.export(request_of(100 * 1024)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    let default = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let mut client = TraceServiceClient::connect(default).await.unwrap();
    client.export(request_of(100 * 1024)).await.unwrap();
}

/// Sends and receives message bytes as they are.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_protobuf_is_invalid_argument() {
    let url = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let err = grpc
        .unary(tonic::Request::new(vec![0xff, 0xff, 0xff, 0x01]), path, Raw)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}
