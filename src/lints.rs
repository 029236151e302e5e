//! Warnings of `check` (SPEC 1): rules that can never match because an
//! earlier rule always decides first, duplicate or overlapping CIDRs within
//! one list, and country codes that are not ISO 3166-1 alpha-2.
//!
//! A warning never stops a load; `check --strict` turns them into a failure.

use std::collections::BTreeSet;

use crate::config::{Action, Diagnostics, ListEntries, Location, RuleSpec, Rulebook, SpannedList};
use crate::geo::is_known_country_code;
use crate::ipset::{OverlapKind, overlaps, parse_net};
use crate::policy::Policy;

/// Most overlap warnings shown per list; the rest are counted.
const MAX_OVERLAPS_SHOWN: usize = 10;

/// Adds every warning about `book` to `diags`.
pub fn lint(book: &Rulebook, policy: &Policy, diags: &mut Diagnostics) {
    let _ = policy;
    shadowed_rules(book, diags);
    overlapping_cidrs(book, diags);
    unknown_countries(book, diags);
}

/// The condition keys of a rule with their entries, for comparing rules.
/// Positive keys hold for fewer requests as their list shrinks; `not_*` keys
/// as it grows.
fn condition_lists(spec: &RuleSpec) -> Vec<(&'static str, bool, Option<BTreeSet<String>>)> {
    let set = |l: &Option<SpannedList>, upper: bool| {
        l.as_ref().map(|l| {
            l.get_ref()
                .iter()
                .map(|e| {
                    let s = e.get_ref().trim();
                    if upper {
                        s.to_ascii_uppercase()
                    } else {
                        s.to_owned()
                    }
                })
                .collect::<BTreeSet<String>>()
        })
    };
    let RuleSpec {
        name: _,
        action: _,
        ip,
        not_ip,
        country,
        not_country,
        method,
        not_method,
        host,
        not_host,
        path_prefix,
        not_path_prefix,
        path_regex,
        not_path_regex,
        query_regex,
        header_regex,
        hotlink,
        roles: _,
        message: _,
        status: _,
        dry_run: _,
    } = spec;
    let mut out = vec![
        ("ip", true, set(ip, false)),
        ("not_ip", false, set(not_ip, false)),
        ("country", true, set(country, true)),
        ("not_country", false, set(not_country, true)),
        ("method", true, set(method, true)),
        ("not_method", false, set(not_method, true)),
        ("host", true, set(host, false)),
        ("not_host", false, set(not_host, false)),
        ("path_prefix", true, set(path_prefix, false)),
        ("not_path_prefix", false, set(not_path_prefix, false)),
        ("path_regex", true, set(path_regex, false)),
        ("not_path_regex", false, set(not_path_regex, false)),
        ("query_regex", true, set(query_regex, false)),
    ];
    // Tables compare as a whole: one entry naming their exact contents.
    let headers = header_regex.as_ref().map(|t| {
        let text: Vec<String> = t
            .get_ref()
            .iter()
            .map(|(k, v)| format!("{}={}", k.get_ref().to_ascii_lowercase(), v.get_ref()))
            .collect();
        BTreeSet::from([text.join("\n")])
    });
    out.push(("header_regex", true, headers));
    let hotlink = hotlink.as_ref().map(|h| {
        let h = h.get_ref();
        let allow: Vec<&str> = h.allow.iter().map(|a| a.get_ref().as_str()).collect();
        BTreeSet::from([format!(
            "{allow:?}{:?}{:?}{:?}",
            h.allow_missing, h.allow_malformed, h.allow_own_host
        )])
    });
    out.push(("hotlink", true, hotlink));
    out
}

/// Whether every request that `later` matches is also matched by `earlier`.
fn implies(later: &RuleSpec, earlier: &RuleSpec) -> bool {
    let later = condition_lists(later);
    let earlier = condition_lists(earlier);
    earlier
        .iter()
        .zip(&later)
        .all(|((_, positive, e), (_, _, l))| match (e, l) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e), Some(l)) if *positive => l.is_subset(e),
            (Some(e), Some(l)) => l.is_superset(e),
        })
}

fn shadowed_rules(book: &Rulebook, diags: &mut Diagnostics) {
    for (i, later) in book.rules.iter().enumerate() {
        let later_spec = later.get_ref();
        let shadow = book.rules[..i].iter().find(|earlier| {
            let e = earlier.get_ref();
            *e.action.get_ref() != Action::Require
                && !e.dry_run.unwrap_or(false)
                && implies(later_spec, e)
        });
        if let Some(earlier) = shadow {
            let e = earlier.get_ref();
            let why = if condition_lists(e).iter().all(|(_, _, l)| l.is_none()) {
                "has no conditions"
            } else {
                "matches every request this one matches"
            };
            diags.warning(
                book.locate(&later_spec.name.span()),
                format!(
                    "rule \"{}\" can never match: rule \"{}\" (line {}) {why} and decides first",
                    later_spec.name.get_ref(),
                    e.name.get_ref(),
                    book.locate(&e.name.span()).line
                ),
            );
        }
    }
}

fn overlapping_cidrs(book: &Rulebook, diags: &mut Diagnostics) {
    for list in &book.lists {
        let name = list.name.get_ref();
        match &list.entries {
            ListEntries::Inline(entries) => {
                let nets: Vec<(ipnet::IpNet, usize)> = entries
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| parse_net(e.get_ref().trim()).ok().map(|n| (n, i)))
                    .collect();
                let locate = |i: usize| book.locate(&entries[i].span());
                report_overlaps(&format!("list \"{name}\""), &nets, locate, diags);
            }
            ListEntries::File { path, nets, .. } => {
                let indexed: Vec<(ipnet::IpNet, usize)> =
                    nets.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
                let locate = |i: usize| Location::new(path.clone(), nets[i].1, 1);
                report_overlaps(&format!("list \"{name}\""), &indexed, locate, diags);
            }
        }
    }
    for rule in &book.rules {
        let r = rule.get_ref();
        for (key, list) in [("ip", &r.ip), ("not_ip", &r.not_ip)] {
            let Some(list) = list else { continue };
            let entries = list.get_ref();
            let nets: Vec<(ipnet::IpNet, usize)> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| parse_net(e.get_ref().trim()).ok().map(|n| (n, i)))
                .collect();
            let locate = |i: usize| book.locate(&entries[i].span());
            let label = format!("rule \"{}\" {key}", r.name.get_ref());
            report_overlaps(&label, &nets, locate, diags);
        }
    }
}

fn report_overlaps(
    label: &str,
    nets: &[(ipnet::IpNet, usize)],
    locate: impl Fn(usize) -> Location,
    diags: &mut Diagnostics,
) {
    let found = overlaps(nets, MAX_OVERLAPS_SHOWN + 1);
    for (n, overlap) in found.iter().enumerate() {
        if n == MAX_OVERLAPS_SHOWN {
            diags.warning(
                locate(overlap.second),
                format!("{label}: more duplicate or overlapping entries not shown"),
            );
            break;
        }
        let first = &nets
            .iter()
            .find(|(_, i)| *i == overlap.first)
            .expect("index from input")
            .0;
        let second = &nets
            .iter()
            .find(|(_, i)| *i == overlap.second)
            .expect("index from input")
            .0;
        let first_loc = locate(overlap.first);
        let message = match overlap.kind {
            OverlapKind::Duplicate => format!(
                "{label}: {second} duplicates the entry at line {}",
                first_loc.line
            ),
            OverlapKind::Contains => format!(
                "{label}: {second} overlaps {first} at line {}",
                first_loc.line
            ),
        };
        diags.warning(locate(overlap.second), message);
    }
}

fn unknown_countries(book: &Rulebook, diags: &mut Diagnostics) {
    for rule in &book.rules {
        let r = rule.get_ref();
        for list in [&r.country, &r.not_country].into_iter().flatten() {
            for entry in list.get_ref() {
                let code = entry.get_ref().trim().to_ascii_uppercase();
                if code.len() == 2 && !is_known_country_code(&code) {
                    diags.warning(
                        book.locate(&entry.span()),
                        format!(
                            "rule \"{}\": \"{}\" is not an ISO 3166-1 alpha-2 country code",
                            r.name.get_ref(),
                            entry.get_ref()
                        ),
                    );
                }
            }
        }
    }
}
