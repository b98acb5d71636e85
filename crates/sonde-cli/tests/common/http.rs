//! A plain HTTP/1.1 client over a `TcpStream`: what the tests send is exactly what a
//! client (or a hostile one) would, byte for byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a test waits for an answer before it fails.
pub const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// An answer: status, header block and body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// Parses a whole answer read from a connection.
pub fn parse(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut reply = Reply {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        let mut rest = &reply.body[..];
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            body.extend_from_slice(rest.get(start..start + size)?);
            rest = rest.get(start + size + 2..)?;
        }
        reply.body = body;
    }
    Some(reply)
}

/// Sends `raw` on a new connection and reads the answer until the server closes it.
pub fn send(addr: &str, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(ANSWER_WAIT)).unwrap();
    stream.write_all(raw).unwrap();
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        panic!(
            "no whole answer within {ANSWER_WAIT:?} ({e}); got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    parse(&answer).unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// `METHOD PATH` with `headers` and `body`, on a connection of its own.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    send(addr, &raw)
}

/// `GET PATH`, with `Authorization: Bearer SECRET` when a secret is given.
pub fn get(addr: &str, path: &str, secret: Option<&str>) -> Reply {
    let authorization = secret.map(|s| format!("Bearer {s}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, b"")
}

/// OTLP/JSON with one chat span in session `session`.
pub fn otlp_json(session: &str, span_id: &str) -> String {
    serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
        "spanId": span_id,
        "name": "chat gpt-5",
        "kind": 3,
        "startTimeUnixNano": "1763789160000000000",
        "endTimeUnixNano": "1763789161500000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
            {"key": "gen_ai.conversation.id", "value": {"stringValue": session}}
        ]
    }]}]}]})
    .to_string()
}
