//! End to end: the real server and real `lanlink chat` processes on
//! 127.0.0.1, in script mode (one line per event on stdout) and on a real
//! terminal (tmux).

mod common;

use common::{tmux_available, ChatClient, Server, Tmux};

#[test]
fn three_people_chat() {
    let server = Server::start(&["--motd", "welcome to the LAN"]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    ada.expect("-- welcome to the LAN");
    let mut bob = ChatClient::join(&server.addr, "bob", &[]);
    let cat = ChatClient::join(&server.addr, "cat", &[]);
    ada.expect("-- bob joined lobby");
    ada.expect("-- cat joined lobby");
    bob.expect("-- cat joined lobby");

    // A room message reaches everyone but its sender.
    ada.say("hello everyone");
    assert_eq!(bob.expect("hello everyone"), "[lobby] <ada> hello everyone");
    assert_eq!(cat.expect("hello everyone"), "[lobby] <ada> hello everyone");
    ada.say("/me waves");
    bob.expect("[lobby] * ada waves");

    // A private message reaches only its target.
    ada.say("/msg bob psst");
    assert_eq!(bob.expect("psst"), "[pm] <ada> psst");
    bob.say("after the whisper");
    let cat_saw = cat.lines_until("after the whisper");
    assert!(
        cat_saw.iter().all(|l| !l.contains("psst")),
        "cat saw the whisper: {cat_saw:?}"
    );
    // The sender does not get its own messages back.
    let ada_saw = ada.lines_until("after the whisper");
    assert!(
        ada_saw.iter().all(|l| !l.contains("hello everyone")),
        "{ada_saw:?}"
    );

    // /who lists the room.
    bob.say("/who");
    bob.expect("-- lobby: ada, bob, cat");

    // A killed client is reported as gone to the others.
    cat.kill();
    assert!(ada.expect("-- cat left lobby").contains("cat left lobby"));
    bob.expect("-- cat left lobby");

    // End of input: the client delivers what it sent, says goodbye, exits 0.
    bob.say("last words");
    let status = bob.finish();
    assert!(status.success(), "{status:?}");
    ada.expect("[lobby] <bob> last words");
    ada.expect("-- bob left lobby (quit");

    let status = ada.finish();
    assert!(status.success());
    assert!(server.terminate().success());
}

#[test]
fn newcomers_get_recent_history() {
    let server = Server::start(&["--history", "2"]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    for i in 1..=3 {
        ada.say(&format!("message {i}"));
    }
    // A second client as a sync point: once it sees ada's roster change the
    // three messages have been handled.
    ada.say("/who");
    // The first roster line is the greeting's; the second answers /who,
    // which the server handles after the three messages.
    ada.expect("-- lobby: ada");
    ada.expect("-- lobby: ada");
    let bob = ChatClient::spawn(&server.addr, "bob", &[]);
    let lines = bob.lines_until("-- lobby:");
    let history: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("<ada> message"))
        .collect();
    assert_eq!(
        history,
        ["[lobby] <ada> message 2", "[lobby] <ada> message 3"],
        "{lines:?}"
    );
    drop(ada);
    drop(bob);
    assert!(server.terminate().success());
}

#[test]
fn rooms_nick_changes_and_errors() {
    let server = Server::start(&[]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    let mut bob = ChatClient::join(&server.addr, "bob", &["--room", "ops"]);
    ada.expect("-- bob joined lobby");
    // bob's join of ops races ada's unless we wait for it.
    bob.expect("-- ops: bob");

    ada.say("/join ops");
    bob.expect("-- ada joined ops");
    ada.say("in ops now");
    assert_eq!(bob.expect("in ops now"), "[ops] <ada> in ops now");

    bob.say("/nick ada");
    bob.expect("already taken");
    bob.say("/nick robert");
    ada.expect("-- bob is now known as robert");

    ada.say("/msg nobody hi");
    ada.expect("no user named \"nobody\"");

    let long = "x".repeat(5000);
    ada.say(&long);
    ada.expect("longer than the limit of 4096 bytes");
    // Refused lines make a script's exit status 1.
    assert_eq!(ada.finish().code(), Some(1));
    assert_eq!(bob.finish().code(), Some(1), "its /nick ada was refused");
    assert!(server.terminate().success());
}

#[test]
fn a_taken_name_or_wrong_token_is_refused_clearly() {
    let server = Server::start(&["--token", "letmein"]);
    let ada = ChatClient::join(&server.addr, "ada", &["--token", "letmein"]);

    let twin = ChatClient::spawn(&server.addr, "ADA", &["--token", "letmein"]);
    let said = twin.expect_err("already taken");
    assert!(said.ends_with("choose another with --name NAME"), "{said}");
    assert_eq!(twin.wait().code(), Some(1));

    let intruder = ChatClient::spawn(&server.addr, "eve", &["--token", "guess"]);
    intruder.expect_err("wrong access token");
    assert_eq!(intruder.wait().code(), Some(1));

    let anonymous = ChatClient::spawn(&server.addr, "eve", &[]);
    anonymous.expect_err("requires an access token");
    assert_eq!(anonymous.wait().code(), Some(1));

    server.expect_log("wrong access token");
    drop(ada);
    assert!(server.terminate().success());
}

/// A server stopping says goodbye to everyone. A script whose input is
/// still open when that happens exits 1: the lines it would have read next
/// can no longer be delivered (it used to exit 0, so `(echo a; sleep 1;
/// echo b) | lanlink chat` reported success without sending `b`).
#[test]
fn sigterm_says_goodbye_to_everyone_and_scripts_with_input_left_fail() {
    let server = Server::start(&[]);
    let ada = ChatClient::join(&server.addr, "ada", &[]);
    let bob = ChatClient::join(&server.addr, "bob", &[]);
    ada.expect("-- bob joined lobby");
    let status = server.terminate();
    assert!(status.success(), "server exit: {status:?}");
    for c in [&ada, &bob] {
        c.expect_err("server shutting down");
        c.expect_err("the connection ended before the end of the input");
    }
    assert_eq!(ada.wait().code(), Some(1));
    assert_eq!(bob.wait().code(), Some(1));
}

/// The browser page's address given where the lanlink port was meant
/// (as it is, or pasted as a URL) is told apart: it said "not a lanlink
/// frame: magic bytes [48, 54]", or tried `[https://…]:7878`
/// (helper-79's usability review).
#[test]
fn the_browser_port_is_told_apart() {
    let server = Server::start(&["--http", "https://127.0.0.1:0"]);
    let http = server.http.clone().expect("a browser page");
    for addr in [http.clone(), format!("https://{http}/")] {
        let c = ChatClient::spawn(&addr, "ada", &[]);
        c.expect_err("that is a web server (the browser page's port?)");
        assert_eq!(c.wait().code(), Some(1));
    }
    assert!(server.terminate().success());
}

#[test]
fn nobody_listening_is_a_clear_error() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = ChatClient::spawn(&format!("127.0.0.1:{port}"), "ada", &[]);
    c.expect_err("could not connect to 127.0.0.1");
    assert_eq!(c.wait().code(), Some(1));
}

/// On a real terminal (tmux), lines arriving while the user types are printed
/// above the prompt and the half-typed line survives intact.
#[test]
fn terminal_mode_keeps_the_line_being_typed() {
    if !tmux_available() {
        return;
    }
    let server = Server::start(&[]);
    let ada = Tmux::chat("typing", &[], &server.addr, "ada", &[]);
    ada.wait_for("[lobby]>");
    ada.type_text("half typed");
    ada.wait_for("[lobby]> half typed");
    let mut bob = ChatClient::join(&server.addr, "bob", &[]);
    bob.say("interrupting message");
    ada.wait_for("<bob> interrupting message");
    ada.wait_for_last_line("[lobby]> half typed");
    let s = ada.screen();
    assert!(
        !s.contains("half typed[lobby]") && !s.contains("half typed-- "),
        "{s}"
    );
    // Finishing the line sends it whole.
    ada.line(" line");
    assert_eq!(
        bob.expect("half typed line"),
        "[lobby] <ada> half typed line"
    );
    drop((ada, bob));
    assert!(server.terminate().success());
}

/// `HH:MM` in UTC, `minutes_ago` minutes ago.
fn utc_clock(minutes_ago: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - minutes_ago * 60;
    format!("{:02}:{:02}", now / 3600 % 24, now / 60 % 60)
}

/// The chat on a terminal, as an IRC user expects it: the time in front of
/// each line, nicknames in colour (not with NO_COLOR), a refused join
/// leaving the prompt where it was, a join always showing who is there, a
/// room one is in never replaying its history, Tab completing commands and
/// nicknames, and lines typed ahead all handled.
#[test]
fn terminal_chat_basics_of_an_irc_client() {
    if !tmux_available() {
        return;
    }
    let server = Server::start(&[]);
    let mut bob = ChatClient::join(
        &server.addr,
        "bob",
        &["--room", "ops", "--room-password", "pw"],
    );
    bob.expect("-- ops: bob");
    bob.say("said before ada came");
    let ada = Tmux::chat("irc", &["TZ=UTC"], &server.addr, "ada", &[]);
    ada.wait_for("[lobby]>");

    ada.line("/join ops wrong");
    ada.wait_for("wrong or missing password");
    ada.wait_for_last_line("[lobby]>");

    ada.line("/join ops pw");
    let s = ada.wait_for("-- ops: ada, bob");
    ada.wait_for_last_line("[ops]>");
    let said = s
        .lines()
        .find(|l| l.contains("<bob> said before ada came"))
        .unwrap_or_else(|| panic!("no history line:\n{s}"));
    let stamp = &said[..5];
    assert!(
        stamp == utc_clock(0) || stamp == utc_clock(1),
        "{said:?} does not start with the time"
    );
    let coloured = ada.screen_with(true);
    let said = coloured
        .lines()
        .find(|l| l.contains("said before ada came"))
        .unwrap();
    assert!(
        said.contains("<\u{1b}["),
        "the nickname has no colour: {said:?}"
    );

    // Joining a room one is in switches to it and shows who is there, and
    // never replays its history.
    // (The greeting showed the lobby's roster once already.)
    ada.line("/join lobby");
    ada.wait_for("-- talking in lobby");
    ada.wait_for_count("-- lobby: ada, bob", 2);
    ada.wait_for_last_line("[lobby]>");
    ada.line("/join ops");
    ada.wait_for("-- talking in ops");
    let s = ada.wait_for_count("-- ops: ada, bob", 2);
    ada.wait_for_last_line("[ops]>");
    assert_eq!(s.matches("said before ada came").count(), 1, "{s}");

    // Tab completes commands and nicknames.
    ada.type_text("/wh");
    ada.keys(&["Tab"]);
    // (The screen shows no trailing blanks.)
    ada.wait_for("[ops]> /who");
    ada.wait_for_last_line("[ops]> /who");
    ada.keys(&["C-u"]);
    ada.type_text("b");
    ada.keys(&["Tab"]);
    ada.wait_for("[ops]> bob:");
    ada.line("tab worked");
    assert_eq!(bob.expect("tab worked"), "[ops] <ada> bob: tab worked");

    // Lines typed faster than they are handled are all handled.
    ada.keys(&[
        "/join lobby",
        "Enter",
        "typed ahead",
        "Enter",
        "/who",
        "Enter",
    ]);
    assert_eq!(bob.expect("typed ahead"), "[lobby] <ada> typed ahead");

    // Leaving the room one talks in: the prompt says where the next line
    // goes, and it goes there (the prompt used to stay on the room left,
    // and the line went to another).
    ada.line("/join ops");
    ada.wait_for_last_line("[ops]>");
    ada.line("/leave");
    ada.wait_for("-- talking in lobby");
    ada.wait_for_last_line("[lobby]>");
    ada.line("after leaving");
    assert_eq!(bob.expect("after leaving"), "[lobby] <ada> after leaving");

    // NO_COLOR: no colour codes at all.
    let cat = Tmux::chat("nocolor", &["NO_COLOR=1"], &server.addr, "cat", &[]);
    cat.wait_for("[lobby]>");
    bob.say("/join lobby");
    bob.say("plain for cat");
    cat.wait_for("<bob> plain for cat");
    assert!(
        !cat.screen_with(true).contains('\u{1b}'),
        "{}",
        cat.screen_with(true)
    );
    drop((ada, bob, cat));
    assert!(server.terminate().success());
}

/// On a terminal, a lost connection is shown at once with its reason;
/// the client reconnects with growing delays and joins its room again,
/// with its password.
#[test]
fn terminal_mode_reconnects_and_rejoins_its_room() {
    if !tmux_available() {
        return;
    }
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let ada = Tmux::chat(
        "reconnect",
        &[],
        &addr,
        "ada",
        &["--room", "ops", "--room-password", "pw"],
    );
    ada.wait_for("[ops]>");
    server.kill();
    ada.wait_for("-- disconnected:");
    ada.wait_for("reconnecting in 1 s (attempt 1");
    // The first attempt fails (nothing listens), the next waits longer.
    ada.wait_for("reconnecting in 2 s (attempt 2");
    let server = Server::start(&["--bind", &addr]);
    ada.wait_for("-- reconnected to");
    // ada is back in ops, which she re-created with its password.
    let mut bob = ChatClient::join(&addr, "bob", &["--room", "ops", "--room-password", "pw"]);
    bob.expect("-- ops: ada, bob");
    let eve = ChatClient::spawn(&addr, "eve", &["--room", "ops"]);
    eve.expect("wrong or missing password");
    assert_eq!(eve.wait().code(), Some(1));
    ada.line("back again");
    assert_eq!(bob.expect("back again"), "[ops] <ada> back again");
    bob.say("welcome back");
    ada.wait_for("<bob> welcome back");
    ada.wait_for_last_line("[ops]>");
    drop((ada, bob));
    assert!(server.terminate().success());
}

/// On a terminal, a reconnect the server refuses for good (restarted, it
/// now wants an access token) is not tried again and again: the client
/// says why and ends, as `Resuming` decides for transfers.
#[test]
fn terminal_mode_stops_reconnecting_when_refused_for_good() {
    if !tmux_available() {
        return;
    }
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let cmd = format!(
        "env LANLINK_HOME={} {} chat {addr} --name ada --room ops; echo \"ended $?\"; sleep 60",
        common::home().display(),
        env!("CARGO_BIN_EXE_lanlink"),
    );
    let ada = Tmux::start("refused-for-good", 100, 30, &cmd);
    ada.wait_for("[ops]>");
    server.kill();
    ada.wait_for("reconnecting in 1 s (attempt 1");
    let server = Server::start(&["--bind", &addr, "--token", "sesame"]);
    let screen = ada.wait_for("!! refused by server");
    assert!(screen.contains("token"), "{screen}");
    // Said at once that it will not connect again (it said "reconnecting"
    // to the next line).
    ada.wait_for("-- not reconnecting: trying again would not help");
    // The next line typed finds it over (readline is not interrupted).
    ada.line("anyone?");
    ada.wait_for("not connected, and not reconnecting");
    let screen = ada.wait_for("ended ");
    assert!(!screen.contains("ended 0"), "{screen}");
    assert!(!screen.contains("-- reconnected"), "{screen}");
    drop(ada);
    assert!(server.terminate().success());
}

/// A script's lines are never dropped by the rate limit: the client waits
/// as long as the server says and sends them again, in order, and exits 0.
/// (The requests by which it learns that a line arrived are limited too.)
#[test]
fn script_mode_waits_out_the_rate_limit() {
    let server = Server::start(&[
        "--rate-burst",
        "3",
        "--rate-per-second",
        "20",
        "--request-burst",
        "4",
        "--requests-per-second",
        "10",
    ]);
    let mut bob = ChatClient::join(&server.addr, "bob", &[]);
    bob.say("/join q7");
    bob.expect("-- q7: bob");
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    bob.expect("-- ada joined lobby");
    for i in 0..15 {
        ada.say(&format!("line {i}"));
    }
    ada.say("/msg bob and a whisper");
    // Joins past the requests' burst are refused as too fast: sent again
    // too, so the last line goes to the room the script last joined.
    for i in 0..8 {
        ada.say(&format!("/join q{i}"));
    }
    ada.say("in the last room");
    let status = ada.finish();
    assert!(status.success(), "{status:?}");
    let lines = bob.lines_until("[q7] <ada> in the last room");
    let got: Vec<_> = lines.iter().filter(|l| l.contains("<ada> line")).collect();
    let wanted: Vec<_> = (0..15).map(|i| format!("[lobby] <ada> line {i}")).collect();
    assert_eq!(got, wanted.iter().collect::<Vec<_>>());
    assert!(
        lines.iter().any(|l| l.contains("and a whisper")),
        "{lines:?}"
    );
    drop(bob);
    assert!(server.terminate().success());
}

/// What a script could not deliver makes its exit status 1, and says so;
/// so does a lost connection.
#[test]
fn script_mode_fails_when_a_line_is_not_delivered() {
    // Two messages, then never again.
    let server = Server::start(&["--rate-burst", "2", "--rate-per-second", "0"]);
    let bob = ChatClient::join(&server.addr, "bob", &[]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    for line in ["one", "two", "three"] {
        ada.say(line);
    }
    ada.expect_err("not delivered");
    let status = ada.finish();
    assert_eq!(status.code(), Some(1));
    let lines = bob.lines_until("<ada> two");
    assert!(lines.iter().any(|l| l.contains("<ada> one")), "{lines:?}");
    // A killed server: exit 1 (a goodbye from a server shutting down is 0).
    server.kill();
    bob.expect_err("-- disconnected");
    assert_eq!(bob.wait().code(), Some(1));
}

/// A script whose `/join` is refused (a wrong password) stops there: the
/// lines after it were meant for that room, and do not go to the room it
/// is still in.
#[test]
fn a_script_stops_at_a_join_refused() {
    let server = Server::start(&[]);
    let carol = ChatClient::join(
        &server.addr,
        "carol",
        &["--room", "vault", "--room-password", "pw"],
    );
    carol.expect("-- vault: carol");
    let bob = ChatClient::join(&server.addr, "bob", &[]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    bob.expect("-- ada joined lobby");
    ada.say("before");
    ada.say("/join vault nope");
    ada.say("meant for the vault");
    ada.expect_err("stopping: the lines after it are not sent");
    assert_eq!(ada.finish().code(), Some(1));
    let lines = bob.lines_until("-- ada left lobby");
    assert!(
        lines.iter().any(|l| l.contains("<ada> before")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("meant for")), "{lines:?}");
    // The same for a /join the client could not even send.
    let mut cy = ChatClient::join(&server.addr, "cy", &[]);
    bob.expect("-- cy joined lobby");
    cy.say("/join");
    cy.say("meant for no room");
    cy.expect_err("stopping: the lines after it are not sent");
    assert_eq!(cy.finish().code(), Some(1));
    let lines = bob.lines_until("-- cy left lobby");
    assert!(!lines.iter().any(|l| l.contains("meant for")), "{lines:?}");
    drop((bob, carol));
    assert!(server.terminate().success());
}

/// On a terminal, the roster that answers a join or a `/who` arrives just
/// after Enter, between two prompts: every one of them must stay on the
/// screen (it used to be wiped by the next prompt now and then).
#[test]
fn terminal_shows_the_roster_of_every_join_and_who() {
    if !common::tmux_available() {
        return;
    }
    // 30 joins, 30 leaves and 10 /who in a few seconds: above the default
    // request burst, which is not what this test is about.
    let server = Server::start(&["--request-burst", "100", "--address-request-burst", "100"]);
    // Lines compared whole: without the time in front.
    let cmd = format!(
        "env LANLINK_HOME={} {} chat {} --name ada --timestamps never",
        common::home().display(),
        env!("CARGO_BIN_EXE_lanlink"),
        server.addr
    );
    let tmux = common::Tmux::start("rosters", 100, 20, &cmd);
    tmux.wait_for("[lobby]>");
    for i in 1..=30 {
        tmux.keys(&["-l", &format!("/join r{i}")]);
        tmux.keys(&["Enter"]);
        tmux.wait_for(&format!("[r{i}]>"));
        // Leaving keeps this connection in two rooms at most.
        tmux.keys(&["-l", &format!("/leave r{i}")]);
        tmux.keys(&["Enter"]);
        tmux.wait_for(&format!("-- ada left r{i}"));
    }
    // The lobby's roster: the greeting's, the re-join's, then one per /who.
    let lobby_rosters = |text: &str| {
        text.lines()
            .filter(|l| l.trim_end() == "-- lobby: ada")
            .count()
    };
    // Each line typed once the prompt is back (typing ahead of it is not
    // what this test is about).
    let answered = |rosters: usize| {
        let deadline = std::time::Instant::now() + common::PATIENCE;
        loop {
            let text = tmux.scrollback();
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            if lobby_rosters(&text) >= rosters && last.map(str::trim_end) == Some("[lobby]>") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{rosters} lobby rosters never showed:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    tmux.keys(&["-l", "/join lobby"]);
    tmux.keys(&["Enter"]);
    answered(2);
    for k in 0..10 {
        tmux.keys(&["-l", "/who"]);
        tmux.keys(&["Enter"]);
        answered(3 + k);
    }
    let missing = |text: &str| -> Vec<String> {
        let mut missing: Vec<String> = (1..=30)
            .map(|i| format!("-- r{i}: ada"))
            .filter(|roster| !text.lines().any(|l| l.trim_end() == roster))
            .collect();
        // The greeting's, the re-join's and ten answers to /who.
        let lobby = lobby_rosters(text);
        if lobby < 12 {
            missing.push(format!("{} of 12 lobby rosters", lobby));
        }
        missing
    };
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        let text = tmux.scrollback();
        let missing = missing(&text);
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing on the terminal: {missing:?}\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(tmux);
    assert!(server.terminate().success());
}

/// Joining a room one is already in answers with its roster only: the
/// history is not replayed.
#[test]
fn rejoining_a_room_shows_the_roster_without_replaying_history() {
    let server = Server::start(&[]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    let mut bob = ChatClient::join(&server.addr, "bob", &[]);
    ada.expect("-- bob joined lobby");
    bob.say("old news");
    ada.expect("[lobby] <bob> old news");
    ada.say("/join lobby");
    ada.say("/join LOBBY");
    // A sync point after both joins: a message bob sends once ada's
    // second join has been handled (the roster of the first one is seen).
    let first = ada.lines_until("-- lobby: ada, bob");
    let second = ada.lines_until("-- lobby: ada, bob");
    bob.say("fresh news");
    let after = ada.lines_until("fresh news");
    for line in first.iter().chain(&second).chain(&after) {
        assert!(!line.contains("old news"), "history replayed: {line:?}");
    }
    // A newcomer still gets it.
    let carol = ChatClient::spawn(&server.addr, "carol", &[]);
    carol.expect("[lobby] <bob> old news");
    drop((ada, bob, carol));
    assert!(server.terminate().success());
}

/// `/ls` in the chat shows the server's file names with nothing in them
/// acting on the terminal (a share may hold any name the file system
/// takes, escape sequences included), as `lanlink ls` does.
#[test]
fn chat_ls_shows_hostile_file_names_escaped() {
    let share = std::env::temp_dir().join(format!("lanlink-chat-ls-{}", std::process::id()));
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("evil\u{1b}[2Jname.txt"), b"x").unwrap();
    let share_arg = share.to_string_lossy().into_owned();
    let server = Server::start(&["--share", &share_arg]);
    let mut ada = ChatClient::join(&server.addr, "ada", &[]);
    ada.expect("-- lobby: ada");
    ada.say("/ls");
    let line = ada.expect("name.txt");
    assert!(!line.contains('\u{1b}'), "{line:?}");
    assert!(line.contains("evil"), "{line:?}");
    assert!(ada.finish().success());
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&share);
}
