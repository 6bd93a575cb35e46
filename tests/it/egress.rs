//! No data leaves except to configured destinations (issue 11): the real binary runs in a
//! network namespace of its own with loopback only, under `strace`, while a test exercises
//! every feature (inbound SMTP → target POST, authorization and error callbacks, the send API
//! → MX delivery through DNS and the recipient domain's MTA-STS policy over HTTPS, the events
//! webhook, dashboard sign-in). Every address the process connected or sent a datagram to
//! must be a destination its own `GET /api/privacy` lists (MX and MTA-STS policy hosts: the
//! hosts the test's DNS names, on the listed port).
//!
//! Needs root (or user namespaces) and `strace`; skipped with a line on stderr otherwise,
//! unless `TEST_EGRESS=required`, which turns the skip into a failure.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::certs::TestCa;
use crate::support::dns::{DnsServer, Zone};
use crate::support::policy_host::PolicyHost;
use crate::support::sink::Sink;
use crate::support::{Browser, Receiver, Smtp, binary, eventually, free_port, private, skipped};

const ADMIN: &str = "dpo@postern.test";
const PASSWORD: &str = "egress test password";

#[test]
fn every_connection_goes_to_a_destination_the_privacy_report_lists() {
    let run = std::thread::spawn(|| {
        own_network()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(exercise());
        Ok::<(), String>(())
    });
    if let Err(why) = run.join().expect("the egress run passes") {
        assert!(
            std::env::var("TEST_EGRESS").as_deref() != Ok("required"),
            "TEST_EGRESS=required but {why}"
        );
        skipped(&why);
    }
}

/// Moves this thread (and the processes it starts) into a new network namespace and brings
/// its loopback up: nothing but 127.0.0.1 and ::1 is reachable from there.
fn own_network() -> Result<(), String> {
    if Command::new("strace").arg("-V").output().is_err() {
        return Err("strace is not installed (apt-get install strace)".into());
    }
    // SAFETY: unshare affects only the calling thread; the ioctls get a zeroed `ifreq`
    // naming "lo" and a socket we close.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            let error = std::io::Error::last_os_error();
            return Err(format!(
                "no network namespace (unshare: {error}); run as root"
            ));
        }
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut request: libc::ifreq = std::mem::zeroed();
        for (i, byte) in b"lo".iter().enumerate() {
            request.ifr_name[i] = *byte as libc::c_char;
        }
        let up = libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request) == 0 && {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(socket, libc::SIOCSIFFLAGS, &request) == 0
        };
        libc::close(socket);
        if !up {
            return Err(format!(
                "cannot bring lo up: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

async fn exercise() {
    let (targets, events) = (Receiver::start().await, Receiver::start().await);
    let sink = Sink::start(&[]).await;
    // A `testing` policy: fetched, and the mail still goes to the sink without STARTTLS.
    let ca = TestCa::new();
    let policy = "version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 600\n";
    let policy_host = PolicyHost::start(&ca, &["mta-sts.example.net"], policy).await;
    let zone = Zone::new()
        .mx("example.net", 10, "mx.example.net")
        .a("mx.example.net", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.example.net", "v=STSv1; id=1")
        .a("mta-sts.example.net", Ipv4Addr::LOCALHOST);
    let dns = DnsServer::start(zone).await;
    let data = tempfile::tempdir().unwrap();
    private(data.path());
    let (smtp, web) = (free_port(), free_port());
    let config = data.path().join("postern.toml");
    let outbound = format!(
        "port = {}\nmta_sts_port = {}\nextra_ca_file = {:?}",
        sink.port(),
        policy_host.port(),
        ca.write_root(data.path())
    );
    std::fs::write(
        &config,
        config_text(data.path(), smtp, web, &targets, dns.addr(), &outbound),
    )
    .unwrap();
    let token = prepare(&config, &events);

    let trace = data.path().join("connect.trace");
    let mut traced = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto,sendmsg,sendmmsg",
            "-e",
            "signal=none",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_postern"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", binary::credentials_directory())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let smtp = SocketAddr::from((Ipv4Addr::LOCALHOST, smtp));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, web));
    eventually("postern serve listens", async || {
        tokio::net::TcpStream::connect(web).await.is_ok()
    })
    .await;
    let report = use_every_feature(smtp, web, &token, &targets, &events, &sink).await;
    stop(&mut traced);
    assert_eq!(policy_host.requests(), 1, "the MTA-STS policy was fetched");

    let observed = observed(&std::fs::read_to_string(&trace).unwrap());
    // The MX and the MTA-STS policy host, as the test's DNS names them.
    let mx = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let destinations = &report["destinations"];
    let left_out = unlisted(&observed, destinations, &mx);
    assert!(
        left_out.is_empty(),
        "not in /api/privacy: {left_out:?}\nreport: {report:#}"
    );
    for (what, expected) in [
        ("the targets", targets.addr),
        ("the events webhook", events.addr),
        ("the DNS server", dns.addr()),
        (
            "the MX (smtp-sink)",
            SocketAddr::from((Ipv4Addr::LOCALHOST, sink.port())),
        ),
        ("the MTA-STS policy host", policy_host.addr),
    ] {
        assert!(
            observed.contains(&Seen::Ip(expected)),
            "{what} {expected} not seen in {observed:?}"
        );
    }
    // The check can fail: a destination left out of the report is caught.
    let mut without_events = destinations.as_array().unwrap().clone();
    without_events.retain(|d| d["kind"] != "events_webhook");
    let caught = unlisted(&observed, &Value::Array(without_events), &mx);
    assert_eq!(caught, [Seen::Ip(events.addr)]);
    let mut without_mta_sts = destinations.as_array().unwrap().clone();
    without_mta_sts.retain(|d| d["kind"] != "mta_sts");
    let caught = unlisted(&observed, &Value::Array(without_mta_sts), &mx);
    assert_eq!(caught, [Seen::Ip(policy_host.addr)]);
}

fn config_text(
    dir: &Path,
    smtp: u16,
    web: u16,
    targets: &Receiver,
    dns: SocketAddr,
    outbound: &str,
) -> String {
    format!(
        r#"[server]
hostname = "mx.postern.test"
data_dir = "{dir}"
[smtp]
listen = "127.0.0.1:{smtp}"
[web]
listen = "127.0.0.1:{web}"
[auth]
spf = true
[dns]
servers = ["{dns}"]
[outbound]
{outbound}
[[address]]
address = "in@postern.test"
target = "{ok}"
auth_callback = "{auth}"
[[address]]
address = "fail@postern.test"
target = "{fail}"
error_callback = "{error}"
"#,
        dir = dir.display(),
        ok = targets.url("/status/200"),
        auth = targets.url("/auth/200"),
        fail = targets.url("/status/500"),
        error = targets.url("/error/200"),
    )
}

/// The admin, a credential with an events webhook and a sending domain, through the CLI
/// (before the traced run); the credential's token.
fn prepare(config: &Path, events: &Receiver) -> String {
    let cli = |args: &[&str], stdin: &str| {
        let (code, out, err) = binary::run_with_stdin(
            binary::postern().args(args).arg("--config").arg(config),
            stdin,
        );
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    cli(
        &["user", "add", "--email", ADMIN, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    cli(
        &[
            "sending-domain",
            "add",
            "example.com",
            "--algorithm",
            "ed25519",
        ],
        "",
    );
    let created = cli(
        &[
            "credential",
            "add",
            "app",
            "--events-url",
            &events.url("/events"),
        ],
        "",
    );
    created
        .lines()
        .nth(1)
        .expect("the token line")
        .trim()
        .to_string()
}

/// Inbound to a target (auth callback), to a failing target (error callback), the send API
/// through MX delivery and its events, dashboard sign-in; the privacy report.
async fn use_every_feature(
    smtp: SocketAddr,
    web: SocketAddr,
    token: &str,
    targets: &Receiver,
    events: &Receiver,
    sink: &Sink,
) -> Value {
    let mut client = Smtp::connect(smtp).await;
    client.ehlo().await;
    let mail = "From: s@example.org\r\nTo: in@postern.test\r\nSubject: hi\r\n\r\nhello\r\n";
    let reply = client
        .send_mail("s@example.org", &["in@postern.test"], mail)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let mut client = Smtp::connect(smtp).await;
    client.ehlo().await;
    let reply = client
        .send_mail("s@example.org", &["fail@postern.test"], mail)
        .await;
    assert!(reply.starts_with("450"), "{reply}");
    // The error callback follows the reply.
    eventually(
        "the target, both callbacks and the failing target were called",
        async || {
            let paths: BTreeSet<String> = targets.requests().into_iter().map(|r| r.path).collect();
            ["/auth/200", "/status/200", "/status/500", "/error/200"]
                .iter()
                .all(|p| paths.contains(*p))
        },
    )
    .await;

    let answer = reqwest::Client::new()
        .post(format!("http://{web}/api/v0.1/app/messages"))
        .bearer_auth(token)
        .json(&json!({"from": "app@example.com", "to": "r@example.net", "subject": "s", "plain": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    eventually("the MX got the message", async || {
        !sink.messages().is_empty()
    })
    .await;
    eventually("the events webhook was called", async || {
        !events.requests().is_empty()
    })
    .await;

    let mut browser = Browser::new(web);
    browser.sign_in(ADMIN, PASSWORD).await;
    let page = browser.get("/privacy").await;
    assert!(page.body.contains("Where data goes"), "{}", page.body);
    browser.get("/api/privacy").await.json()
}

/// SIGTERM to postern (strace's child), then strace ends with it.
fn stop(strace: &mut Child) {
    let children = format!("/proc/{0}/task/{0}/children", strace.id());
    let postern = std::fs::read_to_string(children).unwrap();
    for pid in postern.split_whitespace() {
        // SAFETY: kill(2) on the pid of our own traced child.
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGTERM) };
    }
    let status = strace.wait().unwrap();
    assert!(status.success(), "postern under strace: {status}");
}

/// An address the process connected or sent to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Ip(SocketAddr),
    /// Any other family (a Unix socket path, netlink): never a configured destination.
    Other(String),
}

/// The addresses in strace's `connect`/`send*` lines (calls without an address, on
/// connected sockets, name none).
fn observed(trace: &str) -> BTreeSet<Seen> {
    trace
        .lines()
        .filter_map(|line| {
            let family = line.split("sa_family=").nth(1)?;
            let field = |key: &str| -> Option<&str> {
                let rest = line.split(key).nth(1)?;
                rest.split(['"', ')'])
                    .find(|s| !s.is_empty() && !s.starts_with(','))
            };
            let port = || field("port=htons(")?.parse::<u16>().ok();
            Some(if family.starts_with("AF_INET6") {
                let ip = line
                    .split("inet_pton(AF_INET6, \"")
                    .nth(1)?
                    .split('"')
                    .next()?;
                Seen::Ip(SocketAddr::new(ip.parse().ok()?, port()?))
            } else if family.starts_with("AF_INET") {
                Seen::Ip(SocketAddr::new(
                    field("inet_addr(\"")?.parse().ok()?,
                    port()?,
                ))
            } else if family.starts_with("AF_NETLINK") {
                return None;
            } else {
                Seen::Other(line.to_string())
            })
        })
        .collect()
}

/// What the report does not list: fixed hosts by address and port, the MX and MTA-STS
/// policy hosts by the hosts the DNS named (`named`) and the listed port.
fn unlisted(observed: &BTreeSet<Seen>, destinations: &Value, named: &[IpAddr]) -> Vec<Seen> {
    let mut listed = BTreeSet::new();
    for destination in destinations.as_array().expect("destinations is a list") {
        let port = destination["port"].as_u64().map(|p| p as u16);
        let host = destination["host"]
            .as_str()
            .and_then(|h| h.parse::<IpAddr>().ok());
        match (destination["kind"].as_str(), host, port) {
            (Some("mx" | "mta_sts"), None, Some(port)) => {
                listed.extend(named.iter().map(|ip| SocketAddr::new(*ip, port)))
            }
            (_, Some(ip), Some(port)) => {
                listed.insert(SocketAddr::new(ip, port));
            }
            _ => {}
        }
    }
    observed
        .iter()
        .filter(|seen| !matches!(seen, Seen::Ip(addr) if listed.contains(addr)))
        .cloned()
        .collect()
}

#[test]
fn strace_lines_are_read_for_both_families() {
    let trace = concat!(
        "12 connect(9, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 EINPROGRESS\n",
        "12 sendto(9, \"x\", 1, 0, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28) = 1\n",
        "12 connect(3, {sa_family=AF_UNIX, sun_path=\"/run/x\"}, 110) = 0\n",
        "12 sendto(9, \"x\", 1, MSG_NOSIGNAL, NULL, 0) = 1\n",
    );
    let seen = observed(trace);
    assert!(
        seen.contains(&Seen::Ip("127.0.0.1:8080".parse().unwrap())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Seen::Ip("[::1]:53".parse().unwrap())),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    let report = json!([{"kind": "dns", "host": "::1", "port": 53}]);
    assert_eq!(unlisted(&seen, &report, &[]).len(), 2);
}
