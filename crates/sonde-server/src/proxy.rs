//! The recording LLM proxy: `/openai/v1/*`, `/anthropic/v1/*` and `/NAME/v1/*` forward
//! to their upstreams unchanged (but hop-by-hop headers and Sonde's own), answers
//! stream back chunk by chunk as they arrive, and each call is recorded through the
//! writer as an LLM call (source `proxy`).
//!
//! Access: as the API's (see `auth.rs`), but the Sonde key is in `X-Sonde-Key` or
//! `Proxy-Authorization: Bearer` (`Authorization` holds the provider's key), and it is
//! never forwarded.
//!
//! The request path does only what forwarding needs: the caller, the headers to send,
//! the URL. Everything else a call's record needs — parsing the request and a
//! non-streamed answer, building the records, handing them to the writer — happens
//! once the answer has gone out, on the [`Recorder`]'s task (several calls at a time,
//! one [`Writer::enqueue`] for them), so that it holds up neither the answer nor its
//! last bytes. A clean shutdown drains it (the connections end, then the recorder,
//! then the writer); a crash loses the calls not yet committed (see `docs/proxy.md`,
//! "Durability").

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use http_body_util::Full;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use sonde_model::{Record, Timestamp};
use sonde_proxy::{
    ErrorClass, Exchange, Outcome, ResponseObserver, RouteTable, SessionTag, Upstream,
};
use sonde_store::Writer;
use tokio::sync::mpsc;

use crate::auth::{Caller, Denied, Gate, stamp_tenant};
use crate::refusal::error;

/// How long the proxy waits for an upstream's answer to begin (its status and
/// headers); a streamed answer may then take as long as it takes.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the proxy waits to connect to an upstream.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle connection to an upstream is kept for the next request.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The sessions remembered as started (their `session_started` sent); past this many
/// the memory is cleared (the store keeps one start per session anyway).
const STARTED_SESSIONS_KEPT: usize = 100_000;

/// Ended calls waiting for the recorder; when it is this far behind, a connection
/// records its call itself (back-pressure in CPU, not in memory).
const RECORDER_BACKLOG: usize = 4_096;

/// The most calls the recorder hands to the writer in one enqueue.
const RECORDER_BATCH: usize = 512;

/// How long shutdown waits for the recorder to hand over the calls that ended.
const RECORDER_DRAIN: Duration = Duration::from_secs(10);

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

/// The client the proxy forwards with: hyper's pooled HTTP/1 client (keep-alive,
/// `TCP_NODELAY`), over rustls for `https://` upstreams. Hyper's own client rather than
/// reqwest: the proxy needs none of reqwest's conveniences, and it passes request and
/// answer bodies through as they are (`Bytes`, hyper's `Incoming`) without a URL parse,
/// a header map copy or a body adapter per request.
type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The upstream client; an error when TLS cannot be set up (it cannot, with rustls'
/// own provider and its default protocol versions, but the proxy answers 502 saying so
/// rather than panic).
fn upstream_client() -> Result<UpstreamClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(UPSTREAM_CONNECT_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("cannot set up TLS to upstreams: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
        .build(connector))
}

/// What every route shares.
struct Shared {
    /// The client, or why there is none.
    client: Result<UpstreamClient, String>,
    gate: Arc<Gate>,
    body_limit: usize,
    record_content: bool,
    upstream_timeout: Duration,
    books: Arc<Books>,
    /// Each key's requests per minute, when limited.
    limits: Option<RateLimits>,
    /// Where ended calls go to be recorded; `None` outside a runtime, or once the
    /// recorder has stopped (calls are then recorded where they end).
    recorder: Option<mpsc::Sender<Ended>>,
}

/// What recording a call needs, shared by the connections and the recorder.
struct Books {
    calls: ProxyCalls,
    writer: Arc<Writer>,
    /// Sessions whose start this process recorded, by tenant and id.
    started: Mutex<HashSet<String>>,
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
    /// `/NAME/v1/`: what the request path starts with.
    prefix: String,
    /// `sonde_proxy_calls_total{route, outcome="ok"}`, the counter nearly every call
    /// increments, looked up once.
    ok_calls: Counter,
    shared: Arc<Shared>,
}

/// The recorder's task, to stop once the connections have ended.
pub(crate) struct Recorder {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Records the calls that ended and stops; calls that end later are recorded
    /// where they end.
    pub(crate) async fn stop(self) {
        self.stop.notify_one();
        if tokio::time::timeout(RECORDER_DRAIN, self.task)
            .await
            .is_err()
        {
            tracing::warn!(
                seconds = RECORDER_DRAIN.as_secs(),
                "the proxy's recorder did not finish in time; calls it held are not recorded"
            );
        }
    }
}

/// The proxy's routes, one `/NAME/v1/{*rest}` per upstream, and their recorder (none
/// outside a Tokio runtime: calls are then recorded where they end).
pub(crate) fn routes(
    config: &ProxyConfig,
    writer: Arc<Writer>,
    gate: Arc<Gate>,
    body_limit: usize,
    calls: ProxyCalls,
) -> (Router, Option<Recorder>) {
    let client = upstream_client();
    if let Err(e) = &client {
        tracing::error!(error = %e, "the proxy cannot reach upstreams");
    }
    let runtime = tokio::runtime::Handle::try_current().ok();
    let (recorder, ended) = match runtime {
        Some(_) => {
            let (tx, rx) = mpsc::channel(RECORDER_BACKLOG);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let books = Arc::new(Books {
        calls,
        writer,
        started: Mutex::new(HashSet::new()),
    });
    let shared = Arc::new(Shared {
        client,
        gate,
        body_limit,
        record_content: config.record_content,
        upstream_timeout: config.upstream_timeout,
        books: books.clone(),
        limits: config.rate_limit_per_minute.map(|per_minute| RateLimits {
            per_minute,
            buckets: Mutex::new(std::collections::HashMap::new()),
        }),
        recorder,
    });
    let recorder = match (runtime, ended) {
        (Some(runtime), Some(ended)) => {
            let stop = Arc::new(tokio::sync::Notify::new());
            let task = runtime.spawn(record_ended(books, ended, stop.clone()));
            Some(Recorder { stop, task })
        }
        _ => None,
    };
    let mut router = Router::new();
    for upstream in config.routes.upstreams() {
        let route = Arc::new(Route {
            upstream: upstream.clone(),
            prefix: format!("/{}/v1/", upstream.name),
            ok_calls: shared
                .books
                .calls
                .get_or_create(&vec![
                    ("route".to_owned(), upstream.name.clone()),
                    ("outcome".to_owned(), "ok".to_owned()),
                ])
                .clone(),
            shared: shared.clone(),
        });
        router = router.route(
            &format!("/{}/v1/{{*rest}}", upstream.name),
            any(forward).with_state(route),
        );
    }
    (router, recorder)
}

/// The recorder: takes ended calls as they come, several at a time, builds their
/// records and hands them to the writer in one enqueue. On `stop` it refuses new
/// calls (their connections record them) and records those already sent.
async fn record_ended(
    books: Arc<Books>,
    mut ended: mpsc::Receiver<Ended>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut calls = Vec::with_capacity(RECORDER_BATCH);
    loop {
        let received = tokio::select! {
            n = ended.recv_many(&mut calls, RECORDER_BATCH) => n,
            () = stop.notified() => {
                ended.close();
                while ended.recv_many(&mut calls, RECORDER_BATCH).await > 0 {
                    books.record(calls.drain(..));
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        books.record(calls.drain(..));
    }
}

/// Who is calling the proxy: the Sonde key in `X-Sonde-Key` or `Proxy-Authorization`.
async fn caller(gate: &Gate, headers: &HeaderMap) -> Result<Caller, Response> {
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

/// A call in flight: what its record needs of the request, kept to be read once the
/// call ended. Nothing here refers to the connection's read buffer (hyper's header
/// values and a body in one chunk are slices of it): holding one would keep the whole
/// buffer per call, which 1,000 open streams felt (about 10 KB each).
struct InFlight {
    route: Arc<Route>,
    caller: Caller,
    arrived: Instant,
    started: Timestamp,
    method: Method,
    /// The path after `/NAME/v1/`, as sent.
    rest: String,
    /// The session headers.
    session: SessionTag,
    /// SHA-256 of the provider key (the key itself is never kept).
    api_key_hash: Option<String>,
    /// The request body, copied out of the read buffer.
    body: Bytes,
}

/// What was read of the answer: nothing when the upstream never answered, else its
/// observer, fed as the answer passed (a stream is parsed event by event, for the time
/// to first token; a whole body only copied, and parsed once the call is recorded, off
/// the answer's path).
type Answer = Option<ResponseObserver>;

/// A call that ended, to be recorded.
struct Ended {
    call: InFlight,
    outcome: Outcome,
    answer: Answer,
    latency_ms: f64,
    first_output_ms: Option<f64>,
}

impl InFlight {
    /// The call ended: hands it to the recorder, or records it here when the recorder
    /// is behind or gone.
    fn end(self, outcome: Outcome, answer: Answer, first_output_ms: Option<f64>) {
        let ended = Ended {
            latency_ms: self.arrived.elapsed().as_secs_f64() * 1000.0,
            call: self,
            outcome,
            answer,
            first_output_ms,
        };
        let shared = ended.call.route.shared.clone();
        let unsent = match &shared.recorder {
            Some(recorder) => match recorder.try_send(ended) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => ended,
        };
        shared.books.record(std::iter::once(unsent));
    }
}

impl Books {
    /// Records `calls`, in one enqueue.
    fn record(&self, calls: impl Iterator<Item = Ended>) {
        let mut records = Vec::new();
        let mut n = 0usize;
        for ended in calls {
            n += 1;
            self.records_of(ended, &mut records);
        }
        if self.writer.enqueue(records) == sonde_store::Enqueued::Dropped {
            tracing::warn!(
                calls = n,
                "proxied calls were not recorded: the writer's queue and spool are full"
            );
        }
    }

    /// The records of a call that ended, added to `out`.
    fn records_of(&self, ended: Ended, out: &mut Vec<Record>) {
        let Ended {
            call,
            outcome,
            answer,
            latency_ms,
            first_output_ms,
        } = ended;
        let keep_content = call.route.shared.record_content;
        let mut exchange = Exchange::new(
            &call.route.upstream,
            call.method.as_str(),
            &call.rest,
            &HeaderMap::new(),
            &call.body,
            keep_content,
            call.started,
        );
        exchange.session = call.session;
        exchange.api_key_hash = call.api_key_hash;
        let observed = answer.map(ResponseObserver::finish).unwrap_or_default();
        let class = match &outcome {
            Outcome::Completed { status } if *status >= 400 => ErrorClass::UpstreamError.as_str(),
            Outcome::Completed { .. } if observed.error.is_some() => {
                ErrorClass::UpstreamError.as_str()
            }
            Outcome::Completed { .. } => "ok",
            Outcome::Failed { class, .. } => class.as_str(),
        };
        if class == "ok" {
            call.route.ok_calls.inc();
        } else {
            self.calls
                .get_or_create(&vec![
                    ("route".to_owned(), exchange.route.clone()),
                    ("outcome".to_owned(), class.to_owned()),
                ])
                .inc();
        }
        let gateway_key = match &call.caller {
            Caller::Key(key) => Some(key.id.as_str()),
            Caller::Local => None,
        };
        let start_session = self.first_of_session(&call.caller, &exchange);
        let start = out.len();
        out.extend(exchange.records(
            outcome,
            observed,
            latency_ms,
            first_output_ms,
            gateway_key,
            start_session,
        ));
        for record in out.iter_mut().skip(start) {
            stamp_tenant(&call.caller, record);
        }
    }

    /// Whether this is the first call of its session this process records.
    fn first_of_session(&self, caller: &Caller, exchange: &Exchange) -> bool {
        let tenant = match caller {
            Caller::Key(key) if !key.admin => format!("{}/{}", key.org, key.workspace),
            _ => String::new(),
        };
        let key = format!("{tenant}\n{}", exchange.session_id());
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
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
            call.end(
                Outcome::Failed {
                    status: None,
                    class: ErrorClass::ClientGone,
                    message: "the client disconnected before the upstream answered".into(),
                },
                None,
                None,
            );
        }
    }
}

/// `ANY /NAME/v1/{*rest}`: forwards the request to the upstream and streams its answer
/// back, recording the call.
async fn forward(State(route): State<Arc<Route>>, request: Request) -> Response {
    let arrived = Instant::now();
    let started = Timestamp::now();
    let shared = &route.shared;
    let client = match &shared.client {
        Ok(client) => client,
        Err(why) => {
            return error(StatusCode::BAD_GATEWAY, "upstream_unreachable", why.clone());
        }
    };
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
    // The path as the client sent it (still percent-encoded), after `/NAME/v1/`.
    let rest = parts
        .uri
        .path()
        .strip_prefix(route.prefix.as_str())
        .unwrap_or_default()
        .to_owned();
    let url = route.upstream.url_for(&rest, parts.uri.query());
    let uri = match url.parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("cannot forward to {url}: {e}"),
            );
        }
    };
    let endpoint = sonde_proxy::Endpoint::of_path(&rest);
    let mut headers = sonde_proxy::headers::forward(&parts.headers);
    // The proxy reads the answer to record it: it asks for it uncompressed.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let mut upstream_request = hyper::Request::new(Full::new(bytes.clone()));
    *upstream_request.method_mut() = parts.method.clone();
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = headers;
    let mut guard = Guard(Some(InFlight {
        route: route.clone(),
        caller,
        arrived,
        started,
        method: parts.method,
        rest,
        session: SessionTag::from_headers(&parts.headers),
        api_key_hash: sonde_proxy::headers::provider_key_hash(&parts.headers),
        body: Bytes::copy_from_slice(&bytes),
    }));
    let answered =
        tokio::time::timeout(shared.upstream_timeout, client.request(upstream_request)).await;
    let (status, class, message) = match answered {
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
        Ok(Err(e)) => match io_kind(&e) {
            Some(std::io::ErrorKind::TimedOut) => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorClass::Timeout,
                format!(
                    "the upstream {} timed out: {}",
                    route.upstream.name,
                    chain(&e)
                ),
            ),
            kind => (
                StatusCode::BAD_GATEWAY,
                if kind == Some(std::io::ErrorKind::ConnectionRefused) {
                    ErrorClass::ConnectionRefused
                } else {
                    ErrorClass::Unreachable
                },
                format!(
                    "cannot reach the upstream {}: {}",
                    route.upstream.name,
                    chain(&e)
                ),
            ),
        },
    };
    if let Some(call) = guard.0.take() {
        call.end(
            Outcome::Failed {
                status: Some(status.as_u16()),
                class,
                message: message.clone(),
            },
            None,
            None,
        );
    }
    let code = match class {
        ErrorClass::Timeout => "upstream_timeout",
        _ => "upstream_unreachable",
    };
    error(status, code, message)
}

/// The kind of the first I/O error among `e` and its causes.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
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
    response: hyper::Response<Incoming>,
    call: InFlight,
    endpoint: sonde_proxy::Endpoint,
) -> Response {
    let (parts, incoming) = response.into_parts();
    let event_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut answer = Response::builder().status(parts.status);
    if let Some(headers) = answer.headers_mut() {
        for (name, value) in &parts.headers {
            // The body passes through byte for byte: its length stays true (and a
            // known length lets the answer go out in one write, without chunking).
            if sonde_proxy::headers::forwarded(name, &parts.headers)
                || name == header::CONTENT_LENGTH
            {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let read = Some(ResponseObserver::new(
        endpoint,
        event_stream,
        call.route.shared.record_content,
    ));
    let body = Recording {
        left: incoming.size_hint().exact(),
        inner: incoming,
        call: Some(Observing {
            call,
            read,
            status: parts.status.as_u16(),
            first_output_ms: None,
        }),
    };
    answer.body(Body::new(body)).unwrap_or_else(|e| {
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
    read: Answer,
    status: u16,
    first_output_ms: Option<f64>,
}

impl Observing {
    /// Reads a chunk on its way out.
    fn chunk(&mut self, bytes: &Bytes) {
        if let Some(observer) = &mut self.read {
            observer.feed(bytes);
            if self.first_output_ms.is_none() && observer.has_output() {
                self.first_output_ms = Some(self.call.arrived.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }

    fn end(self, failure: Option<(ErrorClass, String)>) {
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
        self.call.end(outcome, self.read, self.first_output_ms);
    }
}

/// The answer's body: the upstream's frames as they come, each data frame also read
/// on the side; the call ends when the body does, breaks off, or is dropped (the client
/// left: dropping the upstream's body cancels its request).
struct Recording {
    inner: Incoming,
    call: Option<Observing>,
    /// The bytes still to come, when the upstream said its length: the server stops
    /// polling a body once that many went out, so the call ends there.
    left: Option<u64>,
}

impl hyper::body::Body for Recording {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(bytes) = frame.data_ref() {
                    if let Some(left) = this.left.as_mut() {
                        *left = left.saturating_sub(bytes.len() as u64);
                    }
                    if let Some(call) = this.call.as_mut() {
                        call.chunk(bytes);
                    }
                    if this.left == Some(0)
                        && let Some(call) = this.call.take()
                    {
                        call.end(None);
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(call) = this.call.take() {
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
                if let Some(call) = this.call.take() {
                    call.end(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            // An answer of known length whose every byte went out (an empty one, say:
            // the server need not poll it) is whole.
            if self.left == Some(0) {
                call.end(None);
                return;
            }
            call.end(Some((
                ErrorClass::ClientGone,
                "the client disconnected before the answer ended; the upstream request was cancelled".into(),
            )));
        }
    }
}
