//! `host::referer` on 0–2 arbitrary Referer values, and `Hotlink::is_hotlink` on what
//! it returns: a host is in normal form (lowercase ASCII, no port, no userinfo, no
//! trailing dot, an IPv6 literal in brackets and RFC 5952 form) and written in the
//! input, and the hotlink condition follows its definition (a host that `allow`
//! matches is never a hotlink).
//!
//! Input: byte 0 picks the number of values (`% 3`) and the own host (`/ 4 % 4`); the
//! rest is one value, or two split at the first `\n`.

#![no_main]

use std::net::Ipv6Addr;

use edgeguard::host::{HostMatch, HostSet, Hotlink, Referer, normalize_host, referer};
use libfuzzer_sys::fuzz_target;

const ALLOW: [&str; 5] = [
    "example.com",
    "*.example.com",
    "192.0.2.1",
    "[::1]",
    "xn--bcher-kva.example",
];

const OWN_HOSTS: [&str; 4] = ["shop.test", "example.org", "", "[2001:db8::1]"];

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let values: Vec<&[u8]> = match selector % 3 {
        0 => Vec::new(),
        1 => vec![rest],
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => vec![&rest[..i], &rest[i + 1..]],
            None => vec![rest, &[]],
        },
    };
    let own_host = OWN_HOSTS[usize::from(selector / 4) % OWN_HOSTS.len()];

    let got = referer(values.iter().copied());
    let ctx = format!("{values:?} -> {got:?}");

    match values.len() {
        0 => assert_eq!(got, Referer::Missing, "{ctx}"),
        2 => assert_eq!(got, Referer::Malformed, "{ctx}"),
        _ => {}
    }
    if let Referer::Host(host) = &got {
        check_host(host, rest, &ctx);
    }
    check_hotlink(&got, own_host, &ctx);
});

fn check_host(host: &str, input: &[u8], ctx: &str) {
    assert!(!host.is_empty(), "{ctx}: empty host");
    assert!(host.is_ascii(), "{ctx}: not ASCII");
    assert!(
        !host.bytes().any(|b| b.is_ascii_uppercase()),
        "{ctx}: not lowercase"
    );
    assert!(!host.ends_with('.'), "{ctx}: trailing dot");
    assert!(!host.contains('@'), "{ctx}: userinfo");
    assert!(
        !host.contains(['/', '\\', '?', '#', '%', ' ']),
        "{ctx}: not a host"
    );
    if let Some(inner) = host.strip_prefix('[') {
        // An IPv6 literal: brackets, RFC 5952 form, no port after them.
        let address = inner
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("{ctx}: port or junk after the brackets"));
        let ip: Ipv6Addr = address
            .parse()
            .unwrap_or_else(|e| panic!("{ctx}: not an IPv6 address: {e}"));
        assert_eq!(host, format!("[{ip}]"), "{ctx}: not RFC 5952");
    } else {
        assert!(!host.contains(':'), "{ctx}: port");
        // Names are taken as written, only lowercased.
        let lowered = input.to_ascii_lowercase();
        assert!(
            lowered.windows(host.len()).any(|w| w == host.as_bytes()),
            "{ctx}: host not written in the input"
        );
    }
    assert_eq!(normalize_host(host), host, "{ctx}: not in normal form");
    // A host is allowed by a pattern naming it, and by `*.` its parent.
    if let Ok(set) = HostSet::new([host]) {
        assert_eq!(set.best_match(host), Some(HostMatch::Exact), "{ctx}");
        let hotlink = Hotlink {
            allow: set,
            allow_missing: false,
            allow_malformed: false,
            allow_own_host: false,
        };
        assert!(
            !hotlink.is_hotlink(&Referer::Host(host.into()), ""),
            "{ctx}"
        );
    }
    if let Some((_, parent)) = host.split_once('.')
        && let Ok(set) = HostSet::new([format!("*.{parent}").as_str()])
    {
        assert_eq!(
            set.best_match(host),
            Some(HostMatch::Subdomains),
            "{ctx}: *.{parent}"
        );
    }
}

fn check_hotlink(got: &Referer<'_>, own_host: &str, ctx: &str) {
    let allow = HostSet::new(ALLOW).expect("valid patterns");
    let any = HostSet::new(["*"]).expect("valid pattern");
    for flags in 0..8u8 {
        let (allow_missing, allow_malformed, allow_own_host) =
            (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
        for set in [&allow, &any] {
            let hotlink = Hotlink {
                allow: set.clone(),
                allow_missing,
                allow_malformed,
                allow_own_host,
            };
            let is = hotlink.is_hotlink(got, own_host);
            let ctx = format!("{ctx} flags {flags:03b} own {own_host:?}");
            match got {
                Referer::Missing => assert_eq!(is, !allow_missing, "{ctx}"),
                Referer::Malformed => assert_eq!(is, !allow_malformed, "{ctx}"),
                Referer::Host(host) => {
                    let allowed = set.matches(host);
                    let own = allow_own_host && !own_host.is_empty() && host == own_host;
                    assert_eq!(is, !(allowed || own), "{ctx}");
                    if allowed {
                        assert!(!is, "{ctx}: allowed host is a hotlink");
                    }
                }
            }
        }
    }
}
