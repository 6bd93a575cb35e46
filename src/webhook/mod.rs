//! Webhooks: Postern's HTTP client for every POST it makes to a customer's app — inbound
//! messages to their target, the authorization and error callbacks, and the outbound events
//! webhook — and the classification of the answer ([`Outcome`]). Callers build the
//! [`Payload`]; this module knows nothing of mail. `signature` signs a POST the Standard
//! Webhooks way; `signing` keeps whose secret signs which POST. The only module that uses reqwest
//! (OIDC sign-in keeps its own client in `accounts::oidc`).

pub mod client;
pub mod redirect;
pub mod signature;
pub mod signing;

pub use client::{
    Attempt, Deliverer, Delivery, IDEMPOTENCY_KEY, KEPT_BODY, MAX_REDIRECTS, Outcome, PostOptions,
};
pub use redirect::{RedirectPolicy, Refusal};
pub use signing::{Owner, Signing};

/// A ready request body.
#[derive(Debug, Clone)]
pub struct Payload {
    /// `application/json`, or `multipart/form-data; boundary=…`.
    pub content_type: String,
    pub body: Vec<u8>,
}
