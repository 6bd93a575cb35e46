//! `postern check`: validates a config file and prints what it would run (listeners, TLS,
//! sign-in, delivery, routes, sending domains), secrets masked. `serve` prints the same
//! summary before it starts. `check` ends with "Where data goes" (the privacy report).

use std::net::SocketAddr;
use std::path::Path;

use super::error::CliError;
use crate::config::{CertSource, Config, DeliveryConfig, OutboundConfig};
use crate::privacy::Runtime;

pub(super) fn check(path: &Path) -> anyhow::Result<()> {
    let config = super::load(path)?;
    private_data_dir(&config)?;
    print_summary(&config);
    print_certificate(&config)?;
    for warning in config.dns.warnings() {
        println!("warning:  {warning}");
    }
    if let Some(warning) = config.web.any_host_warning() {
        println!("warning:  {warning}");
    }
    super::keyring::print_keyring(&config)?;
    super::outbound::print_sending_domains(&config)?;
    print_where_data_goes(&config)?;
    println!("config OK");
    Ok(())
}

/// Refuses a data directory (or anything in it) that other users can open; a directory that
/// does not exist yet is fine: `serve` creates it 0700.
pub(super) fn private_data_dir(config: &Config) -> Result<(), CliError> {
    if !config.data_dir.exists() {
        return Ok(());
    }
    crate::datadir::check_dir(&config.data_dir).map_err(|error| CliError::Usage(error.into()))
}

/// One line per setting a sysadmin would want to see before starting.
pub(super) fn print_summary(config: &Config) {
    print_smtp(config);
    print_web(config);
    let dns = dns_list(&config.dns.servers);
    println!(
        "SPF       {} (DNS: {dns}; DKIM/DMARC where an address asks)",
        if config.auth.spf { "on" } else { "off" }
    );
    print_outbound(&config.outbound, &config.dns.servers);
    print_webhooks(&config.delivery);
    println!(
        "Data      {}  (private: directory 0700, files 0600)",
        config.data_dir.display()
    );
    let tracking = config.tracking_url(config.web.listen);
    println!("Tracking  {tracking}/t/…  (open pixel and click links, where tracking is on)");
    if let Some(warning) = tracking_warning(config) {
        println!("warning:  {warning}");
    }
    println!("Retention {}", config.retention.summary());
    print_routes(config);
}

/// The SMTP listener, its STARTTLS certificate and the submission listeners.
fn print_smtp(config: &Config) {
    println!(
        "SMTP      {}  (max {} connections, {} bytes per message)",
        config.smtp.listen, config.smtp.max_connections, config.smtp.max_message_size
    );
    let names = config.tls.all_names(&config.hostname).join(", ");
    let tls = match &config.tls.source {
        CertSource::Off => "off: no STARTTLS and no HTTPS ([tls] mode = \"off\")".to_string(),
        CertSource::Files { cert, key } => format!(
            "PEM files {} + {} (read again when they change, or on SIGHUP)",
            cert.display(),
            key.display()
        ),
        CertSource::SelfSigned => format!("self-signed for {names}"),
        CertSource::Acme(acme) => format!(
            "ACME from {} for {names} ({}; contact {})",
            acme.directory,
            acme.challenge.describe(),
            acme.contact.join(", ")
        ),
    };
    println!("TLS       {tls}");
    if !config.submission.tls_listen.is_empty() {
        println!(
            "Submission {}  (implicit TLS, RFC 8314)",
            joined(&config.submission.tls_listen)
        );
    }
    if config.submission.listen.is_empty() {
        println!("Submission off (no [submission] listen): apps can send through the API only");
    } else {
        println!(
            "Submission {}  (STARTTLS required before AUTH PLAIN/LOGIN; credential username + token)",
            joined(&config.submission.listen)
        );
    }
}

/// What the listeners would serve: the certificate's names and expiry (files are read now,
/// so a broken pair fails the check), and a warning for each way mail or a browser would
/// meet no TLS or an untrusted certificate.
fn print_certificate(config: &Config) -> Result<(), CliError> {
    let certificates = crate::tls::Certificates::new(&config.tls, &config.hostname)
        .map_err(|error| CliError::Usage(error.into()))?;
    let Some(certificates) = certificates else {
        println!(
            "warning:  [tls] mode = \"off\": the SMTP listeners offer no TLS, so mail reaches this host in clear"
        );
        return Ok(());
    };
    let status = certificates.status();
    match &config.tls.source {
        CertSource::Acme(_) => println!(
            "Cert      issued by the CA once `serve` runs; until then a temporary self-signed one"
        ),
        _ => println!(
            "Cert      {}; issuer {}; expires {}",
            status.names.join(", "),
            status.issuer,
            status.expires_text()
        ),
    }
    for warning in certificate_warnings(config, certificates.names(), &status) {
        println!("warning:  {warning}");
    }
    Ok(())
}

/// The ways the configured certificate (for `names`, serving as `status` says) falls short.
fn certificate_warnings(
    config: &Config,
    names: &[String],
    status: &crate::tls::CertificateStatus,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if !config.tls.is_configured() {
        warnings.push(
            "no [tls] section: SMTP offers STARTTLS with a self-signed certificate and the \
             dashboard is plain HTTP; set [tls] mode = \"acme\" (see postern init)"
                .to_string(),
        );
    }
    if matches!(config.tls.source, CertSource::Files { .. }) {
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| !covers(&status.names, name))
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "the certificate does not cover {}: clients checking names will refuse it",
                missing.join(", ")
            ));
        }
        match status.days_left(std::time::SystemTime::now()) {
            Some(days) if days < 0 => warnings.push("the certificate has expired".into()),
            Some(days) if days < 14 => {
                warnings.push(format!("the certificate expires in {days} days: renew it"))
            }
            _ => {}
        }
    }
    warnings
}

/// Whether a certificate naming `names` covers `name` (exactly or by a `*.` wildcard for
/// one label).
fn covers(names: &[String], name: &str) -> bool {
    names
        .iter()
        .any(|pattern| crate::dns::name_matches(pattern, name))
}

/// `https` or `http`, as the web listener serves.
fn scheme(config: &Config) -> &'static str {
    match config.web.https {
        true => "https",
        false => "http",
    }
}

/// The web listener, its sessions, the sign-in providers and the API.
fn print_web(config: &Config) {
    let web = &config.web;
    println!(
        "Web       {}://{}/  (sign-in required; cookies {}; sessions end after {} min idle, {} h at most)",
        scheme(config),
        web.listen,
        if web.secure_cookies {
            "Secure"
        } else {
            "not Secure"
        },
        web.session_idle.as_secs() / 60,
        web.session_lifetime.as_secs() / 3600,
    );
    println!("Dashboard {}://{}/", scheme(config), web.listen);
    if web.https {
        let hsts = match config.tls.is_ca_issued() {
            true => "Strict-Transport-Security sent",
            false => "no HSTS with a self-signed certificate",
        };
        println!("HTTPS     on web.listen with the [tls] certificate; {hsts}");
    }
    if let Some(http) = web.http_listen {
        println!("HTTP      {http}  (redirects to HTTPS; ACME HTTP-01 challenges)");
    }
    for provider in &web.oidc {
        // The URL to register with the provider; never the client secret.
        let callback = match &web.public_url {
            Some(url) => format!(
                "{}/signin/oidc/{}/callback",
                url.as_str().trim_end_matches('/'),
                provider.name
            ),
            None => format!(
                "http://{}/signin/oidc/{}/callback (no web.public_url: loopback only)",
                web.listen, provider.name
            ),
        };
        println!(
            "Sign-in   \"Sign in with {}\" ({}, client id {}); register the callback {callback}",
            provider.label,
            provider.kind.describe(),
            provider.client_id,
        );
    }
    println!("API       {}://{}/api/messages", scheme(config), web.listen);
}

/// The delivery settings; the relay's password masked.
fn print_outbound(outbound: &OutboundConfig, dns: &Option<Vec<SocketAddr>>) {
    if !outbound.deliver {
        println!("Outbound  delivery off (outbound.deliver = false): mail stays queued");
        return;
    }
    let route = match &outbound.relay {
        Some(relay) => format!("through the relay {relay} (verified TLS)"),
        None => format!(
            "to each domain's MX on port {} (DNS: {}); MTA-STS enforce policies honoured{}",
            outbound.port,
            dns_list(dns),
            match outbound.mta_sts_port {
                443 => String::new(),
                port => format!(" (policies fetched from port {port}, a test setting)"),
            }
        ),
    };
    println!(
        "Outbound  {route}; EHLO {}; STARTTLS when offered{}{}; max {} connections, {} per domain; retried for {} h",
        outbound.helo_name,
        if outbound.require_tls.is_empty() {
            String::new()
        } else {
            format!(
                ", verified and required for {}",
                outbound.require_tls.join(", ")
            )
        },
        match &outbound.extra_ca_file {
            Some(path) => format!("; extra CA {}", path.display()),
            None => String::new(),
        },
        outbound.max_connections,
        outbound.max_per_domain,
        outbound.expiry.as_secs() / 3600,
    );
}

/// Where POSTs to the apps may go: redirects, plain HTTP, the roots trusted.
fn print_webhooks(delivery: &DeliveryConfig) {
    let redirects = match delivery.follow_cross_origin_redirects {
        true => "any origin but https -> http",
        false => "same origin or http -> https on the same host",
    };
    let plain = match delivery.require_https {
        true => "refused off loopback (require_https)",
        false => "allowed",
    };
    let roots = match &delivery.extra_ca_file {
        Some(path) => format!(
            "system roots + {} ({} certificates)",
            path.display(),
            delivery.extra_roots.len()
        ),
        None => "system roots".to_string(),
    };
    println!(
        "Webhooks  redirects followed: {redirects}; plain http://: {plain}; TLS verified against {roots}"
    );
}

/// Where inbound mail goes: the domains, then the addresses (target URLs masked).
fn print_routes(config: &Config) {
    if config.addresses.is_empty() && config.domains.iter().all(|d| d.target.is_none()) {
        println!("Addresses none: every recipient will be refused with 550");
    }
    for domain in &config.domains {
        let target = domain.target.as_ref().map(|t| format!(" -> {t}"));
        let regex = domain
            .auth_regex
            .as_ref()
            .map(|r| format!(" (auth_regex {})", r.as_str()));
        println!(
            "Domain    {}{}{}",
            domain.domain,
            target.unwrap_or_default(),
            regex.unwrap_or_default()
        );
    }
    for address in &config.addresses {
        println!(
            "Address   {} -> {} ({})",
            address.pattern,
            address.target,
            address.format.as_str()
        );
    }
}

fn joined(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn dns_list(servers: &Option<Vec<SocketAddr>>) -> String {
    match servers {
        None => "the system resolver".to_string(),
        Some(servers) => joined(servers),
    }
}

/// Tracking links must reach Postern from the recipients' machines: a loopback (or
/// derived) base URL only works on this machine.
fn tracking_warning(config: &Config) -> Option<String> {
    let url = config.tracking_url(config.web.listen);
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // HTTPS for server.hostname with a CA's certificate is a URL recipients can reach.
    let public_https = config.web.https && config.tls.is_ca_issued();
    match (&config.outbound.tracking_url, loopback) {
        (_, true) => Some(format!(
            "tracking links point at {url}, which recipients cannot reach: set [outbound] \
             tracking_url, or turn tracking off per credential (--no-track-opens, --no-track-clicks)"
        )),
        (None, false) if !public_https => Some(format!(
            "[outbound] tracking_url is not set; tracking links point at {url} (the web listener)"
        )),
        _ => None,
    }
}

/// The privacy report: every destination and what is kept; the managed entries are read
/// when the database exists.
fn print_where_data_goes(config: &Config) -> anyhow::Result<()> {
    let runtime = if config.data_dir.join("postern.db").exists() {
        let store = super::open_store(config)?;
        super::runtime().block_on(Runtime::load(&store))?
    } else {
        Runtime::default()
    };
    let system_dns = crate::dns::system_servers().map_err(|e| e.to_string());
    let report = crate::privacy::report(config, &runtime, system_dns);
    println!("Where data goes");
    if report.destinations.is_empty() {
        println!("  nowhere: nothing leaves this machine");
    }
    for d in &report.destinations {
        println!(
            "  {} {} ({}): {}; encrypted: {}",
            d.kind.describe(),
            d.to,
            d.source,
            d.sends.describe(),
            d.encryption.describe()
        );
    }
    println!("What is stored (in {})", config.data_dir.display());
    for stored in &report.stored {
        let encrypted = if stored.encrypted {
            "encrypted"
        } else {
            "not encrypted"
        };
        println!("  {}: {}; {encrypted}", stored.what, stored.kept);
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    Ok(())
}
