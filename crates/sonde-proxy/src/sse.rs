//! Server-sent events, parsed from chunks as they arrive (a line or an event may be
//! split across chunks anywhere).

/// The largest line kept while it arrives; a longer one is dropped (the bytes still
/// pass through: only the parsing side skips it).
const LINE_LIMIT: usize = 16 * 1024 * 1024;

/// Parses `text/event-stream` bodies fed chunk by chunk.
///
/// ```
/// let mut parser = sonde_proxy::SseParser::default();
/// let mut seen = Vec::new();
/// parser.feed(b"event: ping\nda", |e, d| seen.push((e.map(str::to_owned), d.to_owned())));
/// parser.feed(b"ta: {}\n\n", |e, d| seen.push((e.map(str::to_owned), d.to_owned())));
/// assert_eq!(seen, [(Some("ping".to_owned()), "{}".to_owned())]);
/// ```
#[derive(Debug, Default)]
pub struct SseParser {
    /// The start of a line not yet ended.
    partial: Vec<u8>,
    /// The current event's name.
    event: Option<String>,
    /// The current event's data lines, joined by `\n`.
    data: String,
    /// Whether the current event has any data line.
    has_data: bool,
    /// The partial line ran over [`LINE_LIMIT`]: dropped until its end.
    skipping: bool,
}

impl SseParser {
    /// Feeds `chunk`; calls `on_event(event name, data)` for each event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Option<&str>, &str)) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            if self.skipping {
                self.skipping = false;
                self.partial.clear();
                continue;
            }
            if self.partial.is_empty() {
                self.line(line, &mut on_event);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, &mut on_event);
                whole.clear();
                self.partial = whole;
            }
        }
        if !self.skipping {
            self.partial.extend_from_slice(rest);
            if self.partial.len() > LINE_LIMIT {
                self.partial = Vec::new();
                self.skipping = true;
            }
        }
    }

    /// The stream ended: dispatches an event not closed by a blank line.
    pub fn finish(&mut self, mut on_event: impl FnMut(Option<&str>, &str)) {
        if !self.partial.is_empty() && !self.skipping {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(Option<&str>, &str)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Option<&str>, &str)) {
        if self.has_data {
            on_event(self.event.as_deref(), &self.data);
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut parser = SseParser::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e, d| {
                seen.push((e.map(str::to_owned), d.to_owned()))
            });
        }
        parser.finish(|e, d| seen.push((e.map(str::to_owned), d.to_owned())));
        seen
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let body = b"event: a\r\ndata: 1\r\n\r\n: comment\ndata: x\ndata: y\n\ndata: last";
        let whole = events(&[body]);
        assert_eq!(
            whole,
            [
                (Some("a".into()), "1".into()),
                (None, "x\ny".into()),
                (None, "last".into())
            ]
        );
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(events(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(events(&bytes), whole);
    }
}
