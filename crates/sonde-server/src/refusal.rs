//! Refused requests: a status, an error code and a one-line message, as JSON
//! `{"error": MESSAGE, "code": CODE}` (`application/json`); on `POST /v1/traces`, as
//! OTLP's status body (`google.rpc.Status`, protobuf or JSON as the request was). A 503
//! carries `Retry-After`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The seconds a client is told to wait (`Retry-After`) before retrying a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The largest error body [`uniform_errors`] reads to rewrite it.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The OTLP/HTTP path, whose errors are OTLP status bodies.
const OTLP_PATH: &str = "/v1/traces";

/// A JSON error response.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into(), "code": code});
    with_retry_after(
        status,
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

/// `response`, with `Retry-After` when `status` is 503.
fn with_retry_after(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
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

/// The error code of a status, for errors that came without one (axum's own
/// rejections, a timeout).
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "bad_body",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// The gRPC status code an HTTP status stands for (OTLP's status bodies carry it).
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => 3, // INVALID_ARGUMENT
        StatusCode::REQUEST_TIMEOUT => 4, // DEADLINE_EXCEEDED
        StatusCode::NOT_FOUND => 5,       // NOT_FOUND
        StatusCode::FORBIDDEN => 7,       // PERMISSION_DENIED
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
        StatusCode::METHOD_NOT_ALLOWED => 12, // UNIMPLEMENTED
        StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
        StatusCode::UNAUTHORIZED => 16,   // UNAUTHENTICATED
        _ => 13,                          // INTERNAL
    }
}

/// OTLP's status body: `google.rpc.Status` without details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    message: String,
}

/// Marks a response [`uniform_errors`] already rewrote (it may run more than once).
#[derive(Clone, Copy)]
struct Rewritten;

/// Rewrites every error response into the one format: JSON `{"error", "code"}` (the
/// bodies axum's own rejections and fallbacks give are plain text or empty), and on
/// `POST` [`OTLP_PATH`] OTLP's status body in the request's encoding.
pub(crate) async fn uniform_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let otlp = request.uri().path() == OTLP_PATH && request.method() == axum::http::Method::POST;
    let json_request = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<Rewritten>().is_some()
    {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // The dashboard's pages (a 404 page, the login form) are for people: kept as HTML.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if (is_json || is_html) && !otlp {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let (code, message) = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) if is_json => (
            value["code"].as_str().unwrap_or(code_of(status)).to_owned(),
            value["error"].as_str().unwrap_or_default().to_owned(),
        ),
        _ => (code_of(status).to_owned(), text.trim().to_owned()),
    };
    let message = match message.as_str() {
        "" => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        _ => message.lines().next().unwrap_or_default().to_owned(),
    };
    let mut rewritten = if otlp {
        let rpc = RpcStatus {
            code: grpc_code(status),
            message,
        };
        if json_request {
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"code": rpc.code, "message": rpc.message}).to_string(),
            )
                .into_response()
        } else {
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                prost::Message::encode_to_vec(&rpc),
            )
                .into_response()
        }
    } else {
        error(status, &code, message)
    };
    // Keep what the response said besides its body (Allow, Retry-After...).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    let rewritten = with_retry_after(status, rewritten);
    let (mut new_parts, new_body) = rewritten.into_parts();
    new_parts.extensions = parts.extensions;
    new_parts.extensions.insert(Rewritten);
    Response::from_parts(new_parts, Body::new(new_body))
}
