//! `postern serve` and `postern dev`: build the app from a config, run it until SIGINT or
//! SIGTERM, and say what it listens on (`serve`: the `check` summary; `dev`: a banner with
//! lines to copy and paste).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::error::CliError;
use crate::app::App;
use crate::config::{Config, RelayUrl, TargetUrl};

/// The flags of `postern dev`.
#[derive(Debug, Args)]
pub(super) struct DevArgs {
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
    /// SMTP sessions open at once (smtp.max_connections); one more is answered
    /// "421 4.3.2 Too many connections" and closed, so a load test sees the limit at once.
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    max_connections: u32,
}

pub(super) fn serve(path: &Path) -> anyhow::Result<()> {
    let config = super::load(path)?;
    super::check::private_data_dir(&config)?;
    run_server(config, false)
}

pub(super) fn dev(args: DevArgs) -> anyhow::Result<()> {
    let relay = args
        .relay
        .as_deref()
        .map(RelayUrl::parse)
        .transpose()
        .context("--relay")
        .map_err(CliError::Usage)?;
    let forward = forward_url(args.forward.as_deref())?;
    let mut config = Config::dev(args.data_dir, args.smtp, args.web, forward);
    config.outbound.relay = relay;
    config.submission.listen = vec![args.submission];
    config.smtp.max_connections = args.max_connections as usize;
    // A developer's scratch directory (an older Postern made it 0755) is made private
    // rather than refused.
    crate::datadir::tighten(&config.data_dir).map_err(|error| CliError::Usage(error.into()))?;
    if !config.encryption.key_file.exists() {
        super::keyring::write_new(&config.encryption.key_file)?;
    }
    run_server(config, true)
}

/// `--forward`: a target URL like an address's; errors show it masked.
fn forward_url(text: Option<&str>) -> Result<Option<TargetUrl>, CliError> {
    let Some(text) = text else {
        return Ok(None);
    };
    TargetUrl::parse(text).map(Some).map_err(|allowed| {
        CliError::usage(format!(
            "--forward {}: {allowed}",
            TargetUrl::mask_str(text)
        ))
    })
}

/// Runs the app until a shutdown signal; the listeners are bound before anything is printed
/// as running.
fn run_server(config: Config, dev: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(async move {
        let forward = config.dev.as_ref().and_then(|d| d.forward.clone());
        let relay = config.outbound.relay.clone();
        let data_dir = config.data_dir.clone();
        let retention = config.retention;
        if !dev {
            super::check::print_summary(&config);
        }
        let app = App::build(config)
            .await
            .map_err(|source| CliError::Start { source, dev })?;
        if dev {
            let keeps = retention.list_note(retention.inbound_metadata_days);
            print_dev_banner(&app, &data_dir, forward.as_ref(), relay.as_ref(), &keeps);
            print_dev_examples(&app);
        }
        app.run(crate::shutdown::signal()).await;
        Ok(())
    })
}

/// What `postern dev` listens on, does with the mail it gets and keeps of it (`keeps`).
fn print_dev_banner(
    app: &App,
    data_dir: &Path,
    forward: Option<&TargetUrl>,
    relay: Option<&RelayUrl>,
    keeps: &str,
) {
    let web = app.web_addr();
    println!("Postern {} dev mode", crate::VERSION);
    println!(
        "  SMTP  {}{}",
        app.smtp_addr(),
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
    println!("  {keeps}");
    println!();
}

/// Commands to copy: send a message in, read it back, send one out as an app would.
fn print_dev_examples(app: &App) {
    let smtp = app.smtp_addr();
    let web = app.web_addr();
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
