//! A newcomer's first run, through the real binaries: `--version` names
//! each program, completions for the shells, the server's fingerprint in a
//! short grouped form (and as a QR code on a terminal) that the client
//! shows again when it pins, and `scripts/run` needing only what building
//! and running need.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lanlink_command, tmux_available, Scratch, Server, Tmux};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Characters of a QR code drawn in half blocks.
fn has_qr(s: &str) -> bool {
    s.contains('▀') && s.contains('▄') && s.contains('█')
}

fn grouped(fingerprint: &str) -> String {
    let fp: lanlink_transport::Fingerprint = fingerprint.parse().unwrap();
    fp.grouped()
}

#[test]
fn version_names_the_program_and_completions_are_printed() {
    for (exe, name) in [
        (env!("CARGO_BIN_EXE_lanlink"), "lanlink"),
        (env!("CARGO_BIN_EXE_lanlink-server"), "lanlink-server"),
    ] {
        let out = Command::new(exe).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            text(&out.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
    for (shell, marker, option) in [
        ("bash", "_lanlink()", "--server"),
        ("zsh", "#compdef lanlink", "--server"),
        ("fish", "complete -c lanlink", "-l server"),
    ] {
        let out = lanlink_command()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains(marker) && script.contains("servers") && script.contains(option),
            "{shell}: {script}"
        );
    }
}

#[test]
fn the_fingerprint_is_shown_short_and_the_client_shows_it_again_when_it_pins() {
    let t = Scratch::new("first-run");
    let share = t.dir("share");
    std::fs::write(share.join("hello.txt"), "hi").unwrap();
    let server = Server::start(&["--share", share.to_str().unwrap()]);
    let fingerprint = server.fingerprint.clone().unwrap();
    let short = grouped(&fingerprint);
    assert_eq!(short.len(), 8 * 4 + 7, "{short}");
    // Not a terminal: the short form, no QR code.
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l.trim() == format!("short form {short} (clients show it too)")),
        "{:?}",
        server.stdout
    );
    assert!(
        !server.stdout.iter().any(|l| has_qr(l)),
        "{:?}",
        server.stdout
    );

    // A client meeting it for the first time pins it and shows the same.
    let out = lanlink_command()
        .env("LANLINK_HOME", t.dir("client"))
        .args(["ls", &server.addr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("short form {short}")), "{err}");
    assert!(text(&out.stdout).contains("hello.txt"));
    assert!(server.terminate().success());
}

/// On a terminal (tmux) the server also draws its fingerprint as a QR code.
#[test]
fn on_a_terminal_the_server_draws_a_qr_code() {
    if !tmux_available() {
        return;
    }
    let cmd = format!(
        "env LANLINK_HOME={} {} --bind 127.0.0.1:0 --no-http",
        common::home().display(),
        env!("CARGO_BIN_EXE_lanlink-server"),
    );
    let terminal = Tmux::start("qr", 120, 60, &cmd);
    let screen = terminal.wait_for("listening on");
    drop(terminal);
    assert!(screen.contains("listening on"), "{screen}");
    assert!(has_qr(&screen), "no QR code on the terminal:\n{screen}");
    assert!(screen.contains("short form "), "{screen}");
}

/// `scripts/run` installs only what building and running need: no browser,
/// X server or sound server (those are for the tests), and it builds both
/// programs.
#[test]
fn running_needs_only_the_build_and_run_packages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let list = |set: &str| {
        let out = Command::new("bash")
            .arg(root.join("scripts/setup"))
            .args(["--list", set])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let build = list("build");
    let test = list("test");
    for test_only in ["chromium", "xvfb", "pulseaudio", "tmux"] {
        assert!(
            !build.lines().any(|p| p == test_only),
            "{test_only} in {build}"
        );
        assert!(
            test.lines().any(|p| p == test_only),
            "{test_only} not in {test}"
        );
    }
    for needed in ["build-essential", "libasound2-dev"] {
        assert!(build.lines().any(|p| p == needed), "{build}");
    }
    let run = std::fs::read_to_string(root.join("scripts/run")).unwrap();
    assert!(
        run.contains("scripts/setup --build")
            && run.contains("cargo build --release -p lanlink-apps --bins"),
        "{run}"
    );
    let syntax = Command::new("bash")
        .args(["-n", root.join("scripts/run").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(syntax.success());
}
