//! What a data-subject request is about: one email address, a domain or a managed inbound
//! address, optionally between two dates; checked once, where it is given.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::store::{Subject, SubjectKind};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("give exactly one of email, domain or address (got {0})")]
    NotOne(usize),
    #[error("{0:?} is not an email address (name@domain)")]
    Address(String),
    #[error("{0:?} is not a domain name (e.g. example.com)")]
    Domain(String),
    #[error("{field} {value:?} is not a date: use YYYY-MM-DD or RFC 3339")]
    Date { field: &'static str, value: String },
}

/// The request as the API takes it (JSON) and the CLI builds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    pub email: Option<String>,
    pub domain: Option<String>,
    pub address: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// A checked selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selector {
    pub kind: SubjectKind,
    pub value: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl Selector {
    pub fn parse(spec: &SelectorSpec) -> Result<Selector, SelectorError> {
        let given: Vec<(SubjectKind, &String)> = [
            (SubjectKind::Email, &spec.email),
            (SubjectKind::Domain, &spec.domain),
            (SubjectKind::Address, &spec.address),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.as_ref().map(|v| (kind, v)))
        .collect();
        let [(kind, value)] = given[..] else {
            return Err(SelectorError::NotOne(given.len()));
        };
        Ok(Selector {
            kind,
            value: checked(kind, value)?,
            since: date("since", spec.since.as_deref())?,
            until: date("until", spec.until.as_deref())?,
        })
    }

    /// SHA-256 of the canonical selector: what the audit log keeps instead of the address.
    pub fn digest(&self) -> String {
        let bound = |b: &Option<OffsetDateTime>| {
            b.map_or(String::new(), |t| t.unix_timestamp().to_string())
        };
        crate::secret::sha256_hex(&format!(
            "{:?}\n{}\n{}\n{}",
            self.kind,
            self.value,
            bound(&self.since),
            bound(&self.until)
        ))
    }

    pub fn subject(&self) -> Subject {
        let bound = |b: &Option<OffsetDateTime>| {
            b.map(|t| {
                let text = t.format(&Rfc3339).expect("UTC times format as RFC 3339");
                (t.unix_timestamp(), text)
            })
        };
        Subject {
            kind: self.kind,
            value: self.value.clone(),
            since: bound(&self.since),
            until: bound(&self.until),
        }
    }
}

fn checked(kind: SubjectKind, value: &str) -> Result<String, SelectorError> {
    let value = value.trim().to_ascii_lowercase();
    let domain_ok = |d: &str| {
        d.contains('.')
            && !d.starts_with('.')
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    match kind {
        SubjectKind::Domain if domain_ok(&value) => Ok(value),
        SubjectKind::Domain => Err(SelectorError::Domain(value)),
        _ => match value.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && domain_ok(domain) => Ok(value),
            _ => Err(SelectorError::Address(value)),
        },
    }
}

fn date(field: &'static str, value: Option<&str>) -> Result<Option<OffsetDateTime>, SelectorError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let day = format_description!("[year]-[month]-[day]");
    OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| Date::parse(value, &day).map(|d| d.midnight().assume_utc()))
        .map(|t| Some(t.to_offset(time::UtcOffset::UTC)))
        .map_err(|_| SelectorError::Date {
            field,
            value: value.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(email: Option<&str>, domain: Option<&str>) -> SelectorSpec {
        SelectorSpec {
            email: email.map(str::to_string),
            domain: domain.map(str::to_string),
            ..SelectorSpec::default()
        }
    }

    #[test]
    fn exactly_one_subject_and_well_formed() {
        assert_eq!(
            Selector::parse(&spec(None, None)),
            Err(SelectorError::NotOne(0))
        );
        assert_eq!(
            Selector::parse(&spec(Some("a@b.com"), Some("b.com"))),
            Err(SelectorError::NotOne(2))
        );
        assert!(Selector::parse(&spec(Some("nobody"), None)).is_err());
        assert!(Selector::parse(&spec(None, Some("%.com"))).is_err());
        let person = Selector::parse(&spec(Some(" Person@Example.COM "), None)).unwrap();
        assert_eq!(person.value, "person@example.com");
        assert_eq!(person.digest().len(), 64);
        assert!(!person.digest().contains("person"));
    }

    #[test]
    fn dates_are_days_or_rfc3339() {
        let mut given = spec(Some("a@b.com"), None);
        given.since = Some("2026-12-01".into());
        given.until = Some("2026-12-02T10:00:00+01:00".into());
        let selector = Selector::parse(&given).unwrap();
        assert_eq!(selector.since.unwrap().unix_timestamp(), 1_796_083_200);
        assert_eq!(selector.until.unwrap().hour(), 9);
        given.until = Some("yesterday".into());
        assert!(matches!(
            Selector::parse(&given),
            Err(SelectorError::Date { field: "until", .. })
        ));
    }
}
