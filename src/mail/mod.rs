//! Mail as data, for both directions: parsing a message into [`message::ParsedMessage`] and
//! its MIME leaves, the new text of a reply ([`reply_text`]), mailboxes and envelope
//! addresses ([`address`]), and byte-level header-field work ([`fields`]: unfold, remove,
//! the `Received:` line). Pure functions, no I/O; the only module that uses mail-parser.

pub mod address;
pub mod fields;
pub mod message;
pub mod reply_text;
