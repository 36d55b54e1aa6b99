//! The output a terminal keeps for clients that (re)connect: the last [`LIMIT`] bytes of text,
//! addressed by OpenCode's cursor. A cursor counts UTF-16 code units of all output since the
//! terminal started (what OpenCode's web client adds up with `string.length`), so a client
//! that reconnects with the cursor it last saw gets exactly the output it missed.

use std::collections::VecDeque;

/// Bytes of text kept per terminal (OpenCode keeps 2 Mi characters).
pub const LIMIT: usize = 2 << 20;

/// Kept output, oldest first.
#[derive(Debug, Default)]
pub struct Scrollback {
    /// `(cursor at the chunk's start, chunk)`.
    chunks: VecDeque<(u64, String)>,
    /// Bytes held in `chunks`.
    bytes: usize,
    /// Cursor after the newest output.
    end: u64,
}

impl Scrollback {
    /// Cursor after everything written so far.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends output, dropping the oldest chunks beyond `limit` bytes.
    pub fn push(&mut self, text: &str, limit: usize) {
        if text.is_empty() {
            return;
        }
        let start = self.end;
        self.end += text.encode_utf16().count() as u64;
        self.bytes += text.len();
        self.chunks.push_back((start, text.to_owned()));
        while self.bytes > limit && self.chunks.len() > 1 {
            if let Some((_, dropped)) = self.chunks.pop_front() {
                self.bytes -= dropped.len();
            }
        }
    }

    /// Output from `cursor` on (from the oldest kept output when `cursor` is older; nothing when
    /// it is at or past the end).
    pub fn since(&self, cursor: u64) -> String {
        let mut out = String::new();
        for (start, chunk) in &self.chunks {
            let units = chunk.encode_utf16().count() as u64;
            if start + units <= cursor {
                continue;
            }
            if *start >= cursor {
                out.push_str(chunk);
            } else {
                out.push_str(skip_units(chunk, cursor - start));
            }
        }
        out
    }

    /// Frees the text (the terminal has ended); the cursor stays.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }
}

/// `text` without its first `units` UTF-16 code units (rounded up to a whole character).
fn skip_units(text: &str, units: u64) -> &str {
    let mut seen = 0u64;
    for (index, c) in text.char_indices() {
        if seen >= units {
            return &text[index..];
        }
        seen += c.len_utf16() as u64;
    }
    ""
}

/// Turns bytes read from the terminal into text, holding back an incomplete UTF-8 sequence at
/// the end until its rest arrives; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// The text of `bytes` (with what was held back before).
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::with_capacity(self.pending.len());
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    // Checked by from_utf8 just above.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match err.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &after[bad..];
                        }
                        // Incomplete sequence at the end: keep it for the next read.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_should_return_exactly_what_follows_the_cursor() {
        let mut sb = Scrollback::default();
        sb.push("hello ", LIMIT);
        sb.push("wörld", LIMIT);
        assert_eq!(sb.end(), 11);
        assert_eq!(sb.since(0), "hello wörld");
        assert_eq!(sb.since(6), "wörld");
        assert_eq!(sb.since(8), "rld");
        assert_eq!(sb.since(11), "");
        assert_eq!(sb.since(99), "");
    }

    #[test]
    fn cursor_should_count_utf16_units_like_the_web_client() {
        let mut sb = Scrollback::default();
        sb.push("a😀b", LIMIT);
        assert_eq!(sb.end(), 4);
        assert_eq!(sb.since(3), "b");
    }

    #[test]
    fn old_output_should_be_dropped_beyond_the_limit() {
        let mut sb = Scrollback::default();
        for _ in 0..10 {
            sb.push("0123456789", 25);
        }
        assert_eq!(sb.end(), 100);
        // Kept: the newest chunks within 25 bytes.
        assert_eq!(sb.since(0), "01234567890123456789");
        assert_eq!(sb.since(95), "56789");
    }

    #[test]
    fn decoder_should_join_characters_split_across_reads() {
        let mut decoder = Utf8Decoder::default();
        let bytes = "ä€😀".as_bytes();
        let mut text = String::new();
        for byte in bytes {
            text.push_str(&decoder.decode(&[*byte]));
        }
        assert_eq!(text, "ä€😀");
        assert_eq!(decoder.decode(b"\xffok"), "\u{FFFD}ok");
    }
}
