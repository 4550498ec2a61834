//! `examples/serve.rs` runs as a process and does what it says: TLS with
//! a certificate it keeps across runs, its shared folder and inbox, a stop
//! when its input ends, and an error for a folder that is missing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lanlink_client::{Capabilities, Quiet, Session, TransferOptions};

/// `target/debug/examples/serve`, next to this test's `deps/` folder:
/// `cargo test -p lanlink-server` (or `--workspace`) builds the examples,
/// `cargo test --test example` alone does not.
fn example_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(format!("serve{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo test -p lanlink-server`, which builds the examples",
        path.display()
    );
    path
}

/// Starts the example in `dir`; returns it, its address and the
/// fingerprint it printed.
fn serve(dir: &Path, share: &str) -> (Child, String, String) {
    let mut child = Command::new(example_path())
        .args(["127.0.0.1:0", share, "inbox"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut fingerprint = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, fp)) = line.split_once(": SHA256:") {
            fingerprint = fp.to_owned();
        }
        if let Some(rest) = line.strip_prefix("serving on ") {
            let addr = rest.split(';').next().unwrap().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return (child, addr, fingerprint);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the example did not say where it serves");
}

#[test]
fn the_serve_example_serves_its_folders_over_tls_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
    std::fs::write(dir.path().join("shared/hello.txt"), b"hello, LAN").unwrap();
    std::fs::write(dir.path().join("up.txt"), b"for the inbox").unwrap();

    let (mut child, addr, first) = serve(dir.path(), "shared");
    let fingerprint = format!("SHA256:{first}").parse().unwrap();
    let (session, _events) = Session::builder(&addr)
        .server_fingerprint(fingerprint)
        .capabilities(Capabilities::FILE)
        .connect()
        .unwrap();
    let listed = session.list("", false).unwrap();
    assert!(listed.iter().any(|e| e.name == "hello.txt"), "{listed:?}");
    let got = dir.path().join("got");
    let options = TransferOptions::default();
    session
        .get("hello.txt", &got, &options, &mut Quiet)
        .unwrap();
    assert_eq!(std::fs::read(got.join("hello.txt")).unwrap(), b"hello, LAN");
    session
        .put(&dir.path().join("up.txt"), &options, &mut Quiet)
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("inbox/up.txt")).unwrap(),
        b"for the inbox"
    );
    session.close("done");
    // Enter stops it, cleanly.
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());

    // The certificate is kept: the same fingerprint next time.
    let (mut child, _, second) = serve(dir.path(), "shared");
    assert_eq!(first, second);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    // A share that is not there: an error before it serves.
    let out = Command::new(example_path())
        .args(["127.0.0.1:0", "missing", "inbox"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("NotAFolder"), "{said}");
}
