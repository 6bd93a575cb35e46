//! Integration tests: the real server over real sockets.

mod api;
mod callbacks;
mod clients;
mod corpus;
mod delivery;
mod lifecycle;
mod payload;
mod protocol;
mod routing;
mod support;
