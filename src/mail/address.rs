//! Addresses as Postern reads them in header fields and on the envelope: the mailboxes of
//! an address list, the one rule for an address an SMTP envelope can carry, its normal form
//! and its domain. Both directions of mail use these (inbound for SPF, outbound for
//! recipients, suppressions and sending domains).

use mail_parser::parsers::MessageStream;

/// One mailbox of an address header: `Name <user@example.com>` or `user@example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl std::fmt::Display for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.address),
            None => f.write_str(&self.address),
        }
    }
}

/// The mailboxes of an address-list header value (`From`, `To`, `Cc`; RFC 5322 §3.4),
/// group members included. Entries without an `@` are left out.
pub fn parse_mailboxes(value: &str) -> Vec<Mailbox> {
    let line = format!("{}\r\n", value.replace(['\r', '\n'], " "));
    let mailbox = |addr: &mail_parser::Addr<'_>| {
        let address = addr.address.as_deref()?.trim();
        address.contains('@').then(|| Mailbox {
            name: addr
                .name
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string),
            address: address.to_string(),
        })
    };
    match MessageStream::new(line.as_bytes()).parse_address() {
        mail_parser::HeaderValue::Address(mail_parser::Address::List(list)) => {
            list.iter().filter_map(mailbox).collect()
        }
        mail_parser::HeaderValue::Address(mail_parser::Address::Group(groups)) => groups
            .iter()
            .flat_map(|group| group.addresses.iter())
            .filter_map(mailbox)
            .collect(),
        _ => Vec::new(),
    }
}

/// `user@Example.COM` → `user@example.com`: the domain is case-insensitive, the local part
/// is kept as written (RFC 5321 §2.4).
pub fn normalise_address(address: &str) -> String {
    match address.trim().rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => address.trim().to_string(),
    }
}

/// The domain of an address, lower case (what follows the last `@`).
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, domain)| domain)
        .to_ascii_lowercase()
}

/// The domain of a From header's address (`Name <user@example.com>` or `user@example.com`),
/// lower case; a bare domain (a From whose address was redacted) is itself.
pub fn header_domain(header_from: &str) -> String {
    let address = match (header_from.rfind('<'), header_from.rfind('>')) {
        (Some(open), Some(close)) if open < close => &header_from[open + 1..close],
        _ => header_from,
    };
    let address = address.trim();
    match address.rsplit_once('@') {
        Some((_, domain)) => domain.to_ascii_lowercase(),
        None => address.to_ascii_lowercase(),
    }
}

/// An address we can put on an SMTP envelope: one `@`, no spaces or angle brackets.
pub fn valid_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !address.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';')
                })
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_domain_is_read_from_a_display_address_or_a_bare_domain() {
        assert_eq!(header_domain("Shop <News@Example.COM>"), "example.com");
        assert_eq!(header_domain("a@b.test"), "b.test");
        assert_eq!(header_domain("\"x@y\" <a@c.test>"), "c.test");
        assert_eq!(header_domain("Example.test"), "example.test");
    }

    #[test]
    fn mailboxes_of_an_address_list() {
        let parsed =
            parse_mailboxes(r#""Doe, Jane" <jane@example.com>, bob@example.org, Al <al@x.test>"#);
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Doe, Jane <jane@example.com>",
                "bob@example.org",
                "Al <al@x.test>"
            ]
        );
        assert!(parse_mailboxes("not an address").is_empty());
        assert_eq!(parse_mailboxes("Team: a@x.test, b@x.test;").len(), 2);
    }

    #[test]
    fn envelope_addresses_and_their_domains() {
        assert!(valid_address("a@example.com"));
        assert!(!valid_address("a@localhost") && !valid_address("a b@example.com"));
        assert!(!valid_address("@example.com") && !valid_address("nobody"));
        assert_eq!(normalise_address(" Al@Example.COM "), "Al@example.com");
        assert_eq!(domain_of("al@Mail.Example.com"), "mail.example.com");
        assert_eq!(domain_of("no-at-sign"), "");
    }
}
