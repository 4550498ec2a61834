//! How a connection's sends wake the server I/O thread that serves it (the
//! client's writer thread waits on its queues instead).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

/// One I/O thread's doorbell: its `mio` waker and the connections with
/// something newly queued.
pub(crate) struct Doorbell {
    pub(crate) waker: Waker,
    /// Tokens of the connections with something newly queued.
    pub(crate) ready: Mutex<Vec<usize>>,
}

impl Doorbell {
    pub(crate) fn new(waker: Waker) -> Doorbell {
        Doorbell {
            waker,
            ready: Mutex::new(Vec::new()),
        }
    }

    /// The ready list, even if a thread panicked holding it.
    pub(crate) fn ready(&self) -> MutexGuard<'_, Vec<usize>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a connection's sends wake its I/O thread.
pub(crate) struct Wake {
    bell: Arc<Doorbell>,
    token: usize,
    /// Set while the connection is on the ready list.
    pub(crate) scheduled: AtomicBool,
}

impl Wake {
    pub(crate) fn new(bell: Arc<Doorbell>, token: usize) -> Wake {
        Wake {
            bell,
            token,
            scheduled: AtomicBool::new(false),
        }
    }

    /// Schedules the connection for a write turn; the waker is rung only
    /// when the thread has nothing scheduled yet.
    pub(crate) fn wake(&self) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let first = {
            let mut ready = self.bell.ready();
            ready.push(self.token);
            ready.len() == 1
        };
        if first {
            let _ = self.bell.waker.wake();
        }
    }
}
