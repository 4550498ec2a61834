//! Limits that hold under attack, and the bookkeeping behind them: a
//! per-address token bucket for connection attempts, the operator's list
//! of banned addresses, and a log that reports each kind of refusal once
//! per peer address instead of once per attempt or packet.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A token bucket: `burst` at once, then `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Events allowed at once.
    pub burst: u32,
    /// Events per second allowed on average after the burst.
    pub per_second: f64,
}

/// Connection attempts per address: each address gets its own bucket.
#[derive(Debug)]
pub(crate) struct AttemptLimiter {
    rate: Rate,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    last_sweep: Instant,
}

impl AttemptLimiter {
    pub(crate) fn new(rate: Rate) -> AttemptLimiter {
        AttemptLimiter {
            rate,
            buckets: HashMap::new(),
            last_sweep: Instant::now(),
        }
    }

    /// Takes a token for `ip`; false when its bucket is empty.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let Rate { burst, per_second } = self.rate;
        let burst = f64::from(burst.max(1));
        if now.duration_since(self.last_sweep) > Duration::from_secs(60) {
            // Forget addresses whose buckets have long refilled: the map
            // stays as small as the set of recent attackers.
            let full_after = burst / per_second.max(1e-9);
            self.buckets
                .retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < full_after);
            self.last_sweep = now;
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * per_second;
        *tokens = (*tokens + refill).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Addresses the operator banned. Shared between the accept loop (which
/// refuses them before any handshake) and the application (which adds and
/// removes entries). Cheap to clone. IPv4 addresses match their
/// IPv4-mapped IPv6 form (`::ffff:a.b.c.d`, how a dual-stack listener
/// sees IPv4 clients) and the other way round.
#[derive(Debug, Clone, Default)]
pub struct BanList(Arc<RwLock<HashSet<IpAddr>>>);

impl BanList {
    /// An empty list.
    pub fn new() -> BanList {
        BanList::default()
    }

    /// Bans `ip`; false if it already was.
    pub fn ban(&self, ip: IpAddr) -> bool {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip.to_canonical())
    }

    /// Lifts the ban on `ip`; false if there was none.
    pub fn unban(&self, ip: IpAddr) -> bool {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip.to_canonical())
    }

    /// True if `ip` is banned.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ip.to_canonical())
    }

    /// Every banned address, sorted.
    pub fn list(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        v.sort();
        v
    }
}

/// Logs a refusal the first time it happens for a peer address and kind,
/// then only a count once a minute while it goes on: an attacker cannot
/// flood the log, and the operator still sees who and how often.
#[derive(Debug, Clone, Default)]
pub struct RefusalLog(Arc<Mutex<RefusalState>>);

#[derive(Debug, Default)]
struct RefusalState {
    seen: HashMap<(IpAddr, &'static str), (u64, Instant)>,
}

impl RefusalLog {
    /// A new, empty log.
    pub fn new() -> RefusalLog {
        RefusalLog::default()
    }

    /// Records one refusal of `ip` for `kind` (a short fixed label such as
    /// `"connection rate"`), logging it if it is the first in a minute.
    /// Returns whether a line was logged.
    pub fn refused(&self, ip: IpAddr, kind: &'static str, detail: &str) -> bool {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.seen.len() > 10_000 {
            state
                .seen
                .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        }
        match state.seen.get_mut(&(ip, kind)) {
            Some((count, at)) if now.duration_since(*at) < Duration::from_secs(60) => {
                *count += 1;
                false
            }
            Some((count, at)) => {
                let suppressed = *count;
                *count = 0;
                *at = now;
                tracing::warn!(peer = %ip, "refused ({kind}): {detail}; {suppressed} more refusals of this kind in the last minute were not logged");
                true
            }
            None => {
                state.seen.insert((ip, kind), (0, now));
                tracing::warn!(peer = %ip, "refused ({kind}): {detail} (further refusals of this kind from this address are counted, not logged, for a minute)");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_bucket_that_refills() {
        let mut limiter = AttemptLimiter::new(Rate {
            burst: 3,
            per_second: 2.0,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(a, t0)));
        assert!(!limiter.allow(a, t0));
        assert!(limiter.allow(b, t0), "another address is not affected");
        assert!(!limiter.allow(a, t0 + Duration::from_millis(400)));
        assert!(limiter.allow(a, t0 + Duration::from_millis(900)));
    }

    #[test]
    fn refusals_are_logged_once_per_address_and_kind() {
        let log = RefusalLog::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(log.refused(a, "rate", "x"));
        assert!(!log.refused(a, "rate", "x"));
        assert!(log.refused(a, "banned", "x"));
        assert!(log.refused("10.0.0.2".parse().unwrap(), "rate", "x"));
    }

    #[test]
    fn bans_are_shared_between_clones() {
        let bans = BanList::new();
        let other = bans.clone();
        let ip: IpAddr = "192.168.1.9".parse().unwrap();
        assert!(bans.ban(ip));
        assert!(other.contains(ip));
        // A dual-stack listener sees the same client as ::ffff:192.168.1.9.
        assert!(bans.contains("::ffff:192.168.1.9".parse().unwrap()));
        assert!(other.unban(ip));
        assert!(!bans.contains(ip));
        assert!(bans.ban("::ffff:10.1.2.3".parse().unwrap()));
        assert!(bans.contains("10.1.2.3".parse().unwrap()));
    }
}
