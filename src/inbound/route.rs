//! Recipient routing: which configured address a recipient belongs to, and the rules of its
//! domain.
//!
//! Matching order for `user+tag@sub.example.com` (first hit wins):
//! 1. `user+tag@sub.example.com`, 2. `user@sub.example.com` (plus addressing, contract §4.2),
//! 3. `user+tag@*.example.com`, 4. `user@*.example.com`,
//! 5. `*@sub.example.com`, 6. `*@*.example.com`.
//!
//! An exact local part beats a catch-all; at the same level an exact domain beats a one-level
//! wildcard. A `[[domain]]` with a target is a catch-all for its domain unless an `[[address]]`
//! says `*@` for it itself. Before any of that, the domain's `auth_regex` must match the whole
//! address. In dev mode every recipient matches the one dev route. Case is ignored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::{
    AddressConfig, AddressOptions, AddressPattern, DomainConfig, DomainPattern, Format,
    LocalPattern, TargetUrl,
};

/// Where mail for a route goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// POST to the app in this format; the app's answer becomes the SMTP answer.
    Target { url: TargetUrl, format: Format },
    /// Keep the message in the store and answer 250 (dev mode without `--forward`).
    Capture,
}

/// A resolved address with its per-address settings.
#[derive(Debug, Clone)]
pub struct Route {
    /// The configured address this route came from, as shown to operators.
    pub address: String,
    pub destination: Destination,
    pub options: AddressOptions,
}

impl Route {
    fn to(address: String, destination: Destination) -> Route {
        Route {
            address,
            destination,
            options: AddressOptions::default(),
        }
    }
}

/// The index of a route in the router: two recipients share a POST only if they have the
/// same one.
pub type RouteId = usize;

/// Why a recipient is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No address matches: 550 5.1.1.
    NoSuchAddress,
    /// The domain's `auth_regex` does not match: 550 5.7.1.
    AuthRegex,
}

/// The router in use, swappable while the server runs (addresses managed through the API).
/// Readers take a snapshot (`current`: one `Arc` clone under a read lock held for no more
/// than that); `replace` swaps in a new router for every later lookup. A lookup never sees
/// half a change, and a snapshot taken before a swap stays valid for whoever holds it.
#[derive(Debug, Clone)]
pub struct Routes(Arc<RwLock<Arc<Router>>>);

impl Routes {
    pub fn new(router: Router) -> Routes {
        Routes(Arc::new(RwLock::new(Arc::new(router))))
    }

    pub fn current(&self) -> Arc<Router> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, router: Router) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(router);
    }
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    by_pattern: HashMap<AddressPattern, RouteId>,
    domains: Vec<DomainConfig>,
    /// Dev mode: every recipient goes here.
    everything: Option<RouteId>,
}

impl Router {
    pub fn new(addresses: &[AddressConfig], domains: &[DomainConfig]) -> Router {
        let mut router = Router {
            routes: Vec::new(),
            by_pattern: HashMap::new(),
            domains: domains.to_vec(),
            everything: None,
        };
        for address in addresses {
            let route = Route {
                address: address.pattern.to_string(),
                destination: Destination::Target {
                    url: address.target.clone(),
                    format: address.format,
                },
                options: address.options.clone(),
            };
            router.add(address.pattern.clone(), route);
        }
        for domain in domains {
            let Some(url) = &domain.target else { continue };
            let pattern = AddressPattern {
                local: LocalPattern::Any,
                domain: domain.domain.clone(),
            };
            if !router.by_pattern.contains_key(&pattern) {
                let destination = Destination::Target {
                    url: url.clone(),
                    format: domain.format.unwrap_or(Format::JsonNormalized),
                };
                let mut route = Route::to(pattern.to_string(), destination);
                route.options.redact = domain.redact.clone();
                route.options.delivery = domain.delivery.unwrap_or_default();
                router.add(pattern.clone(), route);
            }
        }
        router
    }

    fn add(&mut self, pattern: AddressPattern, route: Route) {
        self.by_pattern.insert(pattern, self.routes.len());
        self.routes.push(route);
    }

    /// A router that sends every recipient to `destination` (dev mode).
    pub fn everything(destination: Destination) -> Router {
        Router {
            routes: vec![Route::to("*".into(), destination)],
            by_pattern: HashMap::new(),
            domains: Vec::new(),
            everything: Some(0),
        }
    }

    pub fn lookup(&self, recipient: &str) -> Result<RouteId, Refusal> {
        if let Some(id) = self.everything {
            return Ok(id);
        }
        let (local, domain) = recipient.rsplit_once('@').ok_or(Refusal::NoSuchAddress)?;
        let local = local.to_lowercase();
        let domain = domain.to_ascii_lowercase();

        if let Some(rule) = self.domain_rule(&domain)
            && let Some(regex) = &rule.auth_regex
            && !regex.is_match(recipient)
        {
            return Err(Refusal::AuthRegex);
        }

        let base = local.split_once('+').map(|(base, _)| base.to_string());
        let locals: Vec<LocalPattern> = std::iter::once(local)
            .chain(base.filter(|b| !b.is_empty()))
            .map(LocalPattern::Exact)
            .chain([LocalPattern::Any])
            .collect();
        let mut domains = vec![DomainPattern::Exact(domain.clone())];
        if let Some(parent) = DomainPattern::parent_of(&domain) {
            domains.push(DomainPattern::Subdomain(parent.to_string()));
        }
        for local in &locals {
            for domain in &domains {
                let pattern = AddressPattern {
                    local: local.clone(),
                    domain: domain.clone(),
                };
                if let Some(&id) = self.by_pattern.get(&pattern) {
                    return Ok(id);
                }
            }
        }
        Err(Refusal::NoSuchAddress)
    }

    /// The `[[domain]]` rules for `domain`: an exact entry, else a one-level wildcard.
    fn domain_rule(&self, domain: &str) -> Option<&DomainConfig> {
        self.domains
            .iter()
            .find(|d| d.domain == DomainPattern::Exact(domain.to_string()))
            .or_else(|| self.domains.iter().find(|d| d.domain.matches(domain)))
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id]
    }

    /// The addresses (patterns, as shown) whose mail is POSTed somewhere, in the order added.
    pub fn posting_addresses(&self) -> Vec<String> {
        self.routes
            .iter()
            .filter(|route| matches!(route.destination, Destination::Target { .. }))
            .map(|route| route.address.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn router(toml: &str) -> Router {
        let config = Config::from_toml(toml, []).unwrap();
        Router::new(&config.addresses, &config.domains)
    }

    fn address_of(router: &Router, recipient: &str) -> Result<String, Refusal> {
        router
            .lookup(recipient)
            .map(|id| router.route(id).address.clone())
    }

    const CONFIG: &str = r#"
        [[address]]
        address = "*@example.com"
        target = "http://127.0.0.1/all"
        [[address]]
        address = "support@example.com"
        target = "http://127.0.0.1/support"
        [[address]]
        address = "support+vip@example.com"
        target = "http://127.0.0.1/vip"
        [[address]]
        address = "*@*.example.com"
        target = "http://127.0.0.1/sub"
        [[address]]
        address = "billing@*.example.com"
        target = "http://127.0.0.1/billing"
        [[address]]
        address = "ops@eu.example.com"
        target = "http://127.0.0.1/ops"
        [[address]]
        address = "only@example.net"
        target = "http://127.0.0.1/only"
    "#;

    #[test]
    fn matching_order() {
        let r = router(CONFIG);
        let cases = [
            ("support@example.com", "support@example.com"),
            ("Support@EXAMPLE.com", "support@example.com"),
            ("support+tag@example.com", "support@example.com"),
            ("support+vip@example.com", "support+vip@example.com"),
            ("sales@example.com", "*@example.com"),
            ("sales+x@example.com", "*@example.com"),
            ("ops@eu.example.com", "ops@eu.example.com"),
            ("ops+x@eu.example.com", "ops@eu.example.com"),
            ("billing@eu.example.com", "billing@*.example.com"),
            ("billing+x@us.example.com", "billing@*.example.com"),
            ("anyone@us.example.com", "*@*.example.com"),
            ("only@example.net", "only@example.net"),
        ];
        for (recipient, expected) in cases {
            assert_eq!(
                address_of(&r, recipient).as_deref(),
                Ok(expected),
                "{recipient}"
            );
        }
        for unknown in [
            "x@a.b.example.com",
            "other@example.net",
            "x@example.org",
            "no-at-sign",
            "+@example.net",
        ] {
            assert_eq!(
                address_of(&r, unknown),
                Err(Refusal::NoSuchAddress),
                "{unknown}"
            );
        }
    }

    #[test]
    fn domain_rules() {
        let r = router(
            r#"
            [[domain]]
            domain = "example.com"
            auth_regex = '[a-z]+-\d+@example\.com'
            target = "http://127.0.0.1/domain"
            [[domain]]
            domain = "*.example.org"
            auth_regex = 'team@.*'
            [[address]]
            address = "team@*.example.org"
            target = "http://127.0.0.1/team"
            [[address]]
            address = "ticket-1@example.com"
            format = "json+n"
        "#,
        );
        assert_eq!(
            address_of(&r, "user-42@example.com").as_deref(),
            Ok("*@example.com")
        );
        assert_eq!(
            address_of(&r, "USER-42@Example.com").as_deref(),
            Ok("*@example.com")
        );
        assert_eq!(
            address_of(&r, "ticket-1@example.com").as_deref(),
            Ok("ticket-1@example.com")
        );
        assert_eq!(address_of(&r, "user@example.com"), Err(Refusal::AuthRegex));
        assert_eq!(
            address_of(&r, "user-42@example.com.evil"),
            Err(Refusal::NoSuchAddress)
        );
        assert_eq!(
            address_of(&r, "team@eu.example.org").as_deref(),
            Ok("team@*.example.org")
        );
        assert_eq!(
            address_of(&r, "other@eu.example.org"),
            Err(Refusal::AuthRegex)
        );
        // The inherited target.
        let id = r.lookup("ticket-1@example.com").unwrap();
        let Destination::Target { url, .. } = &r.route(id).destination else {
            panic!()
        };
        assert_eq!(url.to_string(), "http://127.0.0.1/domain");
    }

    #[test]
    fn dev_router_takes_everything() {
        let router = Router::everything(Destination::Capture);
        assert_eq!(router.lookup("anyone@anywhere.test"), Ok(0));
    }
}
