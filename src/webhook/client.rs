//! The HTTP POST to the customer's app (an inbound target, a callback, the events webhook)
//! and the classification of its answer (contract §2, design §4.1). One POST per
//! transaction; redirects (at most 3, as [`RedirectPolicy`] allows) re-POST the same body;
//! basic auth comes from the URL's userinfo and never follows to another origin; with
//! `[delivery] require_https` no leg goes over plain `http://` off loopback; TLS is verified
//! against the system's roots plus `[delivery] extra_ca_file`; connections are pooled across
//! messages. An inbound message's POST carries an `Idempotency-Key` header (the caller
//! derives the value) on every leg; a POST whose owner has a signing secret carries the
//! Standard Webhooks headers (`webhook::signature`) on every leg.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, USER_AGENT};

use super::Payload;
use super::redirect::{RedirectPolicy, Refusal};
use super::signature::{SignatureHeaders, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use super::signing::{Owner, Signing};
use crate::config::{DeliveryConfig, HTTPS_REQUIRED, TargetUrl, in_clear};

/// Redirects followed before giving up (contract §2.5).
pub const MAX_REDIRECTS: usize = 3;
/// How much of a response body is kept for the store and the reply (contract §2.2).
pub const KEPT_BODY: usize = 2048;

/// What the target made of the POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Accepted { status: u16, body: String },
    /// 4xx: the target refuses the message for good. `reply_text` is its `text/plain` body.
    Rejected {
        status: u16,
        body: String,
        reply_text: Option<String>,
    },
    /// Anything else: 5xx, other statuses, timeout, connection or TLS failure, too many
    /// redirects, a refused redirect or plain `http://` under `require_https`. The sender
    /// should try again later.
    Deferred {
        status: Option<u16>,
        body: String,
        reason: String,
    },
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Accepted { status, .. } | Outcome::Rejected { status, .. } => Some(*status),
            Outcome::Deferred { status, .. } => *status,
        }
    }

    pub fn body(&self) -> &str {
        match self {
            Outcome::Accepted { body, .. }
            | Outcome::Rejected { body, .. }
            | Outcome::Deferred { body, .. } => body,
        }
    }
}

/// A pooled HTTP client for target POSTs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    timeout: Duration,
    redirects: RedirectPolicy,
    /// `[delivery] require_https`: no leg over plain `http://` off loopback.
    require_https: bool,
    /// The owners' signing secrets; `None`: nothing is signed.
    signing: Option<Signing>,
}

impl Deliverer {
    /// The client of `[delivery]`; its extra roots were read and checked at startup.
    pub fn new(config: &DeliveryConfig) -> Deliverer {
        let extra_roots = config
            .extra_roots
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates parsed from PEM at startup are DER");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(extra_roots)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client configuration is valid");
        Deliverer {
            client,
            timeout: config.timeout,
            redirects: RedirectPolicy {
                cross_origin: config.follow_cross_origin_redirects,
            },
            require_https: config.require_https,
            signing: None,
        }
    }

    /// The owner's current signing secret (`whsec_…`), for payloads that carry a signature
    /// of their own (the Original format); `None` without one, or when it cannot be read
    /// (logged).
    pub async fn current_secret(&self, owner: &Owner) -> Option<String> {
        match self.signing.as_ref()?.keys(owner).await {
            Ok(keys) => keys.map(|keys| keys.current.expose()),
            Err(error) => {
                tracing::error!(%owner, %error, "cannot read the signing secret");
                None
            }
        }
    }

    /// Signs each POST whose [`PostOptions::signed_as`] owner has a secret in `signing`.
    pub fn with_signing(mut self, signing: Signing) -> Deliverer {
        self.signing = Some(signing);
        self
    }

    /// POSTs `payload` to `target`, following redirects, within `timeout` (the configured
    /// one when `None`). Every HTTP request made is returned as an [`Attempt`].
    pub async fn deliver(
        &self,
        target: &TargetUrl,
        payload: Payload,
        timeout: Option<Duration>,
    ) -> Delivery {
        let options = PostOptions {
            timeout,
            ..PostOptions::default()
        };
        self.deliver_with(target, payload, &options).await
    }

    /// [`Deliverer::deliver`] with the headers `options` asks for on every request of the
    /// redirect chain: an [`IDEMPOTENCY_KEY`], so that the app can recognise a POST it has
    /// already handled, and the Standard Webhooks signature (made once, when the first
    /// request goes out).
    pub async fn deliver_with(
        &self,
        target: &TargetUrl,
        payload: Payload,
        options: &PostOptions<'_>,
    ) -> Delivery {
        let timeout = options.timeout.unwrap_or(self.timeout);
        let signature = match self.signature(options, &payload.body).await {
            Ok(signature) => signature,
            Err(reason) => {
                let outcome = Outcome::Deferred {
                    status: None,
                    body: String::new(),
                    reason,
                };
                return Delivery {
                    outcome,
                    attempts: Vec::new(),
                };
            }
        };
        let request = Request {
            content_type: &payload.content_type,
            body: Bytes::from(payload.body),
            idempotency_key: options.idempotency_key.map(structured_string),
            signature,
        };
        let mut attempts = Vec::new();
        let mut in_flight = None;
        let following = self.post_following(target, &request, &mut attempts, &mut in_flight);
        let outcome = match tokio::time::timeout(timeout, following).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let reason = format!("no answer within {}s", timeout.as_secs());
                if let Some((url, started)) = in_flight {
                    attempts.push(Attempt::failed(url, started, reason.clone()));
                }
                Outcome::Deferred {
                    status: None,
                    body: String::new(),
                    reason,
                }
            }
        };
        Delivery { outcome, attempts }
    }

    /// The signature headers of a POST whose owner has a signing secret, made now; a POST
    /// that should be signed is not made unsigned when the secret cannot be read.
    async fn signature(
        &self,
        options: &PostOptions<'_>,
        body: &[u8],
    ) -> Result<Option<SignatureHeaders>, String> {
        let (Some(signing), Some((owner, id))) = (&self.signing, options.signed_as) else {
            return Ok(None);
        };
        let keys = signing.keys(owner).await.map_err(|error| {
            tracing::error!(%owner, %error, "cannot read the signing secret; the POST waits");
            format!("cannot read the signing secret of {owner}")
        })?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        Ok(keys.map(|keys| keys.headers(id, now, body)))
    }

    /// The POST and at most [`MAX_REDIRECTS`] re-POSTs of the same body, each to where the
    /// redirect policy and `require_https` allow.
    async fn post_following(
        &self,
        target: &TargetUrl,
        request: &Request<'_>,
        attempts: &mut Vec<Attempt>,
        in_flight: &mut Option<(String, Instant)>,
    ) -> Outcome {
        let original = target.expose();
        let original_auth = basic_auth(original);
        let mut leg = Leg {
            url: without_userinfo(original),
            auth: original_auth.clone(),
        };
        for hop in 0..=MAX_REDIRECTS {
            if self.require_https && in_clear(&leg.url) {
                return refuse_in_clear(&leg, attempts);
            }
            match self.post_once(&leg, request, attempts, in_flight).await {
                Hop::Done(outcome) => return outcome,
                Hop::Redirect(_) if hop == MAX_REDIRECTS => break,
                Hop::Redirect(next) => match self.redirects.check(&leg.url, &next) {
                    Ok(()) => leg = Leg::redirected(next, original, &original_auth),
                    Err(refusal) => return refuse_redirect(&next, refusal, attempts),
                },
            }
        }
        Outcome::Deferred {
            status: None,
            body: String::new(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        }
    }

    /// One HTTP request of the chain, recorded in `attempts` (and in `in_flight` while it
    /// waits, so that a timeout can record it too).
    async fn post_once(
        &self,
        leg: &Leg,
        request: &Request<'_>,
        attempts: &mut Vec<Attempt>,
        in_flight: &mut Option<(String, Instant)>,
    ) -> Hop {
        let shown = masked(&leg.url, leg.auth.is_some());
        let started = Instant::now();
        *in_flight = Some((shown.clone(), started));
        let response = match self.request(leg, request).send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = describe(&error);
                *in_flight = None;
                attempts.push(Attempt::failed(shown, started, reason.clone()));
                return Hop::Done(Outcome::Deferred {
                    status: None,
                    body: String::new(),
                    reason,
                });
            }
        };
        let status = response.status();
        let code = status.as_u16();
        if status.is_redirection() {
            let location = location(&response, &leg.url);
            *in_flight = None;
            attempts.push(Attempt::answered(shown, started, code, String::new()));
            return match location {
                Some(next) => Hop::Redirect(next),
                None => Hop::Done(Outcome::Deferred {
                    status: Some(code),
                    body: String::new(),
                    reason: "redirect without a usable Location header".into(),
                }),
            };
        }
        let is_text = is_plain_text(&response);
        let body = read_start(response).await;
        *in_flight = None;
        attempts.push(Attempt::answered(shown, started, code, body.clone()));
        Hop::Done(classify(status, body, is_text))
    }

    /// The request for one leg: the same body and headers on every leg.
    fn request(&self, leg: &Leg, request: &Request<'_>) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .post(leg.url.clone())
            .header(CONTENT_TYPE, request.content_type)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(request.body.clone());
        if let Some(auth) = &leg.auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        if let Some(key) = &request.idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(signed) = &request.signature {
            builder = builder
                .header(WEBHOOK_ID, &signed.id)
                .header(WEBHOOK_TIMESTAMP, &signed.timestamp)
                .header(WEBHOOK_SIGNATURE, &signed.signature);
        }
        builder
    }
}

/// What is POSTed, the same on every leg of a redirect chain.
struct Request<'a> {
    content_type: &'a str,
    body: Bytes,
    /// The [`IDEMPOTENCY_KEY`] header's value, already quoted.
    idempotency_key: Option<String>,
    signature: Option<SignatureHeaders>,
}

/// How one POST is made besides its body; the default is a plain POST within the configured
/// timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostOptions<'a> {
    /// Overrides `[delivery] timeout_secs`.
    pub timeout: Option<Duration>,
    /// The message's [`IDEMPOTENCY_KEY`].
    pub idempotency_key: Option<&'a str>,
    /// Signed with this owner's secret, if it has one ([`Deliverer::with_signing`]); the
    /// `webhook-id` is the `&str`, the same on every try of the same thing.
    pub signed_as: Option<(&'a Owner, &'a str)>,
}

/// Where one request of a redirect chain goes, and with which credentials.
struct Leg {
    /// Without userinfo: credentials travel only in `auth`.
    url: url::Url,
    /// `Authorization: Basic …`.
    auth: Option<String>,
}

impl Leg {
    /// The leg after a redirect to `next`. Credentials follow a redirect only to the same
    /// origin, or come with the new URL itself.
    fn redirected(next: url::Url, original: &url::Url, original_auth: &Option<String>) -> Leg {
        let auth = basic_auth(&next).or_else(|| {
            (next.origin() == original.origin())
                .then(|| original_auth.clone())
                .flatten()
        });
        Leg {
            url: without_userinfo(&next),
            auth,
        }
    }
}

/// What one request of a redirect chain came to.
enum Hop {
    /// A final answer or a failure: the chain ends here.
    Done(Outcome),
    /// A 3xx with a usable `Location`, resolved against the URL posted to.
    Redirect(url::Url),
}

/// The end of a chain whose last 3xx named a `Location` the policy refuses: the reason goes
/// on that 3xx's attempt and into the (temporary) outcome.
fn refuse_redirect(next: &url::Url, refusal: Refusal, attempts: &mut [Attempt]) -> Outcome {
    let shown = masked(&without_userinfo(next), basic_auth(next).is_some());
    let reason = format!("redirect to {shown} refused: {refusal}");
    let last = attempts.last_mut();
    let status = last.as_ref().and_then(|a| a.status);
    if let Some(attempt) = last {
        attempt.error = Some(reason.clone());
    }
    Outcome::Deferred {
        status,
        body: String::new(),
        reason,
    }
}

/// A leg that `require_https` stops before it is made: recorded as a failed attempt.
fn refuse_in_clear(leg: &Leg, attempts: &mut Vec<Attempt>) -> Outcome {
    let shown = masked(&leg.url, leg.auth.is_some());
    let reason = format!("{shown} refused: {HTTPS_REQUIRED}");
    attempts.push(Attempt::failed(shown, Instant::now(), reason.clone()));
    Outcome::Deferred {
        status: None,
        body: String::new(),
        reason,
    }
}

/// The redirect's target, resolved against the URL posted to.
fn location(response: &reqwest::Response, url: &url::Url) -> Option<url::Url> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url.join(l).ok())
}

/// A `text/plain` answer is the SMTP reply text of a 4xx (contract §2.2).
fn is_plain_text(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        })
}

/// 2xx accepts, 4xx rejects, anything else defers (design §4.1).
fn classify(status: reqwest::StatusCode, body: String, is_text: bool) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        Outcome::Accepted { status: code, body }
    } else if status.is_client_error() {
        let reply_text = is_text.then(|| body.clone());
        Outcome::Rejected {
            status: code,
            body,
            reply_text,
        }
    } else {
        Outcome::Deferred {
            status: Some(code),
            body,
            reason: format!("target answered HTTP {code}"),
        }
    }
}

/// The header name of the IETF draft `draft-ietf-httpapi-idempotency-key-header`, which
/// Stripe, PayPal and others use the same way: a retried POST repeats the value.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// `key` as a structured-field string (RFC 8941 §3.3.3), the value type the draft gives the
/// header: in double quotes, with `\` and `"` escaped. Callers pass plain ASCII.
fn structured_string(key: &str) -> String {
    let mut quoted = String::with_capacity(key.len() + 2);
    quoted.push('"');
    for c in key.chars().filter(|c| (' '..='~').contains(c)) {
        if matches!(c, '\\' | '"') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

const USER_AGENT_VALUE: &str = concat!(
    "Postern/",
    env!("CARGO_PKG_VERSION"),
    " (CloudMailin-compatible)"
);

/// The result of one POST (with its redirects): the classified outcome and every request.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub outcome: Outcome,
    pub attempts: Vec<Attempt>,
}

/// One HTTP request to a target or callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The URL with any credentials masked.
    pub url: String,
    pub status: Option<u16>,
    /// The first [`KEPT_BODY`] octets of the response body.
    pub body: String,
    /// Why there was no HTTP answer.
    pub error: Option<String>,
    pub started_at: SystemTime,
    pub duration: Duration,
}

impl Attempt {
    fn answered(url: String, started: Instant, status: u16, body: String) -> Attempt {
        Attempt {
            url,
            status: Some(status),
            body,
            error: None,
            started_at: SystemTime::now() - started.elapsed(),
            duration: started.elapsed(),
        }
    }

    fn failed(url: String, started: Instant, error: String) -> Attempt {
        Attempt {
            url,
            status: None,
            body: String::new(),
            error: Some(error),
            started_at: SystemTime::now() - started.elapsed(),
            duration: started.elapsed(),
        }
    }
}

/// A URL for the store: credentials shown as `***`.
fn masked(url: &url::Url, had_credentials: bool) -> String {
    if !had_credentials {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_username("***");
    shown.to_string()
}

/// Reads up to [`KEPT_BODY`] octets of the body (and a little more, so that small answers
/// are consumed and the connection can be reused).
async fn read_start(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        seen += chunk.len();
        let room = KEPT_BODY.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if seen > 64 * 1024 {
            break;
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    // A cut in the middle of a UTF-8 sequence leaves one replacement character; drop it.
    if kept.len() == KEPT_BODY && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text
}

/// `Authorization: Basic …` from percent-decoded URL userinfo (contract §2.4).
fn basic_auth(url: &url::Url) -> Option<String> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    ))
}

fn without_userinfo(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// A short, secret-free description of a transport failure for logs and the store.
fn describe(error: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = error;
    while let Some(source) = root.source() {
        root = source;
    }
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "HTTP error"
    };
    format!("{kind}: {root}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_percent_decoded() {
        let url = url::Url::parse("https://user:mypass@example.com/").unwrap();
        assert_eq!(basic_auth(&url).unwrap(), "Basic dXNlcjpteXBhc3M=");
        let url = url::Url::parse("https://us%40er:p%3Ass@example.com/").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(basic_auth(&url).unwrap(), format!("Basic {expected}"));
        assert_eq!(basic_auth(&url::Url::parse("http://x/").unwrap()), None);
    }

    #[test]
    fn idempotency_key_is_a_structured_field_string() {
        assert_eq!(structured_string("3f2a"), "\"3f2a\"");
        assert_eq!(structured_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        // Control characters cannot be in an sf-string; they are dropped.
        assert_eq!(structured_string("a\r\nb"), "\"ab\"");
    }
}
