//! `OtlpSink`: records out to any OpenTelemetry backend over OTLP/HTTP protobuf.

use std::time::Duration;

use prost::Message;
use sonde_model::Record;
use sonde_model::{Attempt, RetryPolicy, SinkError, TraceSink};

/// Attempts per batch before the sink gives up on it.
pub const EXPORT_ATTEMPTS: u32 = 4;
/// How HTTP exports (OTLP here, Langfuse in the sync) retry a request: [`EXPORT_ATTEMPTS`]
/// attempts, waits from 400 ms doubling up to 6.4 s, each with jitter; a `Retry-After`
/// is honoured.
pub const EXPORT_RETRY: RetryPolicy = RetryPolicy::new(
    EXPORT_ATTEMPTS,
    Duration::from_millis(400),
    Duration::from_millis(6_400),
);

/// What an HTTP export's answer means for its retries: success (the response, for a
/// caller that reads it), worth another attempt (a connection failure, 429, 5xx, after
/// the server's `Retry-After` if it gave one), or a refusal. The endpoint is named by
/// the caller's error, so the HTTP client's copy of the URL (credentials and all) is
/// left out.
pub fn export_answer(
    answer: reqwest::Result<reqwest::blocking::Response>,
) -> Result<reqwest::blocking::Response, Attempt<String>> {
    match answer {
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
            let after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(sonde_model::parse_retry_after);
            Err(Attempt::Retry {
                error: format!("HTTP {}", r.status()),
                after,
            })
        }
        Ok(r) => {
            let status = r.status();
            let text = r.text().unwrap_or_default();
            Err(Attempt::Fail(format!(
                "HTTP {status}: {}",
                text.lines().next().unwrap_or_default()
            )))
        }
        Err(e) => Err(Attempt::Retry {
            error: sonde_model::message_with_causes(&e.without_url()),
            after: None,
        }),
    }
}
/// Spans per request.
pub const EXPORT_BATCH: usize = 512;

/// Sends each batch of records as OTLP/HTTP protobuf spans to `endpoint/v1/traces`,
/// retrying connection failures, 429 and 5xx answers with back-off. It blocks while it
/// sends: use it as a tracer sink (the tracer calls sinks on its own thread) or from
/// `spawn_blocking`.
///
/// As a [`TraceSink`] it maps records as they come ([`SpanMapper`](crate::SpanMapper)):
/// a session's and a step's span go once their end record has come, every other span at
/// once; [`OtlpSink::send_records`] sends whole sessions.
///
/// ```no_run
/// use sonde_model::TraceSink;
/// let sink = sonde_otlp::OtlpSink::new("http://127.0.0.1:4318").unwrap();
/// sink.write(&[]).unwrap();
/// ```
pub struct OtlpSink {
    url: String,
    /// Made on first use, on the thread that sends (a blocking client must not be made
    /// inside an async runtime).
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    service: String,
    headers: Vec<(String, String)>,
    options: crate::ExportOptions,
    /// Sessions and steps written in part, awaiting their end.
    mapper: std::sync::Mutex<crate::SpanMapper>,
}

/// Headers from `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`:
/// `key=value` pairs separated by commas, values percent-encoded (the OpenTelemetry
/// exporter convention), e.g. `Authorization=Bearer%20sk-123`.
///
/// ```
/// let headers = sonde_otlp::parse_headers("Authorization=Bearer%20abc, x-team = ops").unwrap();
/// assert_eq!(headers[0], ("Authorization".to_owned(), "Bearer abc".to_owned()));
/// assert_eq!(headers[1], ("x-team".to_owned(), "ops".to_owned()));
/// // Errors name the entry by position and key, never a value: values are credentials.
/// let err = sonde_otlp::parse_headers("x-team=ops, Bearer sk-123").unwrap_err();
/// assert_eq!(err, "entry 2 is not key=value");
/// let err = sonde_otlp::parse_headers("Authorization=Bearer%2sk-123").unwrap_err();
/// assert_eq!(err, "the value of Authorization has a bad percent escape");
/// ```
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (n, entry) in text
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("entry {} is not key=value", n + 1))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("entry {} has no key", n + 1));
        }
        let value =
            percent_decode(value.trim()).map_err(|why| format!("the value of {key} {why}"))?;
        headers.push((key.to_owned(), value));
    }
    Ok(headers)
}

/// `text` percent-decoded; the error says what is wrong without quoting `text`.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "has a bad percent escape".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once decoded".to_owned())
}

/// The exporter headers the environment names (see [`parse_headers`]).
fn env_headers() -> Result<Vec<(String, String)>, SinkError> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        if let Ok(text) = std::env::var(name) {
            return parse_headers(&text).map_err(|reason| SinkError::Export {
                endpoint: name.to_owned(),
                reason,
            });
        }
    }
    Ok(Vec::new())
}

impl OtlpSink {
    /// A sink to an OTLP/HTTP endpoint (`http://host:4318`, or the full
    /// `.../v1/traces` URL), sending the headers `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or
    /// `OTEL_EXPORTER_OTLP_HEADERS` name (an `Authorization` for a hosted backend).
    pub fn new(endpoint: &str) -> Result<Self, SinkError> {
        let endpoint = endpoint.trim_end_matches('/');
        let url = if endpoint.ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{endpoint}/v1/traces")
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SinkError::Export {
                endpoint: url,
                reason: "expected an http:// or https:// endpoint".into(),
            });
        }
        Ok(Self {
            url,
            client: std::sync::OnceLock::new(),
            service: "sonde".to_owned(),
            headers: env_headers()?,
            options: crate::ExportOptions::default(),
            mapper: std::sync::Mutex::new(crate::SpanMapper::default()),
        })
    }

    /// The same sink, sending what `options` allow (`--no-content`, the size cap).
    ///
    /// ```
    /// let options = sonde_otlp::ExportOptions { content: false, ..Default::default() };
    /// let sink = sonde_otlp::OtlpSink::new("http://127.0.0.1:4318").unwrap().with_options(options);
    /// # drop(sink);
    /// ```
    pub fn with_options(mut self, options: crate::ExportOptions) -> Self {
        self.options = options;
        self.mapper = std::sync::Mutex::new(crate::SpanMapper::new(options));
        self
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, SinkError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SinkError::Export {
                endpoint: self.url.clone(),
                reason: sonde_model::message_with_causes(&e),
            })?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Sends the spans of whole sessions' `records`
    /// ([`record_spans_with`](crate::record_spans_with): every session and step closed at
    /// its end or latest record) in requests of at most [`EXPORT_BATCH`] spans; returns
    /// how many spans it sent.
    pub fn send_records(&self, records: &[Record]) -> Result<usize, SinkError> {
        self.send_spans(crate::record_spans_with(records, &self.options))
    }

    /// Sends `spans` in requests of at most [`EXPORT_BATCH`]; returns how many.
    fn send_spans(
        &self,
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> Result<usize, SinkError> {
        let count = spans.len();
        let mut spans = spans.into_iter();
        loop {
            let batch: Vec<_> = spans.by_ref().take(EXPORT_BATCH).collect();
            if batch.is_empty() {
                return Ok(count);
            }
            self.send(crate::spans_request(batch, &self.service).encode_to_vec())?;
        }
    }

    fn send(&self, body: Vec<u8>) -> Result<(), SinkError> {
        let client = self.client()?;
        EXPORT_RETRY
            .run_blocking(|| {
                let mut request = client
                    .post(&self.url)
                    .header("content-type", "application/x-protobuf");
                for (key, value) in &self.headers {
                    request = request.header(key, value);
                }
                export_answer(request.body(body.clone()).send()).map(drop)
            })
            .map_err(|reason| SinkError::Export {
                endpoint: self.url.clone(),
                reason,
            })
    }
}

impl TraceSink for OtlpSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let spans = self
            .mapper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(records);
        self.send_spans(spans).map(drop)
    }
}
