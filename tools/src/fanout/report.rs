//! What a fan-out run found, as a short table or one JSON line.

use std::fmt::Write as _;

use super::engine::Tally;
use super::wire::Proto;
use crate::procinfo::{CpuUse, ProcSample};

/// One run's figures.
#[derive(Debug)]
pub struct FanoutReport {
    pub(super) proto: Proto,
    pub(super) clients: u32,
    pub(super) ready: u64,
    pub(super) connect_failures: u64,
    pub(super) connect_secs: f64,
    pub(super) senders: u32,
    pub(super) threads: u32,
    pub(super) size: usize,
    pub(super) warmup_secs: f64,
    pub(super) window_secs: f64,
    pub(super) target_sent_per_sec: f64,
    pub(super) target_delivered_per_sec: f64,
    /// Deliveries owed for every line sent (each line × the others in the
    /// room).
    pub(super) owed: u64,
    pub(super) tally: Tally,
    pub(super) first_error: Option<String>,
    pub(super) cpu: CpuUse,
    /// The server at the window's end.
    pub(super) server: Option<ProcSample>,
    /// This process at the window's end.
    pub(super) bench: Option<ProcSample>,
    pub(super) load: Option<String>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl FanoutReport {
    /// Deliveries owed that never came (within the drain after the last
    /// line).
    pub fn undelivered(&self) -> u64 {
        self.owed.saturating_sub(self.tally.received)
    }

    /// Whether every line reached everyone and every client stayed.
    pub fn nothing_lost(&self) -> bool {
        self.undelivered() == 0
            && self.tally.gaps == 0
            && self.tally.disconnected == 0
            && self.connect_failures == 0
    }

    fn proto_name(&self) -> &'static str {
        match self.proto {
            Proto::Lanlink => "lanlink",
            Proto::Irc => "irc",
        }
    }

    /// The human-readable table.
    pub fn to_text(&self) -> String {
        let t = &self.tally;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lanlink-bench fanout ({}): {} clients in one room, {} sender(s), {}-byte lines, \
             {} s measured after {} s warm-up, {} load thread(s)",
            self.proto_name(),
            self.clients,
            self.senders,
            self.size,
            self.window_secs,
            self.warmup_secs,
            self.threads
        );
        let _ = writeln!(
            s,
            "  clients     {}/{} in the room after {:.2} s; {} failed to connect",
            self.ready, self.clients, self.connect_secs, self.connect_failures
        );
        let _ = writeln!(
            s,
            "  sent        {:.0} lines/s (target {:.1}; sending fell behind by up to {:.1} ms)",
            t.sent_in_window as f64 / self.window_secs,
            self.target_sent_per_sec,
            t.max_lag_us as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "  delivered   {:.0} msg/s (target {:.0})",
            t.received_in_window as f64 / self.window_secs,
            self.target_delivered_per_sec
        );
        let _ = writeln!(s, "  latency     {}", t.latency);
        let _ = writeln!(
            s,
            "  lost        {} of {} deliveries never came; {} sequence gaps, {} out of order, \
             {} disconnected ({} for not reading), {} foreign lines",
            self.undelivered(),
            self.owed,
            t.gaps,
            t.out_of_order,
            t.disconnected,
            t.stuck,
            t.foreign
        );
        if let Some((to, from, seq)) = t.tail_example {
            let _ = writeln!(
                s,
                "  missing     {} deliveries after the last line a receiver got from a sender \
                 (e.g. bench-{to} never got line {seq} of bench-{from})",
                t.missing_tail
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(s, "  first error {e}");
        }
        if let Some(m) = &self.server {
            let _ = writeln!(
                s,
                "  server      VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads, CPU {:.0} % of one core",
                mib(m.rss_kib),
                mib(m.hwm_kib),
                m.threads,
                self.cpu.process.unwrap_or(0.0) * 100.0
            );
        }
        if let Some(me) = self.cpu.me {
            let rss = self.bench.map_or(0.0, |b| mib(b.rss_kib));
            let _ = writeln!(
                s,
                "  bench       CPU {:.0} % of one core, VmRSS {rss:.1} MiB",
                me * 100.0
            );
        }
        if let Some(busy) = self.cpu.machine {
            let others = busy - self.cpu.me.unwrap_or(0.0) - self.cpu.process.unwrap_or(0.0);
            let _ = writeln!(
                s,
                "  machine     {:.0} % of one core busy in all ({:.0} % neither server nor bench); \
                 load average {}",
                busy * 100.0,
                others.max(0.0) * 100.0,
                self.load.as_deref().unwrap_or("?")
            );
        }
        s
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        let t = &self.tally;
        let l = &t.latency;
        let opt = |v: Option<f64>| v.map_or_else(|| "null".to_owned(), |v| format!("{v:.3}"));
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"proto\":\"{}\",\"clients\":{},\"ready\":{},\"connect_failures\":{},\
             \"connect_s\":{:.3},\"senders\":{},\"size\":{},\"warmup_s\":{},\"duration_s\":{},\
             \"sent_per_s\":{:.1},\"target_sent_per_s\":{:.3},\"sender_lag_max_ms\":{:.3},\
             \"delivered_per_s\":{:.1},\"target_delivered_per_s\":{:.1},\
             \"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3},\"samples\":{}}},\
             \"owed\":{},\"undelivered\":{},\"gaps\":{},\"out_of_order\":{},\"disconnected\":{},\
             \"foreign\":{},\"missing_tail\":{},\"lost_nothing\":{},\
             \"server_cpu_cores\":{},\"bench_cpu_cores\":{},\"machine_cpu_cores\":{},\"load\":\"{}\"",
            self.proto_name(),
            self.clients,
            self.ready,
            self.connect_failures,
            self.connect_secs,
            self.senders,
            self.size,
            self.warmup_secs,
            self.window_secs,
            t.sent_in_window as f64 / self.window_secs,
            self.target_sent_per_sec,
            t.max_lag_us as f64 / 1000.0,
            t.received_in_window as f64 / self.window_secs,
            self.target_delivered_per_sec,
            l.percentile_ms(50.0),
            l.percentile_ms(99.0),
            l.percentile_ms(99.9),
            l.max_ms(),
            l.count(),
            self.owed,
            self.undelivered(),
            t.gaps,
            t.out_of_order,
            t.disconnected,
            t.foreign,
            t.missing_tail,
            self.nothing_lost(),
            opt(self.cpu.process),
            opt(self.cpu.me),
            opt(self.cpu.machine),
            self.load.as_deref().unwrap_or("?"),
        );
        if let Some(m) = &self.server {
            let _ = write!(
                s,
                ",\"server\":{{\"vm_rss_mib\":{:.1},\"vm_hwm_mib\":{:.1},\"threads\":{}}}",
                mib(m.rss_kib),
                mib(m.hwm_kib),
                m.threads
            );
        }
        s.push('}');
        s
    }
}
