//! `path::canonicalize` on arbitrary input under every `[paths]` setting: a path it
//! accepts is canonical (idempotent, borrowed when fed back, no dot segment, no `//`
//! when slashes are merged, ASCII, upper-case escapes), and a mainstream upstream
//! reads it without climbing above the root, exactly as `path::upstream_view` says.

#![no_main]

use std::borrow::Cow;

use edgeguard::path::{
    Backslash, EncodedSlash, PathOptions, Semicolon, canonicalize, upstream_view,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 becomes U+FFFD, which still exercises the non-ASCII refusal.
    let input = String::from_utf8_lossy(data);
    for opts in all_options() {
        if let Ok(out) = canonicalize(&input, &opts) {
            check(&input, &opts, &out);
        }
    }
});

/// The 24 combinations of `[paths]` settings.
fn all_options() -> impl Iterator<Item = PathOptions> {
    [true, false].into_iter().flat_map(|merge_slashes| {
        [
            EncodedSlash::Reject,
            EncodedSlash::Decode,
            EncodedSlash::Keep,
        ]
        .into_iter()
        .flat_map(move |encoded_slash| {
            [Backslash::Reject, Backslash::Slash]
                .into_iter()
                .flat_map(move |backslash| {
                    [Semicolon::Reject, Semicolon::Keep]
                        .into_iter()
                        .map(move |semicolon| PathOptions {
                            merge_slashes,
                            encoded_slash,
                            backslash,
                            semicolon,
                        })
                })
        })
    })
}

fn check(input: &str, opts: &PathOptions, out: &str) {
    let ctx = format!("{input:?} -> {out:?} with {opts:?}");

    assert!(out.starts_with('/'), "{ctx}: not absolute");
    assert!(out.is_ascii(), "{ctx}: not ASCII");

    // Idempotent, and an already-canonical path is borrowed, not copied.
    match canonicalize(out, opts) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, out, "{ctx}: not idempotent"),
        other => panic!("{ctx}: canonicalizing the output gave {other:?}"),
    }

    // No dot segment, no `//` when slashes are merged.
    assert!(
        !out.contains("/./") && !out.contains("/../"),
        "{ctx}: dot segment"
    );
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{ctx}: trailing dot segment"
    );
    if opts.merge_slashes {
        assert!(!out.contains("//"), "{ctx}: '//' with merge_slashes");
    }

    // Every escape is `%` and two upper-case hex digits.
    let b = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = b
            .get(i + 1..i + 3)
            .unwrap_or_else(|| panic!("{ctx}: cut escape"));
        assert!(
            hex.iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
            "{ctx}: escape at {i} is not upper-case hex"
        );
    }

    // A mainstream upstream never climbs above the root...
    let (reading, climbed) = mainstream(out);
    assert!(
        !climbed,
        "{ctx}: upstream reading {reading:?} climbs above the root"
    );

    // ...and reads what upstream_view says it reads: the view resolves to the same
    // path, and is already resolved (decoding it is all that is left to do).
    let view = upstream_view(out, opts);
    let view_str = view.as_deref().unwrap_or(out);
    let (view_reading, view_climbed) = mainstream(view_str);
    assert!(!view_climbed, "{ctx}: upstream view {view_str:?} climbs");
    assert_eq!(
        view_reading, reading,
        "{ctx}: upstream view {view_str:?} reads differently"
    );
    assert_eq!(
        decode_once(view_str.as_bytes()),
        reading,
        "{ctx}: upstream view {view_str:?} is not resolved"
    );
    if let Some(view) = &view {
        assert_ne!(view, out, "{ctx}: upstream_view returned the path itself");
    }
}

/// How a mainstream upstream reads a path: percent-decode once, `\` as `/`, drop
/// `;params` from each segment, merge slashes, resolve dot segments (a final empty,
/// `.` or `..` segment leaves a trailing slash). Returns the resolved path's bytes
/// and whether a `..` tried to pop past the root.
fn mainstream(path: &str) -> (Vec<u8>, bool) {
    let decoded: Vec<u8> = decode_once(path.as_bytes())
        .into_iter()
        .map(|b| if b == b'\\' { b'/' } else { b })
        .collect();
    let body = decoded.strip_prefix(b"/").unwrap_or(&decoded);
    let segments: Vec<&[u8]> = body.split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut climbed = false;
    let mut trailing = false;
    for (k, segment) in segments.into_iter().enumerate() {
        let segment = segment.split(|&b| b == b';').next().unwrap_or_default();
        match segment {
            b"" | b"." => {}
            b".." => {
                if stack.pop().is_none() {
                    climbed = true;
                }
            }
            s => stack.push(s),
        }
        if k == last {
            trailing = matches!(segment, b"" | b"." | b"..");
        }
    }
    let mut resolved = Vec::with_capacity(decoded.len());
    for s in &stack {
        resolved.push(b'/');
        resolved.extend_from_slice(s);
    }
    if trailing || resolved.is_empty() {
        resolved.push(b'/');
    }
    (resolved, climbed)
}

/// Decodes every valid `%XX` escape once; a stray `%` stays as it is.
fn decode_once(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escape = (s[i] == b'%')
            .then(|| Some((hex(*s.get(i + 1)?)? << 4) | hex(*s.get(i + 2)?)?))
            .flatten();
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}
