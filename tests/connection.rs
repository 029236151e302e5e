//! One client connection carrying several requests: keep-alive and
//! pipelining, the close rules of HTTP/1.0 and `Connection: close`, response
//! framing (a length, chunked, or the connection's end), and a connection
//! that goes on after a request the gateway's own loop does not serve (one
//! with a body) hands it to hyper.

use std::io::Read;
use std::time::Duration;

use crate::common::admin::eventually;
use crate::common::gateway::{Client, Gateway};
use crate::common::stub::Stub;

const BOOK: &str = "[[route]]\nupstream = \"{upstream}\"\n";

fn gateway() -> (Stub, Gateway) {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    (stub, gw)
}

/// Everything the gateway sends until it closes the connection.
fn read_to_close(c: &mut Client) -> String {
    let mut all = Vec::new();
    let stream = c.reader_mut();
    stream.read_to_end(&mut all).expect("read to close");
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: t\r\n\r\nGET /status/404 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let a = c.read(false);
    let b = c.read(true);
    let missing = c.read(false);
    assert_eq!((a.status, a.text().as_str()), (200, "ok"));
    assert_eq!(b.status, 200);
    assert_eq!(b.header("content-length"), Some("2"), "{b:?}");
    assert!(b.body.is_empty());
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "status 404")
    );
    let ids: Vec<_> = [&a, &b, &missing]
        .iter()
        .map(|r| r.header("x-request-id").expect("request id").to_owned())
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    assert!(
        [&a, &b, &missing]
            .iter()
            .all(|r| r.header("date").is_some())
    );
    // Still open: one more request on it.
    c.send(b"GET /d HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    assert_eq!(stub.targets(), ["/a", "/b", "/status/404", "/d"]);
}

#[test]
fn a_request_with_a_body_between_bodiless_ones_is_served_on_the_same_connection() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    // The body's first bytes come with the head; the rest after the answer
    // to the first request: none of them may be read as a request.
    c.send(b"POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello");
    c.send(b" world");
    assert_eq!(c.read(false).status, 200);
    c.send(b"GET /three HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    let seen = stub.seen();
    let targets: Vec<_> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/one", "/two", "/three"]);
    assert_eq!(seen[1].body, b"hello world");
}

#[test]
fn repeated_content_length_after_a_served_request_is_refused() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    c.send(b"POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello");
    assert_eq!(c.read(false).status, 400);
    assert!(c.is_closed());
    assert_eq!(stub.targets(), ["/one"]);
}

#[test]
fn http_1_0_gets_a_1_0_answer_and_the_connection_closes() {
    let (_stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /a HTTP/1.0\r\nHost: t\r\n\r\n");
    let all = read_to_close(&mut c);
    assert!(all.starts_with("HTTP/1.0 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\nok"), "{all}");
    // A body of unknown length is ended by closing the connection.
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /stream-out/3 HTTP/1.0\r\nHost: t\r\n\r\n");
    let all = read_to_close(&mut c);
    let (head, body) = all.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(body, "chunk-1\nchunk-2\nchunk-3\n");
}

#[test]
fn http_1_0_keep_alive_is_kept_when_asked_for() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    for path in ["/a", "/b"] {
        c.send(
            format!("GET {path} HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        let r = c.read(false);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    assert_eq!(stub.targets(), ["/a", "/b"]);
}

#[test]
fn connection_close_ends_the_connection_after_the_answer() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    assert_eq!(stub.targets(), ["/a"], "a request after close was served");
}

#[test]
fn a_body_of_unknown_length_is_chunked_and_the_connection_goes_on() {
    let (_stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /stream-out/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{r:?}");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.text(), "chunk-1\nchunk-2\nchunk-3\n");
    // Its HEAD has neither a body nor a made-up length.
    c.send(b"HEAD /stream-out/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read(true);
    assert_eq!(head.status, 200);
    c.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).text(), "ok");
}

#[test]
fn a_shutdown_closes_idle_connections_and_busy_ones_after_their_answer() {
    let (stub, mut gw) = gateway();
    let mut idle = Client::connect(gw.addr);
    idle.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.read(false).status, 200);
    let mut busy = Client::connect(gw.addr);
    busy.send(b"GET /slow-head/500 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(Duration::from_secs(5), || stub.seen().len() == 2));
    let running = gw.take();
    running.begin_shutdown();
    assert!(idle.is_closed(), "an idle connection outlived the shutdown");
    let r = busy.read(false);
    assert_eq!((r.status, r.text().as_str()), (200, "slow"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(busy.is_closed());
    running.wait();
}

#[test]
fn http_2_starts_only_on_a_connection_s_first_bytes() {
    let (stub, gw) = gateway();
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    // The HTTP/2 preface after an HTTP/1 request is not HTTP/2.
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    let answer = read_to_close(&mut c);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    assert_eq!(stub.targets(), ["/a"]);
}

/// A refusal, as one loop or the other answers it: everything but `Date`,
/// with the request id taken out of the headers and the body.
fn refusal_shape(r: &crate::common::gateway::Raw) -> (u16, Vec<(String, String)>, String) {
    let id = r.header("x-request-id").expect("request id").to_owned();
    let mut headers: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n != "date")
        .map(|(n, v)| (n.clone(), v.replace(&id, "ID")))
        .collect();
    headers.sort();
    (r.status, headers, r.text().replace(&id, "ID"))
}

#[test]
fn refusals_read_the_same_from_the_gateways_loop_and_from_hypers() {
    let jwks = crate::common::repo().join("tests/fixtures/auth/jwks.json");
    let book = format!(
        "[auth]\njwks_file = {:?}\n[[route]]\nupstream = \"{{upstream}}\"\n\
         [[rule]]\nname = \"secret\"\naction = \"deny\"\npath_prefix = [\"/secret\"]\n\
         [[rule]]\nname = \"admins\"\naction = \"require\"\npath_prefix = [\"/admin\"]\n\
         roles = [\"admin\"]\n",
        jwks.display().to_string()
    );
    let stub = Stub::start();
    let gw = Gateway::start(&book, Some(stub.addr));
    let cases: &[(&str, &str, u16)] = &[
        ("/secret", "", 403),
        ("/secret", "Accept: text/html\r\n", 403),
        ("/admin", "", 401),
        ("/admin", "Authorization: Bearer nonsense\r\n", 401),
        ("/a/%2e%2e%2f", "", 400),
    ];
    // HTTP/1.0: the 400 says it closes on both loops too.
    let ours =
        crate::common::gateway::raw(gw.addr, b"GET /a/%2e%2e%2f HTTP/1.0\r\nHost: t\r\n\r\n");
    let hypers = crate::common::gateway::raw(
        gw.addr,
        b"GET /a/%2e%2e%2f HTTP/1.0\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(ours.header("connection"), Some("close"), "{ours:?}");
    assert_eq!(refusal_shape(&ours), refusal_shape(&hypers));
    for &(target, extra, status) in cases {
        // Bodiless: the gateway's loop. With a length: hyper's. A 400 ends
        // the connection on both; other refusals leave it open.
        let closes = status == 400;
        let ours = answer(
            gw.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"),
            closes,
        );
        let hypers = answer(
            gw.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n{extra}\r\n"),
            closes,
        );
        assert_eq!(ours.status, status, "{target} {extra:?}: {ours:?}");
        assert_eq!(
            refusal_shape(&ours),
            refusal_shape(&hypers),
            "{target} {extra:?}"
        );
    }
    // HEAD: the same head, the length of the body it does not carry.
    let get = answer(gw.addr, "GET /secret HTTP/1.1\r\nHost: t\r\n\r\n", false);
    let mut c = Client::connect(gw.addr);
    c.send(b"HEAD /secret HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.read(true);
    assert_eq!(head.status, 403);
    assert_eq!(
        head.header("content-length").map(str::to_owned),
        Some(get.body.len().to_string())
    );
    c.send(b"GET /secret HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).json()["reason"], "path_denied");
    assert!(stub.targets().is_empty(), "{:?}", stub.targets());
}

/// The answer to one request on a new connection, checking that the
/// gateway then closes the connection or (when `closes` is false) answers
/// another request on it.
fn answer(addr: std::net::SocketAddr, request: &str, closes: bool) -> crate::common::gateway::Raw {
    let mut c = Client::connect(addr);
    c.send(request.as_bytes());
    let r = c.read(false);
    if closes {
        assert!(c.is_closed(), "not closed after {r:?}");
    } else {
        c.send(b"GET /secret HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read(false).status, 403, "closed after {r:?}");
    }
    r
}

#[test]
fn header_rules_find_names_in_any_case_on_both_loops() {
    let book = "[[route]]\nupstream = \"{upstream}\"\n\
                [[rule]]\nname = \"scanners\"\naction = \"deny\"\n\
                header_regex = { \"user-agent\" = '(?i)sqlmap' }\n";
    let stub = Stub::start();
    let gw = Gateway::start(book, Some(stub.addr));
    for name in ["User-Agent", "USER-AGENT", "user-agent"] {
        // Bodiless: the gateway's loop. With a length: hyper's.
        for length in ["", "Content-Length: 0\r\n"] {
            for (agent, status) in [("sqlmap/1.7", 403), ("curl/8", 200)] {
                let r = crate::common::gateway::raw(
                    gw.addr,
                    format!("GET / HTTP/1.1\r\nHost: t\r\n{length}{name}: {agent}\r\n\r\n")
                        .as_bytes(),
                );
                assert_eq!(r.status, status, "{name}: {agent} {length:?}");
            }
        }
    }
}
