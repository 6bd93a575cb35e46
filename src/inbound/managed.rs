//! Inbound routes managed at runtime: the addresses and domains added through
//! `/api/addresses`, `/api/domains` and their dashboard pages, on top of the config file's
//! `[[address]]` and `[[domain]]`. The rules live here, out of the handlers.
//!
//! Two sources make the routes. The config file's entries win and are read-only here:
//! creating or changing an entry to a pattern the config file defines is refused
//! ([`ManagedError::ConfigDefined`], 409). Entries made through the API are stored in SQLite
//! as given and add to them. Both go through the same validation (`config::validate_address`,
//! `config::validate_domain`).
//!
//! Addresses and domains follow the same rules, so the service is written once, generic over
//! a [`Kind`] ([`Address`] or [`Domain`]) that says what differs: the noun, the spec and
//! validated types, the pattern that identifies an entry, the URL fields to mask.
//!
//! Every change rebuilds the [`Router`] from the config entries plus the stored ones and
//! swaps it into [`Routes`], so the SMTP side uses it from the next RCPT on; no restart.
//! `App::build` does the same rebuild, so stored entries are back after a restart. A stored
//! entry that no longer validates (say, an address that took its target from a managed
//! domain since deleted) or that the config file now defines is left out of the routes,
//! with a warning in the log; the list shows it with `active: false`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::route::{Router, Routes};
use crate::accounts::{Accounts, Actor, AuditAction};
use crate::config::{
    AddressConfig, AddressPattern, AddressSpec, Config, ConfigError, DeliveryMode, DomainConfig,
    DomainPattern, DomainSpec, EntryRules, LocalPattern, TargetUrl, validate_address,
    validate_domain,
};
use crate::store::{ManagedSpec, ManagedWrite, Store, StoreError};
use crate::webhook::Owner;

/// A kind of managed entry: what differs between addresses and domains.
pub trait Kind: Send + Sync + 'static {
    /// Lower case, singular: audit rows, log lines, validation keys ("address").
    const NOUN: &'static str;
    /// Lower case, plural: the list's JSON key and the URL paths ("addresses").
    const PLURAL: &'static str;
    /// The entry as written: the config file's form, the API's body, the stored row.
    type Spec: ManagedSpec + Serialize + DeserializeOwned + fmt::Debug + Sync;
    /// The entry validated, as the router uses it.
    type Config: Clone + Send + Sync;
    /// What identifies an entry: two entries with equal patterns are the same route.
    type Pattern: PartialEq + fmt::Display;

    /// Validates `spec` against the routes it would join (an address may take its target
    /// from a domain); errors name `{entry}.{field}`.
    fn validate(
        entry: &str,
        spec: Self::Spec,
        routes: &Entries,
        rules: EntryRules,
    ) -> Result<Self::Config, ConfigError>;
    fn pattern(config: &Self::Config) -> &Self::Pattern;
    /// The pattern of a spec, if it parses.
    fn parse_pattern(spec: &Self::Spec) -> Option<Self::Pattern>;
    /// The address pattern its route POSTs for, as routes name it (a domain: its
    /// catch-all): whose signing secret goes with it.
    fn route_address(spec: &Self::Spec) -> Option<String>;
    /// The pattern as written in the spec (the stored row's unique column).
    fn key(spec: &Self::Spec) -> &str;
    fn set_key(spec: &mut Self::Spec, key: String);
    /// The URL fields, which may hold credentials: masked in every answer.
    fn urls(spec: &mut Self::Spec) -> Vec<&mut Option<String>>;
    /// The attachment and message stores an entry names, with their fields.
    fn stores(_spec: &Self::Spec) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// A validated config entry back in its written form (URLs masked by their `Display`).
    fn spec_of(config: &Self::Config) -> Self::Spec;
    fn entries(routes: &Entries) -> &[Self::Config];
    fn entries_mut(routes: &mut Entries) -> &mut Vec<Self::Config>;
}

/// The managed addresses: `[[address]]` entries.
pub enum Address {}

/// The managed domains: `[[domain]]` entries.
pub enum Domain {}

/// Entries of both kinds: the config file's, or the routes they make with the stored ones.
#[derive(Clone)]
pub struct Entries {
    pub domains: Vec<DomainConfig>,
    pub addresses: Vec<AddressConfig>,
}

impl Kind for Address {
    const NOUN: &'static str = "address";
    const PLURAL: &'static str = "addresses";
    type Spec = AddressSpec;
    type Config = AddressConfig;
    type Pattern = AddressPattern;

    fn validate(
        entry: &str,
        spec: AddressSpec,
        routes: &Entries,
        rules: EntryRules,
    ) -> Result<AddressConfig, ConfigError> {
        validate_address(entry, spec, &routes.domains, rules)
    }
    fn pattern(config: &AddressConfig) -> &AddressPattern {
        &config.pattern
    }
    fn parse_pattern(spec: &AddressSpec) -> Option<AddressPattern> {
        AddressPattern::parse(&spec.address).ok()
    }
    fn route_address(spec: &AddressSpec) -> Option<String> {
        Self::parse_pattern(spec).map(|pattern| pattern.to_string())
    }
    fn key(spec: &AddressSpec) -> &str {
        &spec.address
    }
    fn set_key(spec: &mut AddressSpec, key: String) {
        spec.address = key;
    }
    fn stores(spec: &AddressSpec) -> Vec<(&'static str, String)> {
        [
            ("attachment_store", &spec.attachment_store),
            ("message_store", &spec.message_store),
        ]
        .into_iter()
        .filter_map(|(field, name)| Some((field, name.clone()?)))
        .collect()
    }
    fn urls(spec: &mut AddressSpec) -> Vec<&mut Option<String>> {
        vec![
            &mut spec.target,
            &mut spec.auth_callback,
            &mut spec.error_callback,
        ]
    }
    fn spec_of(config: &AddressConfig) -> AddressSpec {
        let options = &config.options;
        AddressSpec {
            address: config.pattern.to_string(),
            target: Some(config.target.to_string()),
            format: Some(config.format.as_str().to_string()),
            timeout_secs: options.timeout.map(|t| t.as_secs()),
            max_message_size: options.max_message_size.map(|n| n as u64),
            size_exceeded_message: options.size_exceeded_message.clone(),
            size_as_number: options.size_as_number,
            html_to_plain: options.html_to_plain,
            auth_callback: options.auth_callback.as_ref().map(ToString::to_string),
            error_callback: options.error_callback.as_ref().map(ToString::to_string),
            dkim: options.dkim,
            dmarc: options.dmarc,
            redact: options.redact.names(),
            delivery: (options.delivery != DeliveryMode::Sync)
                .then(|| options.delivery.as_str().to_string()),
            attachment_store: options.attachment_store.clone(),
            message_store: options.message_store.clone(),
            message_store_format: options
                .message_store
                .is_some()
                .then(|| options.message_store_format.as_str().to_string()),
        }
    }
    fn entries(routes: &Entries) -> &[AddressConfig] {
        &routes.addresses
    }
    fn entries_mut(routes: &mut Entries) -> &mut Vec<AddressConfig> {
        &mut routes.addresses
    }
}

impl Kind for Domain {
    const NOUN: &'static str = "domain";
    const PLURAL: &'static str = "domains";
    type Spec = DomainSpec;
    type Config = DomainConfig;
    type Pattern = DomainPattern;

    /// A domain stands alone: the other routes do not matter.
    fn validate(
        entry: &str,
        spec: DomainSpec,
        _: &Entries,
        rules: EntryRules,
    ) -> Result<DomainConfig, ConfigError> {
        validate_domain(entry, spec, rules)
    }
    fn pattern(config: &DomainConfig) -> &DomainPattern {
        &config.domain
    }
    fn parse_pattern(spec: &DomainSpec) -> Option<DomainPattern> {
        DomainPattern::parse(&spec.domain).ok()
    }
    fn route_address(spec: &DomainSpec) -> Option<String> {
        let domain = Self::parse_pattern(spec)?;
        let catch_all = AddressPattern {
            local: LocalPattern::Any,
            domain,
        };
        Some(catch_all.to_string())
    }
    fn key(spec: &DomainSpec) -> &str {
        &spec.domain
    }
    fn set_key(spec: &mut DomainSpec, key: String) {
        spec.domain = key;
    }
    fn urls(spec: &mut DomainSpec) -> Vec<&mut Option<String>> {
        vec![&mut spec.target]
    }
    fn spec_of(config: &DomainConfig) -> DomainSpec {
        DomainSpec {
            domain: config.domain.to_string(),
            // Stored anchored as `^(?:…)$`; shown as written.
            auth_regex: config.auth_regex.as_ref().map(|r| {
                let text = r.as_str();
                text.strip_prefix("^(?:")
                    .and_then(|t| t.strip_suffix(")$"))
                    .unwrap_or(text)
                    .to_string()
            }),
            target: config.target.as_ref().map(ToString::to_string),
            format: config.format.map(|f| f.as_str().to_string()),
            redact: config.redact.names(),
            delivery: config.delivery.map(|d| d.as_str().to_string()),
        }
    }
    fn entries(routes: &Entries) -> &[DomainConfig] {
        &routes.domains
    }
    fn entries_mut(routes: &mut Entries) -> &mut Vec<DomainConfig> {
        &mut routes.domains
    }
}

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
}

/// An entry as the API shows it: the fields of `[[address]]` or `[[domain]]`, URLs masked.
#[derive(Debug, Clone, Serialize)]
pub struct Item<S> {
    /// The id to change it by; `None` for config entries.
    pub id: Option<i64>,
    pub source: Source,
    /// Whether it is in the routes (`false`: the config file defines the same pattern, or
    /// it no longer validates).
    pub active: bool,
    #[serde(flatten)]
    pub spec: S,
}

pub type AddressItem = Item<AddressSpec>;
pub type DomainItem = Item<DomainSpec>;

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    /// A field is not valid: `field` is its name in the request body, `message` what is
    /// allowed, `detail` the whole sentence with the (masked) value.
    #[error("{detail}")]
    Invalid {
        field: String,
        message: String,
        detail: String,
    },
    #[error("{0} is defined in the config file, which wins; change it there")]
    ConfigDefined(String),
    #[error("{0} exists already (id {1})")]
    Duplicate(String, i64),
    #[error("no such entry")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConfigError> for ManagedError {
    fn from(error: ConfigError) -> ManagedError {
        let detail = error.to_string();
        match error {
            ConfigError::Invalid { key, allowed, .. } => ManagedError::Invalid {
                field: key.rsplit('.').next().unwrap_or(&key).to_string(),
                message: allowed,
                detail,
            },
            other => ManagedError::Invalid {
                field: String::new(),
                message: other.to_string(),
                detail,
            },
        }
    }
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct Managed(Arc<Inner>);

struct Inner {
    store: Store,
    accounts: Accounts,
    routes: Routes,
    /// The config file's entries.
    configured: Entries,
    /// The size limit and `require_https` every entry is validated with.
    rules: EntryRules,
    /// Dev mode routes every recipient; managed entries are kept but not routed.
    dev: bool,
    /// One change at a time, so routers are swapped in the order their changes were made.
    writing: tokio::sync::Mutex<()>,
}

/// A URL for an API answer: as `TargetUrl` displays it, userinfo masked.
fn masked_url(url: &Option<String>) -> Option<String> {
    url.as_ref().map(|text| match TargetUrl::parse(text) {
        Ok(url) => url.to_string(),
        Err(_) => TargetUrl::mask_str(text).trim_matches('"').to_string(),
    })
}

/// Whether `entries` has one with this pattern.
fn taken<K: Kind>(entries: &Entries, pattern: &K::Pattern) -> bool {
    K::entries(entries).iter().any(|e| K::pattern(e) == pattern)
}

fn masked<K: Kind>(spec: &K::Spec) -> K::Spec {
    let mut shown = spec.clone();
    for url in K::urls(&mut shown) {
        *url = masked_url(url);
    }
    shown
}

impl Managed {
    /// Takes the config file's entries; `dev` leaves the routes alone.
    pub fn new(store: Store, accounts: Accounts, routes: Routes, config: &Config) -> Managed {
        Managed(Arc::new(Inner {
            store,
            accounts,
            routes,
            configured: Entries {
                domains: config.domains.clone(),
                addresses: config.addresses.clone(),
            },
            rules: EntryRules::of(config),
            dev: config.dev.is_some(),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The address patterns in use whose mail is POSTed (config, managed, and the catch-all
    /// of a `[[domain]]` with a target): the owners a signing secret can have.
    pub fn posting_addresses(&self) -> Vec<String> {
        self.0.routes.current().posting_addresses()
    }

    /// Builds the router from the config and the store and puts it in use.
    pub async fn reload(&self) -> Result<(), StoreError> {
        if self.0.dev {
            return Ok(());
        }
        let routes = self.effective(true).await?;
        self.0
            .routes
            .replace(Router::new(&routes.addresses, &routes.domains));
        Ok(())
    }

    /// The routes' entries; `log` warns about the stored ones left out (at a reload only,
    /// not at every read). Domains first: addresses may take their target from one.
    async fn effective(&self, log: bool) -> Result<Entries, StoreError> {
        let mut routes = self.0.configured.clone();
        self.add_stored::<Domain>(&mut routes, log).await?;
        self.add_stored::<Address>(&mut routes, log).await?;
        Ok(routes)
    }

    /// Adds the stored entries of one kind that validate and that no entry has already.
    async fn add_stored<K: Kind>(&self, routes: &mut Entries, log: bool) -> Result<(), StoreError> {
        for (id, spec) in self.0.store.managed_entries::<K::Spec>().await? {
            let entry = format!("managed {} {id}", K::NOUN);
            match K::validate(&entry, spec, routes, self.0.rules) {
                Ok(valid) if !taken::<K>(routes, K::pattern(&valid)) => {
                    K::entries_mut(routes).push(valid)
                }
                Ok(valid) if log => warn!(
                    pattern = %K::pattern(&valid),
                    "the config file defines this managed {}; it is not used",
                    K::NOUN
                ),
                Err(error) if log => warn!(
                    %error,
                    "a managed {} no longer validates; it is not used",
                    K::NOUN
                ),
                _ => {}
            }
        }
        Ok(())
    }

    async fn audit(
        &self,
        actor: &Actor,
        ip: Option<IpAddr>,
        subject: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.0
            .accounts
            .audit(
                actor,
                AuditAction::ConfigChanged,
                Some(subject),
                ip,
                Some(detail),
            )
            .await
    }

    /// Config entries first, then the managed ones, oldest first.
    pub async fn entries<K: Kind>(&self) -> Result<Vec<Item<K::Spec>>, StoreError> {
        let routes = self.effective(false).await?;
        let mut items: Vec<_> = K::entries(&self.0.configured)
            .iter()
            .map(|config| Item {
                id: None,
                source: Source::Config,
                active: !self.0.dev,
                spec: K::spec_of(config),
            })
            .collect();
        for (id, spec) in self.0.store.managed_entries::<K::Spec>().await? {
            items.push(self.item::<K>(id, &spec, &routes));
        }
        Ok(items)
    }

    fn item<K: Kind>(&self, id: i64, spec: &K::Spec, routes: &Entries) -> Item<K::Spec> {
        let config_defines =
            K::parse_pattern(spec).is_some_and(|pattern| taken::<K>(&self.0.configured, &pattern));
        let validates = K::validate(K::NOUN, spec.clone(), routes, self.0.rules).is_ok();
        Item {
            id: Some(id),
            source: Source::Api,
            active: !self.0.dev && validates && !config_defines,
            spec: masked::<K>(spec),
        }
    }

    async fn stored<K: Kind>(&self, id: i64) -> Result<K::Spec, ManagedError> {
        let spec = self.0.store.managed_entry::<K::Spec>(id).await?;
        spec.ok_or(ManagedError::NotFound)
    }

    pub async fn entry<K: Kind>(&self, id: i64) -> Result<Item<K::Spec>, ManagedError> {
        let spec = self.stored::<K>(id).await?;
        let routes = self.effective(false).await?;
        Ok(self.item::<K>(id, &spec, &routes))
    }

    /// `spec` with each URL that is the masked form of the stored one unchanged put back
    /// to the stored one: the forms show URLs masked, and sending the mask back means
    /// "keep the credentials".
    pub async fn unmasked<K: Kind>(
        &self,
        id: i64,
        mut spec: K::Spec,
    ) -> Result<K::Spec, ManagedError> {
        let mut stored = self.stored::<K>(id).await?;
        let mut shown = masked::<K>(&stored);
        let pairs = K::urls(&mut stored).into_iter().zip(K::urls(&mut shown));
        for (sent, (stored, shown)) in K::urls(&mut spec).into_iter().zip(pairs) {
            if sent.is_some() && *sent == *shown {
                *sent = stored.take();
            }
        }
        Ok(spec)
    }

    /// Whether `spec` would be accepted by [`Managed::put`] (its fields; not whether its
    /// pattern is taken): the forms use it to list every field's error at once.
    pub async fn check<K: Kind>(&self, spec: K::Spec) -> Result<(), ManagedError> {
        let routes = self.effective(false).await?;
        self.stores_exist::<K>(&spec).await?;
        K::validate(K::NOUN, spec, &routes, self.0.rules)?;
        Ok(())
    }

    /// Every store the entry names exists (`objects`; `GET /api/stores`).
    async fn stores_exist<K: Kind>(&self, spec: &K::Spec) -> Result<(), ManagedError> {
        for (field, name) in K::stores(spec) {
            if self.0.store.object_store(&name).await?.is_none() {
                return Err(ManagedError::Invalid {
                    field: field.to_string(),
                    message: "the name of a store (GET /api/stores lists them)".into(),
                    detail: format!(
                        "{field}: no store is named {name:?}; add it first (POST /api/stores, postern store add)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The config file's addresses that name the store `name` (the managed ones are in
    /// the store: `Store::addresses_using_store`).
    pub fn configured_addresses_using_store(&self, name: &str) -> Vec<String> {
        crate::config::addresses_using_store(&self.0.configured.addresses, name)
    }

    /// Creates (`id: None`) or replaces a managed entry.
    pub async fn put<K: Kind>(
        &self,
        id: Option<i64>,
        mut spec: K::Spec,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<Item<K::Spec>, ManagedError> {
        let _writing = self.0.writing.lock().await;
        let routes = self.effective(false).await?;
        let valid = K::validate(K::NOUN, spec.clone(), &routes, self.0.rules)?;
        self.stores_exist::<K>(&spec).await?;
        let pattern = K::pattern(&valid).to_string();
        if taken::<K>(&self.0.configured, K::pattern(&valid)) {
            return Err(ManagedError::ConfigDefined(pattern));
        }
        K::set_key(&mut spec, pattern.clone());
        let verb = if id.is_some() { "updated" } else { "created" };
        let id = self.write::<K>(id, spec.clone(), &pattern).await?;
        let subject = format!("{} {pattern}", K::NOUN);
        let detail = format!("{} {verb} (id {id})", K::NOUN);
        self.audit(actor, ip, &subject, &detail).await?;
        self.reload().await?;
        let routes = self.effective(false).await?;
        Ok(self.item::<K>(id, &spec, &routes))
    }

    /// Stores the entry; the id written, or why not.
    async fn write<K: Kind>(
        &self,
        id: Option<i64>,
        spec: K::Spec,
        pattern: &str,
    ) -> Result<i64, ManagedError> {
        match self.0.store.put_managed(id, spec).await? {
            ManagedWrite::Written(id) => Ok(id),
            ManagedWrite::NotFound => Err(ManagedError::NotFound),
            ManagedWrite::Duplicate => {
                let existing = self.0.store.managed_entries::<K::Spec>().await?;
                let other = existing
                    .iter()
                    .find(|(_, spec)| K::key(spec) == pattern)
                    .map_or(0, |(id, _)| *id);
                Err(ManagedError::Duplicate(pattern.to_string(), other))
            }
        }
    }

    pub async fn delete<K: Kind>(
        &self,
        id: i64,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<(), ManagedError> {
        let _writing = self.0.writing.lock().await;
        let spec = self.stored::<K>(id).await?;
        if !self.0.store.delete_managed::<K::Spec>(id).await? {
            return Err(ManagedError::NotFound);
        }
        let subject = format!("{} {}", K::NOUN, K::key(&spec));
        let detail = format!("{} deleted (id {id})", K::NOUN);
        self.audit(actor, ip, &subject, &detail).await?;
        self.reload().await?;
        // Its signing secret goes with it (a new entry of the same pattern gets its own),
        // unless the pattern still routes (the config file defines it too).
        if let Some(address) = K::route_address(&spec)
            && !self.posting_addresses().contains(&address)
        {
            let owner = Owner::Address(address).key();
            self.0.store.remove_signing_secret(&owner).await?;
        }
        Ok(())
    }
}
