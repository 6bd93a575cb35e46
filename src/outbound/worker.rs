//! The delivery worker (`postern serve`): takes due recipients off the queue and hands each
//! to its domain's mail server — or to the configured smarthost — over SMTP.
//!
//! One recipient is one SMTP transaction (MAIL FROM = the message's return path, one RCPT).
//! For each: the attempt is committed as `started` before any connection
//! ([`Store::begin_attempt`]), the MX hosts are tried by preference (`mx`), STARTTLS is
//! used as the [`TlsPolicy`] says (`starttls`), the message is DKIM-signed for its sending
//! domain, and the answer decides the recipient's fate:
//!
//! | answer | recipient | event |
//! |---|---|---|
//! | 2xx after DATA | `delivered` | `delivery` |
//! | 5xx, null MX, domain does not exist | `bounced` (+ suppression) | `bounce` |
//! | 4xx, refused/timed-out connections, DNS failure | `deferred` ([`BACKOFF`]) | `soft_bounce` |
//! | a temporary failure whose next try falls past `expires_at` | `expired` | `retries_exhausted` |
//!
//! Limits: `max_connections` SMTP connections in all and `max_per_domain` per recipient
//! domain. Connections that ended a transaction cleanly are kept for a few seconds and
//! reused for the next recipient at the same address, host name and TLS policy.
//!
//! Each attempt records the TLS it ran over: version, cipher suite and whether the
//! certificate was verified (`TLSv1.3 TLS13_AES_256_GCM_SHA384 verified`).
//!
//! Verified TLS is required (no delivery otherwise, the reason naming who requires it) for
//! the relay, `[outbound] require_tls` domains, every recipient of a message sent with
//! `require_tls`, and domains whose MTA-STS policy (`mta_sts`) is `enforce` — whose mail goes
//! only to the MX hosts the policy lists. A `testing` policy changes nothing; what it would
//! have refused is logged.
//!
//! Time comes from the app's [`Clock`] (manual in tests); the loop wakes every
//! [`POLL_INTERVAL`] and at once when [`Outbound::enqueue`] queues mail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Outbound;
use super::mta_sts::Mode;
use super::mta_sts::discovery::{Discovery, Known};
use super::mx::{MxHost, MxResolver};
use crate::clock::Clock;
use crate::config::{OutboundConfig, RelayUrl};
use crate::dns::{ResolverChoice, ResolverError};
use crate::metrics::Delivery;
use crate::shutdown::Shutdown;
use crate::store::{AttemptEnd, AttemptReport, Claimed, SendingDomainRow, Store};
use crate::tls::client::{ClientTls, Negotiated};

pub mod release;
mod starttls;

/// Seconds to wait after the 1st, 2nd, … temporary failure; after the last, every
/// [`BACKOFF_AFTER`] until the recipient expires (`[outbound] expiry_hours`, 72 by default).
pub const BACKOFF: [i64; 7] = [60, 5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600];
/// Seconds between tries once [`BACKOFF`] is used up.
pub const BACKOFF_AFTER: i64 = 8 * 3600;
/// How often the queue is looked at when nothing wakes the worker.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long an idle connection is kept for the next recipient at the same address.
const IDLE_KEEP: Duration = Duration::from_secs(10);

/// Seconds until the next try after `failures` temporary failures (1 = the first).
pub fn backoff(failures: i64) -> i64 {
    usize::try_from(failures - 1)
        .ok()
        .and_then(|index| BACKOFF.get(index).copied())
        .unwrap_or(BACKOFF_AFTER)
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("DNS resolver for outbound delivery: {0}")]
    Resolver(#[from] ResolverError),
    #[error("TLS for outbound delivery: {0}")]
    Tls(#[from] rustls::Error),
}

/// How a connection uses STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TlsPolicy {
    /// When offered, with any certificate; else plain text: an MX with no policy, the one
    /// exception (RFC 7435).
    Opportunistic,
    /// When offered, with a verified certificate; else plain text: a relay on this machine.
    VerifiedIfOffered,
    /// Verified STARTTLS or no delivery: `require_tls` domains and messages, MTA-STS
    /// `enforce`, a relay elsewhere.
    Verified,
    /// A `testing` MTA-STS policy: verified STARTTLS when it works; else what `Verified`
    /// would have refused is logged and the session goes on as `Opportunistic`.
    Testing,
}

impl TlsPolicy {
    fn verifies(self) -> bool {
        self != TlsPolicy::Opportunistic
    }
}

/// Where a connection goes and how it was secured: a kept connection is reused only for the
/// same name and policy (a certificate checked for one MX name proves nothing for another).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Destination {
    address: SocketAddr,
    name: String,
    policy: TlsPolicy,
}

/// How one attempt failed: the SMTP code when there was an answer, and whether trying
/// again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: Option<u16>,
    text: String,
    permanent: bool,
    /// The verified TLS a policy required was not had: the reason names that policy.
    tls_required: bool,
}

impl Failure {
    fn temporary(text: impl Into<String>) -> Failure {
        Failure {
            code: None,
            text: text.into(),
            permanent: false,
            tls_required: false,
        }
    }

    fn permanent(text: impl Into<String>) -> Failure {
        Failure {
            permanent: true,
            ..Failure::temporary(text)
        }
    }

    /// 5xx → permanent, 4xx → temporary; anything else (connection, TLS, timeout) is
    /// temporary.
    fn from_smtp(error: &lettre::transport::smtp::Error) -> Failure {
        let code = error.status().map(u16::from);
        let text = match (code, std::error::Error::source(error)) {
            (Some(_), Some(source)) => source.to_string(),
            _ => error.to_string(),
        };
        Failure {
            code,
            permanent: error.is_permanent(),
            ..Failure::temporary(one_line(&text))
        }
    }

    /// No verified TLS where a policy required it (temporary: the MX may be fixed).
    fn tls(text: String) -> Failure {
        Failure {
            tls_required: true,
            ..Failure::temporary(text)
        }
    }
}

/// Why a recipient's mail must go over verified TLS, when a reason has to say so.
#[derive(Debug, Clone)]
enum Required {
    /// The message was sent with `require_tls`.
    Message,
    /// The recipient domain's MTA-STS policy is `enforce`.
    MtaSts(String),
}

impl std::fmt::Display for Required {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Required::Message => f.write_str("TLS required by the message (require_tls)"),
            Required::MtaSts(policy) => f.write_str(policy),
        }
    }
}

/// The hosts to try and how: from the relay, or the MX lookup and the TLS policies.
struct Route {
    hosts: Vec<MxHost>,
    policy: TlsPolicy,
    required: Option<Required>,
    /// A `testing` MTA-STS policy, to log what it would have refused.
    testing: Option<Known>,
}

/// What an attempt came to, before it is recorded.
struct Attempted {
    host: Option<String>,
    tls: Option<Negotiated>,
    result: Result<(u16, String), Failure>,
}

/// How one address of a host took a transaction.
enum AddressOutcome {
    /// No connection: the next address is tried; this is the answer if none connects.
    Unreachable(Attempted),
    /// The transaction ended, in an answer or a failure another address would not change.
    Finished(Attempted),
    /// A kept connection the server had closed meanwhile (no SMTP status): connect afresh.
    StaleConnection,
}

/// A connection and the TLS it runs over (`None`: plain text).
type Connected = (AsyncSmtpConnection, Option<Negotiated>);

/// A connection waiting for its next transaction: since when, and its TLS.
type Kept = (AsyncSmtpConnection, Instant, Option<Negotiated>);

/// Idle connections by destination, kept [`IDLE_KEEP`].
#[derive(Default)]
struct Idle {
    connections: Mutex<HashMap<Destination, Vec<Kept>>>,
}

impl Idle {
    fn take(&self, destination: &Destination) -> Option<Connected> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let list = connections.get_mut(destination)?;
        while let Some((connection, since, tls)) = list.pop() {
            if since.elapsed() < IDLE_KEEP && !connection.has_broken() {
                return Some((connection, tls));
            }
        }
        None
    }

    fn put(
        &self,
        destination: Destination,
        connection: AsyncSmtpConnection,
        tls: Option<Negotiated>,
    ) {
        if connection.has_broken() {
            return;
        }
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections
            .entry(destination)
            .or_default()
            .push((connection, Instant::now(), tls));
    }

    /// Drops connections idle too long (the server sees the socket close).
    fn sweep(&self) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for list in connections.values_mut() {
            list.retain(|(_, since, _)| since.elapsed() < IDLE_KEEP);
        }
        connections.retain(|_, list| !list.is_empty());
    }
}

/// The delivery worker; [`Worker::run`] is its task.
pub struct Worker {
    /// For the tracking key and URL (`Outbound::instrument_for`).
    outbound: Outbound,
    store: Store,
    clock: Clock,
    wake: Arc<Notify>,
    /// Poked after writing events: the events webhook sends them at once.
    events: Arc<Notify>,
    config: OutboundConfig,
    resolver: MxResolver,
    hello: ClientId,
    tls: ClientTls,
    mta_sts: Discovery,
    global: Arc<Semaphore>,
    domains: Mutex<HashMap<String, Arc<Semaphore>>>,
    idle: Idle,
}

impl Worker {
    /// Builds the MX resolver for the `dns` servers and the TLS client (webpki roots plus
    /// `[outbound] extra_ca_file`); sends nothing yet.
    pub fn new(
        outbound: &Outbound,
        config: &OutboundConfig,
        dns: &ResolverChoice,
    ) -> Result<Worker, WorkerError> {
        let tls = ClientTls::new(&config.extra_roots)?;
        Ok(Worker {
            outbound: outbound.clone(),
            store: outbound.store().clone(),
            clock: outbound.clock.clone(),
            wake: outbound.wake.clone(),
            events: outbound.events_notify(),
            config: config.clone(),
            resolver: MxResolver::new(dns, config.timeout)?,
            hello: ClientId::Domain(config.helo_name.clone()),
            tls: tls.clone(),
            mta_sts: Discovery::new(
                crate::dns::resolver(dns, config.timeout, true)?,
                tls.verified_config(),
                config.mta_sts_port,
                outbound.store().clone(),
            ),
            global: Arc::new(Semaphore::new(config.max_connections)),
            domains: Mutex::new(HashMap::new()),
            idle: Idle::default(),
        })
    }

    /// Recovers what a previous run left in `sending`, then delivers until the shutdown.
    /// Attempts in flight are tracked by `shutdown`, so the drain waits for them; one cut
    /// off is found `started` at the next start and sent again.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        match self.store.recover_queue(self.clock.unix()).await {
            Ok(recovered) if recovered.recipients > 0 || recovered.attempts > 0 => info!(
                recipients = recovered.recipients,
                attempts = recovered.attempts,
                "queue recovered: interrupted deliveries will be sent again"
            ),
            Ok(_) => {}
            Err(error) => warn!(%error, "queue recovery failed"),
        }
        info!(
            relay = self.config.relay.as_ref().map(|r| r.to_string()),
            "outbound delivery worker started"
        );
        while !shutdown.is_triggered() {
            let (_, full_batch) = self.start_due(&shutdown).await;
            if full_batch {
                continue;
            }
            tokio::select! {
                _ = shutdown.triggered() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
        debug!("outbound delivery worker stopped");
    }

    /// One pass, the body of [`Worker::run`]'s loop: claims as many due recipients as there
    /// are free connections and starts a delivery for each (tracked by `shutdown`), then
    /// tidies the kept connections and domain limits. The deliveries started, and whether
    /// they took every free connection (more may be due).
    async fn start_due(self: &Arc<Self>, shutdown: &Shutdown) -> (Vec<JoinHandle<()>>, bool) {
        let free = self.global.available_permits();
        let mut started = Vec::new();
        if free > 0 {
            match self.store.claim_due(self.clock.unix(), free).await {
                Ok(claimed) => {
                    for recipient in claimed {
                        let permit = self
                            .global
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed");
                        let worker = self.clone();
                        started.push(shutdown.spawn(async move {
                            worker.deliver(recipient).await;
                            drop(permit);
                            // A connection is free: look at the queue again.
                            worker.wake.notify_one();
                        }));
                    }
                }
                Err(error) => warn!(%error, "cannot read the outbound queue"),
            }
        }
        self.idle.sweep();
        // Limits of domains nobody is sending to are made again when needed.
        self.domains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, limit| Arc::strong_count(limit) > 1);
        let full = free > 0 && started.len() == free;
        (started, full)
    }

    /// One pass of the loop on demand, then waits for the deliveries it started: the number
    /// of recipients it attempted. For tests that must know the worker looked and found
    /// nothing to do, rather than sleep and hope it has looked.
    pub async fn run_once(self: &Arc<Self>, shutdown: &Shutdown) -> usize {
        let (started, _) = self.start_due(shutdown).await;
        let attempted = started.len();
        for delivery in started {
            // A delivery that panicked was still attempted; its panic is the test's to see
            // in the log, not a reason to lose the count.
            let _ = delivery.await;
        }
        attempted
    }

    /// The per-domain limit of a recipient domain.
    fn domain_limit(&self, domain: &str) -> Arc<Semaphore> {
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        domains
            .entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_per_domain)))
            .clone()
    }

    /// One recipient, start to finish: record, attempt, record the end.
    async fn deliver(&self, recipient: Claimed) {
        let limit = self.domain_limit(&recipient.domain);
        let _permit = limit
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let attempt_id = match self
            .store
            .begin_attempt(&recipient, self.clock.unix())
            .await
        {
            Ok(id) => id,
            Err(error) => {
                // Nothing was sent; the row stays `sending` until the next start recovers it.
                warn!(%error, recipient = %recipient.address, "cannot record the attempt; not sending");
                return;
            }
        };
        if recipient.attempts == 0 {
            self.events.notify_one(); // `dispatch`
        }
        let started = Instant::now();
        let attempted = self.attempt(&recipient).await;
        let now = self.clock.unix();
        let (end, code, response) = match attempted.result {
            Ok((code, text)) => (AttemptEnd::Delivered, Some(code), text),
            Err(failure) => {
                let end = if failure.permanent {
                    AttemptEnd::Bounced
                } else {
                    let next_attempt_at = now + backoff(recipient.attempts + 1);
                    if next_attempt_at >= recipient.expires_at {
                        AttemptEnd::Expired
                    } else {
                        AttemptEnd::Deferred { next_attempt_at }
                    }
                };
                (end, failure.code, failure.text)
            }
        };
        self.outbound.metrics().delivery(match end {
            AttemptEnd::Delivered => Delivery::Delivered,
            AttemptEnd::Deferred { .. } => Delivery::Deferred,
            AttemptEnd::Bounced => Delivery::Bounced,
            AttemptEnd::Expired => Delivery::Expired,
        });
        info!(
            id = %recipient.uuid,
            domain = %recipient.domain,
            recipient = %recipient.address,
            host = attempted.host.as_deref().unwrap_or("-"),
            code = code.unwrap_or(0),
            outcome = ?end,
            "outbound attempt"
        );
        let report = AttemptReport {
            end,
            host: attempted.host,
            code,
            response,
            tls: attempted.tls.map(|tls| tls.to_string()),
            duration_ms: started.elapsed().as_millis() as i64,
            at: now,
        };
        if let Err(error) = self
            .store
            .finish_attempt(&recipient, attempt_id, report)
            .await
        {
            warn!(%error, recipient = %recipient.address, "cannot record the attempt's end");
        }
        self.events.notify_one();
    }

    /// Builds the envelope and the signed bytes, then tries the hosts in order.
    async fn attempt(&self, recipient: &Claimed) -> Attempted {
        let failed = |failure: Failure| Attempted {
            host: None,
            tls: None,
            result: Err(failure),
        };
        let envelope = match envelope(&recipient.envelope_from, &recipient.address) {
            Ok(envelope) => envelope,
            Err(failure) => return failed(failure),
        };
        let raw = match self.store.outbound_content(recipient.message_id).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return failed(Failure::permanent("the message content is gone")),
            Err(error) => return failed(Failure::temporary(error.to_string())),
        };
        // Each recipient's copy carries its own tracking tokens, so it is signed after.
        let raw = self
            .outbound
            .instrument_for(
                &recipient.uuid,
                &recipient.address,
                &raw,
                recipient.track_opens,
                recipient.track_clicks,
            )
            .await;
        let raw = match self.sign(&recipient.header_from, raw).await {
            Ok(raw) => raw,
            Err(failure) => return failed(failure),
        };
        let route = match self.route(recipient).await {
            Ok(route) => route,
            Err(failure) => return failed(failure),
        };
        let mut attempted = self
            .send_to_hosts(&route.hosts, route.policy, &envelope, &raw)
            .await;
        if let (Err(failure), Some(required)) = (&mut attempted.result, &route.required)
            && failure.tls_required
        {
            failure.text = format!("{required}: {}", failure.text);
        }
        if let Some(testing) = &route.testing {
            report_testing(testing, &recipient.domain, &attempted);
        }
        attempted
    }

    /// The relay, or the recipient domain's MX hosts, and the TLS they must be reached with.
    async fn route(&self, recipient: &Claimed) -> Result<Route, Failure> {
        let required = recipient.require_tls.then_some(Required::Message);
        if let Some(relay) = &self.config.relay {
            let host = relay_host(relay).await?;
            // Mail and password leave this machine only over verified TLS.
            let local = host.addresses.iter().all(|ip| ip.is_loopback());
            let policy = match local && !recipient.require_tls {
                true => TlsPolicy::VerifiedIfOffered,
                false => TlsPolicy::Verified,
            };
            return Ok(Route {
                hosts: vec![host],
                policy,
                required,
                testing: None,
            });
        }
        let hosts = self
            .resolver
            .hosts(&recipient.domain)
            .await
            .map_err(|error| match error.is_permanent() {
                true => Failure::permanent(error.to_string()),
                false => Failure::temporary(error.to_string()),
            })?;
        let listed = self.config.require_tls.contains(&recipient.domain);
        let policy = match listed || recipient.require_tls {
            true => TlsPolicy::Verified,
            false => TlsPolicy::Opportunistic,
        };
        let sts = self
            .mta_sts
            .policy(&recipient.domain, self.clock.unix())
            .await;
        match sts {
            Some(known) if known.policy.mode == Mode::Enforce => Ok(Route {
                hosts: enforced_hosts(&known, hosts)?,
                policy: TlsPolicy::Verified,
                required: Some(Required::MtaSts(known.describe())),
                testing: None,
            }),
            Some(testing) if policy == TlsPolicy::Opportunistic => Ok(Route {
                hosts,
                policy: TlsPolicy::Testing,
                required,
                testing: Some(testing),
            }),
            testing => Ok(Route {
                hosts,
                policy,
                required,
                testing,
            }),
        }
    }

    /// DKIM-signs with the From domain's key when Postern has a sending domain for it.
    async fn sign(&self, header_from: &str, raw: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let domain = crate::mail::address::header_domain(header_from);
        let row = match self.store.sending_domain(&domain).await {
            Ok(row) => row,
            Err(error) => return Err(Failure::temporary(error.to_string())),
        };
        let Some(row) = row else {
            return Ok(raw);
        };
        // Parsing the key and an RSA signature take a millisecond or so: off the async threads.
        tokio::task::spawn_blocking(move || dkim_sign(&row, raw))
            .await
            .map_err(|e| e.to_string())
            .and_then(|signed| signed)
            .map_err(|reason| Failure::temporary(format!("DKIM signing for {domain}: {reason}")))
    }

    /// Tries each address of each host in order until one answers the transaction.
    async fn send_to_hosts(
        &self,
        hosts: &[MxHost],
        policy: TlsPolicy,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Attempted {
        let mut last = Attempted {
            host: None,
            tls: None,
            result: Err(Failure::temporary("no host to try")),
        };
        let port = match &self.config.relay {
            Some(relay) => relay.port,
            None => self.config.port,
        };
        for host in hosts {
            for ip in &host.addresses {
                let destination = Destination {
                    address: SocketAddr::new(*ip, port),
                    name: host.name.clone(),
                    policy,
                };
                match self.send_to_address(destination, envelope, raw).await {
                    AddressOutcome::Unreachable(attempted) => last = attempted,
                    AddressOutcome::Finished(attempted) => return attempted,
                    // A kept connection the server has closed meanwhile: try afresh.
                    AddressOutcome::StaleConnection => {
                        return Box::pin(self.send_to_hosts(
                            std::slice::from_ref(host),
                            policy,
                            envelope,
                            raw,
                        ))
                        .await;
                    }
                }
            }
        }
        last
    }

    /// One transaction with one address of a host, over a kept connection when there is one.
    async fn send_to_address(
        &self,
        destination: Destination,
        envelope: &Envelope,
        raw: &[u8],
    ) -> AddressOutcome {
        let reused = self.idle.take(&destination);
        let was_reused = reused.is_some();
        let (mut connection, tls) = match reused {
            Some(idle) => idle,
            None => match self.connect_bounded(&destination).await {
                Ok(connected) => connected,
                Err(failure) => {
                    debug!(host = %destination.name, address = %destination.address, error = %failure.text, "connection failed");
                    return AddressOutcome::Unreachable(Attempted {
                        host: Some(destination.name.clone()),
                        tls: None,
                        result: Err(failure),
                    });
                }
            },
        };
        let address = destination.address;
        let attempted = |result, tls| Attempted {
            host: Some(destination.name.clone()),
            tls,
            result,
        };
        let sent =
            tokio::time::timeout(self.config.timeout * 2, connection.send(envelope, raw)).await;
        let Ok(sent) = sent else {
            connection.abort().await;
            let timed_out = Failure::temporary("timed out during the transaction");
            return AddressOutcome::Finished(attempted(Err(timed_out), tls));
        };
        match sent {
            Ok(response) => {
                let code = u16::from(response.code());
                let text = one_line(&response.message().collect::<Vec<_>>().join(" "));
                self.idle.put(destination.clone(), connection, tls.clone());
                AddressOutcome::Finished(attempted(Ok((code, text)), tls))
            }
            Err(error) if was_reused && error.status().is_none() => {
                debug!(%address, %error, "a reused connection failed; reconnecting");
                AddressOutcome::StaleConnection
            }
            Err(error) => AddressOutcome::Finished(attempted(Err(Failure::from_smtp(&error)), tls)),
        }
    }

    /// [`Worker::connect`] bounded as a whole (a server that greets and then stalls).
    async fn connect_bounded(&self, destination: &Destination) -> Result<Connected, Failure> {
        tokio::time::timeout(self.config.timeout * 2, self.connect(destination))
            .await
            .unwrap_or_else(|_| Err(Failure::temporary("timed out before the transaction")))
    }

    /// Connects, says EHLO, upgrades with STARTTLS as the destination's policy says, logs in
    /// to the relay.
    async fn connect(&self, destination: &Destination) -> Result<Connected, Failure> {
        let (connection, plain) = self.greet(destination.address).await?;
        let policy = destination.policy;
        let (connection, tls) = if !connection.can_starttls() {
            if policy == TlsPolicy::Verified {
                let mut connection = connection;
                connection.abort().await;
                return Err(Failure::tls(format!(
                    "{} does not offer STARTTLS and TLS is required",
                    self.describe(destination)
                )));
            }
            if policy == TlsPolicy::Testing {
                warn!(host = %destination.name,
                    "MTA-STS testing: enforce would have refused this MX (no STARTTLS); sending without TLS");
            }
            (connection, None)
        } else if !policy.verifies() {
            self.opportunistic(destination, connection, plain).await?
        } else {
            let name = &destination.name;
            match starttls::upgrade(connection, plain, &self.tls, name, true, &self.hello).await {
                Ok((connection, negotiated)) => (connection, Some(negotiated)),
                Err(error) if policy == TlsPolicy::Testing => {
                    let failure = self.tls_failure(destination, error);
                    warn!(host = %destination.name, reason = %failure.text,
                        "MTA-STS testing: enforce would have refused this MX; sending with opportunistic TLS");
                    let (connection, plain) = self.greet(destination.address).await?;
                    self.opportunistic(destination, connection, plain).await?
                }
                Err(error) => return Err(self.tls_failure(destination, error)),
            }
        };
        let connection = self.log_in(connection).await?;
        Ok((connection, tls))
    }

    /// STARTTLS taking any certificate, plain text if the handshake fails (the connection
    /// was greeted and offers STARTTLS).
    async fn opportunistic(
        &self,
        destination: &Destination,
        connection: AsyncSmtpConnection,
        plain: starttls::Detachable,
    ) -> Result<Connected, Failure> {
        let name = &destination.name;
        match starttls::upgrade(connection, plain, &self.tls, name, false, &self.hello).await {
            Ok((connection, negotiated)) => Ok((connection, Some(negotiated))),
            Err(_) => {
                debug!(address = %destination.address, "STARTTLS failed; sending without TLS");
                Ok((self.greet(destination.address).await?.0, None))
            }
        }
    }

    /// A TCP connection to `address`, greeted by lettre (EHLO sent).
    async fn greet(
        &self,
        address: SocketAddr,
    ) -> Result<(AsyncSmtpConnection, starttls::Detachable), Failure> {
        let stream = tokio::time::timeout(self.config.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| Failure::temporary(format!("connecting to {address} timed out")))?
            .map_err(|e| Failure::temporary(format!("cannot connect to {address}: {e}")))?;
        // Without it, the end of DATA (a small write after the body) waits for the
        // server's delayed ACK: 40 ms per message on Linux.
        let _ = stream.set_nodelay(true);
        starttls::greet(stream, &self.hello)
            .await
            .map_err(|e| Failure::from_smtp(&e))
    }

    /// AUTH with the relay's user, when there is one.
    async fn log_in(
        &self,
        mut connection: AsyncSmtpConnection,
    ) -> Result<AsyncSmtpConnection, Failure> {
        if let Some(relay) = &self.config.relay
            && let Some(user) = &relay.username
        {
            let credentials =
                Credentials::new(user.clone(), relay.password.clone().unwrap_or_default());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| Failure::from_smtp(&e))?;
        }
        Ok(connection)
    }

    /// A failed STARTTLS where TLS had to be verified: temporary, naming the host.
    fn tls_failure(&self, destination: &Destination, error: starttls::UpgradeError) -> Failure {
        let reason = match error {
            starttls::UpgradeError::Smtp(error) => {
                format!("STARTTLS failed: {}", Failure::from_smtp(&error).text)
            }
            starttls::UpgradeError::Tls(error) => error.to_string(),
        };
        Failure::tls(format!("{}: {reason}", self.describe(destination)))
    }

    /// The destination as a reason names it: `relay 10.0.0.5:587` or `mx.example.com
    /// (192.0.2.1:25)`.
    fn describe(&self, destination: &Destination) -> String {
        match &self.config.relay {
            Some(relay) => format!("relay {}:{}", relay.host, relay.port),
            None => format!("{} ({})", destination.name, destination.address),
        }
    }
}

/// The message with its `DKIM-Signature` for the sending domain `row`.
fn dkim_sign(row: &SendingDomainRow, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    super::dkim::sign(row, &raw).map_err(|e| e.to_string())
}

/// The MX hosts an `enforce` policy allows, in preference order; none is a temporary
/// failure naming the policy and the hosts (the policy or the MX may be being changed).
fn enforced_hosts(known: &Known, hosts: Vec<MxHost>) -> Result<Vec<MxHost>, Failure> {
    let names: Vec<String> = hosts.iter().map(|host| host.name.clone()).collect();
    let allowed: Vec<MxHost> = hosts
        .into_iter()
        .filter(|host| known.policy.allows(&host.name))
        .collect();
    if allowed.is_empty() {
        return Err(Failure::temporary(format!(
            "{}: no MX host is one it allows (MX: {}; policy mx: {})",
            known.describe(),
            names.join(", "),
            known.policy.mx.join(", ")
        )));
    }
    Ok(allowed)
}

/// Logs an MX host a `testing` MTA-STS policy does not list (its TLS is checked, and a
/// failure logged, as the connection is made: [`TlsPolicy::Testing`]).
fn report_testing(known: &Known, domain: &str, attempted: &Attempted) {
    if let Some(host) = &attempted.host
        && !known.policy.allows(host)
    {
        warn!(domain, host, policy = %known.describe(),
            "MTA-STS testing: enforce would have refused this MX host (not in the policy's mx)");
    }
}

/// The relay as the one host to try.
async fn relay_host(relay: &RelayUrl) -> Result<MxHost, Failure> {
    let addresses = tokio::net::lookup_host((relay.host.as_str(), relay.port))
        .await
        .map_err(|e| Failure::temporary(format!("relay {}: {e}", relay.host)))?
        .map(|address| address.ip())
        .collect::<Vec<_>>();
    Ok(MxHost {
        name: relay.host.clone(),
        addresses,
    })
}

fn envelope(from: &str, to: &str) -> Result<Envelope, Failure> {
    let parse = |text: &str| {
        text.parse::<Address>()
            .map_err(|e| Failure::permanent(format!("invalid address {text:?}: {e}")))
    };
    Envelope::new(Some(parse(from)?), vec![parse(to)?])
        .map_err(|e| Failure::permanent(e.to_string()))
}

/// Reply text on one line, at most 512 characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(512).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_schedule_then_every_eight_hours() {
        let waits: Vec<i64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800]);
        assert_eq!(backoff(0), BACKOFF_AFTER);
    }
}
