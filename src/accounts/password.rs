//! Passwords: argon2id PHC strings, the rules for new passwords, generated one-time
//! passwords.
//!
//! Production parameters are OWASP's first argon2id choice (19 MiB, 2 passes, 1 lane; the
//! argon2 crate's defaults). A PHC string records its own parameters, so verification always
//! uses those the hash was made with; after a successful sign-in a hash made with other
//! parameters (an older default, or the tests' cheap ones) is replaced by one made with the
//! current parameters ([`Hasher::needs_rehash`]). Hashing runs on tokio's blocking pool.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::secret;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest, in bytes: enough for any passphrase, and a bound on hashing work.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    pub lanes: u32,
}

impl PasswordParams {
    /// m = 19 MiB, t = 2, p = 1 (OWASP Password Storage Cheat Sheet; about 20 ms with
    /// optimisation on this project's 2-core machine).
    pub const PRODUCTION: PasswordParams = PasswordParams {
        memory_kib: Params::DEFAULT_M_COST,
        iterations: Params::DEFAULT_T_COST,
        lanes: Params::DEFAULT_P_COST,
    };

    /// The cheapest argon2id allows (8 KiB, one pass). For tests only: hashes made with it
    /// protect nothing. Production code paths use [`PasswordParams::PRODUCTION`].
    #[doc(hidden)]
    pub const fn insecure_for_tests() -> PasswordParams {
        PasswordParams {
            memory_kib: 8,
            iterations: 1,
            lanes: 1,
        }
    }

    fn argon2(self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, None)
            .expect("password parameters are within argon2's limits");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams::PRODUCTION
    }
}

/// Hashes and verifies passwords with one set of parameters.
#[derive(Clone)]
pub(crate) struct Hasher {
    params: PasswordParams,
    /// A hash to verify against when there is no such user, so that an unknown email takes
    /// as long to refuse as a wrong password.
    dummy: Arc<OnceLock<String>>,
}

impl Hasher {
    pub(crate) fn new(params: PasswordParams) -> Hasher {
        Hasher {
            params,
            dummy: Arc::default(),
        }
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a fresh random salt.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, String> {
        let params = self.params;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_now(params, &password))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Whether `password` matches `phc`; `None` for `phc` verifies against a dummy hash and
    /// answers `false`, taking the same time.
    pub(crate) async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let params = self.params;
        let dummy = self.dummy.clone();
        let password = password.to_string();
        let phc = phc.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let (phc, real) = match phc {
                Some(phc) => (phc, true),
                None => {
                    let dummy = dummy.get_or_init(|| {
                        hash_now(params, "not anybody's password").expect("hashing works")
                    });
                    (dummy.clone(), false)
                }
            };
            let matches = params
                .argon2()
                .verify_password(password.as_bytes(), phc.as_str())
                .is_ok();
            matches && real
        })
        .await
        .unwrap_or(false)
    }

    /// Whether `phc` was made otherwise than [`Hasher::hash`] would make it now: another
    /// algorithm or version, other cost parameters, or a string that does not parse.
    pub(crate) fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm.as_str() != Algorithm::Argon2id.as_str()
            || hash.version != Some(Version::V0x13 as u32)
            || params.m_cost() != self.params.memory_kib
            || params.t_cost() != self.params.iterations
            || params.p_cost() != self.params.lanes
    }
}

fn hash_now(params: PasswordParams, password: &str) -> Result<String, String> {
    params
        .argon2()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// The rules for a password someone chose; the error says what is wrong.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "passwords need at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "passwords may have at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    if password.trim() != password {
        return Err("passwords may not start or end with spaces".into());
    }
    Ok(())
}

/// A generated one-time password: 20 base32 characters (100 bits) in groups of five.
pub(crate) fn generate() -> String {
    secret::human_code(4, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let hasher = Hasher::new(PasswordParams::insecure_for_tests());
        let phc = hasher.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(hasher.verify("correct horse battery", Some(&phc)).await);
        assert!(!hasher.verify("correct horse batterY", Some(&phc)).await);
        assert!(!hasher.verify("correct horse battery", None).await);
        assert_ne!(
            phc,
            hasher.hash("correct horse battery").await.unwrap(),
            "salted"
        );
        // Verification follows the hash's own parameters, whatever the hasher's.
        let strong = Hasher::new(PasswordParams {
            memory_kib: 64,
            iterations: 2,
            lanes: 1,
        });
        assert!(strong.verify("correct horse battery", Some(&phc)).await);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_need_rehashing() {
        let cheap = Hasher::new(PasswordParams::insecure_for_tests());
        let phc = cheap.hash("correct horse battery").await.unwrap();
        assert!(!cheap.needs_rehash(&phc));
        for other in [
            PasswordParams {
                memory_kib: 16,
                ..PasswordParams::insecure_for_tests()
            },
            PasswordParams {
                iterations: 2,
                ..PasswordParams::insecure_for_tests()
            },
            PasswordParams {
                lanes: 2,
                memory_kib: 16,
                ..PasswordParams::insecure_for_tests()
            },
            PasswordParams::PRODUCTION,
        ] {
            assert!(Hasher::new(other).needs_rehash(&phc), "{other:?}");
        }
        // Another algorithm or version with the same costs, and garbage.
        let argon2i = phc.replace("$argon2id$", "$argon2i$");
        assert!(cheap.needs_rehash(&argon2i));
        let v16 = phc.replace("$v=19$", "$v=16$");
        assert!(cheap.needs_rehash(&v16));
        assert!(cheap.needs_rehash("not a PHC string"));
    }

    #[test]
    fn production_parameters_are_owasps() {
        assert_eq!(
            PasswordParams::PRODUCTION,
            PasswordParams {
                memory_kib: 19 * 1024,
                iterations: 2,
                lanes: 1
            }
        );
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("twelve chars").is_ok());
        assert!(check_new_password(" twelve chars").is_err());
        assert!(check_new_password(&"x".repeat(1025)).is_err());
        let generated = generate();
        assert_eq!(generated.len(), 23);
        assert!(check_new_password(&generated).is_ok());
    }
}
