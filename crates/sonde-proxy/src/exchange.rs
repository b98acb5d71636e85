//! One proxied call: what the request said, how it ended, and its records.

use http::HeaderMap;
use serde_json::{Value, json};
use sonde_model::{
    Body, Context, Event, Json, LlmCall, LlmCallRecord, Metadata, Record, SessionStarted, Status,
    Timestamp,
};

use crate::endpoint::Endpoint;
use crate::headers::{self, SONDE_META_PREFIX, SONDE_SESSION, SONDE_STEP};
use crate::observe::Observed;
use crate::routes::Upstream;

/// The session a call belongs to, from `X-Sonde-Session`, `X-Sonde-Step` and
/// `X-Sonde-Meta-<key>` headers.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("x-sonde-session", "run-7".parse().unwrap());
/// h.insert("x-sonde-meta-user", "ada".parse().unwrap());
/// let tag = sonde_proxy::SessionTag::from_headers(&h);
/// assert_eq!(tag.session_id.as_deref(), Some("run-7"));
/// assert_eq!(tag.metadata["user"], "ada");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionTag {
    /// The session's id.
    pub session_id: Option<String>,
    /// The step's id.
    pub step_id: Option<String>,
    /// Metadata for the call and its session.
    pub metadata: Metadata,
}

impl SessionTag {
    /// The tag `headers` carry (values that are not text, or empty, are ignored).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut metadata = Metadata::new();
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix(SONDE_META_PREFIX)
                && !key.is_empty()
                && let Ok(value) = value.to_str()
            {
                metadata.insert(key.to_owned(), Value::String(value.trim().to_owned()));
            }
        }
        SessionTag {
            session_id: text(SONDE_SESSION),
            step_id: text(SONDE_STEP),
            metadata,
        }
    }
}

/// Why a call failed, as recorded (`error_class`).
///
/// ```
/// assert_eq!(sonde_proxy::ErrorClass::ClientGone.as_str(), "client_gone");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The upstream answered 4xx or 5xx (passed through as it was).
    UpstreamError,
    /// The upstream did not answer in time (504).
    Timeout,
    /// The upstream refused the connection (502).
    ConnectionRefused,
    /// The upstream could not be reached otherwise, or broke off its answer (502).
    Unreachable,
    /// The client went away before the answer ended (the upstream request is cancelled).
    ClientGone,
}

impl ErrorClass {
    /// The name recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::UpstreamError => "upstream_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::ClientGone => "client_gone",
        }
    }
}

/// How a call ended.
///
/// ```
/// let done = sonde_proxy::Outcome::Completed { status: 200 };
/// assert_eq!(done.status(), Some(200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer was passed through whole (an upstream 4xx / 5xx too: see
    /// [`ErrorClass::UpstreamError`]).
    Completed {
        /// The upstream's status.
        status: u16,
    },
    /// It failed: the proxy answered `status` itself (502, 504), or the answer broke off.
    Failed {
        /// The status the client got.
        status: Option<u16>,
        /// Why.
        class: ErrorClass,
        /// What happened, in one line.
        message: String,
    },
}

impl Outcome {
    /// The status the client got, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Completed { status } => Some(*status),
            Outcome::Failed { status, .. } => *status,
        }
    }
}

/// What the request said, kept until the call ends.
///
/// ```
/// use sonde_proxy::{Exchange, Outcome, Provider, ResponseObserver, Upstream, Endpoint};
/// let up = Upstream::new("openai", "http://127.0.0.1:9/v1", Provider::OpenAi).unwrap();
/// let body = br#"{"model":"gpt-5","messages":[]}"#;
/// let ex = Exchange::new(&up, "POST", "chat/completions", &http::HeaderMap::new(), body, true, sonde_model::Timestamp::now());
/// assert_eq!(ex.requested_model.as_deref(), Some("gpt-5"));
/// let records = ex.records(Outcome::Completed { status: 200 }, Default::default(), 12.0, None, None, true);
/// assert_eq!(records.len(), 2);
/// assert_eq!(records[0].kind(), "session_started");
/// ```
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The route name (recorded as the call's provider).
    pub route: String,
    /// The wire format.
    pub provider: crate::Provider,
    /// The API called.
    pub endpoint: Endpoint,
    /// The HTTP method.
    pub method: String,
    /// The path as the provider knows it: `/v1/` and what follows.
    pub path: String,
    /// The model asked for.
    pub requested_model: Option<String>,
    /// Whether the request asked for a stream.
    pub stream_requested: bool,
    /// The request body, when content is recorded and it is JSON.
    pub request: Option<Json>,
    /// SHA-256 of the provider key.
    pub api_key_hash: Option<String>,
    /// The session headers.
    pub session: SessionTag,
    /// When the request arrived.
    pub started: Timestamp,
}

/// How a call ended, as [`Exchange::records`] takes it: the outcome, what the answer
/// said, the latency, the time to first output and the gateway key's id.
type Ended<'a> = (Outcome, Observed, f64, Option<f64>, Option<&'a str>);

/// The request fields the proxy reads.
#[derive(serde::Deserialize)]
struct RequestHead {
    model: Option<String>,
    stream: Option<bool>,
}

/// The fields the proxy reads of a request `body` and its content to record, when it is
/// a JSON object: parsed once, into the tree the store's full-text index walks (kept
/// with the text, which is what the store writes), the fields read off that tree.
fn request_content(body: &[u8]) -> (Option<RequestHead>, Option<Json>) {
    let Ok(text) = std::str::from_utf8(body) else {
        return (None, None);
    };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return (None, None);
    };
    if !value.is_object() {
        return (None, None);
    }
    let head = RequestHead {
        model: value["model"].as_str().map(str::to_owned),
        stream: value["stream"].as_bool(),
    };
    (Some(head), Json::from_parsed(text, value))
}

/// `proxy-YYYY-MM-DD`, the UTC day of `at`. By hand rather than through the RFC 3339
/// text of `at`: every call without a session header asks, and formatting the whole
/// timestamp to keep its first ten characters showed in the proxy's profile.
fn proxy_bucket(at: Timestamp) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let days = at.as_micros().div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("proxy-{year:04}-{month:02}-{day:02}")
}

impl Exchange {
    /// The exchange of a request to `upstream`'s `rest` path (after `/v1/`).
    pub fn new(
        upstream: &Upstream,
        method: &str,
        rest: &str,
        headers: &HeaderMap,
        body: &[u8],
        keep_content: bool,
        started: Timestamp,
    ) -> Self {
        let (head, request) = if keep_content {
            request_content(body)
        } else {
            (serde_json::from_slice::<RequestHead>(body).ok(), None)
        };
        Exchange {
            route: upstream.name.clone(),
            provider: upstream.provider,
            endpoint: Endpoint::of_path(rest),
            method: method.to_owned(),
            path: format!("/v1/{}", rest.trim_start_matches('/')),
            requested_model: head.as_ref().and_then(|h| h.model.clone()),
            stream_requested: head.and_then(|h| h.stream).unwrap_or(false),
            request,
            api_key_hash: headers::provider_key_hash(headers),
            session: SessionTag::from_headers(headers),
            started,
        }
    }

    /// The session the call lands in: `X-Sonde-Session`, or the day's `proxy-YYYY-MM-DD`
    /// (UTC).
    pub fn session_id(&self) -> String {
        match &self.session.session_id {
            Some(id) => id.clone(),
            None => proxy_bucket(self.started),
        }
    }

    /// The records of the call: with `start_session`, first its session's
    /// `session_started` (source `proxy`; an id derived from the session, so that the
    /// store keeps one), then the `llm_call`. `latency_ms` from the request's arrival to
    /// the answer's end; `ttft_ms` to its first output. The exchange is used up: its
    /// request content moves into the record rather than being copied (with the tree
    /// parsed from it).
    pub fn records(
        mut self,
        outcome: Outcome,
        observed: Observed,
        latency_ms: f64,
        ttft_ms: Option<f64>,
        gateway_key_id: Option<&str>,
        start_session: bool,
    ) -> Vec<Record> {
        let request = self.request.take();
        let call = (outcome, observed, latency_ms, ttft_ms, gateway_key_id);
        self.records_with(request, call, start_session)
    }

    fn records_with(
        &self,
        request: Option<Json>,
        (outcome, observed, latency_ms, ttft_ms, gateway_key_id): Ended<'_>,
        start_session: bool,
    ) -> Vec<Record> {
        let session_id = self.session_id();
        let mut context = Context::session(session_id.clone());
        context.step_id = self.session.step_id.clone();
        let mut records = Vec::with_capacity(2);
        if start_session {
            let mut metadata = self.session.metadata.clone();
            metadata.insert("source".into(), json!("proxy"));
            let mut start = Record::new(
                Context::session(session_id.clone()),
                Body::SessionStarted(SessionStarted {
                    metadata,
                    ..SessionStarted::default()
                }),
            );
            start.id = sonde_model::derived_id(&["sonde-proxy", "session_started", &session_id]);
            start.timestamp = self.started;
            records.push(start);
        }
        let mut metadata = self.session.metadata.clone();
        metadata.insert("proxy_route".into(), json!(self.route));
        metadata.insert("endpoint".into(), json!(self.endpoint.operation()));
        if let Some(model) = &self.requested_model {
            metadata.insert("requested_model".into(), json!(model));
        }
        if observed.streamed {
            metadata.insert("stream".into(), json!(true));
        }
        let (status, error) = match &outcome {
            Outcome::Completed { status } if *status >= 400 => {
                let class = ErrorClass::UpstreamError;
                metadata.insert("error_class".into(), json!(class.as_str()));
                let said = observed.error.as_deref().unwrap_or("no message");
                (
                    Status::Error,
                    Some(format!("{}: HTTP {status}: {said}", class.as_str())),
                )
            }
            Outcome::Completed { .. } => match &observed.error {
                // An error event inside a stream that began well.
                Some(said) => (Status::Error, Some(format!("upstream_error: {said}"))),
                None => (Status::Ok, None),
            },
            Outcome::Failed { class, message, .. } => {
                metadata.insert("error_class".into(), json!(class.as_str()));
                if *class == ErrorClass::ClientGone {
                    metadata.insert("cancelled".into(), json!(true));
                }
                (
                    Status::Error,
                    Some(format!("{}: {message}", class.as_str())),
                )
            }
        };
        let mut call = LlmCall {
            provider: Some(self.route.clone()),
            model_name: observed
                .model
                .clone()
                .or_else(|| self.requested_model.clone())
                .unwrap_or_default(),
            operation: Some(self.endpoint.operation().to_owned()),
            latency_ms: Some(latency_ms.max(0.0)),
            time_to_first_token_ms: ttft_ms.map(|t| t.max(0.0)),
            status,
            error,
            stop_reason: observed.stop_reason.clone(),
            request_method: Some(self.method.clone()),
            request_path: Some(self.path.clone()),
            response_status: outcome.status(),
            api_key_hash: self.api_key_hash.clone(),
            gateway_key_id: gateway_key_id.map(str::to_owned),
            metadata,
            ..LlmCall::default()
        };
        if let Some(usage) = observed.usage {
            usage.apply(&mut call);
        }
        if request.is_some() || observed.content.is_some() {
            call.call_records.push(LlmCallRecord {
                request,
                response: observed.content,
                metadata: Metadata::new(),
            });
        }
        let mut record = Record::new(context, Body::Event(Event::Llm(call)));
        record.timestamp = self.started;
        records.push(record);
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Provider, Usage};

    fn exchange(headers: &HeaderMap) -> Exchange {
        let up = Upstream::new("anthropic", "http://h/v1", Provider::Anthropic).unwrap();
        let started: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        Exchange::new(
            &up,
            "POST",
            "messages",
            headers,
            br#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":5}"#,
            false,
            started,
        )
    }

    fn call(records: &[Record]) -> &LlmCall {
        match &records.last().unwrap().body {
            Body::Event(Event::Llm(call)) => call,
            _ => panic!("not a call"),
        }
    }

    #[test]
    fn calls_without_a_session_land_in_the_days_bucket() {
        let ex = exchange(&HeaderMap::new());
        assert!(ex.stream_requested);
        assert_eq!(ex.session_id(), "proxy-2026-12-03");
        let records = ex.records(
            Outcome::Completed { status: 200 },
            Observed {
                model: Some("claude-sonnet-4-5-20250929".into()),
                usage: Some(Usage {
                    input: 3,
                    cache_read: 7,
                    output: 2,
                    ..Usage::default()
                }),
                ..Observed::default()
            },
            20.0,
            Some(5.0),
            Some("key-1"),
            false,
        );
        assert_eq!(records.len(), 1);
        let call = call(&records);
        assert_eq!(call.model_name, "claude-sonnet-4-5-20250929");
        assert_eq!((call.input_tokens, call.cache_read_tokens), (3, 7));
        assert_eq!(call.request_path.as_deref(), Some("/v1/messages"));
        assert_eq!(call.gateway_key_id.as_deref(), Some("key-1"));
        assert!(call.call_records.is_empty());
        assert!(call.status.is_ok());
    }

    #[test]
    fn failures_say_their_class() {
        let mut h = HeaderMap::new();
        h.insert("x-sonde-session", "s-9".parse().unwrap());
        h.insert("x-sonde-step", "turn-2".parse().unwrap());
        let ex = exchange(&h);
        let records = ex.clone().records(
            Outcome::Failed {
                status: Some(504),
                class: ErrorClass::Timeout,
                message: "no answer within 1 s".into(),
            },
            Observed::default(),
            1000.0,
            None,
            None,
            true,
        );
        assert_eq!(records[0].context.session_id, "s-9");
        assert_eq!(records[1].context.step_id.as_deref(), Some("turn-2"));
        let call = call(&records);
        assert_eq!(call.status, Status::Error);
        assert_eq!(call.response_status, Some(504));
        assert_eq!(call.metadata["error_class"], "timeout");
        assert_eq!(call.model_name, "claude-sonnet-4-5");
        let upstream = ex.records(
            Outcome::Completed { status: 429 },
            Observed {
                error: Some("rate limited".into()),
                ..Observed::default()
            },
            1.0,
            None,
            None,
            false,
        );
        assert_eq!(
            call_of(&upstream).error.as_deref(),
            Some("upstream_error: HTTP 429: rate limited")
        );
    }

    #[test]
    fn the_days_bucket_is_the_utc_date() {
        for at in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999Z",
            "2026-12-03T10:00:00Z",
            "2100-03-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            let t: Timestamp = at.parse().unwrap();
            assert_eq!(proxy_bucket(t), format!("proxy-{}", &at[..10]), "{at}");
        }
        let mut t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        for _ in 0..800 {
            assert_eq!(proxy_bucket(t), format!("proxy-{}", &t.to_string()[..10]));
            t = Timestamp::from_micros(t.as_micros() + 86_400_000_000 - 1);
        }
    }

    #[test]
    fn recorded_request_content_is_the_text_as_sent() {
        let up = Upstream::new("openai", "http://h/v1", Provider::OpenAi).unwrap();
        let body = br#"{"model": "gpt-5",  "stream": true, "messages": []}"#;
        let ex = Exchange::new(
            &up,
            "POST",
            "chat/completions",
            &HeaderMap::new(),
            body,
            true,
            Timestamp::now(),
        );
        assert_eq!(ex.requested_model.as_deref(), Some("gpt-5"));
        assert!(ex.stream_requested);
        let request = ex.request.clone().unwrap();
        assert_eq!(serde_json::to_string(&request).unwrap().as_bytes(), body);
        assert_eq!(request["messages"], serde_json::json!([]));
        let ok = Outcome::Completed { status: 200 };
        let copied = ex
            .clone()
            .records(ok.clone(), Observed::default(), 1.0, None, None, false);
        let moved = ex.records(ok, Observed::default(), 1.0, None, None, false);
        assert_eq!(call(&copied), call(&moved));
        assert_eq!(call(&moved).call_records[0].request, Some(request));
        let not_json = Exchange::new(
            &up,
            "POST",
            "chat/completions",
            &HeaderMap::new(),
            b"[1,",
            true,
            Timestamp::now(),
        );
        assert!(not_json.request.is_none() && not_json.requested_model.is_none());
    }

    fn call_of(records: &[Record]) -> &LlmCall {
        call(records)
    }
}
