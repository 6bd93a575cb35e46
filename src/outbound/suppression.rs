//! The suppression list (contract §6.11): addresses no mail is sent to. A hard bounce adds the
//! address (`outbound::bounce`), and so does a complaint (`outbound::complaint`); operators add and remove addresses through the API and
//! `postern suppression`. A message to a listed address is still accepted: that recipient
//! becomes `suppressed` with a `suppressed` event and is never attempted (the store checks
//! the list when it enqueues). Addresses compare without case.

use super::Outbound;
use crate::mail::address::{normalise_address, valid_address};
use crate::store::{StoreError, SuppressionRow};

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("{0:?} is not an email address (user@example.com)")]
    BadAddress(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `user@example.com`: one `@`, something on both sides, no spaces or brackets, at most
/// 254 characters (RFC 5321 §4.5.3.1.3). The domain is lower-cased.
pub fn parse_address(text: &str) -> Result<String, SuppressionError> {
    // The recipients' own rule (`mail::address::valid_address`): anything listed here could be a
    // recipient, and nothing that could be one is refused.
    let text = text.trim();
    match text.len() <= 254 && valid_address(text) {
        true => Ok(normalise_address(text)),
        false => Err(SuppressionError::BadAddress(text.to_string())),
    }
}

impl Outbound {
    pub async fn suppressions(&self) -> Result<Vec<SuppressionRow>, StoreError> {
        self.store.suppressions().await
    }

    /// Adds `address` (reason `manual` unless given); false when it was listed already.
    pub async fn suppress(
        &self,
        address: &str,
        reason: Option<&str>,
    ) -> Result<(String, bool), SuppressionError> {
        let address = parse_address(address)?;
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("manual");
        let added = self
            .store
            .add_suppression(&address, reason, self.clock.unix())
            .await?;
        Ok((address, added))
    }

    /// Takes `address` off the list; false when it was not on it.
    pub async fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        self.store.remove_suppression(address.trim()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_their_domain_lower_cased() {
        assert_eq!(
            parse_address(" User@Example.COM ").unwrap(),
            "User@example.com"
        );
        for bad in [
            "",
            "nobody",
            "@example.com",
            "a@",
            "a b@example.com",
            "<a@b.c>",
            "a@b@c",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
