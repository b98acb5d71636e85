//! `OtlpSink`: records out to any OpenTelemetry backend over OTLP/HTTP protobuf.

use std::time::Duration;

use prost::Message;
use sonde_model::Record;
use sonde_tracer::{SinkError, TraceSink};

/// Attempts per batch before the sink gives up on it.
pub const EXPORT_ATTEMPTS: u32 = 4;
/// Spans per request.
pub const EXPORT_BATCH: usize = 512;

/// Sends each batch of records as OTLP/HTTP protobuf spans to `endpoint/v1/traces`,
/// retrying connection failures, 429 and 5xx answers with back-off. It blocks while it
/// sends: use it as a tracer sink (the tracer calls sinks on its own thread) or from
/// `spawn_blocking`.
///
/// ```no_run
/// use sonde_tracer::TraceSink;
/// let sink = sonde_otlp::OtlpSink::new("http://127.0.0.1:4318").unwrap();
/// sink.write(&[]).unwrap();
/// ```
pub struct OtlpSink {
    url: String,
    /// Made on first use, on the thread that sends (a blocking client must not be made
    /// inside an async runtime).
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    service: String,
}

impl OtlpSink {
    /// A sink to an OTLP/HTTP endpoint (`http://host:4318`, or the full
    /// `.../v1/traces` URL).
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
        })
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
                reason: e.to_string(),
            })?;
        Ok(self.client.get_or_init(|| client))
    }

    fn send(&self, body: Vec<u8>) -> Result<(), SinkError> {
        let fail = |reason: String| SinkError::Export {
            endpoint: self.url.clone(),
            reason,
        };
        let mut last = String::new();
        for attempt in 0..EXPORT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << (2 * attempt.min(3))));
            }
            let response = self
                .client()?
                .post(&self.url)
                .header("content-type", "application/x-protobuf")
                .body(body.clone())
                .send();
            match response {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status());
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().unwrap_or_default();
                    return Err(fail(format!(
                        "HTTP {status}: {}",
                        text.lines().next().unwrap_or_default()
                    )));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(fail(last))
    }
}

impl TraceSink for OtlpSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        for chunk in records.chunks(EXPORT_BATCH) {
            let request = crate::export_request(chunk, &self.service);
            if request
                .resource_spans
                .iter()
                .all(|r| r.scope_spans.iter().all(|s| s.spans.is_empty()))
            {
                continue;
            }
            self.send(request.encode_to_vec())?;
        }
        Ok(())
    }
}
