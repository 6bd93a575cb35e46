//! The command line: `postern dev | serve | check | init | user | key`. Only this module
//! (with `main`) reads argv and the environment; everything else receives a [`Config`].
//! `accounts` holds the `user` and `key` commands.

mod accounts;
mod outbound;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, EXAMPLE, RelayUrl, TargetUrl, TlsSource};

const DEFAULT_CONFIG: &str = "/etc/postern/postern.toml";

/// Postern: receives mail for your domains over SMTP and POSTs it to your web app as
/// CloudMailin-compatible JSON. The app's HTTP status becomes the SMTP reply: 2xx → 250,
/// 4xx → 554, 5xx or no answer → 450 (the sender retries).
#[derive(Debug, Parser)]
#[command(name = "postern", version, propagate_version = true)]
#[command(
    after_help = concat!(
        "Quick start:  postern dev      (then follow the printed swaks line)\n",
        "Production:   postern init --output /etc/postern/postern.toml\n",
        "              postern check --config /etc/postern/postern.toml\n",
        "              postern user add --config /etc/postern/postern.toml --email you@example.com\n",
        "              postern serve --config /etc/postern/postern.toml\n",
        "Logging:      POSTERN_LOG=debug (or e.g. POSTERN_LOG=postern=debug,info)",
    )
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Zero-config local mode: accept mail for any address on 127.0.0.1:2525, keep it,
    /// and show it at http://127.0.0.1:8025/ (and /api/messages).
    Dev {
        /// SMTP listen address.
        #[arg(long, default_value = "127.0.0.1:2525", value_name = "IP:PORT")]
        smtp: SocketAddr,
        /// SMTP submission listen address: AUTH with any username and password, with or
        /// without STARTTLS; what is sent is captured, never delivered.
        #[arg(long, default_value = "127.0.0.1:2587", value_name = "IP:PORT")]
        submission: SocketAddr,
        /// Web/API listen address.
        #[arg(long, default_value = "127.0.0.1:8025", value_name = "IP:PORT")]
        web: SocketAddr,
        /// Where the SQLite store lives.
        #[arg(long, default_value = "./postern-data", value_name = "DIR")]
        data_dir: PathBuf,
        /// Also POST every message to this URL as JSON Normalized and answer the sender
        /// as the app answers (2xx → 250, 4xx → 554, 5xx/no answer → 450).
        #[arg(long, value_name = "URL")]
        forward: Option<String>,
        /// Deliver mail sent through the send API via this smarthost
        /// (smtp://user:password@host:587) instead of only capturing it.
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
    },
    /// Run in production from a config file (see `postern init`).
    Serve {
        /// The config file; POSTERN_SECTION__KEY environment variables override it.
        #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file and print what it would run, then exit.
    Check {
        #[arg(long, short, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
        config: PathBuf,
    },
    /// Users who sign in to the dashboard: add, list, delete, reset-totp.
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// API keys for scripts: add, list, revoke.
    #[command(subcommand)]
    Key(accounts::KeyCommand),
    /// SMTP credentials apps send mail with (send API + SMTP submission): add, list, revoke.
    #[command(subcommand)]
    Credential(outbound::CredentialCommand),
    /// Domains apps send from (DKIM keys, DNS records): add, list, remove.
    #[command(subcommand)]
    SendingDomain(outbound::SendingDomainCommand),
    /// The suppression list (addresses no mail is sent to): list, add, remove.
    #[command(subcommand)]
    Suppression(outbound::SuppressionCommand),
    /// Write a commented example config to start from.
    Init {
        /// Where to write it; `-` for standard output.
        #[arg(long, short, default_value = "postern.toml", value_name = "FILE")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = std::env::var("POSTERN_LOG").ok();
    crate::telemetry::init(log.as_deref());
    match cli.command {
        Command::Init { output, force } => init(&output, force),
        Command::User(command) => accounts::user(command),
        Command::Key(command) => accounts::key(command),
        Command::Credential(command) => outbound::credential(command),
        Command::SendingDomain(command) => outbound::sending_domain(command),
        Command::Suppression(command) => outbound::suppression(command),
        Command::Check { config } => match load(&config) {
            Ok(config) => {
                print_summary(&config);
                for warning in config.dns.warnings() {
                    println!("warning:  {warning}");
                }
                if let Err(code) = outbound::print_sending_domains(&config) {
                    return code;
                }
                println!("config OK");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { config } => match load(&config) {
            Ok(config) => run(config, false),
            Err(code) => code,
        },
        Command::Dev {
            smtp,
            submission,
            web,
            data_dir,
            forward,
            relay,
        } => {
            let relay = match relay.as_deref().map(RelayUrl::parse).transpose() {
                Ok(relay) => relay,
                Err(error) => {
                    eprintln!("error: --relay: {error}");
                    return ExitCode::from(2);
                }
            };
            let forward = match forward.as_deref().map(TargetUrl::parse).transpose() {
                Ok(forward) => forward,
                Err(allowed) => {
                    eprintln!(
                        "error: --forward {}: {allowed}",
                        TargetUrl::mask_str(forward.as_deref().unwrap_or(""))
                    );
                    return ExitCode::from(2);
                }
            };
            let mut config = Config::dev(data_dir, smtp, web, forward);
            config.outbound.relay = relay;
            config.submission.listen = vec![submission];
            run(config, true)
        }
    }
}

pub(super) fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path, std::env::vars()).map_err(|error| {
        eprintln!("error: {error}");
        if !path.exists() {
            eprintln!(
                "hint: create one with `postern init --output {}`",
                path.display()
            );
        }
        ExitCode::from(2)
    })
}

fn init(output: &Path, force: bool) -> ExitCode {
    if output == Path::new("-") {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    if output.exists() && !force {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            output.display()
        );
        return ExitCode::from(2);
    }
    if let Err(error) = std::fs::write(output, EXAMPLE) {
        eprintln!("error: cannot write {}: {error}", output.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", output.display());
    println!("next: edit [server] and the [[address]] blocks, then");
    println!("      postern check --config {}", output.display());
    println!(
        "      postern user add --config {} --email you@example.com   (the first admin)",
        output.display()
    );
    println!("      postern serve --config {}", output.display());
    ExitCode::SUCCESS
}

fn dns_list(servers: &Option<Vec<std::net::SocketAddr>>) -> String {
    match servers {
        None => "the system resolver".to_string(),
        Some(servers) => servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The delivery settings; the relay's password masked.
fn print_outbound(
    outbound: &crate::config::OutboundConfig,
    dns: &Option<Vec<std::net::SocketAddr>>,
) {
    if !outbound.deliver {
        println!("Outbound  delivery off (outbound.deliver = false): mail stays queued");
        return;
    }
    let route = match &outbound.relay {
        Some(relay) => format!("through the relay {relay}"),
        None => format!(
            "to each domain's MX on port {} (DNS: {})",
            outbound.port,
            dns_list(dns)
        ),
    };
    println!(
        "Outbound  {route}; EHLO {}; STARTTLS when offered{}; max {} connections, {} per domain; retried for {} h",
        outbound.helo_name,
        if outbound.require_tls.is_empty() {
            String::new()
        } else {
            format!(", required for {}", outbound.require_tls.join(", "))
        },
        outbound.max_connections,
        outbound.max_per_domain,
        outbound.expiry.as_secs() / 3600,
    );
}

fn print_summary(config: &Config) {
    println!(
        "SMTP      {}  (max {} connections, {} bytes per message)",
        config.smtp.listen, config.smtp.max_connections, config.smtp.max_message_size
    );
    let tls = match &config.smtp.tls {
        TlsSource::Off => "off (no certificate configured)".to_string(),
        TlsSource::Files { cert, .. } => format!("STARTTLS with {}", cert.display()),
        TlsSource::SelfSigned => "STARTTLS with a self-signed certificate".to_string(),
    };
    println!("TLS       {tls}");
    if config.submission.listen.is_empty() {
        println!("Submission off (no [submission] listen): apps can send through the API only");
    } else {
        let listen: Vec<String> = config
            .submission
            .listen
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "Submission {}  (STARTTLS required before AUTH PLAIN/LOGIN; credential username + token)",
            listen.join(", ")
        );
    }
    println!(
        "Web       http://{}/  (sign-in required; cookies {}; sessions end after {} min idle, {} h at most)",
        config.web.listen,
        if config.web.secure_cookies {
            "Secure"
        } else {
            "not Secure"
        },
        config.web.session_idle.as_secs() / 60,
        config.web.session_lifetime.as_secs() / 3600,
    );
    println!("Dashboard http://{}/", config.web.listen);
    for provider in &config.web.oidc {
        let callback = match &config.web.public_url {
            Some(url) => format!(
                "{}/signin/oidc/{}/callback",
                url.as_str().trim_end_matches('/'),
                provider.name
            ),
            None => format!(
                "http://{}/signin/oidc/{}/callback (no web.public_url: loopback only)",
                config.web.listen, provider.name
            ),
        };
        println!(
            "Sign-in   \"Sign in with {}\" ({}, client id {}); register the callback {callback}",
            provider.label,
            provider.kind.describe(),
            provider.client_id,
        );
    }
    println!("API       http://{}/api/messages", config.web.listen);
    let dns = dns_list(&config.dns.servers);
    println!(
        "SPF       {} (DNS: {dns}; DKIM/DMARC where an address asks)",
        if config.auth.spf { "on" } else { "off" }
    );
    print_outbound(&config.outbound, &config.dns.servers);
    println!("Data      {}", config.data_dir.display());
    let tracking = config.tracking_url(config.web.listen);
    println!("Tracking  {tracking}/t/…  (open pixel and click links, where tracking is on)");
    if let Some(warning) = tracking_warning(config) {
        println!("warning:  {warning}");
    }
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
    match (&config.outbound.tracking_url, loopback) {
        (_, true) => Some(format!(
            "tracking links point at {url}, which recipients cannot reach: set [outbound] \
             tracking_url, or turn tracking off per credential (--no-track-opens, --no-track-clicks)"
        )),
        (None, false) => Some(format!(
            "[outbound] tracking_url is not set; tracking links point at {url} (the web listener)"
        )),
        _ => None,
    }
}

fn run(config: Config, dev: bool) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(async move {
        let forward = config.dev.as_ref().and_then(|d| d.forward.clone());
        let relay = config.outbound.relay.clone();
        let data_dir = config.data_dir.clone();
        if !dev {
            print_summary(&config);
        }
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(error) => {
                eprintln!("error: {error}");
                if let Some(hint) = bind_hint(&error, dev) {
                    eprintln!("hint: {hint}");
                }
                return ExitCode::FAILURE;
            }
        };
        if dev {
            print_dev_banner(&app, &data_dir, forward.as_ref(), relay.as_ref());
        }
        app.run(crate::shutdown::signal()).await;
        ExitCode::SUCCESS
    })
}

fn bind_hint(error: &crate::app::AppError, dev: bool) -> Option<&'static str> {
    let crate::app::AppError::Bind { source, .. } = error else {
        return None;
    };
    match source.kind() {
        std::io::ErrorKind::AddrInUse if dev => Some(
            "another program (another `postern dev`?) uses that port; choose others with --smtp, --submission and --web",
        ),
        std::io::ErrorKind::AddrInUse => Some(
            "another program uses that port; change smtp.listen, submission.listen or web.listen",
        ),
        std::io::ErrorKind::PermissionDenied => Some(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (e.g. AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit)",
        ),
        _ => None,
    }
}

fn print_dev_banner(
    app: &App,
    data_dir: &Path,
    forward: Option<&TargetUrl>,
    relay: Option<&RelayUrl>,
) {
    let smtp = app.smtp_addr();
    let web = app.web_addr();
    println!("Postern {} dev mode", crate::VERSION);
    println!(
        "  SMTP  {smtp}{}",
        if app.starttls() {
            "  (STARTTLS with a self-signed certificate)"
        } else {
            ""
        }
    );
    for addr in app.submission_addrs() {
        println!(
            "  Submit {addr}  (SMTP submission: AUTH with any username/password, STARTTLS optional; mail is captured, not delivered)"
        );
    }
    println!("  Web   http://{web}/  (the dashboard)");
    println!("  API   http://{web}/api/messages");
    println!("  Data  {}", data_dir.display());
    if app.open_web() {
        println!("  Open without sign-in: the web listener is on loopback.");
    } else {
        println!(
            "  Sign-in required: the web listener is not on loopback. Add a user with\n    postern user add --data-dir {} --email you@example.com",
            data_dir.display()
        );
    }
    match forward {
        Some(url) => println!("  Every recipient is accepted, kept, and POSTed to {url} (json+n)."),
        None => println!(
            "  Every recipient is accepted and kept; nothing is forwarded (see --forward)."
        ),
    }
    match relay {
        Some(relay) => println!("  Mail sent through the API goes out through the relay {relay}."),
        None => println!("  Mail sent through the API is captured, never delivered (see --relay)."),
    }
    println!();
    println!("Send a test message:");
    println!(
        "  swaks --server {} --port {} --to someone@example.com --from you@example.com",
        smtp.ip(),
        smtp.port()
    );
    println!("Then look at it: open http://{web}/ or");
    println!("  curl -s http://{web}/api/messages");
    println!();
    println!("Send as an app would (captured, shown at http://{web}/outbound and /api/outbound):");
    println!(
        "  curl -s http://{web}/api/v0.1/dev/messages -H 'Authorization: Bearer dev' \\\n    \
         -d '{{\"from\":\"app@example.com\",\"to\":\"you@example.net\",\"subject\":\"Hi\",\"plain\":\"Hello\"}}'"
    );
    if let Some(submit) = app.submission_addrs().first() {
        println!(
            "  swaks --server {} --port {} --auth-user dev --auth-password dev --to someone@example.com --from you@example.com",
            submit.ip(),
            submit.port()
        );
    }
    println!();
    println!("Ctrl-C stops.");
}
