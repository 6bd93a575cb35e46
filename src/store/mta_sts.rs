//! MTA-STS policies of recipient domains (RFC 8461), kept so that a restart does not forget
//! an `enforce` policy before its `max_age` (§5): the policy file as fetched, the `_mta-sts`
//! TXT id it was fetched for and when. `outbound::mta_sts` parses and decides; this only
//! stores.

use rusqlite::OptionalExtension;

use super::{Store, StoreError};

/// One domain's policy as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub domain: String,
    pub id: String,
    /// The policy file's text.
    pub policy: String,
    /// Unix seconds.
    pub fetched_at: i64,
}

impl Store {
    /// The policy last fetched for `domain`, if any.
    pub async fn mta_sts_policy(&self, domain: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let domain = domain.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT domain, id, policy, fetched_at FROM mta_sts_policies WHERE domain = ?1",
                    [domain],
                    |row| {
                        Ok(StoredPolicy {
                            domain: row.get(0)?,
                            id: row.get(1)?,
                            policy: row.get(2)?,
                            fetched_at: row.get(3)?,
                        })
                    },
                )
                .optional()
        })
        .await
    }

    /// Keeps `policy` as its domain's, replacing the one before.
    pub async fn save_mta_sts_policy(&self, policy: StoredPolicy) -> Result<(), StoreError> {
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO mta_sts_policies (domain, id, policy, fetched_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (domain) DO UPDATE
                 SET id = excluded.id, policy = excluded.policy, fetched_at = excluded.fetched_at",
                rusqlite::params![policy.domain, policy.id, policy.policy, policy.fetched_at],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_policy_is_kept_per_domain_and_replaced() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.mta_sts_policy("dest.test").await.unwrap(), None);
        let first = StoredPolicy {
            domain: "dest.test".into(),
            id: "one".into(),
            policy: "version: STSv1\nmode: enforce\n".into(),
            fetched_at: 100,
        };
        store.save_mta_sts_policy(first.clone()).await.unwrap();
        assert_eq!(
            store.mta_sts_policy("dest.test").await.unwrap(),
            Some(first.clone())
        );
        let second = StoredPolicy {
            id: "two".into(),
            fetched_at: 200,
            ..first
        };
        store.save_mta_sts_policy(second.clone()).await.unwrap();
        assert_eq!(
            store.mta_sts_policy("dest.test").await.unwrap(),
            Some(second)
        );
        assert_eq!(store.mta_sts_policy("other.test").await.unwrap(), None);
    }
}
