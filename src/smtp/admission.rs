//! Which connections a listener takes (issue 10 item 4): at most `max_connections` in all,
//! at most `max_connections_per_ip` from one client, and the last tenth of the slots only
//! for clients that have no session open yet, so one busy or hostile client cannot lock
//! out everybody else. No I/O: the shell asks [`Admission::admit`] for each accepted socket
//! and keeps the [`Ticket`] for the life of the session.
//!
//! A client is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use super::Reply;

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("every connection slot is taken")]
    Full,
    #[error("the client has as many sessions as one client may")]
    PerClientCap,
    #[error("the listener is nearly full and the client already has a session")]
    Reserved,
}

impl Refusal {
    /// The 421 written before closing.
    pub fn reply(self) -> Reply {
        match self {
            Refusal::Full => Reply::TOO_BUSY,
            Refusal::PerClientCap => Reply::TOO_MANY_FROM_IP,
            Refusal::Reserved => Reply::SLOTS_RESERVED,
        }
    }
}

/// Open sessions of one listener, in all and per client.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_client: usize,
    /// Slots at the top that only a client without a session may take.
    reserved: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One admitted session; dropping it frees the slot.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    /// A tenth of `max_total` (rounded up) is kept for clients without a session.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_client,
            reserved: max_total.div_ceil(10),
            open: Mutex::new(Open::default()),
        })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let client = client_of(ip);
        let mut open = self.open.lock().expect("admission lock");
        let mine = open.per_client.get(&client).copied().unwrap_or(0);
        if open.total >= self.max_total {
            return Err(Refusal::Full);
        }
        if mine >= self.max_per_client {
            return Err(Refusal::PerClientCap);
        }
        if mine > 0 && open.total >= self.max_total.saturating_sub(self.reserved) {
            return Err(Refusal::Reserved);
        }
        open.total += 1;
        *open.per_client.entry(client).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            client,
        })
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("admission lock").total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission lock");
        open.total -= 1;
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// The client an address belongs to: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_client_is_capped_and_slots_come_back() {
        let admission = Admission::new(100, 2);
        let a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerClientCap
        );
        assert!(admission.admit(ip("10.0.0.2")).is_ok());
        drop(a);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn the_last_slots_are_for_new_clients() {
        let admission = Admission::new(10, 20);
        let mut held: Vec<Ticket> = (0..9)
            .map(|_| admission.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::Reserved
        );
        held.push(admission.admit(ip("10.0.0.2")).unwrap());
        assert_eq!(admission.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Full);
        assert_eq!(Refusal::Full.reply().code, 421);
        drop(held);
        assert_eq!(admission.open(), 0);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let admission = Admission::new(100, 1);
        let _a = admission.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8::2")).unwrap_err(),
            Refusal::PerClientCap
        );
        assert!(admission.admit(ip("2001:db8:0:1::1")).is_ok());
        let _c = admission.admit(ip("::ffff:10.0.0.9")).unwrap();
        assert!(admission.admit(ip("10.0.0.9")).is_err());
    }
}
