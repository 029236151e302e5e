//! The canonical-path invariant (SPEC 5; issue 5, item 1) against a corpus of raw
//! request targets, `tests/fixtures/corpus/targets.txt`, sent byte for byte over TCP to
//! a gateway that holds four deny rules, once per `[paths]` setting.
//!
//! For every target and setting the test checks the exact answer (the status; for a
//! 403/404 the rule that refused, from the access log; for a 200 the exact target the
//! upstream stub received), that the stub received the path the rules saw, and the
//! invariant: nothing the stub receives is read into a denied area by a mainstream
//! upstream. "Mainstream" is read two ways, both enforced: decode once then drop
//! `;params` (nginx, Apache, most frameworks), and drop `;params` then decode (Tomcat);
//! both read `\` as `/`, merge slashes and resolve dot segments, and keep a trailing `/`
//! significant (a directory is not the file of the same name).
//!
//! Five lenient readings go further (case-insensitive, Windows names, Unicode folding, a
//! decoding relay, trailing slash ignored). They are not the gateway's promise: the
//! corpus marks, per target, which of them would reach a denied area, so the known gaps
//! stay written down and a change in them shows.

mod readings;
mod table;

use std::collections::{BTreeSet, HashMap};

use crate::common::gateway::{Gateway, raw};
use crate::common::stub::Stub;

use readings::{Lenient, Resolved, decode_first, denied_areas, strip_first};
use table::{Case, Expect, corpus, short};

/// The four policies, one rule each; every route goes to the stub. (d) is written as a
/// regex so that files under `/private/` pass and only directory requests are refused.
const RULEBOOK: &str = r#"
[[route]]
upstream = "{upstream}"

[[rule]]
name = "admin"
action = "deny"
path_prefix = ["/admin"]

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']
status = 404

[[rule]]
name = "backups"
action = "deny"
path_regex = ['(?i)\.(bak|sql)$']

[[rule]]
name = "private-dirs"
action = "deny"
path_regex = ['^/private/(.*/)?$']
"#;

/// One column of the corpus: a name and the `[paths]` table it stands for.
struct Setting {
    column: &'static str,
    paths: &'static str,
}

const SETTINGS: [Setting; 8] = [
    Setting {
        column: "default",
        paths: "",
    },
    Setting {
        column: "nomerge",
        paths: "[paths]\nmerge_slashes = false\n",
    },
    Setting {
        column: "decode",
        paths: "[paths]\nencoded_slash = \"decode\"\n",
    },
    Setting {
        column: "keep",
        paths: "[paths]\nencoded_slash = \"keep\"\n",
    },
    Setting {
        column: "bslash",
        paths: "[paths]\nbackslash = \"slash\"\n",
    },
    Setting {
        column: "semi",
        paths: "[paths]\nsemicolon = \"keep\"\n",
    },
    Setting {
        column: "laxkeep",
        paths: "[paths]\nmerge_slashes = false\nencoded_slash = \"keep\"\n\
                backslash = \"slash\"\nsemicolon = \"keep\"\n",
    },
    Setting {
        column: "laxdecode",
        paths: "[paths]\nencoded_slash = \"decode\"\nbackslash = \"slash\"\n\
                semicolon = \"keep\"\n",
    },
];

#[test]
fn invariant_holds_with_default_paths() {
    run(0);
}

#[test]
fn invariant_holds_with_merge_slashes_false() {
    run(1);
}

#[test]
fn invariant_holds_with_encoded_slash_decode() {
    run(2);
}

#[test]
fn invariant_holds_with_encoded_slash_keep() {
    run(3);
}

#[test]
fn invariant_holds_with_backslash_slash() {
    run(4);
}

#[test]
fn invariant_holds_with_semicolon_keep() {
    run(5);
}

#[test]
fn invariant_holds_with_every_lenient_setting_and_kept_slashes() {
    run(6);
}

#[test]
fn invariant_holds_with_every_lenient_setting_and_decoded_slashes() {
    run(7);
}

// ---- the run ----

/// Sends every target of the corpus to a gateway under `SETTINGS[column]`, and asserts
/// once with every failure listed.
fn run(column: usize) {
    let setting = &SETTINGS[column];
    let cases = corpus();
    let stub = Stub::start();
    let gw = Gateway::start(&format!("{}{RULEBOOK}", setting.paths), Some(stub.addr));
    let mut failures: Vec<String> = Vec::new();
    let mut answered = Vec::new();
    let mut received = 0;
    for case in &cases {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(&case.target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let response = raw(gw.addr, &request);
        let seen = stub.seen();
        let forwarded: Vec<String> = seen[received..].iter().map(|s| s.target.clone()).collect();
        received = seen.len();
        let id = response.header("x-request-id").map(str::to_owned);
        answered.push((case, response.status, id, forwarded));
    }
    let with_id = answered.iter().filter(|a| a.2.is_some()).count();
    let logs: HashMap<String, serde_json::Value> = gw
        .log_lines(with_id)
        .into_iter()
        .filter_map(|l| Some((l["request_id"].as_str()?.to_owned(), l)))
        .collect();

    let mut broken = 0;
    for (case, status, id, forwarded) in &answered {
        let log = id.as_ref().and_then(|id| logs.get(id));
        let mut problems = Vec::new();
        let expect = &case.expect[column];
        let got = match (status, forwarded.as_slice()) {
            (200, [one]) => Some(Expect::Forwarded(one.clone())),
            (_, []) => Some(Expect::Refused {
                status: *status,
                rule: match (status, log) {
                    (403 | 404, Some(l)) => l["rule"].as_str().map(str::to_owned),
                    _ => None,
                },
            }),
            _ => None,
        };
        match got {
            Some(got) if got == *expect => {}
            Some(got) => problems.push(format!("expected {expect}, got {got}")),
            None => {
                let forwarded: Vec<String> = forwarded.iter().map(|t| short(t)).collect();
                problems.push(format!("{status} with {forwarded:?} forwarded"));
            }
        }
        for target in forwarded {
            let invariant = check_forwarded(case, target, log, &mut problems);
            broken += usize::from(!invariant);
        }
        if !problems.is_empty() {
            failures.push(format!(
                "line {} [{}] GET {}:\n    {}",
                case.line,
                case.policy,
                case.written,
                problems.join("\n    ")
            ));
        }
    }
    // Nothing reached the stub that the loop did not attribute.
    assert_eq!(stub.seen().len(), received);
    assert!(
        failures.is_empty(),
        "{} of {} targets failed with {} ({} invariant violations):\n{}\n",
        failures.len(),
        cases.len(),
        setting.column,
        broken,
        failures.join("\n")
    );
}

/// Checks one forwarded target, adding what is wrong to `problems`: the invariant, the
/// path the rules saw, the query; then the lenient readings against the corpus marks,
/// only when the invariant holds. Returns whether the invariant holds.
fn check_forwarded(
    case: &Case,
    target: &str,
    log: Option<&serde_json::Value>,
    problems: &mut Vec<String>,
) -> bool {
    let path = path_of(target);
    let mut readers = Vec::new();
    let mut reading = None;
    for (name, read) in [
        ("decode-first", decode_first as fn(&[u8]) -> Resolved),
        ("strip-first", strip_first),
    ] {
        let r = read(path);
        let areas = denied_areas(&r);
        if !areas.is_empty() {
            readers.push(name);
            reading = Some((r, areas));
        }
    }
    if let Some((r, areas)) = &reading {
        problems.push(format!(
            "INVARIANT: the upstream received {}, which a mainstream upstream ({}) reads \
             as \"{r}\", inside {areas:?}",
            short(target),
            readers.join(", ")
        ));
    }
    let saw = log.and_then(|l| l["path"].as_str());
    if saw.map(str::as_bytes) != Some(path) {
        problems.push(format!(
            "the upstream received {}, the rules saw {:?}",
            short(target),
            saw.map(short)
        ));
    }
    let sent_query = case.target.split(|&b| b == b'#').next().and_then(|t| {
        let q = t.iter().position(|&b| b == b'?')?;
        Some(t[q + 1..].to_vec())
    });
    let query = target.split_once('?').map(|(_, q)| q.as_bytes().to_vec());
    if query != sent_query {
        problems.push(format!(
            "the query was not forwarded as sent: {}",
            short(target)
        ));
    }
    if reading.is_some() {
        return false;
    }
    let lenient: BTreeSet<Lenient> = Lenient::ALL
        .into_iter()
        .filter(|l| !denied_areas(&l.read(path)).is_empty())
        .collect();
    if lenient != case.lenient {
        let detail: Vec<String> = Lenient::ALL
            .iter()
            .map(|l| format!("{l:?}: \"{}\"", l.read(path)))
            .collect();
        problems.push(format!(
            "forwarded {}; the lenient readings that reach a denied area are {lenient:?}, \
             the corpus marks {:?} ({})",
            short(target),
            case.lenient,
            detail.join(", ")
        ));
    }
    true
}

/// The path part of a request target as the upstream received it.
fn path_of(target: &str) -> &[u8] {
    target.split('?').next().unwrap_or("").as_bytes()
}
