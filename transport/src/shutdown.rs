//! A shutdown signal that any number of threads can wait on or poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

/// A cloneable "please stop" signal.
///
/// [`trigger`](Shutdown::trigger) is idempotent. Waiters either poll
/// [`is_triggered`](Shutdown::is_triggered) or select on
/// [`receiver`](Shutdown::receiver), which becomes disconnected (and so
/// ready) the moment the signal fires.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    fired: AtomicBool,
    // Dropping the sender wakes every receiver at once.
    sender: Mutex<Option<Sender<()>>>,
    receiver: Receiver<()>,
    on_trigger: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        Shutdown {
            inner: Arc::new(Inner {
                fired: AtomicBool::new(false),
                sender: Mutex::new(Some(sender)),
                receiver,
                on_trigger: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Fires the signal. Safe to call from any thread, any number of times.
    pub fn trigger(&self) {
        if self.inner.fired.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.sender).take();
        let callbacks = std::mem::take(&mut *lock(&self.inner.on_trigger));
        for callback in callbacks {
            callback();
        }
    }

    /// True once [`trigger`](Shutdown::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// A receiver that never yields a value and becomes disconnected when the
    /// signal fires: put it in a `select!` next to your work channel.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.inner.receiver
    }

    /// Runs `callback` when the signal fires (at once if it already has).
    /// Used to unblock calls that cannot select, such as `accept`.
    pub fn on_trigger(&self, callback: impl FnOnce() + Send + 'static) {
        let mut callbacks = lock(&self.inner.on_trigger);
        if self.is_triggered() {
            drop(callbacks);
            callback();
        } else {
            callbacks.push(Box::new(callback));
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data guarded here (a sender, a list
/// of callbacks) stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_wakes_receivers_and_runs_callbacks_once() {
        let s = Shutdown::new();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        s.on_trigger(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(s.receiver().try_recv().is_err());
        assert!(!s.is_triggered());
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.receiver().recv().is_err());
        s.trigger();
        s.trigger();
        assert!(t.join().unwrap());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let h = hits.clone();
        s.on_trigger(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
