//! Recipient routing: which configured address a recipient belongs to.
//!
//! Matching order: an exact address wins over its domain's catch-all (`*@domain`). In dev
//! mode every recipient matches the one dev route. Matching ignores ASCII case.

use std::collections::HashMap;

use crate::config::{AddressConfig, Format, TargetUrl};

/// Where mail for a route goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// POST to the app in this format; the app's answer becomes the SMTP answer.
    Target { url: TargetUrl, format: Format },
    /// Keep the message in the store and answer 250 (dev mode without `--forward`).
    Capture,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The configured address this route came from, as shown to operators.
    pub address: String,
    pub destination: Destination,
}

/// An index of a route inside the router: two recipients share a POST only if they
/// have the same one.
pub type RouteId = usize;

#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    exact: HashMap<String, RouteId>,
    catch_all: HashMap<String, RouteId>,
    /// Dev mode: every recipient goes here.
    everything: Option<RouteId>,
}

impl Router {
    pub fn new(addresses: &[AddressConfig]) -> Router {
        let mut router = Router {
            routes: Vec::with_capacity(addresses.len()),
            exact: HashMap::new(),
            catch_all: HashMap::new(),
            everything: None,
        };
        for address in addresses {
            let id = router.routes.len();
            router.routes.push(Route {
                address: address.pattern.to_string(),
                destination: Destination::Target {
                    url: address.target.clone(),
                    format: address.format,
                },
            });
            match &address.pattern {
                crate::config::AddressPattern::Exact { .. } => {
                    router.exact.insert(address.pattern.to_string(), id);
                }
                crate::config::AddressPattern::CatchAll { domain } => {
                    router.catch_all.insert(domain.clone(), id);
                }
            }
        }
        router
    }

    /// A router that sends every recipient to `destination` (dev mode).
    pub fn everything(destination: Destination) -> Router {
        Router {
            routes: vec![Route {
                address: "*".into(),
                destination,
            }],
            exact: HashMap::new(),
            catch_all: HashMap::new(),
            everything: Some(0),
        }
    }

    pub fn lookup(&self, recipient: &str) -> Option<RouteId> {
        if let Some(id) = self.everything {
            return Some(id);
        }
        let (local, domain) = recipient.rsplit_once('@')?;
        let domain = domain.to_ascii_lowercase();
        let exact = format!("{}@{domain}", local.to_lowercase());
        self.exact
            .get(&exact)
            .or_else(|| self.catch_all.get(&domain))
            .copied()
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AddressPattern;

    fn address(pattern: &str, target: &str) -> AddressConfig {
        AddressConfig {
            pattern: AddressPattern::parse(pattern).unwrap(),
            target: TargetUrl::parse(target).unwrap(),
            format: Format::JsonNormalized,
        }
    }

    #[test]
    fn exact_wins_over_catch_all_and_case_is_ignored() {
        let router = Router::new(&[
            address("*@example.com", "http://127.0.0.1/all"),
            address("support@example.com", "http://127.0.0.1/support"),
        ]);
        assert_eq!(router.lookup("Support@EXAMPLE.com"), Some(1));
        assert_eq!(router.lookup("sales@example.com"), Some(0));
        assert_eq!(router.lookup("support@example.org"), None);
        assert_eq!(router.lookup("no-at-sign"), None);
        assert_eq!(router.route(1).address, "support@example.com");
    }

    #[test]
    fn dev_router_takes_everything() {
        let router = Router::everything(Destination::Capture);
        assert_eq!(router.lookup("anyone@anywhere.test"), Some(0));
    }
}
