//! MTA-STS (RFC 8461) as data, no I/O: the `_mta-sts` TXT record, the policy file a
//! domain serves at `https://mta-sts.<domain>/.well-known/mta-sts.txt`, and which MX host
//! names a policy allows. `discovery` does the lookups, the fetch and the cache; the worker
//! turns an `enforce` policy into verified TLS to an allowed MX or no delivery.

use std::fmt;

pub mod discovery;

/// The largest policy file read (RFC 8461 §3.3: senders may refuse more than 64 KiB).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The longest `max_age` a policy may ask for (RFC 8461 §3.2: about one year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of senders (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to an allowed MX over TLS with a verified certificate, else not at all.
    Enforce,
    /// Deliver as usual; report (here: log) what `enforce` would have refused.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        match text {
            "enforce" => Some(Mode::Enforce),
            "testing" => Some(Mode::Testing),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain's policy, as its policy file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Allowed MX host names, lower case, no trailing dot; `*.example.com` allows any one
    /// label in front of `example.com`.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached (at most [`MAX_AGE_LIMIT`]).
    pub max_age: u64,
}

/// Why a TXT record or a policy file was refused (and so treated as no policy, RFC 8461 §5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the TXT record does not start with v=STSv1")]
    TxtVersion,
    #[error("the TXT record has no valid id (1 to 32 letters and digits)")]
    TxtId,
    #[error("the policy is served as {0:?}, not text/plain")]
    ContentType(String),
    #[error("the policy is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge,
    #[error("the policy is not UTF-8 text")]
    NotText,
    #[error("the policy has no \"version: STSv1\" line")]
    Version,
    #[error("the policy has no valid mode (enforce, testing or none)")]
    Mode,
    #[error("the policy's max_age is missing or not a number from 0 to {MAX_AGE_LIMIT}")]
    MaxAge,
    #[error("the policy's mode {0} needs at least one mx line")]
    NoMx(Mode),
    #[error("the policy's mx pattern {0:?} is not a host name or *.host name")]
    BadMx(String),
}

/// The id of a `_mta-sts` TXT record (`v=STSv1; id=20240101T000000;`); other fields are
/// ignored, as RFC 8461 §3.1 asks.
pub fn txt_id(record: &str) -> Result<String, PolicyError> {
    let mut fields = record.split(';').map(str::trim);
    if fields.next() != Some("v=STSv1") {
        return Err(PolicyError::TxtVersion);
    }
    let id = fields
        .filter_map(|field| field.split_once('='))
        .find(|(key, _)| key.trim() == "id")
        .map(|(_, value)| value.trim())
        .ok_or(PolicyError::TxtId)?;
    let valid = (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    match valid {
        true => Ok(id.to_string()),
        false => Err(PolicyError::TxtId),
    }
}

/// Checks what the HTTPS answer says of its body before it is read: `text/plain` (any
/// parameters), at most [`MAX_POLICY_BYTES`] when a length is given.
pub fn check_answer(content_type: Option<&str>, length: Option<u64>) -> Result<(), PolicyError> {
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if !media.eq_ignore_ascii_case("text/plain") {
        return Err(PolicyError::ContentType(
            content_type.unwrap_or_default().to_string(),
        ));
    }
    match length {
        Some(length) if length > MAX_POLICY_BYTES as u64 => Err(PolicyError::TooLarge),
        _ => Ok(()),
    }
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines ended by LF or CRLF; unknown
/// keys ignored; the first of a repeated key counts, except `mx`, which may repeat.
pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_matches([' ', '\t']);
        match key {
            "version" => _ = version.get_or_insert(value),
            "mode" => _ = mode.get_or_insert(value),
            "max_age" => _ = max_age.get_or_insert(value),
            "mx" => mx.push(mx_pattern(value)?),
            _ => {}
        }
    }
    if version != Some("STSv1") {
        return Err(PolicyError::Version);
    }
    let mode = mode.and_then(Mode::parse).ok_or(PolicyError::Mode)?;
    let max_age = max_age
        .filter(|age| (1..=10).contains(&age.len()) && age.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|age| age.parse::<u64>().ok())
        .filter(|age| *age <= MAX_AGE_LIMIT)
        .ok_or(PolicyError::MaxAge)?;
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::NoMx(mode));
    }
    Ok(Policy { mode, mx, max_age })
}

/// One `mx` value: a host name, or `*.` and a host name; lower case, no trailing dot.
fn mx_pattern(value: &str) -> Result<String, PolicyError> {
    let pattern = value.trim_end_matches('.').to_ascii_lowercase();
    let host = pattern.strip_prefix("*.").unwrap_or(&pattern);
    match crate::dns::is_domain_name(host) {
        true => Ok(pattern),
        false => Err(PolicyError::BadMx(value.to_string())),
    }
}

impl Policy {
    /// Whether the MX host `host` is one the policy allows: equal to a pattern, or one label
    /// followed by a wildcard pattern's rest (`*.example.com` allows `mx.example.com`, not
    /// `a.b.example.com` nor `example.com`). Case and a trailing dot do not matter.
    pub fn allows(&self, host: &str) -> bool {
        self.mx
            .iter()
            .any(|pattern| crate::dns::name_matches(pattern, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENFORCE: &str =
        "version: STSv1\nmode: enforce\nmx: mx.dest.test\nmx: *.backup.test\nmax_age: 86400\n";

    #[test]
    fn a_policy_parses_with_lf_or_crlf_and_ignores_unknown_keys() {
        let expected = Policy {
            mode: Mode::Enforce,
            mx: vec!["mx.dest.test".into(), "*.backup.test".into()],
            max_age: 86400,
        };
        assert_eq!(parse(ENFORCE.as_bytes()).unwrap(), expected);
        let crlf = ENFORCE.replace('\n', "\r\n");
        assert_eq!(parse(crlf.as_bytes()).unwrap(), expected);
        let extra = format!("colour: blue\n{ENFORCE}future_key: x:y\nno colon here\n");
        assert_eq!(parse(extra.as_bytes()).unwrap(), expected);
        let no_final_newline = ENFORCE.trim_end();
        assert_eq!(parse(no_final_newline.as_bytes()).unwrap(), expected);
        let spaced = "version:STSv1\nmode:\ttesting  \nmx:  MX.Dest.Test.\nmax_age: 0";
        let policy = parse(spaced.as_bytes()).unwrap();
        assert_eq!(
            (policy.mode, policy.mx, policy.max_age),
            (Mode::Testing, vec!["mx.dest.test".into()], 0)
        );
    }

    #[test]
    fn the_first_of_a_repeated_key_counts() {
        let body =
            "version: STSv1\nmode: testing\nmode: enforce\nmx: a.test\nmax_age: 5\nmax_age: 9";
        let policy = parse(body.as_bytes()).unwrap();
        assert_eq!((policy.mode, policy.max_age), (Mode::Testing, 5));
    }

    #[test]
    fn a_policy_without_version_mode_or_mx_is_refused() {
        let without = |key: &str| {
            ENFORCE
                .lines()
                .filter(|line| !line.starts_with(key))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            parse(without("version").as_bytes()),
            Err(PolicyError::Version)
        );
        let wrong_version = ENFORCE.replace("STSv1", "STSv2");
        assert_eq!(parse(wrong_version.as_bytes()), Err(PolicyError::Version));
        assert_eq!(parse(without("mode").as_bytes()), Err(PolicyError::Mode));
        let shouting = ENFORCE.replace("enforce", "ENFORCE");
        assert_eq!(parse(shouting.as_bytes()), Err(PolicyError::Mode));
        assert_eq!(
            parse(without("mx").as_bytes()),
            Err(PolicyError::NoMx(Mode::Enforce))
        );
        let none = "version: STSv1\nmode: none\nmax_age: 60\n";
        assert_eq!(parse(none.as_bytes()).unwrap().mode, Mode::None);
        // Keys are case-sensitive: "Version" is an unknown key.
        let capital = ENFORCE.replace("version", "Version");
        assert_eq!(parse(capital.as_bytes()), Err(PolicyError::Version));
    }

    #[test]
    fn max_age_is_bounded() {
        let with_age = |age: &str| ENFORCE.replace("86400", age);
        assert_eq!(
            parse(with_age("31557600").as_bytes()).unwrap().max_age,
            MAX_AGE_LIMIT
        );
        for bad in ["31557601", "99999999999", "-1", "1e6", "", "86400s", " "] {
            assert_eq!(
                parse(with_age(bad).as_bytes()),
                Err(PolicyError::MaxAge),
                "{bad:?}"
            );
        }
        let missing = ENFORCE.replace("max_age: 86400\n", "");
        assert_eq!(parse(missing.as_bytes()), Err(PolicyError::MaxAge));
    }

    #[test]
    fn oversized_or_binary_bodies_are_refused() {
        let mut big = ENFORCE.as_bytes().to_vec();
        big.resize(MAX_POLICY_BYTES + 1, b'\n');
        assert_eq!(parse(&big), Err(PolicyError::TooLarge));
        big.truncate(MAX_POLICY_BYTES);
        assert!(parse(&big).is_ok());
        assert_eq!(parse(b"version: STSv1\xff\n"), Err(PolicyError::NotText));
    }

    #[test]
    fn bad_mx_patterns_are_refused() {
        for bad in [
            "*",
            "*.",
            "*.com.*",
            "a.*.test",
            "mx..test",
            "-mx.test",
            "mx dest.test",
            "localhost",
        ] {
            let body = ENFORCE.replace("mx.dest.test", bad);
            assert_eq!(
                parse(body.as_bytes()),
                Err(PolicyError::BadMx(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_wildcard_matches_exactly_one_label() {
        let policy = parse(ENFORCE.as_bytes()).unwrap();
        for allowed in [
            "mx.dest.test",
            "MX.DEST.TEST.",
            "a.backup.test",
            "mx-1.Backup.test",
        ] {
            assert!(policy.allows(allowed), "{allowed}");
        }
        for refused in [
            "backup.test",
            "a.b.backup.test",
            ".backup.test",
            "mx.dest.test.evil",
            "evilmx.dest.test",
            "dest.test",
            "x.mx.dest.test",
        ] {
            assert!(!policy.allows(refused), "{refused}");
        }
    }

    #[test]
    fn txt_records_need_the_version_first_and_an_id() {
        assert_eq!(
            txt_id("v=STSv1; id=20240101T000000;").unwrap(),
            "20240101T000000"
        );
        assert_eq!(txt_id("v=STSv1;id=abc").unwrap(), "abc");
        assert_eq!(txt_id(" v=STSv1 ; ext=1; id = X9 ").unwrap(), "X9");
        assert_eq!(txt_id("id=abc; v=STSv1"), Err(PolicyError::TxtVersion));
        assert_eq!(txt_id("v=spf1 -all"), Err(PolicyError::TxtVersion));
        assert_eq!(txt_id("v=STSv1;"), Err(PolicyError::TxtId));
        assert_eq!(txt_id("v=STSv1; id="), Err(PolicyError::TxtId));
        assert_eq!(txt_id("v=STSv1; id=has-dash"), Err(PolicyError::TxtId));
        let long = format!("v=STSv1; id={}", "a".repeat(33));
        assert_eq!(txt_id(&long), Err(PolicyError::TxtId));
    }

    #[test]
    fn only_text_plain_of_at_most_64_kib_is_read() {
        assert!(check_answer(Some("text/plain"), Some(100)).is_ok());
        assert!(check_answer(Some("Text/Plain; charset=utf-8"), None).is_ok());
        for wrong in [
            Some("text/html"),
            Some("application/octet-stream"),
            Some("text/plainx"),
            None,
        ] {
            assert_eq!(
                check_answer(wrong, Some(10)),
                Err(PolicyError::ContentType(wrong.unwrap_or_default().into()))
            );
        }
        assert_eq!(
            check_answer(Some("text/plain"), Some(MAX_POLICY_BYTES as u64 + 1)),
            Err(PolicyError::TooLarge)
        );
    }
}
