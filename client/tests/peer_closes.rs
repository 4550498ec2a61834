//! A server that sends a whole file and closes the connection right
//! behind its last frame, over a real socket: the client's
//! acknowledgements can no longer go, but the file arrived and is kept,
//! whole and checked. (An outside attack, helper-66, found such a
//! download of 3 MB reported lost, 3 times of 3.)

use std::io::Read;
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lanlink_client::proto::file::{FileChunk, FileComplete, FileOffer};
use lanlink_client::proto::Frame;
use lanlink_client::{Quiet, Session, TransferOptions};

mod support;
use support::{let_in, until_file_request, write_frame};

/// Serves one `get` of `data`, then closes its side at once (FIN right
/// behind the last frame) and reads what the client still says until it
/// leaves, so that the close is a clean one, not a reset.
fn send_and_close(listener: TcpListener, data: Vec<u8>) {
    let (mut tcp, mut next) = let_in(&listener);
    let size = data.len() as u64;
    let request = until_file_request(&mut tcp, &mut next, size);
    let stream = request.stream;
    let offer = FileOffer {
        name: "f.bin".into(),
        size,
        hash: None,
        offset: 0,
        to: None,
        from: None,
    };
    write_frame(&mut tcp, &Frame::new(stream, offer)).unwrap();
    for (i, part) in data.chunks(256 * 1024).enumerate() {
        let chunk = FileChunk {
            offset: (i * 256 * 1024) as u64,
            data: Bytes::copy_from_slice(part),
        };
        write_frame(&mut tcp, &Frame::new(stream, chunk)).unwrap();
    }
    let complete = FileComplete {
        size,
        hash: *blake3::hash(&data).as_bytes(),
    };
    write_frame(&mut tcp, &Frame::new(stream, complete)).unwrap();
    tcp.shutdown(Shutdown::Write).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = [0u8; 64 * 1024];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

#[test]
fn a_file_sent_whole_right_before_the_server_closes_is_kept() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = {
        let data = data.clone();
        std::thread::spawn(move || send_and_close(listener, data))
    };
    let dir = tempfile::tempdir().unwrap();
    let (session, _events) = Session::builder(&addr).plain().connect().unwrap();
    let started = Instant::now();
    let got = session.get("f.bin", dir.path(), &TransferOptions::default(), &mut Quiet);
    assert!(got.is_ok(), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let kept = std::fs::read(dir.path().join("f.bin")).unwrap();
    assert!(kept == data, "the file kept is the one sent");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec!["f.bin"], "no partial file beside it");
    session.close("done");
    drop(session);
    server.join().unwrap();
}
