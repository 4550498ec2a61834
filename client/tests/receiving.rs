//! `Session::receive_files` with a count, against a real server: a sender
//! that stalls does not keep the receiver from the files it wants, and
//! nothing is left arriving once it has them.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use lanlink_client::files::OfferAnswer;
use lanlink_client::{ClientError, Quiet, TransferOptions};
use support::PlainServer;

fn write(path: &Path, len: usize, seed: u8) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    std::fs::write(path, data).unwrap();
}

/// Ada offers first and drips (16 KiB/s); Dee offers next and withdraws
/// her offer after a second; Cy offers last, at full speed. Bob wants one
/// file: Dee's withdrawn offer is forgotten (never accepted), and once
/// Ada's file has stalled for a few seconds, Cy's starts and arrives;
/// Ada's is then cancelled, Ada told why, and only its partial file
/// kept. (Before, with one file wanted, nothing started past Ada's until
/// it ended, and a withdrawn offer was still accepted in its turn.)
#[test]
fn a_dripping_sender_does_not_keep_the_receiver_from_its_file() {
    let dir = std::env::temp_dir().join(format!("lanlink-receiving-{}", std::process::id()));
    let (src, rx) = (dir.join("src"), dir.join("rx"));
    std::fs::create_dir_all(&src).unwrap();
    write(&src.join("slow.bin"), 4 << 20, 1);
    write(&src.join("fast.bin"), 1 << 20, 2);
    write(&src.join("withdrawn.bin"), 1 << 20, 3);
    let server = PlainServer::start();
    let (bob, bob_events) = server.session("bob");
    let offer = |name: &'static str, file: &str, options: TransferOptions| {
        let (session, _events) = server.session(name);
        let path = src.join(file);
        std::thread::spawn(move || {
            let sent = session.send_file("bob", &path, &options, &mut Quiet);
            session.close("done");
            sent
        })
    };
    let slow = offer(
        "ada",
        "slow.bin",
        TransferOptions {
            rate_limit: Some(16 * 1024),
            ..TransferOptions::default()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let withdrawn = offer(
        "dee",
        "withdrawn.bin",
        TransferOptions {
            accept_timeout: Some(Duration::from_secs(1)),
            ..TransferOptions::default()
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    let fast = offer("cy", "fast.bin", TransferOptions::default());
    let started = Instant::now();
    let got = bob
        .receive_files(&bob_events, &rx, |_| {
            OfferAnswer::Accept(TransferOptions::default())
        })
        .count(1)
        .run()
        .unwrap();
    assert_eq!(got, 1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(fast.join().unwrap().is_ok());
    assert!(withdrawn.join().unwrap().is_err());
    match slow.join().unwrap() {
        Err(ClientError::Service(e)) => {
            assert!(e.to_string().contains("has all the files it wanted"), "{e}")
        }
        other => panic!("the dripping sender was not told: {other:?}"),
    }
    assert_eq!(
        std::fs::read(rx.join("fast.bin")).unwrap(),
        std::fs::read(src.join("fast.bin")).unwrap()
    );
    // Ada's file is not there; only its partial, to be resumed. Dee's
    // was never accepted: not even a partial file.
    assert!(!rx.join("slow.bin").exists());
    let names: Vec<String> = std::fs::read_dir(&rx)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "fast.bin" || n == ".slow.bin.lanlink-part"),
        "{names:?}"
    );
    bob.close("done");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session without chat receives offers only if it asked for them
/// (`OFFERS`): one that did not is told so at once by `run` (it waited
/// for ever, while senders were told "no user named …"); one that did
/// gets the file.
#[test]
fn a_receiver_without_chat_asks_for_offers() {
    use lanlink_client::{Capabilities, Session};
    let dir = std::env::temp_dir().join(format!("lanlink-offers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir.join("note.txt"), 10_000, 4);
    let server = PlainServer::start();
    let receiver = |capabilities| {
        Session::builder(&server.addr)
            .name("carol")
            .plain()
            .capabilities(capabilities)
            .connect()
            .unwrap()
    };
    let accept = |_: &_| OfferAnswer::Accept(TransferOptions::default());

    let (files_only, events) = receiver(Capabilities::FILE);
    let started = Instant::now();
    let got = files_only
        .receive_files(&events, dir.join("rx"), accept)
        .count(1)
        .run();
    assert!(matches!(got, Err(ClientError::NotAsked { .. })), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    files_only.close("done");

    let (carol, events) = receiver(Capabilities::FILE | Capabilities::OFFERS);
    let (ada, _ada_events) = server.session("ada");
    let note = dir.join("note.txt");
    let sender = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Until the server knows carol's name.
            match ada.send_file("carol", &note, &TransferOptions::default(), &mut Quiet) {
                Err(e) if e.to_string().contains("no user named") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                sent => return sent,
            }
        }
    });
    let got = carol
        .receive_files(&events, dir.join("rx"), accept)
        .count(1)
        .run()
        .unwrap();
    assert_eq!(got, 1);
    sender.join().unwrap().unwrap();
    assert_eq!(
        std::fs::read(dir.join("rx/note.txt")).unwrap(),
        std::fs::read(dir.join("note.txt")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One offer of a name waits behind the file of that name arriving; more
/// are declined at once, so that offers of one name cannot hold the
/// receiver's places on the server (an outside attack, helper-83, kept a
/// receiver full with one trickling file and fifteen offers of its name).
#[test]
fn a_third_offer_of_a_name_is_declined() {
    use lanlink_client::OnConflict;
    let dir = std::env::temp_dir().join(format!("lanlink-same-name-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    write(&src.join("same.bin"), 1 << 20, 5);
    let server = PlainServer::start();
    let (bob, bob_events) = server.session("bob");
    // Each from an address of its own: the server lets one address have
    // two offers to a user at once.
    let offer = |name: &'static str, from: &str, options: TransferOptions| {
        let (session, _events) = lanlink_client::Session::builder(&server.addr)
            .name(name)
            .plain()
            .transport_config(lanlink_transport::ClientConfig {
                bind: Some(from.parse().unwrap()),
                ..lanlink_transport::ClientConfig::default()
            })
            .connect()
            .unwrap();
        let path = src.join("same.bin");
        std::thread::spawn(move || {
            let sent = session.send_file("bob", &path, &options, &mut Quiet);
            session.close("done");
            sent
        })
    };
    // Ada's takes about 4 s: the others are offered meanwhile.
    let ada = offer(
        "ada",
        "127.0.0.2",
        TransferOptions {
            rate_limit: Some(256 * 1024),
            ..TransferOptions::default()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let cy = offer("cy", "127.0.0.3", TransferOptions::default());
    std::thread::sleep(Duration::from_millis(300));
    let dee = offer("dee", "127.0.0.4", TransferOptions::default());
    let rx = dir.join("rx");
    let got = bob
        .receive_files(&bob_events, &rx, |o| {
            let options = TransferOptions::default();
            match options.on_conflict(&rx, o.name(), OnConflict::Rename) {
                Some(options) => OfferAnswer::Accept(options),
                None => OfferAnswer::Decline("no free name".into()),
            }
        })
        .count(2)
        .run()
        .unwrap();
    assert_eq!(got, 2);
    assert!(ada.join().unwrap().is_ok());
    // Cy's offer came first, unless a loaded machine let Dee's overtake it:
    // one of the two arrives, the other is declined as the third.
    let (cy, dee) = (cy.join().unwrap(), dee.join().unwrap());
    let refused = match (&cy, &dee) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e.to_string(),
        _ => panic!("one of the two is declined: {cy:?}, {dee:?}"),
    };
    assert!(refused.contains("already waiting"), "{refused}");
    std::fs::remove_dir_all(&dir).unwrap();
}
