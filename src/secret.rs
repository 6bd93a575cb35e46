//! Random secrets and their stored form: 256-bit tokens (session ids, API keys, CSRF
//! secrets, SMTP credentials), human-typable codes (one-time passwords, recovery codes),
//! raw random bytes (TOTP secrets) and SHA-256 digests. Accounts and outbound both draw
//! their secrets here.
//!
//! A fast hash is enough for these because they are long random values, not passwords:
//! nobody can guess a 2^256 (or, for a recovery code, 2^80) preimage from the digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Crockford's base32 alphabet, lower case: no i, l, o or u to misread.
const CODE_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Fills `N` bytes from the operating system's CSPRNG.
///
/// # Panics
///
/// If the operating system has no randomness to give; nothing secure can continue then.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    bytes
}

/// 256 random bits, base64url without padding (43 characters).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// At least 256 random bits as 43 letters and digits: a credential's token, which people paste
/// into shell commands and SMTP clients, where a leading `-` reads as an option (swaks) and
/// `_` or `-` invite mistakes. Bytes ≥ 248 are drawn again, so each of the 62 characters is
/// equally likely (248 = 4 × 62).
pub fn new_alphanumeric_token() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut token = String::with_capacity(43);
    while token.len() < 43 {
        for byte in random_bytes::<64>() {
            if byte < 248 && token.len() < 43 {
                token.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    token
}

/// `groups` groups of `group_len` base32 characters joined by `-`: 5 bits per character.
pub fn human_code(groups: usize, group_len: usize) -> String {
    let mut code = String::with_capacity(groups * (group_len + 1));
    for group in 0..groups {
        if group > 0 {
            code.push('-');
        }
        // 256 is a multiple of 32: masking keeps every character equally likely.
        for byte in random_bytes::<16>().iter().take(group_len) {
            code.push(CODE_ALPHABET[(byte & 31) as usize] as char);
        }
    }
    code
}

/// What a person typed for a [`human_code`]: case, spaces and dashes ignored, and the
/// letters Crockford's alphabet leaves out read as the digits they look like.
pub fn normalise_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        })
        .collect()
}

/// SHA-256, lower-case hex: how session ids, API keys and recovery codes are stored.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_differ() {
        let credential = new_alphanumeric_token();
        assert_eq!(credential.len(), 43);
        assert!(
            credential.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{credential}"
        );
        assert_ne!(credential, new_alphanumeric_token());
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, new_token());
    }

    #[test]
    fn human_codes_have_the_asked_shape_and_read_back() {
        let code = human_code(4, 4);
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        assert!(
            code.chars()
                .all(|c| c == '-' || CODE_ALPHABET.contains(&(c as u8)))
        );
        let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
        assert_eq!(normalise_code(&typed), code.replace('-', ""));
        assert_eq!(normalise_code("IlO0"), "1100");
    }

    #[test]
    fn sha256_hex_is_lower_case_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
