//! Sign-in throttling, shaped so that nobody can lock the real user out by failing on purpose.
//! Within [`THROTTLE_WINDOW`], further attempts are refused (HTTP 429 with `Retry-After`,
//! without checking the password) after:
//!
//! - [`PAIR_FAILURES`] failures for one account from one address;
//! - [`IP_FAILURES`] failures from one address, whatever the accounts;
//! - [`ACCOUNT_FAILURES`] failures for one account from anywhere (a distributed guess) — but
//!   this one only applies to addresses the account has not signed in from successfully in
//!   the last [`KNOWN_ADDRESS_DAYS`] days: the user's usual address keeps its own small
//!   allowance (the pair limit) while the account is under attack.
//!
//! A wrong password and a wrong second factor both count. The account key is the email as
//! typed (normalised), whether or not such a user exists, so throttling reveals nothing about
//! which accounts exist. IPv6 clients are counted by their /64, which one host usually owns
//! whole. A successful sign-in forgives that address's failures for the account, nothing
//! else. An operator clears a throttle with `postern user unlock`.

use std::net::IpAddr;
use std::time::Duration;

use super::Accounts;
use crate::store::StoreError;

/// Failed sign-ins for one account from one address within the window.
pub const PAIR_FAILURES: u32 = 5;
/// Failed sign-ins per client address (IPv6: per /64) within the window.
pub const IP_FAILURES: u32 = 20;
/// Failed sign-ins for one account from all addresses within the window, before addresses
/// the account has not signed in from are refused.
pub const ACCOUNT_FAILURES: u32 = 50;
/// How long an address the account signed in from stays known.
pub const KNOWN_ADDRESS_DAYS: i64 = 90;
/// 15 minutes.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The address failures are counted by: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by /64.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Seconds until one more attempt is allowed, given the failure times within the window
/// (those after `now - THROTTLE_WINDOW`), newest first.
fn wait(times_newest_first: &[i64], limit: u32, now: i64) -> Option<i64> {
    let limit = limit as usize;
    let oldest_counted = *times_newest_first.get(limit - 1)?;
    let free_at = oldest_counted + THROTTLE_WINDOW.as_secs() as i64;
    Some((free_at - now).max(1))
}

impl Accounts {
    /// `Some(wait)` if this account from this address, or the address, has failed too often
    /// lately, or the account has and the address is not one it is known to sign in from.
    pub(crate) async fn throttled(
        &self,
        account: &str,
        ip: IpAddr,
    ) -> Result<Option<Duration>, StoreError> {
        let now = self.now();
        let since = now - THROTTLE_WINDOW.as_secs() as i64;
        let limit = PAIR_FAILURES.max(IP_FAILURES).max(ACCOUNT_FAILURES);
        let recent = self
            .store()
            .recent_signin_failures(account.to_string(), ip_key(ip), since, limit)
            .await?;
        let mut waits = vec![
            wait(&recent.pair, PAIR_FAILURES, now),
            wait(&recent.address, IP_FAILURES, now),
        ];
        if let Some(account_wait) = wait(&recent.account, ACCOUNT_FAILURES, now) {
            // Asked only when the account is under attack, so the common path costs nothing.
            let known_since = now - KNOWN_ADDRESS_DAYS * 24 * 60 * 60;
            let known = self
                .store()
                .is_known_signin_address(account.to_string(), ip_key(ip), known_since)
                .await?;
            waits.push((!known).then_some(account_wait));
        }
        let seconds = waits.into_iter().flatten().max();
        Ok(seconds.map(|s| Duration::from_secs(s as u64)))
    }

    /// `Some(wait)` if the address has failed too often lately (whatever the account).
    pub(crate) async fn address_throttled(
        &self,
        ip: IpAddr,
    ) -> Result<Option<Duration>, StoreError> {
        let now = self.now();
        let since = now - THROTTLE_WINDOW.as_secs() as i64;
        let recent = self
            .store()
            .recent_signin_failures(String::new(), ip_key(ip), since, IP_FAILURES)
            .await?;
        Ok(wait(&recent.address, IP_FAILURES, now).map(|s| Duration::from_secs(s as u64)))
    }

    pub(crate) async fn record_failure(&self, account: &str, ip: IpAddr) -> Result<(), StoreError> {
        let now = self.now();
        self.store()
            .prune_signin_failures(
                now - THROTTLE_WINDOW.as_secs() as i64,
                now - KNOWN_ADDRESS_DAYS * 24 * 60 * 60,
            )
            .await?;
        self.store()
            .record_signin_failure(now, account.to_string(), ip_key(ip))
            .await
    }

    /// A successful sign-in: that address's failures for the account are forgiven and the
    /// address is remembered as one the account signs in from.
    pub(crate) async fn forgive(&self, account: &str, ip: IpAddr) -> Result<(), StoreError> {
        self.store()
            .record_signin_success(self.now(), account.to_string(), ip_key(ip))
            .await
    }

    /// An operator's unlock (`postern user unlock`): forgets the account's failures from
    /// every address and, with `ip`, every failure from that address; audited. Returns how
    /// many failures were forgotten.
    pub async fn unlock(
        &self,
        actor: &super::Actor,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<usize, StoreError> {
        let account = super::normalise_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        let cleared = self
            .store()
            .clear_signin_failures(account.clone(), ip.map(ip_key))
            .await?;
        let detail = match ip {
            Some(ip) => format!("{cleared} failures forgotten, address {}", ip_key(ip)),
            None => format!("{cleared} failures forgotten"),
        };
        self.audit(
            actor,
            super::AuditAction::SignInUnlocked,
            Some(&account),
            None,
            Some(&detail),
        )
        .await?;
        Ok(cleared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_by_host_or_64() {
        assert_eq!(ip_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            ip_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            ip_key("2001:db8:1:2:ffff::1".parse().unwrap()),
            ip_key("2001:db8:1:2::9".parse().unwrap())
        );
    }

    #[test]
    fn the_wait_ends_when_the_oldest_counted_failure_leaves_the_window() {
        let window = THROTTLE_WINDOW.as_secs() as i64;
        assert_eq!(wait(&[50, 40, 30, 20], 5, 60), None);
        assert_eq!(wait(&[50, 40, 30, 20, 10], 5, 60), Some(10 + window - 60));
        assert_eq!(
            wait(&[60, 50, 40, 30, 20, 10], 5, 60),
            Some(20 + window - 60)
        );
        // Failures exactly one window old no longer count: the wait is never zero.
        assert_eq!(wait(&[10, 9, 8, 7, 6], 5, 5 + window), Some(1));
    }
}
