//! The client address (SPEC 4) from the socket to the decision and the
//! forwarded headers: a table of forwarding headers under each `[client_ip]`
//! header mode, sent by a trusted and an untrusted peer.

use crate::common::gateway::{Gateway, get};
use crate::common::stub::Stub;

/// (header mode, trusted proxies, request headers, expected client ip,
///  expected X-Forwarded-For at the upstream)
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

const CASES: &[Case] = &[
    // An untrusted peer: nothing it says is believed.
    (
        "x-forwarded-for",
        "\"10.0.0.0/8\"",
        &["X-Forwarded-For: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"10.0.0.0/8\"",
        &["X-Real-IP: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"10.0.0.0/8\"",
        &["Forwarded: for=198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-real-ip",
        "\"10.0.0.0/8\"",
        &["X-Real-IP: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "cf-connecting-ip",
        "\"10.0.0.0/8\"",
        &["CF-Connecting-IP: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "",
        &["X-Forwarded-For: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    // A trusted peer, X-Forwarded-For.
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &[],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.7"],
        "198.51.100.7",
        "198.51.100.7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 203.0.113.1, 198.51.100.7"],
        "198.51.100.7",
        "203.0.113.1, 198.51.100.7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\", \"10.0.0.0/8\"",
        &["X-Forwarded-For: 198.51.100.7, 10.1.1.1, 10.2.2.2"],
        "198.51.100.7",
        "198.51.100.7, 10.1.1.1, 10.2.2.2, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\", \"10.0.0.0/8\"",
        &["X-Forwarded-For: 10.1.1.1, 10.2.2.2"],
        "10.1.1.1",
        "10.1.1.1, 10.2.2.2, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &[
            "X-Forwarded-For: 203.0.113.1",
            "X-Forwarded-For: 198.51.100.7",
        ],
        "198.51.100.7",
        "203.0.113.1, 198.51.100.7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.7:5555"],
        "198.51.100.7",
        "198.51.100.7:5555, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: [2001:db8::7]:443"],
        "2001:db8::7",
        "[2001:db8::7]:443, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 2001:db8::7"],
        "2001:db8::7",
        "2001:db8::7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: ::ffff:198.51.100.7"],
        "198.51.100.7",
        "::ffff:198.51.100.7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: unknown"],
        "127.0.0.1",
        "unknown, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.7, garbage"],
        "127.0.0.1",
        "198.51.100.7, garbage, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\", \"10.0.0.0/8\"",
        &["X-Forwarded-For: 203.0.113.9, nonsense, 10.1.1.1"],
        "10.1.1.1",
        "203.0.113.9, nonsense, 10.1.1.1, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.7,,"],
        "127.0.0.1",
        "198.51.100.7,,, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For:  198.51.100.7 "],
        "198.51.100.7",
        "198.51.100.7, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.300"],
        "127.0.0.1",
        "198.51.100.300, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: fe80::1%eth0"],
        "127.0.0.1",
        "fe80::1%eth0, 127.0.0.1",
    ),
    // Forwarded (RFC 7239).
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=198.51.100.7"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: For=\"198.51.100.7:4711\";proto=https"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=\"[2001:db8:cafe::17]:4711\""],
        "2001:db8:cafe::17",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=203.0.113.1, for=198.51.100.7;by=10.0.0.1"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=unknown"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=_hidden"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: for=198.51.100.7, for=_hidden"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["Forwarded: proto=https"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\", \"10.0.0.0/8\"",
        &["Forwarded: for=198.51.100.7", "Forwarded: for=10.9.9.9"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "forwarded",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 198.51.100.7"],
        "127.0.0.1",
        "198.51.100.7, 127.0.0.1",
    ),
    // Single-address headers.
    (
        "x-real-ip",
        "\"127.0.0.1\"",
        &["X-Real-IP: 198.51.100.7"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "x-real-ip",
        "\"127.0.0.1\"",
        &["X-Real-IP: 198.51.100.7, 203.0.113.1"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-real-ip",
        "\"127.0.0.1\"",
        &["X-Real-IP: 198.51.100.7", "X-Real-IP: 203.0.113.1"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "x-real-ip",
        "\"127.0.0.1\"",
        &["X-Real-IP: [2001:db8::9]"],
        "2001:db8::9",
        "127.0.0.1",
    ),
    (
        "cf-connecting-ip",
        "\"127.0.0.1\"",
        &["CF-Connecting-IP: 198.51.100.7"],
        "198.51.100.7",
        "127.0.0.1",
    ),
    (
        "cf-connecting-ip",
        "\"127.0.0.1\"",
        &["CF-Connecting-IP: nope"],
        "127.0.0.1",
        "127.0.0.1",
    ),
    (
        "cf-connecting-ip",
        "\"127.0.0.1\"",
        &["X-Forwarded-For: 203.0.113.1"],
        "127.0.0.1",
        "203.0.113.1, 127.0.0.1",
    ),
    (
        "x-forwarded-for",
        "\"127.0.0.1\"",
        &["CF-Connecting-IP: 198.51.100.7"],
        "127.0.0.1",
        "127.0.0.1",
    ),
];

#[test]
fn the_client_address_is_found_per_spec_section_4() {
    assert!(CASES.len() >= 40);
    let stub = Stub::start();
    let mut failures = Vec::new();
    for (i, (mode, trusted, headers, client, xff)) in CASES.iter().enumerate() {
        let book = format!(
            "[client_ip]\ntrusted_proxies = [{trusted}]\nheader = \"{mode}\"\n\
             [[route]]\nupstream = \"{{upstream}}\"\n\
             [[rule]]\nname = \"office-only\"\naction = \"deny\"\npath_prefix = [\"/office\"]\nnot_ip = [\"198.51.100.0/24\"]\n"
        );
        let gw = Gateway::start(&book, Some(stub.addr));
        let path = format!("/case{i}");
        let r = get(gw.addr, &path, headers);
        let seen = stub.seen().into_iter().find(|s| s.target == path);
        let got_xff = seen
            .as_ref()
            .and_then(|s| s.headers.get("x-forwarded-for"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned();
        let line = gw.log_lines(1).pop().unwrap_or_default();
        let got_client = line["client_ip"].as_str().unwrap_or("(none)").to_owned();
        // The decision follows the found address.
        let office = get(gw.addr, "/office", headers).status;
        let expected_office = if client.starts_with("198.51.100.") {
            200
        } else {
            403
        };
        if r.status != 200 || got_client != *client || got_xff != *xff || office != expected_office
        {
            failures.push(format!(
                "#{i} {mode} trusted=[{trusted}] {headers:?}\n    client {got_client} (want {client}), XFF {got_xff:?} (want {xff:?}), /office {office} (want {expected_office})"
            ));
        }
        if let Some(s) = &seen
            && !trusted.contains("127.0.0.1")
        {
            for h in ["forwarded", "x-real-ip", "cf-connecting-ip"] {
                if s.headers.contains_key(h) {
                    failures.push(format!("#{i}: untrusted {h} forwarded"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
