//! Headers: which pass through, the provider key's hash, the Sonde key and the session
//! headers.

use http::{HeaderMap, HeaderName, header};
use sha2::{Digest, Sha256};

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded either way; nor is `host`
/// (the upstream's own is set) nor `content-length` (set again for the body sent).
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "proxy-authenticate",
];

/// Sonde's own request headers, stripped before forwarding.
pub const SONDE_KEY: &str = "x-sonde-key";
/// The session a call belongs to.
pub const SONDE_SESSION: &str = "x-sonde-session";
/// The step within the session.
pub const SONDE_STEP: &str = "x-sonde-step";
/// The prefix of metadata headers: `X-Sonde-Meta-<key>: <value>`.
pub const SONDE_META_PREFIX: &str = "x-sonde-meta-";

/// Whether `name` is forwarded (requests: Sonde's own headers and `Proxy-Authorization`
/// are not; both ways: hop-by-hop ones are not, nor those the `Connection` header names).
///
/// ```
/// use http::{HeaderMap, HeaderName};
/// let headers = HeaderMap::new();
/// assert!(!sonde_proxy::headers::forwarded(&HeaderName::from_static("x-sonde-key"), &headers));
/// assert!(!sonde_proxy::headers::forwarded(&HeaderName::from_static("transfer-encoding"), &headers));
/// assert!(sonde_proxy::headers::forwarded(&HeaderName::from_static("x-api-key"), &headers));
/// ```
pub fn forwarded(name: &HeaderName, headers: &HeaderMap) -> bool {
    let name = name.as_str();
    if HOP_BY_HOP.contains(&name) || name == "proxy-authorization" || name.starts_with("x-sonde-") {
        return false;
    }
    !headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|listed| {
            listed
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case(name))
        })
    })
}

/// The headers of `headers` that are forwarded ([`forwarded`]).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("authorization", "Bearer sk-1".parse().unwrap());
/// h.insert("x-sonde-session", "s1".parse().unwrap());
/// h.insert("connection", "keep-alive".parse().unwrap());
/// let out = sonde_proxy::headers::forward(&h);
/// assert_eq!(out.len(), 1);
/// assert!(out.contains_key("authorization"));
/// ```
pub fn forward(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if forwarded(name, headers) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The secret in `Bearer SECRET` (the scheme in any case), or the bare value.
fn bearer(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
        _ => value,
    }
}

/// The Sonde key the request carries: `X-Sonde-Key: KEY` or `Proxy-Authorization:
/// Bearer KEY` (never `Authorization`, which holds the provider's key).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("proxy-authorization", "Bearer sk_sonde".parse().unwrap());
/// assert_eq!(sonde_proxy::headers::sonde_key(&h), Some("sk_sonde"));
/// ```
pub fn sonde_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(SONDE_KEY)
        .or_else(|| headers.get(header::PROXY_AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(bearer)
        .filter(|s| !s.is_empty())
}

/// The SHA-256 (hex) of the provider key the request carries: `x-api-key` (Anthropic),
/// `api-key` (Azure) or `Authorization: Bearer` (OpenAI; Anthropic's bearer tokens).
/// The key itself is never kept.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("x-api-key", "sk-ant-1".parse().unwrap());
/// let hash = sonde_proxy::headers::provider_key_hash(&h).unwrap();
/// assert_eq!(hash.len(), 64);
/// assert!(!hash.contains("sk-ant"));
/// ```
pub fn provider_key_hash(headers: &HeaderMap) -> Option<String> {
    let key = ["x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(bearer)
        })
        .filter(|k| !k.is_empty())?;
    Some(sha256_hex(key.as_bytes()))
}

/// SHA-256 of `bytes`, as 64 lowercase hex digits.
///
/// ```
/// assert!(sonde_proxy::headers::sha256_hex(b"").starts_with("e3b0c442"));
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_named_by_connection_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("proxy-authorization", "Bearer k".parse().unwrap());
        h.insert("x-sonde-meta-user", "u".parse().unwrap());
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
        let out = forward(&h);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("anthropic-version"));
    }

    #[test]
    fn the_key_hash_ignores_the_scheme() {
        let mut a = HeaderMap::new();
        a.insert("authorization", "Bearer sk-1".parse().unwrap());
        let mut b = HeaderMap::new();
        b.insert("x-api-key", "sk-1".parse().unwrap());
        assert_eq!(provider_key_hash(&a), provider_key_hash(&b));
        assert_eq!(provider_key_hash(&HeaderMap::new()), None);
    }
}
