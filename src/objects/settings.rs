//! A store as given (API body, dashboard form, CLI flags: [`StoreSpec`]) and as checked once
//! before it is saved ([`StoreSettings`]), with the row it is kept as. No I/O.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::naming;
use crate::config::valid_store_name;
use crate::store::ObjectStoreRow;

/// The canned ACLs S3 knows (`x-amz-acl`).
pub const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// How long a local store's signed URLs are valid unless told: 7 days.
pub const DEFAULT_EXPIRY_DAYS: u64 = 7;
/// The longest a local store's signed URLs may be valid.
pub const MAX_EXPIRY_DAYS: u64 = 365;
/// The region when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A store as given. `kind` is `s3` or `local`; the other fields belong to one kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    pub name: String,
    pub kind: String,
    /// S3: the endpoint of an S3-compatible service; unset, AWS.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    /// S3: the canned ACL sent as `x-amz-acl` with each upload.
    pub acl: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Local: how long a signed URL is valid.
    pub expiry_days: Option<u64>,
    /// The form's CSRF field (the gate has checked it).
    #[serde(default, skip_serializing)]
    #[allow(dead_code)]
    pub csrf_token: Option<String>,
}

/// A checked store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    S3(Box<S3Settings>),
    Local { expiry_secs: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `None`: AWS (`https://<bucket>.s3.<region>.amazonaws.com`).
    pub endpoint: Option<url::Url>,
    pub bucket: String,
    pub prefix: Option<String>,
    pub region: String,
    pub acl: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// What a listing shows of a store: everything but the secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreInfo {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_days: Option<u64>,
    /// RFC 3339.
    pub created_at: String,
}

impl StoreInfo {
    pub fn of(row: &ObjectStoreRow) -> StoreInfo {
        StoreInfo {
            name: row.name.clone(),
            kind: row.kind.clone(),
            endpoint: row.endpoint.clone(),
            bucket: row.bucket.clone(),
            prefix: row.prefix.clone(),
            region: row.region.clone(),
            acl: row.acl.clone(),
            access_key_id: row.access_key_id.clone(),
            expiry_days: row.expiry_secs.map(|secs| secs as u64 / 86_400),
            created_at: crate::clock::from_unix(row.created_at)
                .format(&time::format_description::well_known::Rfc3339)
                .expect("UTC formats as RFC 3339"),
        }
    }
}

/// Whether `url` is on this machine: a loopback IP or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl StoreSpec {
    /// The store, checked; `Err` says which field is wrong and how.
    pub fn check(&self) -> Result<StoreSettings, String> {
        let name = self.name.trim().to_string();
        if !valid_store_name(&name) {
            return Err(format!(
                "name {name:?}: 1 to 64 lower-case letters, digits, '-' or '_', starting with a \
                 letter or digit"
            ));
        }
        let kind = match self.kind.trim() {
            "s3" => Kind::S3(Box::new(self.s3()?)),
            "local" => {
                let s3_only = [
                    ("endpoint", &self.endpoint),
                    ("bucket", &self.bucket),
                    ("prefix", &self.prefix),
                    ("region", &self.region),
                    ("acl", &self.acl),
                    ("access_key_id", &self.access_key_id),
                    ("secret_access_key", &self.secret_access_key),
                ];
                if let Some((field, _)) = s3_only.iter().find(|(_, v)| given(v).is_some()) {
                    return Err(format!("{field} is for kind \"s3\" only"));
                }
                let days = self.expiry_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
                if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
                    return Err(format!(
                        "expiry_days {days}: between 1 and {MAX_EXPIRY_DAYS}"
                    ));
                }
                Kind::Local {
                    expiry_secs: days * 86_400,
                }
            }
            other => return Err(format!("kind {other:?}: \"s3\" or \"local\"")),
        };
        Ok(StoreSettings { name, kind })
    }

    fn s3(&self) -> Result<S3Settings, String> {
        if self.expiry_days.is_some() {
            return Err("expiry_days is for kind \"local\" only (S3 URLs do not expire; use the bucket's lifecycle rules)".into());
        }
        let endpoint = match given(&self.endpoint) {
            None => None,
            Some(text) => {
                let url = url::Url::parse(text.trim_end_matches('/'))
                    .map_err(|e| format!("endpoint {text:?}: {e}"))?;
                match url.scheme() {
                    "https" => {}
                    "http" if is_loopback(&url) => {}
                    "http" => {
                        return Err(format!(
                            "endpoint {text:?}: uploads go over TLS; http:// only to a store on \
                             this machine (loopback)"
                        ));
                    }
                    _ => return Err(format!("endpoint {text:?}: an https:// URL")),
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(
                        "endpoint: no credentials in the URL (access_key_id, secret_access_key)"
                            .into(),
                    );
                }
                if url.query().is_some() || url.path() != "/" {
                    return Err(format!("endpoint {text:?}: scheme, host and port only"));
                }
                Some(url)
            }
        };
        let bucket = given(&self.bucket).ok_or("bucket is required")?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(format!(
                "bucket {bucket:?}: 3 to 63 lower-case letters, digits, '-' or '.'"
            ));
        }
        let prefix = naming::prefix(self.prefix.as_deref().unwrap_or_default())?;
        let region = given(&self.region).unwrap_or(DEFAULT_REGION);
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!("region {region:?}: e.g. us-east-1"));
        }
        let acl = match given(&self.acl) {
            None => None,
            Some(acl) if CANNED_ACLS.contains(&acl) => Some(acl.to_string()),
            Some(acl) => {
                return Err(format!(
                    "acl {acl:?}: one of the canned ACLs {}",
                    CANNED_ACLS.join(", ")
                ));
            }
        };
        let access_key_id = given(&self.access_key_id).ok_or("access_key_id is required")?;
        let secret_access_key =
            given(&self.secret_access_key).ok_or("secret_access_key is required")?;
        let printable = |text: &str| text.chars().all(|c| c.is_ascii_graphic());
        if !printable(access_key_id) || !printable(secret_access_key) {
            return Err("access_key_id and secret_access_key: printable ASCII, no spaces".into());
        }
        Ok(S3Settings {
            endpoint,
            bucket: bucket.to_string(),
            prefix,
            region: region.to_string(),
            acl,
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
        })
    }
}

impl StoreSettings {
    /// The row it is kept as.
    pub fn row(&self, created_at: i64) -> ObjectStoreRow {
        let mut row = ObjectStoreRow {
            name: self.name.clone(),
            kind: String::new(),
            endpoint: None,
            bucket: None,
            prefix: None,
            region: None,
            acl: None,
            access_key_id: None,
            secret_access_key: None,
            expiry_secs: None,
            created_at,
        };
        match &self.kind {
            Kind::S3(s3) => {
                row.kind = "s3".into();
                row.endpoint = s3
                    .endpoint
                    .as_ref()
                    .map(|u| u.as_str().trim_end_matches('/').to_string());
                row.bucket = Some(s3.bucket.clone());
                row.prefix = s3.prefix.clone();
                row.region = Some(s3.region.clone());
                row.acl = s3.acl.clone();
                row.access_key_id = Some(s3.access_key_id.clone());
                row.secret_access_key = Some(s3.secret_access_key.clone());
            }
            Kind::Local { expiry_secs } => {
                row.kind = "local".into();
                row.expiry_secs = Some(*expiry_secs as i64);
            }
        }
        row
    }

    /// A kept row, checked again (a row is only written checked; this reads it back).
    pub fn of_row(row: &ObjectStoreRow) -> Result<StoreSettings, String> {
        StoreSpec {
            name: row.name.clone(),
            kind: row.kind.clone(),
            endpoint: row.endpoint.clone(),
            bucket: row.bucket.clone(),
            prefix: row.prefix.clone(),
            region: row.region.clone(),
            acl: row.acl.clone(),
            access_key_id: row.access_key_id.clone(),
            secret_access_key: row.secret_access_key.clone(),
            expiry_days: row.expiry_secs.map(|secs| (secs as u64).div_ceil(86_400)),
            csrf_token: None,
        }
        .check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str) -> StoreSpec {
        StoreSpec {
            name: "mail".into(),
            kind: "s3".into(),
            endpoint: Some(endpoint.into()),
            bucket: Some("my-bucket".into()),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("secret".into()),
            ..StoreSpec::default()
        }
    }

    #[test]
    fn plain_http_is_only_for_a_store_on_loopback() {
        for ok in [
            "https://s3.example.com",
            "http://127.0.0.1:9000",
            "http://[::1]:9000/",
            "http://localhost:9000",
        ] {
            assert!(s3(ok).check().is_ok(), "{ok}");
        }
        for bad in [
            "http://s3.example.com",
            "http://10.0.0.1:9000",
            "ftp://127.0.0.1",
            "https://u:p@s3.example.com",
            "https://s3.example.com/path",
        ] {
            assert!(s3(bad).check().is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_checked_and_rows_read_back_the_same() {
        let mut spec = s3("https://s3.example.com");
        spec.acl = Some("public-read".into());
        spec.prefix = Some("/in/".into());
        let settings = spec.check().unwrap();
        let row = settings.row(1);
        assert_eq!(row.prefix.as_deref(), Some("in"));
        assert_eq!(StoreSettings::of_row(&row).unwrap(), settings);
        spec.acl = Some("everyone".into());
        assert!(spec.check().unwrap_err().contains("canned"));
        let local = StoreSpec {
            name: "files".into(),
            kind: "local".into(),
            ..StoreSpec::default()
        };
        let settings = local.check().unwrap();
        assert_eq!(
            settings.kind,
            Kind::Local {
                expiry_secs: 7 * 86_400
            }
        );
        assert_eq!(StoreSettings::of_row(&settings.row(1)).unwrap(), settings);
        let mixed = StoreSpec {
            bucket: Some("b".into()),
            ..local
        };
        assert!(mixed.check().is_err());
        for bad in ["", "Mail", "-x", "a/b"] {
            let spec = StoreSpec {
                name: bad.into(),
                ..s3("https://s3.example.com")
            };
            assert!(spec.check().is_err(), "{bad:?}");
        }
    }
}
