//! Request bodies: gunzipped when they say so (every byte of them), within the limit.

use std::io::Read;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};

use crate::refusal::Refusal;

/// The request body, gunzipped when it says so, within the limit.
pub(crate) fn body_bytes(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Vec<u8>, Refusal> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            // Every gzip member is read, and anything after the last one that is not a
            // gzip member (trailing garbage) fails the body, as a truncated one does.
            let read = flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Err(e) => Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_gzip",
                    format!("the body claims gzip but is not: {e}"),
                )),
                Ok(_) if out.len() > limit => Err(Refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the decompressed body is over the {limit}-byte limit"),
                )),
                Ok(_) => Ok(out),
            }
        }
        "identity" | "" => Ok(body.to_vec()),
        other => Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding {other:?} is not supported (use gzip or none)"),
        )),
    }
}
