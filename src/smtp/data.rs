//! Message content receivers for DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030). No I/O.
//!
//! Framing is strict (design §4.4): the end of DATA is `CRLF . CRLF` and nothing
//! else. A bare LF or bare CR next to a dot is message content, so `\n.\n`, `\r.\r` or
//! `\r\n.\n` can never end one message and start another (SMTP smuggling). Size and line
//! length are enforced while reading: once a limit is passed the rest is scanned for the
//! terminator but not stored, so memory stays bounded by the configured maximum. Buffers
//! grow only as far as their session's [`Reservation`] of the global memory budget allows
//! ([`DataError::NoMemory`] otherwise).

use super::budget::Reservation;

/// Why received content was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// More octets than the maximum message size.
    TooLarge,
    /// A line longer than the line limit (counted up to any LF, CRLF included).
    LineTooLong,
    /// The global memory budget for message content was spent (`452 4.3.1`, temporary).
    NoMemory,
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
    reservation: Reservation,
    /// Octets handed on by [`DataReceiver::drain_into`] (spooled): still counted against
    /// the size limit.
    drained: usize,
}

impl DataReceiver {
    /// A receiver without a memory budget (unlimited but for `max_size`).
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver::with_reservation(max_size, max_line, Reservation::default())
    }

    /// A receiver whose buffer grows only as far as `reservation` can take from its budget.
    pub fn with_reservation(
        max_size: usize,
        max_line: usize,
        reservation: Reservation,
    ) -> DataReceiver {
        DataReceiver {
            framing: Framing::LineStart,
            body: Vec::new(),
            max_size,
            max_line,
            line_len: 0,
            error: None,
            reservation,
            drained: 0,
        }
    }

    /// The budget held for the content returned by [`DataReceiver::ingest`]; held until the
    /// message is handled.
    pub fn take_reservation(&mut self) -> Reservation {
        self.reservation.take()
    }

    /// Octets of content held so far: never more than the size limit.
    pub fn buffered(&self) -> usize {
        self.body.len()
    }

    /// Octets of content handed on so far by [`DataReceiver::drain_into`].
    pub fn drained(&self) -> usize {
        self.drained
    }

    /// Moves the content held so far to the end of `out` (the shell spools it to disk), so
    /// that what [`DataReceiver::ingest`] returns at the end is only the rest. The size
    /// limit still counts what was moved; the buffer keeps its allocation.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
        self.drained += self.body.len();
        self.body.clear();
    }

    /// Feeds octets. Returns how many were consumed and, once `CRLF.CRLF` was seen, the
    /// message (without the terminator) or why it was refused. Octets after the
    /// terminator are left unconsumed: they are the next command.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, Option<Result<Vec<u8>, DataError>>) {
        let mut i = 0;
        while i < input.len() {
            // Inside a line, everything up to the next CR or LF is content as it is: copied
            // in one go (the framing only looks at CR, LF and a dot after them).
            if self.framing == Framing::Text {
                let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                if run > 0 {
                    self.push_text(&input[i..i + run]);
                    i += run;
                    continue;
                }
            }
            let byte = input[i];
            i += 1;
            if self.step(byte) {
                let result = match self.error {
                    Some(error) => Err(error),
                    None => Ok(std::mem::take(&mut self.body)),
                };
                return (i, Some(result));
            }
        }
        (input.len(), None)
    }

    /// Octets inside a line, none of them CR or LF: what [`DataReceiver::step`] does for
    /// each, at once.
    fn push_text(&mut self, text: &[u8]) {
        self.line_len += text.len();
        if self.line_len > self.max_line {
            self.fail(DataError::LineTooLong);
        }
        if self.error.is_some() {
            return;
        }
        if self.drained + self.body.len() + text.len() > self.max_size {
            self.fail(DataError::TooLarge);
            return;
        }
        if !self
            .reservation
            .grow(&mut self.body, text.len(), self.max_size)
        {
            self.fail(DataError::NoMemory);
            return;
        }
        self.body.extend_from_slice(text);
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
        if self.drained + self.body.len() >= self.max_size {
            self.fail(DataError::TooLarge);
            return;
        }
        if self.body.len() == self.body.capacity()
            && !self.reservation.grow(&mut self.body, 1, self.max_size)
        {
            self.fail(DataError::NoMemory);
            return;
        }
        self.body.push(byte);
    }

    fn fail(&mut self, error: DataError) {
        if self.error.is_none() {
            self.error = Some(error);
            self.body = Vec::new();
            self.reservation.release();
        }
    }
}

/// Receives BDAT chunks (RFC 3030): exact octet counts, no stuffing, no line rules.
#[derive(Debug, Default)]
pub struct ChunkReceiver {
    body: Vec<u8>,
    received: usize,
    /// Octets handed on by [`ChunkReceiver::drain_into`] (spooled).
    drained: usize,
    /// Set once the memory budget refused to grow the buffer: the rest is discarded.
    out_of_memory: bool,
    reservation: Reservation,
}

impl ChunkReceiver {
    /// A receiver whose buffer grows only as far as `reservation` can take from its budget.
    pub fn new(reservation: Reservation) -> ChunkReceiver {
        ChunkReceiver {
            reservation,
            ..ChunkReceiver::default()
        }
    }

    /// Appends part of a chunk; past `max_size` octets (or the memory budget) octets are
    /// counted but not kept.
    pub fn push(&mut self, octets: &[u8], max_size: usize) {
        self.received += octets.len();
        if self.received > max_size || self.out_of_memory {
            self.discard();
        } else if self
            .reservation
            .grow(&mut self.body, octets.len(), max_size)
        {
            self.body.extend_from_slice(octets);
        } else {
            self.out_of_memory = true;
            self.discard();
        }
    }

    fn discard(&mut self) {
        self.body = Vec::new();
        self.reservation.release();
    }

    /// The budget held for the content [`ChunkReceiver::finish`] returns.
    pub fn take_reservation(&mut self) -> Reservation {
        self.reservation.take()
    }

    pub fn is_too_large(&self, max_size: usize) -> bool {
        self.received > max_size
    }

    /// Whether the memory budget refused to hold this content.
    pub fn is_out_of_memory(&self) -> bool {
        self.out_of_memory
    }

    pub fn received(&self) -> usize {
        self.received
    }

    /// Octets of content held now (not handed on).
    pub fn buffered(&self) -> usize {
        self.body.len()
    }

    /// Octets handed on so far by [`ChunkReceiver::drain_into`].
    pub fn drained(&self) -> usize {
        self.drained
    }

    /// Moves the content held so far to the end of `out`, as [`DataReceiver::drain_into`].
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
        self.drained += self.body.len();
        self.body.clear();
    }

    pub fn finish(mut self, max_size: usize) -> Result<Vec<u8>, DataError> {
        if self.is_too_large(max_size) {
            Err(DataError::TooLarge)
        } else if self.out_of_memory {
            Err(DataError::NoMemory)
        } else {
            Ok(std::mem::take(&mut self.body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::budget::MemoryBudget;

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

    /// The receiver octet by octet, as it was before runs inside a line were copied at once:
    /// the reference the fast path must agree with.
    fn receive_octet_by_octet(
        input: &[u8],
        max_size: usize,
        max_line: usize,
    ) -> (usize, Option<Result<Vec<u8>, DataError>>) {
        let mut receiver = DataReceiver::new(max_size, max_line);
        for (i, &byte) in input.iter().enumerate() {
            if receiver.step(byte) {
                let result = match receiver.error {
                    Some(error) => Err(error),
                    None => Ok(std::mem::take(&mut receiver.body)),
                };
                return (i + 1, Some(result));
            }
        }
        (input.len(), None)
    }

    #[test]
    fn runs_copied_at_once_match_the_octet_by_octet_receiver() {
        // Inputs drawn from the octets that matter (CR, LF, dot) and plain text, with small
        // limits so that the size and line errors are hit too, fed whole and in two pieces.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..20_000 {
            let len = next() % 64;
            let input: Vec<u8> = (0..len)
                .map(|_| [b'\r', b'\n', b'.', b'a', b'b', b'c'][next() % 6])
                .collect();
            let (max_size, max_line) = (8 + next() % 40, 4 + next() % 20);
            let expected = receive_octet_by_octet(&input, max_size, max_line);
            let mut receiver = DataReceiver::new(max_size, max_line);
            assert_eq!(receiver.ingest(&input), expected, "{input:?}");
            let split = next() % (len + 1);
            let mut receiver = DataReceiver::new(max_size, max_line);
            let (used, done) = receiver.ingest(&input[..split]);
            let got = match done {
                Some(result) => (used, Some(result)),
                None => {
                    let (more, done) = receiver.ingest(&input[split..]);
                    (split + more, done)
                }
            };
            assert_eq!(got, expected, "{input:?} split at {split}");
        }
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
    fn a_spent_budget_refuses_the_message_but_reads_to_its_end() {
        let budget = MemoryBudget::new(20 * 1024);
        let mut r =
            DataReceiver::with_reservation(1 << 20, 1000, Reservation::new(Some(budget.clone())));
        let line = [b'x'; 98];
        for _ in 0..300 {
            assert_eq!(r.ingest(&line).1, None);
            assert_eq!(r.ingest(b"\r\n").1, None);
        }
        assert_eq!(budget.used(), 0, "a refused message holds nothing");
        let (used, result) = r.ingest(b".\r\nQUIT\r\n");
        assert_eq!((used, result), (3, Some(Err(DataError::NoMemory))));

        let mut c = ChunkReceiver::new(Reservation::new(Some(budget.clone())));
        c.push(&[b'x'; 10 * 1024], 1 << 20);
        assert_eq!(budget.used(), 16 * 1024);
        c.push(&[b'x'; 10 * 1024], 1 << 20);
        c.push(b"x", 1 << 20);
        assert_eq!(budget.used(), 0);
        assert_eq!(c.finish(1 << 20), Err(DataError::NoMemory));
    }

    #[test]
    fn accepted_content_keeps_its_reservation_until_taken() {
        let budget = MemoryBudget::new(1 << 20);
        let mut r =
            DataReceiver::with_reservation(1 << 20, 1000, Reservation::new(Some(budget.clone())));
        assert!(matches!(r.ingest(b"hello\r\n.\r\n").1, Some(Ok(_))));
        let held = r.take_reservation();
        drop(r);
        assert_eq!(budget.used(), 16 * 1024);
        drop(held);
        assert_eq!(budget.used(), 0);
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
