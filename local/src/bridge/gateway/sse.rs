//! Server-sent events as providers stream them: `event:` and `data:` fields, a blank line ends
//! an event. Bounded: an event larger than [`MAX_EVENT`] is an error, not a growing buffer.

/// Largest event accepted, in bytes.
pub(super) const MAX_EVENT: usize = 8 << 20;

/// One event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Event {
    /// The `event:` field (empty when absent).
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub(super) struct Parser {
    line: Vec<u8>,
    event: Event,
    has_data: bool,
}

/// An event over [`MAX_EVENT`] bytes.
#[derive(Debug, thiserror::Error)]
#[error("a server-sent event exceeds {MAX_EVENT} bytes")]
pub(super) struct TooLarge;

impl Parser {
    /// Feeds received bytes; complete events are appended to `out`.
    pub(super) fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        for &byte in bytes {
            if byte != b'\n' {
                self.line.push(byte);
                if self.line.len() + self.event.data.len() > MAX_EVENT {
                    return Err(TooLarge);
                }
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            self.line(&line, out);
        }
        Ok(())
    }

    /// Ends the stream: a last event without its blank line still counts.
    pub(super) fn finish(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line(&line, out);
        }
        self.line(b"", out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.event));
            }
            self.event = Event::default();
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event.name = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_should_survive_any_split() {
        let stream = b": keep-alive\r\nevent: a\r\ndata: {\"x\":1}\r\n\r\ndata: one\ndata: two\n\ndata:[DONE]";
        for cut in 0..stream.len() {
            let mut parser = Parser::default();
            let mut out = Vec::new();
            parser.push(&stream[..cut], &mut out).unwrap();
            parser.push(&stream[cut..], &mut out).unwrap();
            parser.finish(&mut out);
            let seen: Vec<(&str, &str)> = out
                .iter()
                .map(|e| (e.name.as_str(), e.data.as_str()))
                .collect();
            assert_eq!(
                seen,
                [("a", "{\"x\":1}"), ("", "one\ntwo"), ("", "[DONE]")],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_events_should_be_refused() {
        let mut parser = Parser::default();
        let big = vec![b'x'; MAX_EVENT + 1];
        assert!(parser.push(&big, &mut Vec::new()).is_err());
    }
}
