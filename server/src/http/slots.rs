//! The browser server's connection slots: capped in all and per address,
//! and shared fairly when they run out.
//!
//! A per-address cap alone lets a few addresses hold every slot (16
//! addresses × 16 connections fill 256). So when every slot is taken, a
//! newcomer takes the place of the oldest connection of the address
//! holding the most, provided that address holds more than its fair share
//! (the slots over the addresses holding any, the newcomer's included) and
//! at least two more than the newcomer's own address: addresses that hoard
//! connections lose them first, and honest browsers (a handful each) keep
//! theirs. Only when everyone holds about as many as everyone else is a
//! newcomer refused.
//!
//! The MJPEG viewers' slots are shared the same way (a second
//! [`Connections`], within `max_viewers`): a viewer that reads slower than
//! the stream still accepts writes, so no write timeout frees its slot,
//! and addresses holding many viewers lose their oldest to a newcomer.
//!
//! An evicted connection's socket is shut down (both ways): whatever its
//! thread was blocked on — the request head, a write to a stalled reader —
//! fails at once, and the thread ends.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::{Arc, Mutex};

/// Open connections, in all and per address. A [`Slot`] holds one.
#[derive(Default)]
pub(super) struct Connections {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each address's connections, oldest first: the slot's id and a
    /// handle on its socket, to shut it when evicted (none in the fuzz
    /// target, which has no socket).
    per_address: HashMap<IpAddr, Vec<(u64, Option<TcpStream>)>>,
    total: usize,
    next_id: u64,
}

/// One admitted connection; released on drop.
pub(super) struct Slot {
    conns: Arc<Connections>,
    ip: IpAddr,
    id: u64,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its address holds `max_per_address` already.
    PerAddress,
    /// Every slot is taken and nobody holds more than a fair share.
    Full,
    /// No descriptor left to keep a handle on the socket.
    NoHandle,
}

impl Connections {
    /// Admits `stream` from `ip` within `max_total` connections in all and
    /// `max_per_address` from one address, evicting a hoarder's oldest
    /// connection when every slot is taken (see the module's doc).
    pub(super) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        stream: &TcpStream,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<Slot, Refused> {
        self.admit_handle(ip, Some(stream), max_total, max_per_address)
    }

    /// As [`Connections::admit`], for a connection that may have no socket
    /// to shut when evicted (`None`: the fuzz target's stand-in).
    pub(super) fn admit_handle(
        self: &Arc<Self>,
        ip: IpAddr,
        stream: Option<&TcpStream>,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<Slot, Refused> {
        let ip = ip.to_canonical();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = state.per_address.get(&ip).map_or(0, Vec::len);
        if mine >= max_per_address {
            return Err(Refused::PerAddress);
        }
        if state.total >= max_total {
            state.evict_for(ip, mine, max_total)?;
        }
        let handle = match stream {
            Some(stream) => Some(stream.try_clone().map_err(|_| Refused::NoHandle)?),
            None => None,
        };
        let id = state.next_id;
        state.next_id += 1;
        state.per_address.entry(ip).or_default().push((id, handle));
        state.total += 1;
        Ok(Slot {
            conns: self.clone(),
            ip,
            id,
        })
    }

    /// Connections open now, in all.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl State {
    /// Frees one slot for a newcomer from `ip` (holding `mine`) by shutting
    /// the oldest connection of the address holding the most, if that
    /// address holds more than its fair share and at least two more than
    /// `ip`.
    fn evict_for(&mut self, ip: IpAddr, mine: usize, max_total: usize) -> Result<(), Refused> {
        let holders = self.per_address.len() + usize::from(mine == 0);
        let Some((&victim, held)) = (self.per_address.iter())
            .filter(|(other, _)| **other != ip)
            .max_by_key(|(_, conns)| conns.len())
        else {
            return Err(Refused::Full);
        };
        let held = held.len();
        // More than max_total / holders, in integers.
        let above_fair_share = held * holders > max_total;
        if !above_fair_share || held < mine + 2 {
            return Err(Refused::Full);
        }
        let conns = self.per_address.get_mut(&victim).ok_or(Refused::Full)?;
        let (_, oldest) = conns.remove(0);
        if conns.is_empty() {
            self.per_address.remove(&victim);
        }
        self.total -= 1;
        if let Some(oldest) = oldest {
            let _ = oldest.shutdown(Shutdown::Both);
        }
        tracing::info!(
            %victim, held,
            "browser server full: closed the oldest connection of the address holding the most"
        );
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.conns.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(conns) = state.per_address.get_mut(&self.ip) else {
            return; // evicted, and already uncounted
        };
        let Some(at) = conns.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        conns.remove(at);
        if conns.is_empty() {
            state.per_address.remove(&self.ip);
        }
        state.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A connected pair on loopback: (the server's side, the client's).
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_hoarder_loses_its_oldest_connection_to_a_newcomer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns = Arc::new(Connections::default());
        let mut held = Vec::new();
        // Address 1 holds 4 of 6, address 2 holds 2.
        for who in [1, 1, 1, 1, 2, 2] {
            let (server, client) = pair(&listener);
            let slot = conns.admit(ip(who), &server, 6, 4).unwrap();
            held.push((slot, server, client));
        }
        assert_eq!(conns.total(), 6);
        let (server, _client) = pair(&listener);
        // Address 1 is at its own cap.
        assert_eq!(
            conns.admit(ip(1), &server, 6, 4).err(),
            Some(Refused::PerAddress)
        );
        // A newcomer takes the place of address 1's oldest.
        let newcomer = conns.admit(ip(3), &server, 6, 4).unwrap();
        assert_eq!(conns.total(), 6);
        let oldest = &mut held[0].2;
        oldest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(oldest.read(&mut buf).unwrap(), 0, "evicted: end of stream");
        // Its slot, dropped later, is not uncounted twice.
        let (slot, _, _) = held.remove(0);
        drop(slot);
        assert_eq!(conns.total(), 6);
        drop(newcomer);
        assert_eq!(conns.total(), 5);
    }

    #[test]
    fn when_everyone_holds_about_as_much_a_newcomer_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns = Arc::new(Connections::default());
        let mut held = Vec::new();
        for who in 1..=6 {
            let (server, client) = pair(&listener);
            held.push((conns.admit(ip(who), &server, 6, 4).unwrap(), client));
        }
        let (server, _client) = pair(&listener);
        assert_eq!(conns.admit(ip(7), &server, 6, 4).err(), Some(Refused::Full));
        // Nor does an address holding one take another's place.
        assert_eq!(conns.admit(ip(1), &server, 6, 4).err(), Some(Refused::Full));
        held.clear();
        assert_eq!(conns.total(), 0);
    }
}
