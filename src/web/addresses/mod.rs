//! The managed addresses and domains on the web, over `inbound::managed` (which holds every
//! rule): `api` as JSON under `/api/addresses` and `/api/domains`, `pages` as the dashboard's
//! forms under `/addresses` and `/domains`. Both are written once, generic over the entry
//! kind (`inbound::managed::Kind`); the kinds differ here only in their form fields and
//! list lines (`pages::PageKind`).

pub(super) mod api;
pub(super) mod pages;
