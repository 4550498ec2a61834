//! A userspace stand-in for `tc netem` on kernels without `sch_netem`: a
//! TCP relay that delays what it forwards and stalls now and then the way
//! packet loss stalls a TCP stream.
//!
//! Each direction of each connection is a reader thread and a writer thread
//! joined by a bounded queue. The reader stamps every chunk it reads with a
//! release time, *now + delay ± jitter* (uniform, like netem's default), but
//! never earlier than the chunk before it: TCP hands the application bytes
//! in order whatever the packets did, so reordering is not modelled. Loss
//! is modelled as TCP experiences it: a lost segment holds back everything
//! behind it until its retransmission, about one retransmission timeout
//! (Linux's minimum RTO is 200 ms) later. So each 1448-byte segment a chunk
//! spans is lost with probability `loss`, and a chunk with a lost segment
//! is released 200–300 ms late, with everything after it. The bounded
//! queue passes back-pressure on to the sender, as a full window would.
//!
//! What this does *not* model: the kernel's congestion control reacting to
//! loss (the window halving), so throughput under loss is better than real
//! netem's; and the delay applies to data, not to the TCP handshake.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The impairment applied in each direction.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Uniform jitter: each chunk is delayed by `delay` ± up to this.
    pub jitter: Duration,
    /// Probability that a 1448-byte segment is lost (0.01 for 1%).
    pub loss: f64,
}

impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms ±{} ms each way, {}% segment loss as 200-300 ms retransmission stalls",
            self.delay.as_millis(),
            self.jitter.as_millis(),
            self.loss * 100.0
        )
    }
}

/// A TCP segment's payload on Ethernet with timestamps.
const SEGMENT: usize = 1448;
/// Linux's minimum retransmission timeout, and the spread above it.
const RTO: Duration = Duration::from_millis(200);
const RTO_SPREAD_MS: u64 = 100;
/// Chunks queued per direction before the reader stops reading.
const QUEUE: usize = 512;

/// What the relay did, shared by all its threads.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes forwarded (both directions).
    pub bytes: AtomicU64,
    /// Chunks forwarded.
    pub chunks: AtomicU64,
    /// Retransmission stalls applied.
    pub stalls: AtomicU64,
}

/// A small, seedable random source (xorshift64*): the relay needs no
/// cryptographic quality, only independence between threads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `seed` and the clock.
    pub fn new(seed: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((seed ^ t).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Listens on `listen` and relays every connection to `to`, impaired, until
/// `until`. Returns the bound address at once; the relay runs on its own
/// threads.
pub fn start(
    listen: &str,
    to: SocketAddr,
    imp: Impairment,
    until: Instant,
) -> std::io::Result<(SocketAddr, Arc<RelayStats>)> {
    let listener = TcpListener::bind(listen)?;
    let local = listener.local_addr()?;
    let stats = Arc::new(RelayStats::default());
    let shared = Arc::clone(&stats);
    std::thread::Builder::new()
        .name("impair-accept".into())
        .spawn(move || {
            let mut seed = 1u64;
            for conn in listener.incoming() {
                if Instant::now() >= until {
                    break;
                }
                let Ok(client) = conn else { continue };
                seed += 1;
                let stats = Arc::clone(&shared);
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = std::thread::Builder::new()
                    .name("impair-conn".into())
                    .spawn(move || relay(client, to, imp, seed, &stats));
            }
        })?;
    Ok((local, stats))
}

/// One connection: connects to `to` and pumps both directions.
fn relay(client: TcpStream, to: SocketAddr, imp: Impairment, seed: u64, stats: &Arc<RelayStats>) {
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up_stats = Arc::clone(stats);
    let up = std::thread::spawn(move || pump(client, server, imp, seed * 2, &up_stats));
    pump(s2, c2, imp, seed * 2 + 1, stats);
    let _ = up.join();
}

/// Copies `from` to `to` with the impairment, until `from` ends (then
/// half-closes `to` after the queue drained) or either side fails.
fn pump(mut from: TcpStream, mut to: TcpStream, imp: Impairment, seed: u64, stats: &RelayStats) {
    let (tx, rx) = crossbeam_channel::bounded::<(Instant, Vec<u8>)>(QUEUE);
    let (Ok(from2), Ok(to2)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let writer = std::thread::spawn(move || {
        for (release, chunk) in rx {
            if let Some(wait) = release.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                // The far side is gone: make the reader stop too.
                let _ = from2.shutdown(Shutdown::Both);
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut rng = Rng::new(seed);
    let mut last = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let jitter_us = imp.jitter.as_micros() as u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        // delay ± jitter, uniform; never negative.
        let offset = rng.below(2 * jitter_us + 1);
        let mut release = (now + imp.delay + Duration::from_micros(offset))
            .checked_sub(imp.jitter)
            .unwrap_or(now)
            .max(now);
        let segments = n.div_ceil(SEGMENT);
        if (0..segments).any(|_| rng.unit() < imp.loss) {
            release += RTO + Duration::from_millis(rng.below(RTO_SPREAD_MS + 1));
            stats.stalls.fetch_add(1, Ordering::Relaxed);
        }
        // In order: never before the chunk ahead of it.
        release = release.max(last);
        last = release;
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        if tx.send((release, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
    // Both directions end when one fails: the writer above half-closed
    // `to`; a reader blocked on the reverse direction sees the close.
    let _ = to2.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_delays_and_keeps_order() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let imp = Impairment {
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(10),
            loss: 0.0,
        };
        let until = Instant::now() + Duration::from_secs(10);
        let (addr, _stats) = start("127.0.0.1:0", to, imp, until).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).unwrap();
            }
        });
        let mut c = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        for i in 0..20u8 {
            c.write_all(&[i]).unwrap();
        }
        let mut buf = [0u8; 64];
        while got.len() < 20 {
            let n = c.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        // Two crossings of at least 20 ms each.
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
        drop(c);
        echo.join().unwrap();
    }
}
