//! Child processes: every `lanlink` and `lanlink-server` command line the
//! soak runs is built by [`Lanlink`], and [`Proc`] runs one with its output
//! collected line by line (the attack run uses both too).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use lanlink_client::{KnownServers, Session};
use lanlink_proto::Capabilities;
use lanlink_transport::{Client, ClientConfig};

/// Builds every command line of the soak, and every connection it makes
/// itself, so what all of them need (TLS, as by default: the server's
/// `--data-dir`, the clients' `$LANLINK_HOME` with their pins) is added in
/// one place.
#[derive(Debug, Clone)]
pub struct Lanlink {
    /// Folder holding `lanlink` and `lanlink-server`.
    pub bin_dir: PathBuf,
    /// Run the server in this network namespace (`ip netns exec NS …`).
    pub server_netns: Option<String>,
    /// `$LANLINK_HOME` of every client (a scratch folder).
    pub home: PathBuf,
    /// The server's data folder (its TLS certificate).
    pub data_dir: PathBuf,
}

impl Lanlink {
    /// `lanlink-server` bound to `bind`, sharing `share`, with uploads into
    /// `inbox`. The chat flood guard and the connection-rate limit are
    /// raised well above the soak's load (the load is what is measured,
    /// not the guards); HTTP is off.
    pub fn server(&self, bind: &str, share: &Path, inbox: &Path) -> Command {
        let exe = self.bin_dir.join("lanlink-server");
        let mut cmd = match &self.server_netns {
            Some(ns) => {
                // `ip netns exec` execs the server in place: the child's pid
                // is the server's.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["--bind", bind, "--no-http"])
            .arg("--share")
            .arg(share)
            .arg("--inbox")
            .arg(inbox)
            .args(["--rate-burst", "200", "--rate-per-second", "100"])
            .args(["--max-clients", "256"])
            .args(["--connect-burst", "1000", "--connects-per-second", "1000"])
            // Every client runs on this machine.
            .arg("--no-address-limits")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "info");
        cmd
    }

    /// `lanlink SUBCOMMAND` with the flags every client needs; the caller
    /// adds the server address and the rest.
    pub fn client(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("lanlink"));
        cmd.arg(subcommand).env("LANLINK_HOME", &self.home);
        cmd
    }

    /// An in-process client of the server at `addr`: TLS, pinning the
    /// certificate in the same file as the `lanlink` processes.
    pub fn connect(
        &self,
        addr: &str,
        name: &str,
        capabilities: Capabilities,
    ) -> Result<Client, String> {
        Session::builder(addr)
            .name(name)
            .pin_store(KnownServers::at(self.home.join("known_servers")))
            .capabilities(capabilities)
            .transport_config(ClientConfig::default())
            .connect_transport()
            .map(|(client, _)| client)
            .map_err(|e| format!("{name}: cannot connect to {addr}: {e}"))
    }
}

/// Sends `signal` (`TERM`, `KILL`, …) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A running child whose stdout lines arrive on a channel and whose stderr
/// lines are kept.
pub struct Proc {
    /// What it is, for messages.
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Stdout lines already taken off the channel.
    seen: Vec<String>,
}

/// Sends a stream's lines on a channel until it ends.
fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    /// Starts `cmd` with piped stdout and stderr (and stdin if `stdin`).
    pub fn spawn(label: impl Into<String>, cmd: Command, stdin: bool) -> Result<Proc, String> {
        Self::start(label.into(), cmd, stdin, None)
    }

    /// Starts `cmd` with piped stdout, its stderr (a server's log) written
    /// whole to the file `log`, for reading afterwards;
    /// [`stderr_tail`](Proc::stderr_tail) is empty then.
    pub fn spawn_logging_to(
        label: impl Into<String>,
        cmd: Command,
        log: &Path,
    ) -> Result<Proc, String> {
        let label = label.into();
        let file = std::fs::File::create(log)
            .map_err(|e| format!("{label}: cannot create {}: {e}", log.display()))?;
        Self::start(label, cmd, false, Some(file))
    }

    fn start(
        label: String,
        mut cmd: Command,
        stdin: bool,
        log: Option<std::fs::File>,
    ) -> Result<Proc, String> {
        let logged = log.is_some();
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(log.map_or_else(Stdio::piped, Stdio::from))
            .spawn()
            .map_err(|e| format!("{label}: cannot start {:?}: {e}", cmd.get_program()))?;
        let stdout = lines_of(child.stdout.take().ok_or("no stdout")?);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if !logged {
            let errs = lines_of(child.stderr.take().ok_or("no stderr")?);
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in errs {
                    // Bounded: a chatty child keeps only its last lines.
                    let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                    if k.len() >= 200 {
                        k.remove(0);
                    }
                    k.push(line);
                }
            });
        }
        Ok(Proc {
            label,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to stdin; false if it is closed.
    pub fn say(&mut self, line: &str) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .is_ok()
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `patience` for a stdout line containing `needle`.
    pub fn expect(&mut self, needle: &str, patience: Duration) -> Option<String> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    if self.seen.len() < 10_000 {
                        self.seen.push(line.clone());
                    }
                    if hit {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Takes whatever stdout lines arrived, without keeping them (so a
    /// chat client printing the whole room never fills memory).
    pub fn drain(&mut self) {
        while self.stdout.try_recv().is_ok() {}
    }

    /// The stdout lines that arrived since the last call (at most
    /// `max`), for the caller to look at; they are not kept.
    pub fn new_lines(&mut self, max: usize) -> Vec<String> {
        self.stdout.try_iter().take(max).collect()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `patience` for it to exit by itself.
    pub fn wait(&mut self, patience: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `patience`; SIGKILL after that.
    pub fn terminate(&mut self, patience: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        signal(self.pid(), "TERM");
        let status = self.wait(patience);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Every stdout line: those seen so far and the rest, once it exited.
    pub fn output(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.seen);
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(500)) {
            all.push(line);
        }
        all
    }

    /// The count on the `sent N …` line a finished `lanlink talk` or `cam`
    /// prints ("sent 1500 packets (30.0 s of audio)", "sent 450 frames in
    /// 30.0 s …"); 0 without one.
    pub fn sent_count(&mut self) -> u64 {
        self.output()
            .iter()
            .find_map(|l| {
                l.strip_prefix("sent ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// The last stderr lines, joined, for an error message.
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let from = lines.len().saturating_sub(5);
        lines[from..].join(" | ")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// Runs `cmd` to completion (killed after `patience`); returns its exit
/// status (None if it had to be killed), stdout lines and stderr tail.
pub fn run(
    label: &str,
    cmd: Command,
    patience: Duration,
) -> Result<(Option<ExitStatus>, Vec<String>, String), String> {
    let mut p = Proc::spawn(label, cmd, false)?;
    let status = p.wait(patience);
    if status.is_none() {
        p.kill();
    }
    let out = p.output();
    Ok((status, out, p.stderr_tail()))
}
