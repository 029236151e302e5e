//! The admin API (SPEC 10): /status, POST /reload, /metrics, /explain, the
//! dashboard, and the token off loopback.

use std::sync::Arc;
use std::time::SystemTime;

use edgeguard::admin::RefusalEvent;
use edgeguard::decision::Reason;
use edgeguard::geo::Country;

use crate::common::admin::{
    SERVER, WITHIN, Watched, admin_request, eventually, replace_by_rename, sample,
};
use crate::common::gateway::{Client, get};
use crate::common::process::Process;
use crate::common::stub::Stub;

/// A rulebook with a rule of each kind. Any variable that is set will do as
/// the HS256 secret: `roles=` stands for verified tokens here.
fn rulebook(upstream: std::net::SocketAddr) -> String {
    let geoip = crate::common::repo().join("geoip/GeoLite2-Country-Test.mmdb");
    format!(
        r#"{SERVER}[auth]
hs256_secret_env = "PATH"

[geoip]
database = "{}"

[lists]
office = ["198.51.100.0/24"]

[[route]]
upstream = "http://{upstream}"

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']

[[rule]]
name = "embargo-trial"
action = "deny"
country = ["KP", "IR"]
dry_run = true

[[rule]]
name = "admin-from-office-only"
action = "deny"
path_prefix = ["/admin"]
not_ip = ["@office"]

[[rule]]
name = "admin-needs-role"
action = "require"
path_prefix = ["/admin"]
roles = ["admin"]

[[rule]]
name = "scanners"
action = "deny"
header_regex = {{ "user-agent" = '(?i)sqlmap|nikto' }}
"#,
        geoip.display()
    )
}

#[test]
fn status_has_exactly_the_fields_of_spec_10() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    let status = gw.status();
    let mut keys: Vec<&str> = status
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cidrs",
            "config_path",
            "last_reload",
            "loaded_at",
            "routes",
            "rules",
            "sha256"
        ]
    );
    assert_eq!(
        status["config_path"],
        gw.path("r.toml").display().to_string()
    );
    let text = std::fs::read(gw.path("r.toml")).expect("read");
    let sha256: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(status["sha256"], sha256);
    assert_eq!(
        (
            status["rules"].as_u64(),
            status["routes"].as_u64(),
            status["cidrs"].as_u64()
        ),
        (Some(5), Some(1), Some(1))
    );
    let loaded_at = status["loaded_at"].as_str().expect("loaded_at");
    humantime::parse_rfc3339(loaded_at).expect("RFC 3339");
    let last = &status["last_reload"];
    let mut keys: Vec<&str> = last
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["at", "errors", "result"]);
    assert_eq!(
        (
            last["result"].as_str(),
            last["errors"].as_array().map(Vec::len)
        ),
        (Some("ok"), Some(0))
    );
    humantime::parse_rfc3339(last["at"].as_str().expect("at")).expect("RFC 3339");
}

#[test]
fn post_reload_answers_200_or_422_with_the_last_reload() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    let r = gw.post_reload();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let ok = r.json();
    assert_eq!(
        (ok["result"].as_str(), ok["errors"].as_array().map(Vec::len)),
        (Some("ok"), Some(0))
    );
    std::fs::write(
        gw.path("r.toml"),
        "[[rule]]\nname = \"x\"\naction = \"maybe\"\n",
    )
    .expect("write");
    let r = gw.post_reload();
    assert_eq!(r.status, 422, "{}", r.text());
    let refused = r.json();
    assert_eq!(refused["result"], "error");
    let errors = refused["errors"].as_array().expect("errors");
    let expected = format!("{}:3:10: ", gw.path("r.toml").display());
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with(&expected))),
        "{errors:?}"
    );
    assert_eq!(gw.status()["last_reload"], refused);
    // GET is not how a reload is asked for.
    let r = admin_request(gw.admin, "GET", "/reload", &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
}

#[test]
fn post_reload_applies_at_once() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    assert_eq!(get(gw.addr, "/fresh", &[]).status, 200);
    let book = format!(
        "{}[[rule]]\nname = \"fresh\"\naction = \"deny\"\npath_prefix = [\"/fresh\"]\n",
        rulebook(stub.addr)
    );
    replace_by_rename(&gw.path("r.toml"), book);
    assert_eq!(gw.post_reload().status, 200);
    assert_eq!(
        get(gw.addr, "/fresh", &[]).status,
        403,
        "in force when POST /reload answers"
    );
}

#[test]
fn metrics_has_every_metric_of_spec_10_in_either_format() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    gw.post_reload();
    let r = gw.admin_get("/metrics");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    for family in [
        "edgeguard_requests_total counter",
        "edgeguard_request_duration_seconds histogram",
        "edgeguard_upstream_duration_seconds histogram",
        "edgeguard_config_reloads_total counter",
        "edgeguard_config_loaded_timestamp_seconds gauge",
        "edgeguard_open_connections gauge",
        "edgeguard_connection_errors_total counter",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family} missing:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "edgeguard_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    let loaded = sample(&text, "edgeguard_config_loaded_timestamp_seconds");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    assert!((now - loaded).abs() < 60.0, "{loaded}");
    // Every series a rule can produce is there from the load, at zero.
    for series in [
        "{decision=\"deny\",reason=\"path_denied\",rule=\"dotfiles\",dry_run=\"false\"}",
        "{decision=\"deny\",reason=\"country_denied\",rule=\"embargo-trial\",dry_run=\"true\"}",
        "{decision=\"deny\",reason=\"token_missing\",rule=\"admin-needs-role\",dry_run=\"false\"}",
        "{decision=\"allow\",reason=\"\",rule=\"(default)\",dry_run=\"false\"}",
        "{decision=\"error\",reason=\"upstream_unreachable\",rule=\"\",dry_run=\"false\"}",
    ] {
        assert!(
            text.contains(&format!("edgeguard_requests_total{series} 0\n")),
            "{series}:\n{text}"
        );
    }
    let open = admin_request(
        gw.admin,
        "GET",
        "/metrics",
        &["Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5"],
    );
    assert_eq!(
        open.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(open.text().ends_with("# EOF\n"));
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// An explain object with the request id taken out of its body.
fn without_request_id(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(body) = v["body"].as_str() {
        let mut body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        body.as_object_mut().expect("object").remove("request_id");
        v["body"] = body;
    }
    v
}

#[test]
fn explain_answers_what_edgeguard_explain_json_prints() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    let cases: [&[(&str, &str)]; 6] = [
        &[("ip", "192.0.2.1"), ("path", "/.env")],
        &[
            ("ip", "203.0.113.9"),
            ("path", "/page?x=1"),
            ("country", "KP"),
        ],
        &[
            ("ip", "198.51.100.7"),
            ("path", "/admin/users"),
            ("roles", "viewer"),
        ],
        &[
            ("ip", "198.51.100.7"),
            ("path", "/admin/users"),
            ("roles", "admin,viewer"),
        ],
        &[
            ("ip", "192.0.2.1"),
            ("path", "/a/../b"),
            ("method", "post"),
            ("host", "Example.com"),
            ("header", "User-Agent: sqlmap/1.7"),
            ("header", "X-Other: 1"),
        ],
        &[
            ("ip", "::ffff:192.0.2.1"),
            ("path", "/%2e%2e/x"),
            ("referer", "https://elsewhere.test/"),
        ],
    ];
    for case in cases {
        let query: Vec<String> = case
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let r = gw.admin_get(&format!("/explain?{}", query.join("&")));
        assert_eq!(r.status, 200, "{case:?}: {}", r.text());
        let mut cli = std::process::Command::new(crate::common::binary());
        cli.args(["explain", "--json", "--config"])
            .arg(gw.path("r.toml"));
        for (k, v) in case {
            cli.arg(format!("--{k}")).arg(v);
        }
        let out = cli.output().expect("edgeguard explain");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(
            without_request_id(r.json()),
            without_request_id(printed),
            "{case:?}"
        );
    }
}

#[test]
fn explain_refuses_a_bad_query_with_a_json_400() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    for (query, message) in [
        ("", "missing parameter ip"),
        (
            "?ip=300.1.1.1",
            "invalid ip \"300.1.1.1\": invalid IP address syntax",
        ),
        ("?ip=192.0.2.1&colour=red", "unknown parameter \"colour\""),
    ] {
        let r = gw.admin_get(&format!("/explain{query}"));
        assert_eq!(r.status, 400, "{query}");
        let v = r.json();
        assert_eq!(
            (
                v["error"].as_str(),
                v["message"].as_str(),
                v["statusCode"].as_u64()
            ),
            (Some("Bad Request"), Some(message), Some(400))
        );
    }
}

#[test]
fn the_dashboard_shows_refusals_and_reloads_escaped_and_self_contained() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    let now = SystemTime::now();
    let event = |path: &str, reason, rule: Option<&str>, cc: &str| {
        RefusalEvent::new(
            now,
            "203.0.113.9".parse().expect("ip"),
            "GET",
            path,
            reason,
            403,
            rule.map(Arc::from),
            Country::parse(cc),
        )
    };
    gw.control.feed.refused(event(
        "/<script>alert(1)</script>",
        Reason::PathDenied,
        Some("dotfiles"),
        "CN",
    ));
    gw.control.feed.refused(event(
        "/x\"onload=\"y",
        Reason::IpDenied,
        Some("<b>bold</b>"),
        "KP",
    ));
    gw.control
        .feed
        .refused(event("/z", Reason::DefaultDeny, Some("(default)"), "XX"));
    assert!(eventually(WITHIN, || gw.control.feed.snapshot(now).total == 3));
    let r = gw.admin_get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.starts_with("default-src 'none'"))
    );
    let page = r.text();
    for shown in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;b&gt;bold&lt;/b&gt;",
        "/x&quot;onload=&quot;y",
        "path_denied",
        "ip_denied",
        "default_deny",
        "CN",
        "KP",
        "203.0.113.9",
    ] {
        assert!(page.contains(shown), "{shown} not shown");
    }
    for never in [
        "<script", "<b>", "src=", "href=", "<link", "url(", "@import",
    ] {
        assert!(!page.contains(never), "{never} in the page");
    }
    let sha256 = gw.status()["sha256"].as_str().expect("sha256").to_owned();
    assert!(page.contains(&sha256), "the rulebook's version");
    assert!(page.contains("<td>start</td>"), "the reload history");
}

#[test]
fn admin_off_loopback_requires_the_token_for_reload_explain_and_the_dashboard() {
    let stub = Stub::start();
    let book = rulebook(stub.addr).replace(
        "admin = \"127.0.0.1:0\"",
        "admin = \"0.0.0.0:0\"\nadmin_token_env = \"EDGEGUARD_TEST_ADMIN_TOKEN\"",
    );
    let gw = Process::start(
        &book,
        &[],
        &[("EDGEGUARD_TEST_ADMIN_TOKEN", "s3cret-token")],
    );
    let mut admin = gw.admin.expect("admin");
    assert!(admin.ip().is_unspecified());
    admin.set_ip([127, 0, 0, 1].into());
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/status"),
    ] {
        assert_eq!(
            admin_request(admin, method, path, &[]).status,
            200,
            "{path} stays open"
        );
    }
    let protected = [
        ("POST", "/reload"),
        ("GET", "/explain?ip=192.0.2.1"),
        ("GET", "/"),
    ];
    for (method, path) in protected {
        for header in [
            None,
            Some("Authorization: Bearer wrong"),
            Some("Authorization: s3cret-token"),
        ] {
            let r = admin_request(admin, method, path, &header.into_iter().collect::<Vec<_>>());
            assert_eq!(r.status, 401, "{method} {path} with {header:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
        let r = admin_request(admin, method, path, &["Authorization: Bearer s3cret-token"]);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    }
}

#[test]
fn unknown_admin_paths_are_404_and_wrong_methods_405() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    assert_eq!(gw.admin_get("/nope").status, 404);
    let r = admin_request(gw.admin, "POST", "/status", &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

// What follows needs the gateway to record into the control's metrics and
// feed (issue 8 integration into gateway.rs and server.rs).

#[test]
fn requests_are_counted_with_rulebook_labels_and_dry_run_samples() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    get(gw.addr, "/.env", &[]);
    get(gw.addr, "/page", &[]);
    get(gw.addr, "/admin/x", &["X-Probe: <not a label>"]);
    get(gw.addr, "/%00", &[]);
    let text = gw.metrics();
    for (series, n) in [
        (
            "{decision=\"deny\",reason=\"path_denied\",rule=\"dotfiles\",dry_run=\"false\"}",
            1.0,
        ),
        (
            "{decision=\"allow\",reason=\"\",rule=\"(default)\",dry_run=\"false\"}",
            1.0,
        ),
        (
            "{decision=\"deny\",reason=\"ip_denied\",rule=\"admin-from-office-only\",dry_run=\"false\"}",
            1.0,
        ),
        (
            "{decision=\"deny\",reason=\"bad_request\",rule=\"\",dry_run=\"false\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&text, &format!("edgeguard_requests_total{series}")),
            n,
            "{series}\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "edgeguard_request_duration_seconds_count"),
        4.0
    );
    assert_eq!(
        sample(&text, "edgeguard_upstream_duration_seconds_count"),
        1.0
    );
    assert!(!text.contains("not a label"));
}

#[test]
fn a_dry_run_hit_adds_a_sample_beside_what_was_done() {
    let stub = Stub::start();
    let book =
        rulebook(stub.addr).replace("country = [\"KP\", \"IR\"]", "path_prefix = [\"/trial\"]");
    let gw = Watched::with(&[("r.toml", &book)]);
    assert_eq!(get(gw.addr, "/trial", &[]).status, 200);
    let text = gw.metrics();
    let hit = "edgeguard_requests_total{decision=\"deny\",reason=\"path_denied\",rule=\"embargo-trial\",dry_run=\"true\"}";
    let done = "edgeguard_requests_total{decision=\"allow\",reason=\"\",rule=\"(default)\",dry_run=\"false\"}";
    assert_eq!(
        (sample(&text, hit), sample(&text, done)),
        (1.0, 1.0),
        "{text}"
    );
}

#[test]
fn refused_requests_reach_the_dashboard() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    assert_eq!(get(gw.addr, "/.refused-here", &[]).status, 403);
    assert!(eventually(WITHIN, || gw
        .admin_get("/")
        .text()
        .contains("/.refused-here")));
}

#[test]
fn open_connections_and_connection_errors_are_counted() {
    let stub = Stub::start();
    let gw = Watched::with(&[("r.toml", &rulebook(stub.addr))]);
    let mut kept = Client::connect(gw.addr);
    kept.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(kept.read(false).status, 200);
    assert!(eventually(WITHIN, || gw
        .sample("edgeguard_open_connections")
        == 1.0));
    let mut bad = Client::connect(gw.addr);
    bad.send(b"GET / HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n");
    bad.read(false);
    assert!(eventually(WITHIN, || {
        gw.sample("edgeguard_connection_errors_total{kind=\"malformed_request\"}") == 1.0
    }));
    drop(kept);
    assert!(eventually(WITHIN, || gw
        .sample("edgeguard_open_connections")
        == 0.0));
}

#[test]
fn without_an_admin_listener_the_refusal_feed_is_off() {
    // Nobody can read the dashboard then (`server.admin` is restart-only), so
    // the gateway makes no refusal events and runs no aggregator thread.
    let path = std::path::Path::new("r.toml");
    for (admin, on) in [("\"off\"", false), ("\"127.0.0.1:0\"", true)] {
        let policy = crate::common::policy_of(&format!("[server]\nadmin = {admin}\n"));
        let control = edgeguard::admin::Control::new(path, &policy);
        assert_eq!(control.feed.is_on(), on, "admin = {admin}");
    }
}
