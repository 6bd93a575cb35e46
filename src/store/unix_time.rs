//! Times are stored as Unix seconds; the JSON API shows them as RFC 3339 strings (UTC), like
//! every other time it returns. `#[serde(serialize_with = "unix_time::rfc3339")]`.

use serde::Serializer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn format(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn rfc3339<S: Serializer>(at: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*at))
}

pub fn rfc3339_option<S: Serializer>(at: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&format(*at)),
        None => serializer.serialize_none(),
    }
}

/// The same as a string, for JSON built by hand.
pub fn to_rfc3339(at: i64) -> String {
    format(at)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_become_utc_rfc3339() {
        assert_eq!(super::to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::to_rfc3339(1_795_844_238), "2026-11-28T05:37:18Z");
    }
}
