//! `edgeguard run` as a process: signals, exit codes, memory under a large
//! upload.

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::common::gateway::{Client, get};
use crate::common::process::Process;
use crate::common::stub::Stub;

fn rulebook(upstream: std::net::SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n\
         [server.limits]\nshutdown_grace = \"5s\"\n\
         [[route]]\nupstream = \"http://{upstream}\"\n\
         [[rule]]\nname = \"dotfiles\"\naction = \"deny\"\npath_regex = ['/\\.']\n"
    )
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let stub = Stub::start();
    let mut gw = Process::start(&rulebook(stub.addr), &[], &[]);
    let addr = gw.addr;
    let in_flight = std::thread::spawn(move || get(addr, "/slow-head/700", &[]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while stub.seen().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    gw.signal("TERM");
    let r = in_flight.join().expect("client");
    assert_eq!((r.status, r.text()), (200, "slow".to_owned()));
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(gw.lines().iter().any(|l| l.contains("edgeguard stopped")));
}

#[test]
fn a_rulebook_that_does_not_load_exits_1_with_located_errors() {
    let folder = crate::common::Folder::with(&[("r.toml", "[server]\nlisten = [\"nope\"]\n")]);
    let out = std::process::Command::new(crate::common::binary())
        .args(["run", "--config"])
        .arg(folder.path("r.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("r.toml:2:11: invalid address \"nope\""),
        "{stderr}"
    );
}

#[test]
fn connection_errors_the_parser_answers_itself_are_logged_with_their_kind() {
    let stub = Stub::start();
    let book = rulebook(stub.addr).replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\nheader_timeout = \"300ms\"\nmax_header_bytes = 8192",
    );
    let gw = Process::start(&book, &[], &[]);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let r = crate::common::gateway::raw(gw.addr, big.as_bytes());
    assert_eq!(r.status, 431);
    let mut slow = std::net::TcpStream::connect(gw.addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .expect("write");
    let logged = |kind: &str| {
        gw.wait_line(&format!("\"kind\":\"{kind}\""), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no {kind} line in:\n{}", gw.lines().join("\n")))
    };
    assert!(logged("headers_too_large").contains("connection error"));
    assert!(logged("header_timeout").contains("connection error"));
}

/// A large upload streams through: the gateway's peak memory stays far below
/// the body's size.
#[test]
fn a_large_upload_streams_with_bounded_memory() {
    const MIB: usize = 1 << 20;
    const TOTAL: usize = 1024 * MIB;
    let stub = Stub::start();
    let gw = Process::start(&rulebook(stub.addr), &[], &[]);
    let before = gw.memory_kb("VmHWM");
    let mut client = Client::connect(gw.addr);
    client.send(
        format!("POST /count HTTP/1.1\r\nHost: test\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes(),
    );
    let chunk = vec![b'x'; MIB];
    for _ in 0..TOTAL / MIB {
        client.send(&chunk);
    }
    let r = client.read(false);
    assert_eq!((r.status, r.text()), (200, TOTAL.to_string()));
    let peak = gw.memory_kb("VmHWM");
    assert!(
        peak < before + 32 * 1024,
        "peak memory grew from {before} kB to {peak} kB for a {} MiB upload",
        TOTAL / MIB
    );
    let _ = std::io::stdout().flush();
}
