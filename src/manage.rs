//! Addresses and domains managed at runtime: the logic behind `/api/addresses` and
//! `/api/domains` (and the dashboard pages to come), kept out of the handlers.
//!
//! Two sources make the routes. The config file's `[[address]]` and `[[domain]]` entries
//! win and are read-only here: creating or changing an entry to a pattern the config file
//! defines is refused ([`ManageError::ConfigDefined`], 409). Entries made through the API
//! are stored in SQLite as given and add to them. Both go through the same validation
//! (`config::validate_address`, `config::validate_domain`).
//!
//! Every change rebuilds the [`Router`] from the config entries plus the stored ones and
//! swaps it into [`Routes`], so the SMTP side uses it from the next RCPT on; no restart.
//! `App::build` does the same rebuild, so stored entries are back after a restart. A stored
//! entry that no longer validates (say, an address that took its target from a managed
//! domain since deleted) or that the config file now defines is left out of the routes,
//! with a warning in the log; the list shows it with `active: false`.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use tracing::warn;

use crate::accounts::{Accounts, Actor, AuditAction};
use crate::config::{
    AddressConfig, AddressPattern, AddressSpec, ConfigError, DomainConfig, DomainPattern,
    DomainSpec, TargetUrl, validate_address, validate_domain,
};
use crate::inbound::route::{Router, Routes};
use crate::store::{ManagedWrite, Store, StoreError};

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
}

/// An address as the API shows it: the fields of `[[address]]`, URLs masked.
#[derive(Debug, Clone, Serialize)]
pub struct AddressItem {
    /// The id to change it by; `None` for config entries.
    pub id: Option<i64>,
    pub source: Source,
    /// Whether it is in the routes (`false`: the config file defines the same pattern, or
    /// it no longer validates).
    pub active: bool,
    #[serde(flatten)]
    pub spec: AddressSpec,
}

/// A domain as the API shows it: the fields of `[[domain]]`, URLs masked.
#[derive(Debug, Clone, Serialize)]
pub struct DomainItem {
    pub id: Option<i64>,
    pub source: Source,
    pub active: bool,
    #[serde(flatten)]
    pub spec: DomainSpec,
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
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

impl From<ConfigError> for ManageError {
    fn from(error: ConfigError) -> ManageError {
        let detail = error.to_string();
        match error {
            ConfigError::Invalid { key, allowed, .. } => ManageError::Invalid {
                field: key.rsplit('.').next().unwrap_or(&key).to_string(),
                message: allowed,
                detail,
            },
            other => ManageError::Invalid {
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
    addresses: Vec<AddressConfig>,
    domains: Vec<DomainConfig>,
    max_message_size: usize,
    /// Dev mode routes every recipient; managed entries are kept but not routed.
    dev: bool,
    /// One change at a time, so routers are swapped in the order their changes were made.
    writing: tokio::sync::Mutex<()>,
}

/// The routes a set of config and stored entries make.
struct Effective {
    domains: Vec<DomainConfig>,
    addresses: Vec<AddressConfig>,
}

/// A URL for an API answer: as `TargetUrl` displays it, userinfo masked.
fn masked(url: &Option<String>) -> Option<String> {
    url.as_ref().map(|text| match TargetUrl::parse(text) {
        Ok(url) => url.to_string(),
        Err(_) => TargetUrl::mask_str(text).trim_matches('"').to_string(),
    })
}

fn masked_address(spec: &AddressSpec) -> AddressSpec {
    AddressSpec {
        target: masked(&spec.target),
        auth_callback: masked(&spec.auth_callback),
        error_callback: masked(&spec.error_callback),
        ..spec.clone()
    }
}

fn masked_domain(spec: &DomainSpec) -> DomainSpec {
    DomainSpec {
        target: masked(&spec.target),
        ..spec.clone()
    }
}

/// A validated config entry back in its written form (URLs masked by their `Display`).
fn address_spec(config: &AddressConfig) -> AddressSpec {
    let options = &config.options;
    AddressSpec {
        address: config.pattern.to_string(),
        target: Some(config.target.to_string()),
        format: Some(config.format.as_str().to_string()),
        timeout_secs: options.timeout.map(|t| t.as_secs()),
        max_message_size: options.max_message_size.map(|n| n as u64),
        size_exceeded_message: options.size_exceeded_message.clone(),
        size_as_number: options.size_as_number,
        auth_callback: options.auth_callback.as_ref().map(ToString::to_string),
        error_callback: options.error_callback.as_ref().map(ToString::to_string),
        dkim: options.dkim,
        dmarc: options.dmarc,
    }
}

fn domain_spec(config: &DomainConfig) -> DomainSpec {
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
    }
}

impl Managed {
    /// `addresses` and `domains` are the config file's; `dev` leaves the routes alone.
    pub fn new(
        store: Store,
        accounts: Accounts,
        routes: Routes,
        config: &crate::config::Config,
    ) -> Managed {
        Managed(Arc::new(Inner {
            store,
            accounts,
            routes,
            addresses: config.addresses.clone(),
            domains: config.domains.clone(),
            max_message_size: config.smtp.max_message_size,
            dev: config.dev.is_some(),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Builds the router from the config and the store and puts it in use.
    pub async fn reload(&self) -> Result<(), StoreError> {
        if self.0.dev {
            return Ok(());
        }
        let effective = self.effective(true).await?;
        self.0
            .routes
            .replace(Router::new(&effective.addresses, &effective.domains));
        Ok(())
    }

    /// The routes' entries; `log` warns about the stored ones left out (at a reload only,
    /// not at every read).
    async fn effective(&self, log: bool) -> Result<Effective, StoreError> {
        let inner = &self.0;
        let mut domains = inner.domains.clone();
        for (id, spec) in inner.store.managed_domains().await? {
            match validate_domain(&format!("managed domain {id}"), spec) {
                Ok(d) if !domains.iter().any(|c| c.domain == d.domain) => domains.push(d),
                Ok(d) if log => {
                    warn!(domain = %d.domain, "the config file defines this managed domain; it is not used")
                }
                Err(error) if log => {
                    warn!(%error, "a managed domain no longer validates; it is not used")
                }
                _ => {}
            }
        }
        let mut addresses = inner.addresses.clone();
        for (id, spec) in inner.store.managed_addresses().await? {
            match validate_address(
                &format!("managed address {id}"),
                spec,
                &domains,
                inner.max_message_size,
            ) {
                Ok(a) if !addresses.iter().any(|c| c.pattern == a.pattern) => addresses.push(a),
                Ok(a) if log => {
                    warn!(address = %a.pattern, "the config file defines this managed address; it is not used")
                }
                Err(error) if log => {
                    warn!(%error, "a managed address no longer validates; it is not used")
                }
                _ => {}
            }
        }
        Ok(Effective { domains, addresses })
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

    // Addresses.

    /// Config entries first, then the managed ones, oldest first.
    pub async fn addresses(&self) -> Result<Vec<AddressItem>, StoreError> {
        let effective = self.effective(false).await?;
        let mut items: Vec<_> = self
            .0
            .addresses
            .iter()
            .map(|a| AddressItem {
                id: None,
                source: Source::Config,
                active: !self.0.dev,
                spec: address_spec(a),
            })
            .collect();
        for (id, spec) in self.0.store.managed_addresses().await? {
            items.push(self.address_item(id, &spec, &effective));
        }
        Ok(items)
    }

    fn address_item(&self, id: i64, spec: &AddressSpec, effective: &Effective) -> AddressItem {
        let config_defines = AddressPattern::parse(&spec.address)
            .is_ok_and(|p| self.0.addresses.iter().any(|a| a.pattern == p));
        let validates = validate_address(
            "address",
            spec.clone(),
            &effective.domains,
            self.0.max_message_size,
        )
        .is_ok();
        AddressItem {
            id: Some(id),
            source: Source::Api,
            active: !self.0.dev && validates && !config_defines,
            spec: masked_address(spec),
        }
    }

    pub async fn address(&self, id: i64) -> Result<AddressItem, ManageError> {
        let spec = self
            .0
            .store
            .managed_address(id)
            .await?
            .ok_or(ManageError::NotFound)?;
        let effective = self.effective(false).await?;
        Ok(self.address_item(id, &spec, &effective))
    }

    /// Creates (`id: None`) or replaces a managed address.
    pub async fn put_address(
        &self,
        id: Option<i64>,
        mut spec: AddressSpec,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<AddressItem, ManageError> {
        let _writing = self.0.writing.lock().await;
        let effective = self.effective(false).await?;
        let valid = validate_address(
            "address",
            spec.clone(),
            &effective.domains,
            self.0.max_message_size,
        )?;
        let pattern = valid.pattern.to_string();
        if self.0.addresses.iter().any(|a| a.pattern == valid.pattern) {
            return Err(ManageError::ConfigDefined(pattern));
        }
        spec.address = pattern.clone();
        let verb = if id.is_some() { "updated" } else { "created" };
        let id = match self.0.store.put_managed_address(id, spec.clone()).await? {
            ManagedWrite::Written(id) => id,
            ManagedWrite::NotFound => return Err(ManageError::NotFound),
            ManagedWrite::Duplicate => {
                let existing = self.0.store.managed_addresses().await?;
                let other = existing
                    .iter()
                    .find(|(_, s)| s.address == pattern)
                    .map_or(0, |(id, _)| *id);
                return Err(ManageError::Duplicate(pattern, other));
            }
        };
        self.audit(
            actor,
            ip,
            &format!("address {pattern}"),
            &format!("address {verb} (id {id})"),
        )
        .await?;
        self.reload().await?;
        let effective = self.effective(false).await?;
        Ok(self.address_item(id, &spec, &effective))
    }

    pub async fn delete_address(
        &self,
        id: i64,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<(), ManageError> {
        let _writing = self.0.writing.lock().await;
        let spec = self
            .0
            .store
            .managed_address(id)
            .await?
            .ok_or(ManageError::NotFound)?;
        if !self.0.store.delete_managed_address(id).await? {
            return Err(ManageError::NotFound);
        }
        let subject = format!("address {}", spec.address);
        self.audit(actor, ip, &subject, &format!("address deleted (id {id})"))
            .await?;
        self.reload().await?;
        Ok(())
    }

    // Domains.

    pub async fn domains(&self) -> Result<Vec<DomainItem>, StoreError> {
        let mut items: Vec<_> = self
            .0
            .domains
            .iter()
            .map(|d| DomainItem {
                id: None,
                source: Source::Config,
                active: !self.0.dev,
                spec: domain_spec(d),
            })
            .collect();
        for (id, spec) in self.0.store.managed_domains().await? {
            items.push(self.domain_item(id, &spec));
        }
        Ok(items)
    }

    fn domain_item(&self, id: i64, spec: &DomainSpec) -> DomainItem {
        let config_defines = DomainPattern::parse(&spec.domain)
            .is_ok_and(|p| self.0.domains.iter().any(|d| d.domain == p));
        let validates = validate_domain("domain", spec.clone()).is_ok();
        DomainItem {
            id: Some(id),
            source: Source::Api,
            active: !self.0.dev && validates && !config_defines,
            spec: masked_domain(spec),
        }
    }

    pub async fn domain(&self, id: i64) -> Result<DomainItem, ManageError> {
        let spec = self
            .0
            .store
            .managed_domain(id)
            .await?
            .ok_or(ManageError::NotFound)?;
        Ok(self.domain_item(id, &spec))
    }

    /// Creates (`id: None`) or replaces a managed domain.
    pub async fn put_domain(
        &self,
        id: Option<i64>,
        mut spec: DomainSpec,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<DomainItem, ManageError> {
        let _writing = self.0.writing.lock().await;
        let valid = validate_domain("domain", spec.clone())?;
        let name = valid.domain.to_string();
        if self.0.domains.iter().any(|d| d.domain == valid.domain) {
            return Err(ManageError::ConfigDefined(name));
        }
        spec.domain = name.clone();
        let verb = if id.is_some() { "updated" } else { "created" };
        let id = match self.0.store.put_managed_domain(id, spec.clone()).await? {
            ManagedWrite::Written(written) => written,
            ManagedWrite::NotFound => return Err(ManageError::NotFound),
            ManagedWrite::Duplicate => {
                let existing = self.0.store.managed_domains().await?;
                let other = existing
                    .iter()
                    .find(|(_, s)| s.domain == name)
                    .map_or(0, |(id, _)| *id);
                return Err(ManageError::Duplicate(name, other));
            }
        };
        self.audit(
            actor,
            ip,
            &format!("domain {name}"),
            &format!("domain {verb} (id {id})"),
        )
        .await?;
        self.reload().await?;
        Ok(self.domain_item(id, &spec))
    }

    pub async fn delete_domain(
        &self,
        id: i64,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<(), ManageError> {
        let _writing = self.0.writing.lock().await;
        let spec = self
            .0
            .store
            .managed_domain(id)
            .await?
            .ok_or(ManageError::NotFound)?;
        if !self.0.store.delete_managed_domain(id).await? {
            return Err(ManageError::NotFound);
        }
        let subject = format!("domain {}", spec.domain);
        self.audit(actor, ip, &subject, &format!("domain deleted (id {id})"))
            .await?;
        self.reload().await?;
        Ok(())
    }
}
