//! Out of file descriptors, the browser server's accept loop backs off
//! instead of spinning: `accept` keeps failing while connections wait in
//! the backlog, and each failure used to be retried at once (100 % CPU).
//! Alone in its test binary: it lowers this process's descriptor limit
//! (with `prlimit`, util-linux).

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use lanlink_server::http::{serve_http_with, HttpConfig, LatestFrames};
use lanlink_transport::Shutdown;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// User and system CPU time of this process so far, in clock ticks, read
/// from `stat` (`/proc/self/stat`, opened while descriptors were left).
fn cpu_ticks(stat: &mut std::fs::File) -> u64 {
    use std::io::{Read, Seek};
    stat.rewind().unwrap();
    let mut stat_text = String::new();
    stat.read_to_string(&mut stat_text).unwrap();
    let stat = stat_text;
    // The fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn set_soft_fd_limit(limit: usize) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={limit}:"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success());
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Thirty connections wait in the backlog before the server accepts.
    let waiting: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    let before = open_fds();
    // Room for a couple of accepts, then every accept fails.
    set_soft_fd_limit(before + 2);
    let shutdown = Shutdown::new();
    let config = HttpConfig {
        max_connections: 1000,
        max_per_address: 1000,
        header_timeout: Duration::from_secs(30),
        ..HttpConfig::default()
    };
    let server = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || serve_http_with(listener, LatestFrames::new(), config, shutdown))
    };
    std::thread::sleep(Duration::from_millis(300));
    let start = cpu_ticks(&mut stat);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(&mut stat) - start;
    // Give the descriptors back before anything else needs one.
    drop(waiting);
    std::thread::sleep(Duration::from_millis(100));
    set_soft_fd_limit(4096);
    eprintln!("{spent} ticks of CPU in one second of failing accepts");
    assert!(spent < 20, "the accept loop spun: {spent} ticks in 1 s");
    shutdown.trigger();
    server.join().unwrap().unwrap();
}
