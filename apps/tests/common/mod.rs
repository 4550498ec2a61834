//! Shared by the apps' end-to-end tests: the real `lanlink-server` and
//! `lanlink` binaries as child processes, talking over 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

/// How long any single expectation may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The `LANLINK_HOME` every server and client of this test process uses:
/// one server certificate for all (so an ephemeral port that a later server
/// reuses never looks like an impostor to a client that pinned it) and the
/// clients' pins. Servers speak TLS, as they do by default.
pub fn home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("lanlink-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test home");
        // Create the certificate once, before servers start in parallel.
        let out = Command::new(env!("CARGO_BIN_EXE_lanlink-server"))
            .env("LANLINK_HOME", &dir)
            .arg("--show-fingerprint")
            .output()
            .expect("run lanlink-server --show-fingerprint");
        assert!(out.status.success(), "{out:?}");
        dir
    })
}

/// `lanlink ARGS…` with this test process's [`home`].
pub fn lanlink_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanlink"));
    cmd.env("LANLINK_HOME", home());
    cmd
}

/// Collects a child's output lines on a channel.
pub fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
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

/// A running `lanlink-server` on an ephemeral loopback port.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The HTTP (browser) server's `HOST:PORT`, if it runs.
    pub http: Option<String>,
    /// Its page's URL as the server printed it (`https://…/` with TLS on
    /// and an `--http` without `http://`).
    pub page_url: Option<String>,
    /// The certificate's fingerprint, unless run with `--plain`.
    pub fingerprint: Option<String>,
    /// What it printed on stdout before its address.
    pub stdout: Vec<String>,
    stderr: Receiver<String>,
}

impl Server {
    /// Starts the server with extra arguments and waits until it listens.
    /// It serves HTTP only when `args` asks for it (on an ephemeral port:
    /// tests never take the fixed default), and in plain HTTP unless the
    /// address says `https://`: a bare `--http 127.0.0.1:0` becomes
    /// `http://127.0.0.1:0` (allowed on loopback), so that tests can talk
    /// to it with a plain socket or a Chromium that does not know the
    /// certificate. (`browser_https.rs` covers HTTPS, the real default.)
    pub fn start(args: &[&str]) -> Server {
        let http: &[&str] = if args.contains(&"--http") {
            &[]
        } else {
            &["--no-http"]
        };
        let args: Vec<String> = args
            .iter()
            .zip(std::iter::once(&"").chain(args.iter()))
            .map(|(arg, before)| {
                if *before == "--http" && !arg.contains("://") {
                    format!("http://{arg}")
                } else {
                    (*arg).to_owned()
                }
            })
            .collect();
        let bind: &[&str] = if args.iter().any(|a| a == "--bind") {
            &[]
        } else {
            &["--bind", "127.0.0.1:0"]
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lanlink-server"));
        cmd.args(bind).args(http).args(args);
        Server::spawn(cmd)
    }

    /// Starts `cmd` (a `lanlink-server` command line, perhaps behind
    /// `ip netns exec`) with this test process's [`home`], and waits until
    /// it listens; [`addr`](Server::addr) is then the address it printed.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .env("LANLINK_HOME", home())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lanlink-server");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let mut http = None;
        let mut page_url = None;
        let mut fingerprint = None;
        let mut printed = Vec::new();
        let addr = loop {
            let Ok(line) = stdout.recv_timeout(PATIENCE) else {
                // Not left running behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("server prints its address; printed {printed:?}");
            };
            if let Some(fp) = line.strip_prefix("TLS certificate ") {
                fingerprint = Some(fp.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("browser page: ") {
                let host = url.split_once("://").map_or(url, |(_, h)| h);
                http = host.split('/').next().map(str::to_owned);
                page_url = Some(url.trim().to_owned());
            }
            if let Some((_, rest)) = line.split_once("server listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_else(|| panic!("no address in {line:?}"))
                    .to_owned();
            }
            printed.push(line);
        };
        Server {
            child,
            addr,
            http,
            page_url,
            fingerprint,
            stdout: printed,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_timeout(&mut self.child, PATIENCE).expect("server exits after SIGTERM")
    }

    /// Waits for a log line containing `needle`.
    pub fn expect_log(&self, needle: &str) -> String {
        expect_line(&self.stderr, needle)
    }

    /// Every log line up to and including the first containing `needle`.
    pub fn log_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while let Ok(line) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no log line containing {needle:?}; saw {seen:?}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `lanlink chat` in script mode (stdin and stdout are pipes).
pub struct ChatClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl ChatClient {
    /// Starts `lanlink chat ADDR --name NAME EXTRA…` and waits until it is
    /// connected.
    pub fn join(addr: &str, name: &str, extra: &[&str]) -> ChatClient {
        let c = ChatClient::spawn(addr, name, extra);
        c.expect("-- connected to");
        c
    }

    /// Starts the client without waiting for anything.
    pub fn spawn(addr: &str, name: &str, extra: &[&str]) -> ChatClient {
        let mut cmd = lanlink_command();
        cmd.args(["chat", addr, "--name", name]).args(extra);
        ChatClient::from_command(cmd)
    }

    /// Starts `cmd`, a `lanlink chat` command line, in script mode.
    pub fn from_command(mut cmd: Command) -> ChatClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lanlink chat");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        ChatClient {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Types a line.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to client");
        stdin.flush().expect("flush");
    }

    /// Waits for an output line containing `needle`; returns it.
    pub fn expect(&self, needle: &str) -> String {
        expect_line(&self.stdout, needle)
    }

    /// Every output line up to and including the first containing `needle`.
    pub fn lines_until(&self, needle: &str) -> Vec<String> {
        self.lines_until_within(needle, PATIENCE)
    }

    /// [`ChatClient::lines_until`] with its own patience, for steps that
    /// wait on something slower than a server (a NATS cluster electing
    /// leaders after a restart).
    pub fn lines_until_within(&self, needle: &str, patience: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + patience;
        loop {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line containing {needle:?} in {patience:?}; saw {seen:?}"),
            }
        }
    }

    /// Waits for a line on stderr containing `needle`.
    pub fn expect_err(&self, needle: &str) -> String {
        expect_line(&self.stderr, needle)
    }

    /// Closes stdin (end of input) and waits for the process to exit.
    pub fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        wait_timeout(&mut self.child, PATIENCE).expect("client exits at end of input")
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self) -> ExitStatus {
        wait_timeout(&mut self.child, PATIENCE).expect("client exits")
    }

    /// Kills the process (SIGKILL): no goodbye, the socket just closes.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to [`PATIENCE`]) for a line containing `needle`; returns it.
pub fn expect_line(lines: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                panic!("no line containing {needle:?}; saw {seen:?}")
            }
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

pub fn wait_timeout(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A scratch folder on tmpfs when the machine has one (transfers measure
/// the network path, not the disk), removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// A fresh, empty folder named after `tag`.
    pub fn new(tag: &str) -> Scratch {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("lanlink-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Scratch(dir)
    }

    /// A subfolder, created.
    pub fn dir(&self, name: &str) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("create folder");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `lanlink ARGS…` to completion (bounded by [`PATIENCE`] × 6).
pub fn lanlink(args: &[&str]) -> std::process::Output {
    let mut cmd = lanlink_command();
    cmd.args(args);
    run_bounded(cmd, PATIENCE * 6)
}

/// Runs `cmd` to completion, stdin closed, output collected; kills it and
/// fails the test if it takes longer than `patience`.
pub fn run_bounded(mut cmd: Command, patience: Duration) -> std::process::Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    run_output(child, patience)
}

/// Waits up to `patience` for `child` (started with piped stdout and
/// stderr) and returns what it printed; kills it and panics if it does
/// not finish.
pub fn run_output(mut child: Child, patience: Duration) -> std::process::Output {
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    let status = wait_timeout(&mut child, patience).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the command did not finish in {patience:?}");
    });
    let collect = |rx: Receiver<String>| -> Vec<u8> {
        rx.iter().flat_map(|l| (l + "\n").into_bytes()).collect()
    };
    std::process::Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    }
}

/// `lanlink receive EXTRA… ADDR --name NAME -o DIR --yes --count 1`:
/// takes the first file offered to `name`, then ends.
pub fn receive_one(addr: &str, name: &str, dir: &Path, extra: &[&str]) -> Child {
    let dir = dir.to_str().expect("a UTF-8 path");
    let mut args = vec!["receive"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[addr, "--name", name, "-o", dir, "--yes", "--count", "1"]);
    lanlink_spawn(&args)
}

/// `lanlink cam ADDR --test-pattern` at `size` and `fps`, as `name`,
/// until the process is killed.
pub fn pattern_cam(addr: &str, size: &str, fps: &str, name: &str) -> Child {
    lanlink_spawn(&[
        "cam",
        addr,
        "--test-pattern",
        "--size",
        size,
        "--fps",
        fps,
        "--name",
        name,
    ])
}

/// Starts `lanlink ARGS…` in the background.
pub fn lanlink_spawn(args: &[&str]) -> Child {
    lanlink_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lanlink")
}

impl Server {
    /// SIGKILL: no goodbye, no cleanup.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether tmux is here (a real terminal for a test); in CI it must be.
pub fn tmux_available() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is required in CI (scripts/setup installs it)"
    );
    eprintln!("skipping: tmux is not installed (scripts/setup installs it)");
    false
}

/// A program on a real terminal: a detached tmux session running a shell
/// command, typed into with `send-keys` and read with `capture-pane`.
/// Killed on drop.
pub struct Tmux(String);

impl Tmux {
    /// Starts `command` in a `width`×`height` terminal.
    pub fn start(tag: &str, width: u16, height: u16, command: &str) -> Tmux {
        let session = Tmux(format!("lanlink-{tag}-{}", std::process::id()));
        let (w, h) = (width.to_string(), height.to_string());
        session.run(&["kill-session", "-t", &session.0]);
        session.run(&[
            "new-session",
            "-d",
            "-s",
            &session.0,
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        session
    }

    /// `lanlink chat ADDR --name NAME EXTRA…` on a 100×30 terminal, with
    /// this test process's [`home`] and the environment `env` (`NAME=VALUE`
    /// words).
    pub fn chat(tag: &str, env: &[&str], addr: &str, name: &str, extra: &[&str]) -> Tmux {
        let cmd = format!(
            "env LANLINK_HOME={} {} {} chat {addr} --name {name} {}",
            home().display(),
            env.join(" "),
            env!("CARGO_BIN_EXE_lanlink"),
            extra.join(" ")
        );
        Tmux::start(tag, 100, 30, &cmd)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the terminal shows (`escapes`: with colour codes).
    pub fn screen_with(&self, escapes: bool) -> String {
        // -J: a line the terminal wrapped comes back whole.
        let mut args = vec!["capture-pane", "-t", &self.0, "-p", "-J", "-S", "-200"];
        if escapes {
            args.push("-e");
        }
        self.run(&args)
    }

    /// What the terminal shows now, as text.
    pub fn screen(&self) -> String {
        self.screen_with(false)
    }

    /// Everything the terminal showed, scrolled-off lines included.
    pub fn scrollback(&self) -> String {
        self.run(&["capture-pane", "-t", &self.0, "-p", "-S", "-"])
    }

    /// Waits until the terminal shows `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_count(needle, 1)
    }

    /// Waits until the terminal shows `needle` at least `n` times; returns
    /// the screen.
    pub fn wait_for_count(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.matches(needle).count() >= n {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {needle:?} {n} times:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` as it is (no key names).
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.0, "-l", text]);
    }

    /// Types `keys` (tmux key names: `Enter`, `Tab`, `C-c`…).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.0.as_str()];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types a line and presses Enter.
    pub fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// Waits until the last non-blank line is `line` (a prompt, say).
    pub fn wait_for_last_line(&self, line: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.last_line() != line {
            assert!(
                Instant::now() < deadline,
                "the last line never became {line:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last non-blank line on the screen, without trailing blanks.
    pub fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_end()
            .to_owned()
    }
}

impl Tmux {
    /// The terminal's title (what an OSC 0/2 sequence would change).
    pub fn title(&self) -> String {
        self.run(&["display-message", "-p", "-t", &self.0, "#{pane_title}"])
            .trim_end()
            .to_owned()
    }

    /// Whether the command still runs (tmux ends the session with it).
    pub fn running(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-session", "-t", &self.0]);
    }
}

/// Debian's headless Chromium, for the browser tests; `None` (a skip, said
/// on stderr) where it is not installed, which CI does not allow.
pub fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (scripts/setup installs it)"
        );
        eprintln!("skipping: chromium is not installed (scripts/setup installs it)");
    }
    found
}

/// Debian's `nats-server`, for the scale-out tests; `None` (a skip, said
/// on stderr) where it is not installed, which CI does not allow.
pub fn nats_server_bin() -> Option<&'static str> {
    let found = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is required in CI (scripts/setup installs it)"
        );
        eprintln!("skipping: nats-server is not installed (scripts/setup installs it)");
    }
    found
}

/// A `nats-server` on a free loopback port, with JetStream in a scratch
/// folder; killed on drop.
pub struct NatsServer {
    child: Child,
    /// How it was started (for [`NatsServer::restart`]).
    bin: String,
    args: Vec<std::ffi::OsString>,
    /// Where JetStream keeps its streams.
    js_dir: std::path::PathBuf,
    /// Its client port.
    pub port: u16,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    _store: Scratch,
}

/// The NATS users every test NATS server has: one per lanlink server id
/// the tests use, each bound to its id by the permissions lanlink-server
/// prints (docs/SCALE-OUT.md), and `m`, for a hostile server.
pub const NATS_USERS: [&str; 5] = ["a", "b", "c", "d", "m"];

/// A nats-server configuration: `conf`, then an `authorization` block
/// with a user per [`NATS_USERS`] (password `pw-<id>`).
pub fn nats_conf(conf: &str) -> String {
    let users: Vec<String> = NATS_USERS
        .iter()
        .map(|id| {
            let permissions = lanlink_server::nats::permissions(id);
            format!("{{ user: {id}, password: pw-{id}, permissions: {permissions} }}")
        })
        .collect();
    format!(
        "{conf}\nauthorization {{ users = [\n{}\n] }}\n",
        users.join(",\n")
    )
}

/// `nats://<id>:pw-<id>@127.0.0.1:<port>`: the URL server `id` uses.
pub fn nats_url(id: &str, port: u16) -> String {
    format!("nats://{id}:pw-{id}@127.0.0.1:{port}")
}

impl NatsServer {
    /// Starts `bin` with `extra` arguments and waits until it accepts
    /// connections.
    pub fn start(bin: &str, extra: &[&str]) -> NatsServer {
        NatsServer::with_conf(bin, "", extra)
    }

    /// [`NatsServer::start`] with `conf` in its configuration (which has
    /// the users of [`nats_conf`]).
    pub fn with_conf(bin: &str, conf: &str, extra: &[&str]) -> NatsServer {
        let port = free_port();
        let store = Scratch::new(&format!("nats-{port}"));
        let conf_file = store.dir("conf").join("nats.conf");
        std::fs::write(&conf_file, nats_conf(conf)).expect("write nats.conf");
        let mut args: Vec<std::ffi::OsString> =
            ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]
                .iter()
                .map(Into::into)
                .collect();
        let js_dir = store.dir("js");
        args.push(js_dir.clone().into());
        args.push("-c".into());
        args.push(conf_file.into());
        args.extend(extra.iter().map(Into::into));
        let child = NatsServer::spawn(bin, &args, port);
        NatsServer {
            child,
            bin: bin.to_owned(),
            args,
            js_dir,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        }
    }
}

impl NatsServer {
    fn spawn(bin: &str, args: &[std::ffi::OsString], port: u16) -> Child {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("nats-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Kills the server and starts it again on the same port with an
    /// empty JetStream store: as a node that lost its storage, or one
    /// with memory storage, comes back (every stream and consumer gone).
    pub fn restart_empty(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.js_dir);
        std::fs::create_dir_all(&self.js_dir).expect("an empty JetStream store");
        self.child = NatsServer::spawn(&self.bin, &self.args, self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A cluster of `nats-server` nodes on loopback, with JetStream; nodes can
/// be killed and restarted on the same ports and stores.
pub struct NatsCluster {
    bin: &'static str,
    nodes: Vec<Option<Child>>,
    ports: Vec<u16>,
    routes: Vec<u16>,
    store: Scratch,
}

impl NatsCluster {
    /// Starts `n` nodes routed to each other.
    pub fn start(bin: &'static str, n: usize) -> NatsCluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let store = Scratch::new(&format!("nats-cluster-{}", ports[0]));
        let mut cluster = NatsCluster {
            bin,
            nodes: (0..n).map(|_| None).collect(),
            ports,
            routes,
            store,
        };
        for i in 0..n {
            cluster.restart(i);
        }
        cluster
    }

    /// Every node's URL for server `id`, comma-separated, node `first`
    /// first.
    pub fn urls(&self, id: &str, first: usize) -> String {
        let n = self.ports.len();
        (0..n)
            .map(|i| nats_url(id, self.ports[(first + i) % n]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `i` (SIGKILL) and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` (again) and waits until it accepts connections.
    pub fn restart(&mut self, i: usize) {
        let others: Vec<String> = (0..self.routes.len())
            .filter(|j| *j != i)
            .map(|j| format!("nats://127.0.0.1:{}", self.routes[j]))
            .collect();
        let conf = self.store.dir("conf").join(format!("n{i}.conf"));
        std::fs::write(&conf, nats_conf("")).expect("write nats.conf");
        let child = Command::new(self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.ports[i].to_string()])
            .args(["-n", &format!("n{i}"), "--cluster_name", "lanlink"])
            .arg("-cluster")
            .arg(format!("nats://127.0.0.1:{}", self.routes[i]))
            .arg("-routes")
            .arg(others.join(","))
            .arg("-js")
            .arg("-sd")
            .arg(self.store.dir(&format!("n{i}")))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.nodes[i] = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.ports[i])).is_err() {
            assert!(Instant::now() < deadline, "nats node {i} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A raw plain-TCP publisher: after `hello` and the stream's announcement
/// (sent on stream 1), `frame(seq)` for seq 0, 1, … one every `period`,
/// `count` at most, until dropped or the server stops reading. Counts the
/// frame payload bytes it sent; dropping it stops and joins its thread.
pub struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    /// Connects to `addr` and starts publishing.
    pub fn start<M: Into<lanlink_proto::Message>>(
        addr: &str,
        hello: lanlink_proto::control::Hello,
        announce: impl Into<lanlink_proto::Message>,
        count: u32,
        period: Duration,
        frame: impl Fn(u32) -> (M, usize) + Send + 'static,
    ) -> Flood {
        use lanlink_proto::Frame;
        use std::sync::atomic::Ordering;
        let mut s = std::net::TcpStream::connect(addr).expect("flood connects");
        for f in [Frame::control(hello), Frame::new(1, announce)] {
            s.write_all(&f.to_bytes().expect("encodes"))
                .expect("flood says hello");
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, counted) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            for seq in 0..count {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let (message, payload) = frame(seq);
                let Ok(bytes) = Frame::new(1, message).to_bytes() else {
                    break;
                };
                if s.write_all(&bytes).is_err() {
                    break;
                }
                counted.fetch_add(payload, Ordering::Relaxed);
                let due = started + period * (seq + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        Flood {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Payload bytes sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
