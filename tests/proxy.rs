//! The gateway end to end (SPEC 4–7, 10–11): real sockets on 127.0.0.1, an
//! upstream stub that records what it receives, the gateway in-process.

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::common::gateway::{Client, Gateway, get, raw};
use crate::common::stub::Stub;

const BASIC: &str = r#"
[lists]
office = ["198.51.100.0/24"]

[[route]]
upstream = "{upstream}"

[[rule]]
name = "admin-from-office-only"
action = "deny"
path_prefix = ["/admin"]
not_ip = ["@office"]

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']

[[rule]]
name = "no-hotlinking"
action = "deny"
path_regex = ['(?i)\.(png|jpe?g)$']
hotlink = { allow = ["example.com"] }
"#;

#[test]
fn an_allowed_request_is_forwarded_with_the_canonical_path_and_query() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let r = get(gw.addr, "/a/./b//c/../d?x=1&y=%2e", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
    assert_eq!(stub.targets(), ["/a/b/d?x=1&y=%2e"]);
    let seen = &stub.seen()[0];
    assert_eq!(seen.headers["host"], "test");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "test");
    let id = seen.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(r.header("x-request-id"), Some(id));
    assert_eq!(id.len(), 16);
}

#[test]
fn refusals_carry_their_reason_as_json() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let cases = [
        (
            "/admin/users",
            403,
            "ip_denied",
            Some("admin-from-office-only"),
        ),
        ("/.env", 403, "path_denied", Some("dotfiles")),
        (
            "/%2eenv/../.git/config",
            403,
            "path_denied",
            Some("dotfiles"),
        ),
        ("/a%00", 400, "bad_request", None),
        ("/a%2fb", 400, "bad_request", None),
    ];
    for (target, status, reason, rule) in cases {
        let r = get(gw.addr, target, &[]);
        assert_eq!(r.status, status, "{target}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{target}");
        let body = r.json();
        assert_eq!(body["reason"], reason, "{target}");
        assert_eq!(body["statusCode"], status, "{target}");
        assert_eq!(body["rule"].as_str(), rule, "{target}");
        assert_eq!(
            body["request_id"].as_str(),
            r.header("x-request-id"),
            "{target}"
        );
    }
    let r = get(gw.addr, "/img/a.png", &["Referer: https://evil.test/"]);
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (403, "hotlink_denied".into())
    );
    assert!(
        stub.targets().is_empty(),
        "refused requests reached the upstream: {:?}",
        stub.targets()
    );
}

#[test]
fn a_browser_gets_the_refusal_as_an_html_page() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let r = get(
        gw.addr,
        "/admin",
        &["Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(
        page.contains("<dd>ip_denied</dd>") && page.contains("admin-from-office-only"),
        "{page}"
    );
    assert!(
        page.contains(r.header("x-request-id").expect("id")),
        "{page}"
    );
    assert!(
        !page.contains("198.51.100"),
        "the page leaks the rule's addresses: {page}"
    );
}

#[test]
fn every_gateway_reason_uses_the_same_shape() {
    let stub = Stub::start();
    let rulebook = r#"
[[route]]
path_prefix = "/app"
upstream = "{upstream}"
[[route]]
path_prefix = "/down"
upstream = "http://127.0.0.1:1"
[server.limits]
upstream_timeout = "300ms"
"#;
    let gw = Gateway::start(
        &format!("[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n{rulebook}"),
        Some(stub.addr),
    );
    let cases: [(&[u8], u16, &str, &str); 5] = [
        (
            b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n",
            404,
            "not_found",
            "Not Found",
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            405,
            "method_not_allowed",
            "Method Not Allowed",
        ),
        (
            b"GET /down/x HTTP/1.1\r\nHost: t\r\n\r\n",
            502,
            "upstream_unreachable",
            "Bad Gateway",
        ),
        (
            b"GET /app/slow-head/3000 HTTP/1.1\r\nHost: t\r\n\r\n",
            504,
            "upstream_timeout",
            "Gateway Timeout",
        ),
        (
            b"GET * HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
            "bad_request",
            "Bad Request",
        ),
    ];
    for (request, status, reason, error) in cases {
        let r = raw(gw.addr, request);
        let shown = String::from_utf8_lossy(request);
        assert_eq!(r.status, status, "{shown}: {}", r.text());
        let body = r.json();
        assert_eq!(body["reason"], reason, "{shown}");
        assert_eq!(body["error"], error, "{shown}");
        assert_eq!(body["statusCode"], status, "{shown}");
        assert!(body.get("rule").is_none(), "{shown}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("x-request-id").is_some());
    }
    let allow = raw(
        gw.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    assert!(allow.header("allow").is_some_and(|a| a.contains("GET")));
    let options = raw(gw.addr, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(options.status, 200);
    assert!(
        options
            .header("allow")
            .is_some_and(|a| a.contains("OPTIONS"))
    );
}

#[test]
fn a_token_missing_refusal_asks_for_a_bearer_token() {
    let jwks = crate::common::repo().join("tests/fixtures/auth/jwks.json");
    let rulebook = format!(
        "[auth]\njwks_file = {:?}\n[[route]]\nupstream = \"{{upstream}}\"\n\
         [[rule]]\nname = \"admins\"\naction = \"require\"\npath_prefix = [\"/admin\"]\nroles = [\"admin\"]\n",
        jwks.display().to_string()
    );
    let stub = Stub::start();
    let gw = Gateway::start(&rulebook, Some(stub.addr));
    let r = get(gw.addr, "/admin", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["reason"], "token_missing");
    let r = get(gw.addr, "/admin", &["Authorization: Bearer nonsense"]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(r.json()["reason"], "token_invalid");
    assert!(!r.text().contains("nonsense"), "the body leaks the token");
}

#[test]
fn x_forwarded_for_is_believed_only_from_trusted_peers() {
    let stub = Stub::start();
    let untrusted = Gateway::start(BASIC, Some(stub.addr));
    // An untrusted peer cannot claim the office address…
    let r = get(
        untrusted.addr,
        "/admin",
        &[
            "X-Forwarded-For: 198.51.100.7",
            "X-Real-IP: 198.51.100.7",
            "Forwarded: for=198.51.100.7",
        ],
    );
    assert_eq!(r.status, 403);
    // …and its forwarding headers are not passed on.
    let r = get(
        untrusted.addr,
        "/x",
        &[
            "X-Forwarded-For: 6.6.6.6",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil",
            "Forwarded: for=6.6.6.6",
            "X-Real-IP: 6.6.6.6",
            "X-Request-Id: chosen-by-client",
        ],
    );
    assert_eq!(r.status, 200);
    let seen = stub.seen().pop().expect("forwarded");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "test");
    assert!(seen.headers.get("forwarded").is_none());
    assert!(seen.headers.get("x-real-ip").is_none());
    assert_ne!(seen.headers["x-request-id"], "chosen-by-client");

    let trusted_book = BASIC.replace(
        "[lists]",
        "[client_ip]\ntrusted_proxies = [\"127.0.0.1\"]\n[lists]",
    );
    let stub = Stub::start();
    let trusted = Gateway::start(&trusted_book, Some(stub.addr));
    let r = get(
        trusted.addr,
        "/admin/x",
        &[
            "X-Forwarded-For: 203.0.113.9, 198.51.100.7",
            "X-Request-Id: lb-123",
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = stub.seen().pop().expect("forwarded");
    assert_eq!(
        seen.headers["x-forwarded-for"],
        "203.0.113.9, 198.51.100.7, 127.0.0.1"
    );
    assert_eq!(seen.headers["x-request-id"], "lb-123");
    assert_eq!(r.header("x-request-id"), Some("lb-123"));
    let line = trusted.log_lines(1).pop().expect("log line");
    assert_eq!(line["client_ip"], "198.51.100.7");
    assert_eq!(line["peer"], "127.0.0.1");
}

#[test]
fn hop_by_hop_headers_are_stripped_both_ways() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    // With `Upgrade`, hyper's loop reads the request; without, the
    // gateway's own. Names in any case.
    for upgrade in [Some("Upgrade: h2c"), None] {
        let mut sent = vec![
            "Connection: keep-alive, x-CLIENT-secret, X-Forwarded-For",
            "X-Client-Secret: 1",
            "KEEP-ALIVE: timeout=5",
            "Proxy-Connection: keep-alive",
            "TE: trailers",
            "Trailer: x",
            "Proxy-Authorization: Basic eA==",
            "X-Client-Kept: yes",
            // Forwarding headers from an untrusted peer.
            "x-FORWARDED-host: evil",
            "X-Forwarded-Proto: https",
            "X-REAL-IP: 6.6.6.6",
            "FORWARDED: for=6.6.6.6",
            "X-Request-ID: chosen",
        ];
        sent.extend(upgrade);
        let r = get(gw.addr, "/hop", &sent);
        assert_eq!(r.status, 200);
        let seen = stub.seen().pop().expect("forwarded");
        for gone in [
            "x-client-secret",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "proxy-authorization",
            "upgrade",
            "x-real-ip",
            "forwarded",
        ] {
            assert!(
                seen.headers.get(gone).is_none(),
                "{gone} reached the upstream ({upgrade:?})"
            );
        }
        assert_eq!(seen.headers["x-client-kept"], "yes");
        // Connection named X-Forwarded-For, yet the gateway's own is there.
        assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen.headers["x-forwarded-host"], "test");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        assert_eq!(
            seen.headers.get_all("x-request-id").iter().count(),
            1,
            "{upgrade:?}"
        );
        assert_ne!(seen.headers["x-request-id"], "chosen");
        for gone in ["x-upstream-secret", "keep-alive", "proxy-connection"] {
            assert!(r.header(gone).is_none(), "{gone} reached the client");
        }
        assert_eq!(r.header("x-upstream-kept"), Some("yes"));
    }
}

#[test]
fn keep_alive_connections_are_reused_on_both_sides() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let mut client = Client::connect(gw.addr);
    for i in 0..5 {
        client.send(format!("GET /k{i} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        let r = client.read(false);
        assert_eq!(r.status, 200, "request {i}");
    }
    // A refusal in between does not close the connection either.
    client.send(b"GET /.git HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.read(false).status, 403);
    client.send(b"GET /k5 HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.read(false).status, 200);
    let peers: std::collections::HashSet<_> = stub.seen().iter().map(|s| s.peer).collect();
    assert_eq!(stub.seen().len(), 6);
    assert_eq!(
        peers.len(),
        1,
        "the upstream connection was not reused: {peers:?}"
    );
}

#[test]
fn request_bodies_stream_to_the_upstream() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let mut client = Client::connect(gw.addr);
    client.send(b"POST /first-chunk HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    // The upstream sees the first chunk while the client still holds the rest.
    let event = stub.event(Duration::from_secs(5));
    assert_eq!(event.as_deref(), Some("first-chunk:hello"));
    client.send(b"6\r\n world\r\n0\r\n\r\n");
    let r = client.read(false);
    assert_eq!((r.status, r.text()), (200, "11".to_owned()));
}

#[test]
fn response_bodies_stream_to_the_client() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let r = get(gw.addr, "/stream-out/5", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "chunk-1\nchunk-2\nchunk-3\nchunk-4\nchunk-5\n");
}

#[test]
fn upstream_routes_choose_host_then_longest_prefix() {
    let a = Stub::start();
    let b = Stub::start();
    let c = Stub::start();
    let rulebook = format!(
        "[[route]]\nupstream = \"http://{}\"\n\
         [[route]]\nhost = [\"*.example.com\"]\nupstream = \"http://{}\"\n\
         [[route]]\nhost = [\"api.example.com\"]\npath_prefix = \"/v2\"\nupstream = \"http://{}\"\npreserve_host = false\n",
        a.addr, b.addr, c.addr
    );
    let gw = Gateway::start(&rulebook, None);
    let hit = |host: &str, path: &str| {
        raw(
            gw.addr,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        )
        .status
    };
    assert_eq!(hit("api.example.com", "/v2/x"), 200);
    assert_eq!(hit("API.example.com:8080", "/v2"), 200);
    assert_eq!(hit("api.example.com", "/v22"), 200);
    assert_eq!(hit("www.example.com", "/v2/x"), 200);
    assert_eq!(hit("example.com", "/"), 200);
    assert_eq!(c.targets(), ["/v2/x", "/v2"]);
    assert_eq!(c.seen()[0].headers["host"], c.addr.to_string().as_str());
    assert_eq!(b.targets(), ["/v22", "/v2/x"]);
    assert_eq!(a.targets(), ["/"]);
    assert_eq!(b.seen()[0].headers["host"], "api.example.com");
}

#[test]
fn h2c_with_prior_knowledge_is_served_and_forwarded_as_http_1_1() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (allowed, refused) = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(gw.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let mut statuses = Vec::new();
        for path in ["/h2/ok", "/admin"] {
            let req = http::Request::get(format!("http://site.test{path}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            let resp = sender.send_request(req).await.expect("response");
            statuses.push(resp.status().as_u16());
        }
        (statuses[0], statuses[1])
    });
    assert_eq!((allowed, refused), (200, 403));
    let seen = stub.seen().pop().expect("forwarded");
    assert_eq!(seen.target, "/h2/ok");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers["host"], "site.test");
    let line = &gw.log_lines(2)[0];
    assert_eq!(line["protocol"], "HTTP/2");
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    let stub = Stub::start();
    let mut gw = Gateway::start(BASIC, Some(stub.addr));
    let admin = gw.admin.expect("admin on");
    assert_eq!(get(admin, "/readyz", &[]).status, 200);
    let addr = gw.addr;
    let in_flight = std::thread::spawn(move || get(addr, "/slow-head/600", &[]));
    // Wait until the upstream has the request, so it is truly in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stub.seen().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = gw.take();
    running.begin_shutdown();
    assert_eq!(get(admin, "/readyz", &[]).status, 503);
    assert_eq!(get(admin, "/healthz", &[]).status, 200);
    let r = in_flight.join().expect("client thread");
    assert_eq!((r.status, r.text()), (200, "slow".to_owned()));
    running.wait();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn the_access_log_has_one_line_per_request_with_the_fields_of_spec_section_11() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    get(
        gw.addr,
        "/page?q=1",
        &["User-Agent: test-agent", "Referer: https://example.com/"],
    );
    get(gw.addr, "/admin", &[]);
    let lines = gw.log_lines(2);
    assert_eq!(lines.len(), 2);
    let keys = [
        "ts",
        "request_id",
        "client_ip",
        "peer",
        "method",
        "host",
        "path",
        "query",
        "protocol",
        "status",
        "bytes_sent",
        "decision",
        "reason",
        "rule",
        "country",
        "user_agent",
        "referer",
        "duration_ms",
        "upstream",
    ];
    for line in &lines {
        for key in keys {
            assert!(line.get(key).is_some(), "{key} missing from {line}");
        }
    }
    let (allow, deny) = (&lines[0], &lines[1]);
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["rule"], "(default)");
    assert_eq!(allow["path"], "/page");
    assert_eq!(allow["query"], "q=1");
    assert_eq!(allow["status"], 200);
    assert_eq!(allow["bytes_sent"], 2);
    assert_eq!(allow["user_agent"], "test-agent");
    assert_eq!(allow["upstream"], stub.addr.to_string());
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reason"], "ip_denied");
    assert_eq!(deny["rule"], "admin-from-office-only");
    assert_eq!(deny["status"], 403);
    assert!(deny["bytes_sent"].as_u64().expect("number") > 100);
}

#[test]
fn access_log_refusals_mode_logs_only_refusals() {
    let stub = Stub::start();
    let gw = Gateway::start(
        &format!("[log]\naccess = \"refusals\"\n{BASIC}"),
        Some(stub.addr),
    );
    get(gw.addr, "/ok", &[]);
    get(gw.addr, "/.env", &[]);
    get(gw.addr, "/ok2", &[]);
    let lines = gw.log_lines(1);
    std::thread::sleep(Duration::from_millis(100));
    let lines_after = gw.log_lines(1);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines_after.len(), 1);
    assert_eq!(lines[0]["path"], "/.env");
}

#[test]
fn access_log_refusals_mode_logs_refusals_made_after_the_rules_too() {
    // The rules allow all of these; the route, the file system or the
    // upstream refuses some. Allowed answers come between them: had one been
    // logged, it would be among the first four lines.
    let stub = Stub::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let rulebook = format!(
        "[log]\naccess = \"refusals\"\n\
         [[route]]\npath_prefix = \"/files\"\nroot = \"site\"\n\
         [[route]]\npath_prefix = \"/dead\"\nupstream = \"http://{dead_addr}\"\n\
         [[route]]\nupstream = \"{{upstream}}\"\n"
    );
    let files = [("site/files/sub/a.txt", "a")];
    let gw = Gateway::start_with(&rulebook, Some(stub.addr), &files, 1);
    let post = |path: &str| {
        let request = format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi");
        raw(gw.addr, request.as_bytes()).status
    };
    assert_eq!(get(gw.addr, "/files/sub/", &[]).status, 403);
    assert_eq!(get(gw.addr, "/app/ok", &[]).status, 200);
    assert_eq!(get(gw.addr, "/files/missing.txt", &[]).status, 404);
    assert_eq!(post("/app/form"), 200);
    assert_eq!(get(gw.addr, "/dead/x", &[]).status, 502);
    assert_eq!(get(gw.addr, "/files/sub/a.txt", &[]).status, 200);
    assert_eq!(post("/dead/form"), 502);
    let lines = gw.log_lines(4);
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .take(4)
        .map(|l| {
            let field = |k: &str| l[k].as_str().unwrap_or("null");
            (field("path"), field("decision"), field("reason"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/files/sub/", "deny", "directory_listing_disabled"),
            ("/files/missing.txt", "deny", "not_found"),
            ("/dead/x", "error", "upstream_unreachable"),
            ("/dead/form", "error", "upstream_unreachable"),
        ]
    );
}

/// At least 30 raw targets aimed at the denied /admin: none may reach the
/// upstream with a path inside /admin.
#[test]
fn no_encoding_of_a_denied_path_reaches_the_upstream() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let targets = [
        "/admin",
        "/admin/",
        "/admin/users",
        "//admin",
        "///admin/x",
        "/./admin",
        "/admin/.",
        "/x/../admin",
        "/x/../../admin",
        "/%61dmin",
        "/%61%64%6d%69%6e",
        "/%2e/admin",
        "/%2e%2e/admin",
        "/x/%2e%2e/admin",
        "/x/.%2e/admin",
        "/x/%2E%2E/admin",
        "/admin%2f",
        "/admin%2fusers",
        "/x%2f..%2fadmin",
        "/admin;x",
        "/admin;/users",
        "/x/..;/admin",
        "/admin%3bx",
        "/%2561dmin",
        "/x/%252e%252e/admin",
        "/admin%00",
        "/admin%0a",
        "/admin\\users",
        "/x\\..\\admin",
        "/admin#frag",
        "/./././admin",
        "/a/b/c/../../../admin",
        "http://test/admin",
        "http://test//admin",
        "HTTP://TEST/admin",
        "/admin?x=/public",
        "/admin/%2e%2e/admin",
        "/%2Fadmin",
        "/x/%2e./admin",
    ];
    let mut outcomes = Vec::new();
    for target in targets {
        let r = raw(
            gw.addr,
            format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
        );
        outcomes.push(format!("{target} -> {}", r.status));
        assert!(
            matches!(r.status, 200 | 400 | 403),
            "{target} was answered {}",
            r.status
        );
    }
    let refused = outcomes.iter().filter(|o| !o.ends_with("200")).count();
    assert!(
        refused >= 30,
        "only {refused} refused:\n{}",
        outcomes.join("\n")
    );
    for seen in stub.targets() {
        assert!(
            !crate::common::reaches(&seen, "/admin"),
            "{seen} reached the upstream; outcomes:\n{}",
            outcomes.join("\n")
        );
    }
    // A control that must get through.
    assert_eq!(get(gw.addr, "/public/admin", &[]).status, 200);
    assert_eq!(stub.targets().pop().as_deref(), Some("/public/admin"));
}

#[test]
fn health_command_probes_the_admin_listener() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    let admin = gw.admin.expect("admin").to_string();
    let out = std::process::Command::new(crate::common::binary())
        .args(["health", "--admin", &admin])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let out = std::process::Command::new(crate::common::binary())
        .args(["health", "--admin", &closed_addr])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_admin_listener_is_not_on_the_public_port() {
    let stub = Stub::start();
    let gw = Gateway::start(BASIC, Some(stub.addr));
    get(gw.addr, "/healthz", &[]);
    assert_eq!(
        stub.targets(),
        ["/healthz"],
        "the public port answered /healthz itself"
    );
    let mut c = Client::connect(gw.admin.expect("admin"));
    c.send(b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.read(false).status, 200);
    let _ = std::io::stdout().flush();
}
