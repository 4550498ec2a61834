//! A small pool of worker threads for the work the hub must never do itself:
//! reading, hashing, writing and syncing files.
//!
//! The hub thread owns a [`WorkerPool`]. It [`submit`](WorkerPool::submit)s
//! jobs under an owner key (the server files them under the address of the
//! client they are for, so that many connections from one address share
//! one turn), receives each result on
//! [`results`](WorkerPool::results) like any other event, and reports it
//! back with [`finished`](WorkerPool::finished). Jobs wait in one queue per
//! owner and go to idle workers round-robin, at most
//! [`WorkerConfig::in_flight_per_owner`] of one owner's at a time: a peer
//! that asks for ten multi-GiB hashes waits for its own earlier ones, while
//! everyone else's jobs take the other workers and the next turn. Nothing
//! is handed to a worker that is not idle, so the only queues are the
//! owners' own, and the service that makes the jobs bounds those (see
//! [`lanlink_services::file::FileConfig::max_jobs_per_client`]).

use std::collections::{HashMap, VecDeque};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

/// How many workers, and how many jobs of one owner they take at once.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker threads.
    pub threads: usize,
    /// Jobs of one owner (in the server: one client address) running at
    /// the same time.
    pub in_flight_per_owner: usize,
    /// How much nicer than the server the workers run (Linux; 0 leaves
    /// them alone). A worker hashing a multi-GiB file takes a whole core;
    /// on a small machine the hub and I/O threads must still get the CPU
    /// first, or chat waits behind the hash even though the hub is free.
    pub nice: i32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            // A few: enough that one peer's long hash leaves room for the
            // others, few enough not to crowd out the hub on small machines.
            threads: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 4),
            in_flight_per_owner: 1,
            nice: DEFAULT_WORKER_NICE,
        }
    }
}

/// Workers' default [`WorkerConfig::nice`]: at +10 the scheduler gives a
/// thread about a tenth of the CPU time of a normal thread that wants it.
pub const DEFAULT_WORKER_NICE: i32 = 10;

/// Worker threads fed fairly from per-owner queues. Dropping the pool lets
/// the running jobs finish, drops the queued ones and joins the threads.
pub struct WorkerPool<K, J, R> {
    to_workers: Option<Sender<(K, J)>>,
    results: Receiver<(K, R)>,
    threads: Vec<JoinHandle<()>>,
    idle: usize,
    in_flight_per_owner: usize,
    /// Each owner's waiting jobs, oldest first.
    queues: HashMap<K, VecDeque<J>>,
    /// Jobs of each owner on a worker now.
    running: HashMap<K, usize>,
    /// Owners with waiting jobs, in the order they get their next turn.
    turns: VecDeque<K>,
}

impl<K, J, R> WorkerPool<K, J, R>
where
    K: Copy + Eq + std::hash::Hash + Send + 'static,
    J: Send + 'static,
    R: Send + 'static,
{
    /// Starts `config.threads` workers (at least one), each running `work`
    /// on the jobs it is given.
    pub fn new(
        config: &WorkerConfig,
        work: fn(J) -> R,
    ) -> Result<WorkerPool<K, J, R>, crate::ServerError> {
        let threads = config.threads.max(1);
        // Never more jobs in the channel than idle workers (see `dispatch`).
        let (to_workers, jobs) = crossbeam_channel::bounded::<(K, J)>(threads);
        let (done, results) = crossbeam_channel::unbounded();
        let mut handles = Vec::with_capacity(threads);
        let nice = config.nice;
        for i in 0..threads {
            let (jobs, done) = (jobs.clone(), done.clone());
            let handle = std::thread::Builder::new()
                .name(format!("lanlink-worker-{i}"))
                .spawn(move || {
                    be_nicer(nice);
                    for (owner, job) in jobs {
                        if done.send((owner, work(job))).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| crate::ServerError::io("spawn worker thread", e))?;
            handles.push(handle);
        }
        Ok(WorkerPool {
            to_workers: Some(to_workers),
            results,
            threads: handles,
            idle: threads,
            in_flight_per_owner: config.in_flight_per_owner.max(1),
            queues: HashMap::new(),
            running: HashMap::new(),
            turns: VecDeque::new(),
        })
    }

    /// Queues `job` behind `owner`'s earlier jobs; it runs when a worker is
    /// free and it is `owner`'s turn.
    pub fn submit(&mut self, owner: K, job: J) {
        let queue = self.queues.entry(owner).or_default();
        if queue.is_empty() {
            self.turns.push_back(owner);
        }
        queue.push_back(job);
        self.dispatch();
    }

    /// Where results arrive, with the owner of the job.
    pub fn results(&self) -> &Receiver<(K, R)> {
        &self.results
    }

    /// Records that a result of `owner` was received: its worker is free
    /// for the next job.
    pub fn finished(&mut self, owner: K) {
        self.idle += 1;
        if let Some(n) = self.running.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(&owner);
            }
        }
        self.dispatch();
    }

    /// Drops `owner`'s waiting jobs that `keep` rejects (the owner left and
    /// they are of no use any more); returns how many were dropped.
    pub fn retain(&mut self, owner: K, keep: impl Fn(&J) -> bool) -> usize {
        let Some(queue) = self.queues.get_mut(&owner) else {
            return 0;
        };
        let before = queue.len();
        queue.retain(|j| keep(j));
        let dropped = before - queue.len();
        if queue.is_empty() {
            self.queues.remove(&owner);
            self.turns.retain(|o| *o != owner);
        }
        dropped
    }

    /// Jobs waiting (not running) in all.
    pub fn waiting(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Hands waiting jobs to idle workers, one owner's turn at a time.
    fn dispatch(&mut self) {
        let Some(to_workers) = &self.to_workers else {
            return;
        };
        // Each owner in `turns` is looked at once per pass; an owner at its
        // in-flight limit keeps its place for the next pass.
        let mut skipped = 0;
        while self.idle > 0 && skipped < self.turns.len() {
            let Some(owner) = self.turns.pop_front() else {
                break;
            };
            let running = self.running.get(&owner).copied().unwrap_or(0);
            if running >= self.in_flight_per_owner {
                self.turns.push_back(owner);
                skipped += 1;
                continue;
            }
            let Some(queue) = self.queues.get_mut(&owner) else {
                continue;
            };
            let Some(job) = queue.pop_front() else {
                self.queues.remove(&owner);
                continue;
            };
            if queue.is_empty() {
                self.queues.remove(&owner);
            } else {
                self.turns.push_back(owner);
            }
            // Cannot block: the channel holds one slot per worker and only
            // idle workers' slots are ever used.
            if to_workers.send((owner, job)).is_err() {
                return;
            }
            self.idle -= 1;
            *self.running.entry(owner).or_insert(0) += 1;
            skipped = 0;
        }
    }
}

/// Raises the calling thread's nice value by `by` (at most to 19). On Linux
/// a thread's priority is its own (`setpriority` with its thread id); a
/// failure only costs the priority, so it is logged, not returned.
#[cfg(target_os = "linux")]
fn be_nicer(by: i32) {
    if by <= 0 {
        return;
    }
    let me = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(me), (now + by).min(19)) {
        tracing::debug!("worker thread keeps its priority: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn be_nicer(_by: i32) {}

impl<K, J, R> Drop for WorkerPool<K, J, R> {
    fn drop(&mut self) {
        // Closing the channel ends each worker after its current job.
        self.to_workers = None;
        self.queues.clear();
        // Results nobody reads must not keep a worker waiting: the results
        // channel is unbounded, so a worker's send never blocks.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use lanlink_transport::ConnId;

    fn pool(threads: usize) -> WorkerPool<ConnId, (u32, Duration), u32> {
        let config = WorkerConfig {
            threads,
            in_flight_per_owner: 1,
            nice: 0,
        };
        WorkerPool::new(&config, |(n, d): (u32, Duration)| {
            std::thread::sleep(d);
            n
        })
        .unwrap()
    }

    fn next(pool: &mut WorkerPool<ConnId, (u32, Duration), u32>) -> (ConnId, u32) {
        let (owner, n) = pool
            .results()
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        pool.finished(owner);
        (owner, n)
    }

    #[test]
    fn one_owners_backlog_does_not_hold_up_another() {
        let mut p = pool(2);
        let slow = Duration::from_millis(300);
        for n in 0..5 {
            p.submit(ConnId(1), (n, slow));
        }
        p.submit(ConnId(2), (100, Duration::ZERO));
        // Owner 2's job runs on the second worker at once, not after the
        // first owner's five (which go one at a time).
        assert_eq!(next(&mut p), (ConnId(2), 100));
        assert_eq!(p.waiting(), 4);
        // Owner 1's jobs keep their order.
        for n in 0..2 {
            assert_eq!(next(&mut p), (ConnId(1), n));
        }
        assert_eq!(p.retain(ConnId(1), |_| false), 2);
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn owners_take_turns() {
        let mut p = pool(1);
        // The worker is busy with a first job; then two owners queue three
        // jobs each.
        p.submit(ConnId(9), (0, Duration::from_millis(100)));
        for n in 1..=3 {
            p.submit(ConnId(1), (n, Duration::ZERO));
            p.submit(ConnId(2), (10 + n, Duration::ZERO));
        }
        let order: Vec<u32> = (0..7).map(|_| next(&mut p).1).collect();
        assert_eq!(order, [0, 1, 11, 2, 12, 3, 13]);
    }

    /// Each worker lowers its own thread's priority; the thread that made
    /// the pool keeps its own.
    #[cfg(target_os = "linux")]
    #[test]
    fn workers_run_nicer_than_the_server() {
        fn own_nice() -> i32 {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        }
        let before = own_nice();
        let config = WorkerConfig {
            threads: 2,
            in_flight_per_owner: 1,
            nice: 5,
        };
        let mut p = WorkerPool::new(&config, |()| own_nice()).unwrap();
        p.submit(ConnId(1), ());
        let (owner, nice) = p.results().recv_timeout(Duration::from_secs(10)).unwrap();
        p.finished(owner);
        assert_eq!(nice, (before + 5).min(19));
        assert_eq!(own_nice(), before);
    }
}
