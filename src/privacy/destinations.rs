//! The destinations of a [`PrivacyReport`](super::PrivacyReport), one function per side:
//! inbound (targets and callbacks, config and managed), events webhooks (per credential),
//! outbound (relay or MX, and the MX's MTA-STS policy hosts), sign-in providers, and the DNS
//! servers every lookup asks.

use std::net::{IpAddr, SocketAddr};

use super::{Destination, Encryption, Kind, Runtime, Sends};
use crate::config::{AddressOptions, Config, OidcProvider, ProviderKind, TargetUrl};

/// Every destination of `config` and `runtime`, inbound first, DNS last.
pub fn destinations(
    config: &Config,
    runtime: &Runtime,
    system_dns: &[SocketAddr],
) -> Vec<Destination> {
    let mut list = inbound(config, runtime);
    list.extend(events(runtime));
    list.extend(object_stores(runtime));
    list.extend(outbound(config));
    list.extend(mta_sts(config));
    list.extend(config.web.oidc.iter().flat_map(oidc));
    list.extend(acme_ca(config));
    let named = list.iter().any(|d| d.host.as_deref().is_some_and(is_name));
    list.extend(dns(config, runtime, named, system_dns));
    list
}

const TARGET: &str = "every message for it, as the configured format";
const AUTH: &str = "at RCPT time: recipient, sender, size, client IP, HELO name, SPF result";
const ERROR: &str = "after a non-2xx target answer: its status and text, sender, recipient";

/// Targets and callbacks; dev mode has its forward only (it routes nothing else).
fn inbound(config: &Config, runtime: &Runtime) -> Vec<Destination> {
    if let Some(dev) = &config.dev {
        let forward = dev.forward.as_ref().map(|url| {
            let detail = "every received message, as JSON Normalized (dev mode)";
            web(
                Kind::DevForward,
                "postern dev --forward".into(),
                url,
                Sends::FullMessage,
                detail,
            )
        });
        return forward.into_iter().collect();
    }
    let mut list = Vec::new();
    for domain in &config.domains {
        let source = format!("config [[domain]] {}", domain.domain);
        list.extend(
            domain
                .target
                .as_ref()
                .map(|url| web(Kind::Target, source, url, Sends::FullMessage, TARGET)),
        );
    }
    for address in &config.addresses {
        let source = format!("config [[address]] {}", address.pattern);
        list.push(web(
            Kind::Target,
            source.clone(),
            &address.target,
            Sends::FullMessage,
            TARGET,
        ));
        list.extend(callbacks(&source, &address.options));
    }
    for domain in &runtime.domains {
        let source = format!("managed domain {}", domain.domain);
        list.extend(
            domain
                .target
                .as_deref()
                .map(|url| text(Kind::Target, source, url, Sends::FullMessage, TARGET)),
        );
    }
    for address in &runtime.addresses {
        let source = format!("managed address {}", address.address);
        let urls = [
            (Kind::Target, &address.target, Sends::FullMessage, TARGET),
            (
                Kind::AuthCallback,
                &address.auth_callback,
                Sends::Metadata,
                AUTH,
            ),
            (
                Kind::ErrorCallback,
                &address.error_callback,
                Sends::Metadata,
                ERROR,
            ),
        ];
        for (kind, url, sends, detail) in urls {
            list.extend(
                url.as_deref()
                    .map(|url| text(kind, source.clone(), url, sends, detail)),
            );
        }
    }
    list
}

fn callbacks(source: &str, options: &AddressOptions) -> Vec<Destination> {
    let auth = options.auth_callback.as_ref().map(|url| {
        web(
            Kind::AuthCallback,
            source.into(),
            url,
            Sends::Metadata,
            AUTH,
        )
    });
    let error = options.error_callback.as_ref().map(|url| {
        web(
            Kind::ErrorCallback,
            source.into(),
            url,
            Sends::Metadata,
            ERROR,
        )
    });
    auth.into_iter().chain(error).collect()
}

/// The events webhook of each credential (a revoked one's mail may still have events due).
/// S3-compatible stores: what the addresses that name them put there. A local store keeps
/// its files here (sealed) and hands out signed links in the payload, so it goes nowhere.
fn object_stores(runtime: &Runtime) -> Vec<Destination> {
    let detail = "the attachments (attachment_store) or whole messages (message_store) of the \
                  addresses that name this store, uploaded before the POST; never deleted \
                  by Postern";
    (runtime.object_stores.iter())
        .filter(|store| store.kind == "s3")
        .map(|store| {
            let region = store.region.as_deref().unwrap_or("us-east-1");
            let endpoint = match &store.endpoint {
                Some(endpoint) => endpoint.clone(),
                None => format!("https://s3.{region}.amazonaws.com"),
            };
            let source = format!(
                "store {} (bucket {})",
                store.name,
                store.bucket.as_deref().unwrap_or("?")
            );
            text(
                Kind::ObjectStore,
                source,
                &endpoint,
                Sends::FullMessage,
                detail,
            )
        })
        .collect()
}

fn events(runtime: &Runtime) -> Vec<Destination> {
    let detail = "delivery events of mail sent with this credential: message id, recipient, \
                  delivered, deferred, bounced, opened, clicked, with details";
    runtime
        .credentials
        .iter()
        .filter_map(|credential| {
            let url = credential
                .events_url
                .as_deref()
                .filter(|url| !url.is_empty())?;
            let revoked = if credential.revoked_at.is_some() {
                " (revoked)"
            } else {
                ""
            };
            let source = format!("credential {}{revoked}", credential.username);
            Some(text(
                Kind::EventsWebhook,
                source,
                url,
                Sends::Events,
                detail,
            ))
        })
        .collect()
}

/// The relay, or every recipient domain's MX; nothing when mail is only captured or queued.
fn outbound(config: &Config) -> Option<Destination> {
    let outbound = &config.outbound;
    let delivers = outbound.deliver && (config.dev.is_none() || outbound.relay.is_some());
    if !delivers {
        return None;
    }
    let detail = "every message sent through the API or submission, full, DKIM-signed";
    Some(match &outbound.relay {
        Some(relay) => Destination {
            kind: Kind::Relay,
            source: "[outbound] relay".into(),
            to: relay.to_string(),
            host: Some(relay.host.clone()),
            port: Some(relay.port),
            sends: Sends::FullMessage,
            detail: format!("{detail}; the relay's certificate verified"),
            // Only a relay on this machine may go without STARTTLS (`outbound::worker`).
            encryption: match relay.is_loopback() {
                true => Encryption::WhenOffered,
                false => Encryption::Yes,
            },
        },
        None => Destination {
            kind: Kind::Mx,
            source: "[outbound] (no relay)".into(),
            to: format!(
                "the MX hosts of each recipient domain, port {}",
                outbound.port
            ),
            host: None,
            port: Some(outbound.port),
            sends: Sends::FullMessage,
            detail: match outbound.require_tls.as_slice() {
                [] => detail.into(),
                domains => format!(
                    "{detail}; TLS with a verified certificate required for {}",
                    domains.join(", ")
                ),
            },
            encryption: Encryption::WhenOffered,
        },
    })
}

/// The MTA-STS policy hosts of recipient domains (`outbound::mta_sts`): asked when MX
/// delivery finds a domain's `_mta-sts` TXT record.
fn mta_sts(config: &Config) -> Option<Destination> {
    outbound(config).filter(|mx| mx.kind == Kind::Mx)?;
    let port = config.outbound.mta_sts_port;
    Some(Destination {
        kind: Kind::MtaSts,
        source: "[outbound] (no relay): MTA-STS, RFC 8461".into(),
        to: format!("https://mta-sts.<recipient domain>/.well-known/mta-sts.txt, port {port}"),
        host: None,
        port: Some(port),
        sends: Sends::PolicyRequest,
        detail: "a GET of the recipient domain's policy when its _mta-sts TXT record names one,                  once per policy id and max_age; no mail data; the certificate verified"
            .into(),
        encryption: Encryption::Yes,
    })
}

/// A sign-in provider: its issuer (discovery, token, user info), or GitHub's web and API.
fn oidc(provider: &OidcProvider) -> Vec<Destination> {
    let urls = match &provider.kind {
        ProviderKind::Oidc { issuer } => vec![issuer.clone()],
        ProviderKind::GitHub { web, api } => vec![web.clone(), api.clone()],
    };
    let source = format!("[[web.oidc]] {}", provider.name);
    let detail = "the sign-in code, the client id and secret; it answers the user's email address";
    urls.into_iter()
        .map(|url| {
            url_destination(
                Kind::Oidc,
                source.clone(),
                &url,
                url.to_string(),
                Sends::SignIn,
                detail,
            )
        })
        .collect()
}

/// The ACME directory of `[tls] mode = "acme"` (orders, challenges, certificate downloads).
fn acme_ca(config: &Config) -> Option<Destination> {
    let crate::config::CertSource::Acme(acme) = &config.tls.source else {
        return None;
    };
    let url = url::Url::parse(&acme.directory).ok()?;
    let detail = "the names to certify (server.hostname and [tls] names) and the contact \
                  addresses; it connects back to the HTTPS or port-80 listener to validate them";
    Some(url_destination(
        Kind::AcmeCa,
        "[tls] directory".into(),
        &url,
        url.to_string(),
        Sends::CertificateOrder,
        detail,
    ))
}

/// The DNS servers, with what they are asked; the system resolver's too when host names
/// are connected to (those lookups go through the system resolver whatever `[dns]` says).
fn dns(
    config: &Config,
    runtime: &Runtime,
    named: bool,
    system_dns: &[SocketAddr],
) -> Vec<Destination> {
    let mut uses = Vec::new();
    if config.auth.spf {
        uses.push("SPF of received mail");
    }
    let checks = config
        .addresses
        .iter()
        .any(|a| a.options.dkim || a.options.dmarc)
        || runtime.addresses.iter().any(|a| a.dkim || a.dmarc);
    if checks && config.dev.is_none() {
        uses.push("DKIM and DMARC of received mail");
    }
    if outbound(config).is_some_and(|d| d.kind == Kind::Mx) {
        uses.push("MX and MTA-STS records of recipient domains");
    }
    uses.push("the sending-domain check (on request)");
    let hosts = "the host names of the destinations above";
    let (servers, source) = match &config.dns.servers {
        Some(servers) => (servers.as_slice(), "[dns] servers"),
        None => {
            if named {
                uses.push(hosts);
            }
            (system_dns, "the system resolver (/etc/resolv.conf)")
        }
    };
    let mut list = dns_servers(servers, source, &uses.join(", "));
    if named && config.dns.servers.is_some() {
        list.extend(dns_servers(
            system_dns,
            "the system resolver (/etc/resolv.conf)",
            hosts,
        ));
    }
    list
}

fn dns_servers(servers: &[SocketAddr], source: &str, uses: &str) -> Vec<Destination> {
    servers
        .iter()
        .map(|server| Destination {
            kind: Kind::Dns,
            source: source.into(),
            to: server.to_string(),
            host: Some(server.ip().to_string()),
            port: Some(server.port()),
            sends: Sends::DnsQueries,
            detail: format!("names looked up for: {uses}"),
            encryption: Encryption::No,
        })
        .collect()
}

/// A URL of the config (already checked), shown masked.
fn web(kind: Kind, source: String, url: &TargetUrl, sends: Sends, detail: &str) -> Destination {
    url_destination(kind, source, url.expose(), url.to_string(), sends, detail)
}

/// A URL as stored by the API (checked when it was written; masked all the same).
fn text(kind: Kind, source: String, url: &str, sends: Sends, detail: &str) -> Destination {
    match TargetUrl::parse(url) {
        Ok(url) => web(kind, source, &url, sends, detail),
        Err(_) => Destination {
            kind,
            source,
            to: TargetUrl::mask_str(url),
            host: None,
            port: None,
            sends,
            detail: detail.into(),
            encryption: Encryption::No,
        },
    }
}

fn url_destination(
    kind: Kind,
    source: String,
    url: &url::Url,
    shown: String,
    sends: Sends,
    detail: &str,
) -> Destination {
    Destination {
        kind,
        source,
        to: shown,
        host: url
            .host_str()
            .map(|h| h.trim_matches(['[', ']']).to_string()),
        port: url.port_or_known_default(),
        sends,
        detail: detail.into(),
        encryption: match url.scheme() {
            "https" => Encryption::Yes,
            _ => Encryption::No,
        },
    }
}

/// A host name the system resolver looks up (not an IP address, not `localhost`).
fn is_name(host: &str) -> bool {
    host.parse::<IpAddr>().is_err() && !host.eq_ignore_ascii_case("localhost")
}
