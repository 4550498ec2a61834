//! A minimum pace for what the server sends browsers (downloads, folder
//! archives, MJPEG streams), as uploads have one for what they receive.
//!
//! The write timeout catches a reader that stops; a reader that keeps
//! reading a trickle (2 KiB every 3 s) never trips it and would hold its
//! slot for ever. [`Paced`] counts the time the server spends blocked
//! writing and the bytes that went out meanwhile: whenever `per` of such
//! waiting passes with less than `bytes` sent, the write fails with
//! `TimedOut` and the answer ends. Time with nothing to send (a quiet
//! stream) is not counted, so a slow stream costs its viewers nothing.

use std::io::{self, Write};
use std::time::{Duration, Instant};

/// The least a browser must take of what it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinPace {
    /// Bytes that must go out ...
    pub bytes: u64,
    /// ... in this much time spent waiting for the browser to read.
    pub per: Duration,
}

impl Default for MinPace {
    /// 64 KiB per 30 s, as uploads.
    fn default() -> Self {
        MinPace {
            bytes: 64 * 1024,
            per: Duration::from_secs(30),
        }
    }
}

/// The message of the error a reader too slow for [`MinPace`] meets.
const TOO_SLOW: &str = "the browser reads slower than the minimum pace";

/// Whether `result` ended because the reader fell behind [`MinPace`].
pub(super) fn too_slow(result: &io::Result<()>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::TimedOut && e.to_string() == TOO_SLOW)
}

/// How far a reader is behind [`MinPace`].
#[derive(Debug)]
pub(super) struct Pace {
    min: MinPace,
    /// Time spent in writes in the current window.
    busy: Duration,
    /// Bytes written in the current window.
    bytes: u64,
}

impl Pace {
    pub(super) fn new(min: MinPace) -> Pace {
        Pace {
            min,
            busy: Duration::ZERO,
            bytes: 0,
        }
    }

    /// One write to `to`, counted.
    fn write(&mut self, to: &mut (impl Write + ?Sized), buf: &[u8]) -> io::Result<usize> {
        let started = Instant::now();
        let n = to.write(buf)?;
        self.busy += started.elapsed();
        self.bytes = self.bytes.saturating_add(n as u64);
        if self.busy >= self.min.per {
            if self.bytes < self.min.bytes {
                return Err(io::Error::new(io::ErrorKind::TimedOut, TOO_SLOW));
            }
            self.busy = Duration::ZERO;
            self.bytes = 0;
        }
        Ok(n)
    }

    /// All of `buf` to `to`, counted.
    pub(super) fn write_all(
        &mut self,
        to: &mut (impl Write + ?Sized),
        mut buf: &[u8],
    ) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(to, buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = buf.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A writer held to a [`MinPace`].
pub(super) struct Paced<'a, W: ?Sized> {
    inner: &'a mut W,
    pace: Pace,
}

impl<'a, W: Write + ?Sized> Paced<'a, W> {
    pub(super) fn new(inner: &'a mut W, min: MinPace) -> Self {
        Paced {
            inner,
            pace: Pace::new(min),
        }
    }
}

impl<W: Write + ?Sized> Write for Paced<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pace.write(self.inner, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `per_call` bytes per write, taking `delay` each time.
    struct Trickle {
        per_call: usize,
        delay: Duration,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            Ok(buf.len().min(self.per_call))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const MIN: MinPace = MinPace {
        bytes: 1000,
        per: Duration::from_millis(100),
    };

    #[test]
    fn a_trickling_reader_is_cut_and_a_steady_one_is_not() {
        let mut slow = Trickle {
            per_call: 10,
            delay: Duration::from_millis(5),
        };
        let err = Paced::new(&mut slow, MIN)
            .write_all(&[0; 100_000])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let mut steady = Trickle {
            per_call: 200,
            delay: Duration::from_millis(5),
        };
        Paced::new(&mut steady, MIN)
            .write_all(&[0; 100_000])
            .unwrap();
    }

    #[test]
    fn time_with_nothing_to_send_does_not_count() {
        let mut fast = Vec::new();
        let mut pace = Pace::new(MIN);
        for _ in 0..5 {
            pace.write_all(&mut fast, &[1; 10]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(fast.len(), 50);
    }
}
