//! [`QueuedBytes`]: what one producer has waiting in a channel, in bytes,
//! so that a channel bounded by count is bounded by bytes too.

use std::collections::VecDeque;
use std::time::Duration;

use crossbeam_channel::Sender;

/// How long a producer over the limit sleeps before looking again.
const RECHECK: Duration = Duration::from_millis(2);

/// The bytes one producer has waiting in a FIFO channel it alone sends on:
/// the sizes of what it sent, newest last; the channel's length says how
/// many of them are still there (the oldest were read).
///
/// A channel bounded by count holds up to that many of the largest items:
/// 4,096 frames of 16 MiB from a hostile peer is 64 GiB. With this, the
/// producer waits (and so stops reading its socket) once the items still
/// waiting pass `limit` bytes; one item is always let through, however
/// large.
#[derive(Debug)]
pub struct QueuedBytes {
    sizes: VecDeque<usize>,
    total: usize,
    limit: usize,
}

impl QueuedBytes {
    /// Lets at most `limit` bytes wait (and always one item).
    pub fn new(limit: usize) -> QueuedBytes {
        QueuedBytes {
            sizes: VecDeque::new(),
            total: 0,
            limit,
        }
    }

    /// Forgets the items read: `waiting` are still in the channel.
    fn settle(&mut self, waiting: usize) {
        while self.sizes.len() > waiting {
            if let Some(size) = self.sizes.pop_front() {
                self.total -= size;
            }
        }
    }

    /// Bytes of this producer's items still waiting, if `waiting` items
    /// are in the channel.
    pub fn waiting(&mut self, waiting: usize) -> usize {
        self.settle(waiting);
        self.total
    }

    /// Whether an item of `size` bytes may be sent now.
    pub fn fits<T>(&mut self, channel: &Sender<T>, size: usize) -> bool {
        self.settle(channel.len());
        self.sizes.is_empty() || self.total.saturating_add(size) <= self.limit
    }

    /// Waits until an item of `size` bytes fits (true: send it) or
    /// `give_up` says to stop waiting (false: checked every few
    /// milliseconds). An item that found no room is to be dropped, not sent
    /// anyway: a producer that gives up because its side is closing would
    /// otherwise hold whatever a peer still sends, bounded by count alone.
    #[must_use = "an item that found no room is dropped"]
    pub fn wait_for_room<T>(
        &mut self,
        channel: &Sender<T>,
        size: usize,
        mut give_up: impl FnMut() -> bool,
    ) -> bool {
        loop {
            if self.fits(channel, size) {
                return true;
            }
            if give_up() {
                return false;
            }
            std::thread::sleep(RECHECK);
        }
    }

    /// Counts an item of `size` bytes just sent.
    pub fn sent(&mut self, size: usize) {
        self.sizes.push_back(size);
        self.total = self.total.saturating_add(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_waiting_follow_what_the_reader_takes() {
        let (tx, rx) = crossbeam_channel::bounded::<usize>(100);
        let mut q = QueuedBytes::new(100);
        for size in [40, 40] {
            assert!(q.fits(&tx, size));
            tx.send(size).unwrap();
            q.sent(size);
        }
        assert!(!q.fits(&tx, 40), "80 + 40 > 100");
        assert!(q.fits(&tx, 20));
        rx.recv().unwrap();
        assert_eq!(q.waiting(tx.len()), 40);
        assert!(q.fits(&tx, 60));
        rx.recv().unwrap();
        // Empty: one item goes through however large.
        assert!(q.fits(&tx, 1_000));
    }

    #[test]
    fn a_producer_over_the_limit_waits_until_the_reader_takes() {
        let (tx, rx) = crossbeam_channel::bounded::<usize>(100);
        let mut q = QueuedBytes::new(10);
        tx.send(10).unwrap();
        q.sent(10);
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            rx.recv().unwrap()
        });
        let started = std::time::Instant::now();
        assert!(q.wait_for_room(&tx, 10, || false));
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(reader.join().unwrap(), 10);
        // Told to stop: no waiting.
        let (tx, _rx) = crossbeam_channel::bounded::<usize>(100);
        let mut q = QueuedBytes::new(1);
        q.sent(5);
        tx.send(5).unwrap();
        assert!(!q.wait_for_room(&tx, 5, || true), "no room, gave up");
        // Room: no giving up either.
        let (tx, _rx) = crossbeam_channel::bounded::<usize>(100);
        assert!(QueuedBytes::new(1).wait_for_room(&tx, 5, || true));
    }
}
