//! Limits that hold under attack, and the bookkeeping behind them: the one
//! [`TokenBucket`] every rate limit uses (connection attempts here, chat
//! and admin requests in the services), [`KeyedBuckets`] for a bucket per
//! address in bounded memory, the count of connections each address holds,
//! the operator's list of banned addresses, and a log that reports each
//! kind of refusal once per peer address instead of once per attempt or
//! packet.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::text::display_safe;

/// A token bucket's settings: `burst` events at once, then `per_second` on
/// average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Events allowed at once.
    pub burst: u32,
    /// Events per second allowed on average after the burst. Zero, negative
    /// or NaN means no refill (the burst and nothing more); infinity means
    /// no limit (with a burst of at least 1).
    pub per_second: f64,
}

impl Rate {
    /// `count` events a minute, all of which may come at once.
    pub fn per_minute(count: u32) -> Rate {
        Rate {
            burst: count,
            per_second: f64::from(count) / 60.0,
        }
    }

    /// No limit at all.
    pub const UNLIMITED: Rate = Rate {
        burst: u32::MAX,
        per_second: f64::INFINITY,
    };
}

/// One token bucket, driven by the caller's clock: it starts full (a
/// newcomer may do a few things at once), each event takes a token, and
/// tokens come back at the [`Rate`]'s pace up to its burst.
///
/// Time only comes in as arguments; an instant earlier than the last one
/// seen counts as no time passing.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate`.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        let per_second = if rate.per_second > 0.0 {
            rate.per_second
        } else {
            0.0
        };
        TokenBucket {
            burst: f64::from(rate.burst),
            per_second,
            tokens: f64::from(rate.burst),
            last: now,
        }
    }

    /// Takes one token, or says how long until one will be there (rounded
    /// up to the millisecond; [`Duration::MAX`]-ish when none ever will).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.check(now)?;
        self.tokens -= 1.0;
        Ok(())
    }

    /// Whether a token is there, without taking it: for limits that charge
    /// only failures (a wrong password costs a token, the right one does
    /// not, but an empty bucket refuses both).
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            // Float-to-int `as` saturates, so a zero refill rate gives
            // u64::MAX ms rather than a panic. The nanosecond shaved off
            // keeps float noise (1.000000000001 ms) from rounding up.
            let wait_ms = (1.0 - self.tokens) / self.per_second * 1000.0;
            Err(Duration::from_millis(
                (wait_ms - 1e-6).ceil().max(1.0) as u64
            ))
        }
    }

    /// True once the bucket has refilled completely: it then holds no
    /// information a fresh bucket would not, and can be forgotten.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        // With an infinite rate, 0 s × ∞ is NaN, and `min` then picks the
        // burst: a full bucket, which is what an unlimited rate means.
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
    }
}

/// Wrong access tokens one address may give per minute, by default.
pub const TOKEN_GUESSES_PER_ADDRESS: u32 = 5;
/// Wrong access tokens all addresses together may give per minute, by
/// default.
pub const TOKEN_GUESSES_IN_ALL: u32 = 30;

/// Wrong guesses of a secret (the access token), limited per address and
/// in all, and shared by everything that checks it (native `Hello`s, the
/// browser's `POST /auth`): a clone shares the count.
///
/// Only wrong guesses cost; but once an address's guesses are spent, every
/// attempt from it is refused without being checked — right or wrong —
/// until its bucket refills, so the answer tells a guesser nothing.
///
/// The limit in all is what stops guessing from many addresses. Once it is
/// spent, only addresses that gave no wrong guess in the last
/// [`WRONG_GUESS_MEMORY`] are still checked: an honest user who has the
/// token is not locked out by someone guessing from elsewhere, while each
/// guessing address gets at most one more guess an hour past the limit.
/// Which addresses guessed wrong is remembered for
/// [`DEFAULT_MAX_KEYS`] addresses at most (the oldest forgotten first), so
/// a guesser with more addresses than that (IPv6) gets more guesses; the
/// token's length is the defence there.
#[derive(Clone, Debug)]
pub struct GuessLimit {
    inner: Arc<Mutex<Guesses>>,
}

#[derive(Debug)]
struct Guesses {
    per_address: KeyedBuckets<IpAddr>,
    all: TokenBucket,
    /// When each address last guessed wrong (within the memory).
    wrong_at: HashMap<IpAddr, Instant>,
}

/// How long an address that guessed wrong counts as a guesser, past the
/// limit in all (see [`GuessLimit`]).
pub const WRONG_GUESS_MEMORY: Duration = Duration::from_secs(3600);

impl GuessLimit {
    /// `per_address` wrong guesses per minute from one address, `in_all`
    /// from all of them together.
    pub fn new(per_address: u32, in_all: u32) -> GuessLimit {
        GuessLimit::with_rates(Rate::per_minute(per_address), Rate::per_minute(in_all))
    }

    /// Wrong guesses at `per_address` from one address and `in_all` from
    /// all of them together.
    pub fn with_rates(per_address: Rate, in_all: Rate) -> GuessLimit {
        GuessLimit {
            inner: Arc::new(Mutex::new(Guesses {
                per_address: KeyedBuckets::new(per_address, DEFAULT_MAX_KEYS),
                all: TokenBucket::new(in_all, Instant::now()),
                wrong_at: HashMap::new(),
            })),
        }
    }

    /// Whether `ip` may try now; `Err` says how long until it may.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ip = ip.to_canonical();
        g.per_address.check(&ip, now)?;
        let guessed_wrong = g
            .wrong_at
            .get(&ip)
            .is_some_and(|at| now.saturating_duration_since(*at) < WRONG_GUESS_MEMORY);
        match g.all.check(now) {
            Err(wait) if guessed_wrong => Err(wait),
            // Spent by others: an address with no wrong guess is checked.
            _ => Ok(()),
        }
    }

    /// Counts a wrong guess from `ip`.
    pub fn wrong(&self, ip: IpAddr, now: Instant) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ip = ip.to_canonical();
        let _ = g.per_address.try_take(&ip, now);
        let _ = g.all.try_take(now);
        if g.wrong_at.len() >= DEFAULT_MAX_KEYS && !g.wrong_at.contains_key(&ip) {
            g.wrong_at
                .retain(|_, at| now.saturating_duration_since(*at) < WRONG_GUESS_MEMORY);
            if g.wrong_at.len() >= DEFAULT_MAX_KEYS {
                let oldest = g
                    .wrong_at
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    g.wrong_at.remove(&oldest);
                }
            }
        }
        g.wrong_at.insert(ip, now);
    }
}

impl Default for GuessLimit {
    /// [`TOKEN_GUESSES_PER_ADDRESS`] and [`TOKEN_GUESSES_IN_ALL`].
    fn default() -> Self {
        GuessLimit::new(TOKEN_GUESSES_PER_ADDRESS, TOKEN_GUESSES_IN_ALL)
    }
}

/// How many keys a [`KeyedBuckets`] tracks by default.
pub const DEFAULT_MAX_KEYS: usize = 4096;

/// A [`TokenBucket`] per key (a peer address, say), in bounded memory.
///
/// A key without a bucket has a full one, so buckets that have refilled are
/// forgotten (swept at most once a second, or when the map is full).
/// Beyond `max_keys` keys still refilling, the fullest bucket is dropped to
/// make room: an attacker with more addresses than that gets some of its
/// buckets back early, but memory stays bounded and every address keeps
/// being limited.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
    last_sweep: Option<Instant>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// No buckets yet; each key gets a full one for `rate` when first seen.
    pub fn new(rate: Rate, max_keys: usize) -> KeyedBuckets<K> {
        KeyedBuckets {
            rate,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// The rate every key gets.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes a token from `key`'s bucket (see [`TokenBucket::try_take`]).
    pub fn try_take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now).try_take(now)
    }

    /// Whether `key` has a token, without taking it (see
    /// [`TokenBucket::check`]).
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.buckets.get_mut(key) {
            Some(bucket) => bucket.check(now),
            None => TokenBucket::new(self.rate, now).check(now),
        }
    }

    /// How many keys have a bucket right now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn bucket(&mut self, key: &K, now: Instant) -> &mut TokenBucket {
        if !self.buckets.contains_key(key) {
            let due = self
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due || self.buckets.len() >= self.max_keys {
                self.buckets.retain(|_, b| !b.is_full(now));
                self.last_sweep = Some(now);
            }
            if self.buckets.len() >= self.max_keys {
                let fullest = self
                    .buckets
                    .iter_mut()
                    .map(|(k, b)| {
                        b.refill(now);
                        (b.tokens, k)
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| k.clone());
                if let Some(k) = fullest {
                    self.buckets.remove(&k);
                }
            }
        }
        let rate = self.rate;
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(rate, now))
    }
}

/// How many connections each address holds, against a cap. Shared by the
/// accept loop (which takes a slot) and the connection threads (whose
/// [`AddressSlot`] gives it back when they end).
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressSlots(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl AddressSlots {
    /// A slot for `ip` if it holds fewer than `max` connections.
    pub(crate) fn take(&self, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry(ip).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

/// One connection's place in [`AddressSlots`], given back on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    slots: AddressSlots,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = counts.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.ip);
            }
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
    /// Refusals of each kind since the start (kinds are a few fixed labels).
    totals: HashMap<&'static str, u64>,
}

impl RefusalLog {
    /// A new, empty log.
    pub fn new() -> RefusalLog {
        RefusalLog::default()
    }

    /// How many refusals of `kind` were recorded so far, from every
    /// address (for tests and tools).
    pub fn total(&self, kind: &str) -> u64 {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.totals.get(kind).copied().unwrap_or(0)
    }

    /// Records one refusal of `ip` for `kind` (a short fixed label such as
    /// `"connection rate"`), logging it if it is the first in a minute.
    /// Returns whether a line was logged. `detail` may quote the peer: it
    /// is logged through [`display_safe`].
    pub fn refused(&self, ip: IpAddr, kind: &'static str, detail: &str) -> bool {
        let detail = display_safe(detail);
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *state.totals.entry(kind).or_default() += 1;
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
    fn guesses_are_limited_per_address_and_in_all() {
        let t0 = Instant::now();
        let limit = GuessLimit::new(2, 5);
        let shared = limit.clone();
        let a = IpAddr::from([10, 0, 0, 1]);
        // Two wrong from one address spend its guesses (a clone counts too).
        limit.wrong(a, t0);
        shared.wrong(a, t0);
        assert!(limit.check(a, t0).is_err());
        // Others go on, until five wrong in all spend everyone's.
        for last in 2..=4 {
            let ip = IpAddr::from([10, 0, 0, last]);
            assert!(limit.check(ip, t0).is_ok());
            limit.wrong(ip, t0);
        }
        // Spent in all: the addresses that guessed wrong wait, even one
        // with guesses of its own left...
        let guesser = IpAddr::from([10, 0, 0, 2]);
        assert!(limit.check(guesser, t0).is_err(), "the limit in all");
        // ...but an address that never guessed wrong is still checked, once:
        // a wrong guess makes it a guesser too.
        let fresh = IpAddr::from([10, 0, 0, 9]);
        assert!(
            limit.check(fresh, t0).is_ok(),
            "an honest address is not locked out"
        );
        limit.wrong(fresh, t0);
        assert!(limit.check(fresh, t0).is_err());
        // A minute later everyone may try again.
        let later = t0 + Duration::from_secs(60);
        assert!(limit.check(guesser, later).is_ok());
        assert!(limit.check(a, later).is_ok());
        // Past the limit in all, a guesser counts as one for an hour.
        for last in 10..=20 {
            limit.wrong(IpAddr::from([10, 0, 0, last]), later);
        }
        let hour = later + Duration::from_secs(57 * 60);
        let burn = |at| {
            for last in 30..=40 {
                limit.wrong(IpAddr::from([10, 0, 1, last]), at);
            }
        };
        burn(hour);
        assert!(limit.check(guesser, hour).is_err(), "wrong within the hour");
        let after = t0 + WRONG_GUESS_MEMORY + Duration::from_secs(61);
        burn(after);
        assert!(
            limit.check(guesser, after).is_ok(),
            "forgotten after an hour"
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill_then_cap() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            Rate {
                burst: 3,
                per_second: 2.0,
            },
            t0,
        );
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(500)));
        // Half a second buys one token at 2 per second.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.try_take(t1), Ok(()));
        assert_eq!(b.try_take(t1), Err(Duration::from_millis(500)));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.is_full(t2));
        for _ in 0..3 {
            assert_eq!(b.try_take(t2), Ok(()));
        }
        assert!(b.try_take(t2).is_err());
    }

    #[test]
    fn partial_refill_reports_remaining_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            Rate {
                burst: 1,
                per_second: 1.0,
            },
            t0,
        );
        assert_eq!(b.try_take(t0), Ok(()));
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.try_take(t1), Err(Duration::from_millis(750)));
        // Checking takes nothing.
        let t2 = t0 + Duration::from_secs(1);
        assert_eq!(b.check(t2), Ok(()));
        assert_eq!(b.check(t2), Ok(()));
        assert_eq!(b.try_take(t2), Ok(()));
        assert!(b.check(t2).is_err());
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(
            Rate {
                burst: 1,
                per_second: 1.0,
            },
            t0,
        );
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(
            b.try_take(t0 - Duration::from_secs(5)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(b.try_take(t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn degenerate_rates_do_not_panic() {
        let t0 = Instant::now();
        for per_second in [0.0, -1.0, f64::NAN] {
            let mut b = TokenBucket::new(
                Rate {
                    burst: 1,
                    per_second,
                },
                t0,
            );
            assert_eq!(b.try_take(t0), Ok(()));
            assert_eq!(
                b.try_take(t0 + Duration::from_secs(3600)),
                Err(Duration::from_millis(u64::MAX))
            );
        }
        let mut unlimited = TokenBucket::new(Rate::UNLIMITED, t0);
        for _ in 0..100 {
            assert_eq!(unlimited.try_take(t0), Ok(()));
        }
        let mut none = TokenBucket::new(
            Rate {
                burst: 0,
                per_second: 1.0,
            },
            t0,
        );
        assert_eq!(none.try_take(t0), Err(Duration::from_secs(1)));
        let mut slow = TokenBucket::new(Rate::per_minute(5), t0);
        assert!((0..5).all(|_| slow.try_take(t0).is_ok()));
        assert_eq!(slow.try_take(t0), Err(Duration::from_secs(12)));
    }

    #[test]
    fn each_key_has_its_own_bucket_that_refills() {
        let mut limiter = KeyedBuckets::new(
            Rate {
                burst: 3,
                per_second: 2.0,
            },
            DEFAULT_MAX_KEYS,
        );
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.try_take(&a, t0).is_ok()));
        assert!(limiter.try_take(&a, t0).is_err());
        assert!(limiter.check(&b, t0).is_ok(), "an unseen key has a token");
        assert!(
            limiter.try_take(&b, t0).is_ok(),
            "another key is not affected"
        );
        assert!(limiter
            .try_take(&a, t0 + Duration::from_millis(400))
            .is_err());
        assert!(limiter
            .try_take(&a, t0 + Duration::from_millis(900))
            .is_ok());
    }

    #[test]
    fn keyed_buckets_stay_bounded_and_forget_refilled_keys() {
        let rate = Rate {
            burst: 2,
            per_second: 1.0,
        };
        let mut limiter = KeyedBuckets::new(rate, 100);
        let t0 = Instant::now();
        // Ten thousand addresses, each spending its whole burst.
        for i in 0..10_000u32 {
            let key = IpAddr::from(i.to_be_bytes());
            assert!(limiter.try_take(&key, t0).is_ok());
            assert!(limiter.try_take(&key, t0).is_ok());
            assert!(limiter.len() <= 100);
        }
        // The most recent ones are still limited.
        let last = IpAddr::from(9_999u32.to_be_bytes());
        assert!(limiter.try_take(&last, t0).is_err());
        // Once every bucket has refilled, the next new key sweeps them all.
        let later = t0 + Duration::from_secs(3);
        assert!(limiter.try_take(&ip("10.9.9.9"), later).is_ok());
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn address_slots_cap_each_address_and_come_back_on_drop() {
        let slots = AddressSlots::default();
        let a = ip("10.0.0.1");
        let held: Vec<AddressSlot> = (0..3).filter_map(|_| slots.take(a, 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(slots.take(a, 3).is_none());
        // The IPv4-mapped form is the same address.
        assert!(slots.take(ip("::ffff:10.0.0.1"), 3).is_none());
        let other = slots.take(ip("10.0.0.2"), 3);
        assert!(other.is_some());
        drop(held);
        assert_eq!(slots.held(a), 0);
        assert!(slots.take(a, 3).is_some());
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
