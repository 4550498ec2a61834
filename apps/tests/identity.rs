//! One identity per person, end to end with the real binaries on
//! 127.0.0.1: names default to `$USER`, streams to `USER-mic` / `USER-cam`
//! (the next free one when taken), and a person's `receive` runs beside
//! their chat.

mod common;

use std::process::{Child, Stdio};

use common::{lanlink_command, lines_of, wait_timeout, ChatClient, Scratch, Server, PATIENCE};
use crossbeam_channel::Receiver;

/// `lanlink ARGS…` as `user` ($USER), stdout as lines.
fn spawn_as(user: &str, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = lanlink_command()
        .env("USER", user)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lanlink");
    let out = lines_of(child.stdout.take().expect("stdout"));
    (child, out)
}

/// Waits for `child` to exit; its stdout lines and stderr.
fn finish(mut child: Child, out: &Receiver<String>) -> (bool, Vec<String>, String) {
    let status = wait_timeout(&mut child, PATIENCE * 2).expect("exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.success(), out.try_iter().collect(), err)
}

fn wait_line(out: &Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    while let Ok(line) = out.recv_timeout(PATIENCE) {
        if line.contains(needle) {
            return line;
        }
        seen.push(line);
    }
    panic!("no line containing {needle:?}; saw {seen:?}");
}

#[test]
fn default_stream_names_keep_people_and_their_streams_apart() {
    let t = Scratch::new("identity-streams");
    let wav = t.0.join("out.wav");
    let server = Server::start(&[]);
    let addr = server.addr.as_str();
    let (listen, heard) = spawn_as(
        "zed",
        &[
            "listen",
            addr,
            "--output-file",
            wav.to_str().unwrap(),
            "--seconds",
            "20",
        ],
    );
    wait_line(&heard, "listening");

    let tone = |user: &str, hz: &str, secs: &str| {
        spawn_as(user, &["talk", addr, "--tone", hz, "--seconds", secs])
    };
    let (first, first_out) = tone("ada", "440", "3");
    wait_line(&first_out, "talking as ada-mic ");

    // A name given on purpose is not changed: taken is taken.
    let (explicit, explicit_out) =
        spawn_as("ada", &["talk", addr, "--tone", "300", "--name", "ada-mic"]);
    let (ok, _, err) = finish(explicit, &explicit_out);
    assert!(!ok && err.contains("already published"), "{err}");

    // A second talker, a camera and another user, all on the defaults, at once.
    let (second, second_out) = tone("ada", "880", "2");
    let (bob, bob_out) = tone("bob", "660", "2");
    // Two of cy's started at the same moment: one gets cy-mic, the other
    // cy-mic-2 (picked from what it saw, or after the server said taken).
    let (cy1, cy1_out) = tone("cy", "500", "2");
    let (cy2, cy2_out) = tone("cy", "520", "2");
    let (cam, cam_out) = spawn_as(
        "ada",
        &[
            "cam",
            addr,
            "--test-pattern",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--frames",
            "20",
        ],
    );
    let named = |lines: &[String], prefix: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    for (child, out, prefix, expected) in [
        (second, second_out, "talking as ", "ada-mic-2"),
        (bob, bob_out, "talking as ", "bob-mic"),
        (cam, cam_out, "publishing ", "ada-cam:"),
        (first, first_out, "talking as ", "ada-mic"),
    ] {
        let (ok, lines, err) = finish(child, &out);
        assert!(ok, "{lines:?} {err}");
        let names = named(&lines, prefix);
        // The first talker's line was read above; the others' last name is
        // the one used (an earlier one was refused by a simultaneous start).
        if expected != "ada-mic" {
            assert_eq!(
                names.last().map(String::as_str),
                Some(expected),
                "{lines:?}"
            );
        }
    }
    let mut cy_names = Vec::new();
    for (child, out) in [(cy1, cy1_out), (cy2, cy2_out)] {
        let (ok, lines, err) = finish(child, &out);
        assert!(ok, "{lines:?} {err}");
        cy_names.extend(named(&lines, "talking as ").pop());
    }
    cy_names.sort();
    assert_eq!(cy_names, ["cy-mic", "cy-mic-2"]);
    let (ok, report, err) = finish(listen, &heard);
    assert!(ok, "{err}");
    for stream in [
        "+ ada-mic (ada)",
        "+ ada-mic-2 (ada)",
        "+ bob-mic (bob)",
        "+ cy-mic (cy)",
        "+ cy-mic-2 (cy)",
    ] {
        assert!(
            report.iter().any(|l| l == stream),
            "{stream} not in {report:?}"
        );
    }
    assert!(server.terminate().success());
}

#[test]
fn a_persons_receive_runs_beside_their_chat_and_gets_the_files() {
    let t = Scratch::new("identity-receive");
    let (src, rx) = (t.dir("src"), t.dir("rx"));
    std::fs::write(src.join("notes.txt"), "for bob only\n").unwrap();
    let server = Server::start(&[]);
    let addr = server.addr.as_str();

    // Two users who both keep the default name: $USER.
    let chat = |user: &str| {
        let mut cmd = lanlink_command();
        cmd.env("USER", user).args(["chat", addr]);
        ChatClient::from_command(cmd)
    };
    let mut bob = chat("bob");
    bob.expect("-- connected to lanlink as bob");
    let mut ada = chat("ada");
    ada.expect("-- connected to lanlink as ada");
    bob.expect("-- ada joined lobby");

    // bob's receive, under bob's name, while bob chats.
    let (receive, received) = spawn_as(
        "bob",
        &[
            "receive",
            addr,
            "-o",
            rx.to_str().unwrap(),
            "--yes",
            "--count",
            "1",
        ],
    );
    wait_line(&received, "waiting for files as bob");
    let (send, sent) = spawn_as(
        "ada",
        &[
            "send",
            addr,
            "--to",
            "bob",
            src.join("notes.txt").to_str().unwrap(),
        ],
    );
    let (ok, lines, err) = finish(send, &sent);
    assert!(ok, "{lines:?} {err}");
    assert!(lines.iter().any(|l| l.contains("delivered")), "{lines:?}");
    let (ok, lines, err) = finish(receive, &received);
    assert!(ok, "{lines:?} {err}");
    assert_eq!(
        std::fs::read_to_string(rx.join("notes.txt")).unwrap(),
        "for bob only\n"
    );

    // The chat went on, and the offer went to the receiver, not to it.
    ada.say("did it arrive?");
    let seen = bob.lines_until("<ada> did it arrive?");
    assert!(seen.iter().all(|l| !l.contains("offers")), "{seen:?}");
    bob.say("/who");
    bob.expect("-- lobby: ada, bob");
    assert!(bob.finish().success());
    assert!(ada.finish().success());
    assert!(server.terminate().success());
}
