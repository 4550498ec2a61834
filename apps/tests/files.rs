//! End to end: file transfer between the real server and real `lanlink`
//! processes on 127.0.0.1: sizes, folders, resume after kill -9 on either
//! side, corruption in transit, user-to-user offers, hostile names.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{lanlink, lanlink_spawn, Scratch, Server};

const MIB: usize = 1024 * 1024;

fn write_file(path: &Path, len: usize, seed: u32) {
    // Cheap, non-repeating content so misplaced chunks cannot go unnoticed.
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn files_of_edge_sizes_and_folders_round_trip() {
    let t = Scratch::new("sizes");
    let (share, inbox, dl) = (t.dir("share"), t.dir("inbox"), t.dir("dl"));
    let sizes = [
        0,
        1,
        256 * 1024 - 1,
        256 * 1024,
        256 * 1024 + 1,
        4 * MIB + 1,
        200 * MIB,
    ];
    let names: Vec<String> = sizes.iter().map(|n| format!("f{n}.bin")).collect();
    for (i, (n, name)) in sizes.iter().zip(&names).enumerate() {
        write_file(&share.join(name), *n, i as u32);
    }
    write_file(&t.dir("share/tree/b/d").join("e"), 1000, 7);
    write_file(&share.join("tree/a"), 10, 8);
    write_file(&share.join("tree/b/c"), 300_000, 9);

    let server = Server::start(&["--share", s(&share), "--inbox", s(&inbox)]);
    let mut args = vec!["get", &server.addr, "-o", s(&dl), "tree"];
    args.extend(names.iter().map(String::as_str));
    let out = lanlink(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in &names {
        assert!(same(&share.join(name), &dl.join(name)), "{name} differs");
        assert!(
            text(&out.stdout).contains(&format!("{name} (")),
            "{}",
            text(&out.stdout)
        );
    }
    for f in ["tree/a", "tree/b/c", "tree/b/d/e"] {
        assert!(same(&share.join(f), &dl.join(f)), "{f} differs");
    }

    // Uploads: every size, and the folder under another name.
    for name in &names {
        let out = lanlink(&["put", &server.addr, s(&share.join(name))]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            same(&share.join(name), &inbox.join(name)),
            "uploaded {name} differs"
        );
    }
    let out = lanlink(&["put", &server.addr, s(&share.join("tree")), "--as", "copy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["a", "b/c", "b/d/e"] {
        assert!(same(
            &share.join("tree").join(f),
            &inbox.join("copy").join(f)
        ));
    }
    // No partial files were left behind anywhere.
    let leftovers: Vec<_> = walk(&t.0)
        .into_iter()
        .filter(|p| p.contains("lanlink-part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(server.terminate().success());
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// Polls until `path` holds at least `len` bytes.
fn wait_for_size(path: &Path, len: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(path).map_or(0, |m| m.len()) < len {
        assert!(
            Instant::now() < deadline,
            "{} never reached {len} bytes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_killed_download_resumes_from_the_verified_prefix() {
    let t = Scratch::new("resume-get");
    let (share, dl) = (t.dir("share"), t.dir("dl"));
    write_file(&share.join("big.bin"), 64 * MIB, 1);
    let server = Server::start(&["--share", s(&share)]);

    let mut child = lanlink_spawn(&[
        "get",
        &server.addr,
        "big.bin",
        "-o",
        s(&dl),
        "--limit-rate",
        "20M",
    ]);
    let part = dl.join(".big.bin.lanlink-part");
    wait_for_size(&part, 8 * MIB as u64);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dl.join("big.bin").exists(),
        "nothing under the final name after kill -9"
    );
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept >= 8 * MIB as u64 && kept < 64 * MIB as u64);

    let out = lanlink(&["get", &server.addr, "big.bin", "-o", s(&dl)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("resuming big.bin from byte"),
        "{}",
        text(&out.stdout)
    );
    assert!(same(&share.join("big.bin"), &dl.join("big.bin")));
    assert!(!part.exists());
    assert!(server.terminate().success());
}

#[test]
fn an_upload_interrupted_by_a_killed_server_resumes() {
    let t = Scratch::new("resume-put");
    let (src, inbox) = (t.dir("src"), t.dir("inbox"));
    write_file(&src.join("big.bin"), 64 * MIB, 2);
    let server = Server::start(&["--inbox", s(&inbox)]);
    let mut child = lanlink_spawn(&[
        "put",
        &server.addr,
        s(&src.join("big.bin")),
        "--limit-rate",
        "20M",
    ]);
    // The server names the partial file after its uploader too.
    let part = || {
        walk(&inbox)
            .into_iter()
            .find(|p| p.contains("/.big.bin.") && p.ends_with(".lanlink-part"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while part().is_none() {
        assert!(Instant::now() < deadline, "no partial file in the inbox");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for_size(Path::new(&part().unwrap()), 8 * MIB as u64);
    server.kill();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the client reports the lost server");
    assert!(!inbox.join("big.bin").exists());

    let server = Server::start(&["--inbox", s(&inbox)]);
    let out = lanlink(&["put", &server.addr, s(&src.join("big.bin"))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("resuming big.bin from byte"),
        "{}",
        text(&out.stdout)
    );
    assert!(same(&src.join("big.bin"), &inbox.join("big.bin")));
    assert!(server.terminate().success());
}

/// Forwards one connection to `target`, flipping the byte at `flip_at` of
/// the server-to-client direction.
fn corrupting_proxy(target: String, flip_at: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(target).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c_read, &mut s_write);
            let _ = s_write.shutdown(std::net::Shutdown::Write);
        });
        let (mut s_read, mut c_write) = (server, client);
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0;
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (seen..seen + n).contains(&flip_at) {
                buf[flip_at - seen] ^= 0x01;
            }
            seen += n;
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(std::net::Shutdown::Write);
    });
    addr
}

#[test]
fn a_chunk_corrupted_in_transit_publishes_nothing() {
    let t = Scratch::new("corrupt");
    let (share, dl) = (t.dir("share"), t.dir("dl"));
    write_file(&share.join("f.bin"), 8 * MIB, 3);
    // Plain TCP: only the content hash can notice; it must, and the
    // partial file must not be kept for resuming.
    let server = Server::start(&["--plain", "--share", s(&share)]);
    // 3 MiB into the stream is well inside chunk data (frames are 256 KiB
    // of data behind a 22-byte head).
    let proxy = corrupting_proxy(server.addr.clone(), 3 * MIB + 12_345);
    let out = lanlink(&["get", "--plain", &proxy, "f.bin", "-o", s(&dl)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("arrived corrupted") && err.contains("nothing was saved"),
        "{err}"
    );
    assert!(!dl.join("f.bin").exists());
    assert!(
        !dl.join(".f.bin.lanlink-part").exists(),
        "a corrupt partial file must not be resumed"
    );
    assert!(server.terminate().success());

    // TLS (the default): the record carrying the flipped bit fails
    // authentication, the connection ends, and nothing is published.
    let server = Server::start(&["--share", s(&share)]);
    let proxy = corrupting_proxy(server.addr.clone(), 3 * MIB + 12_345);
    let out = lanlink(&["get", &proxy, "f.bin", "-o", s(&dl)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(!dl.join("f.bin").exists(), "{err}");
    // What did arrive was authenticated: a retry without the proxy resumes
    // from it and completes.
    let out = lanlink(&["get", &server.addr, "f.bin", "-o", s(&dl)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(same(&share.join("f.bin"), &dl.join("f.bin")));
    assert!(server.terminate().success());
}

#[test]
fn users_send_files_to_each_other_through_the_server() {
    let t = Scratch::new("send");
    let (src, rx) = (t.dir("src"), t.dir("rx"));
    write_file(&src.join("photo.jpg"), 3 * MIB + 17, 4);
    let server = Server::start(&[]);
    let receiver = lanlink_spawn(&[
        "receive",
        &server.addr,
        "--name",
        "bob",
        "-o",
        s(&rx),
        "--yes",
        "--count",
        "1",
    ]);
    // Wait until bob is connected before offering.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = lanlink(&[
            "send",
            &server.addr,
            "--to",
            "bob",
            s(&src.join("photo.jpg")),
        ]);
        if out.status.success()
            || !text(&out.stderr).contains("no user named")
            || Instant::now() > deadline
        {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("delivered"),
        "{}",
        text(&out.stdout)
    );
    let done = receiver.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(same(&src.join("photo.jpg"), &rx.join("photo.jpg")));

    // Without --yes and without a terminal, offers are declined.
    let receiver = lanlink_spawn(&[
        "receive",
        &server.addr,
        "--name",
        "carol",
        "-o",
        s(&rx),
        "--count",
        "1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = lanlink(&[
            "send",
            &server.addr,
            "--to",
            "carol",
            s(&src.join("photo.jpg")),
        ]);
        if !text(&out.stderr).contains("no user named") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("declined by the receiver"),
        "{}",
        text(&out.stderr)
    );
    drop(receiver);
    assert!(server.terminate().success());
}

#[test]
fn hostile_names_are_refused_by_name() {
    let t = Scratch::new("names");
    let share = t.dir("share");
    let server = Server::start(&["--share", s(&share), "--inbox", s(&t.dir("inbox"))]);
    for name in ["../etc/passwd", "/etc/passwd", "a/../../b", "..."] {
        let out = lanlink(&["get", &server.addr, name, "-o", s(&t.dir("dl"))]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(&format!("{name:?}")),
            "{name}: {}",
            text(&out.stderr)
        );
    }
    let out = lanlink(&["put", &server.addr, s(&share), "--as", "../evil"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"../evil\""),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        walk(&t.0).len(),
        3,
        "only the three folders exist: {:?}",
        walk(&t.0)
    );
    assert!(server.terminate().success());
}
