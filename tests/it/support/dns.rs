//! An authoritative DNS server on loopback for tests: serves an in-memory [`Zone`] over UDP
//! and TCP on one ephemeral port, answers NXDOMAIN for names it does not know and NODATA for
//! known names without the asked type. Names can be set to answer SERVFAIL or nothing at all.
//!
//! Tests must never query the machine's resolver or a public server; point
//! `ResolverChoice::Servers` at [`DnsServer::addr`] instead.
//!
//! hickory-proto comes through mail-auth's re-export so the tests compile against the very
//! copy the resolver uses, never a second one.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mail_auth::hickory_resolver::proto::op::{Edns, Message, OpCode, ResponseCode};
use mail_auth::hickory_resolver::proto::rr::rdata::{A, AAAA, MX, PTR, TXT};
use mail_auth::hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// UDP answers longer than this without EDNS are truncated (RFC 1035 §4.2.1).
const CLASSIC_UDP_LIMIT: usize = 512;
const TTL: u32 = 300;

/// The records a [`DnsServer`] serves and the names it misbehaves for.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<(String, RecordType), Vec<RData>>,
    servfail: HashSet<String>,
    silent: HashSet<String>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// One TXT record; text longer than 255 bytes is split into character-strings the way
    /// DKIM keys are published.
    pub fn txt(self, name: &str, text: &str) -> Zone {
        let strings = text
            .as_bytes()
            .chunks(255)
            .map(|chunk| String::from_utf8(chunk.to_vec()).expect("ASCII TXT data"))
            .collect();
        self.record(name, RData::TXT(TXT::new(strings)))
    }

    pub fn a(self, name: &str, address: Ipv4Addr) -> Zone {
        self.record(name, RData::A(A(address)))
    }

    pub fn aaaa(self, name: &str, address: Ipv6Addr) -> Zone {
        self.record(name, RData::AAAA(AAAA(address)))
    }

    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Zone {
        self.record(name, RData::MX(MX::new(preference, fqdn_name(exchange))))
    }

    /// The PTR record of `address` (under in-addr.arpa or ip6.arpa).
    pub fn ptr(self, address: IpAddr, target: &str) -> Zone {
        let name = Name::from(address).to_ascii();
        self.record(&name, RData::PTR(PTR(fqdn_name(target))))
    }

    /// Every query for `name` gets SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zone {
        self.servfail.insert(key(name));
        self
    }

    /// Queries for `name` are read and never answered.
    pub fn silent(mut self, name: &str) -> Zone {
        self.silent.insert(key(name));
        self
    }

    fn record(mut self, name: &str, data: RData) -> Zone {
        self.records
            .entry((key(name), data.record_type()))
            .or_default()
            .push(data);
        self
    }

    /// The answer to `query`, or `None` to stay silent.
    fn answer(&self, query: &Message) -> Option<Message> {
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_queries(query.queries.iter().cloned());
        if let Some(edns) = &query.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(edns.max_payload().max(CLASSIC_UDP_LIMIT as u16));
            response.set_edns(ours);
        }
        let Some(question) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        let name = question.name().to_lowercase().to_ascii();
        if self.silent.contains(&name) {
            return None;
        }
        if self.servfail.contains(&name) {
            response.metadata.response_code = ResponseCode::ServFail;
            return Some(response);
        }
        response.metadata.authoritative = true;
        match self.records.get(&(name.clone(), question.query_type())) {
            Some(records) => {
                for data in records {
                    let record = Record::from_rdata(question.name().clone(), TTL, data.clone());
                    response.add_answer(record);
                }
            }
            // A name that has other types exists: NODATA, not NXDOMAIN (RFC 2308 §2.2).
            None if self.records.keys().any(|(known, _)| *known == name) => {}
            None => response.metadata.response_code = ResponseCode::NXDomain,
        }
        Some(response)
    }
}

/// A running server; it stops when the test's runtime ends.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same ephemeral loopback port.
    pub async fn start(zone: Zone) -> DnsServer {
        let zone = Arc::new(Mutex::new(zone));
        let queries = Arc::new(AtomicUsize::new(0));
        // The kernel picks the UDP port; TCP on the same number is usually free, and a
        // few tries cover the rare clash.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone(), queries.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone(), queries.clone())),
        ];
        DnsServer {
            addr,
            zone,
            queries,
            tasks,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `zone` from now on (records known only after the server was needed, such as
    /// a DKIM key made by the app under test).
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.lock().unwrap() = zone;
    }

    /// Queries received so far, over both transports.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        let Some(response) = zone.lock().unwrap().answer(&query) else {
            continue;
        };
        let limit = query
            .edns
            .as_ref()
            .map_or(CLASSIC_UDP_LIMIT, |edns| edns.max_payload() as usize);
        let mut bytes = response.to_vec().unwrap();
        if bytes.len() > limit {
            // The client retries over TCP (RFC 7766 §5).
            bytes = response.truncate().to_vec().unwrap();
        }
        let _ = socket.send_to(&bytes, peer).await;
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(stream, zone.clone(), queries.clone()));
    }
}

/// RFC 1035 §4.2.2: each message is preceded by its length in two bytes.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut buf = vec![0u8; len as usize];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&buf) else {
            return;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        let answer = zone.lock().unwrap().answer(&query);
        let Some(response) = answer else {
            continue;
        };
        let bytes = response.to_vec().unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// Zone key: lower case, fully qualified.
fn key(name: &str) -> String {
    let mut name = name.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

fn fqdn_name(name: &str) -> Name {
    Name::from_ascii(key(name)).expect("a valid test name")
}
