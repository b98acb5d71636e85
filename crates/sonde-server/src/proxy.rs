//! The recording LLM proxy: `/openai/v1/*`, `/anthropic/v1/*` and `/NAME/v1/*` forward
//! to their upstreams unchanged (but hop-by-hop headers and Sonde's own), answers
//! stream back chunk by chunk as they arrive, and each call is recorded through the
//! writer as an LLM call (source `proxy`).
//!
//! Access: as the API's (see `auth.rs`), but the Sonde key is in `X-Sonde-Key` or
//! `Proxy-Authorization: Bearer` (`Authorization` holds the provider's key), and it is
//! never forwarded.
//!
//! Recording happens once the answer has passed through (or broke off), with
//! [`Writer::enqueue`]: it never holds up the answer, and a clean shutdown drains it
//! (the connections end before the writer does); a crash loses the calls still queued
//! in memory (the answer was already given: there is no sender to retry).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use futures_util::Stream;
use sonde_model::Timestamp;
use sonde_proxy::{ErrorClass, Exchange, Outcome, ResponseObserver, RouteTable, Upstream};
use sonde_store::Writer;

use crate::auth::{Caller, Denied, Gate, stamp_tenant};
use crate::refusal::error;

/// How long the proxy waits for an upstream's answer to begin (its status and
/// headers); a streamed answer may then take as long as it takes.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the proxy waits to connect to an upstream.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sessions remembered as started (their `session_started` sent); past this many
/// the memory is cleared (the store keeps one start per session anyway).
const STARTED_SESSIONS_KEPT: usize = 100_000;

/// How the proxy runs.
///
/// ```
/// let config = sonde_server::ProxyConfig::default();
/// assert!(config.record_content);
/// assert!(config.routes.get("openai").is_some());
/// ```
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The upstreams by route name.
    pub routes: RouteTable,
    /// Record request and response content (`--no-content` records none).
    pub record_content: bool,
    /// How long to wait for an upstream's answer to begin.
    pub upstream_timeout: Duration,
    /// Requests per minute each Sonde key may make through the proxy (callers without
    /// a key, on loopback without keys, are not limited); `None`: no limit.
    pub rate_limit_per_minute: Option<u32>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            routes: RouteTable::defaults(),
            record_content: true,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            rate_limit_per_minute: None,
        }
    }
}

/// The proxy's calls by route and outcome (`ok`, or the error class), for `/metrics`
/// (`sonde_proxy_calls_total{route, outcome}`).
pub(crate) type ProxyCalls = prometheus_client::metrics::family::Family<
    Vec<(String, String)>,
    prometheus_client::metrics::counter::Counter,
>;

/// What every route shares.
struct Shared {
    calls: ProxyCalls,
    client: reqwest::Client,
    writer: Arc<Writer>,
    gate: Arc<Gate>,
    body_limit: usize,
    record_content: bool,
    upstream_timeout: Duration,
    /// Sessions whose start this process recorded, by tenant and id.
    started: Mutex<HashSet<String>>,
    /// Each key's requests per minute, when limited.
    limits: Option<RateLimits>,
}

/// Per-key token buckets: `per_minute` tokens at most, refilled evenly over a minute.
struct RateLimits {
    per_minute: u32,
    buckets: Mutex<std::collections::HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    /// Takes a token from `key`'s bucket; when there is none, how long until one.
    fn take(&self, key: &str) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }
}

/// One route: its upstream and what all share.
struct Route {
    upstream: Upstream,
    shared: Arc<Shared>,
}

/// The proxy's routes, one `/NAME/v1/{*rest}` per upstream.
pub(crate) fn routes(
    config: &ProxyConfig,
    writer: Arc<Writer>,
    gate: Arc<Gate>,
    body_limit: usize,
    calls: ProxyCalls,
) -> Router {
    let client = reqwest::Client::builder()
        .connect_timeout(UPSTREAM_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot configure the upstream client; using defaults");
            reqwest::Client::new()
        });
    let shared = Arc::new(Shared {
        calls,
        client,
        writer,
        gate,
        body_limit,
        record_content: config.record_content,
        upstream_timeout: config.upstream_timeout,
        started: Mutex::new(HashSet::new()),
        limits: config.rate_limit_per_minute.map(|per_minute| RateLimits {
            per_minute,
            buckets: Mutex::new(std::collections::HashMap::new()),
        }),
    });
    let mut router = Router::new();
    for upstream in config.routes.upstreams() {
        let route = Arc::new(Route {
            upstream: upstream.clone(),
            shared: shared.clone(),
        });
        router = router.route(
            &format!("/{}/v1/{{*rest}}", upstream.name),
            any(forward).with_state(route),
        );
    }
    router
}

/// Who is calling the proxy: the Sonde key in `X-Sonde-Key` or `Proxy-Authorization`.
async fn caller(gate: &Gate, headers: &axum::http::HeaderMap) -> Result<Caller, Response> {
    let key = sonde_proxy::headers::sonde_key(headers);
    match gate.identify(key).await {
        Ok(caller) => Ok(caller),
        Err(Denied::Unauthenticated(why)) => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if key.is_some() {
                why
            } else {
                "this proxy needs a sonde key in X-Sonde-Key (or Proxy-Authorization: Bearer); see sonde keys create"
            },
        )),
        Err(Denied::Unavailable(why)) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            why,
        )),
    }
}

/// A call in flight: what it needs to be recorded however it ends.
struct InFlight {
    exchange: Exchange,
    shared: Arc<Shared>,
    caller: Caller,
    arrived: Instant,
}

impl InFlight {
    /// Records the call.
    fn record(
        self,
        outcome: Outcome,
        observed: sonde_proxy::Observed,
        first_output_ms: Option<f64>,
    ) {
        let latency_ms = self.arrived.elapsed().as_secs_f64() * 1000.0;
        let gateway_key = match &self.caller {
            Caller::Key(key) => Some(key.id.as_str()),
            Caller::Local => None,
        };
        let class = match &outcome {
            Outcome::Completed { status } if *status >= 400 => ErrorClass::UpstreamError.as_str(),
            Outcome::Completed { .. } if observed.error.is_some() => {
                ErrorClass::UpstreamError.as_str()
            }
            Outcome::Completed { .. } => "ok",
            Outcome::Failed { class, .. } => class.as_str(),
        };
        self.shared
            .calls
            .get_or_create(&vec![
                ("route".to_owned(), self.exchange.route.clone()),
                ("outcome".to_owned(), class.to_owned()),
            ])
            .inc();
        let start_session = self.first_of_session();
        let mut records = self.exchange.records(
            outcome,
            observed,
            latency_ms,
            first_output_ms,
            gateway_key,
            start_session,
        );
        for record in &mut records {
            stamp_tenant(&self.caller, record);
        }
        let enqueued = self.shared.writer.enqueue(records);
        if enqueued == sonde_store::Enqueued::Dropped {
            tracing::warn!(
                route = %self.exchange.route,
                "a proxied call was not recorded: the writer's queue and spool are full"
            );
        }
    }

    /// Whether this is the first call of its session this process records.
    fn first_of_session(&self) -> bool {
        let tenant = match &self.caller {
            Caller::Key(key) if !key.admin => format!("{}/{}", key.org, key.workspace),
            _ => String::new(),
        };
        let key = format!("{tenant}\n{}", self.exchange.session_id());
        let mut started = self
            .shared
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if started.len() >= STARTED_SESSIONS_KEPT {
            started.clear();
        }
        started.insert(key)
    }
}

/// Records a call that never got an answer through, when dropped armed (the client
/// left while the upstream was still to answer).
struct Guard(Option<InFlight>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            call.record(
                Outcome::Failed {
                    status: None,
                    class: ErrorClass::ClientGone,
                    message: "the client disconnected before the upstream answered".into(),
                },
                sonde_proxy::Observed::default(),
                None,
            );
        }
    }
}

/// `ANY /NAME/v1/{*rest}`: forwards the request to the upstream and streams its answer
/// back, recording the call.
async fn forward(
    State(route): State<Arc<Route>>,
    Path(rest): Path<String>,
    request: Request,
) -> Response {
    let arrived = Instant::now();
    let started = Timestamp::now();
    let shared = &route.shared;
    let caller = match caller(&shared.gate, request.headers()).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    if let (Some(limits), Caller::Key(key)) = (&shared.limits, &caller)
        && let Err(wait) = limits.take(&key.id)
    {
        let mut refused = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key's limit of {} requests per minute is reached; nothing was sent upstream",
                limits.per_minute
            ),
        );
        refused.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return refused;
    }
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is over the {}-byte limit; nothing was sent upstream",
                shared.body_limit
            ),
        )
    };
    if declared.is_some_and(|n| n > shared.body_limit as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, shared.body_limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let e = e.into_inner();
            return if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("cannot read the request body: {e}"),
                )
            };
        }
    };
    let exchange = Exchange::new(
        &route.upstream,
        parts.method.as_str(),
        &rest,
        &parts.headers,
        &bytes,
        shared.record_content,
        started,
    );
    let endpoint = exchange.endpoint;
    let mut guard = Guard(Some(InFlight {
        exchange,
        shared: shared.clone(),
        caller,
        arrived,
    }));
    let mut headers = sonde_proxy::headers::forward(&parts.headers);
    // The proxy reads the answer to record it: it asks for it uncompressed.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let url = route.upstream.url_for(&rest, parts.uri.query());
    let sent = shared
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(bytes)
        .send();
    let answered = tokio::time::timeout(shared.upstream_timeout, sent).await;
    let failure = match answered {
        Ok(Ok(response)) => {
            let Some(call) = guard.0.take() else {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "lost call");
            };
            return pass_through(response, call, endpoint);
        }
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorClass::Timeout,
            format!(
                "the upstream {} did not answer within {} s",
                route.upstream.name,
                shared.upstream_timeout.as_secs()
            ),
        ),
        Ok(Err(e)) if e.is_timeout() => (
            StatusCode::GATEWAY_TIMEOUT,
            ErrorClass::Timeout,
            format!(
                "the upstream {} timed out: {}",
                route.upstream.name,
                chain(&e)
            ),
        ),
        Ok(Err(e)) => {
            let refused = e.is_connect() && chain(&e).to_ascii_lowercase().contains("refused");
            (
                StatusCode::BAD_GATEWAY,
                if refused {
                    ErrorClass::ConnectionRefused
                } else {
                    ErrorClass::Unreachable
                },
                format!(
                    "cannot reach the upstream {}: {}",
                    route.upstream.name,
                    chain(&e)
                ),
            )
        }
    };
    let (status, class, message) = failure;
    if let Some(call) = guard.0.take() {
        call.record(
            Outcome::Failed {
                status: Some(status.as_u16()),
                class,
                message: message.clone(),
            },
            sonde_proxy::Observed::default(),
            None,
        );
    }
    let code = match class {
        ErrorClass::Timeout => "upstream_timeout",
        _ => "upstream_unreachable",
    };
    error(status, code, message)
}

/// An error and its causes, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// The upstream's answer, passed through as it arrives, read on the side.
fn pass_through(
    response: reqwest::Response,
    call: InFlight,
    endpoint: sonde_proxy::Endpoint,
) -> Response {
    let status = response.status();
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(headers) = builder.headers_mut() {
        let upstream = response.headers();
        for (name, value) in upstream {
            // The body passes through byte for byte: its length stays true (and a
            // known length lets the answer go out in one write, without chunking).
            if sonde_proxy::headers::forwarded(name, upstream) || name == header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let observer = ResponseObserver::new(endpoint, event_stream, call.shared.record_content);
    let length = response.content_length();
    let body = Recording {
        inner: Box::pin(response.bytes_stream()),
        call: Some(Observing {
            call,
            observer,
            status: status.as_u16(),
            first_output_ms: None,
            event_stream,
            left: length,
        }),
    };
    builder.body(Body::from_stream(body)).unwrap_or_else(|e| {
        error(
            StatusCode::BAD_GATEWAY,
            "bad_upstream_answer",
            e.to_string(),
        )
    })
}

/// A call whose answer is passing through.
struct Observing {
    call: InFlight,
    observer: ResponseObserver,
    status: u16,
    first_output_ms: Option<f64>,
    event_stream: bool,
    /// The bytes still to come, when the upstream said its length: the server stops
    /// polling a body once that many went out, so the call ends there.
    left: Option<u64>,
}

impl Observing {
    /// Reads a chunk; true when it was the last the upstream announced.
    fn chunk(&mut self, bytes: &[u8]) -> bool {
        self.observer.feed(bytes);
        if let Some(left) = self.left.as_mut() {
            *left = left.saturating_sub(bytes.len() as u64);
        }
        if self.event_stream && self.first_output_ms.is_none() && self.observer.has_output() {
            self.first_output_ms = Some(self.call.arrived.elapsed().as_secs_f64() * 1000.0);
        }
        self.left == Some(0)
    }

    fn end(self, failure: Option<(ErrorClass, String)>) {
        let observed = self.observer.finish();
        let outcome = match failure {
            None => Outcome::Completed {
                status: self.status,
            },
            Some((class, message)) => Outcome::Failed {
                status: Some(self.status),
                class,
                message,
            },
        };
        self.call.record(outcome, observed, self.first_output_ms);
    }
}

/// The answer's body: the upstream's chunks as they come, each also fed to the
/// observer; the call is recorded when it ends, breaks off, or is dropped (the client
/// left: dropping the upstream's body cancels its request).
struct Recording {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    call: Option<Observing>,
}

impl Stream for Recording {
    type Item = Result<Bytes, reqwest::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(call) = self.call.as_mut()
                    && call.chunk(bytes)
                    && let Some(call) = self.call.take()
                {
                    call.end(None);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(call) = self.call.take() {
                    let class = if e.is_timeout() {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::Unreachable
                    };
                    call.end(Some((
                        class,
                        format!("the upstream broke off its answer: {}", chain(e)),
                    )));
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.end(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.end(Some((
                ErrorClass::ClientGone,
                "the client disconnected before the answer ended; the upstream request was cancelled".into(),
            )));
        }
    }
}
