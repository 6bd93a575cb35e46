//! An S3-compatible bucket through object_store (the only importer of it): one client per
//! store, over TLS (plain HTTP only to an endpoint on loopback, which [`super::settings`]
//! checks), with bounded timeouts and retries so that an unreachable store fails the message
//! in seconds, not minutes. The canned ACL goes as an `x-amz-acl` header on each request
//! (object_store signs its default headers with the rest; it has no ACL attribute).

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, HeaderMap, HeaderValue, ObjectStore,
    PutOptions, PutPayload, RetryConfig,
};

use super::settings::{S3Settings, is_loopback};

/// Per request: connecting, then the whole request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failed request, and the time they may take in all.
const RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct S3 {
    client: AmazonS3,
    settings: S3Settings,
}

impl S3 {
    /// The client of a checked store; `Err` is object_store's reason.
    pub fn new(settings: &S3Settings) -> Result<S3, String> {
        let mut headers = HeaderMap::new();
        if let Some(acl) = &settings.acl {
            let value = HeaderValue::from_str(acl).map_err(|e| e.to_string())?;
            headers.insert("x-amz-acl", value);
        }
        let loopback_http = settings
            .endpoint
            .as_ref()
            .is_some_and(|url| url.scheme() == "http" && is_loopback(url));
        let options = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_allow_http(loopback_http)
            .with_default_headers(headers);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: RETRIES,
            retry_timeout: RETRY_TIMEOUT,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(S3 {
            client,
            settings: settings.clone(),
        })
    }

    /// `key` below the prefix.
    fn full_key(&self, key: &str) -> String {
        match &self.settings.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_string(),
        }
    }

    /// Puts `bytes` at `key` (below the prefix); the object's URL.
    pub async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, String> {
        let full = self.full_key(key);
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_string().into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.client
            .put_opts(&Path::from(full.as_str()), PutPayload::from(bytes), options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.url(&full))
    }

    /// Where an object is: path-style below the endpoint, or AWS's virtual-hosted URL.
    /// Keys are made of URL-safe characters only (`naming`), so they need no escaping.
    pub fn url(&self, full_key: &str) -> String {
        let S3Settings {
            endpoint,
            bucket,
            region,
            ..
        } = &self.settings;
        match endpoint {
            Some(endpoint) => format!(
                "{}/{bucket}/{full_key}",
                endpoint.as_str().trim_end_matches('/')
            ),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com/{full_key}"),
        }
    }
}
