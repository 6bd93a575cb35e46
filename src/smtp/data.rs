//! Message content receivers for DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030). No I/O.
//!
//! Framing is strict (design.md invariant 4): the end of DATA is `CRLF . CRLF` and nothing
//! else. A bare LF or bare CR next to a dot is message content, so `\n.\n`, `\r.\r` or
//! `\r\n.\n` can never end one message and start another (SMTP smuggling). Size and line
//! length are enforced while reading: once a limit is passed the rest is scanned for the
//! terminator but not stored, so memory stays bounded by the configured maximum.

/// Why received content was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// More octets than the maximum message size.
    TooLarge,
    /// A line longer than the line limit (counted up to any LF, CRLF included).
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// At the start of a line: right after CRLF, or the first octet of the data.
    LineStart,
    /// A `.` at the start of a line, not yet stored.
    Dot,
    /// `.` `CR` at the start of a line.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, right after a CR.
    Cr,
}

/// Receives the content of a DATA command, undoing dot-stuffing (RFC 5321 §4.5.2).
#[derive(Debug)]
pub struct DataReceiver {
    framing: Framing,
    body: Vec<u8>,
    max_size: usize,
    max_line: usize,
    line_len: usize,
    error: Option<DataError>,
}

impl DataReceiver {
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            framing: Framing::LineStart,
            body: Vec::with_capacity(max_size.min(16 * 1024)),
            max_size,
            max_line,
            line_len: 0,
            error: None,
        }
    }

    /// Octets of content held so far: never more than the size limit.
    pub fn buffered(&self) -> usize {
        self.body.len()
    }

    /// Feeds octets. Returns how many were consumed and, once `CRLF.CRLF` was seen, the
    /// message (without the terminator) or why it was refused. Octets after the
    /// terminator are left unconsumed: they are the next command.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Result<Vec<u8>, DataError>>) {
        for (i, &byte) in input.iter().enumerate() {
            if self.step(byte) {
                let result = match self.error {
                    Some(error) => Err(error),
                    None => Ok(std::mem::take(&mut self.body)),
                };
                return (i + 1, Some(result));
            }
        }
        (input.len(), None)
    }

    /// Advances the framing by one octet; true at the end of the data.
    fn step(&mut self, byte: u8) -> bool {
        self.count_line(byte);
        self.framing = match (self.framing, byte) {
            (Framing::LineStart, b'.') => Framing::Dot,
            (Framing::Dot, b'\r') => Framing::DotCr,
            (Framing::DotCr, b'\n') => return true,
            // A line that starts with a dot and has more text: the dot was stuffing.
            (Framing::DotCr, b'\r') => {
                // The CR held since the dot, then this one.
                self.push(b'\r');
                self.push(b'\r');
                Framing::Cr
            }
            (Framing::DotCr, other) => {
                self.push(b'\r');
                self.push(other);
                Framing::Text
            }
            (Framing::Cr, b'\n') => {
                self.push(b'\n');
                Framing::LineStart
            }
            (_, b'\r') => {
                self.push(b'\r');
                Framing::Cr
            }
            (_, other) => {
                self.push(other);
                Framing::Text
            }
        };
        false
    }

    fn count_line(&mut self, byte: u8) {
        self.line_len += 1;
        if self.line_len > self.max_line {
            self.fail(DataError::LineTooLong);
        }
        if byte == b'\n' {
            self.line_len = 0;
        }
    }

    fn push(&mut self, byte: u8) {
        if self.error.is_some() {
            return;
        }
        if self.body.len() >= self.max_size {
            self.fail(DataError::TooLarge);
            return;
        }
        self.body.push(byte);
    }

    fn fail(&mut self, error: DataError) {
        if self.error.is_none() {
            self.error = Some(error);
            self.body = Vec::new();
        }
    }
}

/// Receives BDAT chunks (RFC 3030): exact octet counts, no stuffing, no line rules.
#[derive(Debug, Default)]
pub struct ChunkReceiver {
    body: Vec<u8>,
    received: usize,
}

impl ChunkReceiver {
    /// Appends part of a chunk; past `max_size` octets are counted but not kept.
    pub fn push(&mut self, octets: &[u8], max_size: usize) {
        self.received += octets.len();
        if self.received <= max_size {
            self.body.extend_from_slice(octets);
        } else {
            self.body = Vec::new();
        }
    }

    pub fn is_too_large(&self, max_size: usize) -> bool {
        self.received > max_size
    }

    pub fn received(&self) -> usize {
        self.received
    }

    pub fn finish(self, max_size: usize) -> Result<Vec<u8>, DataError> {
        if self.is_too_large(max_size) {
            Err(DataError::TooLarge)
        } else {
            Ok(self.body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(input: &[u8]) -> (usize, Option<Result<Vec<u8>, DataError>>) {
        DataReceiver::new(1 << 20, 1000).ingest(input)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let (used, result) = receive(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert_eq!(result, Some(Ok(b"Subject: x\r\n\r\nhello\r\n".to_vec())));
        assert_eq!(used, 24);
    }

    #[test]
    fn smuggling_sequences_are_content() {
        for seq in [&b"\n.\n"[..], b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"] {
            let mut input = b"a".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n");
            let (used, result) = receive(&input);
            assert_eq!(result, None, "{seq:?} must not end the data");
            assert_eq!(used, input.len());
        }
    }

    #[test]
    fn smuggled_terminator_stays_inside_the_message() {
        let mut r = DataReceiver::new(1 << 20, 1000);
        let (_, none) = r.ingest(b"a\r\n.\nMAIL FROM:<evil@x>\r\n");
        assert_eq!(none, None);
        let (_, done) = r.ingest(b".\r\n");
        assert_eq!(done, Some(Ok(b"a\r\n\nMAIL FROM:<evil@x>\r\n".to_vec())));
    }

    #[test]
    fn dot_unstuffing() {
        let (_, result) = receive(b"..leading\r\n.\r\n");
        assert_eq!(result, Some(Ok(b".leading\r\n".to_vec())));
        let (_, result) = receive(b"a\r\n...\r\n.\r\n");
        assert_eq!(result, Some(Ok(b"a\r\n..\r\n".to_vec())));
        // A bare LF does not start a line, so its dot is not unstuffed.
        let (_, result) = receive(b"a\n..b\r\n.\r\n");
        assert_eq!(result, Some(Ok(b"a\n..b\r\n".to_vec())));
        // A line of just "." ended by bare CR + text keeps the CR.
        let (_, result) = receive(b".\rx\r\n.\r\n");
        assert_eq!(result, Some(Ok(b"\rx\r\n".to_vec())));
        // ... and both CRs of ".\r\r" (found by the data_receiver fuzzer).
        let (_, result) = receive(b".\r\r\n.\r\n");
        assert_eq!(result, Some(Ok(b"\r\r\n".to_vec())));
    }

    #[test]
    fn empty_message() {
        assert_eq!(receive(b".\r\n").1, Some(Ok(Vec::new())));
    }

    #[test]
    fn split_at_every_position() {
        let input = b"Subject: s\r\n\r\n..x\r\n\r\n.y\r\n.\r\nNEXT";
        let expected = b"Subject: s\r\n\r\n.x\r\n\r\ny\r\n".to_vec();
        for split in 0..input.len() {
            let mut r = DataReceiver::new(1 << 20, 1000);
            let (a, first) = r.ingest(&input[..split]);
            let result = match first {
                Some(result) => (a, result),
                None => {
                    let (b, second) = r.ingest(&input[split..]);
                    (a + b, second.expect("terminator is in the input"))
                }
            };
            assert_eq!(
                result,
                (input.len() - 4, Ok(expected.clone())),
                "split {split}"
            );
        }
    }

    #[test]
    fn size_limit_while_reading() {
        let mut r = DataReceiver::new(10, 1000);
        let (_, result) = r.ingest(b"0123456789\r\n.\r\n");
        assert_eq!(result, Some(Err(DataError::TooLarge)));
        let mut r = DataReceiver::new(12, 1000);
        let (_, result) = r.ingest(b"0123456789\r\n.\r\n");
        assert_eq!(result, Some(Ok(b"0123456789\r\n".to_vec())));
    }

    #[test]
    fn oversize_data_is_not_buffered() {
        let mut r = DataReceiver::new(100, 1 << 20);
        for _ in 0..1000 {
            assert_eq!(r.ingest(&[b'x'; 1000]).1, None);
        }
        assert!(r.body.capacity() <= 16 * 1024);
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.ingest(b"\r\n.\r\n").1, Some(Err(DataError::TooLarge)));
    }

    #[test]
    fn line_limit_counts_crlf() {
        let ok = [vec![b'x'; 998], b"\r\n.\r\n".to_vec()].concat();
        assert!(matches!(receive(&ok).1, Some(Ok(_))));
        let long = [vec![b'x'; 999], b"\r\n.\r\n".to_vec()].concat();
        assert_eq!(receive(&long).1, Some(Err(DataError::LineTooLong)));
    }

    #[test]
    fn chunks_count_past_the_limit() {
        let mut c = ChunkReceiver::default();
        c.push(b"12345", 8);
        c.push(b"6789", 8);
        assert!(c.is_too_large(8));
        assert_eq!(c.finish(8), Err(DataError::TooLarge));
    }
}
