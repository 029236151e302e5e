//! Upstream answers end to end, for requests without a body (the gateway's
//! own HTTP/1.1 exchange, `src/fetch.rs`): every framing RFC 9112 allows
//! reaches the client whole, an ambiguous one is a 502, and a connection is
//! reused only when nothing can be left of the previous answer on it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::gateway::{Client, Gateway, get};
use crate::common::scripted::{After, Scripted};

const PASS: &str = r#"
[[route]]
upstream = "{upstream}"
"#;

fn answer(bytes: &str, after: After) -> (Vec<u8>, After) {
    (bytes.as_bytes().to_vec(), after)
}

/// A short body named after the path, framed by Content-Length.
fn plain(target: &str) -> (Vec<u8>, After) {
    let body = target.trim_start_matches('/');
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    (head.into_bytes(), After::Keep)
}

/// Sends `GET path` and reads until the gateway ends the connection (or the
/// client's read times out after `wait`): what came, and how reading ended.
fn get_until_closed(
    addr: std::net::SocketAddr,
    path: &str,
    wait: Duration,
) -> (String, std::io::Result<usize>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .expect("send");
    let mut received = Vec::new();
    let ended = stream.read_to_end(&mut received);
    (String::from_utf8_lossy(&received).into_owned(), ended)
}

#[test]
fn chunked_close_delimited_and_informational_answers_reach_the_client_whole() {
    let upstream = Scripted::start(|target| match target {
        "/chunked" => answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n",
            After::Keep,
        ),
        "/until-close" => answer(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then the end",
            After::Close,
        ),
        "/hints" => answer(
            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            After::Keep,
        ),
        "/head" => answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", After::Keep),
        "/no-content" => answer("HTTP/1.1 204 No Content\r\n\r\n", After::Keep),
        other => plain(other),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    let r = get(gw.addr, "/chunked", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(r.header("x-trailer"), None);
    let r = get(gw.addr, "/until-close", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "all of it, then the end")
    );
    let r = get(gw.addr, "/hints", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "final"));
    let mut client = Client::connect(gw.addr);
    client.send(b"HEAD /head HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = client.read(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    client.send(b"GET /no-content HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.read(false).status, 204);
    // The client connection is still in step after both bodiless answers.
    client.send(b"GET /next HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = client.read(false);
    assert_eq!((r.status, r.text().as_str()), (200, "next"));
}

#[test]
fn ambiguous_or_broken_upstream_answers_are_502() {
    let cases = [
        (
            "/cl-and-te",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "/two-lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "/same-length-twice",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "/length-list",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
        (
            "/signed-length",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "/gzip-then-chunked",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "/not-chunked",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
        ),
        (
            "/folded",
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            "/space-before-colon",
            "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        ),
        (
            "/unasked-upgrade",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ),
        ("/not-http", "SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        ("/nothing", ""),
    ];
    let upstream = Scripted::start(move |target| {
        let bytes = cases
            .iter()
            .find(|(path, _)| *path == target)
            .map_or("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", |(_, b)| b);
        answer(bytes, After::Close)
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    for (path, _) in cases {
        let r = get(gw.addr, path, &[]);
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(r.json()["reason"], "upstream_unreachable", "{path}");
    }
    assert_eq!(get(gw.addr, "/fine", &[]).text(), "ok");
}

#[test]
fn a_connection_is_reused_only_after_a_cleanly_framed_body() {
    let upstream = Scripted::start(|target| match target {
        "/extra" => answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            After::Keep,
        ),
        "/says-close" => answer(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            After::Keep,
        ),
        "/http10" => answer(
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::Keep,
        ),
        "/chunked" => answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            After::Keep,
        ),
        other => plain(other),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    let mut client = Client::connect(gw.addr);
    let mut fetch = |path: &str| {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = client.read(false);
        assert_eq!(r.status, 200, "{path}");
        r.text()
    };
    for path in [
        "/a",
        "/b",
        "/extra",
        "/c",
        "/says-close",
        "/d",
        "/http10",
        "/e",
        "/chunked",
        "/f",
    ] {
        let body = fetch(path);
        let expected = match path {
            "/extra" | "/says-close" | "/http10" | "/chunked" => "ok",
            other => other.trim_start_matches('/'),
        };
        assert_eq!(body, expected, "{path}");
    }
    let connections: Vec<usize> = upstream.requests().into_iter().map(|(c, _)| c).collect();
    // /a /b share one; bytes after /extra's body, `Connection: close` and
    // HTTP/1.0 each retire theirs; a clean chunked body keeps its own.
    assert_eq!(connections, [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]);
}

#[test]
fn an_idle_connection_the_upstream_closed_is_not_used() {
    let upstream = Scripted::start(|target| match target {
        "/then-close" => answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::Close,
        ),
        other => plain(other),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    for path in ["/then-close", "/a", "/then-close", "/b"] {
        let r = get(gw.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let connections: Vec<usize> = upstream.requests().into_iter().map(|(c, _)| c).collect();
    assert_eq!(connections, [0, 1, 1, 2]);
}

#[test]
fn a_body_cut_short_by_the_upstream_ends_the_client_connection() {
    let upstream = Scripted::start(|target| match target {
        "/short" => answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
            After::Close,
        ),
        "/short-chunked" => answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhal",
            After::Close,
        ),
        other => plain(other),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    for path in ["/short", "/short-chunked"] {
        // Ends (EOF or reset) instead of waiting for bytes that never come.
        let (text, _) = get_until_closed(gw.addr, path, Duration::from_secs(10));
        // The head may never have left the gateway's buffer; if it did, the
        // body must be visibly incomplete.
        if text.is_empty() {
            continue;
        }
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(
            !body.contains("0\r\n\r\n"),
            "{path}: the body must not look complete: {text:?}"
        );
        if path == "/short" {
            assert_eq!(body, "half", "{path}");
        }
    }
}

#[test]
fn a_chunked_body_that_could_be_read_two_ways_ends_in_an_error_and_its_connection() {
    // Each answer is followed by bytes a lax decoder would take for the next
    // response: they must never reach the next client.
    let cases = [
        ("/no-size-digit", "3\r\nabc\r\n\r\n\r\n"),
        ("/lf-in-extension", "3;x\nabc\r\nxyz\r\n0\r\n\r\n"),
        ("/cr-in-trailer", "3\r\nabc\r\n0\r\nX: a\rb\r\n\r\n"),
    ];
    let upstream = Scripted::start(
        move |target| match cases.iter().find(|(p, _)| *p == target) {
            Some((_, coding)) => answer(
                &format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{coding}\
                     HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
                ),
                After::Keep,
            ),
            None => plain(target),
        },
    );
    let gw = Gateway::start(PASS, Some(upstream.addr));
    for (path, _) in cases {
        let (text, _) = get_until_closed(gw.addr, path, Duration::from_secs(10));
        assert!(
            !text.contains("0\r\n\r\n"),
            "{path}: the body must not look complete: {text:?}"
        );
        let r = get(gw.addr, "/after", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "after"), "{path}");
    }
    let requests = upstream.requests();
    let connections: Vec<usize> = requests.iter().map(|(c, _)| *c).collect();
    assert_eq!(connections, [0, 1, 1, 2, 2, 3], "{requests:?}");
}

#[test]
fn a_body_that_stalls_longer_than_upstream_timeout_is_cut() {
    // The upstream sends half the body, then nothing: it holds the connection
    // open longer than the client below waits.
    let upstream = Scripted::start(|target| match target {
        "/stall" => answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
            After::Keep,
        ),
        other => plain(other),
    });
    let rulebook = format!("[server.limits]\nupstream_timeout = \"300ms\"\n{PASS}");
    let gw = Gateway::start(&rulebook, Some(upstream.addr));
    let (text, ended) = get_until_closed(gw.addr, "/stall", Duration::from_secs(8));
    // The gateway ended the connection: no client-side read timeout.
    assert!(
        !matches!(&ended, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "{ended:?}"
    );
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(body.len() < 10, "the body must stay incomplete: {text:?}");
    assert_eq!(get(gw.addr, "/after", &[]).text(), "after");
}

#[test]
fn a_large_body_arrives_whole_over_many_reads_and_the_connection_is_reused() {
    let body: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    let chunked_body = body.clone();
    let upstream = Scripted::start(move |target| match target {
        "/big" => {
            let mut bytes =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            bytes.extend_from_slice(&body);
            (bytes, After::Keep)
        }
        "/big-chunked" => {
            let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in chunked_body.chunks(70_001) {
                bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                bytes.extend_from_slice(piece);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            (bytes, After::Keep)
        }
        other => plain(other),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    let expected: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    let mut client = Client::connect(gw.addr);
    for path in ["/big", "/big-chunked", "/big", "/after"] {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = client.read(false);
        assert_eq!(r.status, 200, "{path}");
        if path == "/after" {
            assert_eq!(r.text(), "after");
        } else {
            assert!(
                r.body == expected,
                "{path}: {} bytes, not the upstream's",
                r.body.len()
            );
        }
    }
    let connections: Vec<usize> = upstream.requests().into_iter().map(|(c, _)| c).collect();
    assert_eq!(connections, [0, 0, 0, 0]);
}

#[test]
fn upstream_header_lines_reach_the_client_alike_from_either_loop() {
    let upstream = Scripted::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCONNECTION: X-Upstream-Secret\r\n\
             x-upstream-SECRET: 1\r\nKeep-Alive: timeout=5\r\nPROXY-Connection: keep-alive\r\n\
             Trailer: X-T\r\nX-Request-ID: upstream-chosen\r\nSet-Cookie: a=1\r\n\
             set-cookie: b=2\r\nDate: Mon, 30 Nov 2026 08:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
            After::Keep,
        )
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    // Bodiless: the gateway's own loop; with a length: hyper's. Both reach
    // the upstream through `fetch`.
    let ours = crate::common::gateway::raw(gw.addr, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    let hypers = crate::common::gateway::raw(
        gw.addr,
        b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    for r in [&ours, &hypers] {
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
        for gone in [
            "x-upstream-secret",
            "keep-alive",
            "proxy-connection",
            "trailer",
        ] {
            assert!(r.header(gone).is_none(), "{gone} reached the client: {r:?}");
        }
        assert_ne!(r.header("x-request-id"), Some("upstream-chosen"));
        assert_eq!(
            r.headers
                .iter()
                .filter(|(n, _)| n == "x-request-id")
                .count(),
            1
        );
        assert_eq!(r.header("date"), Some("Mon, 30 Nov 2026 08:00:00 GMT"));
    }
    let shape = |r: &crate::common::gateway::Raw| {
        let mut kept: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n != "x-request-id")
            .cloned()
            .collect();
        kept.sort();
        kept
    };
    assert_eq!(shape(&ours), shape(&hypers));
    assert_eq!(
        ours.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .count(),
        2
    );
}

#[test]
fn a_bodiless_answer_reaches_the_client_with_one_length_or_none() {
    // Answers to HEAD, 204 and 304 are not held to one Content-Length by
    // the framing rules (they have no body): the client still gets one (to
    // HEAD) or none (204, 304, as hyper sends them), from either loop.
    let upstream = Scripted::start(|target| match target {
        "/two" => answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-LENGTH: 7\r\n\r\n",
            After::Keep,
        ),
        "/none" => answer(
            "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\nX-Kept: yes\r\n\r\n",
            After::Keep,
        ),
        _ => answer(
            "HTTP/1.1 304 Not Modified\r\nCONTENT-length: 9\r\nContent-Length: 4\r\n\r\n",
            After::Keep,
        ),
    });
    let gw = Gateway::start(PASS, Some(upstream.addr));
    let lengths = |r: &crate::common::gateway::Raw| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Bodiless requests: the gateway's loop; with a length: hyper's.
    for length in ["", "Content-Length: 0\r\n"] {
        let head = crate::common::gateway::raw(
            gw.addr,
            format!("HEAD /two HTTP/1.1\r\nHost: t\r\n{length}\r\n").as_bytes(),
        );
        assert_eq!(
            (head.status, lengths(&head)),
            (200, vec!["5".to_owned()]),
            "{length:?}"
        );
        let none = crate::common::gateway::raw(
            gw.addr,
            format!("GET /none HTTP/1.1\r\nHost: t\r\n{length}\r\n").as_bytes(),
        );
        assert_eq!((none.status, lengths(&none)), (204, vec![]), "{length:?}");
        assert_eq!(none.header("x-kept"), Some("yes"));
        let not_modified = crate::common::gateway::raw(
            gw.addr,
            format!("GET /nm HTTP/1.1\r\nHost: t\r\n{length}\r\n").as_bytes(),
        );
        assert_eq!(
            (not_modified.status, lengths(&not_modified)),
            (304, vec![]),
            "{length:?}"
        );
    }
}
