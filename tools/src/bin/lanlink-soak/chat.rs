//! Chat under load and churn.
//!
//! *Load*: a few in-process clients, connected for the whole run, take turns
//! saying `soak-load NAME SEQ` at a fixed total rate. Every one of them
//! checks that every other one's lines arrive exactly in order, with no gap
//! and no repeat, and at the end that it got all of them.
//!
//! *Churn*: real `lanlink chat` processes come and go, each saying
//! `soak-churn NAME SEQ` every 250 ms. Half leave cleanly (end of input:
//! the client says goodbye once its lines are delivered, so every load
//! client must have all of them); the others are killed with SIGKILL, some
//! while still connecting: their lines must arrive in order up to wherever
//! the kill cut them off.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lanlink_proto::{chat, Capabilities, Frame, Message};
use lanlink_transport::Event;

use crate::impair::Rng;
use lanlink_tools::procs::{Lanlink, Proc};

/// What one load client saw.
#[derive(Debug, Default)]
struct Seen {
    /// Next sequence number expected from each sender.
    next: HashMap<String, u64>,
    /// Load lines received.
    load_lines: u64,
    /// Churn lines received.
    churn_lines: u64,
    /// Lines out of order, repeated or after a gap, and the first few.
    disorder: u64,
    examples: Vec<String>,
    /// Errors from the server (rate limiting included).
    server_errors: Vec<String>,
    /// The connection closed under it.
    closed: Option<String>,
}

impl Seen {
    /// Keeps the first few errors the server sent.
    fn server_error(&mut self, text: &str) {
        if self.server_errors.len() < 5 {
            self.server_errors.push(text.to_owned());
        }
    }

    fn on_line(&mut self, me: &str, text: &str) {
        let mut words = text.split(' ');
        let (Some(kind), Some(who), Some(seq)) = (words.next(), words.next(), words.next()) else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else { return };
        match kind {
            "soak-load" => self.load_lines += 1,
            "soak-churn" => self.churn_lines += 1,
            _ => return,
        }
        if who == me {
            return;
        }
        let next = self.next.entry(who.to_owned()).or_insert(0);
        if seq != *next {
            self.disorder += 1;
            if self.examples.len() < 5 {
                self.examples
                    .push(format!("{me} got {who} #{seq}, expected #{next}"));
            }
        }
        *next = seq + 1;
    }
}

/// The chat figures of a run.
#[derive(Debug, Default)]
pub struct ChatReport {
    /// In-process clients under load.
    pub load_clients: usize,
    /// Lines per second, all load clients together.
    pub load_rate: f64,
    /// Load lines sent.
    pub sent: u64,
    /// Load lines delivered, over all receivers.
    pub delivered: u64,
    /// Load lines that should have been delivered.
    pub expected: u64,
    /// Churn clients started, left cleanly, killed (of which while
    /// connecting).
    pub churn_started: u64,
    /// Churn clients that left with end of input.
    pub churn_clean: u64,
    /// Churn clients killed with SIGKILL.
    pub churn_killed: u64,
    /// Of those, killed before they had said they were connected.
    pub churn_killed_connecting: u64,
    /// Churn lines written to clients that left cleanly, and how many of
    /// those every load client received.
    pub churn_clean_lines: u64,
    /// Churn lines received, over all load receivers.
    pub churn_lines_received: u64,
    /// Everything that went wrong.
    pub failures: Vec<String>,
}

/// A churn client and what it did.
struct Churner {
    name: String,
    proc: Proc,
    written: u64,
    leave_at: Instant,
    next_line: Instant,
    kill: bool,
}

/// Runs load (and churn, if `churn`) until `until`; then waits for every
/// line to be delivered (15 s at most) and checks.
pub fn run(
    lanlink: &Lanlink,
    addr: &str,
    clients: usize,
    rate: f64,
    churn: bool,
    until: Instant,
) -> ChatReport {
    let mut report = ChatReport {
        load_clients: clients,
        load_rate: rate,
        ..ChatReport::default()
    };
    let (mut connected, mut names) = (Vec::new(), Vec::new());
    for i in 0..clients {
        let name = format!("soak-load-{i}");
        match lanlink.connect(addr, &name, Capabilities::CHAT) {
            Ok(c) => {
                connected.push(c);
                names.push(name);
            }
            Err(e) => report.failures.push(e),
        }
    }
    if connected.len() < 2 {
        report.failures.push("fewer than two load clients".into());
        return report;
    }
    // The room: the History the server sends every newcomer names it.
    let mut room = None;
    for c in &connected {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(f)) = c.recv_timeout(Duration::from_millis(100)) {
                if let Message::History(h) = f.message {
                    room = Some(h.room);
                    break;
                }
            }
        }
    }
    let room = room.unwrap_or_else(|| "lobby".into());

    // Set once the senders stopped: each sender's final count, so a
    // receiver knows when it has everything.
    let finals: Arc<OnceLock<Vec<u64>>> = Arc::new(OnceLock::new());
    let receivers: Vec<_> = connected
        .iter()
        .zip(&names)
        .map(|(c, name)| {
            let events = c.events().clone();
            let (me, finals) = (name.clone(), Arc::clone(&finals));
            let names = names.clone();
            std::thread::spawn(move || receive(&events, &me, &names, &finals))
        })
        .collect();

    // Churn in its own thread: processes come and go while the load runs.
    let churn_thread = churn.then(|| {
        let (lanlink, addr) = (lanlink.clone(), addr.to_owned());
        std::thread::spawn(move || run_churn(&lanlink, &addr, until))
    });

    // Senders: one loop walking the clients in turn at the total rate.
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let started = Instant::now();
    let mut per_sender = vec![0u64; connected.len()];
    let mut k: u64 = 0;
    while Instant::now() < until && k < 10_000_000 {
        let due = started + interval.mul_f64(k as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let i = (k % connected.len() as u64) as usize;
        k += 1;
        let line = chat::ChatMessage {
            room: room.clone(),
            from: String::new(),
            text: format!("soak-load {} {}", names[i], per_sender[i]),
            action: false,
            timestamp_ms: 0,
        };
        match connected[i].send(&Frame::control(line)) {
            Ok(()) => {
                per_sender[i] += 1;
            }
            Err(e) => {
                report
                    .failures
                    .push(format!("{}: send failed: {e}", names[i]));
                break;
            }
        }
    }
    report.sent = per_sender.iter().sum();

    let churners = churn_thread.map(|t| t.join().unwrap_or_default());
    let _ = finals.set(per_sender.clone());
    let seen: Vec<Seen> = receivers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    for c in connected {
        c.close("soak over");
    }

    for (me, s) in names.iter().zip(&seen) {
        report.delivered += s.load_lines;
        report.churn_lines_received += s.churn_lines;
        report.expected += names
            .iter()
            .zip(&per_sender)
            .filter(|(n, _)| *n != me)
            .map(|(_, s)| s)
            .sum::<u64>();
        for (name, sent) in names.iter().zip(&per_sender) {
            if name == me {
                continue;
            }
            let got = s.next.get(name).copied().unwrap_or(0);
            if got != *sent {
                report
                    .failures
                    .push(format!("{me} received {got} of {name}'s {sent} lines"));
            }
        }
        if s.disorder > 0 {
            report.failures.push(format!(
                "{me}: {} lines out of order, e.g. {}",
                s.disorder,
                s.examples.join("; ")
            ));
        }
        if !s.server_errors.is_empty() {
            report.failures.push(format!(
                "{me}: errors from the server: {}",
                s.server_errors.join("; ")
            ));
        }
        if let Some(reason) = &s.closed {
            report
                .failures
                .push(format!("{me}: disconnected during the run: {reason}"));
        }
    }
    if let Some(churners) = churners {
        report.churn_started = churners.started;
        report.churn_clean = churners.clean.len() as u64;
        report.churn_killed = churners.killed.len() as u64;
        report.churn_killed_connecting = churners.killed_connecting;
        report.failures.extend(churners.failures);
        for (name, written) in &churners.clean {
            report.churn_clean_lines += written;
            for (me, s) in names.iter().zip(&seen) {
                let got = s.next.get(name).copied().unwrap_or(0);
                if got != *written {
                    report.failures.push(format!(
                        "{me} received {got} of the {written} lines of {name}, which left cleanly"
                    ));
                }
            }
        }
        for (name, written) in &churners.killed {
            for (me, s) in names.iter().zip(&seen) {
                let got = s.next.get(name).copied().unwrap_or(0);
                if got > *written {
                    report.failures.push(format!(
                        "{me} received {got} lines of {name}, which was killed after writing {written}"
                    ));
                }
            }
        }
    }
    report
}

/// One load client's receiving loop: until the senders stopped and it has
/// every line of the others, 15 s after they stopped at most, or until its
/// connection closes.
fn receive(
    events: &crossbeam_channel::Receiver<Event>,
    me: &str,
    names: &[String],
    finals: &OnceLock<Vec<u64>>,
) -> Seen {
    let mut seen = Seen::default();
    let mut drain_deadline = None;
    loop {
        if let Some(finals) = finals.get() {
            let complete = names
                .iter()
                .zip(finals)
                .filter(|(n, _)| n.as_str() != me)
                .all(|(n, f)| seen.next.get(n).copied().unwrap_or(0) >= *f);
            let deadline =
                *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(15));
            if complete {
                // Whatever else is already on its way (the last lines of
                // churn clients that left) comes right behind.
                while Instant::now() < deadline {
                    let Ok(event) = events.recv_timeout(Duration::from_millis(300)) else {
                        break;
                    };
                    if !on_event(&mut seen, me, event) {
                        break;
                    }
                }
                return seen;
            }
            if Instant::now() >= deadline {
                return seen;
            }
        }
        match events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => {
                if !on_event(&mut seen, me, event) {
                    return seen;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return seen,
        }
    }
}

/// Takes in one event; false once the connection closed.
fn on_event(seen: &mut Seen, me: &str, event: Event) -> bool {
    match event {
        Event::Frame { frame, .. } => match frame.message {
            Message::ChatMessage(m) => seen.on_line(me, &m.text),
            Message::Error(e) => seen.server_error(&format!("{}: {}", e.code.0, e.message)),
            _ => {}
        },
        Event::Closed { reason, .. } => {
            seen.closed = Some(reason.to_string());
            return false;
        }
        Event::Hello { .. } => {}
    }
    true
}

/// What the churn loop did.
#[derive(Debug, Default)]
struct Churned {
    started: u64,
    /// Name and lines written, per client that left cleanly.
    clean: Vec<(String, u64)>,
    /// Name and lines written, per client killed.
    killed: Vec<(String, u64)>,
    killed_connecting: u64,
    failures: Vec<String>,
}

/// Churn until `until`: at most three `lanlink chat` processes at a time,
/// each living 1–4 s. Bounded by time and by 10,000 clients.
fn run_churn(lanlink: &Lanlink, addr: &str, until: Instant) -> Churned {
    let mut out = Churned::default();
    let mut rng = Rng::new(7);
    let mut alive: Vec<Churner> = Vec::new();
    let mut next_spawn = Instant::now();
    let mut n: u64 = 0;
    while (Instant::now() < until || !alive.is_empty()) && n < 10_000 {
        let now = Instant::now();
        if now < until && alive.len() < 3 && now >= next_spawn {
            let name = format!("soak-churn-{n}");
            let mode = n % 4;
            n += 1;
            let mut cmd = lanlink.client("chat");
            cmd.arg(addr).args(["--name", &name]);
            match Proc::spawn(name.clone(), cmd, true) {
                Ok(proc) => {
                    out.started += 1;
                    let life = match mode {
                        // Killed while it connects.
                        3 => Duration::from_millis(rng.below(100)),
                        _ => Duration::from_millis(1000 + rng.below(3000)),
                    };
                    alive.push(Churner {
                        name,
                        proc,
                        written: 0,
                        leave_at: now + life,
                        // One killed while connecting says nothing.
                        next_line: if mode == 3 { now + life } else { now },
                        kill: mode == 1 || mode == 3,
                    });
                }
                Err(e) => out.failures.push(e),
            }
            next_spawn = now + Duration::from_millis(300 + rng.below(700));
        }
        let mut i = 0;
        while i < alive.len() {
            let c = &mut alive[i];
            c.proc.drain();
            let now = Instant::now();
            // Stop talking at the end of the run: the load clients stop
            // listening soon after.
            let leave = now >= c.leave_at || now >= until;
            if !leave && now >= c.next_line {
                let line = format!("soak-churn {} {}", c.name, c.written);
                if c.proc.say(&line) {
                    c.written += 1;
                }
                c.next_line = now + Duration::from_millis(250);
            }
            if leave {
                let mut c = alive.swap_remove(i);
                finish_churner(&mut c, &mut out);
                continue;
            }
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

fn finish_churner(c: &mut Churner, out: &mut Churned) {
    if c.kill {
        let connected = c.proc.expect("-- connected", Duration::ZERO).is_some();
        c.proc.kill();
        if !connected && c.written == 0 {
            out.killed_connecting += 1;
        }
        out.killed.push((c.name.clone(), c.written));
        return;
    }
    c.proc.close_stdin();
    // Drain while it says goodbye, so it never blocks printing.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        c.proc.drain();
        if let Some(s) = c.proc.exited() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match status {
        Some(s) if s.success() => out.clean.push((c.name.clone(), c.written)),
        Some(s) => out.failures.push(format!(
            "{} exited with {s} after end of input: {}",
            c.name,
            c.proc.stderr_tail()
        )),
        None => {
            c.proc.kill();
            out.failures.push(format!(
                "{} did not exit within 15 s of end of input",
                c.name
            ));
        }
    }
}
