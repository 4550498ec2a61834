//! Finding lanlink servers on the LAN without typing an address: DNS-SD
//! over multicast DNS (the way printers, Mumble and Snapcast are found).
//!
//! A server announces the service type [`SERVICE_TYPE`]
//! (`_lanlink._tcp.local.`) with three TXT entries:
//!
//! | key    | value |
//! |--------|-------|
//! | `v`    | the protocol version it speaks (`1`) |
//! | `name` | its display name (`--name`, at most 63 bytes) |
//! | `fp`   | its certificate's fingerprint, `SHA256:` and 64 hex digits; absent for a plain-TCP server |
//!
//! [`browse`] listens for a bounded time and returns what it found;
//! [`Announcer`] is the server's side. Both run `mdns-sd`'s own thread for
//! as long as they live: no async runtime.
//!
//! # Announcements are hostile input
//! Anyone on the LAN can announce anything. What [`browse`] returns is
//! bounded ([`MAX_SERVERS`] servers, [`MAX_ADDRESSES`] addresses each,
//! names cut to [`MAX_NAME_CHARS`] characters), validated (a version that
//! is a number, a fingerprint that parses, a port that is not 0, addresses
//! a client can use: no loopback, multicast or link-local ones) and
//! sanitised (no control or bidirectional-override characters): safe to
//! print. Entries that fail are dropped and counted in
//! [`Found::ignored`]. An announced fingerprint is a *claim*: a client
//! that has pinned another certificate for that address keeps its pin.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lanlink_transport::Fingerprint;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::ClientError;

/// The DNS-SD service type lanlink servers announce.
pub const SERVICE_TYPE: &str = "_lanlink._tcp.local.";
/// TXT key: the protocol version.
pub const TXT_VERSION: &str = "v";
/// TXT key: the server's display name.
pub const TXT_NAME: &str = "name";
/// TXT key: the certificate's fingerprint.
pub const TXT_FINGERPRINT: &str = "fp";
/// At most this many servers are kept from one browse.
pub const MAX_SERVERS: usize = 32;
/// At most this many addresses are kept per server.
pub const MAX_ADDRESSES: usize = 8;
/// Names (server, instance, host) are cut to this many characters.
pub const MAX_NAME_CHARS: usize = 48;
/// The longest server name put in an announcement, in bytes.
const MAX_ANNOUNCED_NAME: usize = 63;

/// A server found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundServer {
    /// The DNS-SD instance name (unique on the LAN), sanitised.
    pub instance: String,
    /// The name the server gives itself (TXT `name`), sanitised.
    pub name: String,
    /// The host name in its SRV record (`pi.local.`), sanitised.
    pub host: String,
    /// Where it can be reached, most usable first (IPv4, then IPv6).
    pub addresses: Vec<IpAddr>,
    /// Its TCP port.
    pub port: u16,
    /// The protocol version it speaks.
    pub version: u8,
    /// Its certificate's fingerprint (`None`: a plain-TCP server).
    pub fingerprint: Option<Fingerprint>,
}

impl FoundServer {
    /// `ADDRESS:PORT` of its first address, as [`crate::Session::builder`]
    /// and the pin store take it.
    pub fn address(&self) -> Option<String> {
        self.addresses
            .first()
            .map(|ip| std::net::SocketAddr::new(*ip, self.port).to_string())
    }

    /// Whether this client can talk to it (same protocol version).
    pub fn is_compatible(&self) -> bool {
        self.version == lanlink_proto::PROTOCOL_VERSION
    }

    /// Whether a client that wants plain TCP (`plain`), or TLS with the
    /// certificate `fingerprint` when one is given, can use it: the same
    /// protocol version, an address, TLS or plain as wanted, and that
    /// certificate.
    pub fn usable_with(&self, plain: bool, fingerprint: Option<Fingerprint>) -> bool {
        self.is_compatible()
            && self.address().is_some()
            && plain == self.fingerprint.is_none()
            && fingerprint.is_none_or(|fp| self.fingerprint == Some(fp))
    }

    /// How to trust it when it was found on the LAN: [`Trust::Plain`](crate::Trust::Plain) for
    /// a plain server; else the certificate it announced, required on
    /// first contact and then pinned in `store`
    /// ([`Trust::FirstUseExpecting`](crate::Trust::FirstUseExpecting)). A pin made earlier for its address
    /// wins; when it differs from the announced one it is returned too,
    /// for the user to be told: whoever announced the other may be an
    /// impostor.
    pub fn trust(
        &self,
        store: std::sync::Arc<dyn crate::PinStore>,
    ) -> Result<(crate::Trust, Option<Fingerprint>), ClientError> {
        let (Some(announced), Some(addr)) = (self.fingerprint, self.address()) else {
            return Ok((crate::Trust::Plain, None));
        };
        let disagreeing = store.lookup(&addr)?.filter(|pinned| *pinned != announced);
        let trust = crate::Trust::FirstUseExpecting {
            store,
            expected: announced,
        };
        Ok((trust, disagreeing))
    }
}

impl std::fmt::Display for FoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address() {
            Some(addr) => write!(f, "\"{}\" at {addr}", self.name),
            None => write!(f, "\"{}\"", self.name),
        }
    }
}

/// What one browse found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The servers, sorted by name then address.
    pub servers: Vec<FoundServer>,
    /// Announcements dropped as malformed (a bad fingerprint or version,
    /// no usable address) or beyond [`MAX_SERVERS`].
    pub ignored: usize,
}

/// How long [`browse`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Browse {
    /// The longest it listens.
    pub patience: Duration,
    /// Once something was found, it stops after this long without news
    /// (`None`: always the whole `patience`)…
    pub quiet: Option<Duration>,
    /// …but never before this. A responder multicasts the same answer at
    /// most once a second (RFC 6762 §6), so one that just answered
    /// someone else's question stays silent until the browser asks again,
    /// one second in: listening a little longer than that hears everyone.
    pub at_least: Duration,
}

impl Default for Browse {
    fn default() -> Browse {
        Browse {
            patience: Duration::from_secs(3),
            quiet: Some(Duration::from_millis(500)),
            at_least: Duration::from_millis(1300),
        }
    }
}

/// Listens for lanlink servers as `how` says and returns those found.
pub fn browse(how: Browse) -> Result<Found, ClientError> {
    let daemon = ServiceDaemon::new()?;
    let result = browse_with(&daemon, how);
    stop(&daemon);
    result
}

fn browse_with(daemon: &ServiceDaemon, how: Browse) -> Result<Found, ClientError> {
    let events = daemon.browse(SERVICE_TYPE)?;
    let started = Instant::now();
    let deadline = started + how.patience;
    let mut last_news: Option<Instant> = None;
    let mut seen: BTreeMap<String, Result<FoundServer, ()>> = BTreeMap::new();
    loop {
        let now = Instant::now();
        let until = match (how.quiet, last_news) {
            (Some(quiet), Some(news)) => deadline.min((news + quiet).max(started + how.at_least)),
            _ => deadline,
        };
        if now >= until {
            break;
        }
        let Ok(event) = events.recv_timeout(until - now) else {
            continue;
        };
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let key = service.fullname.clone();
                if !seen.contains_key(&key) && seen.len() >= MAX_SERVERS * 2 {
                    continue;
                }
                let entry = parse(
                    &service.fullname,
                    &service.host,
                    service.port,
                    service.addresses.iter().map(|a| a.to_ip_addr()),
                    |key| service.txt_properties.get(key).map(|p| p.val()),
                );
                if entry.is_ok() {
                    last_news = Some(Instant::now());
                }
                // A later, incomplete resolution (a record not yet in)
                // does not erase a good one.
                if entry.is_ok() || !seen.get(&key).is_some_and(Result::is_ok) {
                    seen.insert(key, entry.map_err(|_| ()));
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                seen.remove(&fullname);
            }
            _ => {}
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let mut found = Found::default();
    for entry in seen.into_values() {
        match entry {
            Ok(server) if found.servers.len() < MAX_SERVERS => found.servers.push(server),
            _ => found.ignored += 1,
        }
    }
    found.servers.sort_by(|a, b| {
        (&a.name, &a.addresses, a.port, &a.instance).cmp(&(
            &b.name,
            &b.addresses,
            b.port,
            &b.instance,
        ))
    });
    Ok(found)
}

/// What a client asks of a server it finds on the LAN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Plain TCP (a server run with `--plain`), not TLS.
    pub plain: bool,
    /// TLS with exactly this certificate (`None`: the one the server
    /// announces, required on first contact and then pinned).
    pub fingerprint: Option<Fingerprint>,
}

/// The server [`choose`] chose, and how to trust it.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The server as announced.
    pub server: FoundServer,
    /// `ADDRESS:PORT` to connect to.
    pub addr: String,
    /// How to trust its certificate: plain or the fingerprint asked for,
    /// else the announced one, required on first contact and pinned
    /// ([`FoundServer::trust`]).
    pub trust: crate::Trust,
    /// A certificate pinned earlier for its address that differs from the
    /// announced one. The pin is what is checked; tell the user, since
    /// whoever announced the other may be an impostor.
    pub pinned_instead: Option<Fingerprint>,
}

impl Chosen {
    /// A [`crate::SessionBuilder`] for it, with its address and trust.
    pub fn builder(&self) -> crate::SessionBuilder {
        crate::Session::builder(&self.addr).trust(self.trust.clone())
    }
}

/// Finds the server to use on the LAN: browses as `how` says and keeps
/// the servers `wanted` can use. The only one is chosen; among several,
/// `pick` chooses (an index into the list it is shown; `None` chooses
/// none: ask the user, or refuse in a script). A TLS server is trusted
/// as [`Chosen::trust`] says, with its pin looked up (and later kept) in
/// `pins`.
///
/// # Errors
/// [`ClientError::NoServer`] when none is usable or several are and
/// `pick` chose none, with what was found for the user to choose from;
/// [`ClientError::Discovery`] when the LAN cannot be browsed.
///
/// ```no_run
/// use std::sync::Arc;
/// use lanlink_client::discovery::{self, Browse, Wanted};
/// use lanlink_client::KnownServers;
///
/// let pins = Arc::new(KnownServers::default_location());
/// let chosen = discovery::choose(Browse::default(), Wanted::default(), pins, |_| None)?;
/// eprintln!("using {}", chosen.server);
/// let (session, events) = chosen.builder().name("bot").connect()?;
/// # Ok::<(), lanlink_client::ClientError>(())
/// ```
pub fn choose(
    how: Browse,
    wanted: Wanted,
    pins: std::sync::Arc<dyn crate::PinStore>,
    pick: impl FnOnce(&[FoundServer]) -> Option<usize>,
) -> Result<Chosen, ClientError> {
    choose_from(browse(how)?, wanted, pins, pick)
}

/// [`choose`] among what a browse found.
pub fn choose_from(
    found: Found,
    wanted: Wanted,
    pins: std::sync::Arc<dyn crate::PinStore>,
    pick: impl FnOnce(&[FoundServer]) -> Option<usize>,
) -> Result<Chosen, ClientError> {
    let (mut usable, unusable): (Vec<_>, Vec<_>) = found
        .servers
        .into_iter()
        .partition(|s| s.usable_with(wanted.plain, wanted.fingerprint));
    let index = match usable.len() {
        1 => Some(0),
        0 => None,
        _ => pick(&usable).filter(|i| *i < usable.len()),
    };
    let Some((server, addr)) = index
        .map(|i| usable.swap_remove(i))
        .and_then(|s| s.address().map(|addr| (s, addr)))
    else {
        return Err(ClientError::NoServer {
            found: usable,
            unusable,
            ignored: found.ignored,
        });
    };
    // usable_with: a server without a fingerprint was chosen only when
    // plain TCP was asked for.
    let (trust, pinned_instead) = match (wanted.plain, wanted.fingerprint) {
        (true, _) => (crate::Trust::Plain, None),
        (false, Some(fp)) => (crate::Trust::Fingerprint(fp), None),
        (false, None) => server.trust(pins)?,
    };
    Ok(Chosen {
        server,
        addr,
        trust,
        pinned_instead,
    })
}

/// Why an announcement was dropped (for tests; [`Found::ignored`] counts
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    NoVersion,
    BadFingerprint,
    NoAddress,
    NoPort,
}

/// One resolved announcement, validated. `txt` looks a key up: `None`
/// absent, `Some(None)` a key without value, `Some(Some(bytes))`.
fn parse<'a>(
    fullname: &str,
    host: &str,
    port: u16,
    addresses: impl Iterator<Item = IpAddr>,
    txt: impl Fn(&str) -> Option<Option<&'a [u8]>>,
) -> Result<FoundServer, Dropped> {
    let text = |key: &str| txt(key).flatten().map(String::from_utf8_lossy);
    let version = text(TXT_VERSION)
        .filter(|v| (1..=3).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u8>().ok())
        .ok_or(Dropped::NoVersion)?;
    let fingerprint = match text(TXT_FINGERPRINT) {
        None => None,
        Some(fp) if fp.len() <= 100 => Some(fp.parse().map_err(|_| Dropped::BadFingerprint)?),
        Some(_) => return Err(Dropped::BadFingerprint),
    };
    if port == 0 {
        return Err(Dropped::NoPort);
    }
    let mut addresses: Vec<IpAddr> = addresses.map(canonical).filter(|ip| usable(*ip)).collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addresses.dedup();
    addresses.truncate(MAX_ADDRESSES);
    if addresses.is_empty() {
        return Err(Dropped::NoAddress);
    }
    let instance = fullname
        .strip_suffix(SERVICE_TYPE)
        .map_or(fullname, |i| i.trim_end_matches('.'));
    let instance = display_safe(&instance.replace("\\.", "."));
    let name = text(TXT_NAME)
        .map(|n| display_safe(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| instance.clone());
    Ok(FoundServer {
        instance,
        name,
        host: display_safe(host.trim_end_matches('.')),
        addresses,
        port,
        version,
        fingerprint,
    })
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.2`) as the IPv4
/// address it is: otherwise `::ffff:127.0.0.1` would pass for a remote
/// host, and a certificate pinned for `10.0.0.2:7878` would not be the one
/// checked at `[::ffff:10.0.0.2]:7878` (an outside attack, helper-72,
/// pinned an impostor that way).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address a client elsewhere on the LAN can connect to: not loopback
/// (an announcement naming 127.0.0.1 points at the client's own machine),
/// not multicast or unspecified, and not IPv6 link-local (it needs an
/// interface to go with it).
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_multicast() || v4.is_unspecified() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_multicast() || v6.is_unspecified() || link_local)
        }
    }
}

/// `s` cut to [`MAX_NAME_CHARS`] characters (then `…`) and safe to print
/// on a terminal: control characters and the invisible ones that reorder
/// or hide text are escaped as everywhere else in lanlink
/// ([`lanlink_transport::text::display_safe`]: `\u{1b}`).
pub fn display_safe(s: &str) -> String {
    lanlink_transport::text::display_cut(s, MAX_NAME_CHARS)
}

/// Stops a daemon's thread, waiting (briefly) until it has.
fn stop(daemon: &ServiceDaemon) {
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_timeout(Duration::from_secs(1));
    }
}

/// What a server announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// Its display name (cut to 63 bytes).
    pub server_name: String,
    /// The TCP port it listens on.
    pub port: u16,
    /// The address it listens on, if one in particular (`None`: every
    /// interface's, kept up to date as they change).
    pub address: Option<IpAddr>,
    /// Its certificate's fingerprint (`None`: plain TCP).
    pub fingerprint: Option<Fingerprint>,
}

/// A server's announcement on the LAN, for as long as it lives: dropping
/// it withdraws the announcement (a "goodbye" packet) and stops its thread.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullname: String,
    instance: String,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("instance", &self.instance)
            .finish()
    }
}

impl Announcer {
    /// Starts announcing. The instance name is the server's name and the
    /// host's (`lanlink on pi`, with the port when it is not the default),
    /// so two servers on a LAN differ. Loopback interfaces are left out:
    /// nobody else can reach them.
    pub fn start(what: &Announcement) -> Result<Announcer, ClientError> {
        let host = host_label();
        let server_name = cut(&what.server_name, MAX_ANNOUNCED_NAME);
        let mut instance = format!("{server_name} on {host}");
        if what.port != crate::DEFAULT_PORT {
            instance.push_str(&format!(":{}", what.port));
        }
        let instance = cut(&instance, MAX_ANNOUNCED_NAME).to_owned();
        let version = lanlink_proto::PROTOCOL_VERSION.to_string();
        let fingerprint = what.fingerprint.map(|fp| fp.to_string());
        let mut txt = vec![(TXT_VERSION, version.as_str()), (TXT_NAME, server_name)];
        if let Some(fp) = &fingerprint {
            txt.push((TXT_FINGERPRINT, fp.as_str()));
        }
        let host_name = format!("{host}.local.");
        let daemon = ServiceDaemon::new()?;
        let started = (|| {
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
            let info = match what.address {
                Some(ip) => {
                    ServiceInfo::new(SERVICE_TYPE, &instance, &host_name, ip, what.port, &txt[..])?
                }
                None => {
                    ServiceInfo::new(SERVICE_TYPE, &instance, &host_name, (), what.port, &txt[..])?
                        .enable_addr_auto()
                }
            };
            let fullname = info.get_fullname().to_owned();
            daemon.register(info)?;
            Ok::<_, mdns_sd::Error>(fullname)
        })();
        match started {
            Ok(fullname) => Ok(Announcer {
                daemon,
                fullname,
                instance,
            }),
            Err(e) => {
                stop(&daemon);
                Err(e.into())
            }
        }
    }

    /// The instance name announced.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
        stop(&self.daemon);
    }
}

/// This host's name as a DNS label: letters, digits and `-` only.
fn host_label() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let label: String = raw
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "lanlink".into()
    } else {
        label.to_owned()
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:3f9a12c4000000000000000000000000000000000000000000000000000000ff";

    fn txt<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<Option<&'a [u8]>> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| Some(v.as_bytes()))
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_good_announcement_is_read() {
        let found = parse(
            "lanlink on pi._lanlink._tcp.local.",
            "pi.local.",
            7878,
            ips(&["fe80::1", "2001:db8::2", "127.0.0.1", "192.168.1.10"]).into_iter(),
            txt(&[("v", "1"), ("name", "the LAN"), ("fp", FP)]),
        )
        .unwrap();
        assert_eq!(found.instance, "lanlink on pi");
        assert_eq!(found.name, "the LAN");
        assert_eq!(found.host, "pi.local");
        assert_eq!(found.addresses, ips(&["192.168.1.10", "2001:db8::2"]));
        assert_eq!(found.address().as_deref(), Some("192.168.1.10:7878"));
        assert_eq!(found.fingerprint, Some(FP.parse().unwrap()));
        assert!(found.is_compatible());
    }

    #[test]
    fn hostile_announcements_are_dropped_or_defused() {
        let addr = || ips(&["10.0.0.2"]).into_iter();
        let parse1 =
            |pairs: &[(&str, &str)]| parse("x._lanlink._tcp.local.", "h", 1, addr(), txt(pairs));
        let bad_fp = [("v", "1"), ("fp", "SHA256:nothex")];
        assert_eq!(parse1(&bad_fp), Err(Dropped::BadFingerprint));
        let long_fp = "a".repeat(200);
        assert_eq!(
            parse1(&[("v", "1"), ("fp", long_fp.as_str())]),
            Err(Dropped::BadFingerprint)
        );
        for v in ["", "x", "1000", "256", "-1", " 1"] {
            assert_eq!(parse1(&[("v", v)]), Err(Dropped::NoVersion), "{v:?}");
        }
        assert_eq!(parse1(&[]), Err(Dropped::NoVersion));
        let only_local = parse(
            "x",
            "h",
            1,
            ips(&[
                "127.0.0.1",
                "::1",
                "fe80::2",
                "224.0.0.251",
                "::ffff:127.0.0.1",
                "::ffff:0.0.0.0",
                "::ffff:224.0.0.251",
            ])
            .into_iter(),
            txt(&[("v", "1")]),
        );
        assert_eq!(only_local, Err(Dropped::NoAddress));
        // An IPv4 address written as IPv6 is that IPv4 address: the pin
        // for it is the one checked.
        let mapped = parse(
            "x",
            "h",
            7878,
            ips(&["::ffff:10.0.0.2", "10.0.0.2"]).into_iter(),
            txt(&[("v", "1")]),
        )
        .unwrap();
        assert_eq!(mapped.addresses, ips(&["10.0.0.2"]));
        assert_eq!(mapped.address().as_deref(), Some("10.0.0.2:7878"));
        assert_eq!(
            parse("x", "h", 0, addr(), txt(&[("v", "1")])),
            Err(Dropped::NoPort)
        );

        // Terminal escapes, newlines and bidi overrides are defused, long
        // names cut; no fingerprint means a plain server.
        let evil = format!("\u{1b}[2Jevil\nname\u{202E}txt{}", "x".repeat(500));
        let found = parse1(&[("v", "1"), ("name", evil.as_str())]).unwrap();
        assert!(!found
            .name
            .chars()
            .any(|c| c.is_control() || c == '\u{202E}'));
        assert!(
            found
                .name
                .starts_with("\\u{1b}[2Jevil\\u{a}name\\u{202e}txt"),
            "{}",
            found.name
        );
        assert!(found.name.ends_with("x…"), "{}", found.name);
        // Cut to 48 characters (and `…`) before escaping: `\u{1b}`,
        // `\u{a}` and `\u{202e}` take 5, 4 and 7 more.
        assert_eq!(found.name.chars().count(), MAX_NAME_CHARS + 1 + 5 + 4 + 7);
        assert_eq!(found.fingerprint, None);
        let many: Vec<IpAddr> = (1..=40u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let found = parse("x", "h", 1, many.into_iter(), txt(&[("v", "1")])).unwrap();
        assert_eq!(found.addresses.len(), MAX_ADDRESSES);
    }

    /// Pins in memory, for the trust decision.
    struct Pins(std::sync::Mutex<Vec<(String, Fingerprint)>>);

    impl crate::PinStore for Pins {
        fn lookup(&self, addr: &str) -> Result<Option<Fingerprint>, ClientError> {
            let pins = self.0.lock().unwrap();
            Ok(pins.iter().find(|(a, _)| a == addr).map(|(_, fp)| *fp))
        }
        fn remember(&self, addr: &str, fingerprint: Fingerprint) -> Result<(), ClientError> {
            self.0.lock().unwrap().push((addr.to_owned(), fingerprint));
            Ok(())
        }
    }

    #[test]
    fn a_found_server_is_used_only_as_asked_and_an_older_pin_wins() {
        let fp: Fingerprint = FP.parse().unwrap();
        let other: Fingerprint = FP.replace("ff", "ee").parse().unwrap();
        let found = |txt_pairs: &[(&str, &str)]| {
            parse(
                "x",
                "h",
                7878,
                ips(&["10.0.0.2"]).into_iter(),
                txt(txt_pairs),
            )
            .unwrap()
        };
        let tls = found(&[("v", "1"), ("fp", FP)]);
        let plain = found(&[("v", "1")]);
        assert!(tls.usable_with(false, None));
        assert!(tls.usable_with(false, Some(fp)));
        assert!(!tls.usable_with(false, Some(other)), "another certificate");
        assert!(!tls.usable_with(true, None), "plain asked, TLS announced");
        assert!(plain.usable_with(true, None));
        assert!(
            !plain.usable_with(false, None),
            "TLS asked, plain announced"
        );
        let old = found(&[("v", "0"), ("fp", FP)]);
        assert!(!old.usable_with(false, None), "another protocol version");

        let pins = std::sync::Arc::new(Pins(std::sync::Mutex::new(Vec::new())));
        let (trust, disagreeing) = tls.trust(pins.clone()).unwrap();
        assert!(
            matches!(trust, crate::Trust::FirstUseExpecting { expected, .. } if expected == fp)
        );
        assert_eq!(disagreeing, None);
        pins.0.lock().unwrap().push(("10.0.0.2:7878".into(), other));
        let (_, disagreeing) = tls.trust(pins.clone()).unwrap();
        assert_eq!(
            disagreeing,
            Some(other),
            "the pin is told, and it is the one checked"
        );
        assert!(matches!(plain.trust(pins).unwrap().0, crate::Trust::Plain));
    }

    #[test]
    fn the_only_usable_server_is_chosen_and_several_are_picked_from() {
        let fp: Fingerprint = FP.parse().unwrap();
        let other: Fingerprint = FP.replace("ff", "ee").parse().unwrap();
        let server = |name: &str, ip: &str, fp: Option<&str>| {
            let mut pairs = vec![("v", "1"), ("name", name)];
            pairs.extend(fp.map(|fp| ("fp", fp)));
            parse("x", "h", 7878, ips(&[ip]).into_iter(), txt(&pairs)).unwrap()
        };
        let a = server("a", "10.0.0.2", Some(FP));
        let b = server("b", "10.0.0.3", Some(FP));
        let plain = server("p", "10.0.0.4", None);
        let found = |servers: &[&FoundServer]| Found {
            servers: servers.iter().map(|s| (*s).clone()).collect(),
            ignored: 2,
        };
        let pins = || std::sync::Arc::new(Pins(std::sync::Mutex::new(Vec::new())));
        let tls = Wanted::default();
        let never = |_: &[FoundServer]| -> Option<usize> { panic!("nothing to pick from") };

        // One usable among others: chosen without asking, trusted by its
        // announcement.
        let chosen = choose_from(found(&[&a, &plain]), tls, pins(), never).unwrap();
        assert_eq!(chosen.server, a);
        assert_eq!(chosen.addr, "10.0.0.2:7878");
        assert!(
            matches!(chosen.trust, crate::Trust::FirstUseExpecting { expected, .. } if expected == fp)
        );
        assert_eq!(chosen.pinned_instead, None);

        // Several: the pick decides; none picked (or out of range) is an
        // error listing them.
        let picked = choose_from(found(&[&a, &b, &plain]), tls, pins(), |list| {
            assert_eq!(list, &[a.clone(), b.clone()][..]);
            Some(1)
        })
        .unwrap();
        assert_eq!(picked.server, b);
        for pick in [None, Some(2)] {
            match choose_from(found(&[&a, &b, &plain]), tls, pins(), |_| pick) {
                Err(ClientError::NoServer {
                    found,
                    unusable,
                    ignored,
                }) => {
                    assert_eq!(found, vec![a.clone(), b.clone()]);
                    assert_eq!(unusable, vec![plain.clone()]);
                    assert_eq!(ignored, 2);
                }
                other => panic!("{other:?}"),
            }
        }

        // Plain asked for: only the plain one; a fingerprint asked for:
        // only a server with it, trusted by it.
        let wanted = Wanted {
            plain: true,
            fingerprint: None,
        };
        let chosen = choose_from(found(&[&a, &plain]), wanted, pins(), never).unwrap();
        assert_eq!(chosen.server, plain);
        assert!(matches!(chosen.trust, crate::Trust::Plain));
        let wanted = Wanted {
            plain: false,
            fingerprint: Some(fp),
        };
        let chosen = choose_from(found(&[&a, &plain]), wanted, pins(), never).unwrap();
        assert!(matches!(chosen.trust, crate::Trust::Fingerprint(f) if f == fp));
        let wanted = Wanted {
            plain: false,
            fingerprint: Some(other),
        };
        let refused = choose_from(found(&[&a, &plain]), wanted, pins(), never).unwrap_err();
        assert!(
            matches!(&refused, ClientError::NoServer { found, .. } if found.is_empty()),
            "{refused:?}"
        );
        // Said as what was announced, not as if nothing was.
        let said = refused.to_string();
        assert!(said.starts_with("no usable lanlink server"), "{said}");
        assert!(
            said.contains("\"p\" at 10.0.0.4:7878 is plain TCP"),
            "{said}"
        );
        assert!(
            said.contains("(2 announcement(s) ignored: malformed, or past the first 32)"),
            "{said}"
        );

        // An older pin for the address is kept, and said.
        let pinned = pins();
        pinned
            .0
            .lock()
            .unwrap()
            .push(("10.0.0.2:7878".into(), other));
        let chosen = choose_from(found(&[&a]), tls, pinned, never).unwrap();
        assert_eq!(chosen.pinned_instead, Some(other));
    }

    #[test]
    fn names_are_cut_at_character_boundaries() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
        assert!(!host_label().is_empty());
    }
}
