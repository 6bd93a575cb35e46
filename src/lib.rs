//! Postern: a self-hosted email appliance.
//!
//! Mail arriving over SMTP is parsed and POSTed to the web app that owns the recipient
//! address, *inside* the SMTP transaction, so the app's HTTP answer becomes the SMTP answer.
//! Every message leaves a metadata row in SQLite that the JSON API shows.
//!
//! The module map, the data flow and the invariants live in `ARCHITECTURE.md` at the
//! repository root; keep both true together.

pub mod accounts;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod data_requests;
pub mod datadir;
pub mod dns;
pub mod inbound;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod outbound;
pub mod privacy;
pub mod retention;
pub mod secret;
pub mod shutdown;
pub mod smtp;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod webhook;

/// The version string printed by `postern --version` and sent as part of the User-Agent.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
