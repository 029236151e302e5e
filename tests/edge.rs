//! Edge hardening (SPEC 2 `[server.limits]`, 4, 5): timeouts, size limits,
//! connection limits, PROXY protocol, WebSocket pass-through, and the client
//! address from the socket to the decision and the forwarded headers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::admin::eventually;
use crate::common::gateway::{Client, Gateway, get, raw};
use crate::common::stub::Stub;

fn book(limits: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n[server.limits]\n{limits}\n\
         [[route]]\nupstream = \"{{upstream}}\"\n"
    )
}

/// Waits until the server closes `stream` (EOF or reset); how long it took.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if start.elapsed() < limit => return Some(start.elapsed()),
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[test]
fn a_slow_request_head_gets_the_connection_closed() {
    let stub = Stub::start();
    let gw = Gateway::start(&book("header_timeout = \"300ms\""), Some(stub.addr));
    // Slowloris: a head that never ends.
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n")
        .expect("write");
    assert!(
        closed_within(&mut s, Duration::from_secs(3)).is_some(),
        "slow head kept open"
    );
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(gw.addr).expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).is_some(),
        "silent connection kept open"
    );
    assert!(stub.seen().is_empty());
}

#[test]
fn idle_keep_alive_connections_close_after_idle_timeout_not_header_timeout() {
    let stub = Stub::start();
    let gw = Gateway::start(
        &book("header_timeout = \"300ms\"\nidle_timeout = \"10s\""),
        Some(stub.addr),
    );
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    // Idle for longer than header_timeout: still open, because idle is not a slow head.
    std::thread::sleep(Duration::from_millis(800));
    c.send(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);

    let gw = Gateway::start(&book("idle_timeout = \"300ms\""), Some(stub.addr));
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    s.write_all(b"GET /3 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /4 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    assert!(c.is_closed(), "idle connection kept open past idle_timeout");
}

#[test]
fn a_slow_upstream_is_not_an_idle_client() {
    let stub = Stub::start();
    let gw = Gateway::start(
        &book("header_timeout = \"200ms\"\nidle_timeout = \"300ms\"\nupstream_timeout = \"5s\""),
        Some(stub.addr),
    );
    let r = get(gw.addr, "/slow-head/900", &[]);
    assert_eq!((r.status, r.text()), (200, "slow".to_owned()));
}

#[test]
fn headers_over_max_header_bytes_get_431() {
    let stub = Stub::start();
    let gw = Gateway::start(&book("max_header_bytes = 8192"), Some(stub.addr));
    let big = format!("X-Big: {}", "a".repeat(10_000));
    let r = get(gw.addr, "/", &[&big]);
    assert_eq!(r.status, 431);
    let small = format!("X-Small: {}", "a".repeat(4_000));
    assert_eq!(get(gw.addr, "/", &[&small]).status, 200);
    assert_eq!(stub.targets(), ["/"]);
}

#[test]
fn bodies_over_max_body_bytes_get_413_without_being_read() {
    let stub = Stub::start();
    let gw = Gateway::start(&book("max_body_bytes = 1000"), Some(stub.addr));
    // Declared too large: refused before the upstream hears of it.
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["reason"], "body_too_large");
    assert!(c.is_closed(), "connection kept open after a 413");
    assert!(stub.seen().is_empty());
    // Chunked and growing past the limit: 413 once it crosses, the rest unread.
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("200\r\n{}\r\n", "x".repeat(0x200));
    for _ in 0..3 {
        c.send(chunk.as_bytes());
    }
    let r = c.read(false);
    assert_eq!(r.status, 413, "{}", r.text());
    // Within the limit: forwarded whole.
    let mut within = b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".to_vec();
    within.extend_from_slice(&[b'x'; 1000]);
    let ok = raw(gw.addr, &within);
    assert_eq!((ok.status, ok.text()), (200, "1000".to_owned()));
}

#[test]
fn a_stalled_body_fails_after_body_timeout() {
    let stub = Stub::start();
    let gw = Gateway::start(&book("body_timeout = \"300ms\""), Some(stub.addr));
    let mut c = Client::connect(gw.addr);
    c.send(b"POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let start = Instant::now();
    let r = c.read(false);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn max_connections_stops_accepting_and_resumes_below_it() {
    let stub = Stub::start();
    let gw = Gateway::start(&book("max_connections = 2"), Some(stub.addr));
    let mut a = Client::connect(gw.addr);
    let mut b = Client::connect(gw.addr);
    for c in [&mut a, &mut b] {
        c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read(false).status, 200);
    }
    // The third is queued by the kernel but not served while two are open.
    let mut third = TcpStream::connect(gw.addr).expect("connect");
    third
        .write_all(b"GET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("write");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    assert!(
        third.read(&mut buf).is_err(),
        "served beyond max_connections"
    );
    drop(a);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = Vec::new();
    third
        .read_to_end(&mut answer)
        .expect("answer once below the limit");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

fn proxy_book(trusted: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n\
         [client_ip]\ntrusted_proxies = [{trusted}]\nproxy_protocol = true\n\
         [lists]\noffice = [\"198.51.100.0/24\"]\n\
         [[route]]\nupstream = \"{{upstream}}\"\n\
         [[rule]]\nname = \"office\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\nnot_ip = [\"@office\"]\n"
    )
}

fn proxy_v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&source);
    h.extend_from_slice(&[10, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

#[test]
fn proxy_protocol_from_a_trusted_peer_states_the_client() {
    let stub = Stub::start();
    let gw = Gateway::start(&proxy_book("\"127.0.0.1\""), Some(stub.addr));
    let r = raw(
        gw.addr,
        b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 8080\r\nGET /admin HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v2 = proxy_v2([198, 51, 100, 8], 40001);
    v2.extend_from_slice(b"GET /admin/v2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(raw(gw.addr, &v2).status, 200);
    let outside = raw(
        gw.addr,
        b"PROXY TCP4 192.0.2.1 10.0.0.1 40000 8080\r\nGET /admin HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(outside.status, 403);
    let seen = stub.seen();
    assert_eq!(seen[0].headers["x-forwarded-for"], "198.51.100.7");
    assert_eq!(seen[1].headers["x-forwarded-for"], "198.51.100.8");
    let lines = gw.log_lines(3);
    assert_eq!(lines[0]["peer"], "198.51.100.7");
    assert_eq!(lines[2]["client_ip"], "192.0.2.1");
    // A trusted peer without a valid PROXY header is disconnected.
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"PROXY TCP4 nonsense\r\n\r\n",
    ] {
        let r = raw(gw.addr, bad);
        assert_eq!(
            r.status,
            0,
            "{:?} was answered",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn proxy_protocol_from_an_untrusted_peer_is_not_believed() {
    let stub = Stub::start();
    let gw = Gateway::start(&proxy_book("\"10.0.0.0/8\""), Some(stub.addr));
    let r = raw(
        gw.addr,
        b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 8080\r\nGET /admin HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(stub.seen().is_empty());
    assert_eq!(get(gw.addr, "/admin", &[]).status, 403);
}

#[test]
fn websocket_upgrades_pass_through_when_allowed() {
    let stub = Stub::start();
    let gw = Gateway::start(
        &book("idle_timeout = \"2s\"").replace(
            "[[route]]",
            "[[rule]]\nname = \"no-admin\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\n[[route]]",
        ),
        Some(stub.addr),
    );
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"GET /chat/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    for message in [
        &b"hello"[..],
        b"second message",
        &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
    ] {
        s.write_all(message).expect("send");
        let mut echo = vec![0u8; message.len()];
        s.read_exact(&mut echo).expect("echo");
        assert_eq!(echo, message);
    }
    let seen = stub.seen().pop().expect("upgrade forwarded");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(
        seen.headers["sec-websocket-key"],
        "dGhlIHNhbXBsZSBub25jZQ=="
    );
    // The spliced connection ends after idle_timeout without traffic.
    assert!(
        closed_within(&mut s, Duration::from_secs(6)).is_some(),
        "upgraded connection outlived idle_timeout"
    );
}

#[test]
fn a_client_that_leaves_gives_its_connection_slot_back_at_once() {
    let stub = Stub::start();
    let gw = Gateway::start(
        &book("max_connections = 1\nupstream_timeout = \"60s\""),
        Some(stub.addr),
    );
    // The upstream answers this one after 30 s; its client leaves at once.
    let mut first = TcpStream::connect(gw.addr).expect("connect");
    first
        .write_all(b"GET /slow-head/30000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert!(eventually(Duration::from_secs(5), || !stub
        .seen()
        .is_empty()));
    drop(first);
    // The only connection slot is free again: the next client is answered
    // (it gives up after 10 s, long before the upstream answers).
    let r = get(gw.addr, "/next", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn a_client_that_takes_no_bytes_is_cut_after_idle_timeout() {
    // More than the socket buffers hold, to a client that never reads.
    let big = "a".repeat(32 << 20);
    let gw = Gateway::start_with(
        "[server.limits]\nidle_timeout = \"300ms\"\n[[route]]\nroot = \"site\"\n",
        None,
        &[("site/big.txt", &big)],
        1,
    );
    let admin = gw.admin.expect("admin on");
    let mut stalled = TcpStream::connect(gw.addr).expect("connect");
    stalled
        .write_all(b"GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let metrics = || crate::common::admin::admin_request(admin, "GET", "/metrics", &[]).text();
    assert!(
        eventually(Duration::from_secs(10), || {
            crate::common::admin::sample(
                &metrics(),
                "edgeguard_connection_errors_total{kind=\"send_timeout\"}",
            ) == 1.0
        }),
        "{}",
        metrics()
    );
    drop(stalled);
}
