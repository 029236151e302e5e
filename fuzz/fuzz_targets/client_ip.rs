//! `client_ip::client_ip` on arbitrary header instances under each `[client_ip]
//! header` mode, with a fixed trusted set: the client is the peer or an address
//! written in the input, an untrusted peer is always the client, and joining the
//! instances into one value (as HTTP allows) changes nothing.
//!
//! Input: byte 0 picks the mode, byte 1 the peer; the rest, split at `\n`, are the
//! header instances (none when the rest is empty).

#![no_main]

use std::net::IpAddr;

use edgeguard::client_ip::{ClientHeader, client_ip};
use libfuzzer_sys::fuzz_target;

/// Peers: trusted and untrusted, IPv4, IPv6 and IPv4-mapped IPv6.
const PEERS: [&str; 8] = [
    "10.0.0.1",
    "127.0.0.1",
    "192.168.1.1",
    "::ffff:10.1.2.3",
    "2001:db8:ffff::1",
    "203.0.113.9",
    "2001:db8::9",
    "::ffff:203.0.113.9",
];

/// 10/8, 127/8, 192.168/16 and 2001:db8:ffff::/48 are the trusted proxies.
fn is_trusted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 10 || a == 127 || (a, b) == (192, 168)
        }
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 0xffff],
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, peer, rest @ ..] = data else {
        return;
    };
    let header = match mode % 3 {
        0 => ClientHeader::XForwardedFor,
        1 => ClientHeader::Forwarded,
        _ => ClientHeader::Single(http::HeaderName::from_static("x-real-ip")),
    };
    let peer: IpAddr = PEERS[usize::from(*peer) % PEERS.len()]
        .parse()
        .expect("a valid peer");
    let instances: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == b'\n').collect()
    };

    let got = client_ip(peer, instances.iter().copied(), &header, is_trusted);
    let shown: Vec<_> = instances
        .iter()
        .map(|v| String::from_utf8_lossy(v))
        .collect();
    let ctx = format!("{header:?} peer {peer} instances {shown:?} -> {got}");
    let peer = peer.to_canonical();

    assert_eq!(got, got.to_canonical(), "{ctx}: not canonical");
    if !is_trusted(peer) {
        assert_eq!(got, peer, "{ctx}: untrusted peer is not the client");
    }
    assert!(
        got == peer || written_in(rest, got),
        "{ctx}: client is neither the peer nor written in the input"
    );
    match header {
        ClientHeader::Single(_) => {
            if instances.len() != 1 {
                assert_eq!(got, peer, "{ctx}: several or no instances believed");
            }
        }
        ClientHeader::XForwardedFor | ClientHeader::Forwarded => {
            // Several field lines are one list joined with ", " (RFC 9110 5.3), even
            // when a Forwarded quoted-string opens in one line and closes in the next
            // (fuzz/artifacts-found/client_ip-forwarded-quote-across-*, fixed).
            let joined = instances.join(&b", "[..]);
            let one = client_ip(peer, [&joined[..]], &header, is_trusted);
            let shown = String::from_utf8_lossy(&joined);
            assert_eq!(got, one, "{ctx}: joined instances {shown:?} give {one}");
        }
    }
});

/// Whether `ip` is written in `input`, with or without brackets, port or zero
/// compression: some run of hex digits, `.` and `:`, or such a run cut before one
/// of its colons (`1.2.3.4:80`), parses to `ip`.
fn written_in(input: &[u8], ip: IpAddr) -> bool {
    input
        .split(|b| !(b.is_ascii_hexdigit() || *b == b'.' || *b == b':'))
        .filter(|run| !run.is_empty())
        .any(|run| {
            let cuts = run
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b':')
                .map(|(i, _)| i)
                .chain([run.len()]);
            cuts.into_iter().any(|end| {
                std::str::from_utf8(&run[..end])
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|parsed| parsed.to_canonical() == ip)
            })
        })
}
