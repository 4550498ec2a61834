//! The attacks, one function per class of issue 13, each from loopback
//! addresses of its own (127.0.0.2 to 127.0.0.20) so that per-address
//! limits meet several machines, as they would on a LAN. Each runs until
//! the attack phase ends, bounded by counts and pauses, and counts what it
//! tried, what the server refused, and any breach: something an attacker
//! must never achieve (a kick, a guessed password, an impersonated name,
//! a non-JPEG part for browsers, an unanswered server).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_proto::audio::{AudioAnnounce, AudioCodec, AudioEnd, AudioPacket, AudioSubscribe};
use lanlink_proto::chat::{ChatMessage, Join, Leave, PrivateMessage, SetNick};
use lanlink_proto::control::{Admin, Error as PeerError, Hello};
use lanlink_proto::file::{FileChunk, FileComplete, FileOffer};
use lanlink_proto::video::{VideoAnnounce, VideoCodec, VideoEnd, VideoFrame, VideoSubscribe};
use lanlink_proto::{Capabilities, ErrorCode, Frame, Message, StreamId};
use lanlink_transport::Client;

use crate::honest::{CAM, CHATTERS, TONE};
use crate::net::{self, drain, ip, nap, refusals, session, session_with, RawTls, Tally, Target};

/// How hard to push: `ci` is the short, light run.
#[derive(Debug, Clone, Copy)]
pub struct Intensity {
    /// Frames per flood batch.
    pub batch: usize,
    /// Wrong admin tokens queued in front of the right one.
    pub queued_guesses: usize,
    /// Silent connections each flooding address holds.
    pub silent: usize,
}

impl Intensity {
    /// The full run's, or the CI run's.
    pub fn new(ci: bool) -> Intensity {
        if ci {
            Intensity {
                batch: 40,
                queued_guesses: 200,
                silent: 12,
            }
        } else {
            Intensity {
                batch: 100,
                queued_guesses: 2000,
                silent: 16,
            }
        }
    }
}

/// What everything an attacker hopes to smuggle into a terminal or a log
/// looks like: a newline and a forged log line, a window-title escape, a
/// screen clear, a bidi override.
pub const FORGED: &str = "x\n2026-01-01T00:00:00.000000Z  WARN lanlink: FORGED operator logged in\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}";

/// Shorter payloads, one trick each.
const PAINT: [&str; 8] = [
    "\u{1b}]0;owned\u{7}",
    "\u{1b}[2J\u{1b}[H",
    "invoice\u{202e}fdp.exe",
    "c1\u{9b}31m",
    "line\r\nforged",
    "zero\u{200b}width",
    "del\u{7f}bell\u{7}",
    "tag\u{e0041}\u{e007f}",
];

fn chat(text: &str, room: &str) -> ChatMessage {
    ChatMessage::say(room, text)
}

fn admin(token: &str, command: &str, argument: &str) -> Frame {
    Frame::control(Admin {
        token: token.into(),
        command: command.into(),
        argument: argument.into(),
    })
}

fn send_all(c: &Client, frames: &[Frame]) -> bool {
    frames.iter().all(|f| c.send(f).is_ok())
}

/// Sends `frames` and counts them, then the refusals among what comes
/// back within `patience` (quiet `quiet`).
fn volley(
    c: &Client,
    frames: &[Frame],
    tally: &Tally,
    quiet: Duration,
    patience: Duration,
) -> Vec<Frame> {
    tally.tried(frames.len() as u64);
    send_all(c, frames);
    let answers = drain(c, quiet, patience, 100_000);
    tally.refused(refusals(&answers));
    answers
}

/// A small PRNG (xorshift) for garbage: the run is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ------------------------------------------------------------------ 1 admin

/// Class 1: admin tokens guessed. From 127.0.0.2: thousands of wrong
/// tokens then the right one, queued at once on one connection. From
/// 127.0.0.3: a wrong token per connection, then the right one. The kick
/// target is an honest chatter: any success is a breach (and an honest
/// loss).
pub fn admin_guessing(t: &Target, tally: &Tally, until: Instant, x: Intensity) {
    let mut round = 0u32;
    while Instant::now() < until && round < 1000 {
        round += 1;
        if let Ok(c) = session(t, ip(2), &format!("guess-a{round}"), Capabilities(0)) {
            let mut frames: Vec<Frame> = (0..x.queued_guesses)
                .map(|i| admin(&format!("guess-{round}-{i}"), "kick", CHATTERS[1]))
                .collect();
            frames.push(admin(&t.admin_token, "kick", CHATTERS[1]));
            tally.tried(frames.len() as u64);
            send_all(&c, &frames);
            let answers = drain(
                &c,
                Duration::from_millis(500),
                Duration::from_secs(5),
                10_000,
            );
            check_admin(tally, &answers, "queued behind wrong tokens");
            tally.refused(refusals(&answers));
        }
        for i in 0..6 {
            let token = if i < 5 {
                format!("wrong-{round}-{i}")
            } else {
                t.admin_token.clone()
            };
            let Ok(c) = session(t, ip(3), &format!("guess-b{round}x{i}"), Capabilities(0)) else {
                tally.refused(1);
                continue;
            };
            tally.tried(1);
            let _ = c.send(&admin(&token, "kick", CHATTERS[1]));
            let answers = drain(&c, Duration::from_millis(300), Duration::from_secs(3), 100);
            check_admin(tally, &answers, "after five wrong guesses from the address");
            tally.refused(refusals(&answers));
        }
        if !nap(Duration::from_secs(2), until) {
            break;
        }
    }
}

fn check_admin(tally: &Tally, answers: &[Frame], how: &str) {
    for f in answers {
        if let Message::AdminReply(r) = &f.message {
            if r.ok {
                tally.breach(format!("an admin request succeeded {how}: {:?}", r.text));
            }
        }
    }
}

// ------------------------------------------------------------------ 2 floods

/// Class 2: nick changes, join/leave churn, rooms, room and private
/// messages as fast as the socket takes them, from three connections on
/// each of 127.0.0.4-6; and room password guessing against a room an
/// attacker made on 127.0.0.4, from 127.0.0.5 and .6. A guess that gets in
/// is a breach.
pub fn floods(t: &Target, tally: &Tally, until: Instant, x: Intensity) {
    let vault = "vault";
    let owner = match session(t, ip(4), "vault-owner", Capabilities::CHAT) {
        Ok(c) => c,
        Err(e) => return tally.breach(format!("the vault's owner could not connect: {e}")),
    };
    let _ = owner.send(&Frame::control(Join {
        room: vault.into(),
        password: Some("7381-correct-horse".into()),
    }));
    drain(
        &owner,
        Duration::from_millis(300),
        Duration::from_secs(2),
        100,
    );
    let mut threads = Vec::new();
    for a in 4..=6u8 {
        for i in 0..3 {
            let (t, until) = (t.clone(), until);
            threads.push(std::thread::spawn(move || {
                let tally = Tally::default();
                flooder(&t, &tally, ip(a), &format!("flood{a}x{i}"), until, x);
                tally
            }));
        }
    }
    let mut guesses = 0u64;
    let mut round = 0u64;
    while Instant::now() < until && round < 10_000 {
        for a in [5u8, 6] {
            let Ok(c) = session(t, ip(a), &format!("guesser{a}x{round}"), Capabilities::CHAT)
            else {
                tally.refused(1);
                continue;
            };
            let frames: Vec<Frame> = (0..50)
                .map(|k| {
                    guesses += 1;
                    Frame::control(Join {
                        room: vault.into(),
                        password: Some(format!("{:05}", guesses + k)),
                    })
                })
                .collect();
            let answers = volley(
                &c,
                &frames,
                tally,
                Duration::from_millis(300),
                Duration::from_secs(5),
            );
            if answers
                .iter()
                .any(|f| matches!(&f.message, Message::Roster(r) if r.room == vault))
            {
                tally.breach("a password guess got into the vault");
            }
        }
        round += 1;
        if !nap(Duration::from_secs(1), until) {
            break;
        }
    }
    for th in threads {
        if let Ok(sub) = th.join() {
            tally.absorb(sub);
        }
    }
    drop(owner);
}

fn flooder(t: &Target, tally: &Tally, from: IpAddr, name: &str, until: Instant, x: Intensity) {
    let Ok(c) = session(t, from, name, Capabilities::CHAT) else {
        return tally.refused(1);
    };
    let mut n = 0u64;
    while Instant::now() < until && n < 1_000_000 {
        let frames: Vec<Frame> = (0..x.batch)
            .map(|k| {
                n += 1;
                let m: Message = match k % 7 {
                    0 => SetNick {
                        name: format!("{name}n{}", n % 2),
                    }
                    .into(),
                    1 => Leave {
                        room: "lobby".into(),
                    }
                    .into(),
                    2 => Join {
                        room: "lobby".into(),
                        password: None,
                    }
                    .into(),
                    3 => Join {
                        room: format!("churn{}", n % 50),
                        password: None,
                    }
                    .into(),
                    4 => chat(&format!("flood {n}"), "lobby").into(),
                    5 => PrivateMessage {
                        to: CHATTERS[0].into(),
                        from: String::new(),
                        text: format!("flood {n}"),
                        action: false,
                        timestamp_ms: 0,
                    }
                    .into(),
                    _ => lanlink_proto::chat::RosterRequest {
                        room: "lobby".into(),
                    }
                    .into(),
                };
                Frame::control(m)
            })
            .collect();
        tally.tried(frames.len() as u64);
        if !send_all(&c, &frames) {
            break;
        }
        let answers = drain(
            &c,
            Duration::from_millis(100),
            Duration::from_millis(400),
            100_000,
        );
        tally.refused(refusals(&answers));
    }
}

// ------------------------------------------------------------------ 3 escapes

/// Class 3: escape sequences, newlines, bidi and invisible characters in
/// every string a peer sends, from 127.0.0.7: Hello names, nicknames,
/// rooms, chat and private messages to the honest users, stream names,
/// file offers to an honest user and uploads, error reports, admin
/// arguments, goodbyes. Names must be refused; what is shown must be
/// escaped (checked on the honest users' output and the server's log).
pub fn escapes(t: &Target, tally: &Tally, until: Instant) {
    let mut round = 0usize;
    let caps = Capabilities::ALL;
    while Instant::now() < until && round < 1000 {
        round += 1;
        let paint = PAINT[round % PAINT.len()];
        for bad in [FORGED, paint] {
            tally.tried(1);
            match session(t, ip(7), bad, caps) {
                Ok(_) => tally.breach(format!("a Hello name {bad:?} was welcomed")),
                Err(_) => tally.refused(1),
            }
        }
        let Ok(c) = session(t, ip(7), &format!("painter{round}"), caps) else {
            tally.refused(1);
            continue;
        };
        drain(&c, Duration::from_millis(100), Duration::from_secs(1), 1000);
        let offer_stream: StreamId = 1;
        let upload_stream: StreamId = 3;
        let upload = format!("upload{round}\u{202e}txt.exe");
        let content = format!("painted {round}\n").into_bytes();
        let frames = vec![
            Frame::control(chat(&format!("{paint} {FORGED}"), "lobby")),
            Frame::control(PrivateMessage {
                to: CHATTERS[0].into(),
                from: String::new(),
                text: FORGED.into(),
                action: true,
                timestamp_ms: 0,
            }),
            Frame::control(SetNick { name: paint.into() }),
            Frame::control(Join {
                room: format!("room{paint}"),
                password: None,
            }),
            Frame::control(PeerError {
                code: ErrorCode::OTHER,
                message: FORGED.into(),
            }),
            Frame::new(
                5,
                AudioAnnounce {
                    name: format!("mic{paint}"),
                    publisher: FORGED.into(),
                    codec: AudioCodec::OPUS,
                    sample_rate: 48_000,
                    channels: 1,
                    frame_duration_us: 20_000,
                },
            ),
            Frame::new(
                7,
                VideoAnnounce {
                    name: FORGED.into(),
                    publisher: FORGED.into(),
                    codec: VideoCodec::MJPEG,
                    width: 64,
                    height: 48,
                    fps_milli: 1000,
                },
            ),
            Frame::new(
                offer_stream,
                FileOffer {
                    name: format!("report{paint}.pdf"),
                    size: 10,
                    hash: None,
                    offset: 0,
                    to: Some(CHATTERS[1].into()),
                    from: Some(FORGED.into()),
                },
            ),
            Frame::new(
                upload_stream,
                FileOffer {
                    name: upload,
                    size: content.len() as u64,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                },
            ),
            admin(FORGED, FORGED, FORGED),
        ];
        tally.tried(frames.len() as u64);
        send_all(&c, &frames);
        let mut answers = drain(&c, Duration::from_millis(300), Duration::from_secs(3), 1000);
        if answers
            .iter()
            .any(|f| f.stream == upload_stream && matches!(f.message, Message::FileAccept(_)))
        {
            let _ = c.send(&Frame::new(
                upload_stream,
                FileChunk {
                    offset: 0,
                    data: Bytes::from(content.clone()),
                },
            ));
            let _ = c.send(&Frame::new(
                upload_stream,
                FileComplete {
                    size: content.len() as u64,
                    hash: *blake3::hash(&content).as_bytes(),
                },
            ));
            answers.extend(drain(
                &c,
                Duration::from_millis(300),
                Duration::from_secs(3),
                100,
            ));
        }
        tally.refused(refusals(&answers));
        for f in &answers {
            match &f.message {
                Message::NickChanged(n) if n.new == paint => {
                    tally.breach(format!("nickname {paint:?} accepted"))
                }
                Message::Roster(r) if r.room.contains(paint) => {
                    tally.breach(format!("room {:?} created", r.room))
                }
                _ => {}
            }
        }
        // The goodbye carries the payload too.
        c.close(FORGED);
        if !nap(Duration::from_millis(1500), until) {
            break;
        }
    }
}

// ------------------------------------------------------------------ 4 look-alikes

/// Names that look like `name`: homoglyphs, width, case, dotless i, and
/// hidden characters.
pub fn look_alikes(name: &str) -> Vec<String> {
    let swap = |from: char, to: char| name.replacen(from, &to.to_string(), 1);
    let mut v = vec![
        swap('a', '\u{0430}'),
        swap('o', '\u{043e}'),
        swap('e', '\u{0435}'),
        name.chars()
            .map(|c| match c {
                '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
                c => c,
            })
            .collect(),
        name.to_uppercase(),
        swap('i', '\u{0131}'),
        format!("{}\u{200b}{}", &name[..1], &name[1..]),
        format!("{}\u{00ad}{}", &name[..2], &name[2..]),
        format!("\u{feff}{name}"),
        format!("\u{202e}{name}"),
        format!("{name}\u{e0061}"),
        format!("{name}\u{200d}"),
    ];
    v.retain(|n| n != name);
    v.sort();
    v.dedup();
    v
}

/// Class 4: every look-alike of the honest chatters' names, as a Hello
/// and as a nick change, from 127.0.0.8. Any accepted is a breach.
pub fn look_alike_names(t: &Target, tally: &Tally, until: Instant) {
    let mut round = 0;
    while Instant::now() < until && round < 1000 {
        round += 1;
        let Ok(mimic) = session(t, ip(8), &format!("mimic{round}"), Capabilities::CHAT) else {
            tally.refused(1);
            nap(Duration::from_secs(1), until);
            continue;
        };
        for honest in CHATTERS {
            for fake in look_alikes(honest) {
                tally.tried(2);
                match session(t, ip(8), &fake, Capabilities::CHAT) {
                    Ok(_) => tally.breach(format!("{fake:?} was welcomed while {honest} is here")),
                    Err(_) => tally.refused(1),
                }
                let _ = mimic.send(&Frame::control(SetNick { name: fake.clone() }));
                for f in drain(
                    &mimic,
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                    100,
                ) {
                    match f.message {
                        Message::NickChanged(n) if n.new == fake => {
                            tally.breach(format!("renamed to {fake:?} while {honest} is here"))
                        }
                        Message::Error(_) => tally.refused(1),
                        _ => {}
                    }
                }
                // Connection attempts per address are rate-limited too.
                if !nap(Duration::from_millis(150), until) {
                    return;
                }
            }
        }
    }
}

// ------------------------------------------------------------------ 5 mass

/// Class 5: what a peer can make the server hold, created en masse:
/// rooms (127.0.0.9), streams with huge names, stream churn and renames,
/// offers left hanging (127.0.0.10), partial files of abandoned uploads,
/// and media subscribers that never read (127.0.0.11).
pub fn mass(t: &Target, tally: &Arc<Tally>, until: Instant) {
    let mut threads = Vec::new();
    {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || mass_rooms(&t, &tally, until)));
    }
    {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || mass_streams(&t, &tally, until)));
    }
    {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || mass_offers(&t, &tally, until)));
    }
    {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || never_reading(&t, &tally, until)));
    }
    for th in threads {
        let _ = th.join();
    }
}

/// `n` connections from `from` named `PREFIXi` with `caps` send what
/// `volley_of(i, k)` makes, round `k` after round, every `pause`.
#[allow(clippy::too_many_arguments)]
fn barrage(
    t: &Target,
    tally: &Tally,
    until: Instant,
    (from, prefix, caps, n): (IpAddr, &str, Capabilities, usize),
    pause: Duration,
    volley_of: impl Fn(usize, u64) -> Vec<Frame>,
) {
    let conns: Vec<Client> = (0..n)
        .filter_map(|i| session(t, from, &format!("{prefix}{i}"), caps).ok())
        .collect();
    let mut k = 0u64;
    while Instant::now() < until && k < 1_000_000 {
        for (i, c) in conns.iter().enumerate() {
            let quiet = Duration::from_millis(50);
            volley(
                c,
                &volley_of(i, k),
                tally,
                quiet,
                Duration::from_millis(300),
            );
        }
        k += 1;
        if !nap(pause, until) {
            break;
        }
    }
}

/// Rooms by the thousand, twenty joins at a time per connection.
fn mass_rooms(t: &Target, tally: &Tally, until: Instant) {
    let who = (ip(9), "roomer", Capabilities::CHAT, 8);
    barrage(t, tally, until, who, Duration::from_millis(500), |i, k| {
        (0..20)
            .map(|j| {
                Frame::control(Join {
                    room: format!("mass{i}x{}", k * 20 + j),
                    password: None,
                })
            })
            .collect()
    });
}

fn audio(name: String, channels: u8) -> AudioAnnounce {
    AudioAnnounce {
        name,
        publisher: String::new(),
        codec: AudioCodec::OPUS,
        sample_rate: 48_000,
        channels,
        frame_duration_us: 20_000,
    }
}

/// More streams than a client may publish, 60 kB names, and renames and
/// ends of each, every round.
fn mass_streams(t: &Target, tally: &Tally, until: Instant) {
    let huge = "n".repeat(60_000);
    let who = (ip(10), "streamer", Capabilities::AUDIO, 6);
    barrage(t, tally, until, who, Duration::from_millis(300), |i, k| {
        let mut frames = Vec::new();
        for s in 0..6u32 {
            let stream = 2 * s + 1;
            frames.push(Frame::new(stream, audio(format!("mass{i}s{s}r{k}"), 1)));
            frames.push(Frame::new(stream + 100, audio(format!("{huge}{s}"), 1)));
            if k % 2 == 1 {
                frames.push(Frame::new(stream, AudioEnd));
            }
        }
        frames
    });
}

fn mass_offers(t: &Target, tally: &Tally, until: Instant) {
    let mut round = 0u64;
    let mut held: Vec<Client> = Vec::new();
    while Instant::now() < until && round < 10_000 {
        round += 1;
        // Offers that never send a byte: uploads and offers to an honest
        // user, more than a client may run.
        if held.len() < 12 {
            if let Ok(c) = session(t, ip(10), &format!("offerer{round}"), Capabilities::FILE) {
                let frames: Vec<Frame> = (0..6u32)
                    .map(|s| {
                        Frame::new(
                            2 * s + 1,
                            FileOffer {
                                name: format!("hang{round}x{s}.bin"),
                                size: 1 << 20,
                                hash: None,
                                offset: 0,
                                to: (s % 2 == 1).then(|| CHATTERS[s as usize % 2].to_owned()),
                                from: None,
                            },
                        )
                    })
                    .collect();
                volley(
                    &c,
                    &frames,
                    tally,
                    Duration::from_millis(200),
                    Duration::from_secs(2),
                );
                held.push(c);
            }
        }
        // An upload abandoned halfway: its partial file stays behind.
        if round <= 20 {
            if let Ok(c) = session(t, ip(11), &format!("partial{round}"), Capabilities::FILE) {
                tally.tried(1);
                let _ = c.send(&Frame::new(
                    1,
                    FileOffer {
                        name: format!("partial{round}.bin"),
                        size: 1 << 20,
                        hash: None,
                        offset: 0,
                        to: None,
                        from: None,
                    },
                ));
                let answers = drain(&c, Duration::from_millis(300), Duration::from_secs(2), 10);
                if answers
                    .iter()
                    .any(|f| matches!(f.message, Message::FileAccept(_)))
                {
                    let _ = c.send(&Frame::new(
                        1,
                        FileChunk {
                            offset: 0,
                            data: Bytes::from(vec![7u8; 64 * 1024]),
                        },
                    ));
                    std::thread::sleep(Duration::from_millis(200));
                } else {
                    tally.refused(1);
                }
                // Dropped without a cancel: the connection just goes.
            }
        }
        if !nap(Duration::from_secs(1), until) {
            break;
        }
    }
}

/// Media subscribers that never read: they subscribe to the honest camera
/// and tone and then leave their socket alone, holding the server's
/// queues for them at its limits.
fn never_reading(t: &Target, tally: &Tally, until: Instant) {
    let mut held = Vec::new();
    for i in 0..12 {
        let Ok(c) = session_with(
            t,
            ip(11),
            &format!("sleeper{i}"),
            Capabilities::AUDIO | Capabilities::VIDEO,
            // The reader stops as soon as a few frames wait for us.
            4,
        ) else {
            tally.refused(1);
            continue;
        };
        let mut subscribed = 0;
        for f in drain(&c, Duration::from_millis(500), Duration::from_secs(3), 1000) {
            let sub = match &f.message {
                Message::VideoAnnounce(v) if v.name == CAM => {
                    Some(Frame::new(f.stream, VideoSubscribe))
                }
                Message::AudioAnnounce(a) if a.name == TONE => {
                    Some(Frame::new(f.stream, AudioSubscribe))
                }
                _ => None,
            };
            if let Some(sub) = sub {
                tally.tried(1);
                subscribed += usize::from(c.send(&sub).is_ok());
            }
        }
        if subscribed < 2 {
            tally.note(format!(
                "sleeper{i} found {subscribed} of the honest streams to subscribe to"
            ));
        }
        held.push(c);
    }
    while nap(Duration::from_millis(500), until) {}
    drop(held);
}

// ------------------------------------------------------------------ 6 connections

/// Class 6: connections. 127.0.0.12-15 each hold silent TCP connections
/// (no TLS hello) past the handshake deadline, over and over, and burst
/// connection attempts; 127.0.0.14 and .15 also open more browser
/// connections than allowed, drip request heads a byte at a time, and
/// watch the honest camera over HTTP without ever reading.
pub fn connections(t: &Target, tally: &Arc<Tally>, until: Instant, x: Intensity) {
    let mut threads = Vec::new();
    for a in 12..=15u8 {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            silent_flood(&t, &tally, ip(a), until, x)
        }));
    }
    for a in 14..=15u8 {
        let (t, tally) = (t.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            http_abuse(&t, &tally, ip(a), until)
        }));
    }
    for th in threads {
        let _ = th.join();
    }
}

fn silent_flood(t: &Target, tally: &Tally, from: IpAddr, until: Instant, x: Intensity) {
    let mut round = 0;
    while Instant::now() < until && round < 10_000 {
        round += 1;
        let held: Vec<_> = (0..x.silent)
            .filter_map(|_| net::tcp(from, t.addr).ok())
            .collect();
        tally.tried(held.len() as u64);
        // Past the handshake deadline (5 s): the server drops them.
        if !nap(Duration::from_secs(6), until) {
            break;
        }
        drop(held);
        // A burst of attempts: beyond the address's burst they are refused
        // at accept, before any handshake.
        for _ in 0..25 {
            tally.tried(1);
            if let Ok(mut s) = net::tcp(from, t.addr) {
                let mut b = [0u8; 2];
                if matches!(std::io::Read::read(&mut s, &mut b), Ok(2) if b == lanlink_proto::MAGIC)
                {
                    tally.refused(1);
                }
            }
        }
    }
}

fn http_abuse(t: &Target, tally: &Tally, from: IpAddr, until: Instant) {
    let mut round = 0;
    while Instant::now() < until && round < 10_000 {
        round += 1;
        // More connections than an address may hold: the rest get 503.
        let mut held = Vec::new();
        for i in 0..20 {
            tally.tried(1);
            let Ok(mut s) = net::tcp(from, t.http) else {
                continue;
            };
            if i < 6 {
                // Viewers of the honest camera that never read.
                let _ = std::io::Write::write_all(
                    &mut s,
                    format!("GET /stream/{CAM} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
                );
            }
            held.push(s);
        }
        // The others drip a request head, a byte at a time.
        let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: 1\r\n\r\n";
        let started = Instant::now();
        for (k, b) in head.iter().enumerate() {
            for s in held.iter_mut().skip(6) {
                let _ = std::io::Write::write_all(s, &[*b]);
            }
            if !nap(Duration::from_millis(200), until)
                || started.elapsed() > Duration::from_secs(8)
                || k > 40
            {
                break;
            }
        }
        for s in held.iter_mut().skip(6) {
            if let Ok(r) = net::read_http(s, 0, Duration::from_millis(300)) {
                if r.status >= 400 {
                    tally.refused(1);
                }
            }
        }
        drop(held);
        if !nap(Duration::from_secs(1), until) {
            break;
        }
    }
}

// ------------------------------------------------------------------ 7 disk

/// Bytes free where `path` is (`df`); 0 if unknown.
fn free_space(path: &std::path::Path) -> u64 {
    std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Class 7: the disk. From 127.0.0.16 and .17: offers far larger than the
/// disk, names nested too deep, hundreds of empty uploads, and offers that
/// together would reserve every free byte of the inbox and then send
/// nothing.
pub fn disk(t: &Target, tally: &Tally, inbox: &std::path::Path, until: Instant) {
    let mut round = 0u64;
    let mut hogs: Vec<Client> = Vec::new();
    while Instant::now() < until && round < 10_000 {
        round += 1;
        let from = ip(16 + (round % 2) as u8);
        let Ok(c) = session(t, from, &format!("filler{round}"), Capabilities::FILE) else {
            tally.refused(1);
            nap(Duration::from_secs(1), until);
            continue;
        };
        let deep = (0..40)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/");
        let mut frames = vec![
            Frame::new(
                1,
                FileOffer {
                    name: format!("huge{round}.bin"),
                    size: 1 << 40,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                },
            ),
            Frame::new(
                3,
                FileOffer {
                    name: format!("{deep}/deep{round}"),
                    size: 1,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                },
            ),
        ];
        tally.tried(frames.len() as u64);
        send_all(&c, &frames);
        frames.clear();
        // Empty files, each a new inbox entry.
        for k in 0..10u32 {
            let stream = 5 + 2 * (round as u32 * 10 + k);
            frames.push(Frame::new(
                stream,
                FileOffer {
                    name: format!("empty{round}x{k}"),
                    size: 0,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                },
            ));
            frames.push(Frame::new(
                stream,
                FileComplete {
                    size: 0,
                    hash: *blake3::hash(b"").as_bytes(),
                },
            ));
        }
        tally.tried(10);
        send_all(&c, &frames);
        let answers = drain(&c, Duration::from_millis(300), Duration::from_secs(3), 1000);
        tally.refused(refusals(&answers));
        // Space hogs, once: offers of half what is free, then a quarter,
        // an eighth… held open without a byte, as long as the server
        // takes them.
        if round == 1 {
            hogs = space_hogs(t, tally, inbox);
        }
        if !nap(Duration::from_secs(2), until) {
            break;
        }
    }
    drop(hogs);
}

/// Offers that would together reserve every free byte of the inbox, three
/// per connection (the most a client may run), never sending a byte.
fn space_hogs(t: &Target, tally: &Tally, inbox: &std::path::Path) -> Vec<Client> {
    let free = free_space(inbox);
    let mut held = Vec::new();
    let mut k = 1u32;
    while k < 24 && held.len() < 8 {
        let Ok(c) = session(
            t,
            ip(16 + (k % 2) as u8),
            &format!("hog{k}"),
            Capabilities::FILE,
        ) else {
            tally.refused(1);
            break;
        };
        let mut accepted = 0;
        for s in 0..3u32 {
            let size = free >> k;
            k += 1;
            if size < 1 << 20 {
                break;
            }
            tally.tried(1);
            let _ = c.send(&Frame::new(
                2 * s + 1,
                FileOffer {
                    name: format!("hog{k}.bin"),
                    size,
                    hash: None,
                    offset: 0,
                    to: None,
                    from: None,
                },
            ));
            let answers = drain(&c, Duration::from_millis(500), Duration::from_secs(3), 10);
            if answers
                .iter()
                .any(|f| matches!(f.message, Message::FileAccept(_)))
            {
                accepted += 1;
            } else {
                tally.refused(1);
            }
        }
        if accepted > 0 {
            held.push(c);
        }
    }
    tally.note(format!(
        "space hogs: {} connection(s) hold offers that never send a byte (inbox had {} MiB free)",
        held.len(),
        free >> 20
    ));
    held
}

// ------------------------------------------------------------------ 8 media

/// Class 8: media that kills clients. From 127.0.0.18: stereo Opus
/// streams with real stereo packets, announcements no client can play
/// (other codecs, channel counts, rates, frame lengths) and garbage
/// packets on a mono Opus stream, all heard by the honest mixing
/// listener. From 127.0.0.19: video streams whose frames are not JPEG
/// images (HTML, a multipart part, PNG, a JPEG without its end, a real
/// JPEG claiming 65500×65500 pixels), which browsers must never be shown.
pub fn media(t: &Target, tally: &Tally, until: Instant) {
    let audio_t = {
        let t = t.clone();
        std::thread::spawn(move || {
            let tally = Tally::default();
            bad_audio(&t, &tally, until);
            tally
        })
    };
    bad_video(t, tally, until);
    if let Ok(sub) = audio_t.join() {
        tally.absorb(sub);
    }
}

fn bad_audio(t: &Target, tally: &Tally, until: Instant) {
    let Ok(c) = session(t, ip(18), "noise", Capabilities::AUDIO) else {
        return tally.refused(1);
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut encoder = lanlink_audio::OpusEncoder::new(lanlink_audio::OpusConfig::voice(2)).ok();
    let mut round = 0u32;
    while Instant::now() < until && round < 10_000 {
        round += 1;
        // A stereo stream, two seconds of a 660 Hz tone.
        let s: StreamId = 1;
        tally.tried(1);
        let _ = c.send(&Frame::new(s, audio(format!("stereo{round}"), 2)));
        let mut pcm = vec![0f32; 960 * 2];
        for seq in 0..100u32 {
            for (i, v) in pcm.chunks_exact_mut(2).enumerate() {
                let ph = ((seq * 960 + i as u32) as f32) * 660.0 * std::f32::consts::TAU / 48_000.0;
                v[0] = 0.3 * ph.sin();
                v[1] = 0.3 * ph.cos();
            }
            let data = encoder
                .as_mut()
                .and_then(|e| e.encode_to_vec(&pcm).ok())
                .unwrap_or_else(|| rng.bytes(60));
            tally.tried(1);
            let _ = c.send(&Frame::new(
                s,
                AudioPacket {
                    seq,
                    timestamp_us: lanlink_video::now_us(),
                    data: Bytes::from(data),
                },
            ));
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.send(&Frame::new(s, AudioEnd));
        // Announcements nobody can play, then garbage on one that says Opus.
        let weird = [
            AudioAnnounce {
                codec: AudioCodec(99),
                ..audio(format!("codec{round}"), 1)
            },
            audio(format!("seven{round}"), 7),
            audio(format!("none{round}"), 0),
            AudioAnnounce {
                sample_rate: 8_000,
                ..audio(format!("rate{round}"), 1)
            },
            AudioAnnounce {
                frame_duration_us: 2_500,
                ..audio(format!("short{round}"), 1)
            },
            AudioAnnounce {
                frame_duration_us: u32::MAX,
                ..audio(format!("long{round}"), 1)
            },
            audio(format!("garbage{round}"), 1),
        ];
        for (k, a) in weird.into_iter().enumerate() {
            let s = 3 + 2 * k as StreamId;
            tally.tried(1);
            let _ = c.send(&Frame::new(s, a));
            for seq in 0..25u32 {
                let len = (rng.next() % 1500) as usize;
                tally.tried(1);
                let _ = c.send(&Frame::new(
                    s,
                    AudioPacket {
                        seq: if seq % 5 == 0 { rng.next() as u32 } else { seq },
                        timestamp_us: rng.next(),
                        data: Bytes::from(rng.bytes(len)),
                    },
                ));
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.send(&Frame::new(s, AudioEnd));
        }
        volley(
            &c,
            &[],
            tally,
            Duration::from_millis(50),
            Duration::from_millis(200),
        );
        if !nap(Duration::from_secs(1), until) {
            break;
        }
    }
}

/// Frames that are not JPEG images, or claim more than their stream
/// announced.
fn fake_frames() -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"<html><script>alert(1)</script></html>"),
        Bytes::from_static(
            b"\r\n--lanlink\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>\r\n",
        ),
        Bytes::from_static(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        Bytes::from_static(b"\xFF\xD8\xFF\xE0 a JPEG that never ends"),
        Bytes::from_static(b"a JPEG that never started \xFF\xD9"),
        Bytes::new(),
        huge_jpeg(),
    ]
}

/// A real JPEG whose header claims 65500×65500 pixels (12.9 GB to decode)
/// on a stream announced as 320×240.
fn huge_jpeg() -> Bytes {
    let image = lanlink_video::RgbImage::new(16, 16);
    let Ok(jpeg) = lanlink_video::JpegEncoder::new(lanlink_video::JpegConfig::default())
        .and_then(|mut e| e.encode_rgb_to_bytes(&image))
    else {
        return Bytes::new();
    };
    let mut jpeg = jpeg.to_vec();
    if let Some(sof) = jpeg.windows(2).position(|p| p == [0xFF, 0xC0]) {
        if let Some(size) = jpeg.get_mut(sof + 5..sof + 9) {
            size.copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]);
        }
    }
    Bytes::from(jpeg)
}

fn bad_video(t: &Target, tally: &Tally, until: Instant) {
    let Ok(c) = session(t, ip(19), "faker", Capabilities::VIDEO) else {
        return tally.refused(1);
    };
    let mut round = 0u32;
    while Instant::now() < until && round < 10_000 {
        round += 1;
        let name = format!("fakecam{round}");
        let s: StreamId = 1;
        tally.tried(1);
        let _ = c.send(&Frame::new(
            s,
            VideoAnnounce {
                name: name.clone(),
                publisher: String::new(),
                codec: VideoCodec::MJPEG,
                width: 320,
                height: 240,
                fps_milli: 10_000,
            },
        ));
        for (seq, data) in fake_frames().into_iter().cycle().take(30).enumerate() {
            tally.tried(1);
            let _ = c.send(&Frame::new(
                s,
                VideoFrame {
                    seq: seq as u32,
                    timestamp_us: lanlink_video::now_us(),
                    keyframe: true,
                    data,
                },
            ));
            std::thread::sleep(Duration::from_millis(30));
        }
        // What a browser gets of that stream: nothing.
        for path in [format!("/snapshot/{name}"), format!("/stream/{name}")] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            match net::http(
                ip(19),
                t.http,
                request.as_bytes(),
                4096,
                Duration::from_secs(2),
            ) {
                Ok(r) if r.status == 404 => tally.refused(1),
                Ok(r) if r.status == 200 => tally.breach(format!(
                    "GET {path} answered 200 for a stream of non-JPEG frames: {:?}",
                    String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
                )),
                Ok(r) => tally.note(format!("GET {path}: {}", r.status)),
                Err(e) => tally.note(format!("GET {path}: {e}")),
            }
        }
        let _ = c.send(&Frame::new(s, VideoEnd));
        volley(
            &c,
            &[],
            tally,
            Duration::from_millis(50),
            Duration::from_millis(200),
        );
        if !nap(Duration::from_secs(1), until) {
            break;
        }
    }
}

// ------------------------------------------------------------------ 9 malformed

/// A frame header as bytes: `version`, `kind`, `flags`, `stream`, `len`.
fn header(version: u8, kind: u8, flags: u16, stream: u32, len: u32) -> Vec<u8> {
    let mut h = lanlink_proto::MAGIC.to_vec();
    h.push(version);
    h.push(kind);
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&stream.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Class 9 (the parser, which held before): bytes no client sends, inside
/// TLS and instead of it, from 127.0.0.20. Each must end in a refusal or
/// a close, never a hang or a crash.
pub fn malformed(t: &Target, tally: &Tally, until: Instant) {
    let hello = Frame::control(Hello {
        name: "raw".into(),
        token: None,
        capabilities: Capabilities::CHAT,
    })
    .to_bytes()
    .map(|b| b.to_vec())
    .unwrap_or_default();
    let mut rng = Rng(0x0bad_cafe_f00d_0001);
    let mut round = 0u32;
    while Instant::now() < until && round < 10_000 {
        round += 1;
        let kind_chat = lanlink_proto::Kind::ChatMessage as u8;
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("garbage instead of a hello", rng.bytes(512), false),
            (
                "a header claiming 4 GiB",
                header(1, kind_chat, 0, 0, u32::MAX),
                false,
            ),
            (
                "another protocol version",
                {
                    let mut h = hello.clone();
                    h[2] = 99;
                    h
                },
                false,
            ),
            ("reserved flags", header(1, kind_chat, 0x8000, 0, 0), true),
            ("an unknown kind", header(1, 0xEE, 0, 0, 0), true),
            ("garbage after the hello", rng.bytes(256), true),
            (
                "a frame cut in half",
                {
                    let f = Frame::control(chat("half", "lobby"))
                        .to_bytes()
                        .map(|b| b.to_vec())
                        .unwrap_or_default();
                    f[..f.len() / 2].to_vec()
                },
                true,
            ),
            ("a second hello", hello.clone(), true),
        ];
        for (what, bytes, after_hello) in cases {
            tally.tried(1);
            let Ok(mut s) = RawTls::connect(t, ip(20)) else {
                tally.refused(1);
                continue;
            };
            let mut payload = Vec::new();
            let name = format!("raw{round}x{}", rng.next() % 1000);
            if after_hello {
                payload.extend_from_slice(
                    &Frame::control(Hello {
                        name,
                        token: None,
                        capabilities: Capabilities::CHAT,
                    })
                    .to_bytes()
                    .map(|b| b.to_vec())
                    .unwrap_or_default(),
                );
            }
            payload.extend_from_slice(&bytes);
            let _ = s.write(&payload);
            let (frames, closed) = s.read(Duration::from_secs(6));
            let answered = frames.iter().any(|f| {
                matches!(
                    f.message,
                    Message::Refuse(_) | Message::Error(_) | Message::Goodbye(_)
                )
            });
            if answered || closed {
                tally.refused(1);
            } else if what != "a frame cut in half" {
                tally.note(format!("{what}: no answer within 6 s"));
            }
        }
        // Plain lanlink and garbage instead of TLS: refused or closed.
        for bytes in [hello.clone(), rng.bytes(300)] {
            tally.tried(1);
            if let Ok(mut s) = net::tcp(ip(20), t.addr) {
                let _ = std::io::Write::write_all(&mut s, &bytes);
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let mut b = [0u8; 256];
                match std::io::Read::read(&mut s, &mut b) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        tally.note("bytes instead of TLS: no answer within 3 s")
                    }
                    _ => tally.refused(1),
                }
            }
        }
        if !nap(Duration::from_secs(2), until) {
            break;
        }
    }
}
