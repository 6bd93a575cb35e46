//! Integration tests: the real server over real sockets.

mod api;
mod auth;
mod clients;
mod delivery;
mod lifecycle;
mod payload;
mod protocol;
mod support;
