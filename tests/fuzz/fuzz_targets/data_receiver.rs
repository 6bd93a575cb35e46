//! `smtp::data::DataReceiver` against a line-by-line model of RFC 5321 §4.5.2: whatever the
//! split, the message ends at the first `.` CRLF at the start of a line (a line starts at the
//! beginning of the data and after each CRLF, never after a bare CR or LF) and nowhere else;
//! dot-stuffing is undone exactly; a limit that is passed refuses the message; and no more
//! than the size limit is ever held.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use postern::smtp::data::{DataError, DataReceiver};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    max_size: u16,
    max_line: u16,
    /// The lengths in which the data arrives, used in turn (0 counts as 1).
    splits: Vec<u8>,
    data: &'a [u8],
}

/// What the receiver must do with `data`.
struct Expected {
    /// Octets up to and including the terminator, if there is one.
    end: Option<usize>,
    /// The content without the terminator, dots unstuffed.
    body: Vec<u8>,
    /// The longest run of octets up to and including a LF (what the line limit counts).
    longest_line: usize,
}

fn model(data: &[u8]) -> Expected {
    let mut body = Vec::new();
    let mut start = 0;
    let end = loop {
        let line = &data[start..];
        if line.starts_with(b".\r\n") {
            break Some(start + 3);
        }
        // The stuffed dot, if any, is not content.
        let skip = usize::from(line.starts_with(b"."));
        match line.windows(2).position(|w| w == b"\r\n") {
            Some(crlf) => {
                body.extend_from_slice(&line[skip..crlf + 2]);
                start += crlf + 2;
            }
            None => {
                body.extend_from_slice(&line[skip..]);
                break None;
            }
        }
    };
    let framed = &data[..end.unwrap_or(data.len())];
    let longest_line = framed
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    Expected {
        end,
        body,
        longest_line,
    }
}

fuzz_target!(|input: Input<'_>| {
    let max_size = usize::from(input.max_size % 4096);
    let max_line = 3 + usize::from(input.max_line % 1000);
    let expected = model(input.data);

    let mut receiver = DataReceiver::new(max_size, max_line);
    let mut consumed = 0;
    let mut result = None;
    let mut splits = input.splits.iter().cycle();
    while consumed < input.data.len() {
        let len = splits
            .next()
            .map_or(input.data.len(), |&n| usize::from(n.max(1)));
        let chunk = &input.data[consumed..(consumed + len).min(input.data.len())];
        let (used, done) = receiver.ingest(chunk);
        assert!(
            receiver.buffered() <= max_size,
            "{} octets held, limit {max_size}",
            receiver.buffered()
        );
        consumed += used;
        if done.is_some() {
            result = done;
            break;
        }
        assert_eq!(used, chunk.len(), "input left over without an end of data");
    }

    let Some(end) = expected.end else {
        assert!(result.is_none(), "ended without CRLF.CRLF");
        return;
    };
    assert_eq!(
        consumed, end,
        "ended somewhere else than at the first CRLF.CRLF"
    );
    let result = result.expect("CRLF.CRLF did not end the data");
    let too_large = expected.body.len() > max_size;
    let too_long = expected.longest_line > max_line;
    match result {
        Ok(body) => {
            assert!(!too_large && !too_long, "accepted past a limit");
            assert_eq!(body, expected.body, "dot-unstuffing");
        }
        Err(DataError::TooLarge) => assert!(too_large, "TooLarge within the limit"),
        Err(DataError::LineTooLong) => assert!(too_long, "LineTooLong within the limit"),
        Err(DataError::NoMemory) => unreachable!("a receiver without a memory budget"),
    }
});
