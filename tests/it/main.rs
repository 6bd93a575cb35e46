//! Integration tests: the real server over real sockets.

mod accounts;
mod address_pages;
mod addresses;
mod admin_pages;
mod api;
mod auth;
mod browser;
mod callbacks;
mod clients;
mod corpus;
mod dashboard;
mod delivery;
mod dkim;
mod hostile;
mod lifecycle;
mod oidc;
mod outbound_events;
mod outbound_pages;
mod payload;
mod protocol;
mod routing;
mod send_api;
mod submission;
mod submission_outbound;
mod support;
mod users_api;
