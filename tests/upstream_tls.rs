//! `https://` upstreams (SPEC 1, routes): the upstream's certificate is
//! verified — against the route's `ca_file` and the system's roots, for its
//! `sni` or its host — before a request is sent; both of the gateway's
//! HTTP/1.1 clients speak TLS, and a TLS connection is pooled like a plain
//! one.

use crate::common::gateway::{Client, Gateway, get};
use crate::common::process::Process;
use crate::common::repo;
use crate::common::stub::Stub;

fn fixture(name: &str) -> String {
    repo()
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

fn route(stub: &Stub, extra: &str) -> String {
    format!("[[route]]\nupstream = \"https://{}\"\n{extra}", stub.addr)
}

#[test]
fn an_https_upstream_verified_with_ca_file_serves_both_clients_and_keeps_its_connection() {
    let stub = Stub::start_tls();
    let ca = format!("ca_file = \"{}\"\n", fixture("ca.pem"));
    let gw = Gateway::start(&route(&stub, &ca), None);
    let mut client = Client::connect(gw.addr);
    for target in ["/a", "/b?x=1"] {
        client.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = client.read(false);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{target}");
    }
    // A request with a body goes through hyper's client.
    client.send(b"POST /form HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    let r = client.read(false);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    let seen = stub.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/a", "/b?x=1", "/form"]);
    assert_eq!(seen[2].body, b"hello");
    assert_eq!(
        seen[0].peer, seen[1].peer,
        "the second GET reuses the first one's TLS connection"
    );
}

#[test]
fn a_certificate_that_does_not_verify_is_a_502_and_nothing_is_sent() {
    let stub = Stub::start_tls();
    let cases = [
        // The right CA, but the certificate is not for this name.
        format!(
            "ca_file = \"{}\"\nsni = \"other.example\"\n",
            fixture("ca.pem")
        ),
        // A CA that did not sign it (the leaf itself as the only root).
        format!("ca_file = \"{}\"\n", fixture("cert.pem")),
    ];
    for extra in cases {
        let gw = Gateway::start(&route(&stub, &extra), None);
        let r = get(gw.addr, "/secret", &[]);
        assert_eq!(r.status, 502, "{extra}");
        assert_eq!(r.json()["reason"], "upstream_unreachable", "{extra}");
        let body = r.text();
        assert!(
            !body.contains("certificate"),
            "the reason stays in the log: {body}"
        );
    }
    assert!(stub.targets().is_empty(), "{:?}", stub.targets());
}

#[test]
fn without_ca_file_the_system_roots_decide() {
    // SSL_CERT_FILE stands in for the system's store, in the gateway's own
    // process: with the test CA there, the upstream verifies.
    let stub = Stub::start_tls();
    let rulebook = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n{}",
        route(&stub, "sni = \"localhost\"\n")
    );
    let gw = Process::start(&rulebook, &[], &[("SSL_CERT_FILE", &fixture("ca.pem"))]);
    let r = get(gw.addr, "/via-system-roots", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(stub.targets(), ["/via-system-roots"]);
}
