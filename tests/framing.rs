//! Request framing (SPEC 5) whatever the HTTP library's defaults: raw bytes in;
//! what the client got, whether the connection was closed, and what reached
//! the upstream. After every case the gateway keeps serving.

use crate::common::gateway::{Client, Gateway, get};
use crate::common::stub::Stub;

const BOOK: &str = "[[route]]\nupstream = \"{upstream}\"\n[[rule]]\nname = \"admin\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\n";

/// Sends `bytes`, reads one response; returns (status, closed afterwards).
fn exchange(gw: &Gateway, bytes: &[u8]) -> (u16, bool) {
    let mut c = Client::connect(gw.addr);
    c.send(bytes);
    let r = c.read(false);
    (r.status, c.is_closed())
}

#[test]
fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    let cases: &[(&str, &[u8])] = &[
        ("two different Content-Length", b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("two equal Content-Length", b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        ("a Content-Length list", b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello"),
        ("a signed Content-Length", b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello"),
        ("a non-numeric Content-Length", b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\nhello"),
        ("obs-fold", b"GET /a HTTP/1.1\r\nHost: t\r\nX-Fold: a\r\n b\r\n\r\n"),
        ("a bare CR", b"GET /a HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"),
        ("whitespace before a colon", b"GET /a HTTP/1.1\r\nHost: t\r\nX-A : a\r\n\r\n"),
        ("no Host", b"GET /a HTTP/1.1\r\n\r\n"),
        ("two Host", b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("an unknown coding before chunked", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("chunked not last", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("identity", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n"),
        ("a lookalike coding", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("two Transfer-Encoding", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding in HTTP/1.0", b"POST /a HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("a NUL in a header name", b"GET /a HTTP/1.1\r\nHost: t\r\n\x00X: y\r\n\r\n"),
        ("a control byte in a value", b"GET /a HTTP/1.1\r\nHost: t\r\nX: \x01y\r\n\r\n"),
        ("two spaces in the request line", b"GET  /a HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("HTTP/1.2", b"GET /a HTTP/1.2\r\nHost: t\r\n\r\n"),
    ];
    for (what, bytes) in cases {
        let (status, closed) = exchange(&gw, bytes);
        assert_eq!(status, 400, "{what}");
        assert!(closed, "{what}: the connection stayed open");
        assert_eq!(
            get(gw.addr, "/next", &[]).status,
            200,
            "{what}: the gateway stopped serving"
        );
    }
    let forwarded: Vec<String> = stub.targets();
    assert!(
        forwarded.iter().all(|t| t == "/next"),
        "malformed requests reached the upstream: {forwarded:?}"
    );
}

#[test]
fn content_length_with_transfer_encoding_is_never_forwarded_with_both() {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    let (status, closed) = exchange(
        &gw,
        b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    // Either refused, or framed by Transfer-Encoding alone (RFC 9112 6.1):
    // then Content-Length is dropped and the connection closed after the response.
    assert!(closed, "the connection stayed open");
    match status {
        400 => assert!(stub.seen().is_empty()),
        200 => {
            let seen = stub.seen().pop().expect("forwarded");
            assert!(
                seen.headers.get("content-length").is_none(),
                "{:?}",
                seen.headers
            );
            assert!(seen.body.is_empty());
        }
        other => panic!("answered {other}"),
    }
}

#[test]
fn pipelined_requests_are_each_decided_on_their_own() {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    let mut c = Client::connect(gw.addr);
    c.send(
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: t\r\n\r\nPOST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let statuses: Vec<u16> = (0..5).map(|_| c.read(false).status).collect();
    assert_eq!(statuses, [200, 403, 200, 403, 200]);
    assert_eq!(stub.targets(), ["/a", "/b", "/c"]);
    assert_eq!(stub.seen()[1].body, b"abc");
}

#[test]
fn h2c_upgrade_is_never_forwarded() {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    let r = get(
        gw.addr,
        "/a",
        &[
            "Upgrade: h2c",
            "Connection: Upgrade, HTTP2-Settings",
            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
        ],
    );
    assert_eq!(r.status, 200);
    let seen = stub.seen().pop().expect("forwarded");
    assert!(seen.headers.get("upgrade").is_none());
    assert!(seen.headers.get("http2-settings").is_none());
    assert!(seen.headers.get("connection").is_none());
}

#[test]
fn a_refused_request_is_never_upgraded() {
    let stub = Stub::start();
    let gw = Gateway::start(BOOK, Some(stub.addr));
    let r = get(
        gw.addr,
        "/admin/socket",
        &[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ],
    );
    assert_eq!(r.status, 403);
    assert!(r.header("upgrade").is_none());
    assert!(stub.seen().is_empty());
}

#[test]
fn lowercase_methods_cannot_slip_past_method_rules() {
    let stub = Stub::start();
    let gw = Gateway::start(
        "[[route]]\nupstream = \"{upstream}\"\n[[rule]]\nname = \"no-delete\"\naction = \"deny\"\nmethod = [\"DELETE\"]\n",
        Some(stub.addr),
    );
    let (status, _) = exchange(&gw, b"delete /item HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 403);
    assert!(stub.seen().is_empty());
}
