//! SPF, DKIM and DMARC verification (contract §5.1–5.3) against a DNS server on loopback. DKIM
//! samples are signed here with keys generated per test run and published in the test zone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use postern::dns::ResolverChoice;
use postern::inbound::format::{Dkim, DkimSignature, Dmarc, DmarcDetails, Spf};
use postern::inbound::verify::{AuthConfig, Verifier};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::dns::{DnsServer, Zone};

/// The connecting client in most tests; inside 192.0.2.0/24, which the test SPF records allow.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
/// A client no test SPF record allows.
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const TIMEOUT: Duration = Duration::from_secs(3);
/// For the tests that wait for a server that never answers.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

fn verifier(dns: &DnsServer, timeout: Duration) -> Verifier {
    Verifier::new(AuthConfig {
        resolver: ResolverChoice::Servers(vec![dns.addr()]),
        timeout,
    })
    .unwrap()
}

fn spf(result: &str, domain: &str) -> Spf {
    Spf {
        result: result.into(),
        domain: domain.into(),
    }
}

fn signature(result: &str, domain: &str, selector: &str) -> DkimSignature {
    DkimSignature {
        result: result.into(),
        domain: domain.into(),
        selector: selector.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// SPF

fn spf_zone() -> Zone {
    // More TXT data than one UDP answer holds: the server truncates, the resolver retries
    // over TCP.
    let big = (0..12).fold(Zone::new(), |zone, n| {
        zone.txt("big.test", &format!("filler-{n}={}", "x".repeat(200)))
    });
    big.txt("big.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("pass.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("fail.test", "v=spf1 ip4:203.0.113.0/24 -all")
        .txt("softfail.test", "v=spf1 ip4:203.0.113.0/24 ~all")
        .txt("neutral.test", "v=spf1 ?all")
        .txt("no-match.test", "v=spf1 ip4:203.0.113.1")
        .txt("other-txt.test", "site-verification=abc123")
        .txt("a.test", "v=spf1 a -all")
        .a("a.test", Ipv4Addr::new(192, 0, 2, 10))
        .txt("mx.test", "v=spf1 mx -all")
        .mx("mx.test", 10, "mail.mx.test")
        .a("mail.mx.test", Ipv4Addr::new(192, 0, 2, 10))
        .txt("include.test", "v=spf1 include:pass.test -all")
        .txt("redirect.test", "v=spf1 redirect=fail.test")
        .txt("v6.test", "v=spf1 ip6:2001:db8::/32 -all")
        .txt("two.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("two.test", "v=spf1 +all")
        .txt("syntax.test", "v=spf1 ip4:not-an-address -all")
        .txt("syntax-and-other.test", "v=spf1 ip4:not-an-address -all")
        .txt("syntax-and-other.test", "site-verification=abc123")
        .txt("broken-include.test", "v=spf1 include:nxdomain.test -all")
        .txt("flaky-include.test", "v=spf1 include:servfail.test -all")
        .servfail("servfail.test")
        .silent("silent.test")
        .txt("mx.helo.test", "v=spf1 ip4:192.0.2.10 -all")
}

#[tokio::test]
async fn spf_results() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let cases = [
        ("pass.test", "pass"),
        ("fail.test", "fail"),
        ("softfail.test", "softfail"),
        ("neutral.test", "neutral"),
        // RFC 7208 §4.7: no mechanism matched and no redirect.
        ("no-match.test", "neutral"),
        ("nxdomain.test", "none"),
        ("other-txt.test", "none"),
        ("a.test", "pass"),
        ("mx.test", "pass"),
        ("include.test", "pass"),
        ("redirect.test", "fail"),
        // RFC 7208 §4.5: more than one SPF record.
        ("two.test", "permerror"),
        ("syntax.test", "permerror"),
        ("syntax-and-other.test", "permerror"),
        // RFC 7208 §5.2: an include without a record.
        ("broken-include.test", "permerror"),
        ("big.test", "pass"),
        ("servfail.test", "temperror"),
        ("flaky-include.test", "temperror"),
    ];
    for (domain, expected) in cases {
        let got = verifier
            .spf(CLIENT, "client.example", &format!("bounce@{domain}"))
            .await;
        assert_eq!(got, spf(expected, domain), "MAIL FROM bounce@{domain}");
    }
}

#[tokio::test]
async fn spf_for_ipv6_clients() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let inside = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25));
    let outside = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, 0, 0x25));
    assert_eq!(
        verifier.spf(inside, "h.example", "a@v6.test").await,
        spf("pass", "v6.test")
    );
    assert_eq!(
        verifier.spf(outside, "h.example", "a@v6.test").await,
        spf("fail", "v6.test")
    );
    assert_eq!(
        verifier.spf(inside, "h.example", "a@pass.test").await,
        spf("fail", "pass.test")
    );
}

#[tokio::test]
async fn spf_checks_helo_only_for_the_null_sender() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    assert_eq!(
        verifier.spf(CLIENT, "mx.helo.test", "").await,
        spf("pass", "mx.helo.test")
    );
    assert_eq!(
        verifier.spf(STRANGER, "mx.helo.test", "").await,
        spf("fail", "mx.helo.test")
    );
    // A HELO that fails does not decide for a sender with a domain (contract §5.1).
    assert_eq!(
        verifier
            .spf(STRANGER, "mx.helo.test", "a@neutral.test")
            .await,
        spf("neutral", "neutral.test")
    );
    assert_eq!(
        verifier.spf(CLIENT, "unpublished.test", "").await,
        spf("none", "unpublished.test")
    );
}

#[tokio::test]
async fn spf_domain_is_lower_case_and_literals_are_not_looked_up() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    assert_eq!(
        verifier.spf(CLIENT, "h.example", "Bounce@PASS.Test").await,
        spf("pass", "pass.test")
    );
    let before = dns.queries();
    assert_eq!(
        verifier.spf(CLIENT, "[192.0.2.10]", "").await,
        spf("none", "[192.0.2.10]")
    );
    assert_eq!(
        verifier.spf(CLIENT, "localhost", "").await,
        spf("none", "localhost")
    );
    assert_eq!(dns.queries(), before, "no query for an address literal");
}

#[tokio::test]
async fn spf_times_out_as_temperror() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = verifier(&dns, SHORT_TIMEOUT);
    let started = Instant::now();
    assert_eq!(
        verifier.spf(CLIENT, "h.example", "a@silent.test").await,
        spf("temperror", "silent.test")
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(dns.queries() >= 1, "the server was asked");
}

#[tokio::test]
async fn one_shared_verifier_answers_from_its_cache() {
    let dns = DnsServer::start(spf_zone()).await;
    let verifier = Arc::new(verifier(&dns, TIMEOUT));
    assert_eq!(
        verifier.spf(CLIENT, "h.example", "a@mx.test").await,
        spf("pass", "mx.test")
    );
    let after_first = dns.queries();
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.spf(CLIENT, "h.example", "a@mx.test").await })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap(), spf("pass", "mx.test"));
    }
    assert_eq!(dns.queries(), after_first, "repeat checks are cached");
}

// ---------------------------------------------------------------------------------------------
// DKIM

/// Signing keys, generated once per test run (RSA generation is slow in debug builds).
struct Keys {
    rsa_pkcs8: Vec<u8>,
    /// SubjectPublicKeyInfo, base64, as `p=` carries it (RFC 6376 §3.6.1).
    rsa_public: String,
    ed25519_pkcs8: Vec<u8>,
    /// The bare 32-byte key, base64 (RFC 8463 §4.2).
    ed25519_public: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ed25519_pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let ed25519 = Ed25519Key::from_pkcs8_der(&ed25519_pkcs8).unwrap();
        Keys {
            rsa_pkcs8: rsa.serialize_der(),
            rsa_public: BASE64.encode(rsa.public_key_der()),
            ed25519_public: BASE64.encode(ed25519.public_key()),
            ed25519_pkcs8,
        }
    })
}

const SIGNED_HEADERS: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];

/// A `DKIM-Signature:` field (with CRLF) for `message`, RSA-SHA256.
fn sign_rsa(message: &str, domain: &str, selector: &str) -> String {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(keys().rsa_pkcs8.clone()));
    let key = RsaKey::<Sha256>::from_key_der(der).unwrap();
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .sign(message.as_bytes())
        .unwrap()
        .to_header()
}

/// A `DKIM-Signature:` field (with CRLF) for `message`, Ed25519-SHA256.
fn sign_ed25519(message: &str, domain: &str, selector: &str) -> String {
    let key = Ed25519Key::from_pkcs8_der(&keys().ed25519_pkcs8).unwrap();
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .sign(message.as_bytes())
        .unwrap()
        .to_header()
}

fn message(from_domain: &str) -> String {
    format!(
        "From: Alice <alice@{from_domain}>\r\n\
         To: bob@postern.test\r\n\
         Subject: Quarterly report\r\n\
         Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n\
         Message-ID: <q1@{from_domain}>\r\n\
         \r\n\
         Hello Bob,\r\n\
         \r\n\
         the numbers are attached.\r\n"
    )
}

/// Publishes the test keys for `domain` under the selectors `rsa` and `ed`.
fn with_keys(zone: Zone, domain: &str) -> Zone {
    let keys = keys();
    zone.txt(
        &format!("rsa._domainkey.{domain}"),
        &format!("v=DKIM1; k=rsa; p={}", keys.rsa_public),
    )
    .txt(
        &format!("ed._domainkey.{domain}"),
        &format!("v=DKIM1; k=ed25519; p={}", keys.ed25519_public),
    )
}

fn dkim_zone() -> Zone {
    with_keys(Zone::new(), "org.test")
        .servfail("flaky._domainkey.org.test")
        .silent("slow._domainkey.org.test")
}

#[tokio::test]
async fn dkim_passes_rsa_and_ed25519_signatures() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signed = format!(
        "{}{}{body}",
        sign_rsa(&body, "org.test", "rsa"),
        sign_ed25519(&body, "org.test", "ed")
    );
    assert_eq!(
        verifier.dkim(signed.as_bytes()).await,
        Dkim {
            success: true,
            result: vec![
                signature("pass", "org.test", "rsa"),
                signature("pass", "org.test", "ed")
            ],
        }
    );
}

#[tokio::test]
async fn dkim_fails_tampered_messages() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signatures = format!(
        "{}{}",
        sign_rsa(&body, "org.test", "rsa"),
        sign_ed25519(&body, "org.test", "ed")
    );
    let both_fail = Dkim {
        success: true,
        result: vec![
            signature("fail", "org.test", "rsa"),
            signature("fail", "org.test", "ed"),
        ],
    };

    let changed_body = body.replace("attached", "wrong");
    let got = verifier
        .dkim(format!("{signatures}{changed_body}").as_bytes())
        .await;
    assert_eq!(got, both_fail, "changed body");

    let changed_subject = body.replace("Quarterly", "Final");
    let got = verifier
        .dkim(format!("{signatures}{changed_subject}").as_bytes())
        .await;
    assert_eq!(got, both_fail, "changed signed header");
}

#[tokio::test]
async fn dkim_without_a_signature_is_one_neutral_entry() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let no_signature = vec![signature("neutral", "", "")];
    assert_eq!(
        verifier.dkim(message("org.test").as_bytes()).await,
        Dkim {
            success: true,
            result: no_signature.clone(),
        }
    );
    // Nothing to read: the check could not run.
    assert_eq!(
        verifier.dkim(b"").await,
        Dkim {
            success: false,
            result: no_signature,
        }
    );
}

#[tokio::test]
async fn dkim_key_problems() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signed = format!(
        "{}{}{body}",
        sign_rsa(&body, "org.test", "gone"),
        sign_rsa(&body, "org.test", "flaky"),
    );
    assert_eq!(
        verifier.dkim(signed.as_bytes()).await,
        Dkim {
            success: true,
            result: vec![
                signature("permerror", "org.test", "gone"),
                signature("temperror", "org.test", "flaky"),
            ],
        }
    );
}

#[tokio::test]
async fn dkim_malformed_signatures_are_neutral_in_header_order() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signed = format!(
        "{}\
         DKIM-Signature: v=1; a=rsa-sha512; d=org.test; s=odd; h=from; bh=AAAA; b=AAAA\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; d=org.test;\r\n\ts=nob; h=from\r\n\
         {}{body}",
        sign_rsa(&body, "org.test", "rsa"),
        sign_ed25519(&body, "org.test", "ed"),
    );
    assert_eq!(
        verifier.dkim(signed.as_bytes()).await,
        Dkim {
            success: true,
            result: vec![
                signature("pass", "org.test", "rsa"),
                signature("neutral", "org.test", "odd"),
                signature("neutral", "org.test", "nob"),
                signature("pass", "org.test", "ed"),
            ],
        }
    );
}

#[tokio::test]
async fn dkim_times_out_as_temperror() {
    let dns = DnsServer::start(dkim_zone()).await;
    let verifier = verifier(&dns, SHORT_TIMEOUT);
    let body = message("org.test");
    let signed = format!("{}{body}", sign_rsa(&body, "org.test", "slow"));
    let started = Instant::now();
    assert_eq!(
        verifier.dkim(signed.as_bytes()).await,
        Dkim {
            success: true,
            result: vec![signature("temperror", "org.test", "slow")],
        }
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// DMARC

fn dmarc_zone() -> Zone {
    let zone = Zone::new()
        .txt("_dmarc.org.test", "v=DMARC1; p=reject")
        .txt("org.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("mail.org.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("other.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt(
            "_dmarc.monitor.test",
            "v=DMARC1; p=none; rua=mailto:d@monitor.test",
        )
        .txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s")
        .txt("strict.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("mail.strict.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("_dmarc.bad.test", "v=DMARC1; p=bogus")
        .servfail("_dmarc.flaky.test")
        .servfail("flaky._domainkey.org.test");
    with_keys(with_keys(zone, "org.test"), "other.test")
}

/// Runs the three checks the way the inbound flow will.
async fn authenticate(
    verifier: &Verifier,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    raw: &str,
) -> (Spf, Dkim, Dmarc) {
    let spf = verifier.spf(ip, helo, mail_from).await;
    let dkim = verifier.dkim(raw.as_bytes()).await;
    let dmarc = verifier.dmarc(raw.as_bytes(), &spf, &dkim).await;
    (spf, dkim, dmarc)
}

fn dmarc(result: &str, domain: &str, policy: &str, spf: &str, aligned: (&str, &str)) -> Dmarc {
    Dmarc {
        success: true,
        result: result.into(),
        details: DmarcDetails {
            domain: domain.into(),
            policy: policy.into(),
            spf_result: spf.into(),
            dmarc_spf_result: aligned.0.into(),
            dmarc_dkim_result: aligned.1.into(),
            dkim_results: vec![signature("neutral", "", "")],
        },
    }
}

#[tokio::test]
async fn dmarc_passes_with_aligned_dkim() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signed = format!("{}{body}", sign_rsa(&body, "org.test", "rsa"));
    // SPF fails (a stranger's IP): the aligned signature alone carries DMARC.
    let (_, dkim, got) =
        authenticate(&verifier, STRANGER, "h.example", "bounce@org.test", &signed).await;
    let mut expected = dmarc("pass", "org.test", "reject", "fail", ("fail", "pass"));
    expected.details.dkim_results = vec![signature("pass", "org.test", "rsa")];
    assert_eq!(dkim.result, expected.details.dkim_results);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dmarc_passes_with_aligned_spf() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let (_, _, got) = authenticate(&verifier, CLIENT, "h.example", "bounce@org.test", &body).await;
    assert_eq!(
        got,
        dmarc("pass", "org.test", "reject", "pass", ("pass", "fail"))
    );
    // Relaxed alignment (the default): a subdomain of the From domain aligns.
    let (_, _, got) = authenticate(
        &verifier,
        CLIENT,
        "h.example",
        "bounce@mail.org.test",
        &body,
    )
    .await;
    assert_eq!(
        got,
        dmarc("pass", "org.test", "reject", "pass", ("pass", "fail"))
    );
    // The null sender aligns through its HELO name.
    let (spf, _, got) = authenticate(&verifier, CLIENT, "mail.org.test", "", &body).await;
    assert_eq!(spf, self::spf("pass", "mail.org.test"));
    assert_eq!(
        got,
        dmarc("pass", "org.test", "reject", "pass", ("pass", "fail"))
    );
}

#[tokio::test]
async fn dmarc_fails_without_alignment() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    // SPF and DKIM both pass, but for another domain than the From header's.
    let body = message("org.test");
    let signed = format!("{}{body}", sign_rsa(&body, "other.test", "rsa"));
    let (spf, dkim, got) =
        authenticate(&verifier, CLIENT, "h.example", "bounce@other.test", &signed).await;
    assert_eq!(spf, self::spf("pass", "other.test"));
    assert_eq!(dkim.result, vec![signature("pass", "other.test", "rsa")]);
    let mut expected = dmarc("fail", "org.test", "reject", "pass", ("fail", "fail"));
    expected.details.dkim_results = dkim.result.clone();
    assert_eq!(got, expected);

    // Strict SPF alignment: a subdomain is not enough.
    let body = message("strict.test");
    let (_, _, got) = authenticate(
        &verifier,
        CLIENT,
        "h.example",
        "bounce@mail.strict.test",
        &body,
    )
    .await;
    assert_eq!(
        got,
        dmarc("fail", "strict.test", "reject", "pass", ("fail", "fail"))
    );
}

#[tokio::test]
async fn dmarc_reports_the_published_policy() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    for (domain, policy) in [
        ("org.test", "reject"),
        ("quarantine.test", "quarantine"),
        ("monitor.test", "none"),
    ] {
        let (_, _, got) =
            authenticate(&verifier, STRANGER, "h.example", "", &message(domain)).await;
        assert_eq!(
            got,
            dmarc("fail", domain, policy, "none", ("fail", "fail")),
            "{domain}"
        );
    }
}

#[tokio::test]
async fn dmarc_none_and_errors() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let (_, _, got) = authenticate(
        &verifier,
        CLIENT,
        "h.example",
        "bounce@org.test",
        &message("no-record.test"),
    )
    .await;
    assert_eq!(
        got,
        dmarc("none", "no-record.test", "none", "pass", ("none", "none"))
    );

    let (_, _, got) =
        authenticate(&verifier, CLIENT, "h.example", "", &message("flaky.test")).await;
    assert_eq!(
        got,
        dmarc(
            "temperror",
            "flaky.test",
            "none",
            "none",
            ("temperror", "temperror")
        )
    );

    let (_, _, got) = authenticate(&verifier, CLIENT, "h.example", "", &message("bad.test")).await;
    assert_eq!(
        got,
        dmarc(
            "permerror",
            "bad.test",
            "none",
            "none",
            ("permerror", "permerror")
        )
    );
}

#[tokio::test]
async fn dmarc_waits_for_an_aligned_signature_it_could_not_check() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let body = message("org.test");
    let signed = format!("{}{body}", sign_rsa(&body, "org.test", "flaky"));
    let (_, dkim, got) =
        authenticate(&verifier, STRANGER, "h.example", "bounce@org.test", &signed).await;
    let mut expected = dmarc(
        "temperror",
        "org.test",
        "reject",
        "fail",
        ("fail", "temperror"),
    );
    expected.details.dkim_results = vec![signature("temperror", "org.test", "flaky")];
    assert_eq!(dkim.result, expected.details.dkim_results);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dmarc_without_headers_could_not_run() {
    let dns = DnsServer::start(dmarc_zone()).await;
    let verifier = verifier(&dns, TIMEOUT);
    let spf = spf("none", "h.example");
    let dkim = verifier.dkim(b"").await;
    let mut expected = dmarc("none", "", "none", "none", ("none", "none"));
    expected.success = false;
    assert_eq!(verifier.dmarc(b"", &spf, &dkim).await, expected);
}

#[test]
fn checks_can_run_on_spawned_tasks() {
    fn assert_send<T: Send>(_: &T) {}
    let verifier = Verifier::new(AuthConfig {
        resolver: ResolverChoice::Servers(vec!["127.0.0.1:9".parse().unwrap()]),
        timeout: TIMEOUT,
    })
    .unwrap();
    let (spf, dkim) = (
        spf("none", ""),
        Dkim {
            success: true,
            result: vec![],
        },
    );
    assert_send(&verifier.spf(CLIENT, "h", ""));
    assert_send(&verifier.dkim(b""));
    assert_send(&verifier.dmarc(b"", &spf, &dkim));
}

/// End to end: `[auth]` pointed at the loopback DNS server, an address with DKIM and DMARC
/// on, a signed message over SMTP; the POST carries all three results.
#[tokio::test]
async fn envelope_carries_spf_dkim_and_dmarc_over_smtp() {
    use crate::support::{Receiver, TestApp};

    let zone = with_keys(
        Zone::new()
            .txt("example.com", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.example.com", "v=DMARC1; p=reject"),
        "example.com",
    );
    let dns = DnsServer::start(zone).await;
    let receiver = Receiver::start().await;
    let toml = format!(
        "[dns]\nservers = [\"{}\"]\n[auth]\nspf = true\ntimeout_secs = 5\n\
         [[address]]\naddress = \"checked@example.net\"\ntarget = \"{}\"\ndkim = true\ndmarc = true\n\
         [[address]]\naddress = \"plain@example.net\"\ntarget = \"{}\"\n",
        dns.addr(),
        receiver.url("/status/200"),
        receiver.url("/status/200"),
    );
    let app = TestApp::launch(&toml).checking_spf().start().await;
    let message = message("example.com");
    let signed = format!("{}{message}", sign_rsa(&message, "example.com", "rsa"));
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for rcpt in ["checked@example.net", "plain@example.net"] {
        let reply = smtp
            .send_mail(
                "sender@example.com",
                &[rcpt],
                signed.trim_end_matches("\r\n"),
            )
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
    }
    let posts = receiver.requests();
    let checked = &posts[0].json()["envelope"];
    assert_eq!(
        checked["spf"],
        serde_json::json!({"result": "pass", "domain": "example.com"})
    );
    assert_eq!(checked["dkim"]["result"][0]["result"], "pass");
    assert_eq!(checked["dkim"]["result"][0]["domain"], "example.com");
    assert_eq!(checked["dmarc"]["result"], "pass");
    assert_eq!(checked["dmarc"]["details"]["policy"], "reject");
    // SPF is for every message; DKIM and DMARC only where the address asks.
    let plain = &posts[1].json()["envelope"];
    assert_eq!(plain["spf"]["result"], "pass");
    assert!(
        plain.get("dkim").is_none() && plain.get("dmarc").is_none(),
        "{plain}"
    );

    // The message's row keeps what the target was told: the API and the detail page show it.
    let messages = app.messages().await;
    let id_for = |rcpt: &str| {
        messages
            .iter()
            .find(|m| m["recipients"][0] == rcpt)
            .unwrap_or_else(|| panic!("no row for {rcpt}: {messages:?}"))["id"]
            .as_i64()
            .unwrap()
    };
    let (checked_id, plain_id) = (id_for("checked@example.net"), id_for("plain@example.net"));
    let row = app.get_json(&format!("/api/messages/{checked_id}")).await;
    assert_eq!(row["authentication"]["spf"], checked["spf"]);
    assert_eq!(row["authentication"]["dkim"], checked["dkim"]);
    assert_eq!(row["authentication"]["dmarc"], checked["dmarc"]);
    let row = app.get_json(&format!("/api/messages/{plain_id}")).await;
    assert_eq!(row["authentication"]["spf"], plain["spf"]);
    assert_eq!(row["authentication"]["dkim"], serde_json::Value::Null);

    let mut browser = app.admin_browser().await;
    let page = browser.get(&format!("/messages/{checked_id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(concat!(
            "<dl id=\"auth-results\">\n<dt>SPF</dt><dd><strong>pass</strong> for example.com</dd>\n",
            "<dt>DKIM</dt><dd><strong>pass</strong> d=example.com s=rsa</dd>\n",
            "<dt>DMARC</dt><dd><strong>pass</strong> for example.com, policy reject (aligned SPF pass, aligned DKIM pass)</dd>"
        )),
        "{}",
        page.body
    );
    let page = browser.get(&format!("/messages/{plain_id}")).await;
    assert!(
        page.body.contains(
            "<dt>DKIM</dt><dd>not checked (<code>dkim = true</code> on the address)</dd>"
        ),
        "{}",
        page.body
    );
}
