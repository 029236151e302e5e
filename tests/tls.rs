//! TLS termination (SPEC 2 `[server.tls]`): rustls with ALPN h2 and
//! http/1.1, X-Forwarded-Proto https, certificate errors located at load.

use std::sync::Arc;

use crate::common::admin::{SERVER, WITHIN, Watched, eventually, write_in_place};
use crate::common::gateway::{Gateway, get};
use crate::common::repo;
use crate::common::stub::Stub;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/tls").join(name)).expect("fixture")
}

const BOOK: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n\
                    [server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
                    [[route]]\nupstream = \"{upstream}\"\n\
                    [[rule]]\nname = \"no-admin\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\n";

fn client(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls_pki_types::CertificateDer::from(
        rustls_pki_types::pem::PemObject::from_pem_slice(fixture("ca.pem").as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .expect("cert"),
    );
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` as `localhost`, offering one ALPN protocol.
async fn connect(
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    client(&[alpn]).connect(name, tcp).await.expect("handshake")
}

#[test]
fn https_is_served_over_http1_and_h2_by_alpn() {
    let stub = Stub::start();
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    let gw = Gateway::start_with(
        BOOK,
        Some(stub.addr),
        &[("cert.pem", &cert), ("key.pem", &key)],
        1,
    );
    let addr = gw.running().tls_listen[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // HTTP/1.1
        let mut tls = connect(addr, b"http/1.1").await;
        tls.write_all(b"GET /secure HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.expect("read");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        // HTTP/2 by ALPN
        let tls = connect(addr, b"h2").await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .expect("h2");
        tokio::spawn(conn);
        for (path, status) in [("/h2", 200), ("/admin", 403)] {
            let req = http::Request::get(format!("https://localhost{path}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.status().as_u16(), status, "{path}");
        }
    });
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.headers["x-forwarded-proto"], "https");
    }
    // Plain HTTP on the TLS port does not get an answer.
    let r = crate::common::gateway::raw(addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 0);
}

#[test]
fn a_key_that_does_not_load_is_a_located_error() {
    let folder = crate::common::Folder::with(&[
        (
            "r.toml",
            "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
        ),
        ("cert.pem", &fixture("cert.pem")),
        ("key.pem", "not a key"),
    ]);
    let errors = folder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("r.toml:3:7: cannot read TLS key \""),
        "{}",
        errors[0]
    );
}

#[test]
fn a_large_answer_on_a_kept_alive_https_connection_arrives_whole() {
    // More than the socket buffers hold: the end of the answer goes out
    // only if the TLS stream is flushed, not when the next read starts.
    let big = "a".repeat(4 << 20);
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    let gw = Gateway::start_with(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n\
         [server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
         [[route]]\nroot = \"site\"\n",
        None,
        &[
            ("cert.pem", &cert),
            ("key.pem", &key),
            ("site/big.txt", &big),
        ],
        1,
    );
    let addr = gw.running().tls_listen[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let tls = connect(addr, b"http/1.1").await;
        let mut tls = tokio::io::BufReader::new(tls);
        for _ in 0..2 {
            tls.get_mut()
                .write_all(b"GET /big.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .expect("write");
            let mut length = None;
            loop {
                let mut line = String::new();
                tls.read_line(&mut line).await.expect("head line");
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("content-length: ") {
                    length = n.parse::<usize>().ok();
                }
            }
            assert_eq!(length, Some(4 << 20));
            // Read slowly, so that the gateway's writes keep finding the
            // socket full and records wait in the TLS stream.
            let mut body = Vec::with_capacity(4 << 20);
            let slowly = async {
                let mut piece = vec![0; 32 * 1024];
                while body.len() < 4 << 20 {
                    let want = piece.len().min((4 << 20) - body.len());
                    let n = tls.read(&mut piece[..want]).await.expect("read");
                    assert!(n > 0, "closed after {} bytes", body.len());
                    body.extend_from_slice(&piece[..n]);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            };
            tokio::time::timeout(std::time::Duration::from_secs(20), slowly)
                .await
                .expect("the whole answer in time");
            assert!(body.iter().all(|&b| b == b'a'));
        }
    });
}

#[test]
fn a_reload_without_the_tls_table_leaves_the_tls_listener_serving() {
    // `server.tls.listen` is restart-only: the listener stays, and with it
    // the certificate it runs with.
    let stub = Stub::start();
    let route = format!("[[route]]\nupstream = \"http://{}\"\n", stub.addr);
    let tls = "[server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let deny = |path: &str| {
        format!("[[rule]]\nname = \"r\"\naction = \"deny\"\npath_prefix = [\"{path}\"]\n")
    };
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    let gw = Watched::with(&[
        ("r.toml", &format!("{SERVER}{tls}{route}{}", deny("/old"))),
        ("cert.pem", &cert),
        ("key.pem", &key),
    ]);
    let addr = gw.tls_listen()[0];
    write_in_place(
        &gw.path("r.toml"),
        format!("{SERVER}{route}{}", deny("/new")),
    );
    assert!(
        eventually(WITHIN, || get(gw.addr, "/new", &[]).status == 403),
        "the new rulebook is in force"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let answer = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = connect(addr, b"http/1.1").await;
        tls.write_all(b"GET /new HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.expect("read");
        answer
    });
    assert!(
        answer.starts_with(b"HTTP/1.1 403"),
        "served under the new rules: {}",
        String::from_utf8_lossy(&answer)
    );
}
