//! One `/proc` reader for every tool (through the `procfs` crate): a
//! process's CPU time, threads, descriptors and memory ([`ProcSample`]), CPU
//! used over a window ([`CpuWindow`]), the machine's load, and this
//! process's descriptor limit.

use std::time::Instant;

use procfs::process::{LimitValue, Process};
use procfs::{Current, CurrentSI, KernelStats, LoadAverage};

/// A process as `/proc` shows it at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time so far, in clock ticks
    /// ([`ticks_per_second`]).
    pub cpu_ticks: u64,
    /// Threads (`Threads:` of `/proc/PID/status`).
    pub threads: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Resident memory in KiB (`VmRSS:`).
    pub rss_kib: u64,
    /// The most resident memory so far in KiB (`VmHWM:`).
    pub hwm_kib: u64,
}

impl ProcSample {
    /// Process `pid`; None once it is gone, or when any of it cannot be read
    /// (its descriptors need the same user or root).
    pub fn of(pid: u32) -> Option<ProcSample> {
        Self::read(&process(pid)?)
    }

    /// This process.
    pub fn of_self() -> Option<ProcSample> {
        Self::read(&Process::myself().ok()?)
    }

    fn read(p: &Process) -> Option<ProcSample> {
        let status = p.status().ok()?;
        Some(ProcSample {
            cpu_ticks: cpu_ticks(p)?,
            threads: status.threads,
            fds: u64::try_from(p.fd_count().ok()?).ok()?,
            rss_kib: status.vmrss?,
            hwm_kib: status.vmhwm?,
        })
    }

    /// The larger of each figure.
    pub fn max(self, o: ProcSample) -> ProcSample {
        ProcSample {
            cpu_ticks: self.cpu_ticks.max(o.cpu_ticks),
            threads: self.threads.max(o.threads),
            fds: self.fds.max(o.fds),
            rss_kib: self.rss_kib.max(o.rss_kib),
            hwm_kib: self.hwm_kib.max(o.hwm_kib),
        }
    }
}

/// A process's figures through a run (idle, at the start of the load,
/// at its peak, at the end), checked against limits on the end.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Before anything happened.
    pub idle: ProcSample,
    /// When the load started (the baseline).
    pub start: ProcSample,
    /// The largest seen.
    pub peak: ProcSample,
    /// After the load, once settled.
    pub end: ProcSample,
}

impl Run {
    /// Prints one row per figure (threads, open fds, RSS in MiB) with
    /// `names` as the column titles (idle, start, peak, end, limit), and
    /// returns a failure for each figure whose end is above its limit
    /// (`limit` holds threads, fds and RSS KiB).
    pub fn check(&self, names: [&str; 4], limit: ProcSample) -> Vec<String> {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let figures = |s: ProcSample| [s.threads as f64, s.fds as f64, mib(s.rss_kib)];
        let (idle, start, peak, end, limits) = (
            figures(self.idle),
            figures(self.start),
            figures(self.peak),
            figures(self.end),
            figures(limit),
        );
        let [n_idle, n_start, n_peak, n_end] = names;
        println!(
            "server       {n_idle:>8} {n_start:>8} {n_peak:>8} {n_end:>8} {:>8}  ok",
            "limit"
        );
        let mut failures = Vec::new();
        for (i, name) in ["threads", "open fds", "RSS MiB"].iter().enumerate() {
            let ok = end[i] <= limits[i];
            println!(
                "  {name:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {}",
                idle[i],
                start[i],
                peak[i],
                end[i],
                limits[i],
                if ok { "yes" } else { "NO" }
            );
            if !ok {
                failures.push(format!(
                    "server {name}: {:.1} after the run, above the limit {:.1} ({n_start} {:.1})",
                    end[i], limits[i], start[i]
                ));
            }
        }
        failures
    }
}

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

fn cpu_ticks(p: &Process) -> Option<u64> {
    let stat = p.stat().ok()?;
    Some(stat.utime + stat.stime)
}

/// Clock ticks per second of the CPU times in `/proc` (`USER_HZ`).
pub fn ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

/// Busy ticks of all CPUs together since boot, from `/proc/stat`:
/// everything but idle and I/O wait (guest time is already in user time).
pub fn machine_busy_ticks() -> Option<u64> {
    let t = KernelStats::current().ok()?.total;
    Some(
        t.user
            + t.nice
            + t.system
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + t.steal.unwrap_or(0),
    )
}

/// The 1, 5 and 15 minute load averages, as `0.52 0.61 0.70`.
pub fn load_average() -> Option<String> {
    let l = LoadAverage::current().ok()?;
    Some(format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen))
}

/// This process's soft limit on open files; None if unlimited or
/// unreadable.
pub fn open_files_limit() -> Option<u64> {
    match Process::myself()
        .ok()?
        .limits()
        .ok()?
        .max_open_files
        .soft_limit
    {
        LimitValue::Value(n) => Some(n),
        LimitValue::Unlimited => None,
    }
}

/// CPU times at the start of a measurement window: of one process (a
/// server), of this process and of the whole machine.
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    at: Instant,
    pid: Option<u32>,
    process: Option<u64>,
    me: Option<u64>,
    machine: Option<u64>,
}

/// CPU used over a [`CpuWindow`], in cores (1.0 is one core busy the whole
/// window); None where `/proc` could not be read at either end.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The watched process.
    pub process: Option<f64>,
    /// This process.
    pub me: Option<f64>,
    /// All CPUs of the machine together: what is neither of the above is
    /// someone else's load.
    pub machine: Option<f64>,
    /// How long the window was.
    pub seconds: f64,
}

impl CpuWindow {
    /// Starts a window now, watching process `pid` (if any) besides this
    /// process and the machine.
    pub fn start(pid: Option<u32>) -> CpuWindow {
        let (process, me, machine) = Self::ticks(pid);
        CpuWindow {
            at: Instant::now(),
            pid,
            process,
            me,
            machine,
        }
    }

    fn ticks(pid: Option<u32>) -> (Option<u64>, Option<u64>, Option<u64>) {
        (
            pid.and_then(process).as_ref().and_then(cpu_ticks),
            Process::myself().ok().as_ref().and_then(cpu_ticks),
            machine_busy_ticks(),
        )
    }

    /// Ends the window now: the CPU used since [`CpuWindow::start`].
    pub fn finish(&self) -> CpuUse {
        let (process, me, machine) = Self::ticks(self.pid);
        let seconds = self.at.elapsed().as_secs_f64();
        let hz = ticks_per_second();
        let cores = |before: Option<u64>, after: Option<u64>| {
            let (b, a) = (before?, after?);
            Some(a.saturating_sub(b) as f64 / hz / seconds.max(1e-6))
        };
        CpuUse {
            process: cores(self.process, process),
            me: cores(self.me, me),
            machine: cores(self.machine, machine),
            seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Other tests run on other threads of this process meanwhile: counts
    // of threads and descriptors are compared loosely.

    #[test]
    fn this_process_as_proc_shows_it() {
        let me = ProcSample::of_self().expect("/proc/self");
        assert!(ProcSample::of(std::process::id()).is_some());
        assert!(ProcSample::of(u32::MAX).is_none());
        assert!(me.threads >= 1);
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib, "{me:?}");
        let held: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/status"))
            .collect::<Result<_, _>>()
            .expect("open");
        let now = ProcSample::of_self().expect("/proc/self");
        assert!(
            now.fds >= me.fds + 32,
            "{} open before, {} with 64 more",
            me.fds,
            now.fds
        );
        drop(held);
        assert_eq!(now.max(me).fds, now.fds);
    }

    #[test]
    fn a_busy_thread_shows_in_cpu_use() {
        let window = CpuWindow::start(Some(std::process::id()));
        let until = Instant::now() + std::time::Duration::from_millis(300);
        let mut spin = 0u64;
        while Instant::now() < until {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let used = window.finish();
        // However loaded the machine, 300 ms of spinning gets some CPU.
        assert!(used.me.is_some_and(|c| c > 0.0), "{used:?}");
        assert!(used.process.is_some_and(|c| c > 0.0), "{used:?}");
        assert!(used.machine.is_some_and(|c| c > 0.0), "{used:?}");
        assert!(used.seconds >= 0.3);
        assert_eq!(CpuWindow::start(None).finish().process, None);
    }

    #[test]
    fn the_machine_and_limits() {
        assert!(ticks_per_second() >= 1.0);
        assert!(machine_busy_ticks().is_some_and(|t| t > 0));
        let load = load_average().expect("/proc/loadavg");
        assert_eq!(load.split(' ').count(), 3, "{load}");
        if let Some(n) = open_files_limit() {
            assert!(n >= 64, "{n}");
        }
    }
}
