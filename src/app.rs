//! Wires a validated [`Config`] into running listeners: opens the store, builds TLS, binds
//! the SMTP and web sockets, and runs them until the shutdown signal, then drains.
//!
//! `App::build` binds before anything runs, so callers (tests, `main`) learn the real
//! addresses, including those of port-0 listeners.

mod sweeper;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::accounts::oidc::Oidc;
use crate::accounts::{Accounts, PasswordParams, Policy};
use crate::clock::Clock;
use crate::config::{Config, EncryptionConfig};
use crate::crypto::{CryptoError, Keyring, Passphrase};
use crate::datadir::{DataDirError, ServeLock};
use crate::dns::{ResolverChoice, ResolverError};
use crate::inbound::managed::Managed;
use crate::inbound::route::{Destination, Router, Routes};
use crate::inbound::verify::{AuthConfig, Verifier};
use crate::inbound::{Inbound, InboundSettings};
use crate::metrics::{Listener, Metrics};
use crate::notify::{State as NotifyState, notify};
use crate::outbound::compose::{MAX_MESSAGE_SIZE, MAX_RECIPIENTS};
use crate::outbound::worker::{Worker, WorkerError};
use crate::outbound::{Outbound, OutboundMode, ReturnMailSettings, Submission, WithReturnPath};
use crate::shutdown::Shutdown;
use crate::smtp::server::{ListenerLimits, ServerConfig, SmtpServer};
use crate::smtp::session::{SessionConfig, SessionPolicy};
use crate::smtp::spool::Spool;
use crate::store::{Store, StoreError, Swept};
use crate::tls::acme::{Acme, AcmeSetupError};
use crate::tls::{Certificates, TlsError};
use crate::web::WebOptions;
use crate::web::host::HostRule;
use crate::web::listener::HttpLimits;
use crate::webhook::{Deliverer, Signing};
use sweeper::Sweeper;

use crate::objects::Objects;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Acme(#[from] AcmeSetupError),
    #[error("DNS resolver for SPF/DKIM/DMARC: {0}")]
    Auth(#[from] ResolverError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("message spool {}: {source} (the data directory must be writable by Postern)", .dir.display())]
    Spool {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why the keyring of `[encryption]` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "key file {path} does not exist; create it with `postern keyring init --config <your config>` \
         (or `postern init`), point [encryption] key_file at your keyring, or set \
         [encryption] enabled = false. NOTE: mail and secrets sealed with a lost key cannot be read \
         by anyone: restore the key file from its backup if there is one"
    )]
    Missing { path: PathBuf },
    #[error(transparent)]
    Exposed(#[from] DataDirError),
    #[error("passphrase file {path}: {source}")]
    PassphraseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The keyring `[encryption]` names, unlocked (once: a wrapped file costs seconds); `None`
/// with encryption off. The key file must exist and be private to this user.
pub fn load_keyring(encryption: &EncryptionConfig) -> Result<Option<Arc<Keyring>>, KeyringError> {
    if !encryption.enabled {
        return Ok(None);
    }
    let path = &encryption.key_file;
    if !path.exists() {
        return Err(KeyringError::Missing { path: path.clone() });
    }
    crate::datadir::check_path(path)?;
    let passphrase = passphrase(encryption)?;
    Ok(Some(Arc::new(Keyring::load(path, passphrase.as_ref())?)))
}

/// The passphrase of the key file: `passphrase_file`, else `POSTERN_KEY_PASSPHRASE`.
pub fn passphrase(encryption: &EncryptionConfig) -> Result<Option<Passphrase>, KeyringError> {
    match &encryption.passphrase_file {
        Some(file) => read_passphrase(file).map(Some),
        None => Ok(encryption.passphrase.clone()),
    }
}

fn read_passphrase(path: &Path) -> Result<Passphrase, KeyringError> {
    crate::datadir::check_path(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| KeyringError::PassphraseFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(Passphrase::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// The store of `config`, sealing with its keyring when encryption is on.
pub fn open_store(config: &Config) -> Result<Store, AppError> {
    let store = match load_keyring(&config.encryption)? {
        Some(keyring) => Store::open_sealed(&config.data_dir, keyring)?,
        None => Store::open(&config.data_dir)?,
    };
    Ok(store.with_body_index(config.privacy.index_bodies))
}

/// What tests change: the clock the accounts run on, and the argon2 cost.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub clock: Clock,
    pub password: PasswordParams,
}

pub struct App {
    smtp: SmtpServer<WithReturnPath<Inbound>>,
    /// One per `[submission]` listener, all sharing one handler.
    submission: Vec<SmtpServer<Submission>>,
    submission_addrs: Vec<SocketAddr>,
    /// The implicit-TLS (port 465) listeners' addresses, in `submission.tls_listen` order.
    submission_tls_addrs: Vec<SocketAddr>,
    /// The certificate every listener serves (`None`: `[tls] mode = "off"`).
    certificates: Option<Arc<Certificates>>,
    /// `[web] http_listen`: redirects to HTTPS (and answers ACME HTTP-01).
    http: Option<(TcpListener, SocketAddr)>,
    /// `[tls] mode = "acme"`: the order, started by `run`.
    acme: Option<Acme>,
    inbound: Arc<Inbound>,
    smtp_addr: SocketAddr,
    web: TcpListener,
    web_addr: SocketAddr,
    web_options: WebOptions,
    web_limits: HttpLimits,
    store: Store,
    accounts: Accounts,
    managed: Managed,
    outbound: Outbound,
    /// The delivery worker: `serve` with `[outbound] deliver = true` only.
    worker: Option<Arc<Worker>>,
    /// The events webhook's HTTP client (the inbound targets' pool).
    deliverer: Deliverer,
    /// Webhook signing secrets, which `deliverer` signs with (`/signing`, `Passes`).
    signing: Signing,
    shutdown: Shutdown,
    grace: Duration,
    /// The app's clock (the background re-encryption pass runs on it).
    clock: Clock,
    settings: crate::web::Settings,
    oidc: Oidc,
    /// Deletes what `[retention]` no longer keeps.
    sweeper: Sweeper,
    privacy: crate::privacy::Privacy,
    /// The instance's counters and histograms (`/metrics`).
    metrics: Metrics,
    /// Held while this app serves its data directory: `postern restore` refuses meanwhile.
    serve_lock: Option<ServeLock>,
    /// The attachment and message stores (`/stores`, `/files/…`).
    objects: Objects,
}

impl App {
    pub async fn build(config: Config) -> Result<App, AppError> {
        App::build_with(config, AppOptions::default()).await
    }

    /// Opens the store, builds the services, binds every listener; runs nothing yet.
    pub async fn build_with(config: Config, options: AppOptions) -> Result<App, AppError> {
        let store = open_store(&config)?;
        let serve_lock = serve_lock(&config.data_dir);
        let metrics = Metrics::new();
        let mut sweeper = Sweeper {
            store: store.clone(),
            retention: config.retention,
            clock: options.clock.clone(),
            metrics: metrics.clone(),
            objects: None,
        };
        let outbound =
            outbound_service(&config, &store, &options.clock).with_metrics(metrics.clone());
        let clock = options.clock.clone();
        let accounts = accounts_service(&config, &store, options);
        let certificates = Certificates::new(&config.tls, &config.hostname)?;
        let tls = certificates.as_ref().map(|c| c.smtp_config());
        let acme = acme_order(&config, certificates.as_ref(), &store, &clock)?;
        let (routes, keep_raw) = initial_routes(&config);
        let verifier = build_verifier(&config, &store).await?;
        warn_of_missing_stores(&config, &store).await?;
        // Config entries plus those managed through the API (dev mode keeps its one route).
        let managed = Managed::new(store.clone(), accounts.clone(), routes.clone(), &config);
        managed.reload().await?;
        let shutdown = Shutdown::new();
        let signing = Signing::new(store.clone(), clock.clone());
        let deliverer = Deliverer::new(&config.delivery).with_signing(signing.clone());

        let smtp_listener = bind("SMTP", config.smtp.listen).await?;
        let web = bind("web", config.web.listen).await?;
        let smtp_addr = local_addr(&smtp_listener);
        let web_addr = local_addr(&web);
        let http = match config.web.http_listen {
            Some(addr) => {
                let listener = bind("HTTP redirect", addr).await?;
                let addr = local_addr(&listener);
                Some((listener, addr))
            }
            None => None,
        };
        let outbound = outbound.with_tracking_url(&config.tracking_url(web_addr));
        let web_options = web_options(&config, web_addr);
        // After the tracking URL: the worker instruments each copy with it.
        let worker = delivery_worker(&config, &outbound)?;
        // The local stores' URLs start where the tracking links do: this listener, as
        // reached from outside.
        let objects = Objects::new(
            store.clone(),
            &config.data_dir,
            &config.tracking_url(web_addr),
            clock.clone(),
        );
        sweeper.objects = Some(objects.clone());
        let spool = open_spool(&config)?;
        let (server_config, submission_config) = server_configs(&config, tls.is_some(), spool);
        let inbound = Arc::new(
            Inbound::new(
                shutdown.clone(),
                routes,
                deliverer.clone(),
                store.clone(),
                verifier,
                inbound_settings(&config, keep_raw),
            )
            .with_metrics(metrics.clone())
            .with_clock(clock.clone())
            .with_objects(objects.clone())
            .with_memory_budget(server_config.limits.memory.clone()),
        );
        let mx = mx_handler(&config, &outbound, &inbound, keep_raw);
        let submission_handler = Arc::new(Submission::new(outbound.clone()));
        let SubmissionListeners {
            servers: submission,
            starttls: submission_addrs,
            implicit_tls: submission_tls_addrs,
        } = bind_submission(&config, submission_config, &tls, submission_handler).await?;
        let submission = submission
            .into_iter()
            .map(|server| server.with_metrics(metrics.clone(), Listener::Submission))
            .collect();
        let smtp = SmtpServer::new(smtp_listener, server_config, tls, mx)
            .with_metrics(metrics.clone(), Listener::Mx);
        let listeners = Listeners {
            smtp: smtp_addr,
            submission: &submission_addrs,
            submission_tls: &submission_tls_addrs,
            web: web_addr,
        };
        let settings = web_settings(&config, listeners, certificates.clone());
        let oidc = Oidc::new(accounts.clone(), config.web.oidc.clone());
        let (grace, limits) = (config.smtp.shutdown_grace, web_limits(&config));
        let privacy = crate::privacy::Privacy::new(config, store.clone());
        Ok(App {
            objects,
            metrics,
            serve_lock,
            sweeper,
            privacy,
            oidc,
            settings,
            smtp,
            submission,
            submission_addrs,
            submission_tls_addrs,
            certificates,
            http,
            acme,
            inbound,
            smtp_addr,
            web,
            web_addr,
            web_options,
            web_limits: limits,
            store,
            accounts,
            managed,
            outbound,
            worker,
            deliverer,
            signing,
            shutdown,
            grace,
            clock,
        })
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// The submission listeners' addresses, in `submission.listen` order.
    pub fn submission_addrs(&self) -> &[SocketAddr] {
        &self.submission_addrs
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// The implicit-TLS submission listeners' addresses, in `submission.tls_listen` order.
    pub fn submission_tls_addrs(&self) -> &[SocketAddr] {
        &self.submission_tls_addrs
    }

    /// The port-80 listener's address (`[web] http_listen`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, addr)| *addr)
    }

    /// Whether the SMTP listeners offer TLS.
    pub fn starttls(&self) -> bool {
        self.certificates.is_some()
    }

    /// The certificate every listener serves (`None`: TLS off).
    pub fn certificates(&self) -> Option<&Arc<Certificates>> {
        self.certificates.as_ref()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// A handle that runs one pass of the background tasks on demand (see [`Passes`]).
    pub fn passes(&self) -> Passes {
        Passes {
            outbound: self.outbound.clone(),
            deliverer: self.deliverer.clone(),
            worker: self.worker.clone(),
            shutdown: self.shutdown.clone(),
            sweeper: self.sweeper.clone(),
            store: self.store.clone(),
            inbound: self.inbound.clone(),
        }
    }

    /// What is listening, on one line: systemd's `STATUS=` (shown by `systemctl status`).
    pub fn status(&self) -> String {
        let mut status = format!("SMTP {}, web {}", self.smtp_addr, self.web_addr);
        for addr in self
            .submission_addrs
            .iter()
            .chain(&self.submission_tls_addrs)
        {
            status.push_str(&format!(", submission {addr}"));
        }
        status
    }

    /// Whether the dashboard is open without sign-in (dev mode on loopback).
    pub fn open_web(&self) -> bool {
        self.web_options.open
    }

    /// Runs until `stop` resolves, then stops accepting, lets open sessions finish (up to
    /// the configured grace period) and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let status = self.status();
        let _serve_lock = self.serve_lock;
        let shutdown = self.shutdown.clone();
        let smtp = tokio::spawn(self.smtp.run(shutdown.clone()));
        if let Some(worker) = self.worker {
            shutdown.spawn(worker.run(shutdown.clone()));
        }
        shutdown.spawn(crate::outbound::events::run(
            self.outbound.clone(),
            self.deliverer,
            shutdown.clone(),
        ));
        shutdown.spawn(self.sweeper.run(shutdown.clone()));
        shutdown.spawn(crate::inbound::queue::run(
            self.inbound.clone(),
            shutdown.clone(),
        ));
        if self.store.sealing_key().is_some() {
            shutdown.spawn(reencrypt_loop(
                self.store.clone(),
                self.clock.clone(),
                shutdown.clone(),
            ));
        }
        let submission: Vec<_> = self
            .submission
            .into_iter()
            .map(|server| tokio::spawn(server.run(shutdown.clone())))
            .collect();
        if let Some(certificates) = &self.certificates {
            shutdown.spawn(certificates.clone().watch_files(shutdown.clone()));
        }
        shutdown.spawn(reload_on_hangup(
            self.certificates.clone(),
            shutdown.clone(),
            status.clone(),
        ));
        let https = self
            .web_options
            .https
            .then(|| self.certificates.clone())
            .flatten();
        let challenge = self
            .acme
            .as_ref()
            .and_then(Acme::http01_service)
            .map(crate::web::redirect::acme_challenge);
        if let Some(acme) = self.acme {
            acme.spawn(&shutdown);
        }
        let http_redirect = self.http.map(|(listener, _)| {
            let router = crate::web::redirect::router(
                self.web_addr.port(),
                self.web_options.hosts.clone(),
                challenge,
            );
            let limits = self.web_limits;
            tokio::spawn(crate::web::listener::serve(
                listener,
                router,
                limits,
                None,
                shutdown.clone(),
            ))
        });
        let web_shutdown = shutdown.clone();
        let web = tokio::spawn(async move {
            let services = crate::web::Services {
                store: self.store.clone(),
                accounts: self.accounts,
                managed: self.managed,
                inbound: Some(self.inbound),
                outbound: Some(self.outbound),
                oidc: self.oidc,
                privacy: self.privacy,
                data_requests: crate::data_requests::DataRequests::new(
                    self.store.clone(),
                    self.clock.clone(),
                ),
                metrics: self.metrics,
                shutdown: Some(self.shutdown.clone()),
                signing: self.signing,
                objects: self.objects.clone(),
            };
            let router = crate::web::router(services, self.web_options, self.settings);
            crate::web::listener::serve(self.web, router, self.web_limits, https, web_shutdown)
                .await;
        });
        info!(
            smtp = %self.smtp_addr,
            web = %self.web_addr,
            submission = ?self.submission_addrs,
            submission_tls = ?self.submission_tls_addrs,
            "postern is ready"
        );
        notify(&NotifyState::Ready {
            status: status.clone(),
        });

        stop.await;
        notify(&NotifyState::Stopping);
        shutdown.trigger();
        let _ = smtp.await;
        for server in submission {
            let _ = server.await;
        }
        if shutdown.drain(self.grace).await {
            info!("all sessions closed");
        } else {
            warn!(
                grace_secs = self.grace.as_secs(),
                "sessions still open after the grace period; closing them"
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), web).await;
        if let Some(http) = http_redirect {
            let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
        }
    }
}

/// The data directory's serve lock; when another process holds it (a second `serve` on the
/// same directory), this one runs without and says so.
fn serve_lock(data_dir: &Path) -> Option<ServeLock> {
    match crate::datadir::lock_serving(data_dir) {
        Ok(lock) => Some(lock),
        Err(error) => {
            warn!(%error, "running without the serve lock: `postern restore` cannot see that this serve runs");
            None
        }
    }
}

/// SIGHUP (systemd's `ExecReload`) reads the certificate files again; it never stops the
/// process, whatever the certificate source. The handler is installed when this is called,
/// before `READY=1`; systemd is told `RELOADING=1` and then `READY=1` (`status` again)
/// around each reload.
fn reload_on_hangup(
    certificates: Option<Arc<Certificates>>,
    shutdown: Shutdown,
    status: String,
) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = signal(SignalKind::hangup());
    async move {
        let Ok(mut hangup) = hangup else {
            warn!("cannot listen for SIGHUP: certificate files are reloaded on change only");
            return;
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => {}
                _ = shutdown.triggered() => return,
            }
            notify(&NotifyState::Reloading);
            info!("SIGHUP received");
            if let Some(certificates) = &certificates {
                certificates.reload_or_keep();
            }
            notify(&NotifyState::Ready {
                status: status.clone(),
            });
        }
    }
}

/// The ACME order of `[tls] mode = "acme"` (run by `App::run`), deploying into `certificates`.
fn acme_order(
    config: &Config,
    certificates: Option<&Arc<Certificates>>,
    store: &Store,
    clock: &Clock,
) -> Result<Option<Acme>, AcmeSetupError> {
    match (&config.tls.source, certificates) {
        (crate::config::CertSource::Acme(settings), Some(certificates)) => Ok(Some(Acme::new(
            settings,
            certificates.clone(),
            store.clone(),
            clock.clone(),
        )?)),
        _ => Ok(None),
    }
}

/// The outbound service: captures in dev mode (unless given a relay), delivers otherwise.
fn outbound_service(config: &Config, store: &Store, clock: &Clock) -> Outbound {
    let mode = match config.dev {
        Some(_) => OutboundMode::Capture,
        None => OutboundMode::Deliver,
    };
    let outbound = Outbound::new(store.clone(), clock.clone(), mode, config.outbound.expiry)
        .with_redaction(config.privacy.redact_outbound.clone())
        .with_require_https(config.delivery.require_https);
    // Dev mode captures and never delivers, unless it was given a relay.
    match (&config.dev, &config.outbound.relay) {
        (Some(_), Some(_)) => outbound.with_dev_relay(),
        _ => outbound,
    }
}

/// Dev mode opens the dashboard without sign-in, but only to this machine; the `Host`
/// check lets in loopback, the listener's address and the public and tracking hosts.
fn web_options(config: &Config, web_addr: SocketAddr) -> WebOptions {
    if !config.web.listen.ip().is_loopback() && config.web.allow_plain_http {
        info!(listen = %config.web.listen, "plain HTTP off loopback: a TLS proxy in front is trusted to terminate HTTPS (web.allow_plain_http)");
    }
    if !config.web.listen.ip().is_loopback() && !config.web.secure_cookies {
        warn!(listen = %config.web.listen, "session cookies go over plain HTTP (web.secure_cookies = false)");
    }
    let hosts = match config.web.any_host_warning() {
        Some(warning) => {
            warn!("{warning}");
            HostRule::Any
        }
        None => {
            let tracking = url::Url::parse(&config.tracking_url(web_addr)).ok();
            let public = config.web.public_url.as_ref().and_then(|u| u.host_str());
            let bound = (!web_addr.ip().is_unspecified()).then(|| web_addr.ip().to_string());
            let tracking = tracking.as_ref().and_then(|u| u.host_str());
            // Over HTTPS, the names the certificate is for are the names browsers use.
            let certified = match config.web.https {
                true => config.tls.all_names(&config.hostname),
                false => Vec::new(),
            };
            let hosts = public.into_iter().chain(tracking).chain(bound.as_deref());
            HostRule::only(hosts.chain(certified.iter().map(String::as_str)))
        }
    };
    WebOptions {
        open: config.dev.is_some() && config.web.listen.ip().is_loopback(),
        secure_cookies: config.web.secure_cookies,
        hosts,
        allow_plain_http: config.web.allow_plain_http,
        https: config.web.https,
        // Only with a certificate browsers trust: HSTS would otherwise lock them out of a
        // self-signed dashboard with no way to click through.
        hsts: config.web.https && config.tls.is_ca_issued(),
    }
}

/// The web listener's `[web]` limits.
fn web_limits(config: &Config) -> HttpLimits {
    HttpLimits {
        header_read_timeout: config.web.header_read_timeout,
        max_connections_per_ip: config.web.max_connections_per_ip,
        max_connections: config.web.max_connections,
    }
}

/// The delivery worker, when this instance delivers (`serve` with `[outbound] deliver`).
fn delivery_worker(config: &Config, outbound: &Outbound) -> Result<Option<Arc<Worker>>, AppError> {
    if !(outbound.delivers() && config.outbound.deliver) {
        return Ok(None);
    }
    let dns = ResolverChoice::from_config(config.dns.servers.as_deref());
    let worker = Worker::new(outbound, &config.outbound, &dns)?;
    Ok(Some(Arc::new(worker)))
}

/// The MX listener's handler: mail to a return path goes to outbound, the rest to inbound.
fn mx_handler(
    config: &Config,
    outbound: &Outbound,
    inbound: &Arc<Inbound>,
    keep_raw: bool,
) -> Arc<WithReturnPath<Inbound>> {
    let return_mail = ReturnMailSettings {
        hostname: config.hostname.clone(),
        keep_raw,
        redact: config.privacy.redact.clone(),
    };
    Arc::new(WithReturnPath::new(
        outbound.clone(),
        inbound.clone(),
        return_mail,
    ))
}

/// The accounts service with the config's session and TOTP policy.
fn accounts_service(config: &Config, store: &Store, options: AppOptions) -> Accounts {
    Accounts::new(
        store.clone(),
        options.clock,
        Policy {
            session_idle: config.web.session_idle,
            session_lifetime: config.web.session_lifetime,
            require_totp: config.web.require_totp,
            password: options.password,
            totp_issuer: format!("Postern {}", config.hostname),
        },
    )
}

/// The config's routes, and whether raw messages are kept: dev mode takes every recipient
/// (captured, or forwarded as JSON Normalized) and keeps them.
fn initial_routes(config: &Config) -> (Routes, bool) {
    let (router, keep_raw) = match &config.dev {
        Some(dev) => {
            let destination = match &dev.forward {
                Some(url) => Destination::Target {
                    url: url.clone(),
                    format: crate::config::Format::JsonNormalized,
                },
                None => Destination::Capture,
            };
            (Router::everything(destination), true)
        }
        None => (Router::new(&config.addresses, &config.domains), false),
    };
    (Routes::new(router), keep_raw)
}

/// Says at start which `[[address]]` names a store that does not exist (stores are made at
/// runtime: `postern store add`, `/stores`): its mail is answered 450 until it does.
async fn warn_of_missing_stores(config: &Config, store: &Store) -> Result<(), StoreError> {
    let names: Vec<String> = (store.object_stores().await?.into_iter())
        .map(|s| s.name)
        .collect();
    for address in &config.addresses {
        let options = &address.options;
        for named in [&options.attachment_store, &options.message_store]
            .into_iter()
            .flatten()
        {
            if !names.contains(named) {
                warn!(address = %address.pattern, store = %named, "this address names a store that does not exist: its mail is answered 450 until `postern store add {named} …` makes it");
            }
        }
    }
    Ok(())
}

/// What the inbound side needs from the config besides routes.
fn inbound_settings(config: &Config, keep_raw: bool) -> InboundSettings {
    InboundSettings {
        hostname: config.hostname.clone(),
        keep_raw,
        spf: config.auth.spf,
        redact: config.privacy.redact.clone(),
        queue_expiry: config.delivery.queue_expiry,
    }
}

/// The SPF/DKIM/DMARC verifier, or `None` when no check is on (then no DNS is asked).
async fn build_verifier(config: &Config, store: &Store) -> Result<Option<Arc<Verifier>>, AppError> {
    // Addresses managed through the API count as of this start (see README).
    let managed_checks = store
        .managed_addresses()
        .await?
        .iter()
        .any(|(_, a)| a.dkim || a.dmarc);
    let needs_dns = config.auth.spf
        || managed_checks
        || config
            .addresses
            .iter()
            .any(|a| a.options.dkim || a.options.dmarc);
    if !needs_dns {
        return Ok(None);
    }
    let verifier = Verifier::new(AuthConfig {
        resolver: ResolverChoice::from_config(config.dns.servers.as_deref()),
        timeout: config.auth.timeout,
    })?;
    Ok(Some(Arc::new(verifier)))
}

/// The spool for content past `[smtp] spool_threshold` (none when it is 0): `<data_dir>/spool`,
/// emptied of what an earlier process left.
fn open_spool(config: &Config) -> Result<Option<Arc<Spool>>, AppError> {
    let Some(threshold) = config.smtp.abuse.spool_threshold else {
        return Ok(None);
    };
    let dir = config.data_dir.join("spool");
    Spool::open(&dir, threshold)
        .map(Some)
        .map_err(|source| AppError::Spool { dir, source })
}

/// The MX listener's settings, and the submission listeners': the same shell and limits,
/// AUTH required, and CloudMailin's outbound limits (contract §6.1) where they are lower. Dev
/// mode takes AUTH without TLS.
fn server_configs(
    config: &Config,
    starttls: bool,
    spool: Option<Arc<Spool>>,
) -> (ServerConfig, ServerConfig) {
    let mut limits = ListenerLimits::new(
        config.smtp.abuse.max_connections_per_ip,
        config.smtp.abuse.session_deadline,
        config.smtp.abuse.min_data_rate,
        config.smtp.abuse.min_data_rate_window,
        config.smtp.abuse.message_memory_budget,
    );
    if let Some(spool) = spool {
        limits = limits.with_spool(spool);
    }
    let mx = ServerConfig {
        session: SessionConfig {
            policy: SessionPolicy::Inbound,
            hostname: config.hostname.clone(),
            max_message_size: config.smtp.max_message_size,
            max_recipients: config.smtp.max_recipients,
            max_line_length: config.smtp.max_line_length,
            max_errors: config.smtp.max_errors,
            size_exceeded_message: config.smtp.size_exceeded_message.clone(),
            tls_available: starttls,
        },
        max_connections: config.smtp.max_connections,
        command_timeout: config.smtp.command_timeout,
        data_timeout: config.smtp.data_timeout,
        // One memory budget and one spool for every listener: the submission config is a
        // copy.
        limits,
    };
    let submission_size = config.smtp.max_message_size.min(MAX_MESSAGE_SIZE);
    let submission = ServerConfig {
        session: SessionConfig {
            policy: SessionPolicy::Submission {
                plaintext_auth: config.dev.is_some(),
            },
            max_message_size: submission_size,
            max_recipients: config.smtp.max_recipients.min(MAX_RECIPIENTS),
            size_exceeded_message: format!(
                "Message exceeds the maximum size of {submission_size} bytes"
            ),
            ..mx.session.clone()
        },
        ..mx.clone()
    };
    (mx, submission)
}

/// The submission servers and their bound addresses in config order: one STARTTLS
/// server per `[submission] listen` address, one implicit-TLS server per `tls_listen`
/// address, all sharing `handler`.
struct SubmissionListeners {
    servers: Vec<SmtpServer<Submission>>,
    starttls: Vec<SocketAddr>,
    implicit_tls: Vec<SocketAddr>,
}

async fn bind_submission(
    config: &Config,
    server_config: ServerConfig,
    tls: &Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Submission>,
) -> Result<SubmissionListeners, AppError> {
    let mut bound = SubmissionListeners {
        servers: Vec::new(),
        starttls: Vec::new(),
        implicit_tls: Vec::new(),
    };
    let starttls = config.submission.listen.iter().map(|addr| (addr, false));
    let implicit = config.submission.tls_listen.iter().map(|addr| (addr, true));
    for (addr, implicit_tls) in starttls.chain(implicit) {
        let listener = bind("submission", *addr).await?;
        let local = local_addr(&listener);
        let server = SmtpServer::new(
            listener,
            server_config.clone(),
            tls.clone(),
            handler.clone(),
        );
        if implicit_tls {
            bound.implicit_tls.push(local);
            bound.servers.push(server.implicit_tls());
        } else {
            bound.starttls.push(local);
            bound.servers.push(server);
        }
    }
    Ok(bound)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { what, addr, source })
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound socket has an address")
}

/// The bound listeners' addresses, for the settings page.
struct Listeners<'a> {
    smtp: SocketAddr,
    submission: &'a [SocketAddr],
    submission_tls: &'a [SocketAddr],
    web: SocketAddr,
}

/// What the dashboard's settings page shows.
fn web_settings(
    config: &Config,
    listeners: Listeners<'_>,
    certificates: Option<Arc<Certificates>>,
) -> crate::web::Settings {
    crate::web::Settings {
        smtp_listen: Some(listeners.smtp),
        submission_listen: listeners.submission.to_vec(),
        submission_tls_listen: listeners.submission_tls.to_vec(),
        web_listen: Some(listeners.web),
        https: config.web.https,
        certificates,
        data_dir: config.data_dir.clone(),
        spf: config.auth.spf,
        dns_servers: config.dns.servers.clone(),
        public_url: config.web.public_url.clone(),
        hostname: config.hostname.clone(),
        dns_timeout: config.auth.timeout,
        retention: config.retention,
    }
}

/// One pass of the app's background tasks on demand, the same code their loops run each
/// time they wake. For tests that assert that *nothing* was due: running a pass and
/// counting what it did can fail, while sleeping and then looking cannot tell "found
/// nothing" from "has not looked yet". Safe beside the running loops (a recipient is
/// claimed once; an event due to both is at worst POSTed twice, as after a timeout).
#[derive(Clone)]
pub struct Passes {
    outbound: Outbound,
    deliverer: Deliverer,
    worker: Option<Arc<Worker>>,
    shutdown: Shutdown,
    sweeper: Sweeper,
    store: Store,
    inbound: Arc<Inbound>,
}

impl Passes {
    /// One round of the inbound queue (`delivery = "queued"` addresses): the entries it
    /// took and POSTed.
    pub async fn inbound_queue(&self) -> Result<usize, StoreError> {
        crate::inbound::queue::run_once(&self.inbound).await
    }

    /// One retention sweep as of the app clock's now: what it deleted.
    pub async fn retention(&self) -> Result<Swept, StoreError> {
        self.sweeper.run_once().await
    }

    /// One round of the events webhook: the number of due events it took.
    pub async fn events(&self) -> Result<usize, StoreError> {
        crate::outbound::events::run_once(&self.outbound, &self.deliverer).await
    }

    /// One pass of the delivery worker, waiting for the attempts it started: the number of
    /// recipients attempted; `None` when this app has no worker (not `serve` with
    /// `[outbound] deliver = true`).
    pub async fn deliveries(&self) -> Option<usize> {
        let worker = self.worker.as_ref()?;
        Some(worker.run_once(&self.shutdown).await)
    }

    /// One re-encryption pass: the number of values sealed with the current key.
    pub async fn reencrypt(&self) -> Result<u64, StoreError> {
        self.store.reencrypt().await
    }
}

/// How often `serve` seals what is left (plaintext, older keys), on the app's clock.
const REENCRYPT_EVERY: Duration = Duration::from_secs(600);
/// How often the loop looks at the clock.
const REENCRYPT_TICK: Duration = Duration::from_secs(30);

/// The background re-encryption pass, every [`REENCRYPT_EVERY`] of the app's clock (the
/// first one that long after start: a restart loop never keeps the writer busy).
async fn reencrypt_loop(store: Store, clock: Clock, shutdown: Shutdown) {
    let mut next = clock.unix() + REENCRYPT_EVERY.as_secs() as i64;
    loop {
        if clock.unix() >= next {
            match store.reencrypt().await {
                Ok(0) => {}
                Ok(sealed) => info!(sealed, "re-encryption: sealed values with the current key"),
                Err(error) => warn!(%error, "re-encryption pass failed; retried next pass"),
            }
            next = clock.unix() + REENCRYPT_EVERY.as_secs() as i64;
        }
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tokio::time::sleep(REENCRYPT_TICK) => {}
        }
    }
}
