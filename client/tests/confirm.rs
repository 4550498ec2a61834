//! Confirmed sends through the real server (plain TCP on 127.0.0.1):
//! [`Session::say_confirmed`] returns once the server has handled the
//! line, with the server's refusal when it refused it (too fast, a room
//! not joined); the answers that confirm never reach the application's
//! events; a lost connection ends the wait at once.

mod support;

use std::time::{Duration, Instant};

use lanlink_client::proto::ErrorCode;
use lanlink_client::{ClientError, Event, Events, Paced};
use lanlink_server::ServerConfig;
use support::PlainServer;

const PATIENCE: Duration = Duration::from_secs(10);

/// The lines `events` brings within `wait`, and the refusals.
fn lines_and_refusals(events: &Events, wait: Duration) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + wait;
    let (mut lines, mut refusals) = (Vec::new(), Vec::new());
    while let Some(event) = events.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        match event {
            Event::Message(m) => lines.push(m.text),
            Event::ServerError(e) => refusals.push(e.message),
            _ => {}
        }
    }
    (lines, refusals)
}

#[test]
fn a_confirmed_line_is_handled_and_a_refused_one_says_why() {
    // A burst of 10 lines, then one a second.
    let mut config = ServerConfig::default();
    config.chat.rate_burst = 10;
    config.chat.rate_per_second = 1.0;
    let server = PlainServer::start_with(config);
    let (ada, ada_events) = server.session("ada");
    let (_bob, bob_events) = server.session("bob");
    ada.say_confirmed("lobby", "first", PATIENCE).unwrap();
    let mut said = vec!["first".to_owned()];
    for i in 0..9 {
        said.push(format!("line {i}"));
        ada.say("lobby", &said[said.len() - 1]).unwrap();
    }
    // The burst is spent: refused as too fast, with the wait it asks for.
    let refusal = ada
        .say_confirmed("lobby", "one too many", PATIENCE)
        .unwrap_err();
    assert!(
        matches!(&refusal, ClientError::Refused { code, .. } if *code == ErrorCode::RATE_LIMITED),
        "{refusal:?}"
    );
    let wait = refusal
        .retry_after()
        .expect("a refusal for sending too fast names its wait");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    // Sent again once the wait is over, it goes through.
    std::thread::sleep(wait + Duration::from_millis(20));
    ada.say_confirmed("lobby", "one too many", PATIENCE)
        .unwrap();
    said.push("one too many".into());

    // A room not joined: refused as such (once the rate allows a line).
    std::thread::sleep(Duration::from_millis(1100));
    let outside = ada
        .say_confirmed("kitchen", "hello?", PATIENCE)
        .unwrap_err();
    assert!(
        matches!(&outside, ClientError::Refused { code, .. } if *code == ErrorCode::FORBIDDEN),
        "{outside:?}"
    );
    assert_eq!(outside.retry_after(), None);

    // Everything confirmed reached bob, and nothing else; the application
    // sees the refusals of its lines (2), not the confirmations.
    let (bob_lines, _) = lines_and_refusals(&bob_events, Duration::from_secs(1));
    assert_eq!(bob_lines, said);
    let (_, refusals) = lines_and_refusals(&ada_events, Duration::from_millis(200));
    assert_eq!(refusals.len(), 2, "{refusals:?}");
}

/// Confirmations from several threads at once each get their answer.
#[test]
fn confirmations_from_many_threads_each_get_their_answer() {
    let server = PlainServer::start();
    let (ada, _events) = server.session("ada");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let ada = ada.clone();
                s.spawn(move || ada.say_confirmed("lobby", &format!("from {i}"), PATIENCE))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

/// A session whose connection is gone refuses at once. (One that goes while
/// a confirmation waits: `reconnecting.rs`.)
#[test]
fn a_closed_session_refuses_at_once() {
    let mut server = PlainServer::start();
    let (ada, _events) = server.session("ada");
    ada.say_confirmed("lobby", "hello", PATIENCE).unwrap();
    server.stop();
    let started = Instant::now();
    let e = ada.say_confirmed("lobby", "anyone?", PATIENCE).unwrap_err();
    assert!(
        matches!(e, ClientError::Disconnected(_) | ClientError::Transport(_)),
        "{e:?}"
    );
    // Whichever call finds the connection gone says so the same way.
    let plain = ada.say("lobby", "anyone?").unwrap_err();
    assert!(matches!(plain, ClientError::Disconnected(_)), "{plain:?}");
    assert!(plain.close_reason().is_some() && e.close_reason().is_some());
    let listing = ada.list("", false).unwrap_err();
    assert!(listing.close_reason().is_some(), "{listing:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// [`Paced`] delivers a burst far over the server's rate, every line in
/// order, sending again what was refused as too fast and spacing the rest
/// as the server asked; a line the rate keeps refusing past its limit is
/// given up with the refusal, and the session stays.
#[test]
fn paced_lines_all_arrive_in_order_at_the_rate_the_server_allows() {
    let mut config = ServerConfig::default();
    config.chat.rate_burst = 3;
    config.chat.rate_per_second = 5.0;
    let server = PlainServer::start_with(config);
    let (ada, ada_events) = server.session("ada");
    let (_bob, bob_events) = server.session("bob");
    let said: Vec<String> = (0..15).map(|i| format!("line {i}")).collect();
    let mut paced = Paced::new();
    for line in &said {
        paced.say(&ada, "lobby", line).unwrap();
    }
    // The server asked for about 200 ms between lines.
    assert!(
        paced.gap() > Duration::from_millis(150) && paced.gap() <= Duration::from_millis(400),
        "{:?}",
        paced.gap()
    );
    let (lines, _) = lines_and_refusals(&bob_events, Duration::from_millis(500));
    assert_eq!(lines, said, "every line, once, in order");
    // Once the gap was learnt, lines went without refusal: a line refused
    // every time would be 12.
    let (_, refusals) = lines_and_refusals(&ada_events, Duration::ZERO);
    assert!(!refusals.is_empty() && refusals.len() <= 3, "{refusals:?}");

    // One line a minute, and a paced sender that waits at most 300 ms:
    // the refusal is returned; later, a line goes again.
    let mut config = ServerConfig::default();
    config.chat.rate_burst = 1;
    config.chat.rate_per_second = 1.0 / 60.0;
    let server = PlainServer::start_with(config);
    let (ada, _events) = server.session("ada");
    let mut hurried = Paced::new().give_up_after(Duration::from_millis(300));
    hurried.say(&ada, "lobby", "the one").unwrap();
    let started = Instant::now();
    let e = hurried.say(&ada, "lobby", "one more").unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused { code, .. } if *code == ErrorCode::RATE_LIMITED),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(ada.is_connected());
}

/// An application that held its events unread until they filled, and
/// then dropped them, gets its session back: what the server says next
/// is dropped instead of waiting for a reader that is gone, and a
/// confirmed line goes through.
#[test]
fn dropping_events_left_unread_lets_the_session_go_on() {
    let mut config = ServerConfig::default();
    config.chat.rate_burst = 100_000;
    config.chat.rate_per_second = 100_000.0;
    config.chat.address_message_rate = lanlink_transport::Rate::UNLIMITED;
    let server = PlainServer::start_with(config);
    let (ada, ada_events) = server.session("ada");
    let (bob, _bob_events_dropped) = {
        let (bob, events) = server.session("bob");
        drop(events);
        (bob, ())
    };
    // More than the 4,096 events a session holds for its application.
    for i in 0..6_000 {
        bob.say("lobby", &format!("chatter {i}")).unwrap();
    }
    bob.say_confirmed("lobby", "the last", PATIENCE).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(ada_events);
    let started = Instant::now();
    ada.say_confirmed("lobby", "still here", Duration::from_secs(5))
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A confirmed join says at once whether it worked: a wrong password is
/// its refusal, not the next line's; a reconnecting session confirms its
/// lines too.
#[test]
fn a_confirmed_join_reports_its_own_refusal() {
    let server = PlainServer::start();
    let (ada, _) = server.session("ada");
    ada.join_confirmed("ops", Some("sesame"), PATIENCE).unwrap();
    let (bob, _) = server.session("bob");
    let wrong = bob
        .join_confirmed("ops", Some("open"), PATIENCE)
        .unwrap_err();
    assert!(
        matches!(&wrong, ClientError::Refused { reason, .. } if reason.contains("password")),
        "{wrong:?}"
    );
    // The next line is not blamed for it.
    bob.say_confirmed("lobby", "hello", PATIENCE).unwrap();
    bob.join_confirmed("ops", Some("sesame"), PATIENCE).unwrap();
    bob.say_confirmed("ops", "in", PATIENCE).unwrap();

    let builder = lanlink_client::Session::builder(&server.addr)
        .name("cy")
        .plain();
    let (link, _) =
        lanlink_client::Reconnecting::connect(builder, lanlink_client::Backoff::default()).unwrap();
    link.say_confirmed("lobby", "from a reconnecting session", PATIENCE)
        .unwrap();
    let outside = link
        .say_confirmed("ops", "not in it", PATIENCE)
        .unwrap_err();
    assert!(
        matches!(&outside, ClientError::Refused { code, .. } if *code == ErrorCode::FORBIDDEN),
        "{outside:?}"
    );
}

/// Lines said without waiting and refused as too fast are not blamed on
/// a confirmed join sent right behind them, whose answer is its own: a
/// wrong password, or none. A reconnecting session confirms its joins the
/// same way, and joins again only the room that let it in.
#[test]
fn refusals_of_earlier_lines_are_not_blamed_on_a_confirmed_join() {
    let mut config = ServerConfig::default();
    config.chat.rate_burst = 2;
    config.chat.rate_per_second = 0.5;
    let server = PlainServer::start_with(config);
    let (ada, _) = server.session("ada");
    ada.join_confirmed("ops", Some("sesame"), PATIENCE).unwrap();

    // Each join is sent behind 20 lines, 18 of them refused as too fast
    // and the refusals on their way back: first with a wrong password,
    // then with the right one.
    fn hurried_joins(
        session: &lanlink_client::Session,
        join: impl Fn(&str) -> Result<(), ClientError>,
    ) {
        for password in ["open", "sesame"] {
            for i in 0..20 {
                session.say("lobby", &format!("hurried {i}")).unwrap();
            }
            match join(password) {
                Err(ClientError::Refused { reason, .. })
                    if password == "open" && reason.contains("password") => {}
                Ok(()) if password == "sesame" => {}
                other => panic!("{password}: {other:?}"),
            }
        }
    }
    let (bob, bob_events) = server.session("bob");
    hurried_joins(&bob, |password| {
        bob.join_confirmed("ops", Some(password), PATIENCE)
    });
    // The refusals still reached the application, as events.
    let (_, refusals) = lines_and_refusals(&bob_events, Duration::from_millis(300));
    assert!(refusals.len() >= 30, "{} refusals", refusals.len());

    let builder = lanlink_client::Session::builder(&server.addr)
        .name("cy")
        .plain();
    let (link, _) =
        lanlink_client::Reconnecting::connect(builder, lanlink_client::Backoff::default()).unwrap();
    hurried_joins(&link.session().unwrap(), |password| {
        link.join_confirmed("ops", Some(password), PATIENCE)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !link.rooms().iter().any(|r| r == "ops") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(link.rooms().len(), 2, "{:?}", link.rooms());
    link.close("done");
}

/// A hostile server that answers every try of a line slowly, each time
/// refusing it as too fast with no wait at all, cannot keep a [`Paced`]
/// line going past its limit: the time since the line's first send
/// counts, confirmations and all (an outside attack, helper-72, kept one
/// line of `lanlink chat` going for more than 150 s this way, when only
/// the refusals' own waits were counted).
#[test]
fn a_server_slow_to_refuse_cannot_keep_a_paced_line_going() {
    use lanlink_client::proto::control::{Confirmed, Error as ServerError};
    use lanlink_client::proto::{Frame, Message};
    use support::{let_in, write_frame};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut tcp, mut next) = let_in(&listener);
        let started = Instant::now();
        let mut tries = 0;
        while started.elapsed() < Duration::from_secs(20) {
            let frame = next(&mut tcp);
            match frame.message {
                Message::Confirm(c) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(300));
                    let refusal = ServerError {
                        code: ErrorCode::RATE_LIMITED,
                        message: "too many messages: wait 0 ms before trying again".into(),
                    };
                    if write_frame(&mut tcp, &Frame::control(refusal)).is_err()
                        || write_frame(&mut tcp, &Frame::control(Confirmed { token: c.token }))
                            .is_err()
                    {
                        break;
                    }
                }
                Message::Goodbye(_) => break,
                _ => {}
            }
        }
        tries
    });
    let (session, _) = lanlink_client::Session::builder(&addr)
        .plain()
        .connect()
        .unwrap();
    let mut paced = Paced::new().give_up_after(Duration::from_secs(1));
    let started = Instant::now();
    let e = paced.say(&session, "lobby", "hello").unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&e, ClientError::Refused { code, .. } if *code == ErrorCode::RATE_LIMITED),
        "{e:?}"
    );
    // The limit, one slow answer and one wait past it at most.
    assert!(took < Duration::from_millis(2500), "{took:?}");
    session.close("done");
    let tries = server.join().unwrap();
    assert!((2..=6).contains(&tries), "{tries} tries");
}
