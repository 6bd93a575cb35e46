//! The SMTP server: a sans-IO protocol core ([`session`], [`data`], [`reply`]) under a thin
//! tokio shell ([`server`]), which spools large message content to disk ([`spool`]).
//!
//! This module knows nothing of webhooks, SQLite or HTTP. What happens to a recipient or a
//! message is decided by a [`server::MailHandler`] that the caller supplies.

pub mod admission;
pub mod budget;
pub mod data;
pub mod pace;
pub mod reply;
pub mod server;
pub mod session;
pub mod spool;

pub use reply::Reply;
